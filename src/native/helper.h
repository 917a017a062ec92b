/* Shared by helper.c (the exec helper and its modes) and spawner.c (the resident spawner). */
#ifndef SPAWN_FCGI_TS_HELPER_H
#define SPAWN_FCGI_TS_HELPER_H

#include <sys/resource.h>
#include <sys/types.h>

#define EXIT_SETUP_FAILED 111
#define MAX_RLIMITS 32

struct rlimit_req {
	const char *name;
	int resource;
	struct rlimit lim;
};

struct group_list {
	int given;
	size_t n;
	gid_t *ids;
};

/* What a child is made into before its exec: the helper's options. */
struct setup {
	struct rlimit_req rlimits[MAX_RLIMITS];
	int n_rlimits;
	int allow_root;
	long backlog;
	long pdeathsig;
	long long gid, uid, parent;
	const char *chroot_dir, *chdir_dir;
	struct group_list groups;
};

/* Where fail() writes its one line (-1: stderr). */
extern int status_fd;

void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...);
int parse_ulong(const char *s, unsigned long max, unsigned long *out);
void close_from(unsigned int lo, unsigned int hi);
int parse_setup(int argc, char **argv, int first, struct setup *s);
void __attribute__((noreturn)) setup_and_exec(const struct setup *s, char **prog);
void __attribute__((noreturn)) run_spawner(struct setup *s, char **prog);

#endif
