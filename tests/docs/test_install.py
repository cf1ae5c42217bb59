#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""test_install.py - `meson install --destdir` puts in place what a
packager ships: every manual page of man/ (each *.[1-8]) under
MANDIR/manN, byte for byte, and every systemd unit generated from
deploy/*.service.in, whose ExecStart= names the configured sbindir where
the daemon was installed. A page added to man/ but not to
man/meson.build's install list fails here.

Installs this build (--no-rebuild) into a temporary directory; needs no
root. EF_PREFIX, EF_MANDIR and EF_SBINDIR are the configured paths
(tests/docs/meson.build). Prints TAP."""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

from devrun import BUILD, SRC, Tap

PREFIX = os.environ["EF_PREFIX"]
MANDIR = os.path.join(PREFIX, os.environ["EF_MANDIR"])
SBINDIR = os.path.join(PREFIX, os.environ["EF_SBINDIR"])


def under(root, path):
    return os.path.join(root, path.lstrip("/"))


def main():
    t = Tap()
    meson = shutil.which("meson")
    if meson is None:
        print("1..0 # SKIP meson not found")
        return
    root = tempfile.mkdtemp(prefix="ef-install-")
    try:
        p = subprocess.run([meson, "install", "-C", BUILD, "--no-rebuild",
                            "--destdir", root],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if not t.check(p.returncode == 0, "meson install --destdir",
                       p.stdout.decode(errors="replace")):
            t.done()
        pages = sorted(glob.glob(os.path.join(SRC, "man", "*.[1-8]")))
        t.check(len(pages) > 0, "man/ has pages")
        for page in pages:
            name = os.path.basename(page)
            dest = under(root, os.path.join(MANDIR, "man" + name[-1], name))
            ok = os.path.isfile(dest)
            if ok:
                with open(page, "rb") as a, open(dest, "rb") as b:
                    ok = a.read() == b.read()
            t.check(ok, "man page %s installed as %s" % (name, dest),
                    "missing or different: add it to man/meson.build")
        units = sorted(glob.glob(os.path.join(SRC, "deploy",
                                              "*.service.in")))
        t.check(len(units) > 0, "deploy/ has units")
        for unit in units:
            name = os.path.basename(unit)[:-3]
            found = [os.path.join(d, name) for d, _, fs in os.walk(root)
                     if name in fs]
            if not t.check(len(found) == 1, "unit %s installed" % name,
                           "found: %r" % found):
                continue
            with open(found[0]) as f:
                execs = [line.split("=", 1)[1].split()[0]
                         for line in f if line.startswith("ExecStart=")]
            daemon = os.path.join(SBINDIR, name[:-len(".service")])
            t.check(execs == [daemon], "%s: ExecStart=%s" % (name, daemon),
                    "ExecStart: %r" % execs)
            t.check(os.access(under(root, daemon), os.X_OK),
                    "%s installed where %s starts it" % (daemon, name))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    t.done()


if __name__ == "__main__":
    sys.exit(main())
