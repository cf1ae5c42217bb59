#!/usr/bin/env bash
# sigterm.sh [ROUNDS] - how long each idle daemon of `./dev up` takes from
# SIGTERM to its exit, ROUNDS times (default 5). Exit is when /proc shows
# the process a zombie: `./dev up`'s daemons are orphans, and the time
# until init reaps them is init's, not theirs. Runs on its own VAR (a
# temporary directory) and free ports, with the build as it is (BUILD,
# default ./build). Prints "daemon ms" lines.
set -euo pipefail
TOP="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${1:-5}"
export VAR BUILD="${BUILD:-$TOP/build}"
VAR="$(mktemp -d /tmp/efsigterm.XXXXXX)"
trap '"$TOP/dev" down >/dev/null; rm -rf "$VAR"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for _ in $(seq "$ROUNDS"); do
  "$TOP/dev" up --no-build --listen "127.0.0.1:$(port)" \
    --metrics-listen "127.0.0.1:$(port)" >/dev/null
  sleep 2 # idle
  for n in gatewayd runnerd stored; do
    p="$(cat "$VAR/$n.pid")"
    s="$(date +%s%N)"
    kill -TERM "$p"
    while [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null || echo Z)" != Z ]; do
      sleep 0.002
    done
    echo "$n $(( ($(date +%s%N) - s) / 1000000 ))"
  done
  "$TOP/dev" down >/dev/null
done
