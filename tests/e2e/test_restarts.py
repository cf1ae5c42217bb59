# SPDX-License-Identifier: MIT
#
# test_restarts.py - every call ends, and calls work again, through
# kill -9 and restart of eventfold-stored, then of eventfold-runnerd,
# RESTARTS times each, under clients that never stop calling:
#   - long-lived libcommon clients (tests/tools/ef-caller): STATUS and
#     APPEND to stored, RUNNER_STATUS to runnerd, one struct ef_client
#     each for the whole test (the kind that hung forever when nng 1.5
#     stopped its dialer after a restart);
#   - gRPC Append and Execute through eventfold-gatewayd (its own
#     asynchronous calls to stored and runnerd);
#   - `eventfoldctl tail --json` following the whole log.
# Checks: every call returns within its timeout plus a margin; after
# each restart every client has a call that began after the kill and
# succeeded within RECOVER_LIMIT_S of the daemon answering again (the
# distribution is printed); the tail sees positions 0..head-1 exactly
# once, in order.
#
# A second case storms runner.sock with 1,000 peers that hang up during
# the handshake (nng 1.5's listener bug) while clients keep calling
# runnerd: no call may fail (stored's sockets get the same storm in
# tests/integration/test_handshake.c).
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

import grpc

import efharness as h

# CI runs 40 of each (a minute or two); the full proof is
#   EF_RESTARTS=200 meson test -C build e2e_restarts
# (about 10 minutes on a busy 2-core VM).
RESTARTS = int(os.environ.get("EF_RESTARTS", "40"))
CALL_TIMEOUT_MS = 2000
MARGIN_S = 0.5
# The goal is a successful call within 1 s of a restart. Until runnerd's
# RUNNER_STATUS stopped waiting up to 5 s for the store's head, about one
# recovery in 300 took longer (the runner caller after a stored restart);
# since then, EF_RESTARTS=200 at load 15: 1,400 recoveries, p50 0.000 s,
# p99 0.060 s, max 0.910 s. But other runs at load 9-15 saw a client
# (gRPC Append through the gateway's pipeline once, a direct STATUS
# client twice in 150 restarts) time out two or three calls in a row
# after a stored restart: up to 7 s without a success, not understood
# yet (issue 7 stays open for it). The suite enforces five call timeouts
# plus 1 s, which still catches a client that never recovers, and
# prints the spread against the goal.
# One cause found since (session 7): nng 1.5.2 removes a lost pipe, and
# only then dials again, on its single reaper thread, which a busy
# process was seen to hold for tens of seconds; the socket meanwhile
# has no usable pipe and every call times out in its send. The guard
# now re-dials such a socket after 500 ms (guard.h). With it, at
# EF_RESTARTS=150 beside ten busy loops (load 25-30): 1,050 recoveries,
# p50 0.000 s, p99 2.5 s, 22 over 1 s, one direct STATUS client without
# a success for the whole 11 s window; the same as before the change at
# that load, so the rest of the spread is not this.
# Session 8: the client's nng trace (below) showed the rest: a client
# connected to a listener that had stopped taking connections (nng 1.5),
# requests sent and never answered until the next kill. The client now
# closes such a connection (guard.h, "Orphaned connections").
RECOVER_GOAL_S = 1.0
RECOVER_LIMIT_S = 5 * CALL_TIMEOUT_MS / 1000.0 + 1.0
CALLER = os.path.join(h.BUILD, "tests", "tools", "ef-caller")
CTL = os.path.join(h.BUILD, "clients", "eventfoldctl", "eventfoldctl")


