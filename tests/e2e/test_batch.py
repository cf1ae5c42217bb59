#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# test_batch.py - Appends that the gateway coalesces into APPEND_MANY
# messages (daemons/gatewayd/batch.c) keep every per-append rule, end to
# end: many concurrent callers each get their own result (positions that
# hold their own events); a conflicting exact(n) among good appends fails
# alone; racing exact(n) appends on one stream get one winner per version
# and contiguous versions; identical retries sent together are written
# once; and kill -9 of eventfold-stored while messages are in flight
# gives each caller its own result or UNAVAILABLE, never another's.
# The metric eventfold_append_messages_total shows that messages did
# carry several Appends.
import threading
import time

import grpc

import efharness as h
from efharness import pb

C = grpc.StatusCode


def fire(client, reqs, timeout=20):
    """Sends every request at once (futures); [(response|None, code)]."""
    futs = [client._append.future(r, timeout=timeout) for r in reqs]
    out = []
    for f in futs:
        try:
            out.append((f.result(), C.OK))
        except grpc.RpcError as e:
            out.append((None, e.code()))
    return out


def req(stream, expected, evs):
    return pb.AppendRequest(stream_id=stream, expected_version=expected,
                            events=evs)


class BatchTest(h.ClusterCase):
    WAIT_SERVING = True

    def check_own(self, reqs, res):
        """Every OK result's positions hold that request's events."""
        for r, (rep, code) in zip(reqs, res):
            if code != C.OK:
                continue
            got = self.c.read_all(rep.first_global_position, len(r.events))
            self.assertEqual([e.event_id for e in got],
                             [e.event_id for e in r.events])
            self.assertEqual(got[0].stream_id, r.stream_id)
            self.assertEqual(got[0].stream_version, rep.first_stream_version)

    def test_concurrent_callers_get_their_own_results(self):
        before_msgs = self.cl.metric("eventfold_append_messages_total")
        before_app = self.cl.metric("eventfold_appends_total")
        streams = [h.new_id() for _ in range(32)]
        results = {}
        errors = []

        def worker(i):
            last = -1  # the stream's last version
            try:
                for k in range(20):
                    evs = h.events(1 + (k % 3), etype="W%d" % i)
                    r = self.c.append(streams[i], h.exact(last)
                                      if last >= 0 else h.no_stream(), evs)
                    last += len(evs)
                    results[(i, k)] = (evs, r)
            except Exception as e:  # reported by the main thread
                errors.append(repr(e))

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        for i in range(32):
            got = self.c.read_stream(streams[i])
            want = []
            for k in range(20):
                evs, r = results[(i, k)]
                self.assertEqual(r.first_stream_version, len(want))
                self.assertEqual(got[len(want)].global_position,
                                 r.first_global_position)
                want += [e.event_id for e in evs]
            self.assertEqual([e.event_id for e in got], want)
        msgs = self.cl.metric("eventfold_append_messages_total") - before_msgs
        apps = self.cl.metric("eventfold_appends_total") - before_app
        self.assertEqual(apps, 32 * 20)
        print("# %d appends in %d messages to stored" % (apps, msgs))
        self.assertLess(msgs, apps, "no message carried two appends")

    def test_conflict_in_a_coalesced_message_fails_alone(self):
        s = h.new_id()
        self.c.append(s, h.no_stream(), h.events(1))
        reqs = []
        for k in range(40):
            if k == 17:
                reqs.append(req(s, h.exact(5), h.events(1)))  # conflict
            else:
                reqs.append(req(h.new_id(), h.no_stream(), h.events(2)))
        res = fire(self.c, reqs)
        for k, (rep, code) in enumerate(res):
            self.assertEqual(code, C.FAILED_PRECONDITION if k == 17 else
                             C.OK, "append %d" % k)
        self.check_own(reqs, res)
        self.assertEqual(len(self.c.read_stream(s)), 1)

    def test_racing_exact_one_winner_per_version(self):
        s = h.new_id()
        self.c.append(s, h.no_stream(), h.events(1))
        for v in range(10):
            reqs = [req(s, h.exact(v), h.events(1)) for _ in range(16)]
            res = fire(self.c, reqs)
            wins = [k for k, (_, code) in enumerate(res) if code == C.OK]
            self.assertEqual(len(wins), 1, "version %d" % v)
            self.assertEqual(res[wins[0]][0].first_stream_version, v + 1)
            for k, (_, code) in enumerate(res):
                if k not in wins:
                    self.assertEqual(code, C.FAILED_PRECONDITION)
            self.check_own(reqs, res)
        got = self.c.read_stream(s)
        self.assertEqual([e.stream_version for e in got], list(range(11)))

    def test_same_stream_any_in_arrival_order_contiguous(self):
        s = h.new_id()
        reqs = [req(s, h.any_(), h.events(3)) for _ in range(30)]
        res = fire(self.c, reqs)
        self.assertTrue(all(code == C.OK for _, code in res))
        self.check_own(reqs, res)
        got = self.c.read_stream(s)
        self.assertEqual(len(got), 90)
        vers = sorted(rep.first_stream_version for rep, _ in res)
        self.assertEqual(vers, list(range(0, 90, 3)))

    def test_identical_retries_together_written_once(self):
        s = h.new_id()
        evs = h.events(3)
        reqs = [req(s, h.no_stream(), evs) for _ in range(24)]
        res = fire(self.c, reqs)
        firsts = {(rep.first_global_position, rep.last_global_position)
                  for rep, code in res if code == C.OK}
        self.assertTrue(all(code == C.OK for _, code in res))
        self.assertEqual(len(firsts), 1)
        self.assertEqual(len(self.c.read_stream(s)), 3)
        # a reused id among them is refused alone
        bad = req(s, h.any_(), [pb.ProposedEvent(event_id=evs[0].event_id,
                                                 event_type="Other",
                                                 payload=b"{}")])
        res = fire(self.c, [req(s, h.no_stream(), evs), bad,
                            req(s, h.exact(2), h.events(1))])
        self.assertEqual([code for _, code in res],
                         [C.OK, C.ALREADY_EXISTS, C.OK])
        self.assertEqual(len(self.c.read_stream(s)), 4)

    def test_stored_restart_under_coalesced_appends(self):
        stop = threading.Event()
        outcomes = []
        lock = threading.Lock()

        def worker():
            c = self.cl.client()
            while not stop.is_set():
                r = req(h.new_id(), h.any_(), h.events(2))
                try:
                    rep = c.append_raw(r, timeout=5)
                    code = C.OK
                except grpc.RpcError as e:
                    rep, code = None, e.code()
                with lock:
                    outcomes.append((r, rep, code))

        ts = [threading.Thread(target=worker) for _ in range(16)]
        for t in ts:
            t.start()
        try:
            for _ in range(3):
                time.sleep(0.4)
                self.cl.stop_stored()
                time.sleep(0.1)
                self.cl.start_stored()
            time.sleep(0.5)
        finally:
            stop.set()
            for t in ts:
                t.join()
        self.cl.wait_serving(self.c)
        codes = {}
        for _, _, code in outcomes:
            codes[code] = codes.get(code, 0) + 1
        print("# outcomes across 3 restarts: %s" %
              {k.name: v for k, v in codes.items()})
        self.assertTrue(set(codes) <= {C.OK, C.UNAVAILABLE},
                        "unexpected codes %s" % codes)
        self.assertGreater(codes.get(C.OK, 0), 0)
        self.check_own([o[0] for o in outcomes],
                       [(o[1], o[2]) for o in outcomes])
        # and after: appends work
        self.c.append(h.new_id(), h.no_stream(), h.events(1))


if __name__ == "__main__":
    h.main()
