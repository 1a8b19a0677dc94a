/* Who asked a root helper, and file access with that caller's rights. */
#ifndef VMSAN_CALLER_H
#define VMSAN_CALLER_H

#include <stdbool.h>
#include <sys/types.h>

#include "vmsan.h"

#define CALLER_MAX_GROUPS 64

struct caller {
	uid_t uid;
	gid_t gid;
	bool root;			 /* root itself, not acting for a user */
	gid_t groups[CALLER_MAX_GROUPS]; /* the user's supplementary groups */
	int ngroups;
};

/* The user root acts for under sudo (SUDO_UID/SUDO_GID), or our own ids. */
void caller_get(struct caller *who);

enum {
	CALLER_REG = 1,	  /* must be a regular file */
	CALLER_DIR = 2,	  /* must be a directory */
	CALLER_OWNED = 4, /* and the caller's own (root: anyone's) */
};

/* Opens path (relative to dirfd, or absolute) as the caller would:
 * fsuid, fsgid and groups switched to theirs for the open, so root's
 * rights never reach a path a caller named; no symlink as the last
 * component, O_NONBLOCK (a FIFO cannot hang us) cleared after, and the
 * result checked to be what want says.  A file made with O_CREAT is the
 * caller's because the caller made it.  what names the field in errors.
 * The descriptor, or -1 with e set (errno kept). */
int caller_open(const struct caller *who, int dirfd, const char *path, int flags, mode_t mode, unsigned want,
		const char *what, struct verr *e);

/* Runs the file system calls between begin and end as the caller (for
 * unlinkat, mkdirat, linkat in a caller's directory).  Not nestable. */
int caller_fs_begin(const struct caller *who);
void caller_fs_end(void);
/* In a child about to run a VMM (or a boot check): for good, uid and gid,
 * with extra_gid (-1: none) as the only other group.  0, or -1 (errno). */
int become_uid(long long uid, long long gid, long long extra_gid);

#endif
