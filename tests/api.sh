#!/usr/bin/env bash
# The public API as users meet it, as a TAP script:
#  - every public header compiles on its own with -std=c11 -pedantic -Werror;
#  - the library exports ag_* symbols and nothing else.
# Usage: api.sh SOURCE_ROOT BUILD_DIR
set -uo pipefail
src=$(cd "${1:?source root}" && pwd)
build=$(cd "${2:?build dir}" && pwd)
cc=${CC:-cc}
n=0 failed=0
for h in "$src"/libagent/include/agent/*.h "$build"/libagent/include/agent/*.h; do
	name=agent/$(basename "$h")
	n=$((n + 1))
	if out=$(echo "#include <$name>" | "$cc" -std=c11 -pedantic -Werror -Wall -Wextra \
		-fsyntax-only -I"$src/libagent/include" -I"$build/libagent/include" $(pkg-config --cflags jansson) -x c - 2>&1); then
		echo "ok $n - $name compiles alone with -std=c11 -pedantic"
	else
		failed=$((failed + 1))
		echo "not ok $n - $name compiles alone with -std=c11 -pedantic"
		sed 's/^/#   /' <<<"$out" | head -10
	fi
done
lib=$(ls "$build"/libagent/libagent.so.* | head -1)
extra=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^ag_' | paste -sd' ')
n=$((n + 1))
if [ -z "$extra" ]; then
	echo "ok $n - libagent exports only ag_* symbols"
else
	failed=$((failed + 1))
	echo "not ok $n - libagent exports only ag_* symbols"
	echo "#   also exported: $extra"
fi
count=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -c '^ag_')
echo "# $count ag_* symbols exported"
echo "1..$n"
[ "$failed" -eq 0 ]
