# Shared by the shell broker tests (sourced): BUILD_DIR from $2 and its faustc, and what
# tap-lib.sh gives (a temporary dir, TAP checks, the children to kill).
# Usage in a test: . "$(dirname "$0")/e2e-lib.sh" NAME "$@"
name=${1:?test name}
build=$(cd "${2:?build dir}" && pwd)
faustc="$build/cli/faustc"
. "$(dirname "${BASH_SOURCE[0]}")/tap-lib.sh" "$name"
# Real Kafka (FAUSTC_TEST_KAFKA=HOST:PORT): faustc through kafka-faustc.sh, which gives it
# the cluster where the embedded broker would be used.
kafka=${FAUSTC_TEST_KAFKA:-}
scheme=mock
if [ -n "$kafka" ]; then
	printf '#!/bin/sh\nexec %q %q "$@"\n' "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kafka-faustc.sh" \
		"$build" >"$tmp/faustc"
	chmod +x "$tmp/faustc"
	faustc="$tmp/faustc"
	scheme=kafka
	echo "# on Kafka at $kafka"
fi
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
