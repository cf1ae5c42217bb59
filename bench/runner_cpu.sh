#!/bin/sh
# runner_cpu.sh - CPU time eventfold-runnerd spends idle and per EXECUTE,
# from /proc/PID/stat (utime + stime), not wall time: a figure that
# holds on a loaded machine, where throughput does not.
#
#   bench/runner_cpu.sh BUILD_DIR [N] [RUNNERD_BINARY] [IDLE_S]
#
# Starts eventfold-stored and eventfold-runnerd (the counter plugin only)
# in a temporary directory, measures runnerd's CPU over IDLE_S (default
# 10) seconds idle, then over N (default 2000) `eventfoldctl exec` of
# Increment, one at a time; per request, the idle rate over the loop's
# wall time is taken off.
set -eu
build=$(cd "$1" && pwd)
n=${2:-2000}
runnerd=${3:-$build/daemons/runnerd/eventfold-runnerd}
idle_s=${4:-10}
tmp=$(mktemp -d /tmp/runner_cpu.XXXXXX)
mkdir -p "$tmp/plugins" "$tmp/run"
cp "$build/examples/plugins/counter.so" "$tmp/plugins/"
"$build/daemons/stored/eventfold-stored" --data-dir "$tmp/data" \
    --runtime-dir "$tmp/run" 2>"$tmp/stored.log" &
spid=$!
"$runnerd" --data-dir "$tmp/data" --runtime-dir "$tmp/run" \
    --plugin-dir "$tmp/plugins" 2>"$tmp/runnerd.log" &
rpid=$!
trap 'kill $rpid $spid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
ctl="$build/clients/eventfoldctl/eventfoldctl --runtime-dir $tmp/run"
i=0
until $ctl exec counter warmup Increment '{}' >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$tmp/runnerd.log"; exit 1; }
	sleep 0.2
done
ticks() { awk '{ print $14 + $15 }' /proc/$rpid/stat; }
hz=$(getconf CLK_TCK)
t0=$(ticks); sleep "$idle_s"; t1=$(ticks)
idle=$(( (t1 - t0) * 1000000 / hz / idle_s )) # us per s
echo "idle: $idle us CPU per s ($((t1 - t0)) ticks of 1/$hz s in $idle_s s)"
w0=$(date +%s%N)
t0=$(ticks)
i=0
while [ $i -lt "$n" ]; do
	$ctl exec counter "c$((i % 50))" Increment '{}' >/dev/null
	i=$((i + 1))
done
t1=$(ticks)
w1=$(date +%s%N)
wall_ms=$(( (w1 - w0) / 1000000 ))
all=$(( (t1 - t0) * 1000000 / hz ))
net=$(( all - idle * wall_ms / 1000 ))
echo "execute: $(( all / n )) us CPU per request, $(( net / n )) net of idle ($n requests in $wall_ms ms, $((t1 - t0)) ticks)"
