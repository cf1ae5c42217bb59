#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# test_subscribe.py - SubscribeAll and SubscribeStream end to end:
# catch-up, exactly one caught_up, live; from past the head; a stream
# that does not exist yet; a client that reads slowly while 100k events
# are appended; 200 concurrent subscribers; eventfold-stored killed and
# restarted under an open subscription; cancellation.
import os
import threading
import time

import grpc

import efharness as h


class Collector(h.StreamThread):
    """Reads a server stream on a thread; the test waits on what came."""

    def __init__(self, call, delay=None):
        self.items = []
        self.nevents = 0  # events in items, kept so waits are O(1)
        self.error = None
        self.done = False
        self.cv = threading.Condition()
        self.delay = delay
        super().__init__(call)

    def on_message(self, i, m):
        if self.delay is not None:
            self.delay(i)
        with self.cv:
            if m.HasField("caught_up"):
                self.items.append("caught_up")
            else:
                self.items.append(m.event)
                self.nevents += 1
            self.cv.notify_all()

    def on_end(self, error):
        with self.cv:
            self.error = error
            self.done = True
            self.cv.notify_all()

    def events(self):
        with self.cv:
            return [x for x in self.items if x != "caught_up"]

    def wait(self, pred, timeout=30, what="items"):
        deadline = time.monotonic() + timeout
        with self.cv:
            while not pred(self.items):
                left = deadline - time.monotonic()
                if left <= 0 or (self.done and not pred(self.items)):
                    raise AssertionError(
                        "waiting for %s: have %d items, done=%s error=%r" % (
                            what, len(self.items), self.done, self.error))
                self.cv.wait(min(left, 0.5))

    def wait_events(self, n, timeout=30):
        self.wait(lambda it: self.nevents >= n,
                  timeout, "%d events" % n)
        return self.events()

    def cancel(self):
        self.call.cancel()
        self.t.join(10)


def positions(evs):
    return [e.global_position for e in evs]


