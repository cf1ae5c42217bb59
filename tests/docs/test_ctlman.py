#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""test_ctlman.py - eventfoldctl(8) and eventfoldctl's own help say the
same thing: the same commands, and for each command the same usage
line, in the page's SYNOPSIS and in the command's entry in its
DESCRIPTION.

The page is rendered with mandoc (-T ascii, wide enough not to wrap);
each "eventfoldctl [options] VERB ..." line of its SYNOPSIS, and each
command's ".It" entry rendered as a synopsis line, is compared with the
first line of `eventfoldctl VERB --help`, "usage: eventfoldctl [options]
VERB ...". They are compared as a reader would: case folded
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


def render_synopsis(src):
    """{verb: usage} of the "eventfoldctl [options] ..." lines of the
    SYNOPSIS of mdoc source src."""
    p = subprocess.run(["mandoc", "-T", "ascii", "-O", "width=400"],
                       input=src.encode(), stdout=subprocess.PIPE,
                       check=True)
    text = re.sub(r".\x08", "", p.stdout.decode())
    m = re.search(r"^SYNOPSIS\n(.*?)^\S", text, re.S | re.M)
    out = {}
    for line in m.group(1).splitlines():
        line = line.strip()
        if line.startswith(LEAD):
            usage = line[len(LEAD):]
            out[usage.split()[0]] = usage
    return out


def items(verbs):
    """{verb: usage} of each command's entry in the DESCRIPTION (".It Cm
    VERB ...", or ".It Xo" then ".Cm VERB" ... ".Xc"), rendered as a
    synopsis line is."""
    lines = open(PAGE).read().splitlines()
    body = []
    for i, line in enumerate(lines):
        words = line.split()
        if line.startswith(".It Cm ") and len(words) > 2 and \
                words[2] in verbs:
            body.append(".Nm\n.Op Ar options\n." + line[len(".It "):])
        elif line == ".It Xo" and i + 1 < len(lines) and \
                lines[i + 1].split()[:1] == [".Cm"] and \
                lines[i + 1].split()[1:2] and \
                lines[i + 1].split()[1] in verbs:
            j = lines.index(".Xc", i)
            body.append(".Nm\n.Op Ar options\n" + "\n".join(
                lines[i + 1:j]))
    src = (".Dd January 1, 2026\n.Dt X 8\n.Os\n.Sh NAME\n"
           ".Nm eventfoldctl\n.Nd x\n.Sh SYNOPSIS\n" + "\n".join(body) +
           "\n.Sh DESCRIPTION\nx\n")
    return render_synopsis(src)


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
    page = render_synopsis(open(PAGE).read())
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
    described = items(set(listed))
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
        entry = described.get(verb)
        t.check(entry is not None and canon(usage) == canon(entry),
                "%s: --help and its entry in eventfoldctl(8)'s "
                "DESCRIPTION agree" % verb,
                "--help:      %s\nDESCRIPTION: %s" % (usage, entry))
    t.done()


main()
