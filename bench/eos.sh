#!/usr/bin/env bash
# exactly_once against at_least_once on a real Kafka cluster (scripts/kafka.sh start):
#   1. output latency: a pipe worker (pipe_app.so) in each mode on the empty topic, while a
#      producer sends RATE withdrawals/s for LAT_SECONDS s, each carrying its send time (ms) in
#      its account; a read_committed reader of `large` takes the time from produce to the
#      moment it sees the output (so with exactly_once, to the commit of the transaction).
#      Prints p50/p99 in ms.
#   2. throughput: EVENTS preloaded withdrawals (bench/load, timestamps over 10 minutes),
#      then the stateless pipe (pipe_app.so) and the windowed pipeline (group_app.so:
#      group_by country, 10 s tumbling windows, LMDB and changelog) in both modes, each run
#      in a fresh consumer group from the start of the topic: events/s (first event to last
#      delivery), CPU s per 1M events (whole process), and exactly_once/at_least_once.
# The default commit interval (2.8 s) unless COMMIT=S is set.
#
# usage: bench/eos.sh BOOTSTRAP [BUILD_DIR] [ROUNDS]   (default: build, 1)
# environment: EVENTS (default 100000), RATE (default 500), LAT_SECONDS (default 10), COMMIT,
# ONLY=latency (skip the throughput part)
# Empties nothing: run it on a cluster of its own (the topics withdrawals and large get
# EVENTS more records per run).
set -euo pipefail

K=${1:?usage: bench/eos.sh BOOTSTRAP [BUILD_DIR] [ROUNDS]}
BUILD=${2:-build}
ROUNDS=${3:-1}
EVENTS=${EVENTS:-100000}
RATE=${RATE:-500}
SECONDS_LAT=${LAT_SECONDS:-10}
COMMIT=${COMMIT:-}
TIMEOUT=300

FAUSTC=$BUILD/cli/faustc
LOAD=$BUILD/bench/load
RUSAGE=$BUILD/bench/rusage
die() {
	echo "eos.sh: $*" >&2
	exit 1
}
for f in "$FAUSTC" "$LOAD" "$RUSAGE" "$BUILD/bench/pipe_app.so" "$BUILD/bench/group_app.so"; do
	[[ -e $f ]] || die "$f is missing; build first: meson setup $BUILD && ninja -C $BUILD"
done
command -v kcat >/dev/null || die "kcat is needed (Debian's kcat)"
command -v python3 >/dev/null || die "python3 is needed"
PIPE=$(realpath "$BUILD/bench/pipe_app.so")
GROUP=$(realpath "$BUILD/bench/group_app.so")
commit_arg=()
[[ -z $COMMIT ]] || commit_arg=(--commit-interval "$COMMIT")

