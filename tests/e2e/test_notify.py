# SPDX-License-Identifier: MIT
#
# test_notify.py - what the three daemons tell systemd, read from a
# datagram socket standing in for systemd's NOTIFY_SOCKET, with
# WATCHDOG_USEC set to 400 ms (a ping due every 200 ms):
#   - READY=1 only after recovery: stored's STATUS counts the events it
#     recovered from an earlier run; runnerd's comes after its folds
#     loaded their checkpoints; the gateway's once it listens;
#   - WATCHDOG=1 keeps coming while work progresses, and stops while
#     stored's writer, or runnerd's command-results writer, is held
#     (a test build's fault point) with work waiting; it comes back once
#     the work goes on;
#   - STOPPING=1 on SIGTERM, after READY=1.
# The stalls need a build with -Dcrashpoints=true (./dev's); without it
# those two tests are skipped, saying so.
import os
import signal
import socket
import threading
import time
import unittest

import efharness as h

WATCHDOG_USEC = 400000
CRASHPOINTS = os.environ.get("EF_CRASHPOINTS", "1") == "1"


class Notify:
    """A fake systemd notify socket; records (time, message) pairs."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.msgs = []
        self.mu = threading.Lock()
        self.done = False
        self.thr = threading.Thread(target=self._run, daemon=True)
        self.thr.start()

    def _run(self):
        while not self.done:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            with self.mu:
                self.msgs.append((time.monotonic(), data.decode()))

    def env(self, fault=None):
        e = {"NOTIFY_SOCKET": self.path,
             "WATCHDOG_USEC": str(WATCHDOG_USEC)}
        if fault is not None:
            e["EVENTFOLD_FAULT_FILE"] = fault
        return e

    def first(self, line):
        """(time, message) of the first message with this line."""
        with self.mu:
            for t, m in self.msgs:
                if line in m.split("\n"):
                    return t, m
        return None

    def wait(self, line, timeout=30):
        h.wait_for(lambda: self.first(line) is not None, timeout=timeout,
                   what=line)
        return self.first(line)

    def count(self, line, since, until=None):
        with self.mu:
            return sum(1 for t, m in self.msgs
                       if t >= since and (until is None or t < until) and
                       line in m.split("\n"))

    def close(self):
        self.done = True
        self.thr.join(2)
        self.sock.close()


class NotifyTest(unittest.TestCase):
    def setUp(self):
        self.cl = h.Cluster(start=False)
        self.addCleanup(self.cl.close)  # also if setUp fails
        self.n = Notify(os.path.join(self.cl.dir, "notify.sock"))
        self.addCleanup(self.n.close)
        self.fault = os.path.join(self.cl.dir, "fault")

    def pings(self, seconds=1.2):
        """WATCHDOG=1 messages in the next seconds."""
        t0 = time.monotonic()
        time.sleep(seconds)
        return self.n.count("WATCHDOG=1", t0)

    def assert_stops_while_held(self, fault_name, start_work, what):
        """start_work queues work for the held thread and returns a
        function that waits for it to be done."""
        with open(self.fault, "w") as f:
            f.write(fault_name)
        time.sleep(0.1)
        finish = start_work()
        time.sleep(0.5)  # the work is queued and the limit has passed
        self.assertEqual(self.pings(), 0,
                         "WATCHDOG=1 while %s makes no progress" % what)
        os.unlink(self.fault)
        finish()
        self.assertGreaterEqual(self.pings(), 3,
                                "no WATCHDOG=1 once %s goes on" % what)

    def stop_and_check(self, proc):
        ready = self.n.first("READY=1")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(30), 0)
        stopping = self.n.wait("STOPPING=1", timeout=5)
        self.assertGreater(stopping[0], ready[0])

    def test_stored(self):
        cl = self.cl
        cl.start_stored()
        cl.start_gateway()
        c = cl.client()
        sid = h.new_id()
        c.append(sid, h.any_(), h.events(7))
        cl.stop_gateway()
        cl.stop_stored(signal.SIGTERM)
        self.assertIsNone(self.n.first("READY=1"))  # no socket then

        cl.start_stored(env=self.n.env(self.fault))
        t, msg = self.n.wait("READY=1")
        self.assertIn("STATUS=serving, 7 events", msg.split("\n"),
                      "READY=1 before recovery: %r" % msg)
        self.assertGreaterEqual(self.pings(), 3)
        if CRASHPOINTS:
            cl.start_gateway()
            c = cl.client()
            c.append(sid, h.any_(), h.events(1))

            def append():
                fut = c.append_future(sid, h.any_(), h.events(1))
                return lambda: fut.result(timeout=30)
            self.assert_stops_while_held("writer.stall", append,
                                         "stored's writer")
            self.assertEqual(len(c.read_stream(sid)), 9)
            cl.stop_gateway()
        self.stop_and_check(cl.stored)
        cl.stored = None

    def test_runnerd(self):
        cl = self.cl
        cl.start_stored()
        cl.start_gateway()
        cl.start_runnerd(env=self.n.env(self.fault))
        t, msg = self.n.wait("READY=1")
        self.assertTrue(any(l.startswith("STATUS=serving, ")
                            for l in msg.split("\n")), msg)
        log = cl.log("runnerd")
        self.assertIn("projection todo_list: starting at position", log,
                      "READY=1 before the folds loaded")
        self.assertGreaterEqual(self.pings(), 3)
        if CRASHPOINTS:
            c = cl.client()
            h.wait_for(lambda: runner_up(c), what="runnerd via gateway")
            def execute():
                execute_todo(c, h.new_id())
                return lambda: None  # its result is committed then
            self.assert_stops_while_held("runner.writer.stall", execute,
                                         "runnerd's command-results "
                                         "writer")
        self.stop_and_check(cl.runnerd)
        cl.runnerd = None

    def test_gatewayd(self):
        cl = self.cl
        cl.start_stored()
        cl.gw_env = self.n.env()
        cl.start_gateway()
        t, msg = self.n.wait("READY=1")
        self.assertIn("STATUS=listening", msg.split("\n"))
        self.assertGreaterEqual(self.pings(), 3)
        self.stop_and_check(cl.gateway)
        cl.gateway = None


def runner_up(c):
    try:
        c.runner("ListProjections", h.rpb.ListProjectionsRequest(),
                 h.rpb.ListProjectionsResponse, timeout=5)
        return True
    except Exception:
        return False


def execute_todo(c, inst):
    """An Execute: its result goes to runnerd's results writer."""
    req = h.rpb.ExecuteRequest(aggregate_type="todo", instance_id=inst,
                               command_type="Add",
                               payload=b'{"title":"w"}',
                               command_id=h.new_id())
    return c.runner("Execute", req, h.rpb.ExecuteResponse, timeout=30)


if __name__ == "__main__":
    h.main()
