#!/usr/bin/env bash
# Broker suite: the router example end to end, as a TAP script.
#   1. embedded broker: the leader timer feeds timeDest at ~10/s; evenDest and oddDest hold
#      exactly the even and odd timestamps; the loggers print exactly those; SIGTERM exits 0
#   2. two workers on a shared `faustc broker`: one leader (the rate stays ~10/s); when the
#      leader stops, the other takes over and timestamps keep coming
# Usage: router-e2e.sh BUILD_DIR
set -uo pipefail
. "$(dirname "$0")/e2e-lib.sh" router "$@"

start_worker() { # name [extra args]; stdout to NAME.out, log to NAME.log
	local name=$1
	shift
	"$faustc" -A router worker --datadir "$tmp/$name" --commit-interval 0.5 -l info "$@" \
		>"$tmp/$name.out" 2>"$tmp/$name.log" &
	worker_pid=$!
	pids+=("$worker_pid")
}

stop() { # pid; sets status
	kill -TERM "$1"
	wait "$1"
	status=$?
}

topic() { # bootstrap topic: the values, one a line
	# A short fetch wait: timeDest grows at 10/s, and with Kafka's default wait (500 ms)
	# every fetch brings a new value, so kcat would never see the end it exits at (-e).
	timeout 20 kcat -b "$1" -C -t "$2" -e -q -X fetch.wait.max.ms=10 -f '%s\n' 2>/dev/null
}

wait_log() { # file pattern [count] [tenths]
	for _ in $(seq "${4:-200}"); do
		[ "$(grep -c "$2" "$1" 2>/dev/null)" -ge "${3:-1}" ] && return 0
		sleep 0.1
	done
	return 1
}

# Timestamps per second among the values on stdin: (count - 1) / (last - first).
rate() {
	sort -n | awk 'NR == 1 { f = $1 } { l = $1; c++ }
		END { if (c < 2 || l == f) print 0; else printf "%.1f\n", (c - 1) * 1000 / (l - f) }'
}

in_range() { # value low high
	awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v >= lo && v <= hi) }'
}

# 1. embedded broker
start_worker r1
w1=$worker_pid
wait_log "$tmp/r1.log" "this worker is now the leader" 1 150 &&
	ok "the only worker becomes the leader" ||
	not_ok "the only worker becomes the leader" "$(tail -5 "$tmp/r1.log")"
addr=$(cat "$tmp/r1/broker.addr" 2>/dev/null)
sleep 4
topic "$addr" timeDest >"$tmp/a.txt" # the timestamps every check below is about
sleep 1.5 # router and loggers catch up
topic "$addr" evenDest >"$tmp/even.txt"
topic "$addr" oddDest >"$tmp/odd.txt"
topic "$addr" timeDest >"$tmp/c.txt"
stop "$w1"
check_eq "SIGTERM: the worker exits 0" "$status" "0"

count=$(wc -l <"$tmp/a.txt")
r=$(rate <"$tmp/a.txt")
in_range "$r" 5 15 && ok "timeDest gets ~10 timestamps/s ($r/s, $count in all)" ||
	not_ok "timeDest gets ~10 timestamps/s" "rate $r/s over $count timestamps"
check_eq "timeDest holds decimal timestamps only" "$(grep -cv '^[0-9]\{13\}$' "$tmp/a.txt")" "0"
check_eq "evenDest holds even numbers only" "$(grep -cv '[02468]$' "$tmp/even.txt")" "0"
check_eq "oddDest holds odd numbers only" "$(grep -cv '[13579]$' "$tmp/odd.txt")" "0"
sort "$tmp/even.txt" "$tmp/odd.txt" >"$tmp/routed.txt"
check_eq "no timestamp is routed twice" "$(uniq -d "$tmp/routed.txt" | wc -l)" "0"
check_eq "every timestamp of timeDest is in evenDest or oddDest" \
	"$(comm -23 <(sort -u "$tmp/a.txt") "$tmp/routed.txt" | wc -l)" "0"
