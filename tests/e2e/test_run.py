#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# test_run.py - eventfold-run, the one-process entry point, end to end:
# it starts the three real daemons configured by EventfoldDB's variables
# (EVENTFOLD_DATA, EVENTFOLD_LISTEN, EVENTFOLD_METRICS_LISTEN) and a file;
# gRPC and the runner work through it; SIGHUP reaches every daemon;
# SIGTERM stops all and exits 0 with the data kept; a daemon killed
# makes it stop the others and exit with that daemon's status; an
# EventfoldDB data file in EVENTFOLD_DATA ends it with stored's status
# and the import command.
import os
import re
import signal
import struct
import subprocess
import tempfile
import shutil
import time
import unittest

import grpc

import efharness as h

RUN = os.path.join(h.BUILD, "clients", "eventfold-run", "eventfold-run")
PATH = os.pathsep.join(os.path.join(h.BUILD, "daemons", d)
                       for d in ("stored", "runnerd", "gatewayd"))


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of ours would still answer; eventfold-run reaps its own
    with open("/proc/%d/stat" % pid) as f:
        return f.read().split()[2] != "Z"


class RunTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ef-run-")
        self.data = os.path.join(self.dir, "data")
        self.rundir = os.path.join(self.dir, "run")
        self.conf = os.path.join(self.dir, "eventfold.conf")
        with open(self.conf, "w") as f:
            f.write("[global]\nruntime_dir = %s\n[runnerd]\nplugin_dir = %s\n"
                    "[gatewayd]\nhealth_interval_ms = 100\n"
                    % (self.rundir, h.PLUGINS))
        self.port, self.mport = h.free_port(), h.free_port()
        self.out = os.path.join(self.dir, "run.log")
        self.proc = None
        self.channels = []

    def tearDown(self):
        for ch in self.channels:
            ch.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in self.pids().values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def env(self, **kw):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("EVENTFOLD_")}
        env["PATH"] = PATH + os.pathsep + env.get("PATH", "/usr/bin:/bin")
        env["EVENTFOLD_DATA"] = self.data
        env["EVENTFOLD_LISTEN"] = "127.0.0.1:%d" % self.port
        env["EVENTFOLD_METRICS_LISTEN"] = "127.0.0.1:%d" % self.mport
        env.update(kw)
        return env

    def start(self, **kw):
        self.proc = subprocess.Popen([RUN, "-f", self.conf],
                                     env=self.env(**kw),
                                     stdout=open(self.out, "ab"),
                                     stderr=subprocess.STDOUT)

    def log(self):
        with open(self.out, "rb") as f:
            return f.read().decode(errors="replace")

    def pids(self):
        if not os.path.exists(self.out):
            return {}
        return {m.group(1): int(m.group(2)) for m in re.finditer(
            r"started eventfold-(\w+) \(pid (\d+)\)", self.log())}

    def client(self):
        ch = grpc.insecure_channel("127.0.0.1:%d" % self.port, options=[
            ("grpc.initial_reconnect_backoff_ms", 50),
            ("grpc.min_reconnect_backoff_ms", 5000),  # see efharness
            ("grpc.max_reconnect_backoff_ms", 250),
            ("grpc.use_local_subchannel_pool", 1)])
        self.channels.append(ch)
        return h.Client(ch)

    def serving(self):
        h.wait_port(self.port)
        c = self.client()

        def ok():
            if self.proc.poll() is not None:
                raise RuntimeError("eventfold-run exited %s:\n%s" % (
                    self.proc.returncode, self.log()))
            return c.check(timeout=2) == h.SERVING
        h.wait_for(ok, what="SERVING through eventfold-run")
        return c

    def test_serves_reloads_and_stops_cleanly(self):
        self.start()
        c = self.serving()
        self.assertEqual(sorted(self.pids()), ["gatewayd", "runnerd",
                                               "stored"])
        sid = h.new_id()
        c.append(sid, h.no_stream(), h.events(3))
        self.assertTrue(os.path.isdir(self.data))
        r = c.runner("ListProjections", h.rpb.ListProjectionsRequest(),
                     h.rpb.ListProjectionsResponse)
        self.assertGreater(len(r.projections), 0)
        self.proc.send_signal(signal.SIGHUP)
        h.wait_for(lambda: "reload: max_read_count" in self.log() and
                   "gateway has nothing to reload" in self.log() and
                   "SIGHUP: nothing to reload" in self.log(),
                   what="SIGHUP in all three daemons")
        self.assertIsNone(self.proc.poll())
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(60), 0, self.log())
        for name, pid in self.pids().items():
            self.assertFalse(alive(pid), name)
        # stored stopped last: gatewayd's and runnerd's ends come first
        log, pids = self.log(), self.pids()
        for first in ("gatewayd", "runnerd"):
            self.assertLess(log.index("eventfold-%s (pid %d) ended"
                                      % (first, pids[first])),
                            log.index("eventfold-stored (pid %d) ended"
                                      % pids["stored"]))
        # the data is there on the next start
        self.start()
        c = self.serving()
        self.assertEqual(len(c.read_stream(sid)), 3)
        self.proc.send_signal(signal.SIGINT)
        self.assertEqual(self.proc.wait(60), 0)

    def test_a_daemon_that_dies_stops_all_with_its_status(self):
        self.start()
        self.serving()
        pids = self.pids()
        os.kill(pids["gatewayd"], signal.SIGKILL)
        self.assertEqual(self.proc.wait(60), 128 + signal.SIGKILL,
                         self.log())
        for name, pid in pids.items():
            self.assertFalse(alive(pid), name)
        self.assertIn("eventfold-gatewayd ended: stopping the others",
                      self.log())

    def test_stored_refusing_to_start_ends_it(self):
        efdb = os.path.join(self.dir, "events.db")
        with open(efdb, "wb") as f:
            f.write(b"EFDB" + struct.pack("<I", 3))
        self.start(EVENTFOLD_DATA=efdb)
        self.assertEqual(self.proc.wait(60), 1, self.log())
        self.assertIn("eventfoldctl --runtime-dir %s import %s" % (
            self.rundir, efdb), self.log())
        for name, pid in self.pids().items():
            self.assertFalse(alive(pid), name)


if __name__ == "__main__":
    h.main()
