/*
 * spawn-fcgi-ts-helper: runs between the supervisor's fork and the FastCGI
 * application's exec.  It finishes the process setup Node cannot do itself
 * (listen on the inherited socket, rlimits, supplementary groups, chroot,
 * PR_SET_PDEATHSIG, fd and signal hygiene) and then execs the application.
 *
 *   spawn-fcgi-ts-helper [--listen BACKLOG] [--rlimit NAME=SOFT[:HARD]]...
 *       [--gid N] [--groups N,N...] [--uid N] [--chroot DIR] [--chdir DIR]
 *       [--pdeathsig SIGNUM --parent PID] [--status-fd N] [--allow-root]
 *       -- PROGRAM [ARG...]
 *
 * Contract with the supervisor: fd 0 is a bound socket, fd N (--status-fd)
 * is a pipe.  On success the status fd is closed by exec (FD_CLOEXEC), so
 * the supervisor reads EOF with no data.  On any failure exactly one line is
 * written (one write(2)) to the status fd, or to stderr without
 * --status-fd, and the helper exits with EXIT_SETUP_FAILED.
 *
 * The supplementary groups arrive as numbers (the supervisor resolves them
 * through NSS): the helper makes no NSS call, so it links statically and one
 * binary per architecture runs on any libc.
 *
 *   spawn-fcgi-ts-helper --init -- PROGRAM [ARG...]
 *
 * Init mode, for the supervisor when it is PID 1 of a container: fork and run
 * PROGRAM (the supervisor again), forward every signal to it, reap every
 * process that ends up as our child (orphaned grandchildren such as php-cgi
 * workers whose master died: Node only reaps its own children), and exit
 * with PROGRAM's status (128+N for signal N).  Not PID 1 itself, it makes
 * itself a child subreaper so that the orphans come to it.
 *
 *   spawn-fcgi-ts-helper --watch-queue SETTLE_MS BACKLOG PARENT_PID
 *
 * Queue-watch mode, for a pool that sizes itself: fd 0 is the pool's socket,
 * fd 1 a pipe to the supervisor.  Listens on the socket (BACKLOG; so that a
 * pool with no child yet queues connections instead of refusing them),
 * writes 'l', then sleeps in poll(2) until the socket is readable, which on
 * a listening socket means a connection waits in its accept queue.  It never
 * accepts.  On each such edge it writes 'a'; then, every SETTLE_MS while the
 * queue is still not empty, 'w'.  Blocked in poll it uses no CPU.  Dies with
 * the supervisor (PR_SET_PDEATHSIG, and EPIPE on its pipe).
 *
 * Linux only; C99/gnu11; must stay warning-free with -Wall -Wextra.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helper.h"

int status_fd = -1;

/* Write one complete line to the status fd (or stderr) and exit 111. */
void fail(const char *fmt, ...)
{
	char buf[8192];
	va_list ap;
	int n, fd = status_fd >= 0 ? status_fd : STDERR_FILENO;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2; /* truncated: still end with a newline */
	buf[n++] = '\n';
	signal(SIGPIPE, SIG_IGN); /* a vanished reader must not turn 111 into a signal */
	while (write(fd, buf, (size_t)n) < 0 && errno == EINTR)
		;
	_exit(EXIT_SETUP_FAILED);
}

#define USAGE_TEXT                                                                                  \
	"usage: spawn-fcgi-ts-helper [--listen BACKLOG] [--rlimit NAME=SOFT[:HARD]]... [--gid N] "  \
	"[--groups N,N...] [--uid N] [--chroot DIR] [--chdir DIR] [--pdeathsig SIGNUM --parent PID] " \
	"[--status-fd N] [--allow-root] -- PROGRAM [ARG...]"

/* Strict unsigned decimal: digits only, no sign, no overflow, <= max. */
int parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