check_eq "evenDest and oddDest hold only timestamps of timeDest" \
	"$(comm -13 <(sort -u "$tmp/c.txt") <(sort -u "$tmp/routed.txt") | wc -l)" "0"
sed -E 's/^([0-9]*[02468])$/Even timestamp: \1/; s/^([0-9]*[13579])$/Odd timestamp: \1/' \
	"$tmp/routed.txt" | sort >"$tmp/expected.txt"
# The loggers went on after the topics were read: lines for later timestamps may follow.
max_even=$(sort -n "$tmp/even.txt" | tail -1)
max_odd=$(sort -n "$tmp/odd.txt" | tail -1)
awk -v e="${max_even:-0}" -v o="${max_odd:-0}" '$1 == "Even" && $3 <= e || $1 == "Odd" && $3 <= o' \
	"$tmp/r1.out" | sort >"$tmp/printed.txt"
check_eq "the loggers printed exactly one line per routed timestamp" \
	"$(diff "$tmp/expected.txt" "$tmp/printed.txt" | head -5)" ""
check_eq "every logger line is well formed" \
	"$(grep -cvE '^(Even timestamp: [0-9]*[02468]|Odd timestamp: [0-9]*[13579])$' "$tmp/r1.out")" \
	"0"

# 2. two workers on a shared broker: one leader
"$faustc" broker --addr-file "$tmp/broker.url" >"$tmp/broker.out" 2>"$tmp/broker.log" &
broker_pid=$!
pids+=("$broker_pid")
for _ in $(seq 300); do [ -s "$tmp/broker.url" ] && break; sleep 0.1; done
url=$(cat "$tmp/broker.url")
bootstrap=${url#*://}
start_worker s1 --broker "$url"
s1=$worker_pid
start_worker s2 --broker "$url"
s2=$worker_pid
wait_log "$tmp/s1.log" "partitions assigned" 1 200
wait_log "$tmp/s2.log" "partitions assigned" 1 200
# The worker whose latest leader line says "now" is the leader. The second join can move
# the role once more (a rebalance revokes it, then assigns it again): wait until the group
# has settled on one leader, up to 15 s.
leader_of() { grep -h "leader$" "$tmp/$1.log" | tail -1 | grep -c "now the leader"; }
for _ in $(seq 75); do
	l1=$(leader_of s1)
	l2=$(leader_of s2)
	[ $((l1 + l2)) -eq 1 ] && break
	sleep 0.2
done
check_eq "exactly one of two workers is the leader" "$((l1 + l2))" "1"
t0=$(($(date +%s%3N) + 200))
sleep 3
r=$(topic "$bootstrap" timeDest | awk -v t0="$t0" '$1 >= t0' | rate)
in_range "$r" 5 15 && ok "with two workers timeDest still gets ~10/s ($r/s)" ||
	not_ok "with two workers timeDest still gets ~10/s" "rate $r/s"
if [ "$l1" -eq 1 ]; then
	leader=$s1 other=s2
else
	leader=$s2 other=s1
fi
before=$(grep -c "now the leader" "$tmp/$other.log")
stop "$leader"
check_eq "the leader exits 0 on SIGTERM" "$status" "0"
t1=$(date +%s%3N)
wait_log "$tmp/$other.log" "now the leader" $((before + 1)) 120 &&
	ok "the other worker becomes the leader within 12 s" ||
	not_ok "the other worker becomes the leader within 12 s" "$(tail -5 "$tmp/$other.log")"
sleep 2
after=$(topic "$bootstrap" timeDest | awk -v t1="$t1" '$1 > t1' | wc -l)
[ "$after" -ge 5 ] && ok "timestamps keep coming from the new leader ($after)" ||
	not_ok "timestamps keep coming from the new leader" "$after after the leader stopped"
[ "$other" = s1 ] && other_pid=$s1 || other_pid=$s2
stop "$other_pid"
check_eq "the new leader exits 0 on SIGTERM" "$status" "0"
kill -TERM "$broker_pid"
wait "$broker_pid"
check_eq "faustc broker exits 0" "$?" "0"

finish
