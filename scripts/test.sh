#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test suite: unit and broker tests on a
# normal build, then all of them again under ASan/UBSan (clang), then a short run of every
# fuzz target. Ends with the summary.
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
# (meson test -C build-asan --suite e2e), which keeps CI near ten minutes.
echo "== tests (clang, ASan+UBSan; without the e2e scripts)"
meson test -C build-asan --print-errorlogs --timeout-multiplier 3 --no-suite e2e || status=1

echo "== fuzz targets, a short run each (scripts/fuzz.sh; run longer by hand)"
fuzz_ok=1
scripts/fuzz.sh "${FUZZ_SECONDS:-15}" || { fuzz_ok=0; status=1; }

pass=$fuzz_ok fail=$((1 - fuzz_ok))
for d in build build-asan; do
	p=$(grep -c '"result": "OK"' "$d/meson-logs/testlog.json" || true)
	f=$(grep -c '"result": "\(FAIL\|TIMEOUT\|ERROR\)"' "$d/meson-logs/testlog.json" || true)
	pass=$((pass + p)) fail=$((fail + f))
done
echo "$pass passed, $fail failed"
exit "$status"
