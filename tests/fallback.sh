#!/usr/bin/env bash
# The subprojects/ fallbacks, built offline, as a TAP script (suites fallback and e2e):
#  1. Debian's source packages of lmdb, msgpack-c, jansson, libuv1 and librdkafka
#     (`apt-get source --download-only`, which needs the deb-src line scripts/setup.sh
#     adds) fill subprojects/packagecache in a copy of the sources;
#  2. meson setup --wrap-mode=nodownload
#     --force-fallback-for=lmdb,msgpack-c,jansson,libuv,librdkafka builds all five from those
#     tarballs (meson checks each wrap's source_hash; librdkafka through the cmake module),
#     with -Dwerror=true, unoptimized (-O0 builds in about a third of the time of -O2);
#  3. libagent.so links none of the system's libuv, liblmdb or libmsgpackc (they are inside,
#     not exported), and the subprojects' libjansson.so.4 and librdkafka.so, whose headers
#     the library was compiled with;
#  4. in that build the unit tests of LMDB and msgpack use (store, codec, record) and the
#     api test (only ag_* exported) pass;
#  5. the greeter runs end to end on the embedded broker: its table in LMDB, its values
#     through jansson.
# Usage: fallback.sh SOURCE_ROOT
set -uo pipefail
src=$(cd "${1:?source root}" && pwd)
. "$(dirname "$0")/tap-lib.sh" fallback

# 1. Debian's source packages into the packagecache of a copy of the sources.
mkdir -p "$tmp/src" "$tmp/debsrc"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$src" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 cp --parents -t "$tmp/src" 2>/dev/null)
else
	tar -C "$src" --exclude='./build*' --exclude='./subprojects/*/' -cf - . | tar -C "$tmp/src" -xf -
fi
(cd "$tmp/debsrc" && apt-get source --download-only lmdb msgpack-c jansson libuv1 librdkafka) \
	>"$tmp/apt.log" 2>&1 ||
	bail "apt-get source failed (no deb-src line? run scripts/setup.sh): $(tail -2 "$tmp/apt.log")"
cache=$tmp/src/subprojects/packagecache
mkdir -p "$cache"
for wrap in lmdb msgpack-c jansson libuv librdkafka; do
	f=$(sed -n 's/^source_filename = //p' "$tmp/src/subprojects/$wrap.wrap")
	cp "$tmp/debsrc/$f" "$cache/" 2>/dev/null
done
check_eq "Debian's orig tarballs are the wraps' source files" "$(ls "$cache" | sort | paste -sd' ')" \
	"jansson_2.14.orig.tar.gz librdkafka_2.0.2.orig.tar.gz libuv1_1.44.2.orig.tar.gz lmdb_0.9.24.orig.tar.gz msgpack-c_4.0.0.orig.tar.gz"

# 2. Offline: nodownload, and no proxy that could reach anything.
cd "$tmp/src"
start=$(date +%s)
http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 meson setup b \
	--wrap-mode=nodownload --force-fallback-for=lmdb,msgpack-c,jansson,libuv,librdkafka \
	-Dwerror=true --buildtype=plain >"$tmp/setup.log" 2>&1 || { tail -20 "$tmp/setup.log" | sed 's/^/# /'; bail "meson setup failed"; }
for dep in "libuv found: YES 1.44.2" "lmdb found: YES 0.9.24" "msgpack found: YES 4.0.0" \
	"jansson found: YES 2.14"; do
	grep -q "Dependency $dep (overridden)" "$tmp/setup.log" &&
		ok "meson takes ${dep%% *} from its subproject" ||
		not_ok "meson takes ${dep%% *} from its subproject" "$(grep -i "${dep%% *}" "$tmp/setup.log")"
done
grep -q "^librdkafka| CMake configuration: SUCCEEDED" "$tmp/setup.log" &&
	ok "meson builds librdkafka from its CMake project" ||
	not_ok "meson builds librdkafka from its CMake project" "$(grep -i rdkafka "$tmp/setup.log")"
# Only what the checks below run: the library, faustc, the greeter and three unit tests.
meson compile -C b libagent/agent:shared_library cli/faustc examples/greeter:shared_module \
	tests/test-store tests/test-codec tests/test-record >"$tmp/build.log" 2>&1
