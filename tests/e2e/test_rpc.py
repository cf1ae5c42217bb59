#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# test_rpc.py - the unary eventfold.EventStore methods end to end (real
# eventfold-stored and eventfold-gatewayd, Python gRPC client): Append,
# ReadStream, ReadAll, ListStreams; every status of the contract in its
# order; idempotent retry; exact(n) races; paging; hostile input.
import threading

import grpc

import efharness as h
from efharness import pb

C = grpc.StatusCode


class RpcTest(h.ClusterCase):
    status = staticmethod(h.rpc_status)

    def test_append_then_read_stream(self):
        sid = h.new_id()
        evs = [pb.ProposedEvent(event_id=h.new_id(), event_type="Opened",
                                metadata=b"\x00\x01meta", payload=b'{"a":1}'),
               pb.ProposedEvent(event_id=h.new_id(), event_type="Closed",
                                payload=b"")]
        r = self.c.append(sid, h.no_stream(), evs)
        self.assertEqual((r.first_stream_version, r.last_stream_version),
                         (0, 1))
        self.assertEqual(r.last_global_position - r.first_global_position, 1)
        got = self.c.read_stream(sid)
        self.assertEqual(len(got), 2)
        for i, e in enumerate(got):
            self.assertEqual(e.event_id, evs[i].event_id)
            self.assertEqual(e.stream_id, sid)
            self.assertEqual(e.stream_version, i)
            self.assertEqual(e.global_position, r.first_global_position + i)
            self.assertEqual(e.event_type, evs[i].event_type)
            self.assertEqual(e.metadata, evs[i].metadata)
            self.assertEqual(e.payload, evs[i].payload)
            self.assertGreater(e.recorded_at, 1500000000000)
        r2 = self.c.append(sid, h.exact(1), h.events(1))
        self.assertEqual(r2.first_stream_version, 2)
        self.assertEqual(r2.first_global_position,
                         r.last_global_position + 1)

    def test_uuid_forms_in_and_lowercase_out(self):
        raw = h.new_id()
        sid_in = "{" + raw.upper() + "}"
        eid = h.new_id()
        eid_in = "urn:uuid:" + eid.upper()
        self.c.append(sid_in, h.any_(), [pb.ProposedEvent(
            event_id=eid_in, event_type="T")])
        got = self.c.read_stream(raw.replace("-", ""))
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].stream_id, raw)
        self.assertEqual(got[0].event_id, eid)

    def test_append_statuses_in_contract_order(self):
        sid = h.new_id()
        self.c.append(sid, h.no_stream(), h.events(3))
        bad = [pb.ProposedEvent(event_id="nope", event_type="T")]
        # 1. stream id parses (checked before everything else)
        code, msg = self.status(self.c.append_raw, pb.AppendRequest(
            stream_id="not-a-uuid", events=[]))
        self.assertEqual(code, C.INVALID_ARGUMENT)
        self.assertIn("stream_id", msg)
        # 2. expected_version set, and its kind set
        code, msg = self.status(self.c.append_raw, pb.AppendRequest(
            stream_id=sid, events=bad))
        self.assertEqual(code, C.INVALID_ARGUMENT)
        self.assertIn("expected_version", msg)
        code, msg = self.status(self.c.append, sid, pb.ExpectedVersion(),
                                bad)
        self.assertEqual(code, C.INVALID_ARGUMENT)
        self.assertIn("expected_version", msg)
        # 3. events non-empty
        code, msg = self.status(self.c.append, sid, h.exact(99), [])
        self.assertEqual(code, C.INVALID_ARGUMENT)
        # 4. every event id parses (before the version check)
        code, msg = self.status(self.c.append, sid, h.exact(99), bad)
        self.assertEqual(code, C.INVALID_ARGUMENT)
        self.assertIn("event_id", msg)
        # 5. no duplicate id in the batch
        e = h.events(1)[0]
        code, msg = self.status(self.c.append, sid, h.exact(99), [e, e])
        self.assertEqual(code, C.INVALID_ARGUMENT)
        self.assertIn("duplicate", msg)
        # 7. expected version: FAILED_PRECONDITION, exact message
        code, msg = self.status(self.c.append, sid, h.exact(5), h.events(1))
        self.assertEqual(code, C.FAILED_PRECONDITION)
        self.assertEqual(msg, "wrong expected version: expected 5, actual 2")
        code, msg = self.status(self.c.append, h.new_id(), h.exact(0),
                                h.events(1))
        self.assertEqual(code, C.FAILED_PRECONDITION)
        code, msg = self.status(self.c.append, sid, h.no_stream(),
                                h.events(1))
        self.assertEqual(code, C.FAILED_PRECONDITION)
        # version before type and size
        code, _ = self.status(self.c.append, sid, h.exact(7),
                              h.events(1, etype=""))
        self.assertEqual(code, C.FAILED_PRECONDITION)
        # 8. type non-empty, <= 256 bytes
        code, _ = self.status(self.c.append, sid, h.any_(),
                              h.events(1, etype=""))
        self.assertEqual(code, C.INVALID_ARGUMENT)
        code, _ = self.status(self.c.append, sid, h.any_(),
                              h.events(1, etype="x" * 257))
        self.assertEqual(code, C.INVALID_ARGUMENT)
        self.c.append(sid, h.any_(), h.events(1, etype="y" * 256))
        # 9. record <= 64 KiB
        code, _ = self.status(self.c.append, sid, h.any_(),
                              h.events(1, payload=b"p" * 65536))
        self.assertEqual(code, C.INVALID_ARGUMENT)
        # nothing above changed the stream but the one good append
        self.assertEqual(len(self.c.read_stream(sid)), 4)

    def test_exact_zero_differs_from_unset(self):
        sid = h.new_id()
        self.c.append(sid, h.no_stream(), h.events(1))
        r = self.c.append(sid, h.exact(0), h.events(1))
        self.assertEqual(r.first_stream_version, 1)
        code, _ = self.status(self.c.append, sid, pb.ExpectedVersion(),
                              h.events(1))
        self.assertEqual(code, C.INVALID_ARGUMENT)

    def test_idempotent_retry(self):
        sid = h.new_id()
        evs = h.events(3)
        r1 = self.c.append(sid, h.no_stream(), evs)
        head = len(self.c.read_all(0, 2**64 - 1))
        # the replay wins over the (now wrong) expected version
        r2 = self.c.append(sid, h.no_stream(), evs)
        self.assertEqual(r1, r2)
        self.assertEqual(len(self.c.read_all(0, 2**64 - 1)), head)
        self.assertEqual(len(self.c.read_stream(sid)), 3)
        # an id reused for a different event is refused
        other = [pb.ProposedEvent(event_id=evs[0].event_id, event_type="X")]
        code, _ = self.status(self.c.append, sid, h.any_(), other)
        self.assertNotEqual(code, C.OK)

    def test_concurrent_exact_races(self):
        sid = h.new_id()
        self.c.append(sid, h.no_stream(), h.events(1))
        clients = [self.cl.client() for _ in range(8)]
        for rnd in range(15):
            results = [None] * len(clients)

            def go(i):
                try:
                    clients[i].append(sid, h.exact(rnd), h.events(1))
                    results[i] = "ok"
                except grpc.RpcError as e:
                    results[i] = e.code()
            ts = [threading.Thread(target=go, args=(i,))
                  for i in range(len(clients))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            self.assertEqual(results.count("ok"), 1, results)
            self.assertEqual(results.count(C.FAILED_PRECONDITION),
                             len(clients) - 1, results)
        got = self.c.read_stream(sid)
        self.assertEqual([e.stream_version for e in got], list(range(16)))

    def test_read_all_pages_whole_events(self):
        sid = h.new_id()
        payload = b"x" * 1000
        for _ in range(10):
            self.c.append(sid, h.any_(), h.events(500, payload=payload))
        # max_count 0: empty; past the head: empty
        self.assertEqual(len(self.c.read_all(0, 0)), 0)
        self.assertEqual(len(self.c.read_all(10**12, 10)), 0)
        # the largest max_count is legal; one response stays <= 4 MiB
        first = self.c.read_all(0, 2**64 - 1)
        self.assertGreater(len(first), 0)
        self.assertLessEqual(pb.ReadAllResponse(events=first).ByteSize(),
                             4 << 20)
        # page to the end: every position once, in order, whole events
        pos, seen = 0, []
        while True:
            page = self.c.read_all(pos, 2**64 - 1)
            if not page:
                break
            seen.extend(e.global_position for e in page)
            for e in page:
                if e.stream_id == sid:
                    self.assertEqual(e.payload, payload)
            pos = page[-1].global_position + 1
        self.assertEqual(seen, list(range(len(seen))))
        self.assertGreater(len(seen), len(first))
        self.assertGreaterEqual(len(seen), 5000)
        # a small max_count is honoured exactly
        self.assertEqual(len(self.c.read_all(3, 7)), 7)
        self.assertEqual(self.c.read_all(3, 7)[0].global_position, 3)

    def test_read_stream_from_and_count(self):
        sid = h.new_id()
        self.c.append(sid, h.no_stream(), h.events(20))
        got = self.c.read_stream(sid, 5, 10)
        self.assertEqual([e.stream_version for e in got], list(range(5, 15)))
        self.assertEqual(len(self.c.read_stream(sid, 20, 10)), 0)
        self.assertEqual(len(self.c.read_stream(sid, 0, 0)), 0)
        self.assertEqual(len(self.c.read_stream(sid, 0, 2**64 - 1)), 20)

    def test_read_stream_not_found(self):
        code, _ = self.status(self.c.read_stream, h.new_id())
        self.assertEqual(code, C.NOT_FOUND)
        code, _ = self.status(self.c.read_stream, "garbage")
        self.assertEqual(code, C.INVALID_ARGUMENT)

    def test_list_streams_sorted(self):
        ids = [h.new_id() for _ in range(40)]
        for i, sid in enumerate(ids):
            self.c.append(sid, h.no_stream(), h.events(1 + i % 3))
        got = self.c.list_streams()
        names = [s.stream_id for s in got]
        self.assertEqual(names, sorted(names))
        by = {s.stream_id: s for s in got}
        for i, sid in enumerate(ids):
            self.assertEqual(by[sid].event_count, 1 + i % 3)
            self.assertEqual(by[sid].latest_version, i % 3)

    def test_malformed_protobuf_gets_status(self):
        for method in ("Append", "ReadStream", "ReadAll", "ListStreams"):
            code, _ = self.status(self.c.raw_unary,
                                  "/eventfold.EventStore/" + method,
                                  b"\xff\xff\xff\xff\x0f")
            self.assertEqual(code, C.INVALID_ARGUMENT, method)
        self.assertEqual(self.c.check(), h.SERVING)

    def test_invalid_utf8_gets_status(self):
        # AppendRequest{stream_id = "\xff\xfe"} written by hand
        code, _ = self.status(self.c.raw_unary,
                              "/eventfold.EventStore/Append",
                              b"\x0a\x02\xff\xfe")
        self.assertEqual(code, C.INVALID_ARGUMENT)
        # a valid stream id, and an event type that is not UTF-8
        ev = b"\x0a\x24" + h.new_id().encode() + b"\x12\x02\xc3\x28"
        req = (b"\x0a\x24" + h.new_id().encode() + b"\x12\x02\x0a\x00" +
               b"\x1a" + bytes([len(ev)]) + ev)
        code, _ = self.status(self.c.raw_unary,
                              "/eventfold.EventStore/Append", req)
        self.assertEqual(code, C.INVALID_ARGUMENT)
        self.assertEqual(self.c.check(), h.SERVING)

    def test_oversized_request_gets_status(self):
        big = [pb.ProposedEvent(event_id=h.new_id(), event_type="T",
                                payload=b"z" * (60 << 10))
               for _ in range(80)]
        code, _ = self.status(self.c.append, h.new_id(), h.any_(), big)
        self.assertIn(code, (C.RESOURCE_EXHAUSTED, C.INVALID_ARGUMENT))
        self.assertEqual(self.c.check(), h.SERVING)
        self.c.append(h.new_id(), h.any_(), h.events(1))

    def test_unknown_method_unimplemented(self):
        code, _ = self.status(self.c.raw_unary,
                              "/eventfold.EventStore/Frobnicate", b"",
                              timeout=10)
        self.assertEqual(code, C.UNIMPLEMENTED)
        code, _ = self.status(self.c.raw_unary, "/no.Such/Thing", b"")
        self.assertEqual(code, C.UNIMPLEMENTED)


if __name__ == "__main__":
    h.main()
