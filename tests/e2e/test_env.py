#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# test_env.py - EventfoldDB's environment variables, each honoured by the
# daemon it concerns with its nearest meaning, against the real binaries:
# EVENTFOLD_DATA as the data directory (and an EventfoldDB data file
# refused with the exact import command), EVENTFOLD_DEDUP_CAPACITY
# accepted and logged as not needed, EVENTFOLD_BROKER_CAPACITY sizing the
# gateway's live ring (a subscriber still gets every event through a
# tiny one), the gateway's listen, metrics, TLS and JWT variables,
# EVENTFOLD_LOG_LEVEL and RUST_LOG; flags win over the environment.
import os
import struct
import subprocess
import unittest

import efharness as h


def clean_env(**kw):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("EVENTFOLD_") and k != "RUST_LOG"}
    env.update(kw)
    return env


def run(argv, env, timeout=30):
    return subprocess.run(argv, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


class EnvTest(unittest.TestCase):
    def setUp(self):
        self.cl = h.Cluster(start=False)

    def tearDown(self):
        self.cl.close()

    def stored(self, env, extra=(), verbose=True):
        """A stored with env (and no --data-dir: EVENTFOLD_DATA's)."""
        argv = [h.STORED] + (["-d"] if verbose else []) + [
            "-f", self.cl.conf, "--runtime-dir", self.cl.run] + list(extra)
        self.cl.stored = subprocess.Popen(
            argv, env=env, stdout=self.cl._log("stored"),
            stderr=subprocess.STDOUT)
        sock = os.path.join(self.cl.run, "store.sock")

        def up():
            if self.cl.stored.poll() is not None:
                raise RuntimeError("stored exited: " + self.cl.log("stored"))
            return os.path.exists(sock)
        h.wait_for(up, what="store.sock")

    def test_data_is_the_data_dir(self):
        data = os.path.join(self.cl.dir, "from-env")
        env = clean_env(EVENTFOLD_DATA=data)
        self.stored(env)
        self.cl.start_gateway()
        c = self.cl.client()
        c.append(h.new_id(), h.no_stream(), h.events(3))
        self.assertIn("LOCK", os.listdir(data))
        self.assertFalse(os.listdir(self.cl.data), "the default was used")
        # runnerd takes the same directory
        out = run([h.RUNNERD, "-nv", "-f", self.cl.conf], env).stdout
        self.assertIn(("data_dir = %s\n" % data).encode(), out)
        # a flag wins over the environment
        out = run([h.STORED, "-nv", "-f", self.cl.conf, "--data-dir",
                   "/elsewhere"], env).stdout
        self.assertIn(b"data_dir = /elsewhere\n", out)

    def efdb_file(self, version=3):
        path = os.path.join(self.cl.dir, "events.db")
        with open(path, "wb") as f:
            f.write(b"EFDB" + struct.pack("<I", version))
        return path

    def test_eventfolddb_file_is_refused_with_the_import_command(self):
        path = self.efdb_file()
        want = "eventfoldctl --runtime-dir %s import %s" % (
            self.cl.run, os.path.realpath(path))
        env = clean_env(EVENTFOLD_DATA=path)
        for prog in (h.STORED, h.RUNNERD):
            r = run([prog, "-d", "-f", self.cl.conf, "--runtime-dir",
                     self.cl.run], env)
            err = r.stderr.decode()
            self.assertEqual(r.returncode, 1, err)
            self.assertIn("is an EventfoldDB data file (format version 3)",
                          err)
            self.assertIn("\n    " + want + "\n", err)
        # the file is untouched and no store was made beside it
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"EFDB\x03\x00\x00\x00")
        self.assertEqual(sorted(os.listdir(self.cl.dir)),
                         sorted(["data", "run", "empty.conf", "events.db"]))
        # an old format: refused, and said so
        self.efdb_file(2)
        r = run([h.STORED, "-n", "-f", self.cl.conf], env)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"format version 2", r.stderr)
        self.assertIn(b"only version 3 imports", r.stderr)
        # any other file
        other = os.path.join(self.cl.dir, "notes.txt")
        with open(other, "w") as f:
            f.write("hello\n")
        r = run([h.STORED, "-n", "-f", self.cl.conf],
                clean_env(EVENTFOLD_DATA=other))
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"not an EventfoldDB data file", r.stderr)

    def test_dedup_capacity_is_logged_as_not_needed(self):
        env = clean_env(EVENTFOLD_DEDUP_CAPACITY="1000")
        self.stored(env, ["--data-dir", self.cl.data])
        h.wait_for(lambda: "EVENTFOLD_DEDUP_CAPACITY=1000 is not needed"
                   in self.cl.log("stored"), what="the dedup line")

    def test_broker_capacity_sizes_the_live_ring(self):
        out = run([h.GATEWAYD, "-nv", "-f", self.cl.conf],
                  clean_env(EVENTFOLD_BROKER_CAPACITY="100")).stdout
        self.assertIn(b"live_ring_events = 100\n", out)
        for bad in ("0", "12", "lots"):
            r = run([h.GATEWAYD, "-n", "-f", self.cl.conf],
                    clean_env(EVENTFOLD_BROKER_CAPACITY=bad))
            self.assertNotEqual(r.returncode, 0, bad)
        # a ring of 64 events: a subscriber behind it reads from the log
        self.cl.gw_env = {"EVENTFOLD_BROKER_CAPACITY": "64"}
        self.cl.start_stored()
        self.cl.start_gateway()
        c = self.cl.client()
        it = iter(c.subscribe_all(0, timeout=60))
        self.assertTrue(next(it).HasField("caught_up"))
        for _ in range(50):
            c.append(h.new_id(), h.any_(), h.events(20))
        got = []
        while len(got) < 1000:
            m = next(it)
            if m.HasField("event"):
                got.append(m.event.global_position)
        self.assertEqual(got, list(range(1000)))
        self.assertIn("live ring of 64 events", self.cl.log("gatewayd"))

    def test_gateway_variables(self):
        env = clean_env(EVENTFOLD_LISTEN="127.0.0.1:1",
                        EVENTFOLD_METRICS_LISTEN="",
                        EVENTFOLD_TLS_CERT="/c.pem",
                        EVENTFOLD_TLS_KEY="/k.pem",
                        EVENTFOLD_TLS_CA="/ca.pem",
                        EVENTFOLD_JWT_SECRET="s",
                        EVENTFOLD_BROKER_CAPACITY="4096")
        out = run([h.GATEWAYD, "-nv", "-f", self.cl.conf], env)
        self.assertEqual(out.returncode, 0, out.stderr)
        for line in ("listen = 127.0.0.1:1", "metrics_listen = ",
                     "tls_cert = /c.pem", "tls_key = /k.pem",
                     "tls_ca = /ca.pem", "jwt_secret = s",
                     "live_ring_events = 4096"):
            self.assertIn(("\n" + line + "\n").encode(), b"\n" + out.stdout)

    def log_lines(self, env, extra=()):
        """stored started without -d under env; its log after a refusal."""
        self.stored(env, ["--data-dir", self.cl.data] + list(extra),
                    verbose=False)
        self.cl.start_gateway()
        c = self.cl.client()
        sid = h.new_id()
        c.append(sid, h.no_stream(), h.events(1))
        try:
            c.append(sid, h.no_stream(), h.events(1))
        except Exception:  # noqa: BLE001 - the refusal is the point
            pass
        self.cl.stop_stored(__import__("signal").SIGTERM)
        return self.cl.log("stored")

    def test_log_level_warn(self):
        log = self.log_lines(clean_env(EVENTFOLD_LOG_LEVEL="warn"))
        self.assertNotIn(": info: ", log)
        self.assertNotIn(": debug: ", log)

    def test_log_level_debug(self):
        log = self.log_lines(clean_env(EVENTFOLD_LOG_LEVEL="debug"))
        self.assertIn(": info: ", log)
        self.assertIn(": debug: append refused", log)

    def test_rust_log(self):
        log = self.log_lines(clean_env(RUST_LOG="warn,eventfold=debug"))
        self.assertIn(": debug: append refused", log)

    def test_default_level_is_info(self):
        log = self.log_lines(clean_env())
        self.assertIn(": info: ", log)
        self.assertNotIn(": debug: ", log)

    def test_bad_log_level(self):
        for prog in (h.STORED, h.GATEWAYD, h.RUNNERD):
            r = run([prog, "-n", "-f", self.cl.conf],
                    clean_env(EVENTFOLD_LOG_LEVEL="loud"))
            self.assertEqual(r.returncode, 1, prog)
            self.assertIn(b"EVENTFOLD_LOG_LEVEL=loud: not a level", r.stderr)


if __name__ == "__main__":
    h.main()
