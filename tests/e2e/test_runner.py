#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# test_runner.py - the eventfold.Runner service of eventfold-gatewayd end
# to end, in front of a real eventfold-runnerd with the example plugins:
# the todo app through gRPC (Execute, then Query with min_position =
# the Execute's last position sees it: read-your-writes), GetState,
# ListProjections, an idempotent command id, every error code
# (NOT_FOUND, FAILED_PRECONDITION, INVALID_ARGUMENT, UNAVAILABLE with
# runnerd down, DEADLINE_EXCEEDED for a wait past the deadline) and JWT.
import json
import time
import unittest

import grpc

import efharness as h

C = grpc.StatusCode
rpb = h.rpb


class Runner:
    """Typed helpers over Client.runner()."""

    def __init__(self, client):
        self.c = client

    def execute(self, agg, inst, ctype, payload=None, command_id=None,
                timeout=10, **ctx):
        req = rpb.ExecuteRequest(
            aggregate_type=agg, instance_id=inst, command_type=ctype,
            payload=json.dumps(payload).encode() if payload is not None
            else b"", command_id=command_id or h.new_id(), **ctx)
        return self.c.runner("Execute", req, rpb.ExecuteResponse,
                             timeout=timeout)

    def state(self, agg, inst):
        return self.c.runner("GetState", rpb.GetStateRequest(
            aggregate_type=agg, instance_id=inst), rpb.GetStateResponse)

    def query(self, projection, timeout=10, **kw):
        return self.c.runner("Query", rpb.QueryRequest(
            projection=projection, **kw), rpb.QueryResponse,
            timeout=timeout)

    def items(self, projection, at=None, **kw):
        if at is not None:
            kw.update(min_position=at, wait_ms=20000)
        r = self.query(projection, timeout=30, **kw)
        return {i.key.decode(): i.value.decode() for i in r.items}

    def projections(self):
        return self.c.runner("ListProjections",
                             rpb.ListProjectionsRequest(),
                             rpb.ListProjectionsResponse)


class RunnerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cl = h.Cluster(start=False)
        cls.cl.start_stored()
        cls.cl.start_runnerd()
        cls.cl.start_gateway()
        cls.r = Runner(cls.cl.client())

    @classmethod
    def tearDownClass(cls):
        cls.cl.close()

    def code(self, fn, *a, **kw):
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*a, **kw)
        return cm.exception.code(), cm.exception.details()

    def wait_runner(self):
        """Until runnerd answers through the gateway."""
        h.wait_for(lambda: self.r.projections() is not None,
                   what="runnerd through the gateway")

    def test_a_todo_end_to_end(self):
        # the first test of the class: the stats start at zero
        self.wait_runner()
        r = self.r
        a = r.execute("todo", "t1", "Add", {"title": "milk"})
        self.assertEqual(a.event_count, 1)
        self.assertEqual(a.WhichOneof("stream"), "version")
        self.assertEqual(a.version, 0)
        self.assertEqual(a.first_position, a.last_position)
        self.assertFalse(a.duplicate)
        self.assertEqual(len(a.stream_id), 36)
        # read-your-writes: the Add is in the list once min_position is
        got = r.query("todo_list", key=b"t1", min_position=a.last_position,
                      wait_ms=20000, timeout=30)
        self.assertGreater(got.position, a.last_position)
        self.assertEqual(len(got.items), 1)
        self.assertEqual(json.loads(got.items[0].value),
                         {"title": "milk", "completed": False})

        b = r.execute("todo", "t2", "Add", {"title": "eggs"})
        t = r.execute("todo", "t1", "Toggle")
        self.assertEqual(t.version, 1)
        self.assertGreater(t.last_position, b.last_position)
        items = r.items("todo_list", at=t.last_position)
        self.assertEqual(json.loads(items["t1"])["completed"], True)
        self.assertEqual(json.loads(items["t2"]),
                         {"title": "eggs", "completed": False})

        d = r.execute("todo", "t2", "Delete")
        self.assertEqual(d.event_count, 1)
        items = r.items("todo_list", at=d.last_position)
        self.assertEqual(sorted(items), ["t1"])
        code, _ = self.code(r.query, "todo_list", key=b"t2",
                            min_position=d.last_position, wait_ms=20000)
        self.assertEqual(code, C.NOT_FOUND)

        stats = r.items("todo_stats", at=d.last_position)
        self.assertEqual(stats, {"created": "2", "completed": "1",
                                 "deleted": "1"})
        # the events are in the log, in the aggregate's stream
        evs = self.cl.client().read_stream(a.stream_id)
        self.assertEqual([e.event_type for e in evs], ["Added", "Toggled"])
        self.assertEqual(evs[-1].global_position, t.last_position)

    def test_query_selectors_and_paging(self):
        r = self.r
        last = None
        for i in range(5):
            last = r.execute("todo", "page-%d" % i, "Add",
                             {"title": "p%d" % i})
        got = r.items("todo_list", at=last.last_position, prefix=b"page-")
        self.assertEqual(sorted(got), ["page-%d" % i for i in range(5)])
        got = r.items("todo_list", range=rpb.KeyRange(
            start=b"page-1", end=b"page-3"))
        self.assertEqual(sorted(got), ["page-1", "page-2"])
        seen, after = [], b""
        while True:
            p = r.query("todo_list", prefix=b"page-", limit=2, after=after)
            seen += [i.key.decode() for i in p.items]
            self.assertLessEqual(len(p.items), 2)
            if not p.next:
                break
            after = p.next
        self.assertEqual(seen, ["page-%d" % i for i in range(5)])

    def test_get_state(self):
        r = self.r
        a = r.execute("todo", "gs-1", "Add", {"title": "state"})
        st = r.state("todo", "gs-1")
        self.assertEqual(st.stream_id, a.stream_id)
        self.assertEqual(st.WhichOneof("stream"), "version")
        self.assertEqual(st.version, 0)
        self.assertEqual(json.loads(st.state), {
            "title": "state", "completed": False, "deleted": False})
        none = r.state("todo", "gs-never")
        self.assertIsNone(none.WhichOneof("stream"))
        self.assertEqual(json.loads(none.state), {})
        code, _ = self.code(r.state, "no-such-type", "x")
        self.assertEqual(code, C.NOT_FOUND)

    def test_list_projections(self):
        ps = self.r.projections()
        by = {p.name: p for p in ps.projections}
        for name in ("todo_list", "todo_stats"):
            self.assertIn(name, by)
            self.assertEqual(by[name].kind, rpb.ProjectionStatus.PROJECTION)
            self.assertTrue(by[name].plugin)
            self.assertTrue(by[name].state)
        kinds = {p.kind for p in ps.projections}
        self.assertIn(rpb.ProjectionStatus.PROCESS_MANAGER, kinds)
        self.assertEqual(ps.WhichOneof("head_known"), "head")

    def test_idempotent_command_id(self):
        r = self.r
        cid = h.new_id()
        first = r.execute("todo", "idem", "Add", {"title": "once"},
                          command_id=cid)
        again = r.execute("todo", "idem", "Add", {"title": "once"},
                          command_id=cid)
        self.assertFalse(first.duplicate)
        self.assertTrue(again.duplicate)
        self.assertEqual(again.last_position, first.last_position)
        self.assertEqual(again.version, first.version)
        self.assertEqual(len(self.cl.client().read_stream(first.stream_id)),
                         1)
        # the same id for another aggregate instance is refused
        code, _ = self.code(r.execute, "todo", "idem-other", "Add",
                            {"title": "x"}, command_id=cid)
        self.assertEqual(code, C.INVALID_ARGUMENT)

    def test_errors(self):
        r = self.r
        code, msg = self.code(r.execute, "no-such-aggregate", "x", "Do")
        self.assertEqual(code, C.NOT_FOUND)
        self.assertIn("no-such-aggregate", msg)
        # rejections are FAILED_PRECONDITION with the plugin's message
        code, msg = self.code(r.execute, "todo", "never-added", "Toggle")
        self.assertEqual(code, C.FAILED_PRECONDITION)
        self.assertIn("no such todo", msg)
        r.execute("todo", "twice", "Add", {"title": "a"})
        code, msg = self.code(r.execute, "todo", "twice", "Add",
                              {"title": "a"})
        self.assertEqual((code, msg), (C.FAILED_PRECONDITION,
                                       "todo already exists"))
        # a payload that is not JSON: the plugin rejects it
        req = rpb.ExecuteRequest(aggregate_type="todo", instance_id="bad",
                                 command_type="Add", payload=b"{not json",
                                 command_id=h.new_id())
        code, msg = self.code(self.cl.client().runner, "Execute", req,
                              rpb.ExecuteResponse)
        self.assertEqual(code, C.FAILED_PRECONDITION)
        self.assertIn("title", msg)
        # what cannot be a request at all: INVALID_ARGUMENT
        for bad in (dict(aggregate_type=""), dict(instance_id=""),
                    dict(command_type=""), dict(command_id=""),
                    dict(aggregate_type="x" * 129)):
            kw = dict(aggregate_type="todo", instance_id="i",
                      command_type="Add", command_id=h.new_id())
            kw.update(bad)
            code, _ = self.code(self.cl.client().runner, "Execute",
                                rpb.ExecuteRequest(**kw),
                                rpb.ExecuteResponse)
            self.assertEqual(code, C.INVALID_ARGUMENT, bad)
        code, _ = self.code(self.cl.client().raw_unary,
                            "/eventfold.Runner/Execute", b"\xff\xff\xff")
        self.assertEqual(code, C.INVALID_ARGUMENT)
        code, _ = self.code(r.query, "todo_list", limit=10001)
        self.assertEqual(code, C.INVALID_ARGUMENT)
        code, _ = self.code(r.query, "todo_list", min_position=0,
                            wait_ms=60001)
        self.assertEqual(code, C.INVALID_ARGUMENT)
        code, _ = self.code(r.query, "no_such_projection")
        self.assertEqual(code, C.NOT_FOUND)
        code, _ = self.code(r.query, "todo_list", key=b"no-such-key")
        self.assertEqual(code, C.NOT_FOUND)

    def test_query_wait_past_deadline(self):
        r = self.r
        far = 1 << 40
        # the client's deadline bounds the wait (wait_ms 0: until then)
        t0 = time.monotonic()
        code, _ = self.code(r.query, "todo_list", min_position=far,
                            timeout=1.0)
        self.assertEqual(code, C.DEADLINE_EXCEEDED)
        # a shorter wait_ms: runnerd gives up first, same code
        code, msg = self.code(r.query, "todo_list", min_position=far,
                              wait_ms=200, timeout=30)
        self.assertEqual(code, C.DEADLINE_EXCEEDED)
        self.assertIn("not yet position", msg)
        self.assertLess(time.monotonic() - t0, 25)
        # a wait_ms longer than the deadline is cut to the deadline
        code, _ = self.code(r.query, "todo_list", min_position=far,
                            wait_ms=60000, timeout=0.5)
        self.assertEqual(code, C.DEADLINE_EXCEEDED)
        # the gateway still answers afterwards
        self.assertIsNotNone(r.query("todo_list", limit=1))

    def test_z_runnerd_down(self):
        # last of the class: stops and restarts runnerd
        r = self.r
        self.cl.stop_runnerd()
        code, msg = self.code(r.execute, "todo", "down", "Add",
                              {"title": "x"})
        self.assertEqual(code, C.UNAVAILABLE)
        self.assertIn("runnerd", msg)
        for fn in (lambda: r.query("todo_list"),
                   lambda: r.state("todo", "down"), r.projections):
            code, _ = self.code(fn)
            self.assertEqual(code, C.UNAVAILABLE)
        # the EventStore service does not depend on runnerd
        self.cl.client().append(h.new_id(), h.any_(), h.events(1))
        self.cl.start_runnerd()
        self.wait_runner()
        a = r.execute("todo", "back", "Add", {"title": "again"})
        self.assertIn("back", r.items("todo_list", at=a.last_position))


class RunnerJwtTest(unittest.TestCase):
    SECRET = "runner-secret"

    @classmethod
    def setUpClass(cls):
        cls.cl = h.Cluster(gw_args=["--jwt-secret", cls.SECRET])

    @classmethod
    def tearDownClass(cls):
        cls.cl.close()

    def test_token_required(self):
        r = Runner(self.cl.client())
        for fn in (lambda: r.execute("todo", "j", "Add", {"title": "x"}),
                   lambda: r.query("todo_list"), r.projections,
                   lambda: r.state("todo", "j")):
            with self.assertRaises(grpc.RpcError) as cm:
                fn()
            self.assertEqual(cm.exception.code(), C.UNAUTHENTICATED)
        # with a valid token the call gets through to the (absent) runner
        from test_security import jwt
        tok = jwt(self.SECRET, {"sub": "t", "exp": int(time.time()) + 600})
        r = Runner(self.cl.client(metadata=[("authorization",
                                             "Bearer " + tok)]))
        with self.assertRaises(grpc.RpcError) as cm:
            r.projections()
        self.assertEqual(cm.exception.code(), C.UNAVAILABLE)


if __name__ == "__main__":
    h.main()
