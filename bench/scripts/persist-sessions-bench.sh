#!/usr/bin/env bash
# Persistent sessions with persistence off, write and fsync, side by side in
# one run: connect rate of new persistent sessions (each CONNACK waits for
# its REC_SESS_PUT) and the broker's CPU per connect; then every session
# goes offline (a record each), the node is stopped (SIGTERM) and started again, and
# the start-up line says how long recovery took for them all. Sessions are
# made in batches of BATCH connections (the open-files limit) as fast as
# they go, BATCHES
# times, so the node holds BATCH * BATCHES sessions. The data_dir is on the
# machine's disk, never tmpfs.
#
# usage: bench/scripts/persist-sessions-bench.sh [BUILD_DIR] [BATCH] [BATCHES]
set -euo pipefail
build=${1:-build/release}
batch=${2:-10000}
batches=${3:-10}
root=$(cd "$(dirname "$0")/../.." && pwd)
starling=$root/$build/core/starling
bench=$root/$build/bench/starling-bench
data=$(mktemp -d /var/tmp/starling-psess-bench.XXXXXX)
trap 'rm -rf "$data" "$data.log"' EXIT
port=18891

# SO_REUSEPORT lets a forgotten broker on the same port take half the
# connections without a word: refuse to run beside one.
if ss -ltnH "sport = :$port" | grep -q .; then
	echo "port $port is in use: stop what listens there first" >&2
	exit 1
fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

start() { # mode
	local args=(--listen=127.0.0.1:$port --metrics=false --log-level=info
		--max-sessions=$((batch * batches + 1000)))
	[ "$1" = off ] || args+=(--persistence=true --data-dir="$data" --persistence-sync="$1")
	"$starling" "${args[@]}" >>"$data.log" 2>&1 &
	pid=$!
	sleep 0.5
}

printf "%-6s %10s %12s %14s %14s\n" mode sessions "conn/s" "cpu-ms/kconn" "recovery"
for mode in off write fsync; do
	rm -rf "$data"/* "$data.log"
	start "$mode"
	t0=$(cpu_ticks $pid)
	ok=0
	rate_sum=0
	for b in $(seq 1 "$batches"); do
		out=$("$bench" conn -p $port -c "$batch" --persistent --session-expiry 3600 \
			--id-prefix "s$b" -d 1 --connect-rate 0 --quiet 2>&1 | grep '^connections ')
		n=$(awk '{for (i = 1; i <= NF; i++) if ($i == "ok") print $(i + 1)}' <<<"$out")
		r=$(awk '{for (i = 1; i <= NF; i++) if ($i == "conn/s") print $(i - 1)}' <<<"$out")
		ok=$((ok + n))
		rate_sum=$(awk -v a="$rate_sum" -v b="$r" 'BEGIN {print a + b}')
	done
	t1=$(cpu_ticks $pid)
	cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v n="$ok" 'BEGIN {printf "%.1f", (b - a) / hz * 1000 / (n / 1000)}')
	rate=$(awk -v s="$rate_sum" -v n="$batches" 'BEGIN {printf "%.0f", s / n}')
	kill $pid
	wait $pid 2>/dev/null || true
	rec="-"
	if [ "$mode" != off ]; then
		start "$mode"
		rec=$(grep -o 'recovered from [^:]* in [0-9]* ms: [0-9]* sessions' "$data.log" | tail -1 |
			awk '{print $7 " in " $5 " ms"}')
		kill $pid
		wait $pid 2>/dev/null || true
	fi
	printf "%-6s %10s %12s %14s %14s\n" "$mode" "$ok" "$rate" "$cpu" "$rec"
done
