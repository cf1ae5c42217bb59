#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""test_ctlman.py - eventfoldctl(8)'s SYNOPSIS and eventfoldctl's own
help say the same thing: the same commands, and for each command the
same usage line.

The page is rendered with mandoc (-T ascii, wide enough not to wrap);
each "eventfoldctl [options] VERB ..." line of its SYNOPSIS is compared
with the first line of `eventfoldctl VERB --help`, "usage: eventfoldctl
[options] VERB ...". Both are compared as a reader would: case folded
(the page sets arguments in italics, --help in capitals), blanks around
"|" dropped, runs of blanks made one. Nothing else is forgiven: an
option, argument or bracket on one side only fails. The command lists
come from the page's SYNOPSIS and from `eventfoldctl --help`'s
"commands" list. Skipped (TAP "1..0 # SKIP") without mandoc. Prints
TAP."""
import os
import re
import shutil
import subprocess
import sys

from devrun import BUILD, SRC, Tap

CTL = os.path.join(BUILD, "clients", "eventfoldctl", "eventfoldctl")
PAGE = os.path.join(SRC, "man", "eventfoldctl.8")
LEAD = "eventfoldctl [options] "


def canon(usage):
    usage = re.sub(r"\s*\|\s*", "|", usage.strip().lower())
    return re.sub(r"\s+", " ", usage)


def synopsis():
    """{verb: usage} from the page's SYNOPSIS."""
    p = subprocess.run(["mandoc", "-T", "ascii", "-O", "width=400", PAGE],
                       stdout=subprocess.PIPE, check=True)
    text = re.sub(r".\x08", "", p.stdout.decode())
    m = re.search(r"^SYNOPSIS\n(.*?)^\S", text, re.S | re.M)
    out = {}
    for line in m.group(1).splitlines():
        line = line.strip()
        if line.startswith(LEAD):
            usage = line[len(LEAD):]
            out[usage.split()[0]] = usage
    return out


def ctl(*args):
    p = subprocess.run([CTL, "-f", "/dev/null", "--runtime-dir",
                        "/nonexistent"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def main():
    if shutil.which("mandoc") is None:
        print("1..0 # SKIP mandoc is not installed")
        sys.exit(0)
    t = Tap()
    page = synopsis()
    rc, help_all, err = ctl("--help")
    t.check(rc == 0, "eventfoldctl --help", err)
    m = re.search(r"^commands.*?\n((?:  \S.*\n)+)", help_all, re.M)
    listed = [l.split()[0] for l in m.group(1).splitlines()] if m else []
    t.check(len(listed) >= 21, "--help lists the commands", help_all)
    t.check(len(page) >= 21, "the page's SYNOPSIS has a line per command",
            "\n".join(page.values()))
    for verb in sorted(set(page) - set(listed)):
        t.check(False, "%s: in eventfoldctl(8), in --help" % verb,
                "eventfoldctl(8) has \"%s\"; --help has no such "
                "command" % page[verb])
    for verb in listed:
        rc, out, err = ctl(verb, "--help")
        first = out.splitlines()[0] if out else ""
        if not t.check(rc == 0 and first.startswith("usage: " + LEAD),
                       "%s --help prints its usage" % verb,
                       "exit %d: %s%s" % (rc, out, err)):
            continue
        usage = first[len("usage: " + LEAD):]
        if verb not in page:
            t.check(False, "%s: in --help, in eventfoldctl(8)" % verb,
                    "--help: %s\neventfoldctl(8)'s SYNOPSIS has no line "
                    "for %s" % (usage, verb))
            continue
        # --help may say in parentheses what a command does
        usage = re.sub(r"\s{2,}\(.*\)$", "", usage)
        t.check(canon(usage) == canon(page[verb]),
                "%s: --help and eventfoldctl(8) agree" % verb,
                "--help:          %s\neventfoldctl(8): %s" %
                (usage, page[verb]))
    t.done()


main()