TMP=$(mktemp -d -t faustc-eos.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT

# The topics with their partition counts: a worker of the windowed app creates them all.
BENCH_APP_ID=bench-eos-setup timeout 60 "$FAUSTC" -A "$GROUP" worker --broker "kafka://$K" \
	--datadir "$TMP/setup" --no-web -l info >/dev/null 2>"$TMP/setup.err" &
setup_pid=$!
for _ in $(seq 300); do
	grep -q "partitions assigned" "$TMP/setup.err" 2>/dev/null && break
	sleep 0.1
done
sleep 3
kill "$setup_pid" 2>/dev/null
wait "$setup_pid" 2>/dev/null || true

# latency MODE: prints "latency MODE p50_ms p99_ms count"
latency() {
	local mode=$1 wpid rpid
	BENCH_APP_ID=bench-lat-$mode-$$ "$FAUSTC" -A "$PIPE" worker --broker "kafka://$K" \
		--datadir "$TMP/lat-$mode" --no-web -l info --processing-guarantee "$mode" \
		"${commit_arg[@]}" >/dev/null 2>"$TMP/lat-$mode.err" &
	wpid=$!
	PIDS+=("$wpid")
	for _ in $(seq 600); do
		grep -q "partitions assigned: withdrawals" "$TMP/lat-$mode.err" && break
		sleep 0.1
	done
	sleep 2
	# The reader: prints "now_ms sent_ms" per output seen, from the end of `large`; it
	# stops kcat and itself 18 s after the producer is done.
	python3 -u -c '
import json, subprocess, sys, time
k, until = sys.argv[1], time.time() + float(sys.argv[2])
start_ms = int(time.time() * 1000)
p = subprocess.Popen(["kcat", "-b", k, "-C", "-t", "large", "-o", "end", "-u", "-q",
                      "-X", "isolation.level=read_committed", "-f", "%s\\n"],
                     stdout=subprocess.PIPE, text=True)
import selectors
sel = selectors.DefaultSelector()
sel.register(p.stdout, selectors.EVENT_READ)
while time.time() < until:
    if not sel.select(timeout=0.2):
        continue
    line = p.stdout.readline()
    if not line:
        break
    try:
        acct = json.loads(line)["account"]
    except Exception:
        continue
    # Only what this run sent: a new group also reads what earlier runs sent.
    if acct.startswith("t") and int(acct[1:]) >= start_ms:
        print(int(time.time() * 1000), acct[1:], flush=True)
p.terminate()
p.wait()
' "$K" "$((SECONDS_LAT + 20))" >"$TMP/lat-$mode.tsv" &
	rpid=$!
	sleep 2
	python3 -u -c '
import sys, time
rate, secs = int(sys.argv[1]), float(sys.argv[2])
n, t0 = int(rate * secs), time.time()
for i in range(n):
    while time.time() < t0 + i / rate:
        time.sleep(0.0005)
    ms = int(time.time() * 1000)
    print("t%d:{\"account\": \"t%d\", \"amount\": 150.00, \"country\": \"US\"}" % (ms, ms), flush=True)
' "$RATE" "$SECONDS_LAT" | kcat -b "$K" -P -t withdrawals -K: -X linger.ms=0 -X partitioner=murmur2_random
	wait "$rpid" || true # the last outputs, a commit interval or two later
	kill -TERM "$wpid"
	wait "$wpid" 2>/dev/null || true
	awk -v mode="$mode" '{ d[++n] = $1 - $2 }
	END {
		if (!n) { printf "latency %-14s no outputs seen\n", mode; exit }
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (d[j] < d[i]) { t = d[i]; d[i] = d[j]; d[j] = t }
		i99 = int(n * 0.99) + 1
		if (i99 > n) i99 = n
		printf "latency %-14s p50 %6d ms   p99 %6d ms   (%d outputs)\n", mode,
			d[int(n * 0.5) + 1], d[i99], n
	}' "$TMP/lat-$mode.tsv"
}

echo "# output latency, produce to read_committed visibility ($RATE/s for $SECONDS_LAT s)"
latency at_least_once
latency exactly_once
[[ ${ONLY:-} != latency ]] || exit 0

echo "# loading $EVENTS withdrawals ..."
"$LOAD" -b "$K" -n "$EVENTS" -t 600 >/dev/null || die "load failed"

# run NAME APP MODE ROUND: prints "NAME-MODE events/s cpu_s_per_1M_events"
run() {
	local name=$1 app=$2 mode=$3 round=$4 line
	if ! BENCH_APP_ID=bench-eos-$name-$mode-$round-$$ BENCH_EVENTS=$EVENTS timeout "$TIMEOUT" \
		"$RUSAGE" "$FAUSTC" -A "$app" worker --broker "kafka://$K" --no-web \
		--datadir "$TMP/$name-$mode-$round" -l info --processing-guarantee "$mode" \
		"${commit_arg[@]}" >"$TMP/run.out" 2>"$TMP/run.err"; then
		tail -20 "$TMP/run.err" >&2
		die "the $name $mode worker failed"
	fi
	line=$(cat "$TMP/run.out" "$TMP/run.err" | grep -E 'stats: events=|^rusage ' | tr '\n' ' ')
	awk -v name="$name-$mode" -v n="$EVENTS" -v line="$line" 'BEGIN {
		nf = split(line, f, /[ =]+/)
		for (i = 1; i < nf; i++) v[f[i]] = f[i + 1]
		printf "%-24s %9d %9.3f\n", name, n / v["elapsed"], (v["user"] + v["sys"]) / n * 1e6
	}'
}

out=$TMP/rounds
for r in $(seq "$ROUNDS"); do
	echo "# round $r of $ROUNDS" >&2
	for m in at_least_once exactly_once; do
		run stateless "$PIPE" "$m" "$r" | tee -a "$out"
		run windowed "$GROUP" "$m" "$r" | tee -a "$out"
	done
done
awk '
function median(a, n,   i, j, t) {
	for (i = 1; i <= n; i++)
		for (j = i + 1; j <= n; j++)
			if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ n[$1]++; rate[$1, n[$1]] = $2; cpu[$1, n[$1]] = $3 }
END {
	printf "\nmedian                   events/s   CPU s/1M ev\n"
	for (k in n) {
		for (i = 1; i <= n[k]; i++) { a[i] = rate[k, i]; b[i] = cpu[k, i] }
		m[k] = median(a, n[k]); c[k] = median(b, n[k])
		printf "%-24s %9d %9.3f\n", k, m[k], c[k]
	}
	printf "\nexactly_once/at_least_once events/s: stateless %.2f, windowed %.2f\n",
		m["stateless-exactly_once"] / m["stateless-at_least_once"],
		m["windowed-exactly_once"] / m["windowed-at_least_once"]
	printf "exactly_once/at_least_once CPU per event: stateless %.2f, windowed %.2f\n",
		c["stateless-exactly_once"] / c["stateless-at_least_once"],
		c["windowed-exactly_once"] / c["windowed-at_least_once"]
}' "$out"
