#!/usr/bin/env bash
# Install what is missing, build, and run Starling's whole test suite:
#   0. a plain build (meson's defaults) of the broker with every program and
#      pkg-config file of the test-only packages hidden: deploy/start.sh's
#      build must not need them (one test)
#   1. release build with -Werror: unit and integration tests
#   2. address+undefined sanitizer build: the same tests
#   3. thread sanitizer build: the integration and cluster suites (where threads interact)
#   3b. a test build: 8 receive buffers per worker (the raw scenarios, TLS and
#      WebSocket tests with the provided-buffer pool running dry all the time,
#      -ENOBUFS re-arms) and the test-only fault hooks (-Dtest_hooks=true: the
#      cluster's lost-route-delta repair, tests/cluster/gap_test.py; the
#      journal's delayed flush, integration/persist_hooks)
#   4. clang libFuzzer build: each fuzz target for FUZZ_SECONDS (default 30;
#      longer runs are made outside CI and their results committed in
#      tests/fuzz/README.md)
# Ends with one line "N passed, M failed"; exits non-zero if anything failed.
#
# Environment: FUZZ_SECONDS, FUZZ_SEED (default 1: a red run is reproduced by
# running the same target with the same seed), BUILD_ROOT (default ./build),
# JOBS.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build_root=${BUILD_ROOT:-$root/build}
fuzz_seconds=${FUZZ_SECONDS:-30}
fuzz_seed=${FUZZ_SEED:-1}
jobs=${JOBS:-$(nproc)}

"$root/deploy/setup.sh" --test || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0

# meson test writes testlog.json; with the TAP protocol each Criterion test
# is one line, so count results from it rather than per executable.
count_results() {
	local log=$1/meson-logs/testlog.json
	[ -f "$log" ] || { failed=$((failed + 1)); return; }
	local p f
	read -r p f < <(/usr/bin/python3 "$root/tests/support/count_tap.py" "$log")
	passed=$((passed + p))
	failed=$((failed + f))
}

# build_and_test NAME SUITES MESON-ARGS...   (SUITES: "" for all, else "a b";
# a word with a "/" names one test: "integration/scenarios_w4")
build_and_test() {
	local name=$1 suites=$2
	shift 2
	local dir=$build_root/$name
	echo "=== $name build"
	# A build directory from an earlier run takes this run's options too
	# (-Dtests=enabled on one configured before the option existed).
	if ! if [ -f "$dir/build.ninja" ]; then meson configure "$dir" "$@" >/dev/null
	else meson setup "$dir" "$@" >/dev/null; fi ||
		! ninja -C "$dir" -j "$jobs" >"$dir.ninja.log" 2>&1; then
		cat "$dir.ninja.log" 2>/dev/null | tail -40
		echo "=== $name: build FAILED"
		failed=$((failed + 1))
		return
	fi
	echo "=== $name tests"
	local suite_args=()
	for s in $suites; do
		case $s in
		*/*) suite_args+=("${s#*/}") ;;
		*) suite_args+=(--suite "$s") ;;
		esac
	done
	meson test -C "$dir" --print-errorlogs --num-processes "$jobs" "${suite_args[@]}" \
		${MESON_TEST_ARGS:-} | grep -vE '^ok |^ *$' | tail -40
	count_results "$dir"
}

