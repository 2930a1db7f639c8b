#!/usr/bin/env bash
# Retained QoS 1 publishing with persistence off, none, write and fsync, side
# by side in one run: messages acknowledged per second and the broker's CPU
# per million messages, journal records per commit (group size) and, with
# fsync, flushes per second. The data_dir is on the machine's disk (ext4 on
# /dev/vda here), never tmpfs.
#
# usage: bench/scripts/persist-bench.sh [BUILD_DIR] [CLIENTS] [SECONDS]
set -euo pipefail
build=${1:-build/rel}
clients=${2:-100}
secs=${3:-10}
root=$(cd "$(dirname "$0")/../.." && pwd)
starling=$root/$build/core/starling
bench=$root/$build/bench/starling-bench
data=$(mktemp -d /var/tmp/starling-persist-bench.XXXXXX)
trap 'rm -rf "$data"' EXIT
port=18890
mport=19190

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
metric() { curl -s "127.0.0.1:$mport/metrics" | awk -v n="$1" '$1 ~ "^"n"({|$)" {s += $2} END {printf "%.0f", s}'; }

printf "%-8s %12s %12s %14s %12s %10s\n" mode "msg/s" "acked" "cpu-s/Mmsg" "rec/commit" "fsync/s"
for mode in off none write fsync; do
	rm -rf "$data"/*
	args=(--listen=127.0.0.1:$port --metrics-listen=127.0.0.1:$mport --log-level=warn)
	[ "$mode" = off ] || args+=(--persistence=true --data-dir="$data" --persistence-sync="$mode")
	"$starling" "${args[@]}" >"$data.log" 2>&1 &
	pid=$!
	sleep 0.5
	t0=$(cpu_ticks $pid)
	out=$("$bench" pub -p $port -c "$clients" -q 1 --retain -d "$secs" -s 100 2>&1 | grep '^publish ')
	t1=$(cpu_ticks $pid)
	acked=$(awk '{for (i = 1; i <= NF; i++) if ($i == "acked") print $(i + 1)}' <<<"$out")
	rate=$(awk '{for (i = 1; i <= NF; i++) if ($i == "msg/s") print $(i - 1)}' <<<"$out")
	recs=$(metric starling_journal_records_total 2>/dev/null || echo 0)
	commits=$(metric starling_journal_commits_total 2>/dev/null || echo 0)
	fsyncs=$(metric starling_journal_fsyncs_total 2>/dev/null || echo 0)
	hz=$(getconf CLK_TCK)
	cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v n="$acked" 'BEGIN {printf "%.2f", (b - a) / hz / (n / 1e6)}')
	rpc=$(awk -v r="${recs:-0}" -v c="${commits:-0}" 'BEGIN {printf "%.1f", (c > 0 ? r / c : 0)}')
	fps=$(awk -v f="${fsyncs:-0}" -v s="$secs" 'BEGIN {printf "%.0f", f / s}')
	printf "%-8s %12s %12s %14s %12s %10s\n" "$mode" "$rate" "$acked" "$cpu" "$rpc" "$fps"
	kill $pid
	wait $pid 2>/dev/null || true
done
rm -f "$data.log"
