#!/bin/sh
# spawn-php.sh [-n] [CONFIG] - start a pool of php-cgi (or any FastCGI program) with spawn-fcgi-ts,
# the way lighttpd's old spawn-php.sh started spawn-fcgi.
#
# The settings are the classic shell variables (see spawn-php.conf.example), taken from CONFIG (a
# shell file, sourced) or from the environment:
#
#   SPAWNFCGI       the spawn-fcgi-ts binary (default: spawn-fcgi-ts on PATH, else ../dist/cli.cjs)
#   FCGIPROGRAM     the FastCGI program, optionally followed by its arguments (default: php-cgi)
#   FCGISOCKET      a Unix domain socket path (-s), or
#   FCGIPORT        a TCP port (-p) with FCGIADDR the address to bind (-a)
#   PHP_FCGI_CHILDREN      php-cgi's own workers (-C; default 5 when empty, as the original)
#   FCGIPROCS / FCGI_CHILDREN  how many processes share the socket (-F)
#   PHP_FCGI_MAX_REQUESTS  requests per php-cgi worker before it is recycled (passed in the environment)
#   FCGI_WEB_SERVER_ADDRS  peers php-cgi accepts connections from (passed in the environment)
#   ALLOWED_ENV     the caller's variables the pool keeps (default "PATH USER"); the environment is
#                   otherwise cleared. PHP_FCGI_MAX_REQUESTS and FCGI_WEB_SERVER_ADDRS are always kept.
#   USERID GROUPID  -u / -g, and SOCKUSERID SOCKGROUPID -U / -G: only when run as root
#   SOCKMODE (-M)  FCGI_BACKLOG (-b)  FCGIPIDFILE (-P)  FCGICHROOT or CHROOT (-c)  FCGIDIR (-d)
#   KILL_SIGNAL (--kill-signal)  KILL_TIMEOUT (--kill-timeout)
#   FCGI_MIN_PROCS (--min-procs)  FCGI_IDLE_TIMEOUT (--idle-timeout): a pool that sizes itself up to FCGIPROCS
#
# -n, or SPAWN_PHP_FOREGROUND=1 (environment or CONFIG): stay in the foreground (for runit, daemontools, systemd...).
# Unlike the original, values may contain spaces: nothing here is word-split or evaluated again.
# Runs under any POSIX sh (dash, bash, busybox).

_sp_me=${0##*/}
_sp_die() {
  printf '%s: %s\n' "$_sp_me" "$*" >&2
  exit 1
}
_sp_usage() {
  printf 'usage: %s [-n] [CONFIG]\n' "$_sp_me"
  printf '  starts spawn-fcgi-ts with the settings of the shell file CONFIG (or of the environment)\n'
  printf '  -n  stay in the foreground (also SPAWN_PHP_FOREGROUND=1)\n'
}

_sp_foreground=0
while [ $# -gt 0 ]; do
  case $1 in
    -n) _sp_foreground=1; shift ;;
    -h|--help) _sp_usage; exit 0 ;;
    --) shift; break ;;
    -?*) _sp_usage >&2; exit 1 ;;
    *) break ;;
  esac
done
[ $# -le 1 ] || { _sp_usage >&2; exit 1; }
_sp_config=${1:-}
case $0 in
  */*) _sp_here=${0%/*} ;;
  *) _sp_here=$(dirname "$(command -v "$0" 2>/dev/null || echo .)") ;;
esac

if [ -n "$_sp_config" ]; then
  [ -f "$_sp_config" ] && [ -r "$_sp_config" ] || _sp_die "cannot read config file '$_sp_config'"
  # '.' searches PATH for a name without a slash: make it a path.
  case $_sp_config in */*) ;; *) _sp_config=./$_sp_config ;; esac
  # shellcheck disable=SC1090
  . "$_sp_config" || _sp_die "config file '$_sp_config' failed"
fi

[ "${SPAWN_PHP_FOREGROUND:-0}" = 1 ] && _sp_foreground=1

# ---------------------------------------------------------------- the binary
_sp_node=
if [ -z "${SPAWNFCGI:-}" ]; then
  if SPAWNFCGI=$(command -v spawn-fcgi-ts 2>/dev/null) && [ -n "$SPAWNFCGI" ]; then
    :
  elif [ -f "$_sp_here/../dist/cli.cjs" ]; then
    SPAWNFCGI=$_sp_here/../dist/cli.cjs
  else
    _sp_die "spawn-fcgi-ts not found on PATH nor at $_sp_here/../dist/cli.cjs: set SPAWNFCGI"
  fi
