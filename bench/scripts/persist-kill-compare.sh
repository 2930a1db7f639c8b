#!/usr/bin/env bash
# What kill -9 loses: N retained QoS 1 messages acknowledged to
# mosquitto_pub, then kill -9, then a restart on the same data, then the
# retained messages counted with mosquitto_sub. Then the same for N QoS 1
# messages queued for an offline persistent session (mosquitto_sub -c,
# clean session 0), counted when it returns. Debian's mosquitto with
# `persistence true` (its default autosave_interval, 1800 s) against
# Starling with persistence_sync write and fsync, in one run.
#
# usage: bench/scripts/persist-kill-compare.sh [BUILD_DIR] [N]
set -euo pipefail
build=${1:-build/rel}
n=${2:-1000}
root=$(cd "$(dirname "$0")/../.." && pwd)
starling=$root/$build/core/starling
dir=$(mktemp -d /var/tmp/starling-kill-compare.XXXXXX)
trap 'rm -rf "$dir"; kill $(jobs -p) 2>/dev/null || true' EXIT
port=18895

count() {
	timeout 5 mosquitto_sub -p $port -t 'kc/#' -W 2 2>/dev/null | wc -l || true
}

# The offline persistent session's messages, when it returns.
queued() {
	timeout 8 mosquitto_sub -p $port -i kq-sub -c -q 1 -t 'kq/#' -W 3 2>/dev/null | wc -l || true
}

run_queued() { # name start-command...
	local name=$1
	shift
	"$@" >"$dir/$name.q.log" 2>&1 &
	local pid=$!
	sleep 0.5
	queued >/dev/null # the session and its subscription, then offline
	for i in $(seq 1 "$n"); do
		mosquitto_pub -p $port -t "kq/x" -m "q$i" -q 1 || echo "publish $i failed"
	done
	kill -9 $pid
	wait $pid 2>/dev/null || true
	"$@" >>"$dir/$name.q.log" 2>&1 &
	pid=$!
	sleep 0.5
	local got
	got=$(queued)
	printf "%-22s acknowledged %6d   queued after kill -9    %6d   lost %6d\n" "$name" "$n" \
		"$got" $((n - got))
	kill $pid
	wait $pid 2>/dev/null || true
}

run() { # name start-command...
	local name=$1
	shift
	"$@" >"$dir/$name.log" 2>&1 &
	local pid=$!
	sleep 0.5
	for i in $(seq 1 "$n"); do
		mosquitto_pub -p $port -t "kc/$i" -m "v$i" -q 1 -r || echo "publish $i failed"
	done
	kill -9 $pid
	wait $pid 2>/dev/null || true
	"$@" >>"$dir/$name.log" 2>&1 &
	pid=$!
	sleep 0.5
	local got
	got=$(count)
	printf "%-22s acknowledged %6d   after kill -9 and restart %6d   lost %6d\n" "$name" "$n" \
		"$got" $((n - got))
	kill $pid
	wait $pid 2>/dev/null || true
}

cat >"$dir/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $dir/mosq/
CONF
mkdir -p "$dir/mosq"
run "mosquitto (persistence)" /usr/sbin/mosquitto -c "$dir/mosquitto.conf"
for sync in write fsync; do
	run "starling ($sync)" "$starling" --listen=127.0.0.1:$port --metrics=false \
		--persistence=true --data-dir="$dir/s-$sync" --persistence-sync=$sync
done

echo
rm -rf "$dir/mosq" "$dir"/s-*
mkdir -p "$dir/mosq"
run_queued "mosquitto (persistence)" /usr/sbin/mosquitto -c "$dir/mosquitto.conf"
for sync in write fsync; do
	run_queued "starling ($sync)" "$starling" --listen=127.0.0.1:$port --metrics=false \
		--persistence=true --data-dir="$dir/s-$sync" --persistence-sync=$sync
done
