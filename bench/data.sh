#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# data.sh - rates of the data-in-and-out verbs of eventfoldctl against a
# real eventfold-stored (issue "Data in and out"): import of an
# EventfoldDB data file, export to a file (plain, zstd) and to
# /dev/null, import of that export into an empty store, and an online
# backup of the result. The exports start once stored has indexed what
# the import sealed (indexed). One line per measure on stdout: wall
# seconds and events/s, then the CPU seconds of eventfoldctl (cpu_ctl)
# and of the store it talks to (cpu_stored) and events per CPU-second
# of the busier of the two (events_per_cpu_s): on a machine shared with
# other jobs the wall rate is a floor; the CPU figures say what a quiet
# machine with a core for each side would reach.
#
#   bench/data.sh BUILD_DIR            (N events, default 2000000)
#
# Env: N (events), PAYLOAD (bytes per payload, default 200), TMPDIR,
# IMPORT_ARGS (more arguments for the EventfoldDB import, e.g.
# "--in-flight 4"),
# TIMEOUT_MS (eventfoldctl --timeout-ms, default 60000; an eventfoldctl
# from before import waited up to 120 s per batch stopped UNAVAILABLE
# when one 4096-event IMPORT took stored over its default 5 s).
# Cleans up its temp dir and the stores it started.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_build data.sh "$@"
N="${N:-2000000}"
PAYLOAD="${PAYLOAD:-200}"
TIMEOUT_MS="${TIMEOUT_MS:-60000}"
GEN="$BUILD/bench/eventfold-efdb-gen"
T="$(mktemp -d "${TMPDIR:-/tmp}/efdata.XXXXXX")"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT

declare -A SPID
start() { # name
  "$STORED" --data-dir "$T/$1" --runtime-dir "$T/$1.run" 2>>"$T/$1.log" &
  PIDS+=($!)
  SPID[$1]=$!
  for _ in $(seq 100); do
    "$CTL" --runtime-dir "$T/$1.run" --timeout-ms 200 status >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "stored $1 did not start" >&2
  exit 1
}

now() { date +%s.%N; }

# Waits until stored NAME has indexed every sealed segment (its
# indexed_to reaches the first position of the hot segment, the newest
# seg-*.log), so that no indexer work runs beside what is measured next:
# right after an import of 1M events the indexer's LMDB work on the
# sealed segment took 0.8-1 s of CPU, which ran beside the first export.
indexed() {
  local hot want got
  hot=$(ls "$T/$1"/seg-*.log 2>/dev/null | sort | tail -1)
  want=$(basename "$hot" .log)
  want=$((10#${want#seg-}))
  for _ in $(seq 600); do
    got=$("$CTL" --runtime-dir "$T/$1.run" --json status 2>/dev/null |
      sed -n 's/.*"indexed_to":\([0-9]*\).*/\1/p')
    [ -n "$got" ] && [ "$got" -ge "$want" ] && return
    sleep 0.5
  done
  echo "stored $1 did not finish indexing (at ${got:-?} of $want)" >&2
  exit 1
}

# CPU seconds (user + system) of stored NAME so far
cpu_of() {
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' \
    "/proc/${SPID[$1]}/stat"
}

measure() { # label store events bytes-file command...
  local label="$1" store="$2" n="$3" file="$4" t0 t1 c0 c1 u
  shift 4
  c0=$(cpu_of "$store")
  t0=$(now)
  /usr/bin/time -f "%U %S" -o "$T/time" "$@" >/dev/null ||
    { echo "$label: failed" >&2; exit 1; }
  t1=$(now)
  c1=$(cpu_of "$store")
  u=$(awk '{ print $1 + $2 }' "$T/time")
  awk -v l="$label" -v n="$n" -v a="$t0" -v b="$t1" -v u="$u" \
    -v s="$(awk -v x="$c0" -v y="$c1" 'BEGIN { print y - x }')" 'BEGIN {
    m = u > s ? u : s
    printf "%s events=%d seconds=%.2f events_per_s=%.0f cpu_ctl=%.2f" \
      " cpu_stored=%.2f events_per_cpu_s=%.0f", l, n, b - a, n / (b - a),
      u, s, (m > 0 ? n / m : 0) }' </dev/null
  [ -n "$file" ] && printf ' bytes=%s' "$(stat -c %s "$file")"
  printf '\n'
}

"$GEN" "$T/efdb.dat" "$N" 64 1000 "$PAYLOAD" >/dev/null
start a
measure data_import_efdb a "$N" "$T/efdb.dat" \
  "$CTL" --timeout-ms "$TIMEOUT_MS" --runtime-dir "$T/a.run" import "$T/efdb.dat" --quiet ${IMPORT_ARGS:-}
indexed a
measure data_export_file a "$N" "$T/out.jsonl" \
  "$CTL" --runtime-dir "$T/a.run" export --quiet -o "$T/out.jsonl"
measure data_export_zstd a "$N" "$T/out.jsonl.zst" \
  "$CTL" --runtime-dir "$T/a.run" export --quiet --zstd -o "$T/out.jsonl.zst"
measure data_export_devnull a "$N" "" \
  sh -c "'$CTL' --runtime-dir '$T/a.run' export --quiet >/dev/null"
start b
measure data_import_export b "$N" "$T/out.jsonl" \
  "$CTL" --timeout-ms "$TIMEOUT_MS" --runtime-dir "$T/b.run" import "$T/out.jsonl" --quiet
measure data_backup_same_fs b "$N" "" \
  "$CTL" --runtime-dir "$T/b.run" backup "$T/backup"
"$CTL" --runtime-dir "$T/b.run" export --quiet -o "$T/again.jsonl"
if cmp -s "$T/out.jsonl" "$T/again.jsonl"; then
  echo "data_round_trip identical=yes"
else
  echo "data_round_trip identical=no"
fi
