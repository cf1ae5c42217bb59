#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# test_stall.py - a subscriber that stops reading its socket is never
# cut off. gRPC core sets TCP_USER_TIMEOUT (20 s) on the connections a
# server accepts: a peer whose receive window stays at zero that long
# has its connection aborted by the kernel, and every subscription on
# it ends with UNAVAILABLE. eventfold's contract is that subscribers are
# never cut off, so gatewayd turns that timeout off (server.c). The
# subscriber here is a separate process frozen with SIGSTOP while the
# log grows by far more than its socket buffers hold.
import os
import signal
import subprocess
import sys
import time

import efharness as h

NSUBS = 40        # subscriptions on the one connection
NEVENTS = 400     # events appended while the subscriber is frozen
PAYLOAD = 2048    # bytes each: 40 x 400 x 2 KiB = 32 MiB to deliver
FROZEN_S = 28     # past the 20 s TCP_USER_TIMEOUT

SUBSCRIBER = r"""
import sys, threading
import efharness as h
addr, head, nsubs, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4])
cl = h.Cluster(start=False)
cl.addr = addr
c = cl.client()
ready = threading.Barrier(nsubs + 1)
bad = []
def run():
    got = []
    try:
        for m in c.subscribe_all(head):
            if m.HasField("caught_up"):
                ready.wait()
                continue
            got.append(m.event.global_position)
            if len(got) == n:
                break
    except Exception as e:
        bad.append(str(e.code()) if hasattr(e, "code") else repr(e))
        return
    if got != list(range(head, head + n)):
        bad.append("out of order or missing")
ts = [threading.Thread(target=run) for _ in range(nsubs)]
for t in ts:
    t.start()
ready.wait()
print("ready", flush=True)
for t in ts:
    t.join()
print("%d of %d subscriptions failed: %s" % (len(bad), nsubs, bad[0])
      if bad else "ok", flush=True)
cl.close()
sys.exit(1 if bad else 0)
"""


class StallTest(h.FreshClusterCase):
    def test_frozen_reader_past_tcp_user_timeout_is_not_cut_off(self):
        head = self.c.append(h.new_id(), h.any_(),
                             h.events(1)).last_global_position + 1
        p = subprocess.Popen(
            [sys.executable, "-c", SUBSCRIBER, self.cl.addr, str(head),
             str(NSUBS), str(NEVENTS)],
            stdout=subprocess.PIPE, text=True, env=os.environ.copy())
        try:
            self.assertEqual(p.stdout.readline().strip(), "ready")
            os.kill(p.pid, signal.SIGSTOP)
            sid = h.new_id()
            for _ in range(NEVENTS // 10):
                self.c.append(sid, h.any_(),
                              h.events(10, payload=b"p" * PAYLOAD))
            time.sleep(FROZEN_S)
            os.kill(p.pid, signal.SIGCONT)
            out, _ = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 0, out)
        finally:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
                p.wait()


if __name__ == "__main__":
    h.main()
