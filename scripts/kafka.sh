#!/usr/bin/env bash
# A real Apache Kafka (KRaft) on loopback, for tests and for trying faustc on a cluster.
#
#   scripts/kafka.sh start [--brokers 1|3] [--dir DIR]   start, wait until every broker answers
#   scripts/kafka.sh bootstrap [--dir DIR]               print host:port,... (last line)
#   scripts/kafka.sh stop [--dir DIR]                    stop the brokers by pid, keep DIR
#   scripts/kafka.sh kill --broker N [--dir DIR]         SIGKILL broker N (a fault, for tests)
#   scripts/kafka.sh restart --broker N [--dir DIR]      start broker N again (same port, data)
#   scripts/kafka.sh leader [--dir DIR]                  the broker leading most partitions
#
# DIR (default $FAUSTC_KAFKA_DIR, else /tmp/faustc-kafka) holds each broker's config, data,
# log (broker-N.log) and pid, and the bootstrap address. The jars (the kafka_2.13 version
# pinned in scripts/kafka/pom.xml and its dependencies) are copied once by Maven into
# ${XDG_CACHE_HOME:-~/.cache}/faustc/kafka-VERSION; later starts need no network. Every
# broker is also a KRaft controller (combined mode). Three brokers: replication factor 3,
# min.insync.replicas=2. Java or Maven missing: Debian's default-jre-headless and maven are
# installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pom="$here/kafka/pom.xml"
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")
cache="${XDG_CACHE_HOME:-$HOME/.cache}/faustc/kafka-$version"
heap=${FAUSTC_KAFKA_HEAP:--Xmx512m -Xms128m}

usage() {
	echo "usage: $0 start [--brokers 1|3] [--dir DIR] | bootstrap [--dir DIR] | stop [--dir DIR]" \
		"| kill --broker N [--dir DIR] | restart --broker N [--dir DIR] | leader [--dir DIR]" >&2
	exit 2
}
say() { echo "kafka.sh: $*" >&2; }
die() {
	say "$*"
	exit 1
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
dir=${FAUSTC_KAFKA_DIR:-/tmp/faustc-kafka}
brokers=1
broker=""
while [ $# -gt 0 ]; do
	case "$1" in
	--brokers) brokers=${2:?--brokers needs 1 or 3}; shift 2 ;;
	--dir) dir=${2:?--dir needs a directory}; shift 2 ;;
	--broker) broker=${2:?--broker needs a broker number}; shift 2 ;;
	*) usage ;;
	esac
done
case "$brokers" in 1 | 3) ;; *) die "--brokers must be 1 or 3, not $brokers" ;; esac

