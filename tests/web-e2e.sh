#!/usr/bin/env bash
# Broker suite: the worker's web server on a running greeter, as a TAP script.
#   1. /health through start-up (503 starting, then 200 running) and its JSON
#   2. /metrics parsed by prometheus_client's parser; counters equal what was sent
#   3. /info, /tables/NAME/KEY (equal to `faustc table --json`), /tables/NAME?prefix=&limit=
#   4. hostile input: malformed request line, 1 MB header, POST, HTTP/2.0, slowloris,
#      200 idle connections while events flow
#   5. `faustc status`; a second worker asking for a taken port gets the next one
#   6. /health through a table recovery (503 recovering), web.addr removed at exit
#   7. two workers: a key of the other worker's partition is a 307 to its address
#   8. /health 503 stopping (the broker frozen while the worker stops), then 503
#      disconnected (the broker killed)
#   9. withdrawals (a plain table, and a windowed one after group_by): tables by key equal
#      `faustc table --json` (every window with its bounds), events per agent and topic
# Usage: web-e2e.sh BUILD_DIR
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh" web "$@"
py=${PY:-/usr/bin/python3} # with python3-prometheus-client (meson passes PY)

"$faustc" broker --addr-file "$tmp/broker.url" >"$tmp/broker.out" 2>"$tmp/broker.log" &
broker_pid=$!
pids+=("$broker_pid")
for _ in $(seq 100); do [ -s "$tmp/broker.url" ] && break; sleep 0.1; done
url=$(cat "$tmp/broker.url")
bootstrap=${url#mock://}

start_worker() { # datadir [extra args]; sets worker_pid and web (its URL)
	local dir=$1
	shift
	rm -f "$dir/web.addr"
	"$faustc" -A greeter worker --datadir "$dir" --broker "$url" --commit-interval 0.3 "$@" \
		2>>"$dir.log" &
	worker_pid=$!
	pids+=("$worker_pid")
	for _ in $(seq 600); do [ -s "$dir/web.addr" ] && break; sleep 0.05; done
	web=$(cat "$dir/web.addr" 2>/dev/null)
}

# Polls /health every 20 ms until it says running (at most 30 s); prints each new status.
health_states() { # url
	$py - "$1" <<'EOF'
import json, sys, time, urllib.request, urllib.error
url, last, deadline = sys.argv[1], None, time.time() + 30
while time.time() < deadline:
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as r:
            code, body = r.status, json.load(r)
    except urllib.error.HTTPError as e:
        code, body = e.code, json.load(e)
    state = "%d %s" % (code, body["status"])
    if state != last:
        print(state)
        last = state
    if body["status"] == "running":
        break
    time.sleep(0.02)
EOF
}

greetings_count() {
	timeout 20 kcat -b "$bootstrap" -C -t greetings -e -q -f '%k\n' 2>/dev/null | wc -l
}
wait_greetings() { # count
	for _ in $(seq 300); do
		[ "$(greetings_count)" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# 1. health through start-up
start_worker "$tmp/w1" --web-port 0
[[ "$web" =~ ^http://127\.0\.0\.1:[0-9]+$ ]] && ok "web.addr holds http://127.0.0.1:PORT" ||
	not_ok "web.addr holds http://127.0.0.1:PORT" "got: $web"
# The table's partitions may show as recovering for a moment: their changelog's positions
# are asked off the loop even when the changelog is empty.
states=$(health_states "$web" | paste -sd, | sed 's/^503 starting,503 recovering,/503 starting,/')
check_eq "/health: 503 starting (maybe recovering), then 200 running" "$states" \
	"503 starting,200 running"
checks=$(curl -s "$web/health" | jq -c '[.status, (.checks | keys)]')
check_eq "/health JSON: status and checks" "$checks" \
	'["running",["backpressure","broker","consumer","lifecycle","tables"]]'

# 2. metrics against what was sent
seq 1 300 | sed -E 's/^(.*)$/k\1:{"name": "k\1"}/' >"$tmp/names.txt"
"$faustc" -A greeter send names --file "$tmp/names.txt" --key-delimiter : --broker "$url" \
	>/dev/null 2>&1
wait_greetings 300 || not_ok "300 greetings" "got $(greetings_count)"
sleep 1 # a commit cycle: the table is in LMDB
curl -s "$web/metrics" >"$tmp/metrics.txt"
parsed=$($py - "$tmp/metrics.txt" <<'EOF'
import sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
fams = list(text_string_to_metric_families(text))
bad = [f.name for f in fams if not f.name.startswith("faustc_") or not f.documentation
       or f.type == "unknown"]
# every family has its own HELP and TYPE lines
for f in fams:
    suffix = "_total" if f.type == "counter" else ""
    for kind in ("HELP", "TYPE"):
        if "# %s %s%s " % (kind, f.name, suffix) not in text:
            bad.append("%s:%s" % (kind, f.name))
def val(name, **labels):
    for f in fams:
        for s in f.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None
names = {f.name for f in fams}
need = ["faustc_events_in", "faustc_events_out", "faustc_processing_latency_seconds",
        "faustc_end_to_end_latency_seconds", "faustc_consumer_lag", "faustc_agent_inflight_events",
        "faustc_partition_paused", "faustc_commit_duration_seconds", "faustc_changelog_records",
        "faustc_table_keys", "faustc_table_recovery_restored", "faustc_table_recovery_remaining",
        "faustc_bad_input", "faustc_dead_lettered", "faustc_late_events", "faustc_agent_failures",
        "faustc_agent_restarts", "faustc_rebalances", "faustc_broker_up"]
print("families", len(fams), "bad", ",".join(bad) or "none",
      "missing", ",".join(n for n in need if n not in names) or "none")
print("in", int(val("faustc_events_in_total", agent="greet", topic="names")))
print("out", int(val("faustc_events_out_total", agent="greet")))
print("latency", int(val("faustc_processing_latency_seconds_count", agent="greet")))
print("e2e", int(val("faustc_end_to_end_latency_seconds_count", agent="greet")))
print("keys", int(val("faustc_table_keys", table="seen_count")))
print("lag", int(sum(s.value for f in fams if f.name == "faustc_consumer_lag" for s in f.samples)))
print("produced", int(val("faustc_topic_messages_produced_total", topic="greetings")))
EOF
)
check_eq "/metrics parses strictly; every family faustc_ with HELP and TYPE; none missing" \
	"$(echo "$parsed" | head -1 | cut -d' ' -f3-)" "bad none missing none"
check_eq "faustc_events_in_total{greet,names} = events sent" \
	"$(echo "$parsed" | grep '^in ')" "in 300"
check_eq "faustc_events_out_total{greet} = greetings" "$(echo "$parsed" | grep '^out ')" "out 300"
check_eq "processing latency histogram counted every event" \
	"$(echo "$parsed" | grep '^latency ')" "latency 300"
check_eq "end-to-end latency histogram counted every event" "$(echo "$parsed" | grep '^e2e ')" \
	"e2e 300"
check_eq "faustc_table_keys{seen_count} = distinct names" "$(echo "$parsed" | grep '^keys ')" \
	"keys 300"
check_eq "consumer lag is 0 once processed" "$(echo "$parsed" | grep '^lag ')" "lag 0"
check_eq "produced to greetings" "$(echo "$parsed" | grep '^produced ')" "produced 300"

# 3. info and tables
info=$(curl -s "$web/info" | jq -c '[.app, .agents[0].name, .agents[0].topic,
	.agents[0].concurrency, ([.partitions[] | select(.state == "active")] | length),
	(.tables[0].name)]')
check_eq "/info: app, agent, topic, concurrency, active partitions, table" "$info" \
	'["greeter","greet","names",1,8,"seen_count"]'
"$faustc" -A greeter send names '{"name": "k7"}' --key k7 --broker "$url" >/dev/null 2>&1
wait_greetings 301
sleep 1
for k in k7 k42 k300; do
	a=$(curl -s "$web/tables/seen_count/$k" | jq -c .rows)
	b=$("$faustc" -A greeter table seen_count --key "$k" --json --datadir "$tmp/w1" | jq -c .rows)
	check_eq "/tables/seen_count/$k equals faustc table --key $k --json" "$a" "$b"
done
check_eq "k7 was seen twice" "$(curl -s "$web/tables/seen_count/k7" | jq -c '.rows[0].value')" "2"
keys=$(curl -s "$web/tables/seen_count?prefix=k1&limit=5" |
	jq -c '[(.keys | length), ([.keys[] | startswith("k1")] | all), .truncated]')
check_eq "/tables/seen_count?prefix=k1&limit=5" "$keys" "[5,true,true]"
all=$(curl -s "$web/tables/seen_count?limit=10000" | jq -c '[(.keys | length), .truncated]')
check_eq "/tables/seen_count lists every key" "$all" "[300,false]"
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
check_eq "missing key: 404" "$(code "$web/tables/seen_count/nobody")" "404"
check_eq "unknown table: 404" "$(code "$web/tables/nope/k1")" "404"
check_eq "unknown path: 404" "$(code "$web/nope")" "404"
check_eq "HEAD /health: 200" "$(code -I "$web/health")" "200"
check_eq "live page: 200 text/html" "$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "$web/")" \
	"200 text/html; charset=utf-8"

# 4. hostile input: the answers, and the worker keeps processing meanwhile
seq 1001 1300 | sed -E 's/^(.*)$/m\1:{"name": "m\1"}/' >"$tmp/more.txt"
hostile=$($py - "${web#http://}" "$faustc" "$url" "$tmp" <<'EOF'
import socket, subprocess, sys, threading, time
host, port = sys.argv[1].split(":")
port, faustc, broker, tmp = int(port), sys.argv[2], sys.argv[3], sys.argv[4]
def ask(data, expect_slow=False):
    s = socket.create_connection((host, port))
    s.settimeout(20)
    try:
        for i in range(0, len(data), 65536):
            s.sendall(data[i:i + 65536])
    except OSError:
        pass
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except OSError:
        pass
    s.close()
    return out.split(b"\r\n")[0].decode(errors="replace")
results = {}
def slow():
    t = time.time()
    results["slowloris"] = ask(b"GET /health HTTP/1.1\r\nX-Slow: 1\r\n")
    results["slow_s"] = time.time() - t
th = threading.Thread(target=slow)
th.start()
print("malformed", ask(b"GARBAGE\r\n\r\n"))
print("header1mb", ask(b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"))
print("post", ask(b"POST /health HTTP/1.1\r\nContent-Length: 0\r\n\r\n"))
print("http2", ask(b"GET /health HTTP/2.0\r\n\r\n"))
print("nul", ask(b"GET /he\0alth HTTP/1.1\r\n\r\n"))
idle = [socket.create_connection((host, port)) for _ in range(200)]
for s in idle:
    s.sendall(b"GET /health HTTP/1.1\r\n")  # never finished
t = time.time()
subprocess.run([faustc, "-A", "greeter", "send", "names", "--file", tmp + "/more.txt",
                "--key-delimiter", ":", "--broker", broker], capture_output=True)
print("health_while_idle", ask(b"GET /health HTTP/1.1\r\n\r\n"))
th.join()
print("slowloris", results["slowloris"], "after_10s", results["slow_s"] >= 9.5)
for s in idle:
    s.close()
EOF
)
check_eq "malformed request line: 400" "$(echo "$hostile" | grep ^malformed)" \
	"malformed HTTP/1.1 400 Bad Request"
check_eq "1 MB header: 431" "$(echo "$hostile" | grep ^header1mb)" \
	"header1mb HTTP/1.1 431 Request Header Fields Too Large"
check_eq "POST: 405" "$(echo "$hostile" | grep ^post)" "post HTTP/1.1 405 Method Not Allowed"
check_eq "HTTP/2.0 request line: 505" "$(echo "$hostile" | grep ^http2)" \
	"http2 HTTP/1.1 505 HTTP Version Not Supported"
check_eq "NUL in the request: 400" "$(echo "$hostile" | grep ^nul)" "nul HTTP/1.1 400 Bad Request"
check_eq "200 idle connections: /health still answers" \
	"$(echo "$hostile" | grep ^health_while_idle)" "health_while_idle HTTP/1.1 200 OK"
check_eq "slowloris: 408 after 10 s" "$(echo "$hostile" | grep ^slowloris)" \
	"slowloris HTTP/1.1 408 Request Timeout after_10s True"
wait_greetings 601 && ok "events sent while 200 connections idled were all processed" ||
	not_ok "events sent while 200 connections idled were all processed" \
		"greetings: $(greetings_count) of 601"

# 5. status; a second worker asking for the first one's port
st=$("$faustc" -A greeter status --datadir "$tmp/w1")
check_eq "faustc status exits 0" "$?" "0"
echo "$st" | grep -q "^health: running" && echo "$st" | grep -qE "^greet +names +601 " &&
	echo "$st" | grep -qE "^seen_count +[0-9]+ +no " && ok "faustc status: health, agent, table" ||
	not_ok "faustc status: health, agent, table" "$st"
port1=${web##*:}
web1=$web
pid1=$worker_pid
start_worker "$tmp/w2" --web-port "$port1"
web2=$web
pid2=$worker_pid
grep -q "port $port1 is taken (another worker on this machine?); using [0-9]* instead (choose one with --web-port N" "$tmp/w2.log" &&
	ok "second worker: the port is taken, said at warn, the next one used" ||
	not_ok "second worker: the port is taken, said at warn" "$(grep web "$tmp/w2.log")"
[ "$web2" != "$web1" ] && [ "$(code "$web2/info")" = 200 ] && ok "second worker answers on $web2" ||
	not_ok "second worker answers" "web2=$web2"
kill -TERM "$pid2"
wait "$pid2"
check_eq "second worker exits 0" "$?" "0"
[ ! -e "$tmp/w2/web.addr" ] && ok "web.addr removed at exit" || not_ok "web.addr removed at exit"

# 6. recovery: a new data dir restores 600 keys from the changelog behind 503 recovering
for _ in $(seq 50); do [ "$(curl -s "$web1/health" | jq -r .status)" = running ] && break; sleep 0.1; done
kill -TERM "$pid1"
wait "$pid1"
check_eq "first worker exits 0" "$?" "0"
rm -rf "$tmp/w1"
mkdir -p "$tmp/w1"
"$faustc" -A greeter worker --datadir "$tmp/w1" --broker "$url" --commit-interval 0.3 \
	--web-port 0 2>>"$tmp/w1.log" &
worker_pid=$!
pids+=("$worker_pid")
for _ in $(seq 200); do [ -s "$tmp/w1/web.addr" ] && break; sleep 0.01; done
states=$(health_states "$(cat "$tmp/w1/web.addr")" | paste -sd,)
check_eq "/health through recovery: starting, recovering, running" "$states" \
	"503 starting,503 recovering,200 running"
kill -TERM "$worker_pid"
wait "$worker_pid"
check_eq "recovered worker exits 0 (its loop closed every handle)" "$?" "0"

# 7. two workers: a key the other worker owns is redirected there (307), learned via __workers
start_worker "$tmp/wa" --web-port 0
weba=$web
start_worker "$tmp/wb" --web-port 0
webb=$web
for _ in $(seq 300); do
	na=$(curl -s "$weba/info" | jq '[.partitions[] | select(.topic == "names")] | length')
	nb=$(curl -s "$webb/info" | jq '[.partitions[] | select(.topic == "names")] | length')
	[ "$(curl -s "$weba/health" | jq -r .status)" = running ] &&
		[ "$(curl -s "$webb/health" | jq -r .status)" = running ] &&
		[ "${na:-0}" -gt 0 ] && [ "${nb:-0}" -gt 0 ] && [ $((na + nb)) = 8 ] && break
	sleep 0.1
done
check_eq "two workers split the 8 partitions" "$((na + nb))" "8"
for _ in $(seq 50); do
	wk=$(curl -s "$weba/info" | jq -c '[(.workers | length),
		([.workers[].partitions[] | select(.[0] == "names") | .[1]] | sort)]')
	[ "$wk" = '[2,[0,1,2,3,4,5,6,7]]' ] && break
	sleep 0.1
done
check_eq "/info workers: both, their names partitions together 0..7" "$wk" '[2,[0,1,2,3,4,5,6,7]]'
before=$(greetings_count)
seq 1 40 | sed -E 's/^(.*)$/r\1:{"name": "r\1"}/' >"$tmp/r.txt"
"$faustc" -A greeter send names --file "$tmp/r.txt" --key-delimiter : --broker "$url" \
	>/dev/null 2>&1
wait_greetings $((before + 40))
sleep 1 # a commit cycle
redirected= local_ok=
for i in $(seq 1 40); do
	c=$(code "$weba/tables/seen_count/r$i")
	if [ "$c" = 307 ] && [ -z "$redirected" ]; then
		redirected=r$i
	elif [ "$c" = 200 ] && [ -z "$local_ok" ]; then
		local_ok=r$i
	fi
done
[ -n "$redirected" ] && [ -n "$local_ok" ] &&
	ok "worker A answers its own keys ($local_ok: 200) and redirects the others ($redirected: 307)" ||
	not_ok "worker A answers its own keys and redirects the others" "200: $local_ok, 307: $redirected"
loc=$(curl -s -o /dev/null -w '%{redirect_url}' "$weba/tables/seen_count/$redirected")
check_eq "the redirect names worker B's address" "$loc" "$webb/tables/seen_count/$redirected"
check_eq "following it gives B's answer" "$(curl -sL "$weba/tables/seen_count/$redirected" | jq -c .rows)" \
	"$(curl -s "$webb/tables/seen_count/$redirected" | jq -c .rows)"
check_eq "the answer is the key's count" \
	"$(curl -sL "$weba/tables/seen_count/$redirected" | jq -c '.rows[0].value')" "1"
# Both gone, not only their web servers: a worker still leaving the group when the next
# one joins makes it rebalance again, and a worker stopped in the middle of a rebalance
# has no group to leave and closes at once (stage 8 then sees no "stopping").
pa=$(cat "$tmp/wa/LOCK") pb=$(cat "$tmp/wb/LOCK")
kill -TERM "$pa" "$pb"
for _ in $(seq 300); do ! kill -0 "$pa" 2>/dev/null && ! kill -0 "$pb" 2>/dev/null && break; sleep 0.1; done

# 8. stopping: with the broker frozen (SIGSTOP) the consumer's close waits (up to 15 s), and
#    /health says 503 stopping meanwhile; then the broker dies: /health says disconnected.
#    A worker stopped while its group rebalances has no group to leave and closes at once
#    (no "stopping" to see): up to three tries, each waiting for a quiet group first.
# SIGSTOP stops a process's threads one by one, as each is next scheduled: on a busy machine
# the broker went on answering for a few milliseconds (the worker's LeaveGroup among them),
# so the worker closed at once. Wait until every thread of PID is stopped (at most 5 s).
freeze() { # pid
	kill -STOP "$1"
	for _ in $(seq 500); do
		grep -h '^State:' /proc/"$1"/task/*/status 2>/dev/null | grep -qv 'T (stopped)' || return 0
		sleep 0.01
	done
	echo "# pid $1 not stopped after 5 s"
}
stopping_try() { # try number; sets got
	start_worker "$tmp/wc" --web-port 0
	health_states "$web" >/dev/null
	# It must be in the group, consuming: only then does its close wait for the coordinator
	# (a worker that never joined closes at once, and there is no "stopping" to see).
	local before n
	before=$(greetings_count)
	echo "s$1:{\"name\": \"s$1\"}" | "$faustc" -A greeter send names --file - \
		--key-delimiter : --broker "$url" >/dev/null 2>&1
	wait_greetings $((before + 1)) || not_ok "the stopping worker greets first" "no greeting"
	# No rebalance for 2 s: the assignment it greeted with is the group's last.
	n=$(grep -c "partitions \(assigned\|revoked\)" "$tmp/wc.log")
	for _ in $(seq 50); do
		sleep 2
		[ "$(grep -c "partitions \(assigned\|revoked\)" "$tmp/wc.log")" = "$n" ] && break
		n=$(grep -c "partitions \(assigned\|revoked\)" "$tmp/wc.log")
	done
	freeze "$broker_pid"
	kill -TERM "$worker_pid"
	got=
	for _ in $(seq 100); do
		got=$(curl -s -m 2 -w ' %{http_code}' "$web/health" | tr -d '\n ' | grep -o '"status":"[a-z]*".*[0-9]\{3\}$' | sed -E 's/^"status":"([a-z]*)".*([0-9]{3})$/\1 \2/')
		[ "$got" = "stopping 503" ] && break
		sleep 0.05
	done
}
for try in 1 2 3; do
	stopping_try "$try"
	[ "$got" = "stopping 503" ] && break
	echo "# try $try: the worker closed without a visible stopping state; its log ends:"
	tail -n 5 "$tmp/wc.log" | sed 's/^/#   /'
	kill -CONT "$broker_pid"
	wait "$worker_pid"
done
check_eq "/health while stopping: 503 stopping" "$got" "stopping 503"
kill -KILL "$broker_pid"
wait "$worker_pid"
check_eq "the worker still exits 0 (the close gave up on the frozen broker)" "$?" "0"
"$faustc" broker --addr-file "$tmp/broker2.url" >/dev/null 2>&1 &
broker_pid=$!
pids+=("$broker_pid")
for _ in $(seq 100); do [ -s "$tmp/broker2.url" ] && break; sleep 0.1; done
url=$(cat "$tmp/broker2.url")
start_worker "$tmp/wc2" --web-port 0
health_states "$web" >/dev/null
kill -KILL "$broker_pid"
got=
for _ in $(seq 150); do
	got=$(curl -s "$web/health" | jq -rc '[.status, .checks.broker.ok] | @csv' 2>/dev/null)
	[ "$got" = '"disconnected",false' ] && break
	sleep 0.2
done
check_eq "/health with the broker gone: disconnected, broker check failing" "$got" '"disconnected",false'
check_eq "... answered 503" "$(code "$web/health")" "503"
kill -TERM "$worker_pid"
wait "$worker_pid"

# 9. withdrawals on its embedded broker
"$faustc" -A withdrawals worker --datadir "$tmp/wd" --web-port 0 --commit-interval 0.3 \
	2>"$tmp/wd.log" &
wd_pid=$!
pids+=("$wd_pid")
for _ in $(seq 100); do [ -s "$tmp/wd/web.addr" ] && break; sleep 0.05; done
wweb=$(cat "$tmp/wd/web.addr")
health_states "$wweb" >/dev/null
wsend() { "$faustc" -A withdrawals send withdrawals "$@" --datadir "$tmp/wd" >/dev/null 2>&1; }
for i in $(seq 1 20); do
	u=u$((i % 4))
	c=$([ $((i % 2)) = 0 ] && echo DE || echo FR)
	wsend "{\"user\": \"$u\", \"country\": \"$c\", \"amount\": $i}" --key "$u"
done
for _ in $(seq 100); do
	[ "$(curl -s "$wweb/metrics" | grep -c '^faustc_events_in_total{agent="track_user_withdrawal",topic="withdrawals"} 20$')" = 1 ] && break
	sleep 0.1
done
sleep 1 # a commit cycle
for path in user_to_total/u1 user_to_total/u2 country_to_total/DE country_to_total/FR; do
	a=$(curl -s "$wweb/tables/$path" | jq -c .rows)
	b=$("$faustc" -A withdrawals table "${path%%/*}" --key "${path#*/}" --json --datadir "$tmp/wd" |
		jq -c .rows)
	check_eq "withdrawals: /tables/$path equals faustc table --json" "$a" "$b"
done
check_eq "withdrawals: u1's total" "$(curl -s "$wweb/tables/user_to_total/u1" | jq -c '.rows[0].value')" \
	"$((1 + 5 + 9 + 13 + 17))"
win=$(curl -s "$wweb/tables/country_to_total/DE" |
	jq -c '[(.rows | length > 0), ([.rows[] | .window.end - .window.start == 10000] | all),
	([.rows[].value] | add)]')
check_eq "withdrawals: DE's windows have 10 s bounds and sum to the DE amounts" "$win" \
	"[true,true,$((2 + 4 + 6 + 8 + 10 + 12 + 14 + 16 + 18 + 20))]"
check_eq "withdrawals: keys of the windowed table" \
	"$(curl -s "$wweb/tables/country_to_total" | jq -c '.keys | sort')" '["DE","FR"]'
curl -s "$wweb/metrics" >"$tmp/wmetrics.txt"
wm=$($py - "$tmp/wmetrics.txt" <<'EOF'
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = list(text_string_to_metric_families(open(sys.argv[1]).read()))
def val(name, **labels):
    return sum(s.value for f in fams for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))
def count(prefix, **labels):
    return sum(s.value for f in fams for s in f.samples
               if s.name == "faustc_events_in_total" and s.labels["topic"].startswith(prefix)
               and all(s.labels.get(k) == v for k, v in labels.items()))
print(int(val("faustc_events_in_total", agent="track_user_withdrawal", topic="withdrawals")),
      int(val("faustc_events_in_total", agent="track_country_withdrawal", topic="withdrawals")),
      int(count("withdrawals-track_country_withdrawal", agent="track_country_withdrawal")),
      int(val("faustc_late_events_total", table="country_to_total")),
      int(val("faustc_events_out_total", agent="track_user_withdrawal")))
EOF
)
check_eq "withdrawals metrics: events in per agent and topic (repartition too), late, out" \
	"$wm" "20 20 20 0 20"
kill -TERM "$wd_pid"
wait "$wd_pid"
check_eq "withdrawals worker exits 0" "$?" "0"
finish
