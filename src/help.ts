declare const SPAWN_FCGI_TS_VERSION: string | undefined;

/** Filled in by the bundler from package.json; the sources run under tsx say 'dev'. */
export const VERSION = typeof SPAWN_FCGI_TS_VERSION === 'string' ? SPAWN_FCGI_TS_VERSION : 'dev';

export const HELP_TEXT = `Usage: spawn-fcgi-ts [options] [-- <fcgiapp> [fcgi app arguments]]

spawn-fcgi-ts v${VERSION} - spawns FastCGI processes and supervises them

Options:
 -f <path>      filename of the fcgi-application (deprecated; ignored if
                <fcgiapp> is given; needs /bin/sh)
 -d <directory> chdir to directory before spawning
 -a <address>   bind to IPv4/IPv6 address (defaults to 0.0.0.0)
 -p <port>      bind to TCP-port
 -s <path>      bind to Unix domain socket (@name: abstract, passed by systemd)
 -M <mode>      change Unix domain socket mode (octal integer, default: allow
                read+write for user and group as far as umask allows it)
 -C <children>  (PHP only) numbers of childs to spawn (default: not setting
                the PHP_FCGI_CHILDREN environment variable - PHP defaults to 0)
 -F <children>  number of children to fork and supervise (1-4096, default 1)
 -b <backlog>   backlog to allow on the socket (1-65535, default 1024)
 -P <path>      name of PID-file for the supervisor
 -n             no fork: stay in the foreground (systemd, runit, containers)
 -v             show version (also --version)
 -?, -h         show this help (also --help)
(root only)
 -c <directory> chroot to directory
 -S             create socket before chroot() (default is to create the socket
                in the chroot)
 -u <user>      change to user-id
 -g <group>     change to group-id (default: primary group of user if -u
                is given)
 -U <user>      change Unix domain socket owner to user-id
 -G <group>     change Unix domain socket group to group-id

Configuration file:
 --config FILE              read spawn-php.sh variables (FCGISOCKET, FCGIPORT,
                            PHP_FCGI_CHILDREN, ALLOWED_ENV, USERID...) without
                            running a shell; flags on the command line win;
                            other variables (PHPRC...) reach the app when
                            ALLOWED_ENV names them (or, without it, exported)

Children's environment:
 --copy-env NAME[,NAME...]  clean environment with only these variables
 --env NAME=VALUE           add or override a variable (repeatable)
 --web-server-addrs LIST    set FCGI_WEB_SERVER_ADDRS

Supervision:
 --kill-signal SIG          signal that stops a child (default TERM; USR1 for
                            libfcgi applications; not STOP, CONT, WINCH...)
 --kill-timeout DURATION    SIGKILL after this long (default 10s)
 --restart-delay DURATION   wait after a second fast failure in a row, doubling
                            after each further one (100ms; the first restarts
                            at once)
 --max-restart-delay DUR    backoff cap (default 30s)
 --stable-after DURATION    a child up this long restarts at once (10s)
 --max-failures N           stop and exit non-zero after N fast failures
                            of one child in a row (default: retry forever)
 --start-check DURATION     a child must stay up this long at start (100ms)
 --keep-socket              leave the Unix socket file at exit

Pool that sizes itself (all off unless --min-procs is below -F):
 --max-procs N              the same as -F: the most children
 --min-procs N              the fewest children (0: started on demand; default:
                            -F, a static pool); grows by one while connections
                            wait in the accept queue, up to -F
 --idle-timeout DURATION    stop a child above --min-procs that used no CPU
                            for this long with nothing queued (default 10s)

Recycling and limits:
 --max-rss MB               recycle a child above this RSS (needs
                            --check-interval); the new one starts first
 --max-age DURATION         recycle each child after this long (+0-10 % jitter)
 --check-interval DURATION  how often --max-rss looks (no periodic work
                            without it)
 --rlimit NAME=SOFT[:HARD]  resource limit for the children (repeatable), e.g.
                            nofile=4096, core=0, as=1073741824

Operation:
 --control PATH             control socket for 'spawn-fcgi-ts status' (mode 0600;
                            default: SOCKET.control, else PIDFILE.control, else
                            /run/spawn-fcgi-ts-[ADDR-]PORT.control)
 --metrics ADDR             serve OpenMetrics at http://ADDR/metrics
                            (host:port, :port for 127.0.0.1, or a unix path)
 --status-page              the metrics listener also serves /status and the page
 --fd-name NAME             with systemd socket activation: the passed socket
                            to use (LISTEN_FDNAMES); -s/-p may then be left out
 --log-format text|json     (default text)
 --log-file PATH            log there instead of stderr; SIGUSR1 reopens it
                            (a regular file: symlinks and FIFOs are refused)
 DURATION: seconds, or a number with ms, s, m, h or d (at most 10 years)
 Colour: NO_COLOR=1 disables, FORCE_COLOR=0/1 disables/forces, TERM=dumb

 spawn-fcgi-ts status [--control PATH | -P PIDFILE | -s SOCKET | [-a ADDR] -p PORT]
                      [--json]
                            show the running pool: PIDs, states, restarts,
                            last exits, CPU and memory

Signals: TERM/INT stop (twice: kill now), HUP rolling restart, USR2 is
forwarded, TTIN/TTOU add/remove a child, USR1 reopens the log file.
`;