fi
case $SPAWNFCGI in
  */*) ;;
  *) _sp_path=$(command -v "$SPAWNFCGI" 2>/dev/null) || _sp_die "SPAWNFCGI '$SPAWNFCGI' not found on PATH"
     SPAWNFCGI=$_sp_path ;;
esac
case $SPAWNFCGI in
  # The bundle runs with node: found now, since the cleaned environment may have no PATH.
  *.cjs|*.mjs|*.js) _sp_node=$(command -v node 2>/dev/null) || _sp_die "node not found on PATH (needed for $SPAWNFCGI)" ;;
  *) [ -x "$SPAWNFCGI" ] || _sp_die "SPAWNFCGI '$SPAWNFCGI' is not executable" ;;
esac

# ---------------------------------------------------------------- settings
: "${FCGIPROGRAM:=php-cgi}"
[ -n "${PHP_FCGI_CHILDREN:-}" ] || PHP_FCGI_CHILDREN=5
[ "${ALLOWED_ENV+set}" = set ] || ALLOWED_ENV="PATH USER"
_sp_procs=${FCGIPROCS:-${FCGI_CHILDREN:-}}
_sp_chroot=${FCGICHROOT:-${CHROOT:-}}
if [ -n "${FCGISOCKET:-}" ] && [ -n "${FCGIPORT:-}" ]; then
  _sp_die "FCGISOCKET and FCGIPORT are both set: either a Unix domain socket or a TCP port"
fi
[ -n "${FCGISOCKET:-}" ] || [ -n "${FCGIPORT:-}" ] || _sp_die "set FCGISOCKET (a Unix domain socket) or FCGIPORT (a TCP port)"
_sp_root=0
[ "$(id -u)" = 0 ] && _sp_root=1

# ---------------------------------------------------------------- the command, built back to front
# "$@" is the only array a POSIX shell has: each value stays one argument, whatever it contains.

# The program and its arguments: FCGIPROGRAM is split on blanks (and only that: no globbing).
set -f
# shellcheck disable=SC2086
set -- $FCGIPROGRAM
set +f
[ $# -gt 0 ] || _sp_die "FCGIPROGRAM is empty"
case $1 in
  */*) _sp_program=$1 ;;
  *) _sp_program=$(command -v "$1" 2>/dev/null) || _sp_die "FCGIPROGRAM '$1' not found on PATH" ;;
esac
shift
set -- -- "$_sp_program" "$@"

# Flags (prepended: the order of flags does not matter to spawn-fcgi-ts).
[ "$_sp_foreground" = 1 ] && set -- -n "$@"
[ -n "${KILL_TIMEOUT:-}" ] && set -- --kill-timeout "$KILL_TIMEOUT" "$@"
[ -n "${FCGI_MIN_PROCS:-}" ] && set -- --min-procs "$FCGI_MIN_PROCS" "$@"
[ -n "${FCGI_IDLE_TIMEOUT:-}" ] && set -- --idle-timeout "$FCGI_IDLE_TIMEOUT" "$@"
[ -n "${KILL_SIGNAL:-}" ] && set -- --kill-signal "$KILL_SIGNAL" "$@"
[ -n "${FCGIDIR:-}" ] && set -- -d "$FCGIDIR" "$@"
[ -n "${FCGIPIDFILE:-}" ] && set -- -P "$FCGIPIDFILE" "$@"
[ -n "${FCGI_BACKLOG:-}" ] && set -- -b "$FCGI_BACKLOG" "$@"
[ -n "${SOCKMODE:-}" ] && set -- -M "$SOCKMODE" "$@"
if [ "$_sp_root" = 1 ]; then
  [ -n "$_sp_chroot" ] && set -- -c "$_sp_chroot" "$@"
  [ -n "${SOCKGROUPID:-}" ] && set -- -G "$SOCKGROUPID" "$@"
  [ -n "${SOCKUSERID:-}" ] && set -- -U "$SOCKUSERID" "$@"
  [ -n "${GROUPID:-}" ] && set -- -g "$GROUPID" "$@"
  [ -n "${USERID:-}" ] && set -- -u "$USERID" "$@"
fi
[ -n "$_sp_procs" ] && set -- -F "$_sp_procs" "$@"
set -- -C "$PHP_FCGI_CHILDREN" "$@"
if [ -n "${FCGISOCKET:-}" ]; then
  set -- -s "$FCGISOCKET" "$@"
else
  [ -n "${FCGIADDR:-}" ] && set -- -a "$FCGIADDR" "$@"
  set -- -p "$FCGIPORT" "$@"
fi
set -- "$SPAWNFCGI" "$@"
[ -n "$_sp_node" ] && set -- "$_sp_node" "$@"

# The environment: only the allowed names that are set (in the environment or in CONFIG), as
# separate NAME=value arguments to env -i. The names are checked before they are looked up.
_sp_seen=" "
set -f
for _sp_name in $(printf '%s\n' "$ALLOWED_ENV PHP_FCGI_MAX_REQUESTS FCGI_WEB_SERVER_ADDRS" | tr ',' ' '); do
  case $_sp_name in
    [!A-Za-z_]*|*[!A-Za-z0-9_]*) _sp_die "ALLOWED_ENV: '$_sp_name' is not a variable name" ;;
  esac
  case $_sp_seen in *" $_sp_name "*) continue ;; esac
  _sp_seen="$_sp_seen$_sp_name "
  eval "_sp_isset=\${$_sp_name+x}"
  [ "$_sp_isset" = x ] || continue
  eval "_sp_value=\$$_sp_name"
  set -- "$_sp_name=$_sp_value" "$@"
done
set +f

exec env -i "$@"
