#!/usr/bin/env bash
# fanout-transit.sh — QoS 0 fan-out 1 -> 1000 across workers with the
# bench's end-to-end window (at most WINDOW messages published and not yet
# delivered to all 1000): what the broker drops as worker_behind, what the
# bench lost, the delivery rate and the broker's CPU per million deliveries.
#
# usage: bench/scripts/fanout-transit.sh STARLING_BINARY WINDOW [WORKERS] [BENCH]
#   WORKERS default 2; BENCH default build/release/bench/starling-bench;
#   BROKER_ARGS: more flags for the broker (e.g. --worker-transit-bytes-max=N).
# Prints one line: binary, workers, window, published, delivered, lost,
# e2e stalls, deliveries/s, broker CPU-s per million, worker_behind drops.
set -euo pipefail
bin=$1
win=$2
workers=${3:-2}
root=$(cd "$(dirname "$0")/../.." && pwd)
bench=${4:-$root/build/release/bench/starling-bench}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin" --listen=127.0.0.1:0 --metrics-listen=127.0.0.1:0 --workers="$workers" \
	--log-level=info ${BROKER_ARGS:-} 2>"$tmp/broker.log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
	grep -q "serving /metrics" "$tmp/broker.log" && break
	sleep 0.05
done
port=$(sed -n 's/.*listening for MQTT on 127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/broker.log" | head -1)
mport=$(sed -n 's/.*serving \/metrics.* on 127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/broker.log" | head -1)

"$bench" fanout -p "$port" --pubs 1 --subs 1000 -q 0 -s 64 -d 8 --e2e-window "$win" \
	--drain 30 --quiet --json --broker-pid "$pid" >"$tmp/run.json"
behind=$(curl -s "127.0.0.1:$mport/metrics" |
	sed -n 's/^starling_messages_dropped_total{reason="worker_behind"} \([0-9]*\)$/\1/p')
kill "$pid"
wait "$pid" 2>/dev/null || true
/usr/bin/python3 - "$tmp/run.json" "$bin" "$workers" "$win" "$behind" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
x = d["delivery"]
print(f"{sys.argv[2]} workers={sys.argv[3]} window={sys.argv[4]} "
      f"published={d['publish']['published']} delivered={x['delivered']} lost={x['lost']} "
      f"stalls={x['e2e_stalls']} per_s={x['per_s']:.0f} "
      f"cpu_s_per_million={d['broker']['cpu_s_per_million']:.3f} worker_behind={sys.argv[5]}")
EOF
