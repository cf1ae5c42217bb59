#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""test_ctlexamples.py - every command of eventfoldctl(8)'s EXAMPLES runs.

The page's EXAMPLES are shell sessions in ".Bd -literal" blocks: a line
starting with "$ " is a command (a line ending in a backslash goes on
on the next), the lines after it up to the next command are what it
prints. They are run in order, in one bash, as a reader would type
them: the daemons are the build's (eventfold-stored and eventfoldctl
first on PATH), started by the examples themselves, in a temporary
directory (TMPDIR, which the first example's `mktemp -d` uses).

A command fails the test if it exits with a status other than 0,
unless the next command is `echo $?` and the page shows that status
(the examples of errors); an `echo $?` fails if it prints something
else than the page shows. Other output is not compared: ids, times and
sizes differ from run to run. The whole session has a time limit; a
command still running then (one that waits for something that never
comes) fails. Whatever the examples leave running is killed at the
end (the session's process group). Prints TAP."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from devrun import BUILD, SRC, Tap
from manpage import examples

PAGE = os.path.join(SRC, "man", "eventfoldctl.8")
LIMIT = 150  # seconds for the whole session


def script(cmds, tmp):
    """The bash session: each command in a group whose output goes to
    files, its status to fd 3 (and back into $? for the next one)."""
    path = [os.path.join(BUILD, "daemons", "stored"),
            os.path.join(BUILD, "clients", "eventfoldctl")]
    lines = ["export PATH=%s:$PATH" % ":".join(path),
             "export TMPDIR=%s" % tmp,
             "cd %s" % tmp,
             "echo 'start 0' >&3"]
    for i, (cmd, _) in enumerate(cmds):
        lines.append("{ %s\n} >%s/out.%d 2>%s/err.%d" % (cmd, tmp, i, tmp,
                                                         i))
        lines.append("__st=$?; echo \"done %d $__st\" >&3; "
                     "echo 'start %d' >&3; (exit $__st)" % (i, i + 1))
    return "\n".join(lines) + "\n"


def main():
    tap = Tap()
    cmds = examples(open(PAGE).read())
    tap.check(len(cmds) > 10, "EXAMPLES holds commands (%d)" % len(cmds))
    tmp = tempfile.mkdtemp(prefix="efctlex.")
    status = os.path.join(tmp, "status")
    p = None
    try:
        with open(status, "w") as st:
            p = subprocess.Popen(["bash"], stdin=subprocess.PIPE,
                                 pass_fds=(st.fileno(),),
                                 start_new_session=True, cwd=tmp,
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL,
                                 preexec_fn=lambda: os.dup2(st.fileno(), 3))
            try:
                p.communicate(script(cmds, tmp).encode(), timeout=LIMIT)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
        done = {}
        started = -1
        for line in open(status):
            w = line.split()
            if w[0] == "start":
                started = int(w[1])
            elif w[0] == "done":
                done[int(w[1])] = int(w[2])

        def text(kind, i):
            try:
                return open(os.path.join(tmp, "%s.%d" % (kind, i)),
                            errors="replace").read()
            except OSError:
                return ""

        for i, (cmd, expect) in enumerate(cmds):
            what = "$ " + cmd.replace("\\\n", " ").replace("\n", " ")
            if i not in done:
                why = ("still running after %d s" % LIMIT
                       if timed_out and i == started else "not reached")
                tap.check(False, what, why)
                continue
            rc = done[i]
            detail = "exit %d\nstdout:\n%sstderr:\n%s" % (
                rc, text("out", i), text("err", i))
            if cmd.strip() == "echo $?":
                got = text("out", i).strip()
                want = expect[0].strip() if expect else ""
                tap.check(got == want, what,
                          "printed %r, the page shows %r" % (got, want))
                continue
            nxt = cmds[i + 1] if i + 1 < len(cmds) else None
            if rc != 0 and nxt is not None and nxt[0].strip() == \
                    "echo $?" and nxt[1] and nxt[1][0].strip() == str(rc):
                tap.check(True, what + " # exits %d, as shown" % rc)
                continue
            tap.check(rc == 0, what, detail)
    finally:
        if p is not None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        if not os.environ.get("EF_TEST_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
    tap.done()


if __name__ == "__main__":
    main()
