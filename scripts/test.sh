#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test suite: unit and broker tests on a
# normal build, then all of them again under ASan/UBSan (clang), the broker suite once more
# on a real Apache Kafka (scripts/kafka.sh, suite kafka), then a short run of every fuzz target. Ends with
# the summary.
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
# The shell end-to-end scripts (suite e2e) drive the faustc binary through the same library
# code the C broker tests cover; under the sanitizers they run by hand
# (meson test -C build-asan --suite e2e), which keeps CI near twenty minutes (about eight
# of them on Kafka).
echo "== tests (clang, ASan+UBSan; without the e2e scripts)"
meson test -C build-asan --print-errorlogs --timeout-multiplier 3 --no-suite e2e || status=1

# Suite kafka (the broker tests and e2e scripts checked on a real cluster; tests/meson.build)
# again on a real Apache Kafka (scripts/kafka.sh, one broker, its own dir): the harness and
# the e2e scripts take the cluster from FAUSTC_TEST_KAFKA.
echo "== broker tests on Apache Kafka (gcc)"
kafka_dir=$(mktemp -d /tmp/faustc-kafka-test.XXXXXX)
rm -f build/meson-logs/testlog-kafka.json
if kafka=$(scripts/kafka.sh start --dir "$kafka_dir" | tail -1); then
	FAUSTC_TEST_KAFKA=$kafka FAUSTC_TEST_KAFKA_DIR=$kafka_dir meson test -C build --print-errorlogs --suite kafka \
		--logbase testlog-kafka || status=1
else
	echo "Kafka did not start; see $kafka_dir" >&2
	status=1
fi
scripts/kafka.sh stop --dir "$kafka_dir" || true
[ "$status" -ne 0 ] || rm -rf "$kafka_dir" # kept with the brokers' logs when something failed

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
