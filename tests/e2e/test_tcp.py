# SPDX-License-Identifier: MIT
#
# test_tcp.py - the daemons on tcp:// instead of unix sockets, as on
# separate hosts: stored serves store_url and events_url on 127.0.0.1
# ports, runnerd reaches it there and serves runner_url on a port, and
# the gateway dials all three. No unix socket is created. Appends, reads,
# a live subscription (stored's publish socket over tcp), Execute and a
# projection following the log all work; after stored restarts on the
# same URLs, the gateway and runnerd reconnect by themselves.
import json
import os
import signal
import threading
import unittest

import efharness as h


class TcpTest(unittest.TestCase):
    def setUp(self):
        self.store = h.tcp_url()
        self.events = h.tcp_url()
        self.runner = h.tcp_url()
        self.cl = h.Cluster(start=False, gw_args=[
            "--store-url", self.store, "--events-url", self.events,
            "--runner-url", self.runner])
        # also when setUp fails (tearDown would not run): no daemon is
        # left behind
        self.addCleanup(self.cl.close)
        self.cl.start_stored(args=["--store-url", self.store,
                                   "--events-url", self.events])
        self.cl.start_runnerd(args=["--store-url", self.store,
                                    "--events-url", self.events,
                                    "--runner-url", self.runner])
        self.cl.start_gateway()
        self.c = self.cl.client()

    def execute(self, inst, title):
        req = h.rpb.ExecuteRequest(
            aggregate_type="todo", instance_id=inst, command_type="Add",
            payload=json.dumps({"title": title}).encode(),
            command_id=h.new_id())
        return h.wait_for(lambda: self.c.runner(
            "Execute", req, h.rpb.ExecuteResponse, timeout=10),
            what="Execute over tcp")

    def item(self, key, at):
        r = self.c.runner("Query", h.rpb.QueryRequest(
            projection="todo_list", key=key.encode(), min_position=at,
            wait_ms=20000), h.rpb.QueryResponse, timeout=30)
        return [json.loads(i.value) for i in r.items]

    def round_trip(self, tag):
        sid = h.new_id()
        sub = self.c.subscribe_stream(sid, timeout=30)
        got = []

        def read_sub():
            for m in sub:
                if m.HasField("event"):
                    got.append(m.event)
                    return
        t = threading.Thread(target=read_sub, daemon=True)
        t.start()
        r = self.c.append(sid, h.no_stream(), h.events(3))
        self.assertEqual(r.last_stream_version, 2)
        self.assertEqual(len(self.c.read_stream(sid)), 3)
        t.join(20)
        sub.cancel()
        self.assertEqual(len(got), 1, "no live event over tcp")
        e = self.execute("t-" + tag, tag)
        self.assertEqual(e.event_count, 1)
        self.assertEqual(self.item("t-" + tag, e.last_position),
                         [{"title": tag, "completed": False}])

    def test_over_tcp_and_after_a_stored_restart(self):
        self.assertFalse(os.path.exists(os.path.join(self.cl.run,
                                                     "store.sock")))
        self.assertFalse(os.path.exists(os.path.join(self.cl.run,
                                                     "runner.sock")))
        self.round_trip("one")
        self.cl.stop_stored(signal.SIGTERM)
        self.cl.start_stored(args=["--store-url", self.store,
                                   "--events-url", self.events])
        self.cl.wait_serving(self.c)
        self.round_trip("two")
        for name in ("gatewayd", "runnerd"):
            self.assertIn("tcp://127.0.0.1", self.cl.log(name))


if __name__ == "__main__":
    h.main()
