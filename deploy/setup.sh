#!/usr/bin/env bash
# Install what building (and, with --test, testing) Starling needs from
# Debian's archive. Idempotent and silent when everything is present: it asks
# dpkg first and only runs apt-get for what is missing.
#
#   deploy/setup.sh          build dependencies
#   deploy/setup.sh --test   plus compilers, fuzzer runtime, real MQTT
#                            clients the test suite talks to, and dnsmasq
#                            (dnsmasq-base: the binary, no system service) as
#                            the DNS server of tests/cluster/dns_test.py
#   deploy/setup.sh --list-test   print the test-only packages (installs nothing;
#                            tests/run.sh hides them to prove a plain build
#                            needs none)
set -euo pipefail

build_pkgs=(gcc pkg-config meson ninja-build liburing-dev libssl-dev libjemalloc-dev libhttp-parser-dev libwslay-dev
	libprotobuf-c-dev protobuf-c-compiler)
test_pkgs=(libcriterion-dev clang libclang-rt-14-dev mosquitto mosquitto-clients openssl prometheus
	python3-paho-mqtt nodejs chromium dnsmasq-base nftables)

if [ "${1:-}" = "--list-test" ]; then
	printf '%s\n' "${test_pkgs[@]}" npm
	exit 0
fi

want=("${build_pkgs[@]}")
[ "${1:-}" = "--test" ] && want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Debian's nodejs comes without npm (some nodejs builds bundle it): ask for
# the npm package only when there is no npm command.
[ "${1:-}" = "--test" ] && ! command -v npm >/dev/null && missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}" >&2
	sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq >/dev/null
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# MQTT.js and playwright-core (which drives Debian's chromium; it downloads
# no browser of its own) for tests/integration/interop_*.mjs, pinned by
# package.json and package-lock.json there, into its gitignored
# node_modules; only when missing.
if [ "${1:-}" = "--test" ]; then
	it=$(cd "$(dirname "$0")/../tests/integration" && pwd)
	if [ ! -f "$it/node_modules/mqtt/package.json" ] ||
		[ ! -f "$it/node_modules/playwright-core/package.json" ]; then
		echo "setup: installing MQTT.js and playwright-core into tests/integration/node_modules" >&2
		(cd "$it" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	fi
fi
