# SPDX-License-Identifier: MIT
"""devrun.py - what the docs suite's tests of ./dev and the README share:
a private ./dev tree (VAR in a fresh temporary directory, free TCP ports
for gRPC and metrics, the build of EF_BUILD_ROOT used as it is), running
./dev and shell commands, and TAP output.

Every test that runs `./dev up` calls `Dev.down()` in a finally clause:
the daemons ./dev starts are not our children and would outlive us.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile

SRC = os.environ.get("EF_SOURCE_ROOT", os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.environ.get("EF_BUILD_ROOT", os.path.join(SRC, "build"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Dev:
    """./dev with VAR in a temporary directory and its own ports."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="efdocs.")
        self.var = os.path.join(self.tmp, "var")
        self.listen = "127.0.0.1:%d" % free_port()
        self.metrics = "127.0.0.1:%d" % free_port()
        self.env = dict(os.environ, VAR=self.var, BUILD=BUILD)

    def run(self, *args, timeout=120):
        """Runs ./dev ARGS; returns (exit code, stdout + stderr)."""
        p = subprocess.run([os.path.join(SRC, "dev")] + list(args),
                           cwd=SRC, env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        return p.returncode, p.stdout.decode(errors="replace")

    def up(self, *extra):
        return self.run("up", "--no-build", "--listen", self.listen,
                        "--metrics-listen", self.metrics, *extra)

    def down(self):
        return self.run("down")

    def cleanup(self):
        self.down()
        if not os.environ.get("EF_TEST_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)


class Tap:
    """TAP on stdout: one line per check, the plan at the end."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def check(self, ok, what, detail=""):
        self.n += 1
        print("%s %d - %s" % ("ok" if ok else "not ok", self.n, what))
        if not ok:
            self.failed += 1
            for line in str(detail).splitlines()[-40:]:
                print("#   " + line)
        sys.stdout.flush()
        return ok

    def done(self):
        print("1..%d" % self.n)
        sys.exit(1 if self.failed else 0)
