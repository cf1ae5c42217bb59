#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""test_ipcdoc.py - proto/IPC.md describes every operation and status of
libcommon/ipc.h's tables.

The rows of the EF_OPS X-macro (name, number, wire name) and of
EF_STATUSES (name, number, gRPC code, text) are read from ipc.h as the
compiler sees them; IPC.md must have a section "### NAME (NUMBER)" for
each operation and name each status, with its number, in the first two
cells of a row of its Statuses table (a row may list several names and a
range "17-21"). A section or row for something the tables do not have
fails too, as does a protocol version in the title other than
EF_PROTO_VERSION. Prints TAP."""
import os
import re
import sys

from devrun import SRC, Tap

IPC_H = os.path.join(SRC, "libcommon", "ipc.h")
IPC_MD = os.path.join(SRC, "proto", "IPC.md")


def macro_rows(text, name):
    """The X(...) rows of #define name(X), as lists of stripped fields."""
    m = re.search(r"^#define %s\(X\)((?:.*\\\n)*.*)$" % name, text, re.M)
    if m is None:
        return None
    body = m.group(1).replace("\\\n", "\n")
    return [[f.strip() for f in row.split(",")]
            for row in re.findall(r"X\(([^)]*)\)", body)]


def status_rows(md):
    """{name: number} from the Statuses table's first two cells."""
    m = re.search(r"^## Statuses\n(.*?)^## ", md, re.S | re.M)
    out = {}
    if m is None:
        return out
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.match(r"^\d+(-\d+)?$", cells[1]):
            continue
        names = [n.strip() for n in cells[0].split(",")]
        lo, _, hi = cells[1].partition("-")
        nums = list(range(int(lo), int(hi or lo) + 1))
        if len(nums) != len(names):
            nums = [None] * len(names)
        for n, v in zip(names, nums):
            out[n] = v
    return out


def main():
    t = Tap()
    h = open(IPC_H).read()
    md = open(IPC_MD).read()

    ops = macro_rows(h, "EF_OPS")
    statuses = macro_rows(h, "EF_STATUSES")
    if not t.check(bool(ops) and bool(statuses),
                   "ipc.h has the EF_OPS and EF_STATUSES tables"):
        t.done()

    ver = re.search(r"^#define EF_PROTO_VERSION\s+(\d+)", h, re.M)
    title = re.search(r"^# .*\(version (\d+)\)", md, re.M)
    t.check(ver is not None and title is not None and
            ver.group(1) == title.group(1),
            "IPC.md's title names protocol version %s" %
            (ver.group(1) if ver else "?"),
            "title: %s" % (title.group(0) if title else "none"))

    sections = {m.group(1): int(m.group(2)) for m in
                re.finditer(r"^### ([A-Z_]+) \((\d+)\)$", md, re.M)}
    for row in ops:
        name, num = row[0], row[1]
        t.check(sections.get(name) == int(num),
                "op %s (%s) has a section \"### %s (%s)\"" %
                (name, num, name, num),
                "IPC.md has: %r" % sections.get(name))
    known = {row[0] for row in ops}
    for name in sorted(set(sections) - known):
        t.check(False, "section %s is an op of ipc.h" % name,
                "no such op in EF_OPS")

    rows = status_rows(md)
    for row in statuses:
        name, num = row[0], row[1]
        t.check(rows.get(name) == int(num),
                "status %s (%s) is in the Statuses table" % (name, num),
                "IPC.md has: %r" % rows.get(name, "nothing"))
    known = {row[0] for row in statuses}
    for name in sorted(set(rows) - known):
        t.check(False, "status row %s is a status of ipc.h" % name,
                "no such status in EF_STATUSES")
    t.done()


if __name__ == "__main__":
    sys.exit(main())
