#!/usr/bin/env bash
# The stateful pipeline against the stateless one, on one embedded broker holding the same
# preloaded 240,000 withdrawals (bench/load), their timestamps spread over the 10 minutes
# before the load (SPAN seconds), so the windowed pipeline works through a backlog of event
# time as after downtime:
#   stateless  pipe_app.so: filter amount > 100, send a transformed record (bench/run.sh)
#   stateful   group_app.so: group_by country through a repartition topic, then
#              table[country] += amount in 10 s tumbling windows by event time, LMDB and
#              changelog on (issue 4's windowed pipeline)
# Each runs ROUNDS times (each run in its own consumer group from the start of the
# topic); the script prints each run, the medians, and the stateful/stateless ratio of
# events per second.
#
# usage: bench/stateful.sh [--broker kafka://HOST:PORT] [BUILD_DIR] [ROUNDS]   (default: build, 3)
# environment: SPAN (seconds of event time, default 600; 0: the produce time); BASE=OTHER_BUILD_DIR also runs
# that build's group_app (an earlier commit, "before") in every round, as stateful-base, so
# before and after are measured side by side under the same load.
# --broker kafka://HOST:PORT (first): a real Kafka cluster instead of the embedded broker,
# without the bench's topics yet (a fresh scripts/kafka.sh cluster).
set -euo pipefail

KAFKA=
if [[ ${1:-} == --broker ]]; then
	KAFKA=${2:?--broker needs kafka://HOST:PORT}
	[[ $KAFKA == kafka://* ]] || KAFKA=kafka://$KAFKA
	shift 2
fi
BUILD=${1:-build}
ROUNDS=${2:-3}
EVENTS=240000
TIMEOUT=300

FAUSTC=$BUILD/cli/faustc
LOAD=$BUILD/bench/load
SPAN=${SPAN:-600}
BASE=${BASE:-}
RUSAGE=$BUILD/bench/rusage
die() {
	echo "stateful.sh: $*" >&2
	exit 1
}
for f in "$FAUSTC" "$LOAD" "$RUSAGE" "$BUILD/bench/pipe_app.so" "$BUILD/bench/group_app.so"; do
	[[ -e $f ]] || die "$f is missing; build first: meson setup $BUILD && ninja -C $BUILD"
done
PIPE=$(realpath "$BUILD/bench/pipe_app.so")
GROUP=$(realpath "$BUILD/bench/group_app.so")
if [[ -n $BASE ]]; then
	[[ -e $BASE/cli/faustc && -e $BASE/bench/group_app.so ]] || die "BASE=$BASE has no build"
	BASE_FAUSTC=$(realpath "$BASE/cli/faustc")
	BASE_GROUP=$(realpath "$BASE/bench/group_app.so")
fi

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup stateful

bench_kafka "$KAFKA"
bench_broker "$FAUSTC" "$GROUP" "${broker_args[@]}"
echo "broker: $URL"
echo "loading $EVENTS events into withdrawals, timestamps over $SPAN s ..."
span_arg=()
[[ $SPAN == 0 ]] || span_arg=(-t "$SPAN") # SPAN=0: the produce time (about a second)
"$LOAD" -b "$BOOTSTRAP" -n "$EVENTS" "${span_arg[@]}" >/dev/null || die "load failed"

# run NAME APP ROUND [FAUSTC]: prints "NAME events/s cpu_s_per_1M_events rss_MiB"
run() {
	local name=$1 app=$2 round=$3 faustc=${4:-$FAUSTC} line
	# A fresh app id per run: a new consumer group that reads the topic from its start.
	if ! BENCH_APP_ID=bench-$name-$round BENCH_EVENTS=$EVENTS timeout "$TIMEOUT" "$RUSAGE" "$faustc" -A "$app" worker \
		--broker "$URL" --datadir "$TMP/$name-$round" -l warn \
		>"$TMP/$name.out" 2>"$TMP/$name.err"; then
		tail -20 "$TMP/$name.err" >&2
		die "the $name worker failed"
	fi
	line=$(cat "$TMP/$name.out" "$TMP/$name.err" | grep -E 'stats: events=|^rusage ' | tr '\n' ' ')
	awk -v name="$name" -v n="$EVENTS" -v line="$line" 'BEGIN {
		nf = split(line, f, /[ =]+/)
		for (i = 1; i < nf; i++) v[f[i]] = f[i + 1]
		printf "%-10s %9d %9.3f %7.1f\n", name, n / v["elapsed"],
			(v["user"] + v["sys"]) / n * 1e6, v["maxrss_kb"] / 1024
	}'
}

out=$TMP/rounds
for r in $(seq "$ROUNDS"); do
	echo "round $r of $ROUNDS ..." >&2
	run stateless "$PIPE" "$r" | tee -a "$out"
	run stateful "$GROUP" "$r" | tee -a "$out"
	[[ -z $BASE ]] || run stateful-base "$BASE_GROUP" "$r" "$BASE_FAUSTC" | tee -a "$out"
done
awk '
function median(a, n,   i, j, t) {
	for (i = 1; i <= n; i++)
		for (j = i + 1; j <= n; j++)
			if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ n[$1]++; rate[$1, n[$1]] = $2; cpu[$1, n[$1]] = $3; rss[$1, n[$1]] = $4 }
END {
	printf "\nmedian of %d rounds   events/s   CPU s/1M ev   RSS MiB\n", n["stateless"]
	for (k in n) {
		for (i = 1; i <= n[k]; i++) { a[i] = rate[k, i]; b[i] = cpu[k, i]; c[i] = rss[k, i] }
		m[k] = median(a, n[k])
		mc[k] = median(b, n[k])
		printf "%-18s %10d   %11.3f   %7.1f\n", k, m[k], mc[k], median(c, n[k])
	}
	printf "\nstateful/stateless events/s: %.2f (target >= 0.80)\n", m["stateful"] / m["stateless"]
	printf "stateful/stateless CPU per event: %.2f (target <= 2.00)\n", mc["stateful"] / mc["stateless"]
	# Each round runs both on one broker: the ratio per round leaves out the load that
	# changes between rounds.
	for (i = 1; i <= n["stateless"]; i++) {
		a[i] = rate["stateful", i] / rate["stateless", i]
		b[i] = cpu["stateful", i] / cpu["stateless", i]
	}
	printf "the same, median of the ratios per round: events/s %.2f, CPU per event %.2f\n",
		median(a, n["stateless"]), median(b, n["stateless"])
	if ("stateful-base" in m)
		printf "stateful-base/stateless events/s: %.2f\nstateful/stateful-base events/s: %.2f\n",
			m["stateful-base"] / m["stateless"], m["stateful"] / m["stateful-base"]
}' "$out"
