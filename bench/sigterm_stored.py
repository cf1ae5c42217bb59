#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""sigterm_stored.py STORED [ROUNDS] - SIGTERM-to-exit of one idle
eventfold-stored, ROUNDS times (default 5), each on a fresh data and
runtime directory under /tmp: milliseconds from the signal to its
"stopping" and "stopped" log lines and to the zombie (polled every
0.5 ms), without the rest of `./dev up` around it (bench/sigterm.sh
measures all three daemons)."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time


def one(stored):
    d = tempfile.mkdtemp(prefix="efsigterm")
    os.makedirs(d + "/data")
    os.makedirs(d + "/run")
    p = subprocess.Popen([stored, "-d", "-f", "/dev/null", "--data-dir",
                          d + "/data", "--runtime-dir", d + "/run"],
                         stderr=subprocess.PIPE, text=True)
    marks = {}

    def log():
        for line in p.stderr:
            for k in ("stopping", "stopped"):
                if "info: " + k in line:
                    marks[k] = time.monotonic()

    t = threading.Thread(target=log)
    t.start()
    time.sleep(1.5)  # idle
    s = time.monotonic()
    p.send_signal(signal.SIGTERM)
    while True:
        try:
            with open("/proc/%d/stat" % p.pid) as f:
                st = f.read().split()[2]
        except FileNotFoundError:
            st = "Z"
        if st == "Z":
            break
        time.sleep(0.0005)
    z = time.monotonic()
    p.wait()
    t.join()
    shutil.rmtree(d)
    ms = lambda k: "%.1f" % ((marks[k] - s) * 1000) if k in marks else "-"
    print("stopping %s stopped %s exit %.1f ms" % (ms("stopping"),
                                                  ms("stopped"),
                                                  (z - s) * 1000))


def main():
    for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 5):
        one(sys.argv[1])


if __name__ == "__main__":
    main()
