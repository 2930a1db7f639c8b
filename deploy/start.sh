#!/usr/bin/env bash
# The README's first command: install what is missing, build a release
# binary, and start the broker on embedded defaults (MQTT on 127.0.0.1:1883 and
# [::1]:1883, metrics on 127.0.0.1:9100: this host only). Extra arguments go to
# starling, e.g. deploy/start.sh --listen=0.0.0.0:1883 to serve other hosts.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/deploy/setup.sh"
build=${BUILD_DIR:-$root/build/release}
[ -f "$build/build.ninja" ] || meson setup "$build" "$root" >/dev/null
ninja -C "$build" core/starling >/dev/null
exec "$build/core/starling" "$@"