static const struct {
	const char *name;
	int resource;
} rlimit_names[] = {
	{ "as", RLIMIT_AS },
	{ "core", RLIMIT_CORE },
	{ "cpu", RLIMIT_CPU },
	{ "data", RLIMIT_DATA },
	{ "fsize", RLIMIT_FSIZE },
	{ "locks", RLIMIT_LOCKS },
	{ "memlock", RLIMIT_MEMLOCK },
	{ "msgqueue", RLIMIT_MSGQUEUE },
	{ "nice", RLIMIT_NICE },
	{ "nofile", RLIMIT_NOFILE },
	{ "nproc", RLIMIT_NPROC },
	{ "rss", RLIMIT_RSS },
	{ "rtprio", RLIMIT_RTPRIO },
	{ "rttime", RLIMIT_RTTIME },
	{ "sigpending", RLIMIT_SIGPENDING },
	{ "stack", RLIMIT_STACK },
};


static int parse_rlim_value(const char *s, rlim_t *out)
{
	unsigned long long v;
	char *end;

	if (strcasecmp(s, "unlimited") == 0 || strcasecmp(s, "infinity") == 0) {
		*out = RLIM_INFINITY;
		return 0;
	}
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || (rlim_t)v != v || (rlim_t)v == RLIM_INFINITY)
		return -1;
	*out = (rlim_t)v;
	return 0;
}

/* NAME=SOFT[:HARD]; the spec string is modified in place. */
static void parse_rlimit(char *spec, struct rlimit_req *req)
{
	char *eq = strchr(spec, '='), *colon;
	size_t i;

	if (eq == NULL)
		fail("usage: --rlimit expects NAME=SOFT[:HARD], got '%s'", spec);
	*eq = '\0';
	req->name = NULL;
	for (i = 0; i < sizeof(rlimit_names) / sizeof(rlimit_names[0]); i++) {
		if (strcasecmp(spec, rlimit_names[i].name) == 0) {
			req->name = rlimit_names[i].name;
			req->resource = rlimit_names[i].resource;
			break;
		}
	}
	if (req->name == NULL)
		fail("unknown rlimit '%s'", spec);
	colon = strchr(eq + 1, ':');
	if (colon != NULL)
		*colon = '\0';
	if (parse_rlim_value(eq + 1, &req->lim.rlim_cur) != 0 ||
	    (colon != NULL && parse_rlim_value(colon + 1, &req->lim.rlim_max) != 0))
		fail("invalid rlimit value for %s: '%s%s%s'", req->name, eq + 1, colon ? ":" : "",
		     colon ? colon + 1 : "");
	if (colon == NULL)
		req->lim.rlim_max = req->lim.rlim_cur;
}


/* --groups: comma-separated gids, or "" for none; the spec string is only read. */
static void parse_groups(const char *spec, struct group_list *out)
{
	size_t n = 0, max = 1;
	const char *p;
	char buf[16];

	for (p = spec; *p != '\0'; p++)
		if (*p == ',')
			max++;
	if (max > 65536)
		fail("usage: too many --groups (%zu)", max);
	free(out->ids);
	out->ids = calloc(max, sizeof(gid_t));
	if (out->ids == NULL)
		fail("out of memory");
	out->given = 1;
	out->n = 0;
	if (*spec == '\0')
		return;
	for (p = spec;; p++) {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		unsigned long v;

		if (len == 0 || len >= sizeof(buf))
			fail("usage: invalid --groups '%s'", spec);
		memcpy(buf, p, len);
		buf[len] = '\0';
		if (parse_ulong(buf, (gid_t)-2, &v) != 0)
			fail("usage: invalid --groups '%s'", spec);
		out->ids[n++] = (gid_t)v;
		if (comma == NULL)
			break;
		p = comma;
	}
	out->n = n;
}

