/* A snapshot's files, in a directory the caller names: opened and created
 * by the caller's rights (caller.h), never over something already there,
 * and on failure only what this snapshot made is removed. */
#define _GNU_SOURCE
#include "fc/fc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const snap_names[3] = { "state", "memory", "disk.ext4" };

int snap_open(struct snapfiles *s, const struct caller *who, const char *dir, struct verr *e)
{
	s->who = who;
	s->dirfd = -1;
	for (int i = 0; i < 3; i++) {
		s->fd[i] = -1;
		s->made[i] = false;
	}
	s->dirfd = caller_open(who, AT_FDCWD, dir, O_RDONLY, 0, CALLER_DIR | CALLER_OWNED, "dir", e);
	if (s->dirfd < 0)
		return -1;
	for (int i = 0; i < 3; i++) {
		s->fd[i] = caller_open(who, s->dirfd, snap_names[i], O_RDWR | O_CREAT | O_EXCL, 0600, CALLER_REG,
				       "snapshot file", e);
		if (s->fd[i] < 0) {
			if (errno == EEXIST && verr_take(e, "ERR_FILE")) {
				verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", "give an empty directory of yours",
					 "%s/%s is already there: a snapshot never writes over a file", dir,
					 snap_names[i]);
			}
			snap_close(s, false);
			return -1;
		}
		s->made[i] = true;
	}
	return 0;
}

void snap_close(struct snapfiles *s, bool ok)
{
	for (int i = 0; i < 3; i++) {
		if (s->fd[i] >= 0)
			close(s->fd[i]);
		s->fd[i] = -1;
		/* ours: made with O_EXCL in this call; removed as the
		 * caller, who may have changed the directory since */
		if (!ok && s->made[i] && s->dirfd >= 0 && caller_fs_begin(s->who) == 0) {
			unlinkat(s->dirfd, snap_names[i], 0);
			caller_fs_end();
		}
		s->made[i] = false;
	}
	if (s->dirfd >= 0)
		close(s->dirfd);
	s->dirfd = -1;
}

long long allocated(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? (long long)st.st_blocks * 512 : -1;
}
