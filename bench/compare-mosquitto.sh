#!/usr/bin/env bash
# Starling against Debian's mosquitto, on this machine, in one run: both
# brokers on ephemeral loopback ports, each scenario through the bench's
# comparison runner (A B A B ..., same scenario, the brokers' CPU seconds per
# million delivered from /proc), then idle memory per connection and
# latency at a fixed rate, each broker alone. Prints Markdown on stdout.
#
#   bench/compare-mosquitto.sh [BUILD_DIR] > bench/results/DATE.md
#
# Environment: ROUNDS (default 2), SECONDS_PER_RUN (default 8), WORKERS
# (Starling's; default: one per CPU).
set -euo pipefail
. "$(dirname "$0")/compare-lib.sh"
rounds=${ROUNDS:-2}
secs=${SECONDS_PER_RUN:-8}

start_brokers() {
	sport=$(free_port)
	# The same queue limits as mosquitto's config below: 1,000,000 queued
	# messages per client, in-flight bounded only by the client.
	"$starling" --listen=127.0.0.1:$sport --metrics-listen=127.0.0.1:0 --log-level=warn \
		--queue-messages-max=1000000 --queue-bytes-max=4294967296 --inflight-max=65535 \
		${WORKERS:+--workers=$WORKERS} 2>"$work/starling.log" &
	spid=$!
	pids+=("$spid")
	mport=$(free_port)
	printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_connections -1\nmax_queued_messages 1000000\nmax_inflight_messages 0\nlog_dest none\n' \
		"$mport" >"$work/mosquitto.conf"
	mosquitto -c "$work/mosquitto.conf" &
	mpid=$!
	pids+=("$mpid")
	sleep 0.5
}

echo "# Starling vs mosquitto — $(date -u +%Y-%m-%d)"
echo
machine_line
versions_line
echo "- command: \`bench/compare-mosquitto.sh\` (ROUNDS=$rounds, SECONDS_PER_RUN=$secs)"
echo
echo "A = Starling, B = mosquitto. Each figure is the mean over the rounds; the ratio is B/A (mosquitto over Starling)."
echo

compare() {
	local title=$1
	shift
	echo "## $title"
	echo
	echo '```'
	echo "\$ starling-bench compare --rounds $rounds $*"
	start_brokers
	local rc=0
	"$bench" compare --a 127.0.0.1:$sport --a-pid "$spid" --b 127.0.0.1:$mport --b-pid "$mpid" \
		--rounds "$rounds" "$@" --quiet >"$work/out" 2>&1 || rc=$?
	grep -v '^$' "$work/out" || true
	[ "$rc" -eq 0 ] || echo "(starling-bench exited $rc)"
	stop_brokers
	echo '```'
	echo
}

compare "pairs 100/100, QoS 0, 64 B, end-to-end window 64" pairs -c 100 -q 0 -s 64 -d "$secs" --e2e-window 64
compare "pairs 100/100, QoS 1, 64 B, end-to-end window 64" pairs -c 100 -q 1 -s 64 -d "$secs" --e2e-window 64 --inflight 64
compare "fanin 1000 -> 1, QoS 0, 64 B, end-to-end window 16" fanin --pubs 1000 --subs 1 -q 0 -s 64 -d "$secs" --e2e-window 16
compare "fanin 1000 -> 1, QoS 1, 64 B, end-to-end window 16" fanin --pubs 1000 --subs 1 -q 1 -s 64 -d "$secs" --e2e-window 16 --inflight 16
compare "fanout 1 -> 1000, QoS 0, 64 B, end-to-end window 64" fanout --pubs 1 --subs 1000 -q 0 -s 64 -d "$secs" --e2e-window 64
compare "fanout 1 -> 1000, QoS 1, 64 B, end-to-end window 64" fanout --pubs 1 --subs 1000 -q 1 -s 64 -d "$secs" --e2e-window 64 --inflight 64
compare "fanout 1 -> 1000, QoS 0, 64 B, end-to-end window 4" fanout --pubs 1 --subs 1000 -q 0 -s 64 -d "$secs" --e2e-window 4
compare "fanout 1 -> 1000, QoS 1, 64 B, end-to-end window 4" fanout --pubs 1 --subs 1000 -q 1 -s 64 -d "$secs" --e2e-window 4 --inflight 4
compare "latency: pairs 20 x 1000 msg/s = 20,000 QoS 1 msg/s, 64 B" pairs -c 20 -q 1 -s 64 -r 1000 -d "$secs"
compare "idle connections: 15,000 over 32 source addresses, 2 bench processes" conn -c 15000 --procs 2 --source 127.0.0.2-127.0.0.33 --connect-rate 0 -d 5
