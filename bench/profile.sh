#!/usr/bin/env bash
# Where the CPU of the pipelines goes, by thread, by library and by whose work it is, from
# perf's cpu-clock samples with DWARF call chains (this VM has no hardware counters):
#   limit      bench/limit_pipe: the plain librdkafka loop with a field scan (the floor)
#   limit-i    the same with an idempotent producer (limit_pipe -i), as the worker's
#   stateless  pipe_app.so in a faustc worker
#   windowed   group_app.so in a faustc worker (group_by, then a windowed table)
# All four run ROUNDS times on one embedded broker holding the same EVENTS withdrawals
# (timestamps over the SPAN seconds before the load, as in stateful.sh); the samples of a
# program's rounds are added up. A sample counts for the innermost code on its stack that is
# not libc, the dynamic loader or the kernel: faustc (libagent, libuv, the app, the faustc
# binary), librdkafka, LMDB, or limit_pipe; so a malloc, a copy or a system call counts for
# whoever asked for it. For each program it prints CPU ms per 1M events by thread, by the
# library of the sampled instruction, and by that owner; at the end the CPU ratios the
# issue-13 goals are about, twice: as measured, and without the samples owned by faustc (a
# floor: no change to faustc's own code alone can go below it; librdkafka's and LMDB's work
# stay). A stack perf cannot unwind counts as "unattributed", never as faustc's.
#
# usage: bench/profile.sh [BUILD_DIR] [EVENTS] [ROUNDS]   (default: build 240000 3)
# environment: SPAN (default 600), FREQ (samples per second per thread, default 1000),
# KEEP=DIR keeps the perf.data files in DIR for `perf report -i`; SYSCALLS=1 also runs each
# program once under `perf trace -s` and prints its system calls by thread (poll, futex,
# mprotect, ...: how the threads wake each other, and the malloc arenas growing).
# Needs perf (Debian: linux-perf) and kernel.perf_event_paranoid <= 2.
set -euo pipefail

BUILD=${1:-build}
EVENTS=${2:-240000}
ROUNDS=${3:-3}
SPAN=${SPAN:-600}
FREQ=${FREQ:-1000}
KEEP=${KEEP:-}
TIMEOUT=300

die() {
	echo "profile.sh: $*" >&2
	exit 1
}
command -v perf >/dev/null || die "perf is not installed (Debian: apt-get install linux-perf)"
[[ $EVENTS =~ ^[1-9][0-9]*$ ]] || die "EVENTS must be a positive number, not '$EVENTS'"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number, not '$ROUNDS'"
FAUSTC=$BUILD/cli/faustc
for f in "$FAUSTC" "$BUILD/bench/load" "$BUILD/bench/limit_pipe" "$BUILD/bench/pipe_app.so" \
	"$BUILD/bench/group_app.so"; do
	[[ -e $f ]] || die "$f is missing; build first: meson setup $BUILD && ninja -C $BUILD"
done
PIPE=$(realpath "$BUILD/bench/pipe_app.so")
GROUP=$(realpath "$BUILD/bench/group_app.so")

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup profile

perf record -q -e cpu-clock -o "$TMP/probe.data" true 2>"$TMP/probe.err" ||
	die "perf record does not work here: $(head -3 "$TMP/probe.err")" \
		"(kernel.perf_event_paranoid is $(cat /proc/sys/kernel/perf_event_paranoid); 2 or lower is needed)"

bench_broker "$FAUSTC" "$GROUP"
echo "broker: $URL; loading $EVENTS withdrawals, timestamps over $SPAN s ..."
span_arg=()
[[ $SPAN == 0 ]] || span_arg=(-t "$SPAN")
EXPECTED=$("$BUILD/bench/load" -b "$BOOTSTRAP" -n "$EVENTS" "${span_arg[@]}") || die "load failed"

# record NAME ROUND CMD...: runs CMD under perf with call chains and appends, per sample,
# "NAME THREAD LIBRARY OWNER": LIBRARY holds the sampled instruction; OWNER is the innermost
# caller outside libc, the dynamic loader and the kernel (perf unwinds with DWARF), so a
# malloc or a system call counts for the code that asked for it.
record() {
	local name=$1 round=$2
	shift 2
	local data=$TMP/$name-$round.data
	if ! timeout "$TIMEOUT" perf record -q -e cpu-clock -F "$FREQ" --call-graph dwarf,8192 \
		-o "$data" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"; then
		tail -20 "$TMP/$name.err" >&2
		die "$name failed"
	fi
	# A sample: "COMM TID" then one "\tIP (DSO)" line per frame, innermost first.
	perf script -i "$data" -F comm,tid,ip,dso 2>/dev/null | awk -v name="$name" '
	function lib(frame,   d, n, p) {
		d = frame; sub(/^.*\(/, "", d); sub(/\)[^)]*$/, "", d)
		n = split(d, p, "/"); d = p[n]; sub(/\.so[.0-9]*$/, ".so", d)
		return d
	}
	function owner(d) {
		if (d ~ /^(libc\.so|ld-linux-x86-64\.so|\[kernel\.kallsyms\]|\[vdso\]|\[unknown\])$/)
			return ""
		if (d == "librdkafka.so" || d == "liblmdb.so") return d
		if (d == "limit_pipe") return "limit_pipe"
		if (d ~ /^(libagent\.so|libuv\.so|faustc|pipe_app\.so|group_app\.so)$/) return "faustc"
		return "other"
	}
	function flush() {
		if (comm != "") print name, comm, leaf == "" ? "?" : leaf, who == "" ? "unattributed" : who
	}
	/^[^\t]/ {
		flush()
		comm = $1; for (i = 2; i < NF; i++) comm = comm "_" $i
		sub(/[0-9]+$/, "", comm)    # rdk:broker1, rdk:broker2: one line for all
		leaf = ""; who = ""
		next
	}
	/^\t/ {
		d = lib($0)
		if (d == "inlined")
			next    # an inlined call: the frame of the same address follows
		if (leaf == "") leaf = d
		if (who == "") who = owner(d)
	}
	END { flush() }' >>"$TMP/samples"
	[[ -z $KEEP ]] || { mkdir -p "$KEEP" && cp "$data" "$KEEP/"; }
	rm -f "$data" # tens of MB a run with the stacks
}

