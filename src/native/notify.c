/*
 * spawn-fcgi-ts-notify: sends systemd notifications (sd_notify) for the
 * supervisor, because Node has no AF_UNIX SOCK_DGRAM.
 *
 *   spawn-fcgi-ts-notify SOCKET [--pid PID]
 *
 * SOCKET is $NOTIFY_SOCKET: an absolute path, or @name for an abstract
 * socket.  Messages are read from stdin, each terminated by a NUL byte (one
 * message may hold several NAME=value lines separated by '\n'), and each is
 * sent as one datagram.  With --pid, SCM_CREDENTIALS carrying that pid (and
 * our uid/gid) are attached, so that NotifyAccess=main accepts messages on
 * behalf of the supervisor; only root (CAP_SYS_ADMIN) may do that, so on
 * EPERM the message is sent again without credentials, and so are all the
 * following ones.
 *
 * Exit status: 0 at EOF on stdin or on SIGTERM/SIGINT/SIGHUP (after sending
 * every complete message already in the pipe); 1 on usage errors.  Send
 * errors (ECONNREFUSED, ENOENT while systemd restarts, a full queue...) drop
 * the message and print one line to stderr, only when the error differs
 * from the previous send's; unterminated data at EOF is dropped.  The
 * notifier dies with the supervisor: stdin EOF, and PR_SET_PDEATHSIG.
 *
 * Linux only; gnu11; must stay warning-free with -Wall -Wextra.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#define PROGRAM "spawn-fcgi-ts-notify"
#define MAX_MESSAGE 65536 /* systemd itself ignores datagrams of 4096 bytes or more */
#define SEND_TIMEOUT_SEC 2 /* a blocked queue must not stall the notifier for ever */

static volatile sig_atomic_t stop_requested;

static struct sockaddr_un address;
static socklen_t address_length;
static const char *socket_name;
static int sock = -1;
static int send_credentials;
static pid_t credentials_pid;
static int last_error; /* errno of the previous send, 0 after a success */

static void usage(const char *problem)
{
	if (problem != NULL)
		fprintf(stderr, "%s: %s\n", PROGRAM, problem);
	fprintf(stderr, "usage: %s SOCKET [--pid PID]   (SOCKET: /path or @abstract-name; NUL-terminated messages on stdin)\n",
		PROGRAM);
	exit(1);
}

static void on_stop(int sig)
{
	int saved = errno;

	(void)sig;
	stop_requested = 1;
	/* From now on read(2) only takes what is already in the pipe (no race with a read about to block). */
	fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
	errno = saved;
}

/* Strict positive decimal pid. */
static int parse_pid(const char *s, pid_t *out)
{
	char *end;
	long v;

	if (s == NULL || *s < '1' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > INT_MAX)
		return -1;
	*out = (pid_t)v;
	return 0;
}

static void set_address(const char *name)
{
	size_t len = strlen(name);

	memset(&address, 0, sizeof(address));
	address.sun_family = AF_UNIX;
	if (name[0] == '@') {
		/* Abstract: a leading NUL, then the name; the length counts exactly those bytes. */
		if (len < 2 || len > sizeof(address.sun_path))
			usage("abstract socket name must have 1 to 107 characters after '@'");
		memcpy(address.sun_path + 1, name + 1, len - 1);
		address_length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	} else if (name[0] == '/') {
		if (len >= sizeof(address.sun_path))
			usage("socket path is too long (at most 107 bytes)");
		memcpy(address.sun_path, name, len + 1);
		address_length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	} else {
		char problem[256];

		snprintf(problem, sizeof(problem), "unsupported NOTIFY_SOCKET '%.160s': expected an absolute path or @name", name);
		usage(problem);
	}
}

