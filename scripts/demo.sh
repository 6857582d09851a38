#!/usr/bin/env bash
# The greeter demo: builds faustc, starts a worker on the embedded broker, sends a few
# names, prints the greetings that come back, and stops the worker cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
faustc=build/cli/faustc
data=$(mktemp -d /tmp/faustc-demo.XXXXXX)
worker_pid=""
cleanup() {
	[ -n "$worker_pid" ] && kill "$worker_pid" 2>/dev/null && wait "$worker_pid" 2>/dev/null
	rm -rf "$data"
}
trap cleanup EXIT

echo "== starting: faustc -A greeter worker --datadir $data"
$faustc -A greeter worker --datadir "$data" -l info 2>"$data/worker.log" &
worker_pid=$!
for _ in $(seq 100); do [ -s "$data/broker.addr" ] && break; sleep 0.1; done
[ -s "$data/broker.addr" ] || { cat "$data/worker.log"; exit 1; }

names=(Ann Bob Ann Cat Ann Ann)
for n in "${names[@]}"; do
	echo "== faustc -A greeter send names '{\"name\": \"$n\"}' --key $n"
	$faustc -A greeter send names "{\"name\": \"$n\"}" --key "$n" --datadir "$data"
done

echo "== greetings (topic greetings, read with kcat):"
addr=$(cat "$data/broker.addr")
for _ in $(seq 100); do
	got=$(kcat -b "$addr" -C -t greetings -e -q -f '%s\n' 2>/dev/null | wc -l)
	[ "$got" -ge ${#names[@]} ] && break
	sleep 0.2
done
kcat -b "$addr" -C -t greetings -e -q -f '%k: %s\n' 2>/dev/null | sort -s -t: -k1,1

echo "== stopping the worker (SIGTERM)"
kill -TERM "$worker_pid"
wait "$worker_pid" && status=0 || status=$?
worker_pid=""
echo "== worker exited with status $status; its log:"
cat "$data/worker.log"
exit "$status"
