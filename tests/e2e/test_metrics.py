#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# test_metrics.py - /metrics as EventfoldDB's dashboards read it, against
# real daemons: eventfold_append_duration_seconds is a summary (quantile
# lines, _sum, _count) with the histogram kept under
# eventfold_append_latency_seconds; appends_total and events_total count
# the appends that wrote, for the whole store (two gateways on one
# stored, replays and refusals not counted); the gauges are current
# right after an Append returns (the health poll is made slow here, so
# only the scrape's own question to stored can make them so); a metrics
# address that cannot be bound is logged and gRPC keeps serving;
# runnerd's LMDB map figures appear once runnerd answers and the growth
# counter moves when its (64 KiB) map fills.
import json
import os
import socket
import subprocess
import unittest

import grpc

import efharness as h

QUANTILES = ("0", "0.5", "0.9", "0.95", "0.99", "0.999", "1")


def parse(text):
    """{name_with_labels: value} and {name: type} of a scrape."""
    vals, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split()
            types[name] = typ
        elif line and not line.startswith("#"):
            name, v = line.rsplit(" ", 1)
            vals[name] = float(v)
    return vals, types


def start_gateway(cl, port, mport, extra=()):
    """One more eventfold-gatewayd on cl's stored."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("EVENTFOLD_")}
    p = subprocess.Popen(
        [h.GATEWAYD, "-d", "-f", cl.conf, "--data-dir", cl.data,
         "--runtime-dir", cl.run, "--listen", "127.0.0.1:%d" % port,
         "--metrics-listen", "127.0.0.1:%d" % mport] + list(extra),
        env=env, stdout=cl._log("gatewayd2"), stderr=subprocess.STDOUT)
    h.wait_port(port)
    return p


class MetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # a health poll once a minute: nothing but the scrape refreshes
        cls.cl = h.Cluster(gw_args=["--health-interval-ms", "60000"])
        cls.c = cls.cl.client()

    @classmethod
    def tearDownClass(cls):
        cls.cl.close()

    def scrape(self, mport=None):
        if mport is None:
            return parse(self.cl.metrics())
        saved, self.cl.mport = self.cl.mport, mport
        try:
            return parse(self.cl.metrics())
        finally:
            self.cl.mport = saved

    def test_1_summary_and_histogram(self):
        v, t = self.scrape()
        self.assertEqual(t["eventfold_append_duration_seconds"], "summary")
        self.assertEqual(t["eventfold_append_latency_seconds"], "histogram")
        n0 = v["eventfold_append_duration_seconds_count"]
        for _ in range(20):
            self.c.append(h.new_id(), h.any_(), h.events(2))
        v, _ = self.scrape()
        qs = [v['eventfold_append_duration_seconds{quantile="%s"}' % q]
              for q in QUANTILES]
        self.assertEqual(qs, sorted(qs), "quantiles must not decrease")
        self.assertGreater(qs[0], 0)
        self.assertLess(qs[-1], 60)
        self.assertEqual(v["eventfold_append_duration_seconds_count"],
                         n0 + 20)
        self.assertGreaterEqual(v["eventfold_append_duration_seconds_sum"],
                                qs[-1])
        self.assertEqual(v["eventfold_append_latency_seconds_count"],
                         n0 + 20)
        self.assertEqual(
            v['eventfold_append_latency_seconds_bucket{le="+Inf"}'], n0 + 20)
        self.assertFalse(any(k.startswith(
            "eventfold_append_duration_seconds_bucket") for k in v))

    def test_2_gauges_current_after_append(self):
        for i in range(5):
            sid = h.new_id()
            r = self.c.append(sid, h.no_stream(), h.events(1 + i))
            v, _ = self.scrape()
            self.assertEqual(v["eventfold_global_position"],
                             r.last_global_position + 1)
            self.assertEqual(v["eventfold_streams_total"],
                             len(self.c.list_streams()))
            before_bytes = v["eventfold_log_bytes"]
            self.c.append(sid, h.any_(), h.events(1, payload=b"x" * 1000))
            v, _ = self.scrape()
            self.assertGreaterEqual(v["eventfold_log_bytes"],
                                    before_bytes + 1000)

    def test_3_counts_whole_store_and_only_writes(self):
        p2, m2 = h.free_port(), h.free_port()
        gw2 = start_gateway(self.cl, p2, m2,
                            ["--health-interval-ms", "60000"])
        try:
            c2 = self.cl.client_for("127.0.0.1:%d" % p2)
            h.wait_for(lambda: c2.check(timeout=2) == h.SERVING,
                       what="second gateway serving")
            v, _ = self.scrape()
            a0 = v["eventfold_appends_total"]
            e0 = v["eventfold_events_total"]
            sid = h.new_id()
            evs = h.events(3)
            self.c.append(sid, h.no_stream(), evs)        # wrote 3
            c2.append(sid, h.exact(2), h.events(2))       # wrote 2
            c2.append(sid, h.no_stream(), evs)            # replay: nothing
            self.c.append(sid, h.no_stream(), evs)        # replay: nothing
            with self.assertRaises(grpc.RpcError):        # refused
                c2.append(sid, h.exact(0), h.events(1))
            with self.assertRaises(grpc.RpcError):
                self.c.append(sid, h.any_(), [])
            for mport in (None, m2):
                v, _ = self.scrape(mport)
                self.assertEqual(v["eventfold_appends_total"], a0 + 2)
                self.assertEqual(v["eventfold_events_total"], e0 + 5)
        finally:
            gw2.terminate()
            gw2.wait(30)

    def test_4_metrics_bind_failure_keeps_grpc(self):
        busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = h.free_port()
        gw = start_gateway(self.cl, port, busy.getsockname()[1])
        try:
            c = self.cl.client_for("127.0.0.1:%d" % port)
            h.wait_for(lambda: c.check(timeout=2) == h.SERVING,
                       what="gateway serving without metrics")
            r = c.append(h.new_id(), h.no_stream(), h.events(1))
            self.assertEqual(r.first_stream_version, 0)
            self.assertIsNone(gw.poll(), "the gateway exited")
            h.wait_for(lambda: "for /metrics" in self.cl.log("gatewayd2"),
                       what="the bind failure in the log")
        finally:
            gw.terminate()
            self.assertEqual(gw.wait(30), 0)
            busy.close()

    def test_5_runner_lmdb_map(self):
        v, _ = self.scrape()
        self.assertNotIn("eventfold_runner_lmdb_map_bytes", v,
                         "runner figures shown before runnerd answered")
        self.cl.start_runnerd(args=["--map-size", "64K"])
        try:
            h.wait_for(lambda: "eventfold_runner_lmdb_map_bytes" in
                       self.scrape()[0], timeout=30,
                       what="runnerd's figures in /metrics")
            v, t = self.scrape()
            self.assertEqual(t["eventfold_runner_lmdb_map_bytes"], "gauge")
            self.assertEqual(t["eventfold_runner_lmdb_map_grows_total"],
                             "counter")
            m0 = v["eventfold_runner_lmdb_map_bytes"]
            g0 = v["eventfold_runner_lmdb_map_grows_total"]
            self.assertLess(m0, 1 << 20)
            # about 240 KiB of todo titles (each also a command result
            # and an event): a 64 KiB map must double at least twice
            last = None
            for i in range(120):
                last = self.c.runner("Execute", h.rpb.ExecuteRequest(
                    aggregate_type="todo", instance_id="m-%d" % i,
                    command_type="Add",
                    payload=json.dumps({"title": "x" * 2000}).encode(),
                    command_id=h.new_id()), h.rpb.ExecuteResponse,
                    timeout=30)
            self.c.runner("Query", h.rpb.QueryRequest(
                projection="todo_list", key=b"m-119",
                min_position=last.last_position, wait_ms=20000),
                h.rpb.QueryResponse, timeout=30)
            v, _ = self.scrape()
            self.assertGreaterEqual(v["eventfold_runner_lmdb_map_grows_total"],
                                    g0 + 2)
            self.assertGreaterEqual(v["eventfold_runner_lmdb_map_bytes"],
                                    m0 * 4)
            self.assertIn("LMDB map full: grown from",
                          self.cl.log("runnerd"))
        finally:
            self.cl.stop_runnerd()


if __name__ == "__main__":
    h.main()
