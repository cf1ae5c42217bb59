#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run.sh - the storage benchmark run: the peer baselines of
# ../shared/peers (raw fsync, Redis, PostgreSQL), then every
# eventfold-bench case against the eventfold-stored of BUILD_DIR, one
# after the other (they share the disk and the cores), in one run of
# about 4 to 5 minutes. Every line goes to stdout and to the results file
# (default BUILD_DIR/bench-results.txt, or $RESULTS); the run ends with
# bench/summarize.py's table and the targets of the issue.
#
#   bench/run.sh BUILD_DIR          (what `./dev bench` runs)
#
# Env: RESULTS (results file), PEERS (peer scripts directory, default
# $TOP/../shared/peers), SKIP_PEERS=1 (ours only), SECS (seconds per
# append case, default 5), RECOVER_EVENTS (default 5000000).
# postgres.sh needs root (it runs the cluster as user postgres); it is
# skipped otherwise. Each step is bounded with timeout(1), and each
# cleans up its own temp dir and processes.
set -uo pipefail
TOP="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$TOP/bench/common.sh"
bench_build run.sh "$@"
BENCH="$BUILD/bench/eventfold-bench"
PEERS="${PEERS:-$TOP/../shared/peers}"
RESULTS="${RESULTS:-$BUILD/bench-results.txt}"
SECS="${SECS:-5}"
RECOVER_EVENTS="${RECOVER_EVENTS:-5000000}"
for f in "$BENCH" "$STORED"; do
  [ -x "$f" ] || { echo "run.sh: $f missing; build first (./dev build)" >&2; exit 2; }
done

rev="$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git -C "$TOP" diff --quiet HEAD -- daemons libcommon 2>/dev/null; then
  rev="$rev+uncommitted-changes"
fi
{
  echo "# eventfold bench $(date -u +%FT%TZ) host=$(hostname) cores=$(nproc) kernel=$(uname -r) rev=$rev"
  echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "# mem: $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)  disk: $(df -P /tmp | awk 'NR==2{print $1}') fs=$(stat -f -c %T /tmp)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$RESULTS"

rc=0
step() { # title timeout-seconds command...
  local title="$1" limit="$2"
  shift 2
  echo "## $title" | tee -a "$RESULTS"
  if ! timeout --foreground --kill-after=15 "$limit" "$@" 2>&1 | tee -a "$RESULTS"; then
    echo "## $title FAILED" | tee -a "$RESULTS"
    rc=1
  fi
}

if [ "${SKIP_PEERS:-0}" != 1 ]; then
  if [ -d "$PEERS" ]; then
    step raw_fsync 120 "$PEERS/raw_fsync.sh"
    if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
      step redis 90 "$PEERS/redis.sh"
    else
      echo "## redis skipped: redis-server/redis-tools not installed" | tee -a "$RESULTS"
    fi
    if [ "$(id -u)" -eq 0 ] && ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1; then
      step postgres 150 "$PEERS/postgres.sh"
    else
      echo "## postgres skipped: needs root and the postgresql package" | tee -a "$RESULTS"
    fi
  else
    echo "## peers skipped: $PEERS not found" | tee -a "$RESULTS"
  fi
fi

B=("$BENCH" --stored "$STORED")
step "eventfold append c1 b1" 90 "${B[@]}" append --clients 1 --batch 1 --payload 200 --seconds "$SECS"
step "eventfold append c8 b1" 90 "${B[@]}" append --clients 8 --batch 1 --payload 200 --seconds "$SECS"
step "eventfold append c32 b1" 90 "${B[@]}" append --clients 32 --batch 1 --payload 200 --seconds "$SECS"
step "eventfold append c32 b64" 90 "${B[@]}" append --clients 32 --batch 64 --payload 200 --seconds "$SECS"
step "eventfold pipeline n32 (one client, 32 in flight)" 90 "${B[@]}" pipeline --inflight 32 --batch 1 --payload 200 --seconds "$SECS"
step "eventfold status c1 (IPC alone, no disk)" 90 "${B[@]}" status --clients 1 --seconds "$SECS"
step "eventfold status c32 (IPC alone, no disk)" 90 "${B[@]}" status --clients 32 --seconds "$SECS"
step "eventfold read-all" 180 "${B[@]}" read-all --events 1000000 --repeat 3
step "eventfold read-all, 2 readers" 180 "${B[@]}" read-all --events 1000000 --repeat 3 --readers 2
step "eventfold recover" 300 "${B[@]}" recover --events "$RECOVER_EVENTS" --repeat 3
step "eventfold restart, sealed and indexed vs no index" 600 "${B[@]}" restart --events "$RECOVER_EVENTS" --segment-size 64M --repeat 3
step "eventfold index-mem" 180 "${B[@]}" index-mem --events 2000000 --streams 1000

echo "## summary" | tee -a "$RESULTS"
python3 "$TOP/bench/summarize.py" "$RESULTS" | tee -a "$RESULTS.tmp"
cat "$RESULTS.tmp" >>"$RESULTS"
rm -f "$RESULTS.tmp"
echo "# results: $RESULTS"
exit $rc