rc=$? # before the check's own $(...) would replace it
check_eq "the fallback build compiles with -Dwerror=true ($(($(date +%s) - start)) s)" "$rc" "0"
for f in libagent/libagent.so cli/faustc tests/test-store tests/test-codec tests/test-record; do
	[ -f "b/$f" ] || { grep -m5 -A12 FAILED "$tmp/build.log" | sed 's/^/# /'; bail "no b/$f"; }
done

# 3. What libagent.so links.
libs=$(ldd b/libagent/libagent.so)
check_eq "libagent.so links no system libuv, liblmdb or libmsgpackc" \
	"$(grep -cE 'libuv|liblmdb|libmsgpackc' <<<"$libs")" "0"
check_eq "libagent.so links the subproject's libjansson.so.4" \
	"$(realpath "$(awk '$1 == "libjansson.so.4" {print $3}' <<<"$libs")")" \
	"$(realpath b/subprojects/jansson-2.14/libjansson.so.4)"
check_eq "libagent.so links the subproject's librdkafka.so" \
	"$(realpath "$(awk '$1 == "librdkafka.so" {print $3}' <<<"$libs")")" \
	"$(realpath b/subprojects/librdkafka-2.0.2/librdkafka.so)"
# The headers the library was compiled with (ninja's record of each object's includes).
included=$(for o in kafka worker store cli_tables; do
	ninja -C b -t deps "libagent/libagent-internal.a.p/src_$o.c.o"
done | grep -E '/(rdkafka|uv|lmdb|msgpack|jansson)\.h$' | sed 's/^ *//' | sort -u)
check_eq "libagent was compiled with the subprojects' rdkafka.h, uv.h, lmdb.h, msgpack.h, jansson.h" \
	"$(grep -v '^\.\./subprojects/' <<<"$included" | paste -sd' ')|$(xargs -n1 basename <<<"$included" |
		sort -u | paste -sd' ')" "|jansson.h lmdb.h msgpack.h rdkafka.h uv.h"
check_eq "libagent.pc requires what the headers need (jansson, the subproject's .pc)" \
	"$(sed -n 's/^Requires\(\.private\)\?: //p' b/meson-private/libagent.pc | paste -sd'|')" \
	"jansson"

# 4. Unit tests of the modules over LMDB and msgpack, and the exports.
out=$(meson test -C b --no-rebuild store codec record api --print-errorlogs 2>&1)
check_eq "store, codec, record and api tests pass in the fallback build" \
	"$(grep -oE '^Ok: +[0-9]+' <<<"$out" | tr -s ' ')" "Ok: 4"
grep -qE '^Ok: +4' <<<"$out" || sed 's/^/#   /' <<<"$out" | tail -15

# 5. The greeter on the embedded broker.
faustc=$tmp/src/b/cli/faustc
"$faustc" -A greeter worker --datadir "$tmp/w" --commit-interval 0.3 2>"$tmp/w.log" &
worker=$!
pids+=("$worker")
for _ in $(seq 100); do [ -s "$tmp/w/broker.addr" ] && break; sleep 0.1; done
"$faustc" -A greeter send names '{"name": "Ann"}' --key Ann --datadir "$tmp/w" >/dev/null 2>&1
"$faustc" -A greeter send names '{"name": "Ann"}' --key Ann --datadir "$tmp/w" >/dev/null 2>&1
got=""
for _ in $(seq 100); do
	got=$(timeout 10 kcat -b "$(cat "$tmp/w/broker.addr")" -C -t greetings -e -q -f '%s\n' \
		2>/dev/null | jq -r .greeting | paste -sd';')
	[ "$got" == "Welcome Ann;Nice to see you again Ann" ] && break
	sleep 0.2
done
check_eq "the greeter of the fallback build greets" "$got" "Welcome Ann;Nice to see you again Ann"
kill -TERM "$worker"
wait "$worker"
check_eq "its worker stops with status 0" "$?" "0"
check_eq "its table is in LMDB" \
	"$("$faustc" -A greeter table seen_count --key Ann --datadir "$tmp/w" | awk '$2 == "Ann" {print $4}')" "2"

finish
