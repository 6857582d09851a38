#!/usr/bin/env bash
# CLI argument errors and listings, as a TAP script. Usage: cli.sh BUILD_DIR
set -uo pipefail
build=$(cd "${1:?build dir}" && pwd)
faustc="$build/cli/faustc"
tmp=$(mktemp -d /tmp/faustc-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0

# expect STATUS PATTERN what -- command...: exit status and a line matching PATTERN (stdout+stderr)
expect() {
	local status=$1 pattern=$2 what=$3
	shift 4
	out=$("$@" 2>&1)
	got=$?
	n=$((n + 1))
	if [ "$got" -eq "$status" ] && grep -qE -- "$pattern" <<<"$out"; then
		echo "ok $n - $what"
	else
		failed=$((failed + 1))
		echo "not ok $n - $what"
		echo "#   status $got (expected $status), output:"
		sed 's/^/#     /' <<<"$out" | head -10
		echo "#   expected a line matching: $pattern"
	fi
}

expect 0 'usage: faustc' "faustc --help" -- "$faustc" --help
expect 2 'usage: faustc' "no command: usage on stderr, status 2" -- "$faustc"
expect 0 '^faustc [0-9]' "--version" -- "$faustc" --version
expect 0 'usage: faustc new NAME' "new --help" -- "$faustc" new --help
expect 2 "'9lives' is not an app name" "new with a bad name" -- "$faustc" new 9lives "$tmp/n"
expect 0 "^created $tmp/n/demo.c" "new writes a project" -- "$faustc" new demo "$tmp/n"
expect 2 "unknown app 'nosuchapp'; searched:" "unknown app names the paths searched" -- \
	"$faustc" -A nosuchapp worker
expect 2 "examples" "the examples dir is searched" -- "$faustc" -A nosuchapp worker
expect 2 "unknown command 'frobnicate'" "unknown command" -- "$faustc" -A greeter frobnicate
expect 2 "unknown or incomplete option --bogus" "unknown option" -- "$faustc" -A greeter worker --bogus
expect 2 "needs an app: pass -A APP" "worker without an app" -- "$faustc" worker
expect 2 "bad value for loglevel 'loud'" "bad log level" -- "$faustc" -A greeter worker -l loud
expect 2 "bad value for commit_interval" "bad commit interval" -- \
	"$faustc" -A greeter worker --commit-interval -1
expect 2 "KEY=VALUE" "bad --kafka-config" -- "$faustc" -A greeter worker --kafka-config nonsense
expect 0 "usage: faustc -A APP worker" "worker --help" -- "$faustc" -A greeter worker --help
expect 0 "usage: faustc -A APP send" "send --help" -- "$faustc" -A greeter send --help
expect 2 "send wants TOPIC" "send without a value" -- "$faustc" -A greeter send names
expect 0 "^greet +names +topic:greetings" "agents lists greet with its topic and sink" -- \
	"$faustc" -A greeter agents
expect 0 "^greeter-seen_count-changelog +8 .*internal" "topics lists the changelog" -- \
	"$faustc" -A greeter topics
expect 0 "^names +8 +string +raw +app +-" "topics lists names" -- "$faustc" -A greeter topics
expect 0 "^greet " "-A takes a path" -- "$faustc" -A "$build/examples/greeter.so" agents
expect 0 "^greet " "FAUSTC_PATH is searched" -- env FAUSTC_PATH="$tmp:$build/examples" \
	"$faustc" -A greeter agents
expect 0 "^greet " "the app as its own binary" -- "$build/examples/greeter" agents
expect 1 "no broker: .*broker.addr does not exist" "send without a broker says what to do" -- \
	"$faustc" -A greeter send names Ann --datadir "$tmp/none"
expect 2 "declares no topic nosuchtopic; send to one of: names" "send to an unknown topic" -- \
	"$faustc" -A greeter send nosuchtopic x --datadir "$tmp/none"
expect 1 "no broker reachable at 127.0.0.1:1 " "send gives up on an unreachable broker" -- \
	"$faustc" -A greeter send names Ann --broker kafka://127.0.0.1:1 --timeout 1.5
expect 124 "waiting for broker at 127.0.0.1:1" "a worker keeps waiting for its broker" -- \
	timeout 4 "$faustc" -A greeter worker --broker kafka://127.0.0.1:1 --datadir "$tmp/w"
"$faustc" -A greeter worker --broker kafka://127.0.0.1:1 --datadir "$tmp/wait" 2>"$tmp/wait.log" &
waiting=$!
sleep 1.5
kill -TERM "$waiting"
wait "$waiting"
wait_status=$?
n=$((n + 1))
if [ "$wait_status" -eq 0 ] && grep -q "stopped while waiting for the broker at 127.0.0.1:1" "$tmp/wait.log"; then
	echo "ok $n - SIGTERM stops a worker that waits for its broker, with status 0"
else
	failed=$((failed + 1))
	echo "not ok $n - SIGTERM stops a worker that waits for its broker, with status 0"
	echo "#   status $wait_status; log:"
	sed 's/^/#     /' "$tmp/wait.log" | tail -5
fi
expect 1 "is not a broker URL; use mock://HOST:PORT" "a bad broker URL says what is accepted" -- \
	"$faustc" -A greeter worker --broker "http://x" --datadir "$tmp/w"
expect 0 "^withdrawal +4 +withdrawals" "models lists record types with their topics" -- \
	"$faustc" -A withdrawals models
expect 0 "^amount +float +yes" "model shows a record's fields" -- \
	"$faustc" -A withdrawals model withdrawal
expect 0 "^date +string +no" "model marks optional fields" -- \
	"$faustc" -A withdrawals model withdrawal
expect 2 "no record type 'nope'; .faustc models. lists them" "model of an unknown record" -- \
	"$faustc" -A withdrawals model nope
expect 2 "\(type\): field amount: expected a number, got a string" \
	"send names the wrong field before contacting a broker" -- "$faustc" -A withdrawals send \
	withdrawals --key ann '{"user": "ann", "country": "US", "amount": "x"}' --datadir "$tmp/none"
expect 2 "\(missing\): field country" "send names a missing field" -- "$faustc" -A withdrawals \
	send withdrawals --key ann '{"user": "ann", "amount": 1}' --datadir "$tmp/none"
expect 2 "\(null_key\)" "send refuses a missing key where the topic requires one" -- \
	"$faustc" -A withdrawals send withdrawals '{"user": "a", "country": "US", "amount": 1}' \
	--datadir "$tmp/none"
printf 'a:{"user":"a","country":"US","amount":1}\nb:{"user":"b","amount":2}\nc:nope\n' >"$tmp/w.txt"
expect 2 "w.txt:2: .*\(missing\)" "send reports bad lines by number" -- "$faustc" -A withdrawals \
	send withdrawals --file "$tmp/w.txt" --key-delimiter : --datadir "$tmp/none"
expect 2 "2 invalid keys or values in 3 lines; nothing was sent" "send sends nothing when a line is bad" \
	-- "$faustc" -A withdrawals send withdrawals --file "$tmp/w.txt" --key-delimiter : \
	--datadir "$tmp/none"
"$faustc" -A greeter worker --datadir "$tmp/shared" 2>"$tmp/first.log" &
first=$!
for _ in $(seq 100); do [ -s "$tmp/shared/broker.addr" ] && break; sleep 0.1; done
expect 1 "data dir .*/shared is used by another worker \(pid $first\); give each worker its own --datadir" \
	"a second worker on the same data dir is refused, naming the first" -- \
	"$faustc" -A greeter worker --datadir "$tmp/shared"
kill -TERM "$first"
wait "$first"
first_status=$?
n=$((n + 1))
if [ "$first_status" -eq 0 ] && [ ! -e "$tmp/shared/broker.addr" ]; then
	echo "ok $n - the first worker is unharmed and exits cleanly"
else
	failed=$((failed + 1))
	echo "not ok $n - the first worker is unharmed and exits cleanly"
	echo "#   status $first_status; its log:"
	sed 's/^/#     /' "$tmp/first.log" | tail -5
fi
# Table commands against a running worker (read-only LMDB) and after it stopped.
"$faustc" -A greeter worker --datadir "$tmp/tab" --commit-interval 0.2 2>"$tmp/tab.log" &
tabw=$!
for _ in $(seq 100); do [ -s "$tmp/tab/broker.addr" ] && break; sleep 0.1; done
for name in Ann Bob Ann; do
	"$faustc" -A greeter send names "{\"name\": \"$name\"}" --key "$name" --datadir "$tmp/tab" >/dev/null 2>&1
done
for _ in $(seq 150); do
	"$faustc" -A greeter table seen_count --key Ann --datadir "$tmp/tab" 2>/dev/null | grep -q ' 2$' && break
	sleep 0.1
done
expect 0 "^ +[0-9]+ Ann +[0-9]+ 2$" "table --key reads a running worker's LMDB" -- \
	"$faustc" -A greeter table seen_count --key Ann --datadir "$tmp/tab"
expect 0 "^ +[0-9]+ Bob +0 1$" "table lists every key with its source offset and value" -- \
	"$faustc" -A greeter table seen_count --datadir "$tmp/tab"
expect 0 '"key": "Ann",' "table --json" -- \
	"$faustc" -A greeter table seen_count --key Ann --json --datadir "$tmp/tab"
expect 0 '"value": 2,' "table --json has the value" -- \
	"$faustc" -A greeter table seen_count --key Ann --json --datadir "$tmp/tab"
expect 0 "^seen_count +plain +[0-7] +1 +[0-9]+$" "tables shows key counts and changelog offsets" -- \
	"$faustc" -A greeter tables --datadir "$tmp/tab"
expect 1 "has no key 'Cat'" "table --key of a missing key" -- \
	"$faustc" -A greeter table seen_count --key Cat --datadir "$tmp/tab"
expect 2 "no table 'nope'" "table of an unknown table" -- \
	"$faustc" -A greeter table nope --datadir "$tmp/tab"
expect 2 "Run again with --yes" "reset wants --yes" -- "$faustc" -A greeter reset --datadir "$tmp/tab"
expect 1 "a worker \(pid $tabw\) is using .*/tab; stop it" "reset is refused while a worker runs" -- \
	"$faustc" -A greeter reset --yes --datadir "$tmp/tab"
kill -TERM "$tabw"
wait "$tabw"
expect 0 "deleted the table state in .*/tab/tables" "reset --yes deletes the table state" -- \
	"$faustc" -A greeter reset --yes --datadir "$tmp/tab"
expect 1 "no table store at .*/tab/tables" "table after a reset" -- \
	"$faustc" -A greeter table seen_count --datadir "$tmp/tab"
expect 0 "no table store at .*/tab/tables yet" "tables after a reset" -- \
	"$faustc" -A greeter tables --datadir "$tmp/tab"
# The greeter's TTL option: a name not seen for 1 s is swept from the table.
GREETER_SEEN_TTL=1 "$faustc" -A greeter worker --datadir "$tmp/ttl" --commit-interval 0.2 \
	2>"$tmp/ttl.log" &
ttlw=$!
for _ in $(seq 100); do [ -s "$tmp/ttl/broker.addr" ] && break; sleep 0.1; done
"$faustc" -A greeter send names Ann --key Ann --datadir "$tmp/ttl" >/dev/null 2>&1
for _ in $(seq 100); do
	"$faustc" -A greeter table seen_count --key Ann --datadir "$tmp/ttl" >/dev/null 2>&1 && break
	sleep 0.1
done
expect 0 "^ +[0-9]+ Ann +[0-9]+ 1$" "GREETER_SEEN_TTL=1: Ann is counted" -- \
	"$faustc" -A greeter table seen_count --key Ann --datadir "$tmp/ttl"
sleep 2.5
expect 1 "has no key 'Ann'" "GREETER_SEEN_TTL=1: Ann is gone after 1 s without a visit" -- \
	"$faustc" -A greeter table seen_count --key Ann --datadir "$tmp/ttl"
kill -TERM "$ttlw"
wait "$ttlw"
expect 1 "GREETER_SEEN_TTL wants seconds > 0" "a bad GREETER_SEEN_TTL is refused" -- \
	env GREETER_SEEN_TTL=soon "$faustc" -A greeter agents
echo "1..$n"
[ "$failed" -eq 0 ]