# A plain build needs no test-only package: configure with meson's defaults
# (-Dtests=auto) and build core/starling where the programs and pkg-config
# files that deploy/setup.sh's test packages ship (Criterion, node, clang,
# mosquitto, ...) do not exist: PATH and PKG_CONFIG_LIBDIR are directories of
# links to everything else. Passes only if the build works and meson really
# found neither Criterion nor node. One test.
plain_build() {
	local dir=$build_root/plain hide=$build_root/plain-hidden
	echo "=== plain build without the test-only packages"
	rm -rf "$dir" "$hide"
	mkdir -p "$hide/bin" "$hide/pkgconfig"
	declare -A shipped=()
	local f
	while read -r f; do
		shipped[$f]=1 shipped[/usr${f#/usr}]=1 # /bin/x is /usr/bin/x
	done < <(dpkg -L $("$root/deploy/setup.sh" --list-test) 2>/dev/null | grep -E '/s?bin/|\.pc$')
	for f in /usr/bin/* /usr/sbin/*; do
		[ -n "${shipped[$f]:-}" ] || [ -e "$hide/bin/${f##*/}" ] || ln -s "$f" "$hide/bin/"
	done
	local pcdir
	for pcdir in $(pkg-config --variable pc_path pkg-config | tr : ' '); do
		for f in "$pcdir"/*.pc; do
			[ -e "$f" ] && [ -z "${shipped[$f]:-}" ] && [ ! -e "$hide/pkgconfig/${f##*/}" ] &&
				ln -s "$f" "$hide/pkgconfig/"
		done
	done
	if PATH=$hide/bin PKG_CONFIG_LIBDIR=$hide/pkgconfig PKG_CONFIG_PATH= \
		meson setup "$dir" "$root" >"$dir.log" 2>&1 &&
		grep -q "Run-time dependency criterion found: NO" "$dir.log" &&
		grep -q "Program node found: NO" "$dir.log" &&
		PATH=$hide/bin ninja -C "$dir" -j "$jobs" core/starling >>"$dir.log" 2>&1 &&
		"$dir/core/starling" --check-config /dev/null >/dev/null; then
		echo "=== plain build: ok"
		passed=$((passed + 1))
	else
		tail -40 "$dir.log"
		echo "=== plain build FAILED (needs a test-only package, or hiding them did not work)"
		failed=$((failed + 1))
	fi
}

mkdir -p "$build_root"
plain_build
build_and_test release "" --werror -Dtests=enabled
build_and_test asan "" --werror -Dtests=enabled -Dbuildtype=debug -Db_sanitize=address,undefined \
	-Db_lundef=false
TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1" \
	build_and_test tsan "integration cluster" --werror -Dtests=enabled -Dbuildtype=debug -Db_sanitize=thread -Db_lundef=false
# The pool running dry matters where bytes come in: the raw scenarios and
# the TLS and WebSocket layers (the other suites add time, not paths).
build_and_test tinybuf "integration/scenarios_w1 integration/scenarios_w4 integration/tls_w4 \
	integration/persist_hooks \
	integration/ws_w4 cluster/cluster_gap" --werror -Dtests=enabled -Dtest_hooks=true \
	-Dc_args=-DSTARLING_RECV_BUFFERS=8

# Fuzzing: clang's libFuzzer, time-bounded, fails on any crash or report.
echo "=== fuzz build"
fdir=$build_root/fuzz
if { { [ -f "$fdir/build.ninja" ] && meson configure "$fdir" -Dtests=disabled >/dev/null; } ||
	CC=clang meson setup "$fdir" -Dfuzz=true -Dtests=disabled \
	-Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false >/dev/null; } &&
	ninja -C "$fdir" -j "$jobs" >"$fdir.ninja.log" 2>&1; then
	for target in "$fdir"/tests/fuzz/fuzz_*; do
		[ -f "$target" ] && [ -x "$target" ] || continue
		name=$(basename "$target")
		corpus=$root/tests/fuzz/corpus/${name#fuzz_}
		# New inputs go to $work/new, the log beside it: a log inside a
		# corpus directory is read as an input too, and its contents
		# (timings) made the same seed take other paths.
		work=$(mktemp -d)
		mkdir "$work/new"
		echo "=== $name for ${fuzz_seconds}s, seed $fuzz_seed"
		if (cd "$work" && "$target" -seed="$fuzz_seed" -max_total_time="$fuzz_seconds" -timeout=10 \
			-rss_limit_mb=2048 -print_final_stats=1 "$work/new" "$corpus" >"$work/log" 2>&1); then
			tail -3 "$work/log"
			passed=$((passed + 1))
		else
			tail -60 "$work/log"
			cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* \
				"$root/tests/fuzz/" 2>/dev/null
			# Last, where a shortened log still shows them: what the
			# target said, and the input itself (a CI clone is gone
			# afterwards): tests/fuzz/README.md replays it.
			grep -m 3 -E "^$name: |ERROR: |runtime error|invariant failed" "$work/log"
			for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
				[ -f "$f" ] || continue
				echo "=== input ${f##*/}, $(stat -c %s "$f") bytes, base64 (first 8 KiB):"
				head -c 8192 "$f" | base64 -w 0
				echo
			done
			echo "=== $name FAILED"
			failed=$((failed + 1))
		fi
		rm -rf "$work"
	done
else
	tail -40 "$fdir.ninja.log" 2>/dev/null
	echo "=== fuzz build FAILED"
	failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
