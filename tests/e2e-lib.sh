# Shared by the shell broker tests (sourced): BUILD_DIR from $1, a temporary dir killed and
# removed at exit (kept with KEEP=1), TAP helpers, and the children to kill.
# Usage in a test: . "$(dirname "$0")/e2e-lib.sh" NAME "$@"
name=${1:?test name}
build=$(cd "${2:?build dir}" && pwd)
faustc="$build/cli/faustc"
# Real Kafka (FAUSTC_TEST_KAFKA=HOST:PORT): faustc through kafka-faustc.sh, which gives it
# the cluster where the embedded broker would be used.
kafka=${FAUSTC_TEST_KAFKA:-}
scheme=mock
tmp=$(mktemp -d "/tmp/faustc-$name.XXXXXX")
if [ -n "$kafka" ]; then
	printf '#!/bin/sh\nexec %q %q "$@"\n' "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kafka-faustc.sh" \
		"$build" >"$tmp/faustc"
	chmod +x "$tmp/faustc"
	faustc="$tmp/faustc"
	scheme=kafka
	echo "# on Kafka at $kafka"
fi
pids=() # every child started; killed at exit
n=0 failed=0

cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)) failed=$((failed + 1))
	echo "not ok $n - $1"
	shift
	for l in "$@"; do echo "#   $l"; done
}
# A command's output without the topic creations `faustc send` logs on Kafka when it runs
# before the worker created them (kafka-faustc.sh writes broker.addr at once; the embedded
# broker's appears only after its topics exist).
sent_output() { # file
	grep -v 'INFO  .*: created topic ' "$1"
}

# Skips a check that is about the embedded broker itself, on Kafka.
skip_on_kafka() { # what
	n=$((n + 1))
	echo "ok $n - $1 # SKIP the embedded broker's, not run on Kafka"
}
check_eq() { # what got expected
	if [ "$2" == "$3" ]; then ok "$1"; else not_ok "$1" "got: $2" "expected: $3"; fi
}

# Ends the test: the plan, and the status.
finish() {
	echo "1..$n"
	[ "$failed" -eq 0 ]
}
