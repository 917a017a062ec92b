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

helper=build/spawn-fcgi-ts-helper
if up_to_date "$helper" src/native/helper.c; then
	echo "build-helper: $helper is up to date"
else
	build "$helper" src/native/helper.c || {
		echo "build-helper: compiling src/native/helper.c failed" >&2
		exit 1
	}
	echo "build-helper: built $helper"
fi

notify=build/spawn-fcgi-ts-notify
if up_to_date "$notify" src/native/notify.c; then
	echo "build-helper: $notify is up to date"
else
	build "$notify" src/native/notify.c || {
		echo "build-helper: compiling src/native/notify.c failed" >&2
		exit 1
	}
	echo "build-helper: built $notify"
fi

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
