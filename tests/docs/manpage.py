# SPDX-License-Identifier: MIT
"""manpage.py - what the docs suite's tests of man pages share: the
EXAMPLES section read as the reader sees it.

A page's EXAMPLES are shell sessions in ".Bd -literal" blocks: a line
starting with "$ " is a command (a command line ending in a backslash
goes on on the next), the lines after it up to the next command are
what it prints.
"""
import re


def unroff(line):
    """The text of a line of a literal display, as the reader sees it."""
    line = line.replace("\\-", "-").replace("\\(dq", '"')
    line = line.replace("\\&", "")
    return line.replace("\\e", "\\")


def examples(page):
    """The EXAMPLES section of the mdoc source page: [(command,
    [expected output lines])], in the page's order."""
    m = re.search(r"^\.Sh EXAMPLES\n(.*?)^\.Sh ", page, re.S | re.M)
    out = []
    inblock = cont = False
    for raw in m.group(1).splitlines():
        if raw.startswith(".Bd -literal"):
            inblock = True
            continue
        if raw.startswith(".Ed"):
            inblock = cont = False
            continue
        if not inblock:
            continue
        line = unroff(raw)
        if cont:
            out[-1][0] += "\n" + line
        elif line.startswith("$ "):
            out.append([line[2:], []])
        elif out:
            out[-1][1].append(line)
        cont = line.endswith("\\") and out and (
            cont or line.startswith("$ "))
    return [(c, o) for c, o in out]
