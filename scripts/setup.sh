#!/usr/bin/env bash
# Installs what faustc needs from Debian (when missing) and builds it with meson.
# Usage: scripts/setup.sh [BUILD_DIR [meson options...]]
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential pkg-config meson ninja-build librdkafka-dev libuv1-dev liblmdb-dev
	libmsgpack-dev libjansson-dev kcat jq clang clang-format libclang-rt-14-dev valgrind
	groff-base cmake curl python3-prometheus-client chromium gdb)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
# tests/fallback.sh fetches Debian's source packages (apt-get source): it needs deb-src.
if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	src_list=/etc/apt/sources.list.d/faustc-deb-src.sources
	echo "setup: adding $src_list (Debian's source packages)" >&2
	printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s %s-updates\n%s\n%s\n' \
		"$(. /etc/os-release && echo "$VERSION_CODENAME")" \
		"$(. /etc/os-release && echo "$VERSION_CODENAME")" "Components: main" \
		"Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" | $sudo tee "$src_list" >/dev/null
	[ ${#missing[@]} -gt 0 ] || $sudo apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}" >&2
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

build=${1:-build}
shift || true
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" "$@" >/dev/null
else
	# An existing build dir takes the -D options again (setup-only flags are left out).
	opts=()
	for o in "$@"; do
		case "$o" in -D*) opts+=("$o") ;; esac
	done
	[ ${#opts[@]} -eq 0 ] || meson configure "$build" "${opts[@]}" >/dev/null
fi
ninja -C "$build" >/dev/null
echo "setup: built in $build" >&2
