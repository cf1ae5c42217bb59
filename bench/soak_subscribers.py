#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""soak_subscribers.py [--subscribers N] [--writers W] [--seconds S] ...

Issue 12's soak as a benchmark: a fresh stored + gatewayd (as
tests/e2e/efharness.py starts them, from $EF_BUILD_ROOT, default
./build), N SubscribeAll streams from position 0 opened and caught up
before any write, then W writer threads each appending to its own
stream for S seconds. Every subscriber must then receive exactly the
positions 0 .. head-1, in order: any gap, duplicate or reordering is
counted (and the first one of each subscriber printed), as is a
subscriber that is cut off or does not reach the head within --drain
seconds. gatewayd's RSS is sampled every second, and its peak (VmHWM
from /proc/PID/status) is reported with the append and delivery rates
and the load average. Exit status 0 only if every subscriber saw every
position once and in order.

The subscribers run in --procs processes (grpc.aio, --per-channel
streams to a connection) so that one Python interpreter's CPU is not
the limit being measured; --rate caps the appends (events/s over all
writers, 0: as fast as they go).
"""
import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("EF_BUILD_ROOT", os.path.join(HERE, "..", "build"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import efharness as h  # noqa: E402  (generates the protobuf modules)

import grpc  # noqa: E402

pb = h.pb


def rss_kib(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# --- subscribers (child processes) -------------------------------------

class Sub:
    def __init__(self, idx):
        self.idx, self.expect, self.got, self.gaps, self.dups = idx, 0, 0, 0, 0
        self.first, self.call, self.told = None, None, False


async def one_sub(ch, st, final, caught):
    st.call = ch.unary_stream(
        "/eventfold.EventStore/SubscribeAll",
        request_serializer=pb.SubscribeAllRequest.SerializeToString,
        response_deserializer=pb.SubscribeResponse.FromString)(
            pb.SubscribeAllRequest(from_position=0))
    try:
        async for m in st.call:
            if m.HasField("caught_up"):
                if not st.told:
                    st.told = True
                    with caught.get_lock():
                        caught.value += 1
                continue
            p = m.event.global_position
            st.got += 1
            if p == st.expect:
                st.expect += 1
            elif p > st.expect:
                st.gaps += 1
                if st.first is None:
                    st.first = "gap: got %d, expected %d" % (p, st.expect)
                st.expect = p + 1
            else:
                st.dups += 1
                if st.first is None:
                    st.first = "duplicate/reordered: got %d after %d" % (
                        p, st.expect - 1)
            if 0 <= final.value <= st.expect:
                break
    except (grpc.aio.AioRpcError, asyncio.CancelledError) as e:
        if st.first is None and not 0 <= final.value <= st.expect:
            st.first = "stream ended: %s" % (
                "%s %s" % (e.code(), e.details())
                if isinstance(e, grpc.aio.AioRpcError) else "cancelled")
    finally:
        st.call.cancel()


async def sub_main(addr, idxs, per_channel, final, deadline_v, caught, q,
                   extra):
    opts = [("grpc.use_local_subchannel_pool", 1),
            ("grpc.max_receive_message_length", 64 << 20)] + extra
    chans, subs, tasks = [], [], []
    for k, idx in enumerate(idxs):
        if k % per_channel == 0:
            chans.append(grpc.aio.insecure_channel(addr, options=opts))
        subs.append(Sub(idx))
        tasks.append(asyncio.ensure_future(one_sub(
            chans[-1], subs[-1], final, caught)))
    # a subscriber at the head waits for an event that will not come:
    # end its call; end all at the deadline
    while not all(t.done() for t in tasks):
        await asyncio.sleep(0.5)
        late = deadline_v.value > 0 and time.time() > deadline_v.value
        for st, t in zip(subs, tasks):
            if not t.done() and st.call is not None and (late or (
                    0 <= final.value <= st.expect)):
                st.call.cancel()
        if late:
            break
    await asyncio.gather(*tasks, return_exceptions=True)
    res = []
    for st in subs:
        first = st.first
        if first is None and not 0 <= final.value <= st.expect:
            first = "did not reach the head in time"
        res.append((st.idx, st.expect, st.got, st.gaps, st.dups, first))
    for ch in chans:
        await ch.close()
    q.put(res)


def sub_proc(addr, idxs, per_channel, final, deadline_v, caught, go, q,
             extra):
    go.wait()
    asyncio.run(sub_main(addr, idxs, per_channel, final, deadline_v,
                         caught, q, extra))


# --- writers (threads of the main process) ------------------------------

def writer(client, n, stop, batch, interval, counts):
    sid = h.new_id()
    version, mine = None, 0
    nxt = time.monotonic()
    while not stop.is_set():
        exp = h.no_stream() if version is None else h.exact(version)
        r = client.append(sid, exp, h.events(batch, payload=b'{"w":%d}' % n),
                          timeout=60)
        version = r.last_stream_version
        mine += batch
        counts[n] = (mine, r.last_global_position)
        if interval > 0:
            nxt += interval
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--writers", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--batch", type=int, default=1,
                    help="events per Append (1)")
    ap.add_argument("--rate", type=float, default=0,
                    help="events/s over all writers; 0: unthrottled (0)")
    ap.add_argument("--procs", type=int, default=2,
                    help="subscriber processes (2)")
    ap.add_argument("--per-channel", type=int, default=50,
                    help="subscriptions per gRPC connection (50)")
    ap.add_argument("--drain", type=float, default=300,
                    help="seconds the subscribers get to reach the head "
                    "after the writers stop (300)")
    ap.add_argument("--channel-arg", action="append", default=[],
                    metavar="KEY=INT", help="a gRPC channel argument of "
                    "the subscribers' connections (repeatable)")
    a = ap.parse_args()
    extra = [(k, int(v)) for k, v in
             (x.split("=", 1) for x in a.channel_arg)]

    cl = h.Cluster(start=False)
    final = mp.Value("q", -1)
    deadline_v = mp.Value("d", 0.0)
    caught = mp.Value("i", 0)
    go = mp.Event()
    q = mp.Queue()
    procs = []
    ctx = mp.get_context("fork")  # before any gRPC channel exists here
    for i in range(a.procs):
        idxs = list(range(i, a.subscribers, a.procs))
        p = ctx.Process(target=sub_proc, args=(
            cl.addr, idxs, a.per_channel, final, deadline_v, caught, go, q,
            extra))
        p.start()
        procs.append(p)
    rc = 1
    try:
        cl.start_stored()
        cl.start_gateway()
        gpid = cl.gateway.pid
        rss0 = rss_kib(gpid, "VmRSS")
        load0 = os.getloadavg()
        t0 = time.monotonic()
        go.set()
        h.wait_for(lambda: caught.value >= a.subscribers, timeout=300,
                   interval=0.2, what="every subscriber caught up")
        t_subs = time.monotonic() - t0
        rss_subs = rss_kib(gpid, "VmRSS")
        print("%d subscribers caught up in %.1f s; gatewayd RSS %d KiB "
              "idle, %d KiB with them" % (a.subscribers, t_subs, rss0,
                                         rss_subs), flush=True)

        stop = threading.Event()
        counts = [(0, -1)] * a.writers
        interval = a.batch * a.writers / a.rate if a.rate > 0 else 0
        threads = []
        for n in range(a.writers):
            c = cl.client()
            threads.append(threading.Thread(target=writer, args=(
                c, n, stop, a.batch, interval, counts)))
        samples = []
        tw = time.monotonic()
        for t in threads:
            t.start()
        while time.monotonic() - tw < a.seconds:
            time.sleep(1)
            samples.append(rss_kib(gpid, "VmRSS"))
        stop.set()
        for t in threads:
            t.join()
        tw = time.monotonic() - tw
        appended = sum(c[0] for c in counts)
        head = max(c[1] for c in counts) + 1
        load1 = os.getloadavg()
        print("writers: %d events in %.1f s = %.0f events/s; head %d"
              % (appended, tw, appended / tw, head), flush=True)
        if head != appended:
            print("head %d != events appended %d" % (head, appended))
        td = time.monotonic()
        final.value = head
        deadline_v.value = time.time() + a.drain
        res = []
        for _ in procs:
            res += q.get(timeout=a.drain + 60)
        for p in procs:
            p.join(30)
        td = time.monotonic() - td
        hwm = rss_kib(gpid, "VmHWM")
        rss_end = rss_kib(gpid, "VmRSS")
        bad = [r for r in res if r[1] != head or r[3] or r[4] or
               r[2] != head]
        delivered = sum(r[2] for r in res)
        print("subscribers: %d of %d saw exactly 0..%d in order; "
              "drain after the writers stopped %.1f s" % (
                  len(res) - len(bad), a.subscribers, head - 1, td))
        print("delivered %d events to subscribers = %.0f events/s over "
              "the write + drain time" % (delivered, delivered / (tw + td)))
        print("gaps %d, duplicates/reorderings %d" % (
            sum(r[3] for r in res), sum(r[4] for r in res)))
        why = {}
        for r in bad:
            why.setdefault(r[5], []).append(r)
        for w, rs in sorted(why.items(), key=lambda x: -len(x[1])):
            print("  %d subscribers: %s (reached %s)" % (
                len(rs), w, ", ".join(sorted({str(r[1]) for r in rs},
                                             key=int)[:12])))
        if bad:
            with open(os.path.join(cl.dir, "gatewayd.log"), "rb") as f:
                lines = [x for x in f.read().decode(errors="replace")
                         .splitlines() if "subscription ended" not in x]
            print("gatewayd log (tail, 'subscription ended' left out):\n"
                  + "\n".join(lines[-25:]))
        print("gatewayd RSS KiB: idle %d, %d subscribers %d, during writes "
              "max %d (sampled 1/s), at end %d; peak VmHWM %d" % (
                  rss0, a.subscribers, rss_subs, max(samples or [0]),
                  rss_end, hwm))
        print("load average at start %s, after writes %s, now %s" % (
            " ".join("%.2f" % x for x in load0),
            " ".join("%.2f" % x for x in load1),
            " ".join("%.2f" % x for x in os.getloadavg())))
        rc = 0 if not bad and len(res) == a.subscribers else 1
    finally:
        go.set()
        final.value = max(final.value, 0)
        deadline_v.value = time.time()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
        cl.close()
    sys.exit(rc)


if __name__ == "__main__":
    main()
