#!/usr/bin/env bash
# Builds the libFuzzer targets with clang, ASan and UBSan in build-fuzz, and runs each one
# for SECONDS (default 60) from a copy of its seed corpus (tests/fuzz/corpus/<target>), so
# new inputs do not land in the repository. Fails, printing the crashing input, if any
# target finds a crash, a leak, undefined behaviour or a broken check.
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=build-fuzz

if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false >/dev/null
else
	meson configure "$build" -Dfuzz=true >/dev/null
fi
ninja -C "$build" >/dev/null

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

status=0
for fuzzer in "$build"/tests/fuzz/fuzz-*; do
	[ -f "$fuzzer" ] && [ -x "$fuzzer" ] || continue
	target=${fuzzer##*/fuzz-}
	mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
	cp tests/fuzz/corpus/"$target"/* "$work/$target/corpus/"
	echo "== $target: ${seconds}s"
	failed=0
	if ! "$fuzzer" -max_total_time="$seconds" -max_len=65536 -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$work/$target/artifacts/" "$work/$target/corpus" \
		>"$work/$target/log" 2>&1; then
		failed=1
	fi
	grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done )' \
		"$work/$target/log" || true
	for crash in "$work/$target/artifacts"/*; do
		[ -e "$crash" ] || continue
		failed=1
		mkdir -p "$build/fuzz-crashes"
		cp "$crash" "$build/fuzz-crashes/$target-${crash##*/}"
		echo "FAIL $target: $build/fuzz-crashes/$target-${crash##*/}"
		od -A d -t x1z "$crash" | head -20
	done
	if [ "$failed" -ne 0 ]; then
		status=1
		grep -E -A30 'ERROR|check failed|runtime error' "$work/$target/log" | head -60 || true
	fi
done
if [ ! -e "$build"/tests/fuzz/fuzz-codec_validate ]; then
	echo "fuzz: no fuzz-* executables were built (is clang installed?)" >&2
	exit 1
fi
[ "$status" -eq 0 ] && echo "fuzz: no crashes" || echo "fuzz: crashes found" >&2
exit "$status"
