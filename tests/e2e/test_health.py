#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# test_health.py - grpc.health.v1.Health (Check, Watch) and its
# transitions as eventfold-stored goes away and comes back; UNAVAILABLE;
# the Prometheus /metrics scrape; SIGTERM (NOT_SERVING, streams end
# cleanly, exit 0); the listener guards (unix: lock file, no
# SO_REUSEPORT); EventfoldDB's environment variables; --help and -n.
import os
import queue
import signal
import subprocess
import threading
import time

import grpc

import efharness as h

C = grpc.StatusCode


class Watcher(h.StreamThread):
    """The statuses of a Watch stream in a queue, None at its end."""

    def __init__(self, call):
        self.q = queue.Queue()
        self.end = None
        super().__init__(call)

    def on_message(self, i, m):
        self.q.put(m.status)

    def on_end(self, error):
        self.end = "ok" if error is None else error.code()
        self.q.put(None)

    def next(self, timeout=20):
        return self.q.get(timeout=timeout)

    def until(self, status, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no status %d" % status)
            s = self.q.get(timeout=left)
            if s == status:
                return
            if s is None:
                raise AssertionError("watch ended: %r" % self.end)


class HealthTest(h.FreshClusterCase):
    def test_check_services(self):
        self.assertEqual(self.c.check(""), h.SERVING)
        self.assertEqual(self.c.check("eventfold.EventStore"), h.SERVING)
        with self.assertRaises(grpc.RpcError) as cm:
            self.c.check("no.such.Service")
        self.assertEqual(cm.exception.code(), C.NOT_FOUND)
        w = Watcher(self.c.watch("no.such.Service"))
        self.assertEqual(w.next(), h.SERVICE_UNKNOWN)
        w.call.cancel()

    def test_transitions_when_stored_goes_and_comes_back(self):
        w = Watcher(self.c.watch(""))
        self.assertEqual(w.next(), h.SERVING)
        self.cl.stop_stored()
        w.until(h.NOT_SERVING)
        self.assertEqual(self.c.check(), h.NOT_SERVING)
        for fn in (lambda: self.c.append(h.new_id(), h.any_(), h.events(1)),
                   lambda: self.c.read_all(0, 10),
                   lambda: self.c.read_stream(h.new_id()),
                   lambda: self.c.list_streams()):
            with self.assertRaises(grpc.RpcError) as cm:
                fn()
            self.assertEqual(cm.exception.code(), C.UNAVAILABLE)
        col = self.c.subscribe_all(0)
        with self.assertRaises(grpc.RpcError) as cm:
            next(iter(col))
        self.assertEqual(cm.exception.code(), C.UNAVAILABLE)
        self.cl.start_stored()
        w.until(h.SERVING)
        self.c.append(h.new_id(), h.any_(), h.events(1))
        w.call.cancel()

    def test_metrics_scrape(self):
        text = self.cl.metrics()
        for name in ("eventfold_appends_total", "eventfold_events_total",
                     'eventfold_append_duration_seconds{quantile="0.5"}',
                     "eventfold_append_duration_seconds_count",
                     "eventfold_append_latency_seconds_bucket",
                     'eventfold_reads_total{rpc="read_stream"}',
                     'eventfold_reads_total{rpc="read_all"}',
                     "eventfold_subscriptions_active",
                     "eventfold_global_position", "eventfold_streams_total",
                     "eventfold_log_bytes", "eventfold_fsyncs_total",
                     "eventfold_batch_size_events",
                     "eventfold_subscriber_lag_events",
                     "eventfold_segments", "eventfold_index_lag_events",
                     "eventfold_archived_segments",
                     "eventfold_archived_bytes",
                     "eventfold_archive_cache_hits_total",
                     "eventfold_archive_cache_misses_total",
                     "eventfold_archive_cache_bytes"):
            self.assertIn("\n" + name, "\n" + text, name)
        self.assertEqual(self.cl.metric("eventfold_appends_total"), 0)
        sids = [h.new_id() for _ in range(3)]
        for i, sid in enumerate(sids):
            self.c.append(sid, h.no_stream(), h.events(i + 1))
        with self.assertRaises(grpc.RpcError):
            self.c.append(sids[0], h.no_stream(), h.events(1))
        self.c.read_stream(sids[0])
        self.c.read_all()
        self.c.read_all()
        self.assertEqual(self.cl.metric("eventfold_appends_total"), 3)
        self.assertEqual(self.cl.metric("eventfold_events_total"), 6)
        self.assertEqual(self.cl.metric(
            'eventfold_reads_total{rpc="read_stream"}'), 1)
        self.assertEqual(self.cl.metric(
            'eventfold_reads_total{rpc="read_all"}'), 2)
        self.assertEqual(self.cl.metric(
            "eventfold_append_duration_seconds_count"), 3)
        self.assertEqual(self.cl.metric("eventfold_global_position"), 6)
        h.wait_for(lambda: self.cl.metric("eventfold_streams_total") == 3,
                   what="streams_total 3")
        h.wait_for(lambda: self.cl.metric("eventfold_log_bytes") > 0,
                   what="log_bytes")
        sub = self.c.subscribe_all(0)
        it = iter(sub)
        next(it)
        h.wait_for(lambda: self.cl.metric(
            "eventfold_subscriptions_active") == 1, what="one subscription")
        sub.cancel()
        h.wait_for(lambda: self.cl.metric(
            "eventfold_subscriptions_active") == 0, what="none")

    def test_sigterm_ends_cleanly(self):
        w = Watcher(self.c.watch(""))
        self.assertEqual(w.next(), h.SERVING)
        sub = self.c.subscribe_all(0)
        got = []

        def read():
            try:
                for m in sub:
                    got.append(m)
                got.append("end-ok")
            except grpc.RpcError as e:
                got.append(e.code())
        t = threading.Thread(target=read, daemon=True)
        t.start()
        h.wait_for(lambda: got, what="caught_up")
        rc = self.cl.stop_gateway(signal.SIGTERM)
        self.assertEqual(rc, 0)
        t.join(10)
        self.assertEqual(got[-1], "end-ok")
        statuses = []
        while True:
            s = w.q.get(timeout=10)
            if s is None:
                break
            statuses.append(s)
        self.assertIn(h.NOT_SERVING, statuses)
        self.assertEqual(w.end, "ok")
        self.assertIn("stopped", self.cl.log("gatewayd"))

    def test_listener_guards(self):
        # a second gateway cannot take the same TCP port (no SO_REUSEPORT)
        other = subprocess.run(
            [h.GATEWAYD, "-d", "-f", self.cl.conf, "--runtime-dir",
             self.cl.run, "--listen", self.cl.addr, "--metrics-listen", ""],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        self.assertNotEqual(other.returncode, 0)
        self.assertEqual(self.c.check(), h.SERVING)
        # unix: path, guarded by a lock file against a second gateway
        path = os.path.join(self.cl.dir, "gw.sock")
        first = subprocess.Popen(
            [h.GATEWAYD, "-d", "-f", self.cl.conf, "--runtime-dir",
             self.cl.run, "--listen", "unix:" + path, "--metrics-listen",
             ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            h.wait_for(lambda: os.path.exists(path), what="unix socket")
            uc = h.Client(self.cl.channel_to("unix:" + path))
            h.wait_for(lambda: uc.check(timeout=2) == h.SERVING,
                       what="unix SERVING")
            second = subprocess.run(
                [h.GATEWAYD, "-d", "-f", self.cl.conf, "--runtime-dir",
                 self.cl.run, "--listen", "unix:" + path,
                 "--metrics-listen", ""], stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, timeout=30)
            self.assertNotEqual(second.returncode, 0)
            self.assertIn(b"in use", second.stdout)
            self.assertEqual(uc.check(timeout=5), h.SERVING)
            uc.append(h.new_id(), h.any_(), h.events(1))
            uc.channel.close()
        finally:
            first.terminate()
            self.assertEqual(first.wait(30), 0)

    def test_environment_overrides(self):
        port = h.free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("EVENTFOLD_")}
        env["EVENTFOLD_LISTEN"] = "127.0.0.1:%d" % port
        env["EVENTFOLD_METRICS_LISTEN"] = ""
        p = subprocess.Popen(
            [h.GATEWAYD, "-d", "-f", self.cl.conf, "--runtime-dir",
             self.cl.run], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            h.wait_port(port)
            c = h.Client(self.cl.channel_to("127.0.0.1:%d" % port))
            h.wait_for(lambda: c.check(timeout=2) == h.SERVING,
                       what="SERVING on EVENTFOLD_LISTEN")
            c.channel.close()
        finally:
            p.terminate()
            self.assertEqual(p.wait(30), 0)
        # flags win over the environment
        out = subprocess.run(
            [h.GATEWAYD, "-nv", "-f", self.cl.conf, "--listen", "unix:/x"],
            env=env, stdout=subprocess.PIPE, check=True).stdout.decode()
        self.assertIn("listen = unix:/x", out)
        self.assertIn("metrics_listen = \n", out)

    def test_help_lists_every_key(self):
        out = subprocess.run([h.GATEWAYD, "--help"], stdout=subprocess.PIPE,
                             check=True).stdout.decode()
        for key in ("--data-dir", "--runtime-dir", "--listen",
                    "--metrics-listen", "--tls-cert", "--tls-key",
                    "--tls-ca", "--jwt-secret", "--threads", "--slots",
                    "--max-request-bytes", "--max-response-bytes",
                    "--store-timeout-ms", "(default [::]:2113)"):
            self.assertIn(key, out)
        bad = os.path.join(self.cl.dir, "bad.conf")
        with open(bad, "w") as f:
            f.write("[gatewayd]\nthreads = many\nbogus = 1\n")
        r = subprocess.run([h.GATEWAYD, "-n", "-f", bad],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"bad.conf:2:", r.stderr)
        self.assertIn(b"bad.conf:3:", r.stderr)


if __name__ == "__main__":
    h.main()
