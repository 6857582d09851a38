#!/usr/bin/env bash
# Every C file is formatted as .clang-format says (TAP, one check). Usage: format.sh SOURCE_ROOT
set -uo pipefail
cd "${1:?source root}" || exit 1
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find libagent cli examples tests bench -name '*.[ch]')
if out=$(echo "$files" | xargs clang-format --dry-run --Werror 2>&1); then
	echo "ok 1 - clang-format finds nothing to change in $(echo "$files" | wc -l) files"
	echo "1..1"
else
	echo "not ok 1 - clang-format finds nothing to change"
	echo "$out" | grep 'error:' | head -20 | sed 's/^/#   /'
	echo "#   fix with: clang-format -i FILES"
	echo "1..1"
	exit 1
fi
