#!/usr/bin/env bash
# Broker suite: the live page of a running greeter in headless Chromium, as a TAP script.
# While names flow into the worker the page is loaded twice (each run lets it poll for
# 6 s of virtual time): no console messages (errors, uncaught exceptions), the agent and
# its topic are shown, its event count grows between the loads and its events/s chart saw
# a rate above 0. A screenshot is kept as BUILD_DIR/meson-logs/web-page.png.
# Usage: web-page.sh BUILD_DIR CHROMIUM
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh" web-page "$1"
chromium=${2:-chromium}
shot="$build/meson-logs/web-page.png"

"$faustc" -A greeter worker --datadir "$tmp/w" --web-port 0 2>"$tmp/w.log" &
worker_pid=$!
pids+=("$worker_pid")
for _ in $(seq 100); do [ -s "$tmp/w/web.addr" ] && break; sleep 0.1; done
web=$(cat "$tmp/w/web.addr")
for _ in $(seq 200); do
	[ "$(curl -s "$web/health" | jq -r .status)" = running ] && break
	sleep 0.1
done

# Names keep flowing while the page is looked at, in batches large enough that the worker
# is never idle for long: the page's rate is the difference of two polls of /metrics, and
# under headless Chromium's virtual time two polls are only milliseconds apart in real
# time, so they see a difference only while the worker is busy.
(
	i=0
	while :; do
		seq $((i + 1)) $((i + 2000)) | sed -E 's/^(.*)$/n\1:{"name": "n\1"}/' >"$tmp/names.txt"
		"$faustc" -A greeter send names --file "$tmp/names.txt" --key-delimiter : \
			--datadir "$tmp/w" >/dev/null 2>&1
		i=$((i + 2000))
	done
) &
pids+=($!)

browse() { # out-prefix [extra chromium args]
	local out=$1
	shift
	timeout 90 "$chromium" --headless --no-sandbox --disable-gpu --enable-logging=stderr \
		--v=0 --virtual-time-budget=6000 "$@" "$web/" >"$out.html" 2>"$out.err"
}
sleep 1
browse "$tmp/first" --dump-dom
# Two polls can still fall between two batches: look again (at most 5 times) until a poll
# pair saw names arrive.
for look in 1 2 3 4 5; do
	sleep 2
	browse "$tmp/second" --dump-dom
	grep -qE 'greet: events/s \(now [0-9]+, max [1-9]' "$tmp/second.html" && break
done
echo "# second load: $look look(s)"
browse "$tmp/shot" --window-size=1200,1100 --screenshot="$shot"

consoles=$(cat "$tmp/first.err" "$tmp/second.err" "$tmp/shot.err" | grep -c ':CONSOLE')
check_eq "no console messages (errors, exceptions) while the page runs" "$consoles" "0"
[ "$consoles" = 0 ] || grep ':CONSOLE' "$tmp"/*.err | head -5 | sed 's/^/# /'

# The agents row: name, topic, events.
row() { grep -o '<tr><td>greet</td><td>names</td><td class="n">[0-9]*</td>' "$1" | grep -o '[0-9]*</td>$' | tr -dc 0-9; }
e1=$(row "$tmp/first.html")
e2=$(row "$tmp/second.html")
[ -n "$e1" ] && ok "the page shows agent greet on names ($e1 events)" ||
	not_ok "the page shows agent greet on names" "$(grep -o 'id="agents".\{0,400\}' "$tmp/first.html")"
[ -n "$e1" ] && [ -n "$e2" ] && [ "$e2" -gt "$e1" ] &&
	ok "its event count grows while names flow ($e1 -> $e2)" ||
	not_ok "its event count grows while names flow" "first: $e1, second: $e2"
rate=$(grep -o 'greet: events/s (now [0-9]*, max [0-9]*' "$tmp/second.html" | grep -o 'max [0-9]*' | tr -dc 0-9)
[ -n "$rate" ] && [ "$rate" -gt 0 ] && ok "the events/s chart saw a rate above 0 (max $rate)" ||
	not_ok "the events/s chart saw a rate above 0" "$(grep -o 'greet: events/s[^<]*' "$tmp/second.html")"
grep -qE '<tr><td>[0-9a-f]{16} \(this one\)</td><td>http://127.0.0.1:[0-9]+</td><td>[^<]*names\[0\]' "$tmp/second.html" &&
	ok "partitions by worker: this worker with its partitions" ||
	not_ok "partitions by worker: this worker with its partitions" \
		"$(grep -o 'id="workers".\{0,300\}' "$tmp/second.html")"
grep -q '<span id="status" class="status running">running</span>' "$tmp/second.html" &&
	ok "the page shows the worker running" || not_ok "the page shows the worker running"
[ "$(head -c 8 "$shot" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] &&
	[ "$(stat -c %s "$shot")" -gt 10000 ] && ok "screenshot kept: $shot" ||
	not_ok "screenshot kept: $shot" "$(ls -la "$shot" 2>&1)"
kill -TERM "$worker_pid"
wait "$worker_pid"
check_eq "worker exits 0" "$?" "0"
finish
