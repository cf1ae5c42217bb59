#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# test_status.py - every row of EventfoldDB's status table
# (../shared/formats/eventfolddb.md) through a real eventfold-gatewayd in
# front of a real eventfold-stored: the same gRPC code and the same
# message text, byte for byte where EventfoldDB's text is fixed, the
# fixed prefix where it carries a library's detail. Then the order in
# which Append checks (the first failing check names the status), and
# string fields with a NUL byte, refused in every method, never cut
# short (metadata and payload are bytes: NUL there is data).
import time

import grpc

import efharness as h
from efharness import pb

C = grpc.StatusCode


status = h.rpc_status


class StatusTest(h.ClusterCase):

    def ev(self, eid=None, etype="T", metadata=b"", payload=b"{}"):
        return pb.ProposedEvent(event_id=eid or h.new_id(), event_type=etype,
                                metadata=metadata, payload=payload)

    def test_wrong_expected_version(self):
        sid = h.new_id()
        self.c.append(sid, h.no_stream(), h.events(3))
        cases = [
            (sid, h.exact(5), "wrong expected version: expected 5, actual 2"),
            (sid, h.exact(0), "wrong expected version: expected 0, actual 2"),
            (sid, h.no_stream(),
             "wrong expected version: expected NoStream, actual 2"),
            (h.new_id(), h.exact(0),
             "wrong expected version: expected 0, actual NoStream"),
        ]
        for s, exp, text in cases:
            self.assertEqual(status(self.c.append, s, exp, h.events(1)),
                             (C.FAILED_PRECONDITION, text))

    def test_unknown_stream(self):
        sid = h.new_id()
        # a stream id in another spelling: the message has the canonical one
        for spelling in (sid, sid.upper(), "{" + sid + "}"):
            self.assertEqual(status(self.c.read_stream, spelling),
                             (C.NOT_FOUND, "stream not found: " + sid))

    def test_invalid_stream_id(self):
        for bad in ("not-a-uuid", "", "1234"):
            for fn, a in ((self.c.append, (bad, h.any_(), h.events(1))),
                          (self.c.read_stream, (bad,))):
                code, msg = status(fn, *a)
                self.assertEqual(code, C.INVALID_ARGUMENT, bad)
                self.assertTrue(msg.startswith("invalid stream_id: ") and
                                len(msg) > len("invalid stream_id: "), msg)
        it = self.c.subscribe_stream("nope", 0, timeout=10)
        code, msg = status(lambda: next(iter(it)))
        self.assertEqual(code, C.INVALID_ARGUMENT)
        self.assertTrue(msg.startswith("invalid stream_id: "), msg)

    def test_invalid_event_id(self):
        code, msg = status(self.c.append, h.new_id(), h.any_(),
                           [self.ev(), self.ev("bad-id")])
        self.assertEqual(code, C.INVALID_ARGUMENT)
        self.assertTrue(msg.startswith("invalid event_id: ") and
                        len(msg) > len("invalid event_id: "), msg)

    def test_no_events(self):
        self.assertEqual(status(self.c.append, h.new_id(), h.any_(), []),
                         (C.INVALID_ARGUMENT, "events must not be empty"))

    def test_expected_version_required(self):
        self.assertEqual(status(self.c.append_raw, pb.AppendRequest(
            stream_id=h.new_id(), events=h.events(1))),
            (C.INVALID_ARGUMENT, "expected_version is required"))
        self.assertEqual(status(self.c.append, h.new_id(),
                                pb.ExpectedVersion(), h.events(1)),
                         (C.INVALID_ARGUMENT,
                          "expected_version.kind is required"))

    def test_duplicate_event_id(self):
        a, b = h.new_id(), h.new_id()
        # the id named is the first that repeats, in the canonical spelling
        evs = [self.ev(b), self.ev(a), self.ev(a.upper()), self.ev(b)]
        self.assertEqual(status(self.c.append, h.new_id(), h.any_(), evs),
                         (C.INVALID_ARGUMENT,
                          "duplicate event_id %s within batch" % a))

    def test_event_type(self):
        sid = h.new_id()
        self.assertEqual(status(self.c.append, sid, h.any_(),
                                [self.ev(), self.ev(etype="")]),
                         (C.INVALID_ARGUMENT, "event type must not be empty"))
        self.assertEqual(status(self.c.append, sid, h.any_(),
                                [self.ev(etype="x" * 257)]),
                         (C.INVALID_ARGUMENT,
                          "event type exceeds 256 byte limit: 257 bytes"))
        # bytes, not characters: 129 two-byte characters are 258 bytes
        self.assertEqual(status(self.c.append, sid, h.any_(),
                                [self.ev(etype="\u00e9" * 129)]),
                         (C.INVALID_ARGUMENT,
                          "event type exceeds 256 byte limit: 258 bytes"))
        self.c.append(sid, h.any_(), [self.ev(etype="x" * 256)])

    def test_event_too_large(self):
        sid = h.new_id()
        # EventfoldDB's record: 74 bytes + type + metadata + payload
        for meta, pay in ((b"", b"p" * 65462), (b"m" * 100, b"p" * 65362)):
            self.assertEqual(status(self.c.append, sid, h.any_(),
                                    [self.ev(metadata=meta, payload=pay)]),
                             (C.INVALID_ARGUMENT, "event too large: 65537 "
                              "bytes exceeds 65536 byte limit"))
        self.assertEqual(status(self.c.append, sid, h.any_(),
                                [self.ev(payload=b"p" * 70000)]),
                         (C.INVALID_ARGUMENT, "event too large: 70075 "
                          "bytes exceeds 65536 byte limit"))
        # one byte less is EventfoldDB's largest event, and ours
        big = b"q" * 65461
        r = self.c.append(sid, h.any_(), [self.ev(payload=big)])
        got = self.c.read_all(r.first_global_position, 1)
        self.assertEqual(got[0].payload, big)

    def test_append_check_order(self):
        """Two faults at once: the earlier check of the contract wins."""
        sid = h.new_id()
        self.c.append(sid, h.no_stream(), h.events(1))
        e = self.ev()
        steps = [
            (pb.AppendRequest(stream_id="x", events=[]),
             "invalid stream_id: "),
            (pb.AppendRequest(stream_id=sid, events=[]),
             "expected_version is required"),
            (pb.AppendRequest(stream_id=sid, events=[],
                              expected_version=pb.ExpectedVersion()),
             "expected_version.kind is required"),
            (pb.AppendRequest(stream_id=sid, events=[],
                              expected_version=h.exact(9)),
             "events must not be empty"),
            (pb.AppendRequest(stream_id=sid, events=[e, e, self.ev("z")],
                              expected_version=h.exact(9)),
             "invalid event_id: "),
            (pb.AppendRequest(stream_id=sid, events=[e, e],
                              expected_version=h.exact(9)),
             "duplicate event_id"),
            (pb.AppendRequest(stream_id=sid, events=[self.ev(etype="")],
                              expected_version=h.exact(9)),
             "wrong expected version: expected 9, actual 0"),
            (pb.AppendRequest(stream_id=sid, events=[
                self.ev(payload=b"p" * 70000), self.ev(etype="")],
                expected_version=h.exact(0)),
             "event too large: "),
        ]
        for req, prefix in steps:
            code, msg = status(self.c.append_raw, req)
            self.assertEqual(code, C.FAILED_PRECONDITION if
                             prefix.startswith("wrong") else
                             C.INVALID_ARGUMENT, msg)
            self.assertTrue(msg.startswith(prefix), (prefix, msg))
        # an idempotent retry comes before the version check
        evs = h.events(2)
        r = self.c.append(sid, h.exact(0), evs)
        r2 = self.c.append(sid, h.exact(0), evs)
        self.assertEqual(r.first_global_position, r2.first_global_position)
        self.assertEqual(len(self.c.read_stream(sid)), 3)


