# Shared by the bench scripts (sourced, not run): a temporary directory that goes away on
# exit, and the broker the pipes run against. The sourcing script defines die().

# bench_setup NAME: TMP is a new directory; on exit (and on SIGINT/SIGTERM) the broker, if
# bench_broker started one, is stopped and TMP removed.
bench_setup() {
	TMP=$(mktemp -d -t "faustc-$1.XXXXXX")
	BROKER_PID=
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

bench_cleanup() {
	if [[ -n $BROKER_PID ]] && kill "$BROKER_PID" 2>/dev/null; then
		wait "$BROKER_PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}

# bench_kafka KAFKA: sets broker_args for bench_broker: nothing for the embedded broker (KAFKA
# empty), else --broker KAFKA after checking that the cluster has no `withdrawals` topic yet
# (the pipes read the whole topic, so it must hold only this run's load).
bench_kafka() {
	broker_args=()
	[[ -n $1 ]] || return 0
	if command -v kcat >/dev/null &&
		kcat -b "${1#kafka://}" -L -t withdrawals 2>/dev/null | grep -Eq 'topic "withdrawals" with [1-9]'; then
		die "$1 already has topic withdrawals; run on a fresh cluster (scripts/kafka.sh start --dir DIR)"
	fi
	broker_args=(--broker "$1")
}

# bench_broker FAUSTC APP [ARG...]: runs `FAUSTC -A APP broker ARG...` (the embedded broker,
# or with --broker kafka://... the app's topics on that cluster), waits up to 60 s for its
# address, and sets URL (for --broker) and BOOTSTRAP (HOST:PORT, for librdkafka clients).
bench_broker() {
	local faustc=$1 app=$2
	shift 2
	"$faustc" -A "$app" broker "$@" --addr-file "$TMP/addr" >"$TMP/broker.log" 2>&1 &
	BROKER_PID=$!
	for _ in $(seq 600); do
		[[ -s $TMP/addr ]] && break
		kill -0 "$BROKER_PID" 2>/dev/null || die "the broker exited: $(tail -5 "$TMP/broker.log")"
		sleep 0.1
	done
	[[ -s $TMP/addr ]] || die "the broker wrote no address in 60 s: $(tail -5 "$TMP/broker.log")"
	URL=$(head -n 1 "$TMP/addr")
	BOOTSTRAP=${URL#mock://}
	BOOTSTRAP=${BOOTSTRAP#kafka://}
}