/* Close every open fd in [lo, hi]: close_range(2), else /proc/self/fd, else brute force. */
void close_from(unsigned int lo, unsigned int hi)
{
	if (lo > hi)
		return;
#ifdef SYS_close_range
	if (syscall(SYS_close_range, lo, hi, 0) == 0)
		return;
#endif
	{
		DIR *d = opendir("/proc/self/fd");
		if (d != NULL) {
			int fds[1024], n = 0, i, dfd = dirfd(d), more = 1;
			while (more) {
				struct dirent *e;
				more = 0;
				n = 0;
				rewinddir(d);
				while ((e = readdir(d)) != NULL && n < 1024) {
					unsigned long v;
					if (parse_ulong(e->d_name, INT_MAX, &v) == 0 && (int)v != dfd &&
					    v >= lo && v <= hi)
						fds[n++] = (int)v;
				}
				if (n == 1024)
					more = 1;
				for (i = 0; i < n; i++)
					close(fds[i]);
			}
			closedir(d);
			return;
		}
	}
	{
		long max = sysconf(_SC_OPEN_MAX);
		unsigned long fd;
		if (max < 0 || max > 1L << 20)
			max = 1L << 20;
		for (fd = lo; fd <= hi && fd < (unsigned long)max; fd++)
			close((int)fd);
	}
}

/* --init: a minimal init (see the header comment); never returns. */
static void __attribute__((noreturn)) run_init(char **prog)
{
	sigset_t all, old;
	pid_t child;

	sigfillset(&all);
	if (sigprocmask(SIG_SETMASK, &all, &old) < 0)
		fail("sigprocmask failed: %s", strerror(errno));
	if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1UL, 0UL, 0UL, 0UL) < 0)
		fail("prctl(PR_SET_CHILD_SUBREAPER) failed: %s", strerror(errno));
	child = fork();
	if (child < 0)
		fail("fork failed: %s", strerror(errno));
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		execv(prog[0], prog);
		fail("exec('%s') failed: %s", prog[0], strerror(errno));
	}
	for (;;) {
		siginfo_t info;
		int sig = sigwaitinfo(&all, &info), status;
		pid_t pid;

		if (sig < 0) {
			if (errno == EINTR)
				continue;
			fail("sigwaitinfo failed: %s", strerror(errno));
		}
		if (sig != SIGCHLD) {
			kill(child, sig);
			continue;
		}
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			if (pid != child)
				continue;
			/* Reap what else is already dead, then go: our exit ends a PID namespace. */
			while (waitpid(-1, NULL, WNOHANG) > 0)
				;
			_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		}
	}
}

static void put_byte(char c)
{
	ssize_t n;

	while ((n = write(STDOUT_FILENO, &c, 1)) < 0 && errno == EINTR)
		;
	if (n < 0)
		_exit(0); /* the supervisor is gone */
}

/* Readable now?  A listening socket is readable while its accept queue is not empty. */
static int queue_waiting(int timeout_ms)
{
	struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN, .revents = 0 };
	int n;

	while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	if (n < 0 || (p.revents & POLLNVAL))
		fail("poll on the socket failed: %s", n < 0 ? strerror(errno) : "not an open descriptor");
	return n > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP)) != 0;
}

static void __attribute__((noreturn)) run_watch(char **argv)
{
	unsigned long settle_ms, backlog, parent;
	struct timespec settle;

	if (parse_ulong(argv[0], 60000, &settle_ms) != 0 || settle_ms == 0 || parse_ulong(argv[1], INT_MAX, &backlog) != 0 ||
	    parse_ulong(argv[2], INT_MAX, &parent) != 0 || parent == 0)
		fail("usage: spawn-fcgi-ts-helper --watch-queue SETTLE_MS BACKLOG PARENT_PID");
	if (prctl(PR_SET_PDEATHSIG, (unsigned long)SIGKILL, 0, 0, 0) < 0)
		fail("prctl(PR_SET_PDEATHSIG) failed: %s", strerror(errno));
	if ((unsigned long)getppid() != parent)
		_exit(0);
	signal(SIGPIPE, SIG_IGN);
	close_from(3, ~0U);
	if (listen(STDIN_FILENO, (int)backlog) < 0)
		fail("listen failed: %s", strerror(errno));
	put_byte('l');
	settle.tv_sec = (time_t)(settle_ms / 1000);
	settle.tv_nsec = (long)(settle_ms % 1000) * 1000000L;
	for (;;) {
		if (!queue_waiting(-1))
			continue;
		put_byte('a');
		do {
			nanosleep(&settle, NULL);
			if (!queue_waiting(0))
				break;
			put_byte('w');
		} while (1);
	}
}

