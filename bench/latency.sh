#!/usr/bin/env bash
# End-to-end latency of the stateless pipe: a faustc worker runs pipe_app.so on a fresh
# `faustc broker` while bench/latency produces withdrawals at RATE events/s and times each
# output from its input's produce call to its arrival (bench/latency.c says what exactly).
# Run it at half of the pipe's maximum rate (run.sh's faustc events/s) to see the latency of
# a pipe that keeps up. Prints the latency line and the worker's stats line.
#
# usage: bench/latency.sh [--broker kafka://HOST:PORT] [BUILD_DIR] [RATE] [EVENTS]
#        (default: build 100000 300000)
# Keep EVENTS * ~60 bytes / 8 partitions under the embedded broker's ~5 MiB per partition.
# --broker: Apache Kafka instead of a fresh embedded broker (scripts/kafka.sh start); the
# topics are created when missing, and earlier runs' records in them are not counted.
# LATENCY_ARGS: more options for bench/latency (-f FETCH_WAIT_MS, -l LINGER_MS,
# -w RAMP_SECONDS).
set -euo pipefail

KAFKA=
if [[ ${1:-} == --broker ]]; then
	KAFKA=${2:?--broker needs kafka://HOST:PORT}
	[[ $KAFKA == kafka://* ]] || KAFKA=kafka://$KAFKA
	shift 2
fi
BUILD=${1:-build}
RATE=${2:-100000}
EVENTS=${3:-300000}
FAUSTC=$BUILD/cli/faustc
LATENCY=$BUILD/bench/latency
APP=$BUILD/bench/pipe_app.so

die() {
	echo "latency.sh: $*" >&2
	exit 1
}

[[ -x $FAUSTC && -x $LATENCY && -f $APP ]] ||
	die "build first: meson setup $BUILD && ninja -C $BUILD"
APP=$(realpath "$APP")
TMP=$(mktemp -d -t faustc-latency.XXXXXX)
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

broker_args=()
[[ -z $KAFKA ]] || broker_args=(--broker "$KAFKA")
"$FAUSTC" -A "$APP" broker "${broker_args[@]}" --addr-file "$TMP/addr" >"$TMP/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 600); do
	[[ -s $TMP/addr ]] && break
	sleep 0.1
done
[[ -s $TMP/addr ]] || die "the broker wrote no address: $(tail -5 "$TMP/broker.log")"
URL=$(head -n 1 "$TMP/addr")
echo "broker: $URL"

BENCH_APP_ID=bench-latency "$FAUSTC" -A "$APP" worker --broker "$URL" \
	--datadir "$TMP/data" --no-web -l warn >"$TMP/worker.out" 2>"$TMP/worker.err" &
WORKER_PID=$!

echo "producing $EVENTS events at $RATE/s (after a warm-up until the pipe answers) ..."
status=0
BOOTSTRAP=${URL#mock://}
BOOTSTRAP=${BOOTSTRAP#kafka://}
# shellcheck disable=SC2086 # LATENCY_ARGS is a list of options
# Kafka answers a fetch as soon as data arrives: a short fetch wait there only makes its
# broker serve ~1,000 empty fetches a second (the mock holds an empty fetch the whole wait).
fetch_wait=1
[[ -z $KAFKA ]] || fetch_wait=500
"$LATENCY" -b "$BOOTSTRAP" -r "$RATE" -n "$EVENTS" -f "$fetch_wait" ${LATENCY_ARGS:-} || status=$?
kill "$WORKER_PID"
wait "$WORKER_PID" || true
WORKER_PID=
grep -h 'stats: events=' "$TMP/worker.out" "$TMP/worker.err" || true
if [[ $status -ne 0 ]]; then
	tail -20 "$TMP/worker.err" >&2
	die "latency failed (status $status)"
fi