static ssize_t send_once(const char *msg, size_t len, int with_credentials, int flags)
{
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(struct ucred))];
	} control;
	struct msghdr mh;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_name = &address;
	mh.msg_namelen = address_length;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (with_credentials) {
		struct cmsghdr *cm;
		struct ucred cred = { .pid = credentials_pid, .uid = getuid(), .gid = getgid() };

		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = sizeof(control.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_CREDENTIALS;
		cm->cmsg_len = CMSG_LEN(sizeof(cred));
		memcpy(CMSG_DATA(cm), &cred, sizeof(cred));
	}
	while ((n = sendmsg(sock, &mh, flags | MSG_NOSIGNAL)) < 0 && errno == EINTR)
		flags |= MSG_DONTWAIT; /* interrupted by a stop request: no more waiting */
	return n;
}

/* Send one message as one datagram; report a failure once per distinct errno. */
static void send_message(const char *msg, size_t len, int flags)
{
	ssize_t n;
	int err;

	if (len == 0)
		return;
	n = send_once(msg, len, send_credentials, flags);
	if (n < 0 && send_credentials && errno == EPERM) {
		/* Not allowed to speak for another pid: the kernel fills in our own from now on. */
		send_credentials = 0;
		fprintf(stderr, "%s: may not send credentials for pid %ld (EPERM); sending without them\n", PROGRAM,
			(long)credentials_pid);
		n = send_once(msg, len, 0, flags);
	}
	if (n >= 0) {
		last_error = 0;
		return;
	}
	err = errno;
	if (err != last_error) {
		const char *first_line_end = memchr(msg, '\n', len);
		int shown = (int)(first_line_end != NULL ? (size_t)(first_line_end - msg) : len);

		if (shown > 80)
			shown = 80;
		fprintf(stderr, "%s: sending to %s failed: %s; message dropped (%.*s%s)\n", PROGRAM, socket_name,
			strerror(err), shown, msg, (size_t)shown < len ? "..." : "");
	}
	last_error = err;
}

int main(int argc, char **argv)
{
	static char buf[MAX_MESSAGE];
	size_t used = 0;
	int discarding = 0; /* inside a message too long to send: skip to its NUL */
	pid_t parent = getppid();
	struct sigaction sa;
	struct timeval timeout = { .tv_sec = SEND_TIMEOUT_SEC, .tv_usec = 0 };
	int i;

	if (argc < 2 || argv[1][0] == '-')
		usage(argc < 2 ? "missing SOCKET" : "SOCKET must come first");
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--pid") == 0 && i + 1 < argc) {
			if (parse_pid(argv[++i], &credentials_pid) < 0)
				usage("--pid needs a positive process id");
			send_credentials = 1;
		} else {
			usage("unknown argument");
		}
	}
	socket_name = argv[1];
	set_address(socket_name);

	/* SIGTERM (execa's cleanup, PDEATHSIG) and friends: send what is already in the pipe, then exit 0. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: a blocked read(2) returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Die with the supervisor, even if it died before prctl took effect. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
		on_stop(SIGTERM);

	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		fprintf(stderr, "%s: socket(AF_UNIX, SOCK_DGRAM): %s\n", PROGRAM, strerror(errno));
		return 1;
	}
	setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));

	for (;;) {
		ssize_t n;
		size_t start = 0, k;
		int draining = stop_requested; /* stdin is non-blocking then: only what is already in the pipe */

		n = read(STDIN_FILENO, buf + used, sizeof(buf) - used);
		if (n < 0) {
			if (errno == EINTR)
				continue; /* stop_requested is set: loop round to drain */
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				fprintf(stderr, "%s: reading stdin: %s\n", PROGRAM, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		for (k = 0; k < used; k++) {
			if (buf[k] != '\0')
				continue;
			if (!discarding)
				send_message(buf + start, k - start, draining ? MSG_DONTWAIT : 0);
			discarding = 0;
			start = k + 1;
		}
		if (start > 0) {
			memmove(buf, buf + start, used - start);
			used -= start;
		} else if (used == sizeof(buf)) {
			if (!discarding)
				fprintf(stderr, "%s: message longer than %d bytes dropped\n", PROGRAM, MAX_MESSAGE);
			discarding = 1;
			used = 0;
		}
	}
	if (used > 0 && !discarding)
		fprintf(stderr, "%s: %zu bytes without a terminating NUL at end of input dropped\n", PROGRAM, used);
	return 0;
}
