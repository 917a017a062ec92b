#!/bin/sh
# Build the native exec helper (build/spawn-fcgi-ts-helper), the sd_notify
# sender (build/spawn-fcgi-ts-notify) and the static FastCGI test responder
# (build/static-responder) from the sources in the repo.
# Usage: sh scripts/build-helper.sh [--force]     (CC, CFLAGS are honoured)
set -eu

cd "$(dirname -- "$0")/.." || exit 1

force=0
[ "${1:-}" = "--force" ] && force=1

CC=${CC:-cc}
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "build-helper: no C compiler found (\$CC='$CC'); install one, e.g. apt-get install -y gcc libc6-dev" >&2
	exit 1
fi

FLAGS="-std=gnu11 -O2 -Wall -Wextra -Werror ${CFLAGS:-}"
mkdir -p build

# up_to_date OUTPUT SOURCE: true when OUTPUT exists and is newer than SOURCE and this script
up_to_date() {
	[ "$force" -eq 0 ] && [ -x "$1" ] && [ -z "$(find "$2" scripts/build-helper.sh -newer "$1" 2>/dev/null)" ]
}

# build OUTPUT SOURCE [extra flags]: compile to a temp file, then rename (atomic for concurrent readers)
build() {
	out=$1 src=$2
	shift 2
	# shellcheck disable=SC2086
	$CC $FLAGS "$@" -o "$out.tmp.$$" "$src" && mv -f "$out.tmp.$$" "$out" && return 0
	rm -f "$out.tmp.$$"
	return 1
}

# required OUTPUT SOURCE: build a program the product needs, or fail the build.
required() {
	if up_to_date "$1" "$2"; then
		echo "build-helper: $1 is up to date"
	elif build "$1" "$2"; then
		echo "build-helper: built $1"
	else
		echo "build-helper: compiling $2 failed" >&2
		exit 1
	fi
}

required build/spawn-fcgi-ts-helper src/native/helper.c
required build/spawn-fcgi-ts-notify src/native/notify.c

responder=build/static-responder
if [ -f test/fixtures/static-responder.c ]; then
	if up_to_date "$responder" test/fixtures/static-responder.c; then
		echo "build-helper: $responder is up to date"
	elif build "$responder" test/fixtures/static-responder.c -static; then
		echo "build-helper: built $responder"
	else
		echo "build-helper: WARNING: could not link $responder statically (is libc.a installed? apt-get install -y libc6-dev); tests that need it will fail" >&2
	fi
fi