class SubscribeTest(h.ClusterCase):
    def head(self):
        """Appends one event on a scratch stream: its position + 1."""
        r = self.c.append(h.new_id(), h.any_(), h.events(1))
        return r.last_global_position + 1

    def test_catch_up_then_caught_up_then_live(self):
        sid = h.new_id()
        r = self.c.append(sid, h.no_stream(), h.events(5))
        p0 = r.first_global_position
        col = Collector(self.c.subscribe_all(p0))
        col.wait(lambda it: "caught_up" in it, what="caught_up")
        before = col.items.index("caught_up")
        self.assertGreaterEqual(before, 5)
        self.assertEqual(positions(col.items[:before]),
                         list(range(p0, p0 + before)))
        r2 = self.c.append(sid, h.exact(4), h.events(3))
        evs = col.wait_events(before + 3)
        allpos = positions(evs)
        self.assertEqual(allpos, list(range(p0, p0 + len(allpos))))
        self.assertIn(r2.last_global_position, allpos)
        self.assertEqual(col.items.count("caught_up"), 1)
        col.cancel()

    def test_subscribe_stream(self):
        sid, other = h.new_id(), h.new_id()
        self.c.append(sid, h.no_stream(), h.events(3))
        col = Collector(self.c.subscribe_stream(sid, 1))
        col.wait(lambda it: "caught_up" in it, what="caught_up")
        self.assertEqual([e.stream_version for e in col.items[:-1]], [1, 2])
        self.c.append(other, h.any_(), h.events(2))
        self.c.append(sid, h.exact(2), h.events(2))
        self.c.append(other, h.any_(), h.events(2))
        self.c.append(sid, h.exact(4), h.events(1))
        evs = col.wait_events(5)
        time.sleep(0.3)
        evs = col.events()
        self.assertEqual([e.stream_version for e in evs], [1, 2, 3, 4, 5])
        self.assertTrue(all(e.stream_id == sid for e in evs))
        self.assertEqual(col.items.count("caught_up"), 1)
        col.cancel()

    def test_subscribe_stream_not_yet_written(self):
        sid = h.new_id()
        col = Collector(self.c.subscribe_stream(sid, 0))
        col.wait(lambda it: "caught_up" in it, what="caught_up")
        self.assertEqual(col.items, ["caught_up"])
        self.c.append(sid, h.no_stream(), h.events(2))
        evs = col.wait_events(2)
        self.assertEqual([e.stream_version for e in evs], [0, 1])
        self.assertIsNone(col.error)
        col.cancel()

    def test_from_past_head(self):
        head = self.head()
        col = Collector(self.c.subscribe_all(head + 5))
        col.wait(lambda it: "caught_up" in it, what="caught_up")
        self.assertEqual(col.items, ["caught_up"])
        r = self.c.append(h.new_id(), h.any_(), h.events(10))
        self.assertEqual(r.first_global_position, head)
        evs = col.wait_events(5)
        time.sleep(0.3)
        self.assertEqual(positions(col.events()),
                         list(range(head + 5, head + 10)))
        col.cancel()
        # a stream version past the stream's head waits there too
        sid = h.new_id()
        self.c.append(sid, h.no_stream(), h.events(2))
        col = Collector(self.c.subscribe_stream(sid, 4))
        col.wait(lambda it: "caught_up" in it, what="caught_up")
        self.c.append(sid, h.exact(1), h.events(4))
        evs = col.wait_events(2)
        self.assertEqual([e.stream_version for e in evs], [4, 5])
        col.cancel()

    def test_invalid_stream_id(self):
        col = Collector(self.c.subscribe_stream("not-a-uuid", 0))
        col.wait(lambda it: col.done, what="end")
        self.assertIsNotNone(col.error)
        self.assertEqual(col.error.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_slow_client_gets_100k_in_order(self):
        head = self.head()
        n, batch, writers = 100000, 10, 4

        def slow(i):
            if i == 10:
                time.sleep(2)      # let the backlog build up
            elif i % 20000 == 0:
                time.sleep(0.2)
        col = Collector(self.c.subscribe_all(head), delay=slow)
        col.wait(lambda it: "caught_up" in it, what="caught_up")

        def write():
            cw = self.cl.client()
            sid = h.new_id()
            for _ in range(n // batch // writers):
                cw.append(sid, h.any_(), h.events(batch, payload=b"s" * 40))
        # 10k small batches: more than the 8192 messages a subscriber's
        # socket buffers, so the slow reader's buffer overflows and the
        # gateway has to read the dropped part from stored again.
        ts = [threading.Thread(target=write) for _ in range(writers)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        evs = col.wait_events(n, timeout=180)
        self.assertEqual(positions(evs), list(range(head, head + n)))
        self.assertEqual(col.items.count("caught_up"), 1)
        # bounded memory: far below what 100k queued events would need
        with open("/proc/%d/status" % self.cl.gateway.pid) as f:
            rss = [int(line.split()[1]) for line in f
                   if line.startswith("VmRSS")][0]
        self.assertLess(rss, 512 * 1024, "gatewayd RSS %d kB" % rss)
        col.cancel()

    def test_catch_up_pages_shared_by_many(self):
        # Subscriptions reading the same catch-up pages take them from
        # the gateway's shared page cache after the first: each must
        # still get every position once, in order, then live events.
        head = self.head()
        sid = h.new_id()
        for _ in range(6):
            self.c.append(sid, h.any_(), h.events(500))
        upto = head + 3000
        cols = []
        for i in range(12):
            cols.append(Collector(self.c.subscribe_all(head)))
            if i % 4 == 3:
                cols[-1].wait(lambda it: "caught_up" in it, timeout=60,
                              what="caught_up")
        for col in cols:
            col.wait(lambda it: "caught_up" in it, timeout=60,
                     what="caught_up")
        self.c.append(sid, h.any_(), h.events(5))
        for col in cols:
            evs = col.wait_events(3005, timeout=60)
            self.assertEqual(positions(evs), list(range(head, upto + 5)))
            self.assertEqual(col.items.count("caught_up"), 1)
            col.cancel()

    def test_200_concurrent_subscribers(self):
        head = self.head()
        chans = [self.cl.client() for _ in range(10)]
        cols = [Collector(chans[i % 10].subscribe_all(head))
                for i in range(200)]
        for col in cols:
            col.wait(lambda it: "caught_up" in it, timeout=60,
                     what="caught_up")
        sid = h.new_id()
        for _ in range(5):
            self.c.append(sid, h.any_(), h.events(10))
        for col in cols:
            evs = col.wait_events(50, timeout=60)
            self.assertEqual(positions(evs), list(range(head, head + 50)))
        h.wait_for(lambda: self.cl.metric(
            "eventfold_subscriptions_active") >= 200, what="metric")
        for col in cols:
            col.cancel()
        h.wait_for(lambda: self.cl.metric(
            "eventfold_subscriptions_active") == 0, timeout=30,
            what="subscriptions to end after cancel")


class RestartTest(h.FreshClusterCase):
    """Kills eventfold-stored (SIGKILL) under open subscriptions."""

    def test_stored_restart_mid_subscription(self):
        sid = h.new_id()
        self.c.append(sid, h.no_stream(), h.events(10))
        col_all = Collector(self.c.subscribe_all(0))
        col_st = Collector(self.c.subscribe_stream(sid, 0))
        col_all.wait_events(10)
        col_st.wait_events(10)
        self.cl.stop_stored()
        h.wait_for(lambda: self.c.check(timeout=2) == h.NOT_SERVING,
                   what="NOT_SERVING")
        with self.assertRaises(grpc.RpcError) as cm:
            self.c.append(sid, h.any_(), h.events(1))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.cl.start_stored()
        self.cl.wait_serving()
        for v in range(10, 30, 5):
            self.c.append(sid, h.exact(v - 1), h.events(5))
        evs = col_all.wait_events(30, timeout=60)
        time.sleep(0.3)
        self.assertEqual(positions(col_all.events()), list(range(30)))
        evs = col_st.wait_events(30, timeout=60)
        self.assertEqual([e.stream_version for e in evs], list(range(30)))
        self.assertIsNone(col_all.error)
        self.assertIsNone(col_st.error)
        self.assertEqual(col_all.items.count("caught_up"), 1)
        col_all.cancel()
        col_st.cancel()

    def test_live_without_a_single_publish(self):
        # The feed's publish socket reaches nobody here, as when every
        # batch is published before it (re)connects (appends right after
        # stored restarts): the subscribers, parked on a ring that has
        # never seen a batch, still get what is appended, from stored.
        nowhere = "ipc://%s/nobody-publishes-here.sock" % self.cl.dir
        cl = h.Cluster(gw_args=["--events-url", nowhere])
        try:
            c = cl.client()
            sid = h.new_id()
            head = c.append(sid, h.no_stream(),
                            h.events(3)).first_global_position
            col_all = Collector(c.subscribe_all(head))
            col_st = Collector(c.subscribe_stream(sid, 0))
            col_all.wait(lambda it: "caught_up" in it, what="caught_up")
            col_st.wait(lambda it: "caught_up" in it, what="caught_up")
            for v in range(2, 7):
                c.append(sid, h.exact(v), h.events(1))
            evs = col_all.wait_events(8, timeout=30)
            self.assertEqual(positions(evs), list(range(head, head + 8)))
            evs = col_st.wait_events(8, timeout=30)
            self.assertEqual([e.stream_version for e in evs],
                             list(range(8)))
            col_all.cancel()
            col_st.cancel()
        finally:
            cl.close()

if __name__ == "__main__":
    h.main()
