# SPDX-License-Identifier: MIT
#
# jsharness.py - real nats-server processes (JetStream on, a store dir
# in the test's temp dir, free ports) and eventfold-mirrord for the
# mirror tests; the stream's content through eventfold-jsgroup dump.
import os
import signal
import subprocess
import time
import unittest

import efharness as h

MIRRORD = os.path.join(h.BUILD, "daemons", "mirrord", "eventfold-mirrord")
JSGROUP = os.path.join(h.BUILD, "examples", "jetstream", "eventfold-jsgroup")
NATS_SERVER = "/usr/sbin/nats-server"
if not os.path.exists(NATS_SERVER):
    NATS_SERVER = "nats-server"


class NatsNode:
    """One nats-server with JetStream; cluster: (name, port, routes)."""

    def __init__(self, dir, name="n1", cluster=None):
        self.dir = dir
        self.name = name
        self.port = h.free_port()
        self.store = os.path.join(dir, "js-" + name)
        self.cluster = cluster  # (cluster port, [route ports])
        self.proc = None
        self.conf = os.path.join(dir, "nats-%s.conf" % name)

    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def write_conf(self):
        lines = ['server_name: "%s"' % self.name,
                 'listen: "127.0.0.1:%d"' % self.port,
                 'jetstream { store_dir: "%s" }' % self.store]
        if self.cluster is not None:
            cport, routes = self.cluster
            lines.append('cluster { name: "ef"; listen: "127.0.0.1:%d"; '
                         'routes: [%s] }' % (cport, ", ".join(
                             '"nats-route://127.0.0.1:%d"' % r
                             for r in routes)))
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self):
        self.write_conf()
        log = open(os.path.join(self.dir, "nats-%s.log" % self.name), "ab")
        self.proc = subprocess.Popen([NATS_SERVER, "-c", self.conf],
                                     stdout=log, stderr=subprocess.STDOUT)
        h.wait_port(self.port)

    def stop(self, sig=signal.SIGTERM):
        h.stop_proc(self.proc, sig)
        self.proc = None


def nats_cluster(dir, n):
    """n routed nodes on loopback, started."""
    cports = [h.free_port() for _ in range(n)]
    nodes = []
    for i in range(n):
        nodes.append(NatsNode(dir, "n%d" % (i + 1),
                              (cports[i], [p for j, p in enumerate(cports)
                                           if j != i])))
    for node in nodes:
        node.start()
    return nodes


class Mirrord:
    def __init__(self, cluster, nats_urls, args=()):
        self.c = cluster
        self.nats = ",".join(nats_urls)
        self.mport = h.free_port()
        self.args = list(args)
        self.proc = None

    def start(self):
        log = self.c._log("mirrord")
        self.proc = subprocess.Popen(
            [MIRRORD, "-d", "-f", self.c.conf, "--runtime-dir", self.c.run,
             "--nats-url", self.nats,
             "--metrics-listen", "127.0.0.1:%d" % self.mport] + self.args,
            stdout=log, stderr=subprocess.STDOUT)
        h.wait_port(self.mport)

    def stop(self, sig=signal.SIGTERM):
        h.stop_proc(self.proc, sig)
        self.proc = None

    def metrics(self):
        import urllib.request
        url = "http://127.0.0.1:%d/metrics" % self.mport
        with urllib.request.urlopen(url, timeout=5) as r:
            out = {}
            for line in r.read().decode().splitlines():
                if line and not line.startswith("#") and "{" not in line:
                    k, v = line.split()
                    out[k] = int(v)
            return out

    def wait_position(self, n, timeout=60):
        def done():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError("mirrord exited with %s; log:\n%s" % (
                    self.proc.returncode, self.c.log("mirrord")))
            return self.metrics()["eventfold_mirror_position"] >= n
        h.wait_for(done, timeout=timeout, interval=0.1,
                   what="mirror position %d" % n)


class MirrorCase(unittest.TestCase):
    """Tests on a cluster of their own (self.c; self.client, a client of
    it), one nats-server (self.nats, started) and an eventfold-mirrord
    between them (self.m, not started), all stopped after the test."""

    def setUp(self):
        self.c = h.Cluster()
        self.nats = NatsNode(self.c.dir)
        self.nats.start()
        self.m = Mirrord(self.c, [self.nats.url])
        self.client = self.c.client()

    def tearDown(self):
        self.m.stop(signal.SIGKILL)
        self.nats.stop()
        self.c.close()


def dump(nats_url, stream="EVENTFOLD"):
    """[(sequence, position, event id)] of the stream, in order."""
    out = subprocess.run([JSGROUP, "dump", nats_url, stream], check=True,
                         stdout=subprocess.PIPE, timeout=120).stdout
    rows = []
    for line in out.decode().splitlines():
        seq, pos, eid, _subj = line.split()
        rows.append((int(seq), int(pos), eid))
    return rows


def log_ids(client, head):
    """The event ids of positions 0..head-1, read through the gateway."""
    ids = []
    while len(ids) < head:
        evs = client.read_all(from_position=len(ids), max_count=1000)
        if not evs:
            break
        ids.extend(e.event_id for e in evs)
    return ids[:head]


def check_exactly_once(tc, client, nats_url, head):
    """The stream holds positions 0..head-1, once each, in order, at
    sequence position + 1, with the log's event ids."""
    rows = dump(nats_url)
    ids = log_ids(client, head)
    tc.assertEqual(len(ids), head)
    tc.assertEqual(len(rows), head, "stream has %d messages for %d "
                   "events" % (len(rows), head))
    for i, (seq, pos, eid) in enumerate(rows):
        tc.assertEqual((seq, pos), (i + 1, i))
        tc.assertEqual(eid, ids[i], "position %d" % i)
