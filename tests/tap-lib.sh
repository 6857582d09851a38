# TAP for the shell tests (sourced): a temporary dir /tmp/faustc-NAME.XXXXXX as $tmp, removed
# at exit with every child in $pids killed (both kept with KEEP=1), and the checks.
# Usage: . "$(dirname "$0")/tap-lib.sh" NAME; end with `finish`.
tmp=$(mktemp -d "/tmp/faustc-${1:?test name}.XXXXXX")
pids=() # every child started; killed at exit
n=0 failed=0

cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)) failed=$((failed + 1))
	echo "not ok $n - $1"
	shift
	for l in "$@"; do echo "#   $l"; done
}
check_eq() { # what got expected
	if [ "$2" == "$3" ]; then ok "$1"; else not_ok "$1" "got: $2" "expected: $3"; fi
}
bail() { echo "Bail out! $*"; exit 1; }

# Ends the test: the plan, and the status.
finish() {
	echo "1..$n"
	[ "$failed" -eq 0 ]
}
