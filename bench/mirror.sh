#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/mirror.sh [N] [RATE] [REPLICAS] [BUILD] - eventfold-mirrord's
# figures (issue 14), all on loopback in a temp dir:
#   1. JetStream's own ceiling: eventfold-mirror-bench plain, N messages
#      of mirrord's size and headers, async, 4096 in flight, into a
#      REPLICAS-replica stream;
#   2. mirror throughput: N events preloaded into a fresh stored, then
#      eventfold-mirrord started against an empty REPLICAS-replica
#      stream, timed until the stream's last sequence is N;
#   3. commit -> visible: RATE single-event appends per second for 10 s,
#      each timed from its append's reply to its delivery by JetStream.
# REPLICAS 3 runs three nats-servers routed into one cluster. Payloads
# are 200 bytes. Prints the lines of the program and the ratio of 2 to 1.
# A program, not a test: nothing here asserts a timing.
set -eu
N=${1:-20000}
RATE=${2:-1000}
R=${3:-1}
BUILD=${4:-build}
BUILD=$(cd "$BUILD" && pwd)
BENCH="$BUILD/bench/eventfold-mirror-bench"
tmp=$(mktemp -d /tmp/ef-mirror-bench.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
	t=0
	while ! python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null; do
		t=$((t + 1)); [ $t -lt 200 ] || { echo "port $1 never opened" >&2; exit 1; }
		sleep 0.1
	done
}

# NATS: one server, or R routed servers with their own names and stores
urls=""
cports=""
i=1
while [ $i -le "$R" ]; do
	eval "cp$i=$(port)"
	eval "cports=\"\$cports \$cp$i\""
	i=$((i + 1))
done
i=1
while [ $i -le "$R" ]; do
	p=$(port)
	conf="$tmp/nats$i.conf"
	{
		echo "server_name: n$i"
		echo "listen: 127.0.0.1:$p"
		echo "jetstream { store_dir: \"$tmp/js$i\" }"
		if [ "$R" -gt 1 ]; then
			eval "me=\$cp$i"
			routes=""
			for c in $cports; do
				[ "$c" = "$me" ] && continue
				routes="$routes${routes:+, }\"nats-route://127.0.0.1:$c\""
			done
			echo "cluster { name: efbench, listen: \"127.0.0.1:$me\", routes: [$routes] }"
		fi
	} >"$conf"
	nats-server -c "$conf" >"$tmp/nats$i.log" 2>&1 &
	pids="$pids $!"
	wait_port "$p"
	urls="${urls:+$urls,}nats://127.0.0.1:$p"
	i=$((i + 1))
done

mkdir -p "$tmp/data" "$tmp/run"
: >"$tmp/empty.conf"
"$BUILD/daemons/stored/eventfold-stored" -d -f "$tmp/empty.conf" \
	--data-dir "$tmp/data" --runtime-dir "$tmp/run" >"$tmp/stored.log" 2>&1 &
pids="$pids $!"
t=0
while [ ! -S "$tmp/run/store.sock" ]; do
	t=$((t + 1)); [ $t -lt 200 ] || { echo "stored did not start" >&2; exit 1; }
	sleep 0.1
done

echo "# mirror.sh N=$N RATE=$RATE REPLICAS=$R nats=$urls"
"$BENCH" preload --runtime-dir "$tmp/run" --events "$N" --payload 200
plain=$("$BENCH" plain --nats "$urls" --stream PLAINBENCH --events "$N" \
	--payload 200 --replicas "$R")
echo "$plain"

mport=$(port)
"$BUILD/daemons/mirrord/eventfold-mirrord" -d -f "$tmp/empty.conf" \
	--runtime-dir "$tmp/run" --nats-url "$urls" --replicas "$R" \
	--metrics-listen "127.0.0.1:$mport" >"$tmp/mirrord.log" 2>&1 &
pids="$pids $!"
mirror=$("$BENCH" wait --nats "$urls" --stream EVENTFOLD --events "$N")
echo "$mirror"
echo "$plain $mirror" | awk '{
	for (i = 1; i <= NF; i++) if ($i ~ /^events_per_s=/) { split($i, a, "="); v[++n] = a[2] }
	printf "mirror_vs_plain replicas='"$R"' ratio=%.2f\n", v[2] / v[1] }'

"$BENCH" latency --runtime-dir "$tmp/run" --nats "$urls" --stream EVENTFOLD \
	--events $((RATE * 10)) --rate "$RATE" --payload 200
curl -s "http://127.0.0.1:$mport/metrics" | grep -E '^eventfold_mirror_(position|errors_total|resyncs_total|stream_replicas) ' || true
