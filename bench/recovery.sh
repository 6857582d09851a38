#!/usr/bin/env bash
# Table recovery benchmark: fills a table of KEYS keys (default 1,000,000) through a faustc
# worker, then measures
#   - cold restore: a worker on an empty data dir rebuilds the table from the changelog
#     (changelog records restored per second);
#   - warm restart: a worker on that data dir again (the changelog has nothing new), from
#     process start and from the partition assignment until every partition is ready;
#   - the peak RSS (bench/rusage) of each of the three workers, to compare table sizes.
# All on one `faustc broker`. Times come from the workers' log timestamps.
#
# usage: bench/recovery.sh [BUILD_DIR] [KEYS]   (default: build 1000000; builds nothing)
set -euo pipefail

BUILD=${1:-build}
KEYS=${2:-1000000}
PARTS=16
FAUSTC=$BUILD/cli/faustc
RUSAGE=$BUILD/bench/rusage
APP=$BUILD/bench/table_app.so

die() {
	echo "recovery.sh: $*" >&2
	exit 1
}

[[ -x $FAUSTC && -x $RUSAGE && -f $APP ]] || die "build first: meson setup $BUILD && ninja -C $BUILD"
APP=$(realpath "$APP")
TMP=$(mktemp -d -t faustc-recovery.XXXXXX)
BROKER_PID=
WORKER_PID=
cleanup() {
	for pid in $WORKER_PID $BROKER_PID; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

# Seconds of the day of a log line's timestamp ("2026-11-22T05:55:17.255Z ...").
secs() {
	sed -E 's/^\[?[0-9-]+T([0-9]+):([0-9]+):([0-9.]+)Z.*/\1 \2 \3/' | awk '{printf "%.3f\n", $1 * 3600 + $2 * 60 + $3}'
}

wait_log() { # file pattern count timeout_s
	local end=$((SECONDS + $4))
	while [[ $(grep -c -- "$2" "$1" 2>/dev/null || true) -lt $3 ]]; do
		[[ $SECONDS -lt $end ]] || die "timed out waiting for $3 lines '$2' in $1"
		sleep 0.2
	done
}

"$FAUSTC" -A "$APP" broker --addr-file "$TMP/url" >/dev/null 2>"$TMP/broker.log" &
BROKER_PID=$!
for _ in $(seq 100); do [[ -s $TMP/url ]] && break; sleep 0.1; done
URL=$(cat "$TMP/url")

echo "loading $KEYS events (one per key) into rec-in ($PARTS partitions)..."
awk -v n="$KEYS" 'BEGIN { for (i = 0; i < n; i++) printf "k%07d:1\n", i }' |
	"$FAUSTC" -A "$APP" send rec-in --file - --key-delimiter : --broker "$URL" --timeout 120 \
		>/dev/null

echo "filling the table..."
t0=$(date +%s.%N)
BENCH_EVENTS=$KEYS "$RUSAGE" "$FAUSTC" -A "$APP" worker --broker "$URL" --datadir "$TMP/a" \
	--commit-interval 1 -l info 2>"$TMP/fill.log"
t1=$(date +%s.%N)
fill=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')

echo "cold restore on an empty data dir..."
"$RUSAGE" "$FAUSTC" -A "$APP" worker --broker "$URL" --datadir "$TMP/b" -l info 2>"$TMP/cold.log" &
WORKER_PID=$!
wait_log "$TMP/cold.log" "restored big\[" "$PARTS" 300
kill "$WORKER_PID"
wait "$WORKER_PID" || true
WORKER_PID=
records=$(grep -o 'restored big\[[0-9]*\]: [0-9]* records' "$TMP/cold.log" | awk '{s += $3} END {print s}')
first=$(grep -m1 'restoring big\[' "$TMP/cold.log" | secs)
last=$(grep 'restored big\[' "$TMP/cold.log" | tail -1 | secs)
cold=$(awk -v a="$first" -v b="$last" 'BEGIN { printf "%.3f", b - a }')
rate=$(awk -v n="$records" -v s="$cold" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
[[ $records -eq $KEYS ]] || echo "warning: restored $records records, expected $KEYS" >&2
grep -q "removed by retention" "$TMP/cold.log" && echo "warning: the broker dropped changelog records" >&2

echo "warm restart on the same data dir..."
t0=$(date +%s.%N)
"$RUSAGE" "$FAUSTC" -A "$APP" worker --broker "$URL" --datadir "$TMP/b" -l debug 2>"$TMP/warm.log" &
WORKER_PID=$!
wait_log "$TMP/warm.log" "table big\[[0-9]*\] is current" "$PARTS" 120
kill "$WORKER_PID"
wait "$WORKER_PID" || true
WORKER_PID=
start=$(awk -v a="$t0" 'BEGIN { s = a % 86400; printf "%.3f", s }')
assigned=$(grep -m1 'partitions assigned' "$TMP/warm.log" | secs)
ready=$(grep 'is current at changelog offset' "$TMP/warm.log" | tail -1 | secs)
warm_total=$(awk -v a="$start" -v b="$ready" 'BEGIN { printf "%.3f", b - a }')
warm_tables=$(awk -v a="$assigned" -v b="$ready" 'BEGIN { printf "%.3f", b - a }')
size=$(du -sh "$TMP/b/tables" | cut -f1)
# peak RSS in MiB from the rusage line bench/rusage appends to a worker's log
rss() { grep -o 'maxrss_kb=[0-9]*' "$1" | tail -n 1 | awk -F= '{printf "%.1f", $2 / 1024}'; }

cat <<EOF

keys                                 $KEYS ($PARTS partitions), LMDB $size
fill (load consumed, table written)  $fill s
cold restore from the changelog      $records records in $cold s: $rate records/s
warm restart, start to ready         $warm_total s (group join included)
warm restart, assignment to ready    $warm_tables s
peak RSS MiB: fill, cold, warm       $(rss "$TMP/fill.log"), $(rss "$TMP/cold.log"), $(rss "$TMP/warm.log")
EOF
