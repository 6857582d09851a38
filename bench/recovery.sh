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
# usage: bench/recovery.sh [--broker kafka://HOST:PORT] [BUILD_DIR] [KEYS]
#        (default: build 1000000; builds nothing)
# --broker: a real Kafka cluster instead of the embedded broker (scripts/kafka.sh start); it
# must not have the bench's topics yet (the fill reads rec-in from its start).
# ROUNDS=N: N cold restores (each onto an empty data dir) and N warm restarts; the medians.
# BASE=OTHER_BUILD_DIR: each round also runs that build's worker on the same broker and data
# (before/after in one run) and the ratios are printed.
set -euo pipefail

KAFKA=
if [[ ${1:-} == --broker ]]; then
	KAFKA=${2:?--broker needs kafka://HOST:PORT}
	[[ $KAFKA == kafka://* ]] || KAFKA=kafka://$KAFKA
	shift 2
fi
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

ROUNDS=${ROUNDS:-1}
BASE=${BASE:-}

[[ -x $FAUSTC && -x $RUSAGE && -f $APP ]] || die "build first: meson setup $BUILD && ninja -C $BUILD"
APP=$(realpath "$APP")
if [[ -n $BASE ]]; then
	[[ -x $BASE/cli/faustc && -f $BASE/bench/table_app.so ]] || die "BASE=$BASE has no build"
	BASE_APP=$(realpath "$BASE/bench/table_app.so")
fi
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

broker_args=()
if [[ -n $KAFKA ]]; then
	if command -v kcat >/dev/null &&
		kcat -b "${KAFKA#kafka://}" -L -t rec-in 2>/dev/null | grep -Eq 'topic "rec-in" with [1-9]'; then
		die "$KAFKA already has topic rec-in; run on a fresh cluster (scripts/kafka.sh start --dir DIR)"
	fi
	broker_args=(--broker "$KAFKA")
fi
"$FAUSTC" -A "$APP" broker "${broker_args[@]}" --addr-file "$TMP/url" >/dev/null 2>"$TMP/broker.log" &
BROKER_PID=$!
for _ in $(seq 600); do [[ -s $TMP/url ]] && break; sleep 0.1; done
[[ -s $TMP/url ]] || die "the broker wrote no address (log: $(tail -n 3 "$TMP/broker.log"))"
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
sent=$(grep -o 'stats: events=[0-9]* sent=[0-9]*' "$TMP/fill.log" | tail -1 | sed 's/.*sent=//')
[[ ${sent:-0} -ge $KEYS ]] ||
	echo "warning: the fill worker sent ${sent:-no} changelog records for $KEYS keys; the restores rate what it sent" >&2

# run_until FAUSTC APP DIR LOG PATTERN TIMEOUT_S: a worker on data dir DIR until its log
# has PARTS lines matching PATTERN, then stopped. -l debug: a partition whose changelog is
# empty says so only at debug ("is current").
run_until() {
	"$RUSAGE" "$1" -A "$2" worker --broker "$URL" --datadir "$3" -l debug 2>"$4" &
	WORKER_PID=$!
	wait_log "$4" "$5" "$PARTS" "$6"
	kill "$WORKER_PID"
	wait "$WORKER_PID" || true
	WORKER_PID=
}

# cold FAUSTC APP DIR LOG: a worker on the empty data dir DIR until every partition is
# restored; prints "records seconds rate".
cold() {
	run_until "$1" "$2" "$3" "$4" "restored big\[\|table big\[[0-9]*\] is current" 300
	local records first last
	records=$(grep -o 'restored big\[[0-9]*\]: [0-9]* records' "$4" | awk '{s += $3} END {print s}')
	first=$(grep -m1 'restoring big\[' "$4" | secs)
	last=$(grep 'restored big\[' "$4" | tail -1 | secs)
	[[ $records -eq $KEYS ]] || echo "warning: $4: restored $records records, expected $KEYS" >&2
	grep -q "removed by retention" "$4" && echo "warning: the broker dropped changelog records" >&2
	awk -v n="$records" -v a="$first" -v b="$last" \
		'BEGIN { s = b - a; printf "%d %.3f %.0f\n", n, s, (s > 0 ? n / s : 0) }'
}

# warm FAUSTC APP DIR LOG: a worker on the restored data dir DIR until every partition is
# current; prints "start-to-ready assignment-to-ready" in seconds.
warm() {
	local t0 start assigned ready
	t0=$(date +%s.%N)
	run_until "$1" "$2" "$3" "$4" "table big\[[0-9]*\] is current" 120
	start=$(awk -v a="$t0" 'BEGIN { s = a % 86400; printf "%.3f", s }')
	assigned=$(grep -m1 'partitions assigned' "$4" | secs)
	ready=$(grep 'is current at changelog offset' "$4" | tail -1 | secs)
	awk -v a="$start" -v b="$ready" -v c="$assigned" 'BEGIN { printf "%.3f %.3f\n", b - a, b - c }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

for r in $(seq "$ROUNDS"); do
	echo "round $r: cold restore on an empty data dir, then a warm restart on it..."
	rm -rf "$TMP/b"
	cold "$FAUSTC" "$APP" "$TMP/b" "$TMP/cold.log" >"$TMP/res"
	read -r records cold rate <"$TMP/res"
	warm "$FAUSTC" "$APP" "$TMP/b" "$TMP/warm.log" >"$TMP/res"
	read -r warm_total warm_tables <"$TMP/res"
	echo "  this build: $rate records/s ($cold s), warm $warm_total s / $warm_tables s"
	echo "$rate" >>"$TMP/rates"
	echo "$warm_total" >>"$TMP/warm_totals"
	echo "$warm_tables" >>"$TMP/warm_tables"
	if [[ -n $BASE ]]; then
		rm -rf "$TMP/base"
		cold "$BASE/cli/faustc" "$BASE_APP" "$TMP/base" "$TMP/base-cold.log" >"$TMP/res"
		read -r _ bcold brate <"$TMP/res"
		warm "$BASE/cli/faustc" "$BASE_APP" "$TMP/base" "$TMP/base-warm.log" >"$TMP/res"
		read -r bwt bwa <"$TMP/res"
		echo "  base:       $brate records/s ($bcold s), warm $bwt s / $bwa s"
		echo "$brate" >>"$TMP/base_rates"
		echo "$bwa" >>"$TMP/base_warm_tables"
		awk -v a="$rate" -v b="$brate" 'BEGIN { printf "%.3f\n", (b > 0 ? a / b : 0) }' >>"$TMP/ratios"
	fi
done
rate=$(median <"$TMP/rates")
warm_total=$(median <"$TMP/warm_totals")
warm_tables=$(median <"$TMP/warm_tables")
size=$(du -sh "$TMP/b/tables" | cut -f1)
# peak RSS in MiB from the rusage line bench/rusage appends to a worker's log
rss() { grep -o 'maxrss_kb=[0-9]*' "$1" | tail -n 1 | awk -F= '{printf "%.1f", $2 / 1024}'; }

cat <<EOF

keys                                 $KEYS ($PARTS partitions), LMDB $size
fill (load consumed, table written)  $fill s
cold restore from the changelog      $records records: $rate records/s (median of $ROUNDS)
warm restart, start to ready         $warm_total s (group join included; median)
warm restart, assignment to ready    $warm_tables s (median)
peak RSS MiB: fill, cold, warm       $(rss "$TMP/fill.log"), $(rss "$TMP/cold.log"), $(rss "$TMP/warm.log")
EOF
if [[ -n $BASE ]]; then
	cat <<EOF
base ($BASE) cold restore    $(median <"$TMP/base_rates") records/s (median)
base warm, assignment to ready       $(median <"$TMP/base_warm_tables") s (median)
cold restore this/base               $(median <"$TMP/ratios") (median of the rounds' ratios: $(paste -sd' ' "$TMP/ratios"))
EOF
fi
