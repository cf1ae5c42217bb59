#!/usr/bin/env bash
# sigterm.sh [ROUNDS] - how long each idle daemon of `./dev up` takes from
# SIGTERM to its exit, ROUNDS times (default 5). Exit is when /proc shows
# the process a zombie: `./dev up`'s daemons are orphans, and the time
# until init reaps them is init's, not theirs. Runs on its own VAR (a
# temporary directory) and free ports, with the build as it is (BUILD,
# default ./build). Prints "daemon ms" lines.
#
# The clock and the poll are bash builtins ($EPOCHREALTIME, read from
# /proc, read -t on a pipe nobody writes as a 1 ms sleep): a fork per
# poll (date, awk, sleep) cost 5-50 ms each on a loaded 2-core machine
# and was most of what an earlier version of this script measured.
set -euo pipefail
TOP="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${1:-5}"
export VAR BUILD="${BUILD:-$TOP/build}"
VAR="$(mktemp -d /tmp/efsigterm.XXXXXX)"
exec {nap}< <(exec sleep 1000000) # a pipe that stays empty: read -t sleeps
napper=$!
trap '"$TOP/dev" down >/dev/null; rm -rf "$VAR"; kill "$napper"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for _ in $(seq "$ROUNDS"); do
  "$TOP/dev" up --no-build --listen "127.0.0.1:$(port)" \
    --metrics-listen "127.0.0.1:$(port)" >/dev/null {nap}<&-
  sleep 2 # idle
  for n in gatewayd runnerd stored; do
    p="$(cat "$VAR/$n.pid")"
    s="${EPOCHREALTIME/./}"
    kill -TERM "$p"
    while { read -r _ _ st _ < "/proc/$p/stat"; } 2>/dev/null &&
        [ "$st" != Z ]; do
      read -r -t 0.001 -u "$nap" _ || true
    done
    echo "$n $(( (${EPOCHREALTIME/./} - s) / 1000 ))"
  done
  "$TOP/dev" down >/dev/null
done
