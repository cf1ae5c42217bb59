#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""test_dev.py - ./dev as a new user meets it (issue 13): its help, up
with a plugin directory of one's own and a metrics address, a refused
plugin shown, a plugin added and loaded by `./dev restart runnerd`, and
down stopping everything, removing the sockets and saying when nothing
ran. Prints TAP."""
import os
import shutil
import signal
import subprocess
import urllib.request

from devrun import BUILD, SRC, Dev, Tap

t = Tap()

# help: exit 0, the commented usage only
p = subprocess.run([os.path.join(SRC, "dev"), "--help"],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
out = p.stdout.decode()
t.check(p.returncode == 0, "./dev --help exits 0", out)
t.check("set -euo" not in out and "./dev restart runnerd" in out and
        "--plugin-dir" in out and "--metrics-listen" in out,
        "./dev --help is the usage, all of it and only it", out)
p = subprocess.run([os.path.join(SRC, "dev"), "frobnicate"],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
t.check(p.returncode == 1 and b"./dev up" in p.stderr,
        "./dev with an unknown command prints the usage and exits 1")

d = Dev()
try:
    rc, out = d.down()
    t.check(rc == 0 and "nothing was running" in out,
            "./dev down with nothing up says so", out)

    plugins = os.path.join(d.tmp, "my-plugins")
    os.mkdir(plugins)
    shutil.copy(os.path.join(BUILD, "examples", "plugins", "counter.so"),
                plugins)
    with open(os.path.join(plugins, "broken.so"), "w") as f:
        f.write("not a shared object\n")
    rc, out = d.up("--plugin-dir", plugins)
    t.check(rc == 0, "./dev up --plugin-dir DIR --metrics-listen ADDR", out)
    t.check("plugins:  " + plugins in out, "up names the plugin directory",
            out)
    t.check("counter.so" in out and "todo.so" not in out,
            "up lists the plugins it loaded from that directory", out)
    t.check("REFUSED" in out and "broken.so" in out and
            "cannot load" in out, "up shows the refused plugin and why", out)
    t.check("metrics:  http://%s/metrics" % d.metrics in out,
            "up prints the metrics address it was given", out)
    try:
        body = urllib.request.urlopen("http://%s/metrics" % d.metrics,
                                      timeout=10).read().decode()
        t.check("eventfold" in body, "metrics served on that address",
                body[:500])
    except OSError as e:
        t.check(False, "metrics served on that address", e)

    # a plugin added later, built as eventfold-plugin(7) says: one
    # command loads it
    p = subprocess.run(["cc", "-shared", "-fPIC", "-fvisibility=hidden",
                        "-Ilibcommon/include", "-o",
                        os.path.join(plugins, "todo.so"),
                        "examples/plugins/todo.c", "-ljansson"], cwd=SRC,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    t.check(p.returncode == 0, "eventfold-plugin(7)'s cc line builds todo",
            p.stdout.decode())
    rc, out = d.run("restart", "runnerd", "--no-build")
    t.check(rc == 0 and "stopped runnerd" in out and "todo.so" in out,
            "./dev restart runnerd loads an added plugin", out)
    ctl = [os.path.join(BUILD, "clients", "eventfoldctl", "eventfoldctl"),
           "--runtime-dir", os.path.join(d.var, "run")]
    p = subprocess.run(ctl + ["exec", "todo", "l1", "Add",
                              '{"title":"milk"}'],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    t.check(p.returncode == 0, "the added plugin serves commands",
            p.stdout.decode())

    # a daemon that died leaves its socket and lock: down removes them
    with open(os.path.join(d.var, "runnerd.pid")) as f:
        os.kill(int(f.read()), signal.SIGKILL)
    rc, out = d.down()
    t.check(rc == 0 and all("stopped %s" % n in out for n in
                            ("gatewayd", "stored")) and
            "stopped runnerd" not in out,
            "./dev down names what it stopped", out)
    run = os.path.join(d.var, "run")
    left = sorted(os.listdir(run)) if os.path.isdir(run) else []
    t.check(left == [], "./dev down leaves no socket or lock behind",
            left)
    rc, out = d.down()
    t.check(rc == 0 and "nothing was running" in out,
            "a second ./dev down says nothing was running", out)
finally:
    d.cleanup()
t.done()
