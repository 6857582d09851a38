#!/usr/bin/env bash
# The web server's cost: the stateless pipe (pipe_app.so, as in run.sh) with --no-web
# against the same pipe with the web server on and a client scraping /metrics every second.
# Each round starts a fresh broker with the same preloaded workload for each variant (the
# order alternates between rounds); the median events/s of each variant and their ratio are
# printed. Target: web/no-web >= 0.97.
# Usage: bench/web.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
BUILD=${1:-build}
ROUNDS=${2:-5}
EVENTS=240000
FAUSTC=$BUILD/cli/faustc
LOAD=$BUILD/bench/load
APP=$(realpath "$BUILD/bench/pipe_app.so")
TMP=$(mktemp -d -t faustc-web-bench.XXXXXX)
BROKER_PID=
SCRAPER_PID=
cleanup() {
	[[ -n $SCRAPER_PID ]] && kill "$SCRAPER_PID" 2>/dev/null
	[[ -n $BROKER_PID ]] && kill "$BROKER_PID" 2>/dev/null
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

# One run: prints events/s. $1: "web" or "noweb".
run() {
	rm -rf "$TMP/data" "$TMP/addr" "$TMP/scrapes"
	"$FAUSTC" -A "$APP" broker --addr-file "$TMP/addr" >"$TMP/broker.log" 2>&1 &
	BROKER_PID=$!
	for _ in $(seq 100); do [[ -s $TMP/addr ]] && break; sleep 0.1; done
	local url
	url=$(head -n 1 "$TMP/addr")
	"$LOAD" -b "${url#mock://}" -n "$EVENTS" >/dev/null
	local web=(--no-web)
	[[ $1 == web ]] && web=(--web-port 0)
	BENCH_EVENTS=$EVENTS "$FAUSTC" -A "$APP" worker --broker "$url" --datadir "$TMP/data" \
		-l warn "${web[@]}" >"$TMP/out" 2>"$TMP/err" &
	local worker=$!
	if [[ $1 == web ]]; then
		for _ in $(seq 100); do [[ -s $TMP/data/web.addr ]] && break; sleep 0.05; done
		local addr
		addr=$(cat "$TMP/data/web.addr")
		(while :; do
			curl -s -o /dev/null -w '%{http_code}\n' "$addr/metrics" >>"$TMP/scrapes"
			sleep 1
		done) &
		SCRAPER_PID=$!
	fi
	wait "$worker"
	if [[ -n $SCRAPER_PID ]]; then
		kill "$SCRAPER_PID"
		wait "$SCRAPER_PID" 2>/dev/null || true
		SCRAPER_PID=
		echo "scrapes: $(grep -c '^200$' "$TMP/scrapes") answered 200" >&2
	fi
	kill "$BROKER_PID"
	wait "$BROKER_PID" 2>/dev/null || true
	BROKER_PID=
	local line events elapsed
	line=$(grep -h 'stats: events=' "$TMP/out" "$TMP/err" | tail -n 1)
	events=$(grep -o 'events=[0-9]*' <<<"$line" | cut -d= -f2)
	elapsed=$(grep -o 'elapsed=[0-9.]*' <<<"$line" | cut -d= -f2)
	[[ $events == "$EVENTS" ]] || echo "WARNING: $1 processed $events of $EVENTS" >&2
	awk -v e="$events" -v t="$elapsed" 'BEGIN { printf "%.0f\n", e / t }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

for i in $(seq "$ROUNDS"); do
	if ((i % 2)); then order=(noweb web); else order=(web noweb); fi
	for v in "${order[@]}"; do
		r=$(run "$v")
		echo "round $i $v $r events/s"
		echo "$r" >>"$TMP/$v.rates"
	done
done
nw=$(median <"$TMP/noweb.rates")
w=$(median <"$TMP/web.rates")
awk -v nw="$nw" -v w="$w" -v n="$ROUNDS" 'BEGIN {
	printf "\nmedian of %d rounds: --no-web %d events/s, web + /metrics every 1 s %d events/s\n", n, nw, w
	printf "web/no-web: %.3f (target >= 0.97: %s)\n", w / nw, (w / nw >= 0.97 ? "met" : "NOT met")
}'
