#!/usr/bin/env bash
# Memory of a worker with a large table (issue 13): the same EVENTS events (default
# 1,000,000) go through table_app.so's `fill` agent (one add per event to the event's key)
# once over 1,000 keys and once over EVENTS keys, each on a fresh `faustc broker`. The peak
# RSS (bench/rusage) of the two workers is compared: the table lives in LMDB, so the large
# table should cost no more heap than the small one; the LMDB map (its pages are in RSS as
# far as they were touched) is printed next to it.
#
# usage: bench/memory.sh [BUILD_DIR] [EVENTS]   (default: build 1000000; builds nothing)
# BASE=OTHER_BUILD_DIR: the same two runs with that build too (before/after in one run).
set -euo pipefail

BUILD=${1:-build}
EVENTS=${2:-1000000}
SMALL=1000

die() {
	echo "memory.sh: $*" >&2
	exit 1
}

BASE=${BASE:-}
TMP=$(mktemp -d -t faustc-memory.XXXXXX)
BROKER_PID=
cleanup() {
	if [[ -n $BROKER_PID ]]; then
		kill "$BROKER_PID" 2>/dev/null || true
		wait "$BROKER_PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

# fill BUILD KEYS NAME: writes "peak_rss_mib lmdb_mib changelog_records seconds" to
# $TMP/NAME.out (seconds: the worker's run, start to exit after the last event)
fill() {
	local build=$1 keys=$2 dir=$TMP/$3
	local faustc=$build/cli/faustc rusage=$build/bench/rusage app
	[[ -x $faustc && -x $rusage && -f $build/bench/table_app.so ]] ||
		die "$build has no build: meson setup $build && ninja -C $build"
	app=$(realpath "$build/bench/table_app.so")
	mkdir -p "$dir"
	"$faustc" -A "$app" broker --addr-file "$dir/url" >/dev/null 2>"$dir/broker.log" &
	BROKER_PID=$!
	for _ in $(seq 600); do [[ -s $dir/url ]] && break; sleep 0.1; done
	[[ -s $dir/url ]] || die "the broker wrote no address (log: $(tail -n 3 "$dir/broker.log"))"
	local url
	url=$(cat "$dir/url")
	awk -v n="$EVENTS" -v k="$keys" 'BEGIN { for (i = 0; i < n; i++) printf "k%07d:1\n", i % k }' |
		"$faustc" -A "$app" send rec-in --file - --key-delimiter : --broker "$url" \
			--timeout 120 >/dev/null 2>"$dir/send.log" || die "loading $EVENTS events failed: $(tail -n 3 "$dir/send.log")"
	local t0 t1
	t0=$(date +%s.%N)
	BENCH_EVENTS=$EVENTS "$rusage" "$faustc" -A "$app" worker --broker "$url" \
		--datadir "$dir/data" -l info 2>"$dir/fill.log" || {
		tail -n 5 "$dir/fill.log" >&2
		die "the fill worker failed"
	}
	t1=$(date +%s.%N)
	kill "$BROKER_PID"
	wait "$BROKER_PID" 2>/dev/null || true
	BROKER_PID=
	local rss sent lmdb
	rss=$(grep -o 'maxrss_kb=[0-9]*' "$dir/fill.log" | tail -n 1 | awk -F= '{printf "%.1f", $2 / 1024}')
	sent=$(grep -o 'stats: events=[0-9]* sent=[0-9]*' "$dir/fill.log" | tail -1 | sed 's/.*sent=//')
	[[ ${sent:-0} -ge $keys ]] || die "$3: the worker sent ${sent:-no} changelog records for $keys keys"
	lmdb=$(du -sm "$dir/data/tables" | cut -f1)
	echo "$rss $lmdb $sent $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" >"$TMP/$3.out"
	rm -rf "$dir/data"
}

report() { # BUILD LABEL
	local s l s_rss s_lmdb s_secs l_rss l_lmdb l_sent l_secs
	echo "$2: filling a table of $SMALL keys with $EVENTS events ..." >&2
	fill "$1" "$SMALL" "$2-small"
	read -r s_rss s_lmdb _ s_secs <"$TMP/$2-small.out"
	echo "$2: filling a table of $EVENTS keys with $EVENTS events ..." >&2
	fill "$1" "$EVENTS" "$2-large"
	read -r l_rss l_lmdb l_sent l_secs <"$TMP/$2-large.out"
	s="$s_rss MiB (LMDB ${s_lmdb} MiB; worker ran $s_secs s)"
	l="$l_rss MiB (LMDB ${l_lmdb} MiB, $l_sent changelog records; worker ran $l_secs s)"
	printf '%-6s peak RSS, %s keys: %s\n' "$2" "$SMALL" "$s"
	printf '%-6s peak RSS, %s keys: %s\n' "$2" "$EVENTS" "$l"
	awk -v a="$l_rss" -v b="$s_rss" -v m="$l_lmdb" -v lbl="$2" 'BEGIN {
		printf "%-6s large - small: %.1f MiB (the large table'"'"'s LMDB map: %d MiB)\n", lbl, a - b, m }'
}

report "$BUILD" this
[[ -z $BASE ]] || report "$BASE" base
