#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# data.sh - rates of the data-in-and-out verbs of eventfoldctl against a
# real eventfold-stored (issue "Data in and out"): import of an
# EventfoldDB data file, export to a file (plain, zstd) and to
# /dev/null, import of that export into an empty store, and an online
# backup of the result. One line per measure on stdout.
#
#   bench/data.sh BUILD_DIR            (N events, default 2000000)
#
# Env: N (events), PAYLOAD (bytes per payload, default 200), TMPDIR.
# Cleans up its temp dir and the stores it started.
set -uo pipefail
if [ $# -lt 1 ]; then
  echo "usage: bench/data.sh BUILD_DIR" >&2
  exit 2
fi
BUILD="$(cd "$1" && pwd)" || exit 2
N="${N:-2000000}"
PAYLOAD="${PAYLOAD:-200}"
STORED="$BUILD/daemons/stored/eventfold-stored"
CTL="$BUILD/clients/eventfoldctl/eventfoldctl"
GEN="$BUILD/bench/eventfold-efdb-gen"
T="$(mktemp -d "${TMPDIR:-/tmp}/efdata.XXXXXX")"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT

start() { # name
  "$STORED" --data-dir "$T/$1" --runtime-dir "$T/$1.run" 2>>"$T/$1.log" &
  PIDS+=($!)
  for _ in $(seq 100); do
    "$CTL" --runtime-dir "$T/$1.run" --timeout-ms 200 status >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "stored $1 did not start" >&2
  exit 1
}

now() { date +%s.%N; }

measure() { # label events bytes-file command...
  local label="$1" n="$2" file="$3" t0 t1 s
  shift 3
  t0=$(now)
  "$@" >/dev/null || { echo "$label: failed" >&2; exit 1; }
  t1=$(now)
  awk -v l="$label" -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN {
    printf "%s events=%d seconds=%.2f events_per_s=%.0f", l, n, b - a,
      n / (b - a) }' </dev/null
  [ -n "$file" ] && printf ' bytes=%s' "$(stat -c %s "$file")"
  printf '\n'
}

"$GEN" "$T/efdb.dat" "$N" 64 1000 "$PAYLOAD" >/dev/null
start a
measure data_import_efdb "$N" "$T/efdb.dat" \
  "$CTL" --runtime-dir "$T/a.run" import "$T/efdb.dat" --quiet
measure data_export_file "$N" "$T/out.jsonl" \
  "$CTL" --runtime-dir "$T/a.run" export --quiet -o "$T/out.jsonl"
measure data_export_zstd "$N" "$T/out.jsonl.zst" \
  "$CTL" --runtime-dir "$T/a.run" export --quiet --zstd -o "$T/out.jsonl.zst"
measure data_export_devnull "$N" "" \
  sh -c "'$CTL' --runtime-dir '$T/a.run' export --quiet >/dev/null"
start b
measure data_import_export "$N" "$T/out.jsonl" \
  "$CTL" --runtime-dir "$T/b.run" import "$T/out.jsonl" --quiet
measure data_backup_same_fs "$N" "" \
  "$CTL" --runtime-dir "$T/b.run" backup "$T/backup"
"$CTL" --runtime-dir "$T/b.run" export --quiet -o "$T/again.jsonl"
if cmp -s "$T/out.jsonl" "$T/again.jsonl"; then
  echo "data_round_trip identical=yes"
else
  echo "data_round_trip identical=no"
fi
