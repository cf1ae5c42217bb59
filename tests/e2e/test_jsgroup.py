# SPDX-License-Identifier: MIT
#
# test_jsgroup.py - a consumer group on the stream eventfold-mirrord
# fills: three eventfold-jsgroup workers (examples/jetstream/jsgroup.c)
# share the durable pull consumer "billing". Each committed event is
# handled (acknowledged) by exactly one worker; the third worker takes
# a batch after its first 20 events, never acknowledges it and is
# killed with kill -9: those events are delivered again, to the other
# two. Real nats-server, stored, gatewayd and mirrord.
import os
import signal
import subprocess
import time
import uuid

import efharness as h
import jsharness as js

ACK_WAIT_MS = 2000


class Worker:
    def __init__(self, c, nats_url, name, args=()):
        self.out = os.path.join(c.dir, "worker-%s.out" % name)
        self.name = name
        self.proc = subprocess.Popen(
            [js.JSGROUP, "work", nats_url, "EVENTFOLD", "billing", name,
             "--batch", "10", "--ack-wait-ms", str(ACK_WAIT_MS)] +
            list(args),
            stdout=open(self.out, "wb"), stderr=c._log("workers"))

    def lines(self, word):
        with open(self.out) as f:
            return [l.split() for l in f.read().splitlines()
                    if l.startswith(word + " ")]

    def handled(self):
        """[(position, delivery)]"""
        return [(int(p[1]), int(p[3])) for p in self.lines("handled")]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class GroupTest(js.MirrorCase):
    def setUp(self):
        super().setUp()
        self.m.start()
        self.workers = []

    def tearDown(self):
        for w in self.workers:
            w.kill()
        super().tearDown()

    def append(self, n):
        sids = [str(uuid.uuid4()) for _ in range(4)]
        for i in range(n // 50):
            self.client.append(sids[i % 4], h.any_(),
                               h.events(50, etype="Invoiced"))

    def test_one_worker_per_event_redelivery_on_death(self):
        # all three fetch before the events come, so that each gets a
        # share; the dying one takes 20 events, then holds a batch
        # unacknowledged
        w1 = Worker(self.c, self.nats.url, "w1")
        self.workers.append(w1)
        h.wait_for(lambda: w1.lines("ready"), timeout=60,
                   what="w1 subscribed (the durable consumer created)")
        dying = Worker(self.c, self.nats.url, "w3", ["--hold-after", "20"])
        self.workers.append(dying)
        w2 = Worker(self.c, self.nats.url, "w2")
        self.workers.append(w2)
        for w in (dying, w2):
            h.wait_for(lambda: w.lines("ready"), timeout=60,
                       what=w.name + " subscribed")
        self.append(600)
        self.m.wait_position(600)
        h.wait_for(lambda: dying.lines("holding"), timeout=60,
                   what="the third worker holding a batch")
        held = sorted(int(p[1]) for p in dying.lines("holding"))
        dying.kill()
        self.append(300)  # live, while the group works
        self.m.wait_position(900)

        def all_handled():
            got = set()
            for w in self.workers:
                got.update(p for p, _ in w.handled())
            return len(got) == 900
        h.wait_for(all_handled, timeout=120, interval=0.2,
                   what="900 events handled")
        time.sleep(ACK_WAIT_MS / 1000.0 + 0.5)  # no late redelivery
        seen = {}
        for w in self.workers:
            for p, d in w.handled():
                self.assertNotIn(p, seen, "position %d handled by %s and "
                                 "%s" % (p, seen.get(p), w.name))
                seen[p] = (w.name, d)
        self.assertEqual(sorted(seen), list(range(900)))
        self.assertGreater(len(held), 0)
        for p in held:
            name, delivery = seen[p]
            self.assertIn(name, ("w1", "w2"))
            self.assertGreaterEqual(delivery, 2, "position %d" % p)
        self.assertGreaterEqual(len(dying.handled()), 20)  # whole fetches
        self.assertGreater(len(w1.handled()), 0)
        self.assertGreater(len(w2.handled()), 0)


if __name__ == "__main__":
    h.main()