# each FN TAG: FN NAME TAG CMD... for the four programs; TAG keeps each run's consumer group
# (a new group reads the topic from its start) and data dir apart.
each() {
	local fn=$1 tag=$2
	BENCH_APP_ID=profile-limit-$tag "$fn" limit "$tag" \
		"$BUILD/bench/limit_pipe" -b "$BOOTSTRAP" -n "$EVENTS" -e "$EXPECTED"
	BENCH_APP_ID=profile-limit-i-$tag "$fn" limit-i "$tag" \
		"$BUILD/bench/limit_pipe" -b "$BOOTSTRAP" -n "$EVENTS" -e "$EXPECTED" -i
	BENCH_APP_ID=profile-stateless-$tag BENCH_EVENTS=$EVENTS "$fn" stateless "$tag" \
		"$FAUSTC" -A "$PIPE" worker --broker "$URL" --datadir "$TMP/s-$tag" -l warn --no-web
	BENCH_APP_ID=profile-windowed-$tag BENCH_EVENTS=$EVENTS "$fn" windowed "$tag" \
		"$FAUSTC" -A "$GROUP" worker --broker "$URL" --datadir "$TMP/w-$tag" -l warn --no-web
}

for r in $(seq "$ROUNDS"); do
	echo "round $r of $ROUNDS ..." >&2
	each record "$r"
done

# Samples -> CPU ms per 1M events: samples / FREQ / (EVENTS * ROUNDS) * 1e9
awk -v freq="$FREQ" -v events="$EVENTS" -v rounds="$ROUNDS" '
{
	total[$1]++; thread[$1, $2]++; lib[$1, $3]++; by[$1, $4]++
	threads[$2] = 1; libs[$3] = 1; owners[$4] = 1
	if ($4 == "faustc" || $4 == "limit_pipe") mine[$1]++
}
END {
	k = 1e9 / freq / (events * rounds)
	split("limit limit-i stateless windowed", progs, " ")
	for (i = 1; i <= 4; i++) {
		p = progs[i]
		printf "\n%s: %.0f CPU ms per 1M events (%d samples)\n", p, total[p] * k, total[p]
		for (t in threads) if (thread[p, t]) printf "  thread %-16s %7.0f\n", t, thread[p, t] * k
		for (l in libs)
			if (lib[p, l] >= total[p] / 200) printf "  sampled in %-11s %7.0f\n", l, lib[p, l] * k
		for (o in owners) if (by[p, o]) printf "  for %-18s %7.0f\n", o, by[p, o] * k
	}
	s = total["stateless"]; w = total["windowed"]; l = total["limit"]; li = total["limit-i"]
	printf "\nCPU per event, as measured / without what faustc'"'"'s own code costs (a floor):\n"
	printf "  stateless/limit:    %.2f / %.2f   (goal <= 1.30)\n", s / l, (s - mine["stateless"]) / l
	printf "  stateless/limit-i:  %.2f / %.2f\n", s / li, (s - mine["stateless"]) / li
	printf "  windowed/stateless: %.2f / %.2f   (goal <= 2.00)\n", w / s, (w - mine["windowed"]) / s
}' "$TMP/samples"

[[ -n ${SYSCALLS:-} ]] || exit 0
echo
echo "system calls by thread (perf trace -s, one more run of each; counts per 1M events):"
# trace NAME TAG CMD...: prints each thread with more than 100 calls and its main calls
trace() {
	local name=$1
	shift 2
	if ! timeout "$TIMEOUT" perf trace -s -o "$TMP/$name.trace" "$@" >/dev/null 2>"$TMP/$name.err"; then
		tail -5 "$TMP/$name.err" >&2
		die "$name failed under perf trace"
	fi
	echo "$name:"
	awk -v n="$EVENTS" '
	function flush() { if (thread && calls > 100) printf "  %-14s %s\n", thread, line }
	/ events, / { flush(); thread = $1; calls = $3 + 0; line = "" }
	/^ +(poll|ppoll|epoll_wait|futex|mprotect|read|write|sendmsg|recvmsg) / {
		line = line sprintf(" %s=%.0f", $1, $2 / n * 1e6)
	}
	END { flush() }' "$TMP/$name.trace"
}
each trace trace
