#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""test_plugin.py - eventfold-plugin(7)'s EXAMPLES, run as written: every
`$ command` of the page's literal blocks, in order, each standard output
compared with the lines the page shows under it (a line `...` stands for any
number of lines; a command the page shows no output for must still exit
0). The plugin is built with the page's `cc` line against the public
header, loaded by `./dev up --plugin-dir`, a second plugin by `./dev
restart runnerd`, then a second runnerd is started by hand on the same
store and asked to exec, query and replay.

The page's paths are the reader's; the test's are private: /tmp/plugins,
/tmp/todo-data and /tmp/todo-runner.sock move under a temporary
directory, "$PWD/var/run" is the test's own ./dev VAR, `./dev up` gets
--no-build and free ports, and `eventfoldctl` is the alias ./dev up
prints. Random ids are normalised. --print shows what the commands
printed instead of comparing (to write the page's outputs from a real
run). Prints TAP."""
import os
import re
import signal
import subprocess
import sys
import time

from devrun import BUILD, SRC, Dev, Tap
from manpage import examples

PRINT = "--print" in sys.argv
PAGE = os.path.join(SRC, "man", "eventfold-plugin.7")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                  r"[0-9a-f]{12}")


def matches(got, expected):
    """Whether the lines got are the lines expected, where a line "..."
    matches any number of lines."""
    if not expected:
        return not got
    if expected[0].strip() == "...":
        return any(matches(got[i:], expected[1:])
                   for i in range(len(got) + 1))
    return bool(got) and got[0] == expected[0] and matches(got[1:],
                                                            expected[1:])


def norm(line):
    return UUID.sub("<uuid>", line.rstrip())


def main():
    t = Tap()
    steps = examples(open(PAGE).read())
    t.check(len(steps) >= 8, "eventfold-plugin(7) has its examples",
            steps)
    d = Dev()
    private = os.path.join(d.tmp, "reader")
    os.mkdir(private)
    subst = [
        ("/tmp/plugins", os.path.join(private, "plugins")),
        ("/tmp/todo-data", os.path.join(private, "todo-data")),
        ("/tmp/todo-runner.sock", os.path.join(private, "runner.sock")),
        ('"$PWD/var/run"', os.path.join(d.var, "run")),
        ("eventfold-runnerd ", os.path.join(BUILD, "daemons", "runnerd",
                                            "eventfold-runnerd") + " "),
        ("./dev up", "./dev up --no-build --listen %s --metrics-listen %s"
         % (d.listen, d.metrics)),
        ("./dev restart runnerd", "./dev restart runnerd --no-build"),
    ]
    prelude = "shopt -s expand_aliases\n"

    def private_paths(line):
        for a, b in subst[:3]:
            line = line.replace(a, b)
        return line
    background = []
    try:
        for cmd, expected in steps:
            script = cmd
            for a, b in subst:
                script = script.replace(a, b)
            bg = script.rstrip().endswith("&")
            script = prelude + script.rstrip().rstrip("&")
            what = "$ " + cmd.replace("\\\n", "").replace("\n", " ")
            if bg:
                p = subprocess.Popen(["bash", "-c", script], cwd=SRC,
                                     env=d.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL,
                                     start_new_session=True)
                background.append(p)
                # as a reader would: the socket it serves, then go on
                sock = re.search(r"ipc://(\S+)", script)
                end = time.monotonic() + 15
                while (sock and not os.path.exists(sock.group(1)) and
                       p.poll() is None and time.monotonic() < end):
                    time.sleep(0.1)
                t.check(p.poll() is None and (not sock or os.path.exists(
                    sock.group(1))), what + " (serving)")
                continue
            p = subprocess.run(["bash", "-c", script], cwd=SRC, env=d.env,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=120)
            out = p.stdout.decode(errors="replace")
            err = p.stderr.decode(errors="replace")
            got = [norm(l) for l in out.splitlines()]
            if PRINT:
                print("\n".join(["$ " + cmd] + got + ["# stderr: " + l
                                 for l in err.splitlines()]))
            else:
                exp = [norm(private_paths(l)) for l in expected]
                t.check(p.returncode == 0 and matches(got, exp), what,
                        "exit %d\nexpected:\n%s\ngot:\n%s\nstderr:\n%s" %
                        (p.returncode, "\n".join(exp), "\n".join(got),
                         err))
            m = re.search(r"^  (alias eventfoldctl='[^']*')$", out, re.M)
            if m is not None:
                prelude = "shopt -s expand_aliases\n%s\n" % m.group(1)
            elif cmd.startswith("./dev up"):
                t.check(False, "./dev up prints the eventfoldctl alias",
                        out)
    finally:
        for p in background:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        d.cleanup()
    t.done()


main()
