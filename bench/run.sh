#!/usr/bin/env bash
# Runs the faustc benchmark: the same consume-filter-produce pipe as a raw librdkafka loop
# with jansson (raw), as the limit baseline (the same loop scanning only the three fields it
# needs, no JSON library) and as a faustc agent, against one embedded broker holding the
# same preloaded data. Prints throughput, CPU per million events and peak RSS for each, and
# the faustc/raw and faustc/limit ratios. A second limit run, limit-i (limit_pipe -i), uses an
# idempotent producer as the faustc worker does (enable.idempotence=true): what the framework
# adds over the loop with the same delivery settings is faustc/limit-i.
#
# usage: bench/run.sh [--broker kafka://HOST:PORT] [BUILD_DIR]   (default: build; this
#        script builds nothing)
# --broker: a real Kafka cluster instead of the embedded broker (e.g. scripts/kafka.sh
# start); it must not have the bench's topics yet (a fresh cluster: the pipes read the
# whole topic).
set -euo pipefail

KAFKA=
if [[ ${1:-} == --broker ]]; then
	KAFKA=${2:?--broker needs kafka://HOST:PORT}
	[[ $KAFKA == kafka://* ]] || KAFKA=kafka://$KAFKA
	shift 2
fi
BUILD=${1:-build}
EVENTS=240000
TIMEOUT=300 # seconds each pipe may run before it is stopped

FAUSTC=$BUILD/cli/faustc
LOAD=$BUILD/bench/load
RAW=$BUILD/bench/raw_pipe
LIMIT=$BUILD/bench/limit_pipe
RUSAGE=$BUILD/bench/rusage
APP=$BUILD/bench/pipe_app.so

die() {
	echo "run.sh: $*" >&2
	exit 1
}

for f in "$FAUSTC" "$LOAD" "$RAW" "$LIMIT" "$RUSAGE"; do
	[[ -x $f ]] || die "$f is missing or not executable; build first:" \
		"meson setup $BUILD && ninja -C $BUILD"
done
[[ -f $APP ]] || die "$APP is missing; build first: meson setup $BUILD && ninja -C $BUILD"
# faustc -A takes the module path as given; make it absolute so the worker finds it.
APP=$(realpath "$APP")

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup bench

show_log() {
	echo "--- $1" >&2
	tail -n 20 "$1" >&2 || true
}

# The broker: started with the bench app so it creates the app's topics with their
# declared partition counts (the embedded broker cannot create topics on request). On
# Kafka (--broker) it creates them there and waits.
bench_kafka "$KAFKA"
bench_broker "$FAUSTC" "$APP" "${broker_args[@]}"
echo "broker: $URL"

echo "loading $EVENTS events into withdrawals ..."
EXPECTED=$("$LOAD" -b "$BOOTSTRAP" -n "$EVENTS") || die "load failed"
echo "expected outputs (amount > 100): $EXPECTED"

echo "running raw_pipe ..."
if ! timeout "$TIMEOUT" "$RUSAGE" "$RAW" -b "$BOOTSTRAP" -n "$EVENTS" -e "$EXPECTED" \
	>"$TMP/raw.out" 2>"$TMP/raw.err"; then
	show_log "$TMP/raw.err"
	die "raw_pipe failed"
fi

echo "running limit_pipe ..."
if ! timeout "$TIMEOUT" "$RUSAGE" "$LIMIT" -b "$BOOTSTRAP" -n "$EVENTS" -e "$EXPECTED" \
	>"$TMP/limit.out" 2>"$TMP/limit.err"; then
	show_log "$TMP/limit.err"
	die "limit_pipe failed"
fi

echo "running limit_pipe -i (idempotent producer) ..."
if ! BENCH_APP_ID=bench-limit-idempotent timeout "$TIMEOUT" "$RUSAGE" "$LIMIT" -b "$BOOTSTRAP" \
	-n "$EVENTS" -e "$EXPECTED" -i >"$TMP/limiti.out" 2>"$TMP/limiti.err"; then
	show_log "$TMP/limiti.err"
	die "limit_pipe -i failed"
fi

echo "running the faustc worker ..."
if ! BENCH_EVENTS=$EVENTS timeout "$TIMEOUT" "$RUSAGE" "$FAUSTC" -A "$APP" worker \
	--broker "$URL" --datadir "$TMP/data" -l warn >"$TMP/faustc.out" 2>"$TMP/faustc.err"; then
	show_log "$TMP/faustc.err"
	die "the faustc worker failed"
fi

kill "$BROKER_PID" 2>/dev/null || true
wait "$BROKER_PID" 2>/dev/null || true
BROKER_PID=

# field NAME FILE: the number in the last NAME=NUMBER on the lines of FILE.
field() {
	local v
	v=$(grep -o "\<$1=[0-9.]*" "$2" | tail -n 1 | cut -d= -f2) || true
	[[ -n $v ]] || die "no $1= in $(cat "$2")"
	echo "$v"
}

RAW_LINE=$TMP/raw.line
grep '^raw events=' "$TMP/raw.out" >"$RAW_LINE" || die "raw_pipe printed no result line"
grep '^rusage ' "$TMP/raw.err" >>"$RAW_LINE" || die "no rusage line for raw_pipe"
LIMIT_LINE=$TMP/limit.line
grep '^limit events=' "$TMP/limit.out" >"$LIMIT_LINE" || die "limit_pipe printed no result line"
grep '^rusage ' "$TMP/limit.err" >>"$LIMIT_LINE" || die "no rusage line for limit_pipe"
LIMITI_LINE=$TMP/limiti.line
grep '^limit events=' "$TMP/limiti.out" >"$LIMITI_LINE" || die "limit_pipe -i printed no result line"
grep '^rusage ' "$TMP/limiti.err" >>"$LIMITI_LINE" || die "no rusage line for limit_pipe -i"
FAUSTC_LINE=$TMP/faustc.line
cat "$TMP/faustc.out" "$TMP/faustc.err" | grep 'stats: events=' >"$FAUSTC_LINE" ||
	die "the worker logged no 'stats: events=N sent=M elapsed=S' line at -l warn"
grep '^rusage ' "$TMP/faustc.err" >>"$FAUSTC_LINE" || die "no rusage line for the worker"

re=$(field events "$RAW_LINE")
ro=$(field outputs "$RAW_LINE")
rt=$(field elapsed "$RAW_LINE")
ru=$(field user "$RAW_LINE")
rs=$(field sys "$RAW_LINE")
rr=$(field maxrss_kb "$RAW_LINE")
le=$(field events "$LIMIT_LINE")
lo=$(field outputs "$LIMIT_LINE")
lt=$(field elapsed "$LIMIT_LINE")
lu=$(field user "$LIMIT_LINE")
ls=$(field sys "$LIMIT_LINE")
lr=$(field maxrss_kb "$LIMIT_LINE")
ie=$(field events "$LIMITI_LINE")
io=$(field outputs "$LIMITI_LINE")
it=$(field elapsed "$LIMITI_LINE")
iu=$(field user "$LIMITI_LINE")
is=$(field sys "$LIMITI_LINE")
ir=$(field maxrss_kb "$LIMITI_LINE")
fe=$(field events "$FAUSTC_LINE")
fo=$(field sent "$FAUSTC_LINE")
ft=$(field elapsed "$FAUSTC_LINE")
fu=$(field user "$FAUSTC_LINE")
fs=$(field sys "$FAUSTC_LINE")
fr=$(field maxrss_kb "$FAUSTC_LINE")

awk -v want="$EVENTS" -v expected="$EXPECTED" \
	-v re="$re" -v ro="$ro" -v rt="$rt" -v ru="$ru" -v rs="$rs" -v rr="$rr" \
	-v le="$le" -v lo="$lo" -v lt="$lt" -v lu="$lu" -v ls="$ls" -v lr="$lr" \
	-v ie="$ie" -v io="$io" -v it="$it" -v iu="$iu" -v is="$is" -v ir="$ir" \
	-v fe="$fe" -v fo="$fo" -v ft="$ft" -v fu="$fu" -v fs="$fs" -v fr="$fr" '
function check(name, events, outputs) {
	if (events != want || outputs != expected) {
		printf "WARNING: %s processed %d events and delivered %d outputs; " \
			"expected %d and %d\n", name, events, outputs, want, expected
		bad = 1
	}
}
BEGIN {
	check("raw", re, ro)
	check("limit", le, lo)
	check("limit-i", ie, io)
	check("faustc", fe, fo)
	if (rt <= 0 || lt <= 0 || it <= 0 || ft <= 0 || re <= 0 || le <= 0 || ie <= 0 ||
	    fe <= 0 || rr <= 0 || lr <= 0 || ir <= 0) {
		print "ERROR: a measured value is zero; no rates or ratios"
		exit 1
	}
	r_rate = re / rt
	f_rate = fe / ft
	r_cpu = (ru + rs) / re * 1e6
	l_rate = le / lt
	l_cpu = (lu + ls) / le * 1e6
	i_rate = ie / it
	i_cpu = (iu + is) / ie * 1e6
	f_cpu = (fu + fs) / fe * 1e6
	printf "\n%-8s %8s %10s %10s %14s %9s\n", "", "events", "elapsed s", "events/s",
		"CPU s/1M ev", "RSS MiB"
	printf "%-8s %8d %10.3f %10.0f %14.3f %9.1f\n", "raw", re, rt, r_rate, r_cpu, rr / 1024
	printf "%-8s %8d %10.3f %10.0f %14.3f %9.1f\n", "limit", le, lt, l_rate, l_cpu, lr / 1024
	printf "%-8s %8d %10.3f %10.0f %14.3f %9.1f\n", "limit-i", ie, it, i_rate, i_cpu, ir / 1024
	printf "%-8s %8d %10.3f %10.0f %14.3f %9.1f\n", "faustc", fe, ft, f_rate, f_cpu, fr / 1024
	rate_ratio = f_rate / r_rate
	cpu_ratio = f_cpu / r_cpu
	printf "\nfaustc/raw events/s:  %.2f (target >= 0.80: %s)\n", rate_ratio,
		(rate_ratio >= 0.80 ? "met" : "NOT met")
	printf "faustc/raw CPU/event: %.2f (target <= 1.50: %s)\n", cpu_ratio,
		(cpu_ratio <= 1.50 ? "met" : "NOT met")
	printf "faustc/raw peak RSS:  %.2f\n", fr / rr
	rate_ratio = f_rate / l_rate
	cpu_ratio = f_cpu / l_cpu
	printf "faustc/limit events/s:  %.2f (target >= 0.90: %s)\n", rate_ratio,
		(rate_ratio >= 0.90 ? "met" : "NOT met")
	printf "faustc/limit CPU/event: %.2f (target <= 1.30: %s)\n", cpu_ratio,
		(cpu_ratio <= 1.30 ? "met" : "NOT met")
	printf "faustc/limit-i events/s:  %.2f (same producer settings; no target)\n", f_rate / i_rate
	printf "faustc/limit-i CPU/event: %.2f\n", f_cpu / i_cpu
	exit bad
}'
