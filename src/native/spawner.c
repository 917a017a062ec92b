/*
 * spawn-fcgi-ts-helper --spawner [--parent PID] [child options] -- PROGRAM [ARG...]
 *
 * The resident spawner.  The supervisor starts it once per pool, with the
 * children's environment as its own; it forks a child for each request,
 * sets the child up exactly as the exec helper does (setup_and_exec) and
 * execs PROGRAM, relays the child's stdout and stderr, and reports the exec
 * outcome and the exit.  Node then forks once per pool instead of once per
 * child: a fork of this small static process costs a fraction of a fork of
 * Node (page tables, copy-on-write faults of a large heap).
 *
 * Descriptors: 0 = the listening socket (every child's fd 0), 1 = events to
 * the supervisor, 2 = this process's own one-line errors, 3 = commands from
 * the supervisor.
 *
 * Commands: 'S' starts a child; 'A' + u32 id arms that child's restart,
 * 'D' + u32 id disarms it.  EOF on fd 3: exit as soon as no child is left
 * (children must not outlive their reports), and restart nothing more.
 *
 * An armed child that dies is replaced at once, here, without waiting for
 * the supervisor (a restart is then a waitpid and a fork, as multiwatch's):
 * its 'X' carries the replacement's id, from a range of its own (from
 * AUTO_ID_BASE), and a 'P' for that id follows.  The supervisor arms only a
 * child whose death its restart policy would answer with a restart at once,
 * and disarms one before it signals it on purpose; commands are read before
 * each reap, so that a 'D' written before a kill is always seen first.  A
 * replacement starts unarmed.
 *
 * Events, framed: u8 type, u8 arg, u16 0, u32 id, u32 length, then length
 * bytes (little-endian, as the only two targets are).  Ids number the 'S'
 * commands from 1, so that the supervisor matches replies to requests in
 * order and never confuses a reused pid:
 *   'P' id  forked; payload i32: the pid, or -errno when pipe/fork failed
 *           (then nothing more comes for that id)
 *   'O' id  output; arg 1 = stdout, 2 = stderr; payload: the bytes
 *   'E' id  exec outcome; empty payload = exec'd, else the helper's line
 *   'X' id  reaped; arg 0 = exited, 1 = killed; payload i32: code or signal,
 *           then u32: the replacement's id when the child was armed
 *   'C' id  both output pipes at EOF: no more 'O' for that id.  It may
 *           come before 'X' or, when grandchildren hold the pipes, long
 *           after it; an id is finished once it has had both.
 *   'E' always comes before 'X' (the status pipe is read before the reap
 *   is reported).
 *
 * Process tree: the children are the spawner's, not Node's.  The spawner
 * reaps them; it dies with the supervisor (PR_SET_PDEATHSIG = SIGKILL) and
 * each child dies with the spawner (its --pdeathsig, SIGTERM by default, so
 * that a php-cgi master takes its workers down).  Each child is the leader
 * of its own session and process group, which the supervisor signals.
 * Writes to fd 1 never block: they queue, and the children's output is not
 * read while the queue is over OUTPUT_HIGH, so a busy supervisor slows its
 * children's logging instead of stalling spawns and reaping.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"

#define EVENTS_FD 1
#define COMMANDS_FD 3
#define OUTPUT_HIGH (1u << 20)
#define READ_CHUNK 65536
#define STATUS_MAX 8192
#define AUTO_ID_BASE 0x80000000u

struct kid {
	uint32_t id;
	pid_t pid; /* 0 once reaped */
	int out, err, status; /* read ends, -1 once at EOF */
	int exec_reported;
	int armed; /* replaced at once when it dies */
	size_t status_len;
	char status_text[STATUS_MAX]; /* last: not cleared for a new child */
};

static struct kid **kids;
static size_t n_kids, cap_kids;
static uint32_t next_id, next_auto_id = AUTO_ID_BASE;
static int commands_open = 1;

/* The descriptor limit the supervisor was given: the children get it back (ours is raised, see below). */
static struct rlimit given_nofile;

static struct {
	char *data;
	size_t off, len, cap;
} queue;

static void flush_queue(void)
{
	while (queue.off < queue.len) {
		ssize_t n = write(EVENTS_FD, queue.data + queue.off, queue.len - queue.off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			_exit(0); /* the supervisor is gone; our children follow by their death signal */
		}
		queue.off += (size_t)n;
	}
	if (queue.off == queue.len)
		queue.off = queue.len = 0;
}

