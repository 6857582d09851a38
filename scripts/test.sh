#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test suite: unit and broker tests on a
# normal build, then all of them again under ASan/UBSan (clang) while the broker suite runs
# once more on a real Apache Kafka (scripts/kafka.sh, suite kafka), then a short run of
# every fuzz target. Ends with the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
werror=-Dwerror=true
tools=-Drequire_test_tools=true
scripts/setup.sh build "$werror" "$tools"
scripts/setup.sh build-asan "$werror" "$tools" -Db_sanitize=address,undefined -Db_lundef=false \
	--native-file scripts/clang.ini

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
echo "== tests (gcc, debugoptimized)"
meson test -C build --print-errorlogs || status=1
# The ASan/UBSan pass and suite kafka on a real Apache Kafka run side by side: the broker
# tests mostly wait (group joins, commit cycles, timeouts), not compute, and the two share
# nothing (the ASan pass uses embedded brokers in build-asan/, the Kafka pass one cluster of
# its own and build/). Their outputs are printed one after the other once both are done.
#
# The shell end-to-end scripts (suite e2e) drive the faustc binary through the same library
# code the C broker tests cover; under the sanitizers they run by hand
# (meson test -C build-asan --suite e2e).
#
# Suite kafka (the broker tests and e2e scripts checked on a real cluster; tests/meson.build)
# runs on a real Apache Kafka (scripts/kafka.sh, one broker, its own dir): the harness and
# the e2e scripts take the cluster from FAUSTC_TEST_KAFKA.
asan_out=build-asan/meson-logs/ci-asan.out
kafka_out=build/meson-logs/ci-kafka.out
kafka_dir=$(mktemp -d /tmp/faustc-kafka-test.XXXXXX)
rm -f build/meson-logs/testlog-kafka.json
mkdir -p build-asan/meson-logs build/meson-logs
meson test -C build-asan --print-errorlogs --timeout-multiplier 3 --no-suite e2e \
	>"$asan_out" 2>&1 &
asan_pid=$!
kafka_ok=1
if kafka=$(scripts/kafka.sh start --dir "$kafka_dir" | tail -1); then
	FAUSTC_TEST_KAFKA=$kafka FAUSTC_TEST_KAFKA_DIR=$kafka_dir meson test -C build --print-errorlogs --suite kafka \
		--logbase testlog-kafka >"$kafka_out" 2>&1 || kafka_ok=0
else
	echo "Kafka did not start; see $kafka_dir" >"$kafka_out"
	kafka_ok=0
fi
scripts/kafka.sh stop --dir "$kafka_dir" >>"$kafka_out" 2>&1 || true
asan_ok=1
wait "$asan_pid" || asan_ok=0
echo "== tests (clang, ASan+UBSan; without the e2e scripts)"
cat "$asan_out"
echo "== broker tests on Apache Kafka (gcc)"
cat "$kafka_out"
[ "$asan_ok" = 1 ] || status=1
if [ "$kafka_ok" = 1 ]; then
	rm -rf "$kafka_dir"
else
	status=1 # kafka_dir kept with the brokers' logs
fi

echo "== fuzz targets, a short run each (scripts/fuzz.sh; run longer by hand)"
fuzz_ok=1
scripts/fuzz.sh "${FUZZ_SECONDS:-15}" || { fuzz_ok=0; status=1; }

pass=$fuzz_ok fail=$((1 - fuzz_ok))
for log in build/meson-logs/testlog.json build-asan/meson-logs/testlog.json \
	build/meson-logs/testlog-kafka.json; do
	[ -f "$log" ] || { fail=$((fail + 1)); continue; }
	p=$(grep -c '"result": "OK"' "$log" || true)
	f=$(grep -c '"result": "\(FAIL\|TIMEOUT\|ERROR\)"' "$log" || true)
	pass=$((pass + p)) fail=$((fail + f))
done
echo "$pass passed, $fail failed"
exit "$status"
