#!/usr/bin/env bash
# faustc installed like a C library, as a TAP script (suites install and e2e):
#  1. README's "Write your own app": its install block, run as printed in a copy of the
#     source tree with HOME in a temporary dir (meson install into ~/.local);
#  2. DESTDIR: the same build staged under a directory holds every installed file;
#  3. libagent.pc (version, Requires, Requires.private), faustc --version, the man pages;
#  4. the installed faustc finds the installed apps by name, and never the build tree's;
#  5. README's app: its C block and its commands, run as printed: one value through the
#     embedded broker comes back upper-cased;
#  6. `faustc new`: the project builds with only PKG_CONFIG_PATH set and runs as its README
#     says; one event gives the agent's log line and the table's row;
#  7. a one-file executable built with plain cc and `pkg-config --cflags --libs libagent`.
# Usage: install.sh SOURCE_ROOT VERSION
set -uo pipefail
src=$(cd "${1:?source root}" && pwd)
version=${2:?project version}
. "$(dirname "$0")/tap-lib.sh" install
check() { # what command...: ok when the command succeeds
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what" "failed: $*"; fi
}

# Fenced block N (1-based) of README's "Write your own app" section, without its fences.
readme_block() {
	awk -v want="$1" '
		/^## / { in_section = ($0 == "## Write your own app") }
		!in_section { next }
		/^```/ { if (inside) { inside = 0 } else { inside = 1; block++ } next }
		inside && block == want { print }' "$src/README.md"
}

# Runs one printed command line like a shell would; a line ending in & runs in the
# background and its pid is kept.
run_line() { # line
	if [[ "$1" == *"&" ]]; then
		eval "${1%&} >>\"\$tmp/bg.log\" 2>&1 &"
		pids+=($!)
	else
		eval "$1"
	fi
}

# 1. The README's install block, as printed, in a copy of the sources.
mkdir -p "$tmp/src" "$tmp/home"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$src" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 cp --parents -t "$tmp/src" 2>/dev/null)
else
	tar -C "$src" --exclude='./build*' --exclude='./subprojects/*/' -cf - . | tar -C "$tmp/src" -xf -
fi
[ -f "$tmp/src/meson.build" ] || bail "could not copy the sources"
export HOME="$tmp/home"
unset LD_LIBRARY_PATH PKG_CONFIG_PATH FAUSTC_PATH
install_block=$(readme_block 1)
[[ "$install_block" == *"meson install"* ]] || bail "README's first block is not the install"
start=$(date +%s)
(cd "$tmp/src" && eval "$install_block") >"$tmp/install.log" 2>&1
check "README's install block installs into ~/.local ($(($(date +%s) - start)) s)" \
	test -x "$HOME/.local/bin/faustc"
[ -x "$HOME/.local/bin/faustc" ] || { tail -20 "$tmp/install.log" | sed 's/^/# /'; bail "no install"; }
eval "$(grep '^export ' <<<"$install_block")" # the block's export line, in this shell too
prefix=$HOME/.local
libdir=$prefix/lib

# 2. DESTDIR stages the same files under a directory.
DESTDIR="$tmp/stage" meson install -C "$tmp/src/build-install" --no-rebuild >/dev/null 2>&1
stage=$tmp/stage$prefix
missing=""
for f in bin/faustc lib/libagent.so lib/libagent.so.0 "lib/libagent.so.$version" \
	lib/pkgconfig/libagent.pc include/agent/agent.h include/agent/version.h \
	include/agent/stream.h lib/faustc/apps/greeter.so lib/faustc/apps/wordcount.so \
	share/man/man1/faustc.1 share/man/man1/faustc-new.1 share/man/man1/faustc-worker.1; do
	[ -e "$stage/$f" ] || missing+=" $f"
done
check_eq "DESTDIR install holds the library, headers, libagent.pc, faustc, apps, man pages" \
	"${missing:-none missing}" "none missing"
check_eq "the staged faustc's rpath is the final libdir, not the staging dir" \
	"$(readelf -d "$stage/bin/faustc" | sed -n 's/.*R\(UN\)\?PATH.*\[\(.*\)\]/\2/p')" "$libdir"
check_eq "libagent.so's soname" \
	"$(readelf -d "$libdir/libagent.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')" "libagent.so.0"

# 3. pkg-config, the version in one place, man pages.
check_eq "pkg-config finds libagent $version" "$(pkg-config --modversion libagent)" "$version"
check_eq "libagent.pc Requires" "$(pkg-config --print-requires libagent)" "jansson"
check_eq "libagent.pc Requires.private" \
	"$(pkg-config --print-requires-private libagent | awk '{print $1}' | sort | paste -sd' ')" \
	"libuv lmdb msgpack rdkafka"
check_eq "faustc --version" "$(faustc --version)" "faustc $version"
check_eq "agent/version.h" "$(sed -n 's/^#define AG_VERSION_STRING "\(.*\)"/\1/p' \
	"$prefix/include/agent/version.h")" "$version"
bad=""
for page in "$prefix"/share/man/man1/faustc*.1; do
	out=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
	[ -z "$out" ] || bad+=" $(basename "$page"): $out"
	grep -q "faustc $version" "$page" || bad+=" $(basename "$page"): no version"
done
check_eq "$(ls "$prefix"/share/man/man1/faustc*.1 | wc -l) man pages render without warnings" \
	"${bad:-clean}" "clean"

# 4. The installed faustc and its apps.
mkdir -p "$tmp/elsewhere"
cd "$tmp/elsewhere"
check_eq "the installed faustc runs the installed greeter by name" \
	"$(faustc -A greeter agents | awk 'NR == 2 {print $1, $2}')" "greet names"
out=$(faustc -A nosuchapp agents 2>&1)
[[ "$out" == *"$libdir/faustc/apps/nosuchapp.so"* && "$out" != *"/build"* ]] &&
	ok "the installed faustc searches \$libdir/faustc/apps and no build tree" ||
	not_ok "the installed faustc searches \$libdir/faustc/apps and no build tree" "$out"
check_eq "the installed faustc needs no LD_LIBRARY_PATH (its rpath)" \
	"$(ldd "$prefix/bin/faustc" | awk '$1 == "libagent.so.0" {print $3}')" "$libdir/libagent.so.0"

# 5. README's app, as printed.
mkdir -p "$tmp/myapp"
cd "$tmp/myapp"
readme_block 2 >myapp.c
expected=$(readme_block 4)
mapfile -t lines < <(readme_block 3)
got="" status=0
for line in "${lines[@]}"; do
	if [[ "$line" == kcat* ]]; then
		for _ in $(seq 60); do # the worker joins its group ~3 s after it starts
			got=$(timeout 10 bash -c "$line" 2>/dev/null)
			[ "$got" == "$expected" ] && break
			sleep 0.5
		done
	elif [[ "$line" == *"send "* ]]; then
		# send waits for the worker's broker.addr and topics itself (--timeout, 10 s)
		for _ in $(seq 50); do [ -s myapp-data/broker.addr ] && break; sleep 0.1; done
		run_line "$line" >"$tmp/send.out" 2>&1 || status=1
	else
		run_line "$line" >"$tmp/line.out" 2>&1 || status=1
	fi
done
check_eq "README's commands run as printed" "$status" "0"
check_eq "README's app: what kcat reads is what README prints" "$got" "$expected"
kill -TERM "${pids[-1]}"
wait "${pids[-1]}"
check_eq "README's worker stops with status 0" "$?" "0"

# 6. faustc new: build with only PKG_CONFIG_PATH (and PATH) set, run as its README says.
cd "$tmp"
out=$(faustc new clicks 2>&1)
check "faustc new clicks writes clicks.c, meson.build, README.md" \
	test -f clicks/clicks.c -a -f clicks/meson.build -a -f clicks/README.md
grep -q "dependency('libagent')" clicks/meson.build &&
	ok "the project's meson.build finds the library with dependency('libagent')" ||
	not_ok "the project's meson.build finds the library with dependency('libagent')"
out=$(faustc new clicks 2>&1)
check_eq "faustc new refuses to overwrite a project" "$?:${out##*: }" \
	"1:clicks/clicks.c exists; choose another DIR"
cd clicks
mapfile -t lines < <(awk '/^```/ { inside = !inside; if (inside) block++; next } inside' README.md)
check_eq "the project's README has the build and run commands and two more" "${#lines[@]}" "4"
(eval "${lines[0]}") >"$tmp/new-build.log" 2>&1
check "the project builds against the installed library (${lines[0]})" test -f build/clicks.so
[ -f build/clicks.so ] || sed 's/^/#   /' "$tmp/new-build.log" | tail -15
eval "${lines[1]} 2>\"\$tmp/clicks.log\" &"
worker=$!
pids+=("$worker")
for _ in $(seq 50); do [ -s clicks-data/broker.addr ] && break; sleep 0.1; done
sent=$(eval "${lines[2]}" 2>&1)
[[ "$sent" == "sent to events["* ]] && ok "one event sent: $sent" || not_ok "one event sent" "$sent"
for _ in $(seq 100); do grep -q "count: k1 seen" "$tmp/clicks.log" && break; sleep 0.1; done
check_eq "the agent logs the event's count" \
	"$(grep -o 'count: k1 seen.*' "$tmp/clicks.log")" "count: k1 seen 1 time"
grep -q "worker started (faustc $version)" "$tmp/clicks.log" &&
	ok "the worker's start-up line shows the library version" ||
	not_ok "the worker's start-up line shows the library version" "$(head -3 "$tmp/clicks.log")"
row=""
for _ in $(seq 60); do # the table shows what the worker has committed
	row=$(eval "${lines[3]}" 2>/dev/null | awk '$2 == "k1" {print $2, $4}')
	[ -n "$row" ] && break
	sleep 0.2
done
check_eq "table counts holds k1 = 1" "$row" "k1 1"
kill -TERM "$worker"
wait "$worker"
check_eq "the new app's worker stops with status 0" "$?" "0"

# 7. One file, plain cc, pkg-config.
cd "$tmp"
cat >one.c <<'EOF'
#include <stdio.h>
#include <string.h>

#include <agent/agent.h>

static int
setup(struct ag_app *app)
{
	struct ag_topic *t;
	int rc = ag_app_set_id(app, "one");
	return rc < 0 ? rc : ag_app_topic(app, "in", NULL, &t);
}

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "versions") == 0) {
		printf("%s %s\n", AG_VERSION_STRING, ag_version());
		return 0;
	}
	return ag_app_main(argc, argv, setup);
}
EOF
cc -std=c11 -Wall -Werror -o one one.c $(pkg-config --cflags --libs libagent) \
	-Wl,-rpath,"$(pkg-config --variable=libdir libagent)" 2>"$tmp/cc.log"
check "cc one.c \$(pkg-config --cflags --libs libagent) builds" test -x one
check_eq "its headers and the library it runs with are $version" "$(./one versions)" \
	"$version $version"
check_eq "it runs the command line (topics)" "$(./one topics | awk 'NR == 2 {print $1, $2}')" \
	"in 8"

finish
