# Sourced by bench/compare-*.sh (after `set -euo pipefail`), with the
# script's own arguments: the build to measure ($1, default build/release),
# a scratch directory removed at exit with every broker started, free
# loopback ports, stopping the pair of brokers, and the header's facts.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build/release}
bench=$build/bench/starling-bench
starling=$build/core/starling
ulimit -n 20000 2>/dev/null || true
work=$(mktemp -d)
pids=() # every broker started; start_brokers sets spid (Starling) and mpid (mosquitto)
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

stop_brokers() {
	kill "$spid" "$mpid" 2>/dev/null || true
	wait "$spid" "$mpid" 2>/dev/null || true
	pids=()
}

machine_line() {
	echo "- machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); bench, brokers and clients share the cores"
}

# "- starling X at commit Y, workers: ...; mosquitto version Z (Debian)"
versions_line() {
	echo "- $("$starling" --version) at commit $(git -C "$root" rev-parse --short HEAD), workers: ${WORKERS:-one per CPU}; $(mosquitto -h 2>&1 | head -1) (Debian)$*"
}
