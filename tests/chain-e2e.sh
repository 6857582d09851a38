#!/usr/bin/env bash
# Broker suite: the chain example end to end, as a TAP script.
#   1. embedded broker: 200 keyed values through a -> chain-mid -> b -> @c -> (stdout,
#      chain-out): every stage's topic holds each value exactly once, wrapped by the stages
#      so far, keys kept, per-key order kept; stdout has exactly the final values; an empty
#      value goes through and one too large for the chain is logged and skipped; SIGTERM
#      exits 0
#   2. `faustc broker` (it outlives the worker): after a SIGTERM stop the group's committed
#      offsets of chain-in, chain-mid and chain-c are their high watermarks
# Usage: chain-e2e.sh BUILD_DIR
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh" chain "$@"

N=200 KEYS=20

start_worker() { # name [extra args]; stdout to NAME.out, log to NAME.log
	local name=$1
	shift
	"$faustc" -A chain worker --datadir "$tmp/$name" --commit-interval 0.3 -l info "$@" \
		>"$tmp/$name.out" 2>"$tmp/$name.log" &
	worker_pid=$!
	pids+=("$worker_pid")
}

stop() { # pid; sets status
	kill -TERM "$1"
	wait "$1"
	status=$?
}

topic() { # bootstrap topic: "key|value" lines, per partition in order
	timeout 20 kcat -b "$1" -C -t "$2" -e -q -f '%k|%s\n' 2>/dev/null
}