static void emit(char type, uint8_t arg, uint32_t id, const void *payload, uint32_t length)
{
	unsigned char header[12] = { (unsigned char)type, arg, 0, 0 };
	size_t need = queue.len + sizeof(header) + length;

	memcpy(header + 4, &id, 4);
	memcpy(header + 8, &length, 4);
	if (need > queue.cap) {
		size_t cap = queue.cap == 0 ? 65536 : queue.cap;
		while (cap < need)
			cap *= 2;
		queue.data = realloc(queue.data, cap);
		if (queue.data == NULL)
			_exit(EXIT_SETUP_FAILED);
		queue.cap = cap;
	}
	memcpy(queue.data + queue.len, header, sizeof(header));
	if (length > 0)
		memcpy(queue.data + queue.len + sizeof(header), payload, length);
	queue.len += sizeof(header) + length;
	flush_queue();
}

static void emit_int(char type, uint8_t arg, uint32_t id, int32_t value)
{
	emit(type, arg, id, &value, sizeof(value));
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Read what a child's output pipe holds now (at most `rounds` chunks); closes it at EOF. */
static void relay_output(struct kid *k, int *fd, uint8_t stream, int rounds)
{
	static char buf[READ_CHUNK];

	while (*fd >= 0 && rounds-- > 0) {
		ssize_t n = read(*fd, buf, sizeof(buf));
		if (n > 0) {
			emit('O', stream, k->id, buf, (uint32_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		close_fd(fd); /* EOF, or an error that will not go away */
		if (k->out < 0 && k->err < 0)
			emit('C', 0, k->id, NULL, 0);
	}
}

/* Read the status pipe; at EOF report the exec outcome (empty text: exec'd). */
static void read_status(struct kid *k)
{
	while (k->status >= 0) {
		ssize_t n = read(k->status, k->status_text + k->status_len, STATUS_MAX - k->status_len);
		if (n > 0) {
			k->status_len += (size_t)n;
			if (k->status_len < STATUS_MAX)
				continue;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno == EAGAIN) {
			return;
		}
		close_fd(&k->status);
	}
	if (!k->exec_reported) {
		k->exec_reported = 1;
		emit('E', 0, k->id, k->status_text, (uint32_t)k->status_len);
	}
}

static void __attribute__((noreturn)) run_child(const struct setup *s, char **prog, int out, int err, int status)
{
	setsid(); /* its own session and process group, like spawn-fcgi's children */
	setrlimit(RLIMIT_NOFILE, &given_nofile);
	if (dup2(out, STDOUT_FILENO) < 0 || dup2(err, STDERR_FILENO) < 0) {
		status_fd = status;
		fail("dup2 failed: %s", strerror(errno));
	}
	status_fd = status; /* close-on-exec: EOF without a line means exec'd */
	setup_and_exec(s, prog);
}

static void start_child(const struct setup *s, char **prog, uint32_t id)
{
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, status[2] = { -1, -1 };
	struct kid *k;
	pid_t pid;

	if (n_kids == cap_kids) {
		size_t cap = cap_kids == 0 ? 64 : cap_kids * 2;
		struct kid **grown = realloc(kids, cap * sizeof(*kids));
		if (grown == NULL) {
			emit_int('P', 0, id, -ENOMEM);
			return;
		}
		kids = grown;
		cap_kids = cap;
	}
	k = malloc(sizeof(*k));
	if (k == NULL || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(status, O_CLOEXEC) < 0) {
		int e = k == NULL ? ENOMEM : errno;
		close_fd(&out[0]), close_fd(&out[1]), close_fd(&err[0]), close_fd(&err[1]);
		free(k);
		emit_int('P', 0, id, -e);
		return;
	}
	pid = fork();
	if (pid == 0)
		run_child(s, prog, out[1], err[1], status[1]);
	close(out[1]), close(err[1]), close(status[1]);
	if (pid < 0) {
		int e = errno;
		close(out[0]), close(err[0]), close(status[0]);
		free(k);
		emit_int('P', 0, id, -e);
		return;
	}
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(err[0], F_SETFL, O_NONBLOCK);
	fcntl(status[0], F_SETFL, O_NONBLOCK);
	memset(k, 0, offsetof(struct kid, status_text));
	k->id = id;
	k->pid = pid;
	k->out = out[0];
	k->err = err[0];
	k->status = status[0];
	kids[n_kids++] = k;
	emit_int('P', 0, id, pid);
}

/* Soft descriptor limit up to the hard one; 0 if it was raised. */
static int raise_nofile(void)
{
	struct rlimit now;

	if (getrlimit(RLIMIT_NOFILE, &now) < 0 || now.rlim_cur >= now.rlim_max)
		return -1;
	now.rlim_cur = now.rlim_max;
	return setrlimit(RLIMIT_NOFILE, &now);
}

static struct kid *find_kid(pid_t pid)
{
	size_t i;

	for (i = 0; i < n_kids; i++)
		if (kids[i]->pid == pid)
			return kids[i];
	return NULL;
}

static struct kid *find_id(uint32_t id)
{
	size_t i;

	for (i = 0; i < n_kids; i++)
		if (kids[i]->id == id && kids[i]->pid > 0)
			return kids[i];
	return NULL;
}

/* Carry out every command that has arrived ('S', 'A' id, 'D' id); a command cut by a read waits for its rest. */
static void read_commands(const struct setup *s, char **prog)
{
	static unsigned char pending[5];
	static size_t have;
	unsigned char buf[256];
	ssize_t got, j;

	while (commands_open) {
		got = read(COMMANDS_FD, buf, sizeof(buf));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && errno == EAGAIN)
			return;
		if (got <= 0) {
			commands_open = 0;
			close(COMMANDS_FD);
			return;
		}
		for (j = 0; j < got; j++) {
			uint32_t id;
			struct kid *k;
			pending[have++] = buf[j];
			if (pending[0] == 'S') {
				have = 0;
				start_child(s, prog, ++next_id);
				continue;
			}
			if (pending[0] != 'A' && pending[0] != 'D') {
				have = 0; /* not a command: dropped */
				continue;
			}
			if (have < 5)
				continue;
			memcpy(&id, pending + 1, 4);
			k = find_id(id);
			if (k != NULL)
				k->armed = pending[0] == 'A';
			have = 0;
		}
	}
}

static void reap(const struct setup *s, char **prog)
{
	int wstatus;
	pid_t pid;

	read_commands(s, prog); /* a disarm sent before a kill must be seen before the death it caused */
	while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
		struct kid *k = find_kid(pid);
		int32_t end[2];
		uint32_t replacement;
		if (k == NULL)
			continue;
		k->pid = 0;
		/* Its report first, and what it wrote before it died, then its end. */
		read_status(k);
		relay_output(k, &k->out, 1, 16);
		relay_output(k, &k->err, 2, 16);
		end[0] = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : WEXITSTATUS(wstatus);
		if (!k->armed || !commands_open) {
			emit('X', WIFSIGNALED(wstatus) ? 1 : 0, k->id, end, sizeof(end[0]));
			continue;
		}
		replacement = next_auto_id++;
		if (next_auto_id == 0)
			next_auto_id = AUTO_ID_BASE;
		memcpy(&end[1], &replacement, 4);
		emit('X', WIFSIGNALED(wstatus) ? 1 : 0, k->id, end, sizeof(end));
		start_child(s, prog, replacement);
	}
}

/* Forget the children that are reaped and whose pipes are all at EOF. */
static void forget_finished(void)
{
	size_t i, kept = 0;

	for (i = 0; i < n_kids; i++) {
		struct kid *k = kids[i];
		if (k->pid == 0 && k->out < 0 && k->err < 0 && k->status < 0)
			free(k);
		else
			kids[kept++] = k;
	}
	n_kids = kept;
}

void run_spawner(struct setup *s, char **prog)
{
	long long supervisor = s->parent;
	int sigfd;
	struct pollfd *fds = NULL;
	struct kid **owner = NULL; /* owner[i]: the child whose pipe fds[i] is, NULL for our own */
	size_t cap_fds = 0;
	sigset_t chld;

	if (prctl(PR_SET_PDEATHSIG, (unsigned long)SIGKILL, 0, 0, 0) < 0)
		fail("prctl(PR_SET_PDEATHSIG) failed: %s", strerror(errno));
	if (supervisor > 0 && (long long)getppid() != supervisor)
		_exit(0);
	s->parent = getpid(); /* the children's parent check */
	if (fcntl(COMMANDS_FD, F_GETFD) < 0 || fcntl(EVENTS_FD, F_GETFD) < 0)
		fail("spawner: fd 1 and fd 3 must be the supervisor's pipes");
	close_from(COMMANDS_FD + 1, ~0U); /* whatever else the supervisor's own caller left open */
	/* poll(2) refuses more entries than the soft descriptor limit (EINVAL), and a pool of N children
	 * polls 3 + 2N pipes. Node raises its soft limit to the hard one, and so do we, should we be given
	 * less; the children get back what we were given. A limit lowered later is handled at poll. */
	if (getrlimit(RLIMIT_NOFILE, &given_nofile) == 0)
		raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	sigfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sigfd < 0)
		fail("signalfd failed: %s", strerror(errno));
	fcntl(EVENTS_FD, F_SETFL, fcntl(EVENTS_FD, F_GETFL) | O_NONBLOCK);
	fcntl(COMMANDS_FD, F_SETFD, FD_CLOEXEC);
	fcntl(COMMANDS_FD, F_SETFL, fcntl(COMMANDS_FD, F_GETFL) | O_NONBLOCK);
	fcntl(EVENTS_FD, F_SETFD, FD_CLOEXEC);

	for (;;) {
		size_t i, n = 0, need = 3 + 3 * n_kids;
		int reading = queue.len - queue.off < OUTPUT_HIGH;

		if (!commands_open && n_kids == 0 && queue.len == 0)
			_exit(0);
		if (need > cap_fds) {
			cap_fds = need * 2;
			fds = realloc(fds, cap_fds * sizeof(*fds));
			owner = realloc(owner, cap_fds * sizeof(*owner));
			if (fds == NULL || owner == NULL)
				_exit(EXIT_SETUP_FAILED);
		}
		fds[n] = (struct pollfd){ .fd = commands_open ? COMMANDS_FD : -1, .events = POLLIN };
		owner[n++] = NULL;
		fds[n] = (struct pollfd){ .fd = sigfd, .events = POLLIN };
		owner[n++] = NULL;
		fds[n] = (struct pollfd){ .fd = EVENTS_FD, .events = queue.len > 0 ? POLLOUT : 0 };
		owner[n++] = NULL;
		/* Only open descriptors: poll counts every entry against the descriptor limit. */
		for (i = 0; i < n_kids; i++) {
			struct kid *k = kids[i];
			if (reading && k->out >= 0) {
				fds[n] = (struct pollfd){ .fd = k->out, .events = POLLIN };
				owner[n++] = k;
			}
			if (reading && k->err >= 0) {
				fds[n] = (struct pollfd){ .fd = k->err, .events = POLLIN };
				owner[n++] = k;
			}
			if (k->status >= 0) {
				fds[n] = (struct pollfd){ .fd = k->status, .events = POLLIN };
				owner[n++] = k;
			}
		}
		if (poll(fds, n, -1) < 0) {
			struct rlimit now;
			if (errno == EINTR)
				continue;
			if (errno != EINVAL)
				fail("spawner: poll failed: %s", strerror(errno));
			/* Someone lowered our soft limit below the descriptors we hold: watch as many as it allows,
			 * our own first (a dead child's pipes are read when it is reaped), until they close. */
			if (getrlimit(RLIMIT_NOFILE, &now) < 0 || now.rlim_cur < 3 || now.rlim_cur >= n || poll(fds, now.rlim_cur, -1) < 0) {
				struct timespec pause = { 0, 100000000L };
				nanosleep(&pause, NULL);
				continue;
			}
			n = now.rlim_cur;
		}
		if (fds[2].revents & (POLLERR | POLLHUP))
			_exit(0); /* the supervisor closed its end */
		if (fds[2].revents & POLLOUT)
			flush_queue();
		if (fds[0].revents & (POLLIN | POLLHUP | POLLERR))
			read_commands(s, prog);
		for (i = 3; i < n; i++) {
			struct kid *k = owner[i];
			if (fds[i].revents == 0)
				continue;
			if (fds[i].fd == k->out)
				relay_output(k, &k->out, 1, 4);
			else if (fds[i].fd == k->err)
				relay_output(k, &k->err, 2, 4);
			else if (fds[i].fd == k->status)
				read_status(k);
		}
		if (fds[1].revents & POLLIN) {
			struct signalfd_siginfo info;
			while (read(sigfd, &info, sizeof(info)) > 0)
				;
			reap(s, prog);
		}
		forget_finished();
	}
}
