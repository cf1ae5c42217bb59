# SPDX-License-Identifier: MIT
#
# test_mirror.py - eventfold-mirrord between a real eventfold-stored (and
# gatewayd, to append and read) and a real nats-server with JetStream:
# every committed event lands in the stream exactly once, in order, at
# sequence position + 1, with the log's event id; through kill -9 of
# mirrord under load (MIRROR_KILLS times), NATS stopped for 10 s under
# load, a kill -9 and restart of stored under mirrord, and one of three
# routed nats-servers holding a 3-replica stream killed with kill -9
# under load and restarted.
import json
import os
import random
import subprocess
import signal
import threading
import time
import uuid

import efharness as h
import jsharness as js

MIRROR_KILLS = int(os.environ.get("EF_MIRROR_KILLS", "10"))
CTL = os.path.join(h.BUILD, "clients", "eventfoldctl", "eventfoldctl")


class Writer(threading.Thread):
    """Appends batches of 20 events to 8 streams until stopped; counts
    the events whose append succeeded (failed appends are retried with
    the same ids, so each batch is in the log once)."""

    def __init__(self, client, pause=0.005):
        super().__init__(daemon=True)
        self.client = client
        self.pause = pause
        self.stop = threading.Event()
        self.appended = 0
        self.streams = [str(uuid.uuid4()) for _ in range(8)]

    def run(self):
        while not self.stop.is_set():
            evs = h.events(20, etype="Mirrored")
            sid = random.choice(self.streams)
            while True:
                try:
                    self.client.append(sid, h.any_(), evs, timeout=10)
                    break
                except Exception:  # noqa: BLE001 - stored restarting
                    if self.stop.is_set():
                        return
                    time.sleep(0.1)
            self.appended += len(evs)
            time.sleep(self.pause)

    def finish(self):
        self.stop.set()
        self.join(60)


class MirrorTest(js.MirrorCase):
    def test_0_bad_settings(self):
        """Bad settings: a clear message naming the setting, exit 1."""
        for args, says in ((["--retention", "forever"], "retention forever"),
                           (["--stream", "a.b"], 'stream "a.b"'),
                           (["--replicas", "7"], "replicas 7"),
                           (["--subject-prefix", "ef."], "subject_prefix"),
                           (["--nats-url", " , "], "nats_url")):
            p = subprocess.run([js.MIRRORD, "-f", self.c.conf] + args,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=30)
            self.assertEqual(p.returncode, 1, args)
            self.assertIn(says, p.stdout.decode(), args)

    def head(self):
        return len(js.log_ids(self.client, 10 ** 9))

    def test_1_in_order_exactly_once(self):
        sids = [str(uuid.uuid4()) for _ in range(5)]
        for i in range(40):
            self.client.append(sids[i % 5], h.any_(),
                               h.events(50, etype="Catchup"))
        self.m.start()  # catch-up from an empty stream
        self.m.wait_position(2000)
        for i in range(20):  # live
            self.client.append(sids[i % 5], h.any_(),
                               h.events(10, etype="Live"))
        self.m.wait_position(2200)
        js.check_exactly_once(self, self.client, self.nats.url, 2200)
        mx = self.m.metrics()
        self.assertEqual(mx["eventfold_mirror_errors_total"], 0)
        # eventfoldctl mirror shows the same, from the same page (the
        # stream's state as mirrord last asked for it, every second)

        def ctl_json():
            out = subprocess.run(
                [CTL, "-j", "--mirror-metrics",
                 "127.0.0.1:%d" % self.m.mport, "mirror"], check=True,
                stdout=subprocess.PIPE).stdout
            st = json.loads(out)
            return st if st.get("stream_last_seq") == 2200 else None
        st = h.wait_for(ctl_json, what="eventfoldctl mirror: last seq 2200")
        self.assertEqual((st["position"], st["stream_last_seq"],
                          st["stream_messages"], st["stream"], st["nats_up"]),
                         (2200, 2200, 2200, "EVENTFOLD", 1))
        txt = subprocess.run(
            [CTL, "--mirror-metrics", "127.0.0.1:%d" % self.m.mport,
             "mirror"], check=True, stdout=subprocess.PIPE).stdout.decode()
        self.assertIn("mirrored position  2200 of ", txt)
        # a restart resumes after the stream's last sequence
        self.m.stop()
        self.client.append(sids[0], h.any_(), h.events(5))
        self.m.start()
        self.m.wait_position(2205)
        js.check_exactly_once(self, self.client, self.nats.url, 2205)

    def under_writes(self, disrupt, nats_url=None, timeout=120):
        """mirrord started while another thread writes, then disrupt();
        once the writes stop, every event reaches the stream (on
        nats_url, this test's server by default) exactly once. The
        head."""
        w = Writer(self.client)
        w.start()
        self.m.start()
        try:
            disrupt()
        finally:
            w.finish()
        head = self.head()
        self.m.wait_position(head, timeout=timeout)
        js.check_exactly_once(self, self.client, nats_url or self.nats.url,
                              head)
        return head

    def test_2_kill9_under_load(self):
        def kills():
            for _ in range(MIRROR_KILLS):
                time.sleep(random.uniform(0.2, 0.8))
                self.m.stop(signal.SIGKILL)
                self.m.start()
        self.assertGreater(self.under_writes(kills), 0)

    def test_3_nats_down_10s(self):
        def nats_down():
            time.sleep(1)
            self.nats.stop()
            time.sleep(10)
            self.nats.start()
            time.sleep(1)
        self.under_writes(nats_down)
        self.assertGreater(self.m.metrics()["eventfold_mirror_errors_total"],
                           0)

    def test_4_stored_restart(self):
        def stored_restart():
            time.sleep(1)
            self.c.stop_stored(signal.SIGKILL)
            time.sleep(0.5)
            self.c.start_stored()
            time.sleep(1)
        self.under_writes(stored_restart)

    def test_5_r3_node_killed(self):
        """A 3-replica stream on three routed nats-servers; one is
        killed with kill -9 under load and restarted: nothing lost."""
        self.nats.stop()
        nodes = js.nats_cluster(self.c.dir, 3)
        try:
            self.m = js.Mirrord(self.c, [n.url for n in nodes],
                                ["--replicas", "3"])

            def node_killed():
                self.m.wait_position(200, timeout=120)
                nodes[1].stop(signal.SIGKILL)
                time.sleep(3)
                nodes[1].start()
                time.sleep(2)
            self.under_writes(node_killed, nodes[0].url, timeout=180)
            self.assertEqual(
                self.m.metrics()["eventfold_mirror_stream_replicas"], 3)
        finally:
            self.m.stop(signal.SIGKILL)
            for n in nodes:
                n.stop()


if __name__ == "__main__":
    h.main()
