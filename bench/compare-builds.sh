#!/usr/bin/env bash
# Two builds of Starling against each other in one session, to tell a
# change in the code from a change in the machine: both brokers with the
# same queue flags, the bench's comparison runner alternating A B per
# round: pairs, fanin and fanout at QoS 0 and 1, and latency at 20,000
# QoS 1 msg/s.
#
#   bench/compare-builds.sh OLD_STARLING [BUILD_DIR]   (B = BUILD_DIR's starling)
#
# OLD_STARLING is a binary built from another commit, e.g.
#   git worktree add /tmp/old REV && meson setup /tmp/old/build /tmp/old && ninja -C /tmp/old/build core/starling
# Environment: ROUNDS (default 3), SECONDS_PER_RUN (default 5).
set -euo pipefail
old=${1:?usage: bench/compare-builds.sh OLD_STARLING [BUILD_DIR]}
shift
. "$(dirname "$0")/compare-lib.sh"
rounds=${ROUNDS:-3}
secs=${SECONDS_PER_RUN:-5}
# Flags both builds know (no ops-listener keys: older builds lack them).
flags=(--log-level=warn --queue-messages-max=1000000 --queue-bytes-max=4294967296 --inflight-max=65535)

run() {
	local pa pb
	pa=$(free_port) pb=$(free_port)
	"$old" --listen=127.0.0.1:$pa "${flags[@]}" 2>"$work/old.log" &
	spid=$! # stop_brokers' names: A is the old build here
	pids+=("$spid")
	"$starling" --listen=127.0.0.1:$pb --metrics-listen=127.0.0.1:0 "${flags[@]}" 2>"$work/new.log" &
	mpid=$!
	pids+=("$mpid")
	sleep 0.7
	echo '```'
	echo "\$ starling-bench compare --a OLD --b NEW --rounds $rounds $*"
	"$bench" compare --a 127.0.0.1:$pa --a-pid "$spid" --b 127.0.0.1:$pb --b-pid "$mpid" \
		--rounds "$rounds" "$@" --quiet 2>&1 | grep -v '^$' || true
	echo '```'
	echo
	stop_brokers
}

echo "# Starling, two builds — $(date -u +%Y-%m-%d)"
echo
machine_line
echo "- A (OLD) = $old; B (NEW) = $starling at commit $(git -C "$root" rev-parse --short HEAD)"
echo
run pairs -c 100 -q 0 -s 64 -d "$secs" --e2e-window 64
run pairs -c 100 -q 1 -s 64 -d "$secs" --e2e-window 64 --inflight 64
run fanin --pubs 1000 --subs 1 -q 0 -s 64 -d "$secs" --e2e-window 16
run fanin --pubs 1000 --subs 1 -q 1 -s 64 -d "$secs" --e2e-window 16 --inflight 16
run fanout --pubs 1 --subs 1000 -q 0 -s 64 -d "$secs" --e2e-window 64
run fanout --pubs 1 --subs 1000 -q 1 -s 64 -d "$secs" --e2e-window 64 --inflight 64
run pairs -c 20 -q 1 -s 64 -r 1000 -d "$secs"
