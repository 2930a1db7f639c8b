#!/usr/bin/env bash
# The README's first command: install what is missing, build a release
# binary, and start the broker on embedded defaults (MQTT on 127.0.0.1:1883 and
# [::1]:1883, metrics on 127.0.0.1:9100: this host only). Extra arguments go to
# starling, e.g. deploy/start.sh --listen=0.0.0.0:1883 to serve other hosts.
#
# The build needs only deploy/setup.sh's build packages (no test package:
# meson's tests option is auto). It is quiet when it works; when meson or
# ninja fails, what they said is shown.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/deploy/setup.sh"
build=${BUILD_DIR:-$root/build/release}
log=$(mktemp)
quiet() {
	if ! "$@" >"$log" 2>&1; then
		cat "$log" >&2
		echo "start.sh: failed: $* (its output is above)" >&2
		rm -f "$log"
		exit 1
	fi
}
[ -f "$build/build.ninja" ] || quiet meson setup "$build" "$root"
quiet ninja -C "$build" core/starling
rm -f "$log"
exec "$build/core/starling" "$@"
