#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""test_readme.py - the README, run as a new user would run it: a fresh
`./dev up` (its own VAR, free ports, the build as it is), the alias it
prints, then every `$ command` of the README's console blocks in the
README's order, each output compared with the README's.

What cannot be the same is normalised on both sides: UUIDs that are
random (event and command ids, the gRPC demo's stream), times, uptimes,
event rates,
the README's /path/to/eventfold (this checkout and VAR), the gRPC
address (the README's 127.0.0.1:2113 is ./dev's default) and the /tmp
the gRPC demo writes to. A command ending in & runs in the background;
its output and the next command's are compared as one set of lines, in
any order between the two. --print shows what the commands printed
instead of comparing (to write the README's outputs from a real run).
Prints TAP."""
import os
import re
import subprocess
import sys
import time

from devrun import BUILD, SRC, Dev, Tap

PRINT = "--print" in sys.argv

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                  r"[0-9a-f]{12}")
NORMALISE = [
    (UUID, "<uuid>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"), "<time>"),
    (re.compile(r'"recorded_at":\d+'), '"recorded_at":<ms>'),
    (re.compile(r"^(uptime\s+)[\d.]+ s$"), r"\1<s> s"),
    (re.compile(r"^(recovery\s+)\d+ events in \d+ ms$"),
     r"\1<n> events in <ms> ms"),
    (re.compile(r"^(index memory\s+)\d+ bytes$"), r"\1<n> bytes"),
    # projections' EV/S column: a rate over the last seconds
    (re.compile(r"^(\S+\s+(?:projection|manager)\s+\S+\s+\d+\s+\S+\s+)"
                r"\d+"), r"\1<n>"),
]


def normalise(line):
    for rx, to in NORMALISE:
        line = rx.sub(to, line)
    return line.rstrip()


def blocks(text):
    """The README's fenced blocks, in order: (language, [lines])."""
    out, lang, cur = [], None, None
    for line in text.splitlines():
        if cur is None and line.startswith("```"):
            lang, cur = line[3:].strip(), []
        elif cur is not None and line.startswith("```"):
            out.append((lang, cur))
            cur = None
        elif cur is not None:
            cur.append(line)
    return out


def steps(lines):
    """A console block's (command, expected output lines)."""
    out = []
    for line in lines:
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif out:
            out[-1][1].append(line)
    return out


def main():
    t = Tap()
    readme = open(os.path.join(SRC, "README.md")).read()
    d = Dev()
    pydir = os.path.join(d.tmp, "py")
    os.mkdir(pydir)
    try:
        rc, up = d.up()
        if not t.check(rc == 0, "./dev up", up):
            return t.done()
        m = re.search(r"^  (alias eventfoldctl='[^']*')$", up, re.M)
        t.check(m is not None, "./dev up prints an alias", up)
        alias = m.group(1)
        # the README's alias is the printed one, with its paths
        readme_alias = [l for l in readme.splitlines()
                        if l.startswith("alias eventfoldctl=")]
        checkout = os.path.dirname(BUILD)
        want = alias.replace(BUILD, "/path/to/eventfold/build").replace(
            d.var, "/path/to/eventfold/var")
        t.check(readme_alias == [want], "the README's alias is the one "
                "./dev up prints", "README: %s\nprinted: %s" %
                (readme_alias, want))
        prelude = "shopt -s expand_aliases\n%s\n" % alias

        def fix_cmd(cmd):
            cmd = cmd.replace("127.0.0.1:2113", d.listen)
            return re.sub(r"(--python_out=|PYTHONPATH=)/tmp\b",
                          r"\1" + pydir, cmd)

        def fix_expected(line):
            return line.replace("/path/to/eventfold/var", d.var).replace(
                "/path/to/eventfold/build", BUILD).replace(
                "/path/to/eventfold", checkout)

        bg = None
        for lang, lines in blocks(readme):
            if lang != "console":
                continue
            for cmd, expected in steps(lines):
                script = prelude + fix_cmd(cmd).rstrip("& ")
                if cmd.rstrip().endswith("&"):
                    bg = (cmd, expected, subprocess.Popen(
                        ["bash", "-c", script], cwd=SRC,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
                    time.sleep(1)  # until it follows (it says so)
                    continue
                # the folds a reader looks at a moment later have caught
                # up: `projections` is asked again for up to 10 s
                until = time.monotonic() + (10 if cmd.endswith(
                    "projections") else 0)
                while True:
                    p = subprocess.run(["bash", "-c", script], cwd=SRC,
                                       stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, timeout=60)
                    got = p.stdout.decode(errors="replace").splitlines()
                    if (time.monotonic() >= until or
                            [normalise(l) for l in got] ==
                            [normalise(fix_expected(l)) for l in expected]):
                        break
                    time.sleep(0.2)
                what = "$ " + cmd
                if bg is not None:
                    bcmd, bexp, proc = bg
                    bg = None
                    try:
                        bout = proc.communicate(timeout=30)[0]
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        bout = proc.communicate()[0]
                    got = got + bout.decode(errors="replace").splitlines()
                    expected = bexp + expected
                    what = "$ %s; $ %s" % (bcmd, cmd)
                    got_n = sorted(normalise(l) for l in got)
                    exp_n = sorted(normalise(fix_expected(l))
                                   for l in expected)
                else:
                    got_n = [normalise(l) for l in got]
                    exp_n = [normalise(fix_expected(l)) for l in expected]
                if PRINT:
                    print("\n".join(["$ " + cmd] + got))
                    continue
                t.check(got_n == exp_n, what,
                        "expected:\n%s\ngot:\n%s" % ("\n".join(exp_n),
                                                     "\n".join(got_n)))
    finally:
        d.cleanup()
    t.done()


main()
