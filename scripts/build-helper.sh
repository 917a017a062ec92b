#!/bin/sh
# Build the native programs from the sources in the repo:
#   build/<arch>/spawn-fcgi-ts-helper   the exec helper and the resident spawner (src/native/helper.c, spawner.c)
#   build/<arch>/spawn-fcgi-ts-notify   the sd_notify sender (src/native/notify.c)
#   build/static-responder              the FastCGI test responder (a test fixture, host only)
# <arch> is Node's name for it (process.arch): x64, arm64. Both programs make no NSS call, so they are
# linked statically and one binary per architecture runs on any Linux, glibc or musl.
# The host's architecture is built with $CC; the other one when its cross compiler is installed
# ($CC_ARM64, default aarch64-linux-gnu-gcc: apt-get install gcc-aarch64-linux-gnu; $CC_X64, default
# x86_64-linux-gnu-gcc).
# Usage: sh scripts/build-helper.sh [--force] [--all]
#   --force  rebuild even when up to date
#   --all    every architecture, statically linked, or fail (the release build: npm pack runs it)
set -eu

cd "$(dirname -- "$0")/.." || exit 1

force=0 all=0
for arg in "$@"; do
	case $arg in
	--force) force=1 ;;
	--all) all=1 ;;
	*) echo "build-helper: unknown argument '$arg' (usage: build-helper.sh [--force] [--all])" >&2; exit 2 ;;
	esac
done

# A release rebuilds everything: an up-to-date file may be a dynamic fallback build.
[ "$all" -eq 1 ] && force=1

CC=${CC:-cc}
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "build-helper: no C compiler found (\$CC='$CC'); install one, e.g. apt-get install -y gcc libc6-dev" >&2
	exit 1
fi

case $(uname -m) in
x86_64 | amd64) host=x64 ;;
aarch64 | arm64) host=arm64 ;;
*) host=$(uname -m) ;;
esac

FLAGS="-std=gnu11 -O2 -Wall -Wextra -Werror ${CFLAGS:-}"
mkdir -p build

# up_to_date OUTPUT SOURCE: true when OUTPUT exists and is newer than SOURCE and this script
up_to_date() {
	[ "$force" -eq 0 ] && [ -x "$1" ] && [ ! -L "$1" ] && [ -z "$(find $2 scripts/build-helper.sh -newer "$1" 2>/dev/null)" ]
}

# build COMPILER OUTPUT "SOURCES" [extra flags]: compile the .c files among SOURCES (the others are headers)
# to a temp file, then rename (atomic for concurrent readers)
build() {
	cc=$1 out=$2 cfiles=
	for f in $3; do
		case $f in *.c) cfiles="$cfiles $f" ;; esac
	done
	shift 3
	# shellcheck disable=SC2086
	$cc $FLAGS "$@" -o "$out.tmp.$$" $cfiles && mv -f "$out.tmp.$$" "$out" && return 0
	rm -f "$out.tmp.$$"
	return 1
}

# native COMPILER ARCH NAME "SOURCES": a program the product needs, static and stripped. A host build that
# cannot link statically (no libc.a) falls back to a dynamic one that runs here, unless --all.
# Returns 1 (after printing the compiler's errors) when it cannot be built.
native() {
	cc=$1 arch=$2 out=build/$2/$3 src=$4
	mkdir -p "build/$arch"
	if up_to_date "$out" "$src"; then
		echo "build-helper: $out is up to date"
	elif build "$cc" "$out" "$src" -static -s 2>"build/.cc-errors.$$"; then
		echo "build-helper: built $out (static)"
	elif [ "$all" -eq 0 ] && [ "$arch" = "$host" ] && build "$cc" "$out" "$src"; then
		echo "build-helper: WARNING: could not link $out statically (is libc.a installed? apt-get install -y libc6-dev): built it dynamically, for this machine only" >&2
	else
		cat "build/.cc-errors.$$" >&2
		rm -f "build/.cc-errors.$$"
		echo "build-helper: compiling $src for $arch with $cc failed" >&2
		return 1
	fi
	rm -f "build/.cc-errors.$$"
}

# arch ARCH COMPILER: both programs for one architecture
arch() {
	native "$2" "$1" spawn-fcgi-ts-helper "src/native/helper.c src/native/spawner.c src/native/helper.h" && native "$2" "$1" spawn-fcgi-ts-notify src/native/notify.c
}

arch "$host" "$CC" || exit 1
for other in x64 arm64; do
	[ "$other" = "$host" ] && continue
	case $other in
	x64) cross=${CC_X64:-x86_64-linux-gnu-gcc} dev=libc6-dev-amd64-cross ;;
	arm64) cross=${CC_ARM64:-aarch64-linux-gnu-gcc} dev=libc6-dev-arm64-cross ;;
	esac
	if ! command -v "$cross" >/dev/null 2>&1; then
		if [ "$all" -eq 1 ]; then
			echo "build-helper: no cross compiler for $other ('$cross'): a release must carry every architecture; on Debian: apt-get install -y gcc-aarch64-linux-gnu libc6-dev-arm64-cross (or gcc-x86-64-linux-gnu libc6-dev-amd64-cross)" >&2
			exit 1
		fi
	elif ! arch "$other" "$cross"; then
		[ "$all" -eq 1 ] && exit 1
		# Optional outside a release: the host's programs are what this checkout runs.
		echo "build-helper: WARNING: no $other build (is $dev installed?); 'npm pack' will refuse until there is one" >&2
	fi
done

# The paths of earlier builds, for the tests and scripts that run the host's programs directly.
ln -sfn "$host/spawn-fcgi-ts-helper" build/spawn-fcgi-ts-helper
ln -sfn "$host/spawn-fcgi-ts-notify" build/spawn-fcgi-ts-notify

responder=build/static-responder
if [ -f test/fixtures/static-responder.c ]; then
	if up_to_date "$responder" test/fixtures/static-responder.c; then
		echo "build-helper: $responder is up to date"
	elif build "$CC" "$responder" test/fixtures/static-responder.c -static; then
		echo "build-helper: built $responder"
	else
		echo "build-helper: WARNING: could not link $responder statically (is libc.a installed? apt-get install -y libc6-dev); tests that need it will fail" >&2
	fi
fi