# Debian's Java and Maven, when missing.
need_tools() {
	local missing=()
	command -v java >/dev/null || missing+=(default-jre-headless)
	command -v mvn >/dev/null || missing+=(maven)
	[ ${#missing[@]} -eq 0 ] && return
	say "installing ${missing[*]}"
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The jars, fetched once (under a lock: parallel starts share one cache).
fetch_jars() {
	[ -f "$cache/complete" ] && return
	need_tools
	mkdir -p "$cache"
	exec 9>"$cache/.lock"
	flock 9
	if [ ! -f "$cache/complete" ]; then
		say "fetching Apache Kafka $version with Maven into $cache (once)"
		rm -rf "$cache/libs"
		mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
			-DoutputDirectory="$cache/libs" >"$cache/mvn.log" 2>&1 ||
			die "Maven could not fetch Kafka $version (see $cache/mvn.log)"
		touch "$cache/complete"
	fi
	exec 9>&-
}

# A free TCP port on 127.0.0.1 (bound to port 0 and released; recorded in DIR at once).
free_port() {
	if command -v python3 >/dev/null; then
		python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
		return
	fi
	local p
	while :; do
		p=$((20000 + RANDOM % 30000))
		(echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}

running() { # pid file
	[ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

java_cmd=() # set by set_java
set_java() {
	# shellcheck disable=SC2206
	java_cmd=(java $heap -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
		-Dlog4j2.configurationFile="$here/kafka/log4j2.properties" -cp "$cache/libs/*")
}

# Whether metadata from the bootstrap lists every broker (kcat, when present; else the
# ports accept connections).
answers() {
	local n
	if command -v kcat >/dev/null; then
		n=$(kcat -b "$1" -L -m 2 2>/dev/null | sed -n 's/^ *\([0-9]*\) brokers:.*/\1/p') || true
		[ "${n:-0}" -ge "$brokers" ]
		return
	fi
	local hp
	for hp in ${1//,/ }; do
		(echo >"/dev/tcp/${hp%:*}/${hp#*:}") 2>/dev/null || return 1
	done
}

start() {
	local i
	for i in 1 2 3; do
		running "$dir/broker-$i.pid" && die "a broker of $dir is running (pid $(cat "$dir/broker-$i.pid")); stop it first"
	done
	fetch_jars
	set_java
	rm -rf "$dir"
	mkdir -p "$dir"
	local t0=$SECONDS ports=() cports=() voters="" boot=""
	for ((i = 1; i <= brokers; i++)); do
		ports[i]=$(free_port)
		cports[i]=$(free_port)
		voters+="${voters:+,}$i@127.0.0.1:${cports[i]}"
		boot+="${boot:+,}127.0.0.1:${ports[i]}"
	done
	local rf=$brokers isr=1
	[ "$brokers" -eq 3 ] && isr=2
	# A cluster id: 16 random bytes, base64url without padding (Kafka's Uuid form).
	local id
	id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
	for ((i = 1; i <= brokers; i++)); do
		cat >"$dir/broker-$i.properties" <<-EOF
			process.roles=broker,controller
			node.id=$i
			controller.quorum.voters=$voters
			listeners=PLAINTEXT://127.0.0.1:${ports[i]},CONTROLLER://127.0.0.1:${cports[i]}
			advertised.listeners=PLAINTEXT://127.0.0.1:${ports[i]}
			controller.listener.names=CONTROLLER
			listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
			inter.broker.listener.name=PLAINTEXT
			log.dirs=$dir/data-$i
			num.partitions=1
			auto.create.topics.enable=false
			default.replication.factor=$rf
			min.insync.replicas=$isr
			offsets.topic.replication.factor=$rf
			offsets.topic.num.partitions=10
			transaction.state.log.replication.factor=$rf
			transaction.state.log.min.isr=$isr
			transaction.state.log.num.partitions=10
			share.coordinator.state.topic.replication.factor=$rf
			share.coordinator.state.topic.min.isr=$isr
			group.initial.rebalance.delay.ms=0
			num.network.threads=2
			num.io.threads=4
			log.cleaner.threads=1
			log.cleaner.dedupe.buffer.size=8388608
			log.retention.check.interval.ms=10000
			delete.topic.enable=true
			message.max.bytes=16777216
			log.retention.ms=-1
		EOF
		"${java_cmd[@]}" -Dfaustc.log="$dir/format-$i.log" kafka.tools.StorageTool format --ignore-formatted --cluster-id="$id" \
			-c "$dir/broker-$i.properties" >"$dir/format-$i.out" 2>&1 ||
			die "formatting broker $i failed (see $dir/format-$i.out and .log)"
	done
	for ((i = 1; i <= brokers; i++)); do
		nohup "${java_cmd[@]}" -Dkafka.logs.dir="$dir" -Dfaustc.log="$dir/broker-$i.log" \
			kafka.Kafka "$dir/broker-$i.properties" >"$dir/broker-$i.out" 2>&1 &
		echo $! >"$dir/broker-$i.pid"
	done
	echo "$boot" >"$dir/bootstrap"
	echo "$brokers" >"$dir/brokers"
	local deadline=$((SECONDS + 120))
	until answers "$boot"; do
		for ((i = 1; i <= brokers; i++)); do
			running "$dir/broker-$i.pid" ||
				die "broker $i exited while starting; see $dir/broker-$i.log and $dir/broker-$i.out"
		done
		[ $SECONDS -lt $deadline ] || die "the brokers do not answer at $boot after 120 s; see $dir/broker-*.log"
		sleep 0.2
	done
	say "Kafka $version: $brokers broker(s) at $boot, ready in $((SECONDS - t0)) s (data and logs in $dir)"
	echo "$boot"
}

stop() {
	local i pids=()
	for i in 1 2 3; do
		running "$dir/broker-$i.pid" && pids+=("$(cat "$dir/broker-$i.pid")")
	done
	if [ ${#pids[@]} -eq 0 ]; then
		say "no broker of $dir is running"
		rm -f "$dir"/broker-*.pid
		return
	fi
	kill -TERM "${pids[@]}" 2>/dev/null || true
	local p deadline=$((SECONDS + 30))
	for p in "${pids[@]}"; do
		while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
		if kill -0 "$p" 2>/dev/null; then
			say "broker pid $p did not stop within 30 s; killing it"
			kill -KILL "$p" 2>/dev/null || true
		fi
	done
	rm -f "$dir"/broker-*.pid
	say "stopped ${#pids[@]} broker(s) of $dir"
}

# The broker --broker N of DIR's cluster, checked.
one_broker() {
	[ -n "$broker" ] || die "$cmd needs --broker N (1 to the number of brokers of $dir)"
	[ -f "$dir/broker-$broker.properties" ] || die "$dir has no broker $broker (scripts/kafka.sh start --dir $dir)"
}

# SIGKILL, as a crash: no controlled shutdown, leadership moves only after the session of
# the broker times out at the controller.
kill_broker() {
	one_broker
	running "$dir/broker-$broker.pid" || die "broker $broker of $dir is not running"
	local p
	p=$(cat "$dir/broker-$broker.pid")
	kill -KILL "$p"
	while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
	rm -f "$dir/broker-$broker.pid"
	say "killed broker $broker (pid $p) of $dir"
}

# Starts broker N again with its config and data (same ports); returns once its port
# accepts connections (the others may still be electing it back).
restart_broker() {
	one_broker
	running "$dir/broker-$broker.pid" && die "broker $broker of $dir is running (pid $(cat "$dir/broker-$broker.pid"))"
	fetch_jars
	set_java
	nohup "${java_cmd[@]}" -Dkafka.logs.dir="$dir" -Dfaustc.log="$dir/broker-$broker.log" \
		kafka.Kafka "$dir/broker-$broker.properties" >>"$dir/broker-$broker.out" 2>&1 &
	echo $! >"$dir/broker-$broker.pid"
	local hp t0=$SECONDS deadline=$((SECONDS + 120))
	hp=$(sed -n 's|^advertised.listeners=PLAINTEXT://||p' "$dir/broker-$broker.properties")
	until (echo >"/dev/tcp/${hp%:*}/${hp#*:}") 2>/dev/null; do
		running "$dir/broker-$broker.pid" || die "broker $broker exited while starting; see $dir/broker-$broker.log"
		[ $SECONDS -lt $deadline ] || die "broker $broker does not answer at $hp after 120 s"
		sleep 0.2
	done
	say "restarted broker $broker of $dir at $hp in $((SECONDS - t0)) s"
}

# The node id leading the most partitions of the user topics (kcat metadata).
leader() {
	command -v kcat >/dev/null || die "leader needs kcat"
	[ -f "$dir/bootstrap" ] || die "no Kafka started in $dir"
	kcat -b "$(cat "$dir/bootstrap")" -L 2>/dev/null |
		sed -n 's/^ *partition [0-9]*, leader \([0-9]*\),.*/\1/p' | sort | uniq -c | sort -rn |
		awk 'NR == 1 { print $2 }'
}

case "$cmd" in
start) start ;;
kill) kill_broker ;;
restart) restart_broker ;;
leader) leader ;;
bootstrap)
	[ -f "$dir/bootstrap" ] || die "no Kafka started in $dir (scripts/kafka.sh start --dir $dir)"
	cat "$dir/bootstrap"
	;;
stop) stop ;;
*) usage ;;
esac