/* Parse the child-setup options argv[1..] up to "--"; returns the index of PROGRAM.  Exits via fail(). */
int parse_setup(int argc, char **argv, int first, struct setup *s)
{
	int i, prog_idx = -1;
	unsigned long v;

	memset(s, 0, sizeof(*s));
	s->backlog = -1;
	s->gid = -1;
	s->uid = -1;
	s->parent = -1;
	for (i = first; i < argc; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(opt, "--") == 0) {
			prog_idx = i + 1;
			break;
		}
		if (strcmp(opt, "--allow-root") == 0) {
			s->allow_root = 1;
			continue;
		}
		if (strncmp(opt, "--", 2) != 0)
			fail("usage: unexpected argument '%s' (put the program after --)", opt);
		if (val == NULL)
			fail("usage: option %s needs a value", opt);
		i++;
		if (strcmp(opt, "--status-fd") == 0) {
			/* handled by main, before anything else */
		} else if (strcmp(opt, "--listen") == 0) {
			if (parse_ulong(val, INT_MAX, &v) != 0)
				fail("usage: invalid --listen backlog '%s'", val);
			s->backlog = (long)v;
		} else if (strcmp(opt, "--rlimit") == 0) {
			if (s->n_rlimits == MAX_RLIMITS)
				fail("usage: too many --rlimit options");
			parse_rlimit(argv[i], &s->rlimits[s->n_rlimits++]);
		} else if (strcmp(opt, "--gid") == 0) {
			if (parse_ulong(val, (gid_t)-2, &v) != 0)
				fail("usage: invalid --gid '%s'", val);
			s->gid = (long long)v;
		} else if (strcmp(opt, "--uid") == 0) {
			if (parse_ulong(val, (uid_t)-2, &v) != 0)
				fail("usage: invalid --uid '%s'", val);
			s->uid = (long long)v;
		} else if (strcmp(opt, "--groups") == 0) {
			parse_groups(val, &s->groups);
		} else if (strcmp(opt, "--chroot") == 0) {
			s->chroot_dir = val;
		} else if (strcmp(opt, "--chdir") == 0) {
			s->chdir_dir = val;
		} else if (strcmp(opt, "--pdeathsig") == 0) {
			if (parse_ulong(val, NSIG - 1, &v) != 0 || v == 0)
				fail("usage: invalid --pdeathsig '%s'", val);
			s->pdeathsig = (long)v;
		} else if (strcmp(opt, "--parent") == 0) {
			if (parse_ulong(val, INT_MAX, &v) != 0 || v == 0)
				fail("usage: invalid --parent '%s'", val);
			s->parent = (long long)v;
		} else {
			fail("usage: unknown option '%s'", opt);
		}
	}
	if (prog_idx < 0 || prog_idx >= argc)
		fail("%s", USAGE_TEXT);
	if (s->groups.given && s->gid < 0 && s->uid < 0)
		fail("usage: --groups needs --gid or --uid");
	/* refuse root targets before touching anything */
	if (s->uid == 0 && !s->allow_root)
		fail("I will not set uid to 0");
	if (s->gid == 0 && !s->allow_root)
		fail("I will not set gid to 0");
	return prog_idx;
}