wait_lines() { # file count: c's callback prints one line per value
	for _ in $(seq 300); do
		[ "$(wc -l <"$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# The inputs: key kK, value kK.I (the I-th value of that key), interleaved over the keys.
for i in $(seq 0 $((N - 1))); do
	k=$(printf 'k%02d' $((i % KEYS)))
	echo "$k:$k.$((i / KEYS))"
done >"$tmp/in.txt"
# What a topic should hold after the stages given (e.g. "b a"), as "key|value" lines.
expect() {
	awk -F: -v stages="$*" 'BEGIN { n = split(stages, st, " ") }
		{ v = $2; for (i = n; i >= 1; i--) v = st[i] "(" v ")"; print $1 "|" v }' "$tmp/in.txt"
}
# Per key, the values in order: "key|v1 v2 ..." sorted by key.
per_key() {
	awk -F'|' '{ seq[$1] = seq[$1] " " $2 } END { for (k in seq) print k "|" seq[k] }' | sort
}

# 1. embedded broker
start_worker c1
w1=$worker_pid
for _ in $(seq 300); do [ -s "$tmp/c1/broker.addr" ] && break; sleep 0.1; done
addr=$(cat "$tmp/c1/broker.addr" 2>/dev/null)
[ -n "$addr" ] && ok "the worker writes broker.addr" || not_ok "the worker writes broker.addr"
"$faustc" -A chain send chain-in --file "$tmp/in.txt" --key-delimiter : --datadir "$tmp/c1" \
	>"$tmp/send.out" 2>&1
check_eq "faustc send sends the $N values" "$(sent_output "$tmp/send.out")" "sent $N values to chain-in"
wait_lines "$tmp/c1.out" "$N" && ok "c printed $N values" ||
	not_ok "c printed $N values" "$(tail -3 "$tmp/c1.log")"
sleep 1 # anything sent twice would show by now
topic "$addr" chain-mid >"$tmp/mid.txt"
topic "$addr" chain-c >"$tmp/c.txt"
topic "$addr" chain-out >"$tmp/out.txt"
check_eq "chain-mid holds each a(v) exactly once, keys kept" \
	"$(diff <(expect a | sort) <(sort "$tmp/mid.txt") | head -5)" ""
check_eq "chain-c holds each b(a(v)) exactly once, keys kept" \
	"$(diff <(expect b a | sort) <(sort "$tmp/c.txt") | head -5)" ""
check_eq "chain-out holds each c(b(a(v))) exactly once, keys kept" \
	"$(diff <(expect c b a | sort) <(sort "$tmp/out.txt") | head -5)" ""
check_eq "chain-out keeps the order of each key's values" \
	"$(diff <(expect c b a | per_key) <(per_key <"$tmp/out.txt") | head -5)" ""
check_eq "stdout has exactly the values of chain-out, one a line" \
	"$(diff <(expect c b a | cut -d'|' -f2 | sort) <(sort "$tmp/c1.out") | head -5)" ""
# The printed values carry their key (kK.I): per key, stdout keeps the order too.
check_eq "stdout keeps the order of each key's values" \
	"$(diff <(expect c b a | cut -d'|' -f2 | sed -E 's/^c\(b\(a\((k[0-9]+)/\1|&/' | per_key) \
		<(sed -E 's/^c\(b\(a\((k[0-9]+)/\1|&/' "$tmp/c1.out" | per_key) | head -5)" ""

# Bad input: an empty value goes through; one too large for the chain (64 KiB) is skipped.
head -c 70000 /dev/zero | tr '\0' x >"$tmp/big.txt"
echo >>"$tmp/big.txt"
"$faustc" -A chain send chain-in --file "$tmp/big.txt" --key big --datadir "$tmp/c1" \
	>/dev/null 2>&1
printf 'empty:\n' | kcat -b "$addr" -P -t chain-in -K: -p 0 -Z 2>/dev/null # a null value
printf 'empty:\nempty:after\n' | kcat -b "$addr" -P -t chain-in -K: -p 0 2>/dev/null
wait_lines "$tmp/c1.out" $((N + 3))
sleep 0.5
check_eq "null and empty values come out as c(b(a())), in order" \
	"$(topic "$addr" chain-out | grep '^empty|' | paste -sd' ')" \
	"empty|c(b(a())) empty|c(b(a())) empty|c(b(a(after)))"
check_eq "a value too large for the chain is not passed on" \
	"$(topic "$addr" chain-mid | grep -c '^big|')" "0"
grep -q "chain-in\[[0-9]*\]@[0-9]* (key big): 70003 bytes of key and value, too many for stage a" \
	"$tmp/c1.log" && ok "the too large value is logged with topic, partition and offset" ||
	not_ok "the too large value is logged" "$(grep -i warn "$tmp/c1.log" | tail -3)"
stop "$w1"
check_eq "SIGTERM: the worker exits 0" "$status" "0"
check_eq "no agent failed" "$(grep -c 'failed on' "$tmp/c1.log")" "0"

# 2. committed offsets after a stop: the broker must outlive the worker
"$faustc" -A chain broker --addr-file "$tmp/broker.url" >/dev/null 2>"$tmp/broker.log" &
broker_pid=$!
pids+=("$broker_pid")
for _ in $(seq 300); do [ -s "$tmp/broker.url" ] && break; sleep 0.1; done
url=$(cat "$tmp/broker.url")
bootstrap=${url#*://}
start_worker c2 --broker "$url"
w2=$worker_pid
"$faustc" -A chain send chain-in --file "$tmp/in.txt" --key-delimiter : --broker "$url" \
	>/dev/null 2>&1
wait_lines "$tmp/c2.out" "$N"
stop "$w2"
check_eq "SIGTERM on a faustc broker: the worker exits 0" "$status" "0"
check_eq "chain-out holds each value once" \
	"$(diff <(expect c b a | sort) <(topic "$bootstrap" chain-out | sort) | head -5)" ""
# A consumer of group `chain` that starts where the group committed (the beginning where it
# committed nothing) gets nothing: the committed offsets are the high watermarks. The same
# consumer in a new group gets every value, so the check is not vacuous.
past() { # group: "topic count" for each value past the group's committed offsets
	timeout 30 kcat -b "$bootstrap" -G "$1" -X enable.auto.commit=false \
		-X auto.offset.reset=earliest -e -q -f '%t\n' chain-in chain-mid chain-c 2>/dev/null |
		sort | uniq -c | awk '{ print $2 "=" $1 }' | paste -sd' '
}
check_eq "committed offsets of chain-in, chain-mid, chain-c are the high watermarks" \
	"$(past chain)" ""
check_eq "a new group would read every value of the three topics" "$(past fresh-$$)" \
	"chain-c=$N chain-in=$N chain-mid=$N"
kill -TERM "$broker_pid"
wait "$broker_pid"
check_eq "faustc broker exits 0" "$?" "0"

finish