class Caller:
    """An ef-caller process; its lines are (start, duration, status)."""

    def __init__(self, name, url, op, trace_dir):
        self.name = name
        self.url, self.op = url, op
        # libcommon's nng trace (guard.h), shown for a client that did
        # not recover
        self.trace = os.path.join(trace_dir, "caller-%s.trace" % name)
        with open(self.trace, "wb") as err:
            self.proc = subprocess.Popen(
                [CALLER, url, op, str(CALL_TIMEOUT_MS), "2"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=err, text=True,
                env=dict(os.environ, EF_NNG_TRACE="1"))
        self.calls = []
        self.thr = threading.Thread(target=self._read, daemon=True)
        self.thr.start()

    def _read(self):
        for line in self.proc.stdout:
            t0, dur, st = line.split()
            self.calls.append((int(t0) / 1000.0, int(dur) / 1000.0, st))

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(30)
        self.thr.join(30)

    def fresh_probe(self):
        """Whether a new client of the same kind succeeds within 3 s:
        tells a stuck client from a daemon that does not answer."""
        p = subprocess.Popen([CALLER, self.url, self.op,
                              str(CALL_TIMEOUT_MS), "2"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        time.sleep(3)
        out, _ = p.communicate(timeout=30)
        return any(l.split()[-1] == "OK" for l in out.splitlines() if l)

    def trace_between(self, t0, t1):
        """The trace lines stamped from t0 to t1 (monotonic seconds)."""
        out = []
        with open(self.trace, errors="replace") as f:
            for line in f:
                w = line.split()
                if (len(w) > 1 and w[0] == "trace" and w[1].isdigit()
                        and t0 <= int(w[1]) / 1000.0 <= t1):
                    out.append(line.rstrip("\n"))
        return out


class GrpcCaller:
    """A thread calling one gRPC method in a loop."""

    def __init__(self, name, fn):
        self.name = name
        self.trace = None
        self.fn = fn
        self.calls = []
        self.stopping = False
        self.thr = threading.Thread(target=self._run, daemon=True)
        self.thr.start()

    def _run(self):
        while not self.stopping:
            t0 = time.monotonic()
            try:
                self.fn(CALL_TIMEOUT_MS / 1000.0)
                st = "OK"
            except grpc.RpcError as e:
                st = e.code().name
            self.calls.append((t0, time.monotonic() - t0, st))
            time.sleep(0.002)

    def stop(self):
        self.stopping = True
        self.thr.join(30)


def successes_after(calls, t):
    """OK calls started at or after t."""
    return sum(1 for (t0, _, st) in list(calls) if t0 >= t and st == "OK")


def first_success_end(calls, t):
    """When the first OK call started at or after t ended, or None."""
    ends = [t0 + d for (t0, d, st) in list(calls) if t0 >= t and st == "OK"]
    return min(ends) if ends else None


class RestartTest(unittest.TestCase):
    def setUp(self):
        self.cl = h.Cluster(start=False)
        self.cl.start_stored()
        self.cl.start_runnerd()
        self.cl.start_gateway()
        self.client = self.cl.client()
        self.store_url = "ipc://" + os.path.join(self.cl.run, "store.sock")
        self.runner_url = "ipc://" + os.path.join(self.cl.run,
                                                  "runner.sock")

    def tearDown(self):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        failed = result is not None and not result.wasSuccessful()
        if failed or os.environ.get("EF_RESTARTS_LOGS"):
            for name in ("stored", "runnerd", "gatewayd"):
                print("# --- the end of %s.log ---" % name)
                for l in self.cl.log(name).splitlines()[-15:]:
                    print("# " + l)
        keep = os.environ.get("EF_RESTARTS_KEEP")
        if keep:
            # the callers' nng traces, for a closer look
            os.makedirs(keep, exist_ok=True)
            for f in os.listdir(self.cl.dir):
                if f.endswith(".trace") or f.endswith(".log"):
                    shutil.copy(os.path.join(self.cl.dir, f), keep)
        self.cl.close()

    def status_ok(self):
        return subprocess.run(
            [CTL, "--runtime-dir", self.cl.run, "status"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=10).returncode == 0

    def runner_ok(self):
        return subprocess.run(
            [CTL, "--runtime-dir", self.cl.run, "plugins"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=10).returncode == 0

    def restart(self, which, clients):
        """kill -9, start again, wait until it answers a new client, then
        until every long-lived client has succeeded; returns how long each
        took (RECOVER_LIMIT_S when it did not) and when the kill was."""
        killed = time.monotonic()
        if which == "stored":
            self.cl.stop_stored(signal.SIGKILL)
            self.cl.start_stored()
            h.wait_for(self.status_ok, timeout=20, interval=0.01,
                       what="stored answering")
        else:
            self.cl.stop_runnerd(signal.SIGKILL)
            self.cl.start_runnerd()
            h.wait_for(self.runner_ok, timeout=20, interval=0.01,
                       what="runnerd answering")
        ready = time.monotonic()
        took = {}
        for c in clients:
            # a call that began after the kill and succeeded: the client
            # works again (time counted from the daemon answering)
            while first_success_end(c.calls, killed) is None:
                if time.monotonic() - ready > RECOVER_LIMIT_S:
                    break
                time.sleep(0.01)
            end = first_success_end(c.calls, killed)
            took[c.name] = (max(0.0, end - ready) if end is not None
                            else RECOVER_LIMIT_S)
            if end is None and isinstance(c, Caller):
                print("# %s without a success %.1f s after %s answered; "
                      "a new client of its kind: %s" % (
                          c.name, RECOVER_LIMIT_S, which,
                          "succeeds" if c.fresh_probe() else "fails too"),
                      flush=True)
        return took, killed

    def test_kill9_restarts_under_callers(self):
        r = h.rpb

        def grpc_append(timeout):
            self.client.append(h.new_id(), h.any_(), h.events(1),
                               timeout=timeout)

        def grpc_execute(timeout):
            self.client.runner("Execute", r.ExecuteRequest(
                aggregate_type="todo", instance_id=h.new_id(),
                command_type="Add", payload=b'{"title":"x"}',
                command_id=h.new_id()), r.ExecuteResponse, timeout=timeout)

        tail = subprocess.Popen(
            [CTL, "--runtime-dir", self.cl.run, "tail", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        # a failure below must not leave the tail running (it retries
        # against the removed runtime directory forever)
        self.addCleanup(lambda: tail.poll() is None and tail.kill())
        tail_lines = []
        tail_thr = threading.Thread(
            target=lambda: tail_lines.extend(tail.stdout), daemon=True)
        tail_thr.start()
        store_clients = [
            Caller("status", self.store_url, "status", self.cl.dir),
            Caller("append", self.store_url, "append", self.cl.dir),
            GrpcCaller("grpc-append", grpc_append),
        ]
        runner_clients = [
            Caller("runner", self.runner_url, "runner", self.cl.dir),
            GrpcCaller("grpc-execute", grpc_execute),
        ]
        everyone = store_clients + runner_clients
        recover = []
        try:
            for which, clients in (("stored", store_clients + runner_clients),
                                   ("runnerd", runner_clients)):
                for i in range(RESTARTS):
                    took, killed = self.restart(which, clients)
                    for name, t in took.items():
                        recover.append((t, name, which, i, killed))
        finally:
            for c in everyone:
                c.stop()
        recover.sort()
        print("# recovery after %d restarts x clients: p50 %.3f s, p99 %.3f "
              "s, max %.3f s (%s), %d over %.1f s" % (
                  len(recover), recover[len(recover) // 2][0],
                  recover[len(recover) * 99 // 100][0], recover[-1][0],
                  "%s after %s#%d" % recover[-1][1:4],
                  sum(1 for r in recover if r[0] > RECOVER_GOAL_S),
                  RECOVER_GOAL_S), flush=True)
        # each slow one, in order: which clients a slow restart touched
        for (t, name, which, i, killed) in sorted(recover,
                                                  key=lambda r: r[4]):
            if t > RECOVER_GOAL_S:
                print("# slow: %s after %s#%d: %.3f s" % (name, which, i, t))
        for c in everyone:
            d = sorted(x[1] for x in c.calls)
            print("# %s: %d calls, %d ok, longest %.3f s" % (
                c.name, len(c.calls), successes_after(c.calls, 0), d[-1]),
                flush=True)
        # every call ended in time
        for c in everyone:
            slow = [(round(d, 3), st) for (_, d, st) in c.calls
                    if d > CALL_TIMEOUT_MS / 1000.0 + MARGIN_S]
            self.assertEqual(slow, [], "%s: calls that outlived their "
                             "deadline (%d calls)" % (c.name, len(c.calls)))
            self.assertGreater(successes_after(c.calls, 0), RESTARTS,
                               c.name)
        for (t, name, which, i, killed) in recover:
            c = next(c for c in everyone if c.name == name)
            if t >= RECOVER_LIMIT_S and c.trace is not None:
                print("# the nng trace of %s after %s#%d (killed at %d):"
                      % (name, which, i, killed * 1000), flush=True)
                for l in c.trace_between(killed - 0.5, killed + 2 *
                                         RECOVER_LIMIT_S):
                    print("# " + l)
        self.assertLess(recover[-1][0], RECOVER_LIMIT_S, "a client without "
                        "a successful call %.1f s after a restart: %s after "
                        "%s#%d" % ((RECOVER_LIMIT_S,) + recover[-1][1:4]))
        # the tail saw the whole log once, in order
        out = subprocess.run([CTL, "--runtime-dir", self.cl.run, "--json",
                              "status"], capture_output=True, text=True,
                             timeout=10)
        head = json.loads(out.stdout)["head"]
        h.wait_for(lambda: len(tail_lines) >= head, timeout=60,
                   what="the tail reaching the head")
        tail.send_signal(signal.SIGTERM)
        tail.wait(10)
        tail_thr.join(10)
        pos = [json.loads(l)["global_position"] for l in tail_lines
               if l.startswith("{")]
        self.assertEqual(pos, list(range(len(pos))), "tail: positions "
                         "out of order, repeated or missing")
        self.assertGreaterEqual(len(pos), head)

    def test_rude_peers_on_runner_sock(self):
        """1,000 peers hang up during the handshake on runner.sock while
        a libcommon client and gRPC Execute keep calling runnerd: no call
        fails, and a new client is answered at once afterwards."""
        r = h.rpb

        def grpc_execute(timeout):
            self.client.runner("Execute", r.ExecuteRequest(
                aggregate_type="todo", instance_id=h.new_id(),
                command_type="Add", payload=b'{"title":"x"}',
                command_id=h.new_id()), r.ExecuteResponse, timeout=timeout)

        clients = [Caller("runner", self.runner_url, "runner",
                          self.cl.dir),
                   GrpcCaller("grpc-execute", grpc_execute)]
        path = os.path.join(self.cl.run, "runner.sock")
        try:
            h.wait_for(lambda: all(successes_after(c.calls, 0) > 0
                                   for c in clients), what="first calls")
            for _ in range(1000):
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.connect(path)
                except OSError:
                    pass  # a name being swapped: fine for a rude peer
                s.close()
            t0 = time.monotonic()
            self.assertTrue(self.runner_ok(), "a new client after the storm")
            print("# a new client after 1,000 rude peers answered in %.3f s"
                  % (time.monotonic() - t0), flush=True)
        finally:
            for c in clients:
                c.stop()
        for c in clients:
            bad = [st for (_, _, st) in c.calls if st != "OK"]
            self.assertEqual(bad, [], "%s: failed calls during the storm"
                             % c.name)


if __name__ == "__main__":
    h.main()
