#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# compare.sh - before/after runs of the request-path cases (issue 10:
# many requests per message) for one or more build dirs, interleaved
# REPS times so that both see the same machine load, between two runs of
# the peer baselines (raw fsync, Redis, PostgreSQL) of ../shared/peers.
#
#   bench/compare.sh LABEL=BUILD_DIR [LABEL=BUILD_DIR ...]
#
# Per build and repetition, each on a fresh data dir:
#   - gRPC through eventfold-gatewayd (grpc_bench): Append at 1 and 32
#     clients, and the no-op Health/Check at 1 and 32 (the gRPC core's
#     own ceiling), with the CPU time the gateway and stored spent per
#     Append (from /proc) and the messages they took;
#   - stored over IPC (eventfold-bench): append c1 and c32, STATUS c32
#     (the nng round-trip ceiling), and `pipeline --inflight 32` where
#     the build has it;
#   - Execute through runnerd at 8 and 32 clients beside stored's own
#     append rate (eventfold-runner-bench).
# Lines are "LABEL NAME events_per_s=..."; bench/summarize.py reads the
# per-label files ($RESULTS.LABEL) for medians.
#
# Env: RESULTS (default /tmp/compare-results.txt), REPS (3), SECS (4),
# SKIP_PEERS=1, PEERS (peer scripts, default $TOP/../shared/peers).
set -uo pipefail
TOP="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RESULTS="${RESULTS:-/tmp/compare-results.txt}"
REPS="${REPS:-3}"
SECS="${SECS:-4}"
PEERS="${PEERS:-$TOP/../shared/peers}"
if [ $# -lt 1 ]; then
  echo "usage: bench/compare.sh LABEL=BUILD_DIR ..." >&2
  exit 2
fi
header() {
  echo "# compare $(date -u +%FT%TZ) host=$(hostname) cores=$(nproc) load: $(cut -d' ' -f1-3 /proc/loadavg) $*"
}
header "$@" | tee "$RESULTS"
for spec in "$@"; do : >"$RESULTS.${spec%%=*}"; done

peers() {
  [ "${SKIP_PEERS:-0}" = 1 ] && return
  if [ ! -d "$PEERS" ]; then
    echo "# peers skipped: $PEERS not found (set PEERS)" | tee -a "$RESULTS"
    return
  fi
  echo "# peers $(date -u +%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RESULTS"
  timeout 120 "$PEERS/raw_fsync.sh" 2>&1 | tee -a "$RESULTS"
  timeout 90 "$PEERS/redis.sh" 2>&1 | tee -a "$RESULTS"
  if [ "$(id -u)" -eq 0 ]; then
    timeout 150 "$PEERS/postgres.sh" 2>&1 | tee -a "$RESULTS"
  fi
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

grpc_cases() { # label build
  local L="$1" B="$2" D SP GP PORT MP g0 s0 g1 s1 n m tck
  D="$(mktemp -d /tmp/compare-grpc.XXXXXX)"
  mkdir -p "$D/data" "$D/run"
  PORT=$((30000 + RANDOM % 20000)); MP=$((PORT + 1))
  "$B/daemons/stored/eventfold-stored" -d --data-dir "$D/data" \
    --runtime-dir "$D/run" >"$D/stored.log" 2>&1 &
  SP=$!
  for _ in $(seq 200); do [ -S "$D/run/store.sock" ] && break; sleep 0.05; done
  "$B/daemons/gatewayd/eventfold-gatewayd" -d --data-dir "$D/data" \
    --runtime-dir "$D/run" --listen "127.0.0.1:$PORT" \
    --metrics-listen "127.0.0.1:$MP" >"$D/gw.log" 2>&1 &
  GP=$!
  sleep 1
  tck="$(getconf CLK_TCK)"
  for c in 1 32; do
    g0="$(cpu_ticks $GP)"; s0="$(cpu_ticks $SP)"
    n="$(curl -s "127.0.0.1:$MP/metrics" | awk '/^eventfold_appends_total /{print $2}')"
    m="$(curl -s "127.0.0.1:$MP/metrics" | awk '/^eventfold_append_messages_total /{print $2}')"
    timeout 60 "$B/daemons/gatewayd/grpc_bench" -t "127.0.0.1:$PORT" \
      -s "$SECS" append "$c" | sed "s/^/$L /"
    g1="$(cpu_ticks $GP)"; s1="$(cpu_ticks $SP)"
    awk -v n0="${n:-0}" -v m0="${m:-0}" \
      -v n1="$(curl -s "127.0.0.1:$MP/metrics" | awk '/^eventfold_appends_total /{print $2}')" \
      -v m1="$(curl -s "127.0.0.1:$MP/metrics" | awk '/^eventfold_append_messages_total /{print $2}')" \
      -v g=$((g1 - g0)) -v s=$((s1 - s0)) -v t="$tck" -v L="$L" -v c="$c" \
      'BEGIN { n = n1 - n0; if (n < 1) n = 1;
        printf "%s # grpc_append_c%d cpu_us_per_append gateway=%.0f stored=%.0f appends_per_message=%s\n",
          L, c, g * 1e6 / t / n, s * 1e6 / t / n,
          (m1 == "" ? "n/a (one message each)" : sprintf("%.1f", n / (m1 - m0 > 0 ? m1 - m0 : 1))) }'
  done
  timeout 60 "$B/daemons/gatewayd/grpc_bench" -t "127.0.0.1:$PORT" \
    -s "$SECS" check 1 check 32 2>/dev/null | sed "s/^/$L /" ||
    echo "$L # grpc_bench of this build has no check mode"
  kill "$GP"; wait "$GP" 2>/dev/null
  kill "$SP"; wait "$SP" 2>/dev/null
  rm -rf "$D"
}

stored_cases() { # label build
  local L="$1" B="$2" EB="$2/bench/eventfold-bench"
  local S=(--stored "$B/daemons/stored/eventfold-stored" --seconds "$SECS")
  timeout 90 "$EB" "${S[@]}" append --clients 1 2>&1 | sed "s/^/$L /"
  timeout 90 "$EB" "${S[@]}" append --clients 32 2>&1 | sed "s/^/$L /"
  timeout 90 "$EB" "${S[@]}" status --clients 32 2>&1 | sed "s/^/$L /"
  if "$EB" --help | grep -q pipeline; then
    timeout 90 "$EB" "${S[@]}" pipeline --inflight 32 2>&1 | sed "s/^/$L /"
  fi
}

runner_cases() { # label build
  local L="$1" B="$2"
  timeout 300 "$B/daemons/runnerd/eventfold-runner-bench" --build "$B" \
    --seconds "$SECS" --clients 8,32 2>&1 | grep -E 'execute|stored_append' |
    sed "s/^/$L /"
}

peers
for r in $(seq "$REPS"); do
  for spec in "$@"; do
    L="${spec%%=*}"; B="$(cd "${spec#*=}" && pwd)"
    echo "# rep $r $L $(date -u +%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RESULTS"
    { grpc_cases "$L" "$B"; stored_cases "$L" "$B"; runner_cases "$L" "$B"; } |
      tee -a "$RESULTS" | sed "s/^$L //" >>"$RESULTS.$L"
  done
done
peers
for spec in "$@"; do
  L="${spec%%=*}"
  echo "## medians: $L" | tee -a "$RESULTS"
  python3 "$TOP/bench/summarize.py" "$RESULTS.$L" 2>/dev/null |
    sed -n '/^| case/,/^$/p' | tee -a "$RESULTS"
done
echo "# results: $RESULTS"
