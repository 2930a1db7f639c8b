#!/usr/bin/env bash
# A local cluster in one command: N Starling nodes on loopback, each with
# its own MQTT, metrics and cluster ports, data directory and log, joining
# through the first. Prints how to reach them; Ctrl-C stops them all (each
# leaves the cluster on SIGTERM).
#
#   deploy/cluster.sh [N]          (default 3, at most 9)
#
# Node i (1..N) is node-i: MQTT 127.0.0.1:(1882+i), metrics
# 127.0.0.1:(9099+i), cluster 127.0.0.1:(7945+i). Environment:
# CLUSTER_DIR (default a new directory under /tmp), BUILD_DIR (default
# build/release), PROFILE (lan or fast, default fast: failures are detected
# in about 1.5 s on loopback), and any STARLING_* key, passed to every node.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-3}
if ! [[ $n =~ ^[1-9]$ ]]; then
	echo "usage: deploy/cluster.sh [N]   (N = 1..9 nodes)" >&2
	exit 2
fi
"$root/deploy/setup.sh"
build=${BUILD_DIR:-$root/build/release}
[ -f "$build/build.ninja" ] || meson setup "$build" "$root" >/dev/null
ninja -C "$build" core/starling >/dev/null
dir=${CLUSTER_DIR:-$(mktemp -d /tmp/starling-cluster.XXXXXX)}
mkdir -p "$dir"
profile=${PROFILE:-fast}

pids=()
stop() {
	trap - INT TERM EXIT
	echo
	echo "stopping ${#pids[@]} nodes (each leaves the cluster)..."
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "logs kept in $dir"
}
trap stop INT TERM EXIT

for i in $(seq 1 "$n"); do
	mkdir -p "$dir/node-$i"
	args=(--node-name="node-$i" --listen="127.0.0.1:$((1882 + i))"
		--metrics-listen="127.0.0.1:$((9099 + i))"
		--cluster-listen="127.0.0.1:$((7945 + i))" --cluster-profile="$profile")
	[ "$i" -gt 1 ] && args+=(--cluster-seeds="127.0.0.1:7946")
	(cd "$dir/node-$i" && exec "$build/core/starling" "${args[@]}") >"$dir/node-$i/log" 2>&1 &
	pids+=($!)
done

sleep 1
echo "Starling cluster of $n nodes on loopback ($profile profile), logs in $dir:"
for i in $(seq 1 "$n"); do
	state=dead
	kill -0 "${pids[$((i - 1))]}" 2>/dev/null && state=running
	echo "  node-$i  mqtt 127.0.0.1:$((1882 + i))  metrics http://127.0.0.1:$((9099 + i))/metrics  cluster 127.0.0.1:$((7945 + i))  ($state)"
done
echo
echo "Try: curl -s 127.0.0.1:9100/metrics | grep starling_cluster_members"
echo "     tail -f $dir/node-*/log"
echo "Ctrl-C stops them all."
wait