/* Apply the setup to this process, in spawn-fcgi's order, then exec prog; reports through fail(). */
void setup_and_exec(const struct setup *s, char **prog)
{
	int i;

	/* 1. a successful exec closes the status fd: EOF without data = started */
	if (status_fd >= 0 && fcntl(status_fd, F_SETFD, FD_CLOEXEC) < 0)
		fail("fcntl(%d, F_SETFD) failed: %s", status_fd, strerror(errno));

	/* 2. the supervisor only bound the socket; listening is the child's job */
	if (s->backlog >= 0 && listen(0, (int)s->backlog) < 0)
		fail("listen failed: %s", strerror(errno));

	/* 3. rlimits, while still privileged (raising a hard limit needs root) */
	for (i = 0; i < s->n_rlimits; i++)
		if (setrlimit(s->rlimits[i].resource, &s->rlimits[i].lim) < 0)
			fail("setrlimit(%s) failed: %s", s->rlimits[i].name, strerror(errno));

	/* 4. group ids (spawn-fcgi's order: setgid, then the supplementary groups) */
	if (s->gid >= 0 && setgid((gid_t)s->gid) < 0)
		fail("setgid(%lld) failed: %s", s->gid, strerror(errno));
	if ((s->gid >= 0 || s->uid >= 0) && setgroups(s->groups.n, s->groups.ids) < 0)
		fail("setgroups(%zu groups) failed: %s", s->groups.n, strerror(errno));

	/* 5. chroot */
	if (s->chroot_dir != NULL) {
		if (chroot(s->chroot_dir) < 0)
			fail("chroot('%s') failed: %s", s->chroot_dir, strerror(errno));
		if (chdir("/") < 0)
			fail("chdir('/') failed: %s", strerror(errno));
	}

	/* 6. user id */
	if (s->uid >= 0 && setuid((uid_t)s->uid) < 0)
		fail("setuid(%lld) failed: %s", s->uid, strerror(errno));

	/* 7. working directory, relative to the new root, as the target user */
	if (s->chdir_dir != NULL && chdir(s->chdir_dir) < 0)
		fail("chdir('%s') failed: %s", s->chdir_dir, strerror(errno));

	/* 8. parent death signal; after setuid, which would clear it */
	if (s->pdeathsig > 0 && prctl(PR_SET_PDEATHSIG, (unsigned long)s->pdeathsig, 0, 0, 0) < 0)
		fail("prctl(PR_SET_PDEATHSIG, %ld) failed: %s", s->pdeathsig, strerror(errno));
	if (s->parent > 0 && (long long)getppid() != s->parent)
		fail("parent %lld died before exec", s->parent);

	/* 9. no stray descriptors for the application (keep the CLOEXEC status fd) */
	if (status_fd > 2) {
		close_from(3, (unsigned)status_fd - 1);
		close_from((unsigned)status_fd + 1, ~0U);
	} else {
		close_from(3, ~0U);
	}

	/* 10. default dispositions and an empty mask (Node and shells leave some set) */
	{
		sigset_t empty;
		int sig;
		for (sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL); /* SIGKILL/SIGSTOP and glibc-internal ones fail: fine */
		sigemptyset(&empty);
		sigprocmask(SIG_SETMASK, &empty, NULL);
	}
	/* The parent may have died while the death signal was still ignored. */
	if (s->parent > 0 && (long long)getppid() != s->parent)
		fail("parent %lld died before exec", s->parent);

	/* 11. exec */
	execv(prog[0], prog);
	fail("exec('%s') failed: %s", prog[0], strerror(errno));
}

int main(int argc, char **argv)
{
	struct setup setup;
	int i, prog_idx;
	unsigned long v;

	if (argc > 1 && strcmp(argv[1], "--init") == 0) {
		if (argc < 4 || strcmp(argv[2], "--") != 0)
			fail("usage: spawn-fcgi-ts-helper --init -- PROGRAM [ARG...]");
		run_init(argv + 3);
	}
	if (argc > 1 && strcmp(argv[1], "--watch-queue") == 0) {
		if (argc != 5)
			fail("usage: spawn-fcgi-ts-helper --watch-queue SETTLE_MS BACKLOG PARENT_PID");
		run_watch(argv + 2);
	}
	if (argc > 1 && strcmp(argv[1], "--spawner") == 0) {
		prog_idx = parse_setup(argc, argv, 2, &setup);
		run_spawner(&setup, argv + prog_idx);
	}

	/* The status fd is needed first, so that even usage errors reach it. */
	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--status-fd") == 0 && i + 1 < argc) {
			if (parse_ulong(argv[i + 1], INT_MAX, &v) != 0)
				fail("usage: invalid --status-fd '%s'", argv[i + 1]);
			if (fcntl((int)v, F_GETFD) < 0)
				fail("status fd %lu is not open: %s", v, strerror(errno));
			status_fd = (int)v;
			i++;
		}
	}
	prog_idx = parse_setup(argc, argv, 1, &setup);
	setup_and_exec(&setup, argv + prog_idx);
}
