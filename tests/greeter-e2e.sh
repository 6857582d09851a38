#!/usr/bin/env bash
# Broker suite: the greeter end to end, as a TAP script.
#   1. exact greetings for a known sequence (workers on a shared `faustc broker`)
#   2. a restart with the same data dir keeps counting
#   3. a restart after deleting the data dir recovers counts from the changelog
#   4. SIGKILL of a worker loses no greeting (at-least-once)
#   5. two workers split the partitions; one leaves and the other restores its tables;
#      a producer queue smaller than a cycle's table changes loses none of them
#   6. embedded broker: the worker hosts it; a restart meets an empty broker and keeps state
# Usage: greeter-e2e.sh BUILD_DIR
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh" e2e "$@"

start_broker() {
	"$faustc" broker --addr-file "$tmp/broker.url" >"$tmp/broker.out" 2>"$tmp/broker.log" &
	broker_pid=$!
	pids+=("$broker_pid")
	for _ in $(seq 300); do [ -s "$tmp/broker.url" ] && break; sleep 0.1; done
	url=$(cat "$tmp/broker.url")
	bootstrap=${url#*://}
}

start_worker() { # datadir [extra args]
	local dir=$1
	shift
	"$faustc" -A greeter worker --datadir "$dir" --commit-interval 0.3 -l info "$@" \
		2>>"$dir.log" &
	worker_pid=$!
	pids+=("$worker_pid")
}

# Waits until the worker's log shows one more assignment than `assigned_before`.
wait_assigned() { # log
	for _ in $(seq 200); do
		[ "$(grep -c "partitions assigned" "$1" 2>/dev/null)" -gt "$assigned_before" ] && return 0
		sleep 0.1
	done
	return 1
}

stop_worker() { # signal; sets worker_status
	kill -"$1" "$worker_pid"
	wait "$worker_pid"
	worker_status=$?
}

send() { # name [extra args]
	local name=$1
	shift
	"$faustc" -A greeter send names "{\"name\": \"$name\"}" --key "$name" "$@" >/dev/null 2>&1
}

# Greetings as "key|greeting" lines in per-key order.
greetings() { # bootstrap
	timeout 20 kcat -b "$1" -C -t greetings -e -q -f '%k|%s\n' 2>/dev/null |
		sed -E 's/^([^|]*)\|.*"greeting": ?"([^"]*)".*/\1|\2/'
}

wait_greetings() { # bootstrap count
	for _ in $(seq 300); do
		[ "$(greetings "$1" | wc -l)" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# 1. exact greetings
start_broker
check_eq "faustc broker prints a $scheme:// URL" "${url%%://*}" "$scheme"
start_worker "$tmp/w1" --broker "$url"
for name in Ann Bob Ann Ann Ann Cat; do send "$name" --broker "$url"; done
wait_greetings "$bootstrap" 6
got=$(greetings "$bootstrap" | grep '^Ann|' | cut -d'|' -f2 | paste -sd';')
check_eq "Ann's greetings, in order" "$got" \
	"Welcome Ann;Nice to see you again Ann;Third time is a charm Ann;Nice to see you at the 4-nth time Ann!"
check_eq "Bob's greeting" "$(greetings "$bootstrap" | grep '^Bob|' | cut -d'|' -f2)" "Welcome Bob"
check_eq "Cat's greeting" "$(greetings "$bootstrap" | grep '^Cat|' | cut -d'|' -f2)" "Welcome Cat"

# 2. restart with the same data dir
stop_worker TERM
check_eq "worker exits 0 on SIGTERM" "$worker_status" "0"
start_worker "$tmp/w1" --broker "$url"
send Ann --broker "$url"
wait_greetings "$bootstrap" 7
check_eq "restart with the same data dir keeps counting" \
	"$(greetings "$bootstrap" | grep '^Ann|' | tail -1 | cut -d'|' -f2)" \
	"Nice to see you at the 5-nth time Ann!"
stop_worker INT
check_eq "worker exits 0 on SIGINT" "$worker_status" "0"

# 3. empty data dir: recover from the changelog
rm -rf "$tmp/w1"
start_worker "$tmp/w1" --broker "$url"
send Ann --broker "$url"
send Bob --broker "$url"
wait_greetings "$bootstrap" 9
check_eq "counts recovered from the changelog (Ann)" \
	"$(greetings "$bootstrap" | grep '^Ann|' | tail -1 | cut -d'|' -f2)" \
	"Nice to see you at the 6-nth time Ann!"
check_eq "counts recovered from the changelog (Bob)" \
	"$(greetings "$bootstrap" | grep '^Bob|' | tail -1 | cut -d'|' -f2)" \
	"Nice to see you again Bob"
grep -q "restored seen_count" "$tmp/w1.log" && ok "the worker logged the restore" ||
	not_ok "the worker logged the restore" "$(tail -5 "$tmp/w1.log")"

# 4. SIGKILL loses no greeting: kill before the first commit, so everything is replayed
stop_worker TERM
assigned_before=$(grep -c "partitions assigned" "$tmp/w1.log")
start_worker "$tmp/w1" --broker "$url" --commit-interval 5
wait_assigned "$tmp/w1.log"
before=$(greetings "$bootstrap" | wc -l)
seq 1 2000 | sed -E 's/^(.*)$/k\1:{"name": "k\1"}/' >"$tmp/names.txt"
"$faustc" -A greeter send names --file "$tmp/names.txt" --key-delimiter : --broker "$url" \
	>/dev/null 2>&1
for _ in $(seq 100); do
	[ "$(greetings "$bootstrap" | wc -l)" -gt "$before" ] && break
	sleep 0.05
done
stop_worker KILL
check_eq "SIGKILL: the worker died by the signal" "$worker_status" "137"
assigned_before=$(grep -c "partitions assigned" "$tmp/w1.log")
start_worker "$tmp/w1" --broker "$url"
wait_assigned "$tmp/w1.log"
wait_greetings "$bootstrap" $((before + 2000))
sleep 2 # the replay of everything after the last commit
missing=$(comm -23 <(seq 1 2000 | sed 's/^/k/' | sort) \
	<(greetings "$bootstrap" | grep '^k' | cut -d'|' -f1 | sort -u) | wc -l)
check_eq "SIGKILL: every name got its greeting" "$missing" "0"
check_eq "SIGKILL: no name was counted three times" \
	"$(greetings "$bootstrap" | grep '^k' | cut -d'|' -f2 | grep -c 'Third time')" "0"
again=$(($(greetings "$bootstrap" | grep -c '^k') - 2000))
[ "$again" -gt 0 ] && ok "SIGKILL: events after the last commit were processed again ($again)" ||
	not_ok "SIGKILL: events after the last commit were processed again" \
		"no greeting was sent twice: the kill came before any processing"
stop_worker TERM
check_eq "worker after SIGKILL recovery exits 0" "$worker_status" "0"

# 5. two workers share the partitions; when one stops, the other takes its partitions over
#    and rebuilds their tables from the changelog
start_worker "$tmp/w1" --broker "$url"
pid1=$worker_pid
start_worker "$tmp/w3" --broker "$url"
pid3=$worker_pid
for _ in $(seq 150); do
	grep -q "partitions assigned: names" "$tmp/w3.log" 2>/dev/null && break
	sleep 0.1
done
seq 1 200 | sed -E 's/^(.*)$/m\1:{"name": "m\1"}/' >"$tmp/m.txt"
before=$(greetings "$bootstrap" | wc -l)
"$faustc" -A greeter send names --file "$tmp/m.txt" --key-delimiter : --broker "$url" \
	>/dev/null 2>&1
wait_greetings "$bootstrap" $((before + 200))
n3=$(grep "partitions assigned" "$tmp/w3.log" | tail -1 | grep -o 'names\[' | wc -l)
[ "$n3" -gt 0 ] && [ "$n3" -lt 8 ] && ok "two workers split the partitions ($n3 of 8)" ||
	not_ok "two workers split the partitions" "$(grep assigned "$tmp/w3.log")"
worker_pid=$pid3
stop_worker TERM
check_eq "the second worker leaves cleanly" "$worker_status" "0"
worker_pid=$pid1
for _ in $(seq 150); do
	[ "$(grep "partitions assigned" "$tmp/w1.log" | tail -1 | grep -o 'names\[' | wc -l)" -eq 8 ] &&
		break
	sleep 0.1
done
"$faustc" -A greeter send names --file "$tmp/m.txt" --key-delimiter : --broker "$url" \
	>/dev/null 2>&1
wait_greetings "$bootstrap" $((before + 400))
check_eq "after the move every name is greeted the second time" \
	"$(greetings "$bootstrap" | grep '^m' | cut -d'|' -f2 | sed 's/ m[0-9]*$//' | sort | uniq -c |
		awk '{$1=$1; print}' | paste -sd';')" \
	"200 Nice to see you again;200 Welcome"
# The survivor followed the leaver's partitions as a standby replica: the takeover
# restores nothing (the changelog tail is empty), where a cold owner replays everything.
grep -q "standby: following seen_count" "$tmp/w1.log" &&
	[ "$(awk '/partitions assigned: names\[0\].*names\[7\]/ { n = 0 } /restoring seen_count/ { n++ } END { print n + 0 }' "$tmp/w1.log")" -eq 0 ] &&
	ok "standby: the survivor followed the other's partitions and restored nothing on takeover" ||
	not_ok "standby: the survivor followed the other's partitions and restored nothing on takeover" \
		"$(grep -E 'standby|restor|assigned' "$tmp/w1.log" | tail -8)"
stop_worker TERM
check_eq "the remaining worker exits 0" "$worker_status" "0"

# 5b. a commit cycle with more table changes than the producer queue holds (500 here):
#     the cycle queues the rest as the queue drains and commits only then, so the stop
#     leaves every change in LMDB and the changelog (it used to commit without them)
start_worker "$tmp/w4" --broker "$url" --commit-interval 30 \
	--kafka-config queue.buffering.max.messages=500
seq 1 3000 | sed -E 's/^(.*)$/p\1:{"name": "p\1"}/' >"$tmp/p.txt"
before=$(greetings "$bootstrap" | wc -l)
"$faustc" -A greeter send names --file "$tmp/p.txt" --key-delimiter : --broker "$url" \
	>/dev/null 2>&1
wait_greetings "$bootstrap" $((before + 3000))
stop_worker TERM
check_eq "a small producer queue: the worker exits 0" "$worker_status" "0"
check_eq "a small producer queue: the stop stored all 3000 new keys" \
	"$("$faustc" -A greeter table seen_count --json --datadir "$tmp/w4" 2>/dev/null |
		grep -c '"key": "p[0-9]*"')" "3000"

# 5c. the write cache is bounded: the 65,536th key made dirty since the last commit cycle
#     starts the next one at once, long before the 600 s interval, so the changelog and
#     LMDB get those keys and the offsets are committed; a SIGKILL then loses none of them
start_worker "$tmp/w5" --broker "$url" --commit-interval 600
seq 1 70000 | sed -E 's/^(.*)$/q\1:{"name": "q\1"}/' >"$tmp/q.txt"
"$faustc" -A greeter send names --file "$tmp/q.txt" --key-delimiter : --broker "$url" \
	>/dev/null 2>&1
changelog_q() {
	timeout 30 kcat -b "$bootstrap" -C -t greeter-seen_count-changelog -e -q -f '%k\n' \
		2>/dev/null | grep -c '^q' || true
}
for _ in $(seq 120); do
	[ "$(changelog_q)" -ge 65536 ] && break
	sleep 1
done
in_changelog=$(changelog_q)
[ "$in_changelog" -ge 65536 ] &&
	ok "a full write cache starts a commit cycle early: $in_changelog of 70000 new keys in the changelog" ||
	not_ok "a full write cache starts a commit cycle early: $in_changelog of 70000 new keys in the changelog within 120 s (interval 600 s)"
stop_worker KILL
stored=$("$faustc" -A greeter table seen_count --json --datadir "$tmp/w5" 2>/dev/null |
	grep -c '"key": "q[0-9]*"')
[ "$stored" -ge 65536 ] &&
	ok "the early cycle's keys are in LMDB after a SIGKILL ($stored)" ||
	not_ok "the early cycle's keys are in LMDB after a SIGKILL ($stored, want >= 65536)"
kill -TERM "$broker_pid"
wait "$broker_pid"
check_eq "faustc broker exits 0 on SIGTERM" "$?" "0"

# 6. embedded broker in the worker
start_worker "$tmp/w2"
for _ in $(seq 300); do [ -s "$tmp/w2/broker.addr" ] && break; sleep 0.1; done
addr=$(cat "$tmp/w2/broker.addr")
[ -n "$addr" ] && ok "the worker writes broker.addr" || not_ok "the worker writes broker.addr"
send Dan --datadir "$tmp/w2"
send Dan --datadir "$tmp/w2"
wait_greetings "$addr" 2
check_eq "embedded broker: greetings" "$(greetings "$addr" | cut -d'|' -f2 | paste -sd';')" \
	"Welcome Dan;Nice to see you again Dan"
stop_worker TERM
check_eq "embedded worker exits 0" "$worker_status" "0"
if [ -n "$kafka" ]; then
	skip_on_kafka "broker.addr removed at exit"
elif [ ! -e "$tmp/w2/broker.addr" ]; then
	ok "broker.addr removed at exit"
else
	not_ok "broker.addr removed at exit"
fi
rm -f "$tmp/w2/broker.addr" # gone with the embedded broker; kafka-faustc.sh's stays
start_worker "$tmp/w2"
for _ in $(seq 300); do [ -s "$tmp/w2/broker.addr" ] && break; sleep 0.1; done
addr=$(cat "$tmp/w2/broker.addr")
send Dan --datadir "$tmp/w2"
wait_greetings "$addr" 1
check_eq "embedded broker restarted empty: the count continues from LMDB" \
	"$(greetings "$addr" | cut -d'|' -f2)" "Third time is a charm Dan"
grep -q "publishing the local state again" "$tmp/w2.log" &&
	ok "the worker noticed the changelog was behind and re-published" ||
	not_ok "the worker noticed the changelog was behind and re-published"
stop_worker TERM
check_eq "embedded worker exits 0 again" "$worker_status" "0"

finish
