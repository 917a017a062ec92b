#!/bin/sh
# The whole test suite: installs the Debian packages the end-to-end tests need when they are missing,
# builds (helper + bundle), type-checks, then runs every test with node's test runner.
set -eu
cd "$(dirname "$0")/.."

# command -> Debian package
needs="php-cgi:php-cgi cgi-fcgi:libfcgi-bin nginx:nginx lighttpd:lighttpd cc:gcc spawn-fcgi:spawn-fcgi
multiwatch:multiwatch wrk:wrk socat:socat ip:iproute2 fcgiwrap:fcgiwrap getent:libc-bin
systemd-socket-activate:systemd start-stop-daemon:dpkg ps:procps
aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu qemu-aarch64:qemu-user man:man-db readelf:binutils unshare:util-linux"
missing=""
for pair in $needs; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || missing="$missing ${pair#*:}"
done
[ -f /usr/include/fcgiapp.h ] || missing="$missing libfcgi-dev"
[ -f /usr/aarch64-linux-gnu/lib/libc.a ] || missing="$missing libc6-dev-arm64-cross"
/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || missing="$missing python3-prometheus-client"
[ -x /usr/bin/chromium ] || missing="$missing chromium"  # the status page test (headless)
[ -f /usr/share/perl5/FCGI.pm ] || [ -n "$(find /usr/lib -name FCGI.pm -path '*perl*' 2>/dev/null | head -1)" ] || missing="$missing libfcgi-perl"
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test: missing Debian packages:$missing (install them as root: apt-get install -y$missing)" >&2
    exit 1
  fi
  echo "test: installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

npm run --silent build
npm run --silent typecheck
npm run --silent check
# One test file at a time: the end-to-end tests start real pools and web servers on 2 cores.
exec node --import tsx --test --test-concurrency=1 test/unit/*.test.ts test/unit/*/*.test.ts test/native/*.test.ts test/e2e/*.test.ts