class NulTest(h.ClusterCase):
    """A NUL byte in a string field is refused, never cut short."""

    NUL_MSG = ": a string must not contain a NUL byte"

    def head(self):
        evs = self.c.read_all(0, 100000)
        return len(evs)

    def test_append_fields(self):
        sid = h.new_id()
        before = self.head()
        ok = pb.ProposedEvent(event_id=h.new_id(), event_type="Order")
        cases = [
            (sid + "\x00", [ok], "stream_id"),
            (sid, [ok, pb.ProposedEvent(event_id=h.new_id(),
                                        event_type="Order\x00Placed")],
             "events[1].event_type"),
            (sid, [pb.ProposedEvent(event_id=h.new_id() + "\x00junk",
                                    event_type="Order")],
             "events[0].event_id"),
            (sid, [pb.ProposedEvent(event_id=h.new_id(),
                                    event_type="\x00")],
             "events[0].event_type"),
        ]
        for s, evs, field in cases:
            self.assertEqual(status(self.c.append, s, h.any_(), evs),
                             (C.INVALID_ARGUMENT, field + self.NUL_MSG))
        self.assertEqual(self.head(), before, "something was written")
        # NUL bytes in metadata and payload are data, and come back whole
        r = self.c.append(sid, h.any_(), [pb.ProposedEvent(
            event_id=h.new_id(), event_type="Order", metadata=b"a\x00b",
            payload=b"\x00\x00{}")])
        got = self.c.read_all(r.first_global_position, 1)[0]
        self.assertEqual((got.metadata, got.payload),
                         (b"a\x00b", b"\x00\x00{}"))

    def test_other_methods(self):
        sid = h.new_id()
        self.assertEqual(status(self.c.read_stream, sid + "\x00"),
                         (C.INVALID_ARGUMENT, "stream_id" + self.NUL_MSG))
        it = self.c.subscribe_stream(sid + "\x00", 0, timeout=10)
        self.assertEqual(status(lambda: next(iter(it))),
                         (C.INVALID_ARGUMENT, "stream_id" + self.NUL_MSG))
        self.assertEqual(status(self.c.check, "x\x00"),
                         (C.INVALID_ARGUMENT, "service" + self.NUL_MSG))
        # refused before runnerd is asked (none runs here: UNAVAILABLE
        # would be the answer otherwise)
        req = h.rpb.ExecuteRequest(aggregate_type="todo\x00",
                                   instance_id="a", command_type="Add",
                                   command_id=h.new_id())
        self.assertEqual(status(self.c.runner, "Execute", req,
                                h.rpb.ExecuteResponse),
                         (C.INVALID_ARGUMENT,
                          "aggregate_type" + self.NUL_MSG))
        req.aggregate_type = "todo"
        code, _ = status(self.c.runner, "Execute", req,
                         h.rpb.ExecuteResponse)
        self.assertEqual(code, C.UNAVAILABLE)


