#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# placement.sh - does placing the daemons' threads on CPUs lower latency
# and CPU per request? (issue 10 item 5, "CPU placement"). Runs the same
# request-path cases under several placements, interleaved REPS times:
#
#   none      no pinning (the kernel's choice; what the units do today)
#   same      stored, gatewayd and the load generator all on CPU 0: every
#             hand-off is a same-CPU wake-up
#   split     stored on CPU 0, gatewayd and the load generator on CPU 1
#   daemons   stored and gatewayd on CPU 0, the load generator on CPU 1
#             (what CPUAffinity=0 in both units would give a client
#             running elsewhere)
#   apart     stored on CPU 0, gatewayd on CPU 1, the load generator
#             anywhere (CPUAffinity= giving stored a CPU of its own)
#
# Cases per placement: gRPC Append at 1 and 32 clients through gatewayd
# (grpc_bench, with the gateway's and stored's CPU per append from
# /proc), and stored over IPC (eventfold-bench append) at 1 and 32
# clients. Lines are "PLACEMENT NAME events_per_s=... p50_us=...".
#
#   bench/placement.sh BUILD_DIR
#
# Env: REPS (2), SECS (4), PLACEMENTS ("none same split daemons apart"),
# RESULTS (default /tmp/placement-results.txt). Needs 2 CPUs.
set -uo pipefail
B="$(cd "${1:?usage: bench/placement.sh BUILD_DIR}" && pwd)"
REPS="${REPS:-2}"
SECS="${SECS:-4}"
PLACEMENTS="${PLACEMENTS:-none same split daemons apart}"
RESULTS="${RESULTS:-/tmp/placement-results.txt}"
echo "# placement $(date -u +%FT%TZ) cores=$(nproc) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$RESULTS"

# cpus PLACEMENT: the CPU lists of stored, gatewayd and the load
# generator ("" = any)
cpus() {
  case "$1" in
    none) echo ": : :" ;;
    same) echo "0 0 0" ;;
    split) echo "0 1 1" ;;
    daemons) echo "0 0 1" ;;
    apart) echo "0 1 :" ;;
    *) echo "placement.sh: unknown placement $1" >&2; exit 2 ;;
  esac
}
# pin CPU: the command prefix that runs a program on CPU (":" = any);
# taskset execs the program, so $! of a background start is its pid
pin() { [ "$1" = ":" ] || echo "taskset -c $1"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

grpc_cases() { # placement
  local P="$1" SC GC LC D SP GP PORT MP g0 s0 g1 s1 n0 n1 tck c
  read -r SC GC LC <<<"$(cpus "$P")"
  D="$(mktemp -d /tmp/placement.XXXXXX)"
  mkdir -p "$D/data" "$D/run"
  PORT=$((30000 + RANDOM % 20000)); MP=$((PORT + 1))
  $(pin "$SC") "$B/daemons/stored/eventfold-stored" -d --data-dir "$D/data" \
    --runtime-dir "$D/run" >"$D/stored.log" 2>&1 &
  SP=$!
  for _ in $(seq 200); do [ -S "$D/run/store.sock" ] && break; sleep 0.05; done
  $(pin "$GC") "$B/daemons/gatewayd/eventfold-gatewayd" -d --data-dir "$D/data" \
    --runtime-dir "$D/run" --listen "127.0.0.1:$PORT" \
    --metrics-listen "127.0.0.1:$MP" >"$D/gw.log" 2>&1 &
  GP=$!
  for _ in $(seq 200); do curl -sf -o /dev/null "127.0.0.1:$MP/metrics" && break; sleep 0.05; done
  tck="$(getconf CLK_TCK)"
  for c in 1 32; do
    g0="$(cpu_ticks $GP)"; s0="$(cpu_ticks $SP)"
    n0="$(curl -s "127.0.0.1:$MP/metrics" | awk '/^eventfold_appends_total /{print $2}')"
    $(pin "$LC") timeout 60 "$B/daemons/gatewayd/grpc_bench" -t "127.0.0.1:$PORT" \
      -s "$SECS" append "$c" | sed "s/^/$P /"
    g1="$(cpu_ticks $GP)"; s1="$(cpu_ticks $SP)"
    n1="$(curl -s "127.0.0.1:$MP/metrics" | awk '/^eventfold_appends_total /{print $2}')"
    awk -v n0="${n0:-0}" -v n1="${n1:-0}" -v g=$((g1 - g0)) -v s=$((s1 - s0)) \
      -v t="$tck" -v P="$P" -v c="$c" 'BEGIN { n = n1 - n0; if (n < 1) n = 1;
        printf "%s # grpc_append_c%d cpu_us_per_append gateway=%.0f stored=%.0f\n",
          P, c, g * 1e6 / t / n, s * 1e6 / t / n }'
  done
  kill "$GP"; wait "$GP" 2>/dev/null
  kill "$SP"; wait "$SP" 2>/dev/null
  rm -rf "$D"
}

# eventfold-bench starts stored itself (--stored PATH): a wrapper pins it.
stored_cases() { # placement
  local P="$1" SC GC LC W c
  read -r SC GC LC <<<"$(cpus "$P")"
  W="$(mktemp /tmp/placement-stored.XXXXXX)"
  if [ "$SC" = ":" ]; then
    printf '#!/bin/sh\nexec "%s" "$@"\n' "$B/daemons/stored/eventfold-stored" >"$W"
  else
    printf '#!/bin/sh\nexec taskset -c %s "%s" "$@"\n' "$SC" \
      "$B/daemons/stored/eventfold-stored" >"$W"
  fi
  chmod +x "$W"
  for c in 1 32; do
    $(pin "$LC") timeout 90 "$B/bench/eventfold-bench" --stored "$W" \
      --seconds "$SECS" append --clients "$c" 2>&1 | sed "s/^/$P /"
  done
  rm -f "$W"
}

for r in $(seq "$REPS"); do
  for P in $PLACEMENTS; do
    echo "# rep $r $P $(date -u +%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RESULTS"
    { grpc_cases "$P"; stored_cases "$P"; } | tee -a "$RESULTS"
  done
done
echo "# results: $RESULTS"
