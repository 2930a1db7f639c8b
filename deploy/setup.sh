#!/usr/bin/env bash
# Install what building (and, with --test, testing) Starling needs from
# Debian's archive. Idempotent and silent when everything is present: it asks
# dpkg first and only runs apt-get for what is missing.
#
#   deploy/setup.sh          build dependencies
#   deploy/setup.sh --test   plus compilers, fuzzer runtime and real MQTT
#                            clients the test suite talks to
set -euo pipefail

build_pkgs=(gcc pkg-config meson ninja-build liburing-dev libssl-dev libjemalloc-dev
	libprotobuf-c-dev protobuf-c-compiler)
test_pkgs=(libcriterion-dev clang libclang-rt-14-dev mosquitto mosquitto-clients
	python3-paho-mqtt)

want=("${build_pkgs[@]}")
[ "${1:-}" = "--test" ] && want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
