#!/usr/bin/env bash
# The faustc command of the e2e scripts on real Kafka (e2e-lib.sh points $faustc here when
# FAUSTC_TEST_KAFKA is set): where the embedded broker would be used, the cluster is, and
# where a fresh embedded broker would start, the cluster is emptied first (kafka-reset).
#   worker without --broker: --broker kafka://K, and DATADIR/broker.addr written for the
#                            script to read, as the embedded broker would
#   broker:                  --broker kafka://K (creates the app's topics, writes the URL)
#   --broker mock://ADDR:    --broker kafka://K
#   send without --broker:   --broker kafka://K
# Then exec: the script's $! is faustc's pid, and its signals reach faustc.
# Usage: kafka-faustc.sh BUILD_DIR faustc-arguments...
set -euo pipefail
build=$1
shift
k=${FAUSTC_TEST_KAFKA:?}
args=() cmd="" has_broker=0 dir=""
prev=""
for a in "$@"; do
	if [ "$prev" = "--broker" ] || [ "$prev" = "-b" ]; then
		a="kafka://$k"
		has_broker=1
	fi
	[ "$prev" = "--datadir" ] && dir=$a
	case "$a" in worker | broker | send) [ -z "$cmd" ] && cmd=$a ;; esac
	args+=("$a")
	prev=$a
done
if [ "$has_broker" -eq 0 ]; then
	case "$cmd" in
	worker | broker)
		# Like the embedded broker's, the address appears once the broker is ready.
		[ "$cmd" = worker ] && [ -n "$dir" ] && rm -f "$dir/broker.addr"
		"$build/tests/kafka-reset"
		args+=(--broker "kafka://$k")
		if [ "$cmd" = worker ] && [ -n "$dir" ]; then
			mkdir -p "$dir"
			echo "$k" >"$dir/broker.addr.tmp"
			mv "$dir/broker.addr.tmp" "$dir/broker.addr"
		fi
		;;
	send) args+=(--broker "kafka://$k") ;;
	esac
elif [ "$cmd" = broker ]; then
	"$build/tests/kafka-reset"
fi
exec "$build/cli/faustc" "${args[@]}"
