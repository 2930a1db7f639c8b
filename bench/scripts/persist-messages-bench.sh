#!/usr/bin/env bash
# The messages of persistent sessions in the journal (core/persist/README.md
# "Messages"), side by side in one run:
#
# 1. QoS 1 pairs PAIRS/PAIRS into persistent sessions (5.0, Session Expiry
#    3600, 100-byte payloads, SECONDS s) with persistence off, write and
#    fsync: delivered messages per second, the broker's CPU per million
#    deliveries, records per group commit, and with fsync the flushes per
#    second and messages per flush.
# 2. Recovery: SESSIONS persistent sessions subscribed to one filter, offline,
#    and QUEUED messages published to them at QoS 1 (QUEUED / SESSIONS each,
#    every message one REC_MSG naming every session), then kill -9 and a
#    start on the same data: the start-up line says how long recovery took.
#    Then the same with SESSIONS sessions each subscribed to its own topic
#    and one REC_MSG per delivery (the record-heavy shape).
#
# The data_dir is on the machine's disk, never tmpfs.
#
# usage: bench/scripts/persist-messages-bench.sh [BUILD_DIR] [PAIRS] [SECONDS] [SESSIONS] [QUEUED]
set -euo pipefail
build=${1:-build/release}
pairs=${2:-100}
secs=${3:-10}
sessions=${4:-100000}
queued=${5:-1000000}
root=$(cd "$(dirname "$0")/../.." && pwd)
starling=$root/$build/core/starling
bench=$root/$build/bench/starling-bench
data=$(mktemp -d /var/tmp/starling-pmsg-bench.XXXXXX)
trap 'rm -rf "$data" "$data.log"; [ -n "${pid:-}" ] && kill -9 $pid 2>/dev/null || true' EXIT
port=18892
mport=19192

# SO_REUSEPORT lets a forgotten broker on the same port take half the
# connections without a word: refuse to run beside one.
if ss -ltnH "sport = :$port" | grep -q .; then
	echo "port $port is in use: stop what listens there first" >&2
	exit 1
fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
metric() { curl -s "127.0.0.1:$mport/metrics" | awk -v n="$1" '$1 ~ "^"n"({|$)" {s += $2} END {printf "%.0f", s}'; }
field() { awk -v k="$1" '{for (i = 1; i <= NF; i++) if ($i == k) print $(i + 1)}'; }
before() { awk -v k="$1" '{for (i = 1; i <= NF; i++) if ($i == k) print $(i - 1)}'; }

start() { # mode [args...]
	local mode=$1
	shift
	local args=(--listen=127.0.0.1:$port --metrics-listen=127.0.0.1:$mport --log-level=info
		--max-sessions=$((sessions + 10000)) "$@")
	[ "$mode" = off ] || args+=(--persistence=true --data-dir="$data" --persistence-sync="$mode")
	"$starling" "${args[@]}" >>"$data.log" 2>&1 &
	pid=$!
	sleep 0.5
}

stop() {
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=
}

echo "== QoS 1 pairs $pairs/$pairs into persistent sessions, ${secs} s"
printf "%-6s %12s %14s %12s %10s %12s\n" mode "deliv/s" "cpu-s/Mdeliv" "rec/commit" "fsync/s" "msg/fsync"
for mode in off write fsync; do
	rm -rf "$data"/* "$data.log"
	start "$mode"
	t0=$(cpu_ticks $pid)
	out=$("$bench" pairs -p $port -c "$pairs" -q 1 --persistent --session-expiry 3600 \
		-d "$secs" -s 100 --quiet 2>&1)
	t1=$(cpu_ticks $pid)
	delivered=$(grep '^delivery ' <<<"$out" | field delivered)
	rate=$(grep '^delivery ' <<<"$out" | before msg/s | tail -1)
	recs=$(metric starling_journal_records_total)
	commits=$(metric starling_journal_commits_total)
	fsyncs=$(metric starling_journal_fsyncs_total)
	stop
	cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v n="$delivered" 'BEGIN {printf "%.2f", (b - a) / hz / (n / 1e6)}')
	rpc=$(awk -v r="${recs:-0}" -v c="${commits:-0}" 'BEGIN {printf "%.1f", (c > 0 ? r / c : 0)}')
	fps=$(awk -v f="${fsyncs:-0}" -v s="$secs" 'BEGIN {printf "%.0f", f / s}')
	mpf=$(awk -v f="${fsyncs:-0}" -v n="$delivered" 'BEGIN {printf "%.0f", (f > 0 ? n / f : 0)}')
	printf "%-6s %12s %14s %12s %10s %12s\n" "$mode" "$rate" "$cpu" "$rpc" "$fps" "$mpf"
done

# Persistent sessions in batches of 10,000 (the open-files limit), each
# subscribed as the sub scenario does (PREFIX/#), then offline.
make_sessions() { # prefix count
	local left=$2 b=0
	while [ "$left" -gt 0 ]; do
		local n=$((left < 10000 ? left : 10000))
		"$bench" sub -p $port -c "$n" -q 1 --persistent --session-expiry 3600 \
			--topic-prefix "$1" --id-prefix "$1-$b" -d 1 --quiet >/dev/null 2>&1
		left=$((left - n))
		b=$((b + 1))
	done
}

# kill -9 the node, start it on the same data (queue limit for $per
# messages a session), and say how long recovery took and what it holds.
kill_and_recover() {
	sleep 1
	echo "journal: $(du -sh "$data/journal" | cut -f1)"
	kill -9 $pid
	wait $pid 2>/dev/null || true
	start write --queue-messages-max=$((per + 10))
	for i in $(seq 1 600); do
		grep -q 'recovered from' "$data.log" && break
		sleep 0.1
	done
	grep -o 'recovered from [^:]* in [0-9]* ms: .*' "$data.log" | tail -1
	echo "broker RSS after recovery: $(awk '/VmRSS/ {print $2 " kB"}' /proc/$pid/status)"
	stop
}

echo
echo "== recovery: $sessions sessions, $queued queued messages (one record per message, all sessions named)"
rm -rf "$data"/* "$data.log"
per=$((queued / sessions))
start write --queue-messages-max=$((per + 10))
make_sessions q "$sessions"
"$bench" pub -p $port -c 1 -q 1 --topic-prefix q -n "$per" -s 100 --quiet >/dev/null 2>&1
kill_and_recover

echo
few=$((sessions / 100))
per=$((queued / few))
echo "== recovery: $few sessions, $queued queued messages (one record per delivery)"
rm -rf "$data"/* "$data.log"
start write --queue-messages-max=$((per + 10))
# pairs' subscribers subscribe to PREFIX/<rank>; its publishers publish to the
# same, so with the subscribers offline (a first run made them) every message
# is one delivery to one offline session.
"$bench" pairs -p $port -c "$few" -q 1 --persistent --session-expiry 3600 --topic-prefix r \
	--id-prefix r -n 1 -s 100 --quiet >/dev/null 2>&1
"$bench" pub -p $port -c "$few" -q 1 --topic-prefix r --id-prefix rp -n "$per" -s 100 --quiet >/dev/null 2>&1
kill_and_recover
