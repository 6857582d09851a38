#!/usr/bin/env bash
# Runs bench/run.sh several times and prints each round and the median of every figure.
# librdkafka 2.0.2's consumer stops fetching once queued.min.messages (100,000) wait in its
# queue and restarts on its next internal wake-up, which puts ~0.7 s into some runs of
# either pipe; medians over rounds keep one such stall from deciding the ratio.
# Usage: bench/rounds.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
rounds=${2:-5}
out=$(mktemp -t faustc-rounds.XXXXXX)
trap 'rm -f "$out"' EXIT
for i in $(seq "$rounds"); do
	echo "round $i of $rounds ..." >&2
	"$here/run.sh" "$build" | grep -E '^(raw|limit|limit-i|faustc) ' | tee -a "$out"
done
awk '
function median(a, n,   i, j, t) {
	for (i = 1; i <= n; i++)
		for (j = i + 1; j <= n; j++)
			if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
$1 == "raw"    { nr++; rrate[nr] = $4; rcpu[nr] = $5; rrss[nr] = $6 }
$1 == "limit"  { nl++; lrate[nl] = $4; lcpu[nl] = $5; lrss[nl] = $6 }
$1 == "limit-i" { ni++; irate[ni] = $4; icpu[ni] = $5; irss[ni] = $6 }
$1 == "faustc" { nf++; frate[nf] = $4; fcpu[nf] = $5; frss[nf] = $6 }
END {
	r1 = median(rrate, nr); r2 = median(rcpu, nr); r3 = median(rrss, nr)
	l1 = median(lrate, nl); l2 = median(lcpu, nl); l3 = median(lrss, nl)
	i1 = median(irate, ni); i2 = median(icpu, ni); i3 = median(irss, ni)
	f1 = median(frate, nf); f2 = median(fcpu, nf); f3 = median(frss, nf)
	printf "\nmedian of %d rounds  events/s   CPU s/1M ev   RSS MiB\n", nr
	printf "raw                %9d   %11.3f   %7.1f\n", r1, r2, r3
	printf "limit              %9d   %11.3f   %7.1f\n", l1, l2, l3
	printf "limit-i            %9d   %11.3f   %7.1f\n", i1, i2, i3
	printf "faustc             %9d   %11.3f   %7.1f\n", f1, f2, f3
	printf "\nfaustc/raw events/s:  %.2f (target >= 0.80: %s)\n", f1 / r1, (f1 / r1 >= 0.8 ? "met" : "NOT met")
	printf "faustc/raw CPU/event: %.2f (target <= 1.50: %s)\n", f2 / r2, (f2 / r2 <= 1.5 ? "met" : "NOT met")
	printf "faustc/raw peak RSS:  %.2f\n", f3 / r3
	printf "faustc/limit events/s:  %.2f (target >= 0.90: %s)\n", f1 / l1, (f1 / l1 >= 0.9 ? "met" : "NOT met")
	printf "faustc/limit CPU/event: %.2f (target <= 1.30: %s)\n", f2 / l2, (f2 / l2 <= 1.3 ? "met" : "NOT met")
	# Each round runs the programs one after another on one broker: the median of each
	# ratio per round leaves out the load that changes between rounds.
	for (k = 1; k <= nf; k++) { pl[k] = fcpu[k] / lcpu[k]; pi[k] = fcpu[k] / icpu[k] }
	printf "faustc/limit CPU/event, median of the rounds'"'"' own ratios:   %.2f\n", median(pl, nf)
	printf "faustc/limit-i CPU/event, median of the rounds'"'"' own ratios: %.2f\n", median(pi, nf)
	printf "faustc/limit-i events/s:  %.2f (the loop with an idempotent producer, as the worker)\n", f1 / i1
	printf "faustc/limit-i CPU/event: %.2f\n", f2 / i2
	printf "limit-i/limit CPU/event:  %.2f (what idempotence costs the loop)\n", i2 / l2
	printf "limit/raw CPU/event:    %.2f\n", l2 / r2
}' "$out"