class AuthStatusTest(h.ClusterCase):
    SECRET = "status-secret"
    CLUSTER = {"gw_env": {"EVENTFOLD_JWT_SECRET": SECRET}}

    def denied(self, auth):
        # one channel, already connected, for every token
        if not hasattr(self, "ch"):
            type(self).ch = self.cl.channel()
            h.Client(self.ch).check(timeout=10)
        c = h.Client(self.ch, None if auth is None else
                     [("authorization", auth)])
        code, msg = status(c.append, h.new_id(), h.any_(), h.events(1))
        self.assertEqual(code, C.UNAUTHENTICATED, msg)
        return msg

    def token(self, secret=None, **claims):
        from test_security import jwt
        base = {"sub": "t", "exp": int(time.time()) + 600}
        base.update(claims)
        return "Bearer " + jwt(secret or self.SECRET, base)

    def test_texts(self):
        self.assertEqual(self.denied(None), "missing authorization token")
        self.assertEqual(self.denied("Basic abc"),
                         "missing authorization token")
        self.assertEqual(self.denied(self.token("wrong")), "InvalidSignature")
        self.assertEqual(self.denied(self.token(exp=int(time.time()) - 60)),
                         "ExpiredSignature")
        self.assertEqual(self.denied("Bearer not.a.jwt"), "InvalidToken")


if __name__ == "__main__":
    h.main()
