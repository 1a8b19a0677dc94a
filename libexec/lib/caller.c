/* Who asked, and file access with their rights (caller.h).
 *
 * setfsuid/setfsgid change only the ids the kernel checks file access
 * against, and moving fsuid off 0 drops the file capabilities
 * (CAP_DAC_OVERRIDE, CAP_FOWNER, ...) from the effective set until it
 * comes back: between caller_fs_begin and caller_fs_end this root process
 * opens, creates and removes files exactly as the caller could, and no
 * more.  The supplementary groups are set too, so group-readable files of
 * the caller's groups stay readable. */
#define _GNU_SOURCE
#include "caller.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

void caller_get(struct caller *who)
{
	long u, g;
	struct passwd *pw;
	int n = CALLER_MAX_GROUPS;

	caller_ids(&u, &g);
	memset(who, 0, sizeof *who);
	who->uid = (uid_t)u;
	who->gid = (gid_t)g;
	who->root = who->uid == 0;
	who->groups[0] = who->gid;
	who->ngroups = 1;
	pw = who->root ? NULL : getpwuid(who->uid);
	if (pw && getgrouplist(pw->pw_name, who->gid, who->groups, &n) >= 0)
		who->ngroups = n;
}

static gid_t saved_groups[256];
static int nsaved = -1;

int caller_fs_begin(const struct caller *who)
{
	if (who->root || geteuid() != 0)
		return 0; /* root's own request, or not root: nothing to switch */
	nsaved = getgroups(256, saved_groups);
	if (nsaved < 0 || setgroups((size_t)who->ngroups, who->groups) != 0)
		return -1;
	setfsgid(who->gid);
	setfsuid(who->uid);
	/* setfs*id report the old id whatever happened: ask again */
	if ((uid_t)setfsuid((uid_t)-1) != who->uid || (gid_t)setfsgid((gid_t)-1) != who->gid) {
		caller_fs_end();
		errno = EPERM;
		return -1;
	}
	return 0;
}

void caller_fs_end(void)
{
	if (nsaved < 0)
		return;
	setfsuid(0);
	setfsgid(0);
	if (setgroups((size_t)nsaved, saved_groups) != 0)
		_exit(VMSAN_EXIT_SYS); /* never go on with the caller's groups */
	nsaved = -1;
}

int caller_open(const struct caller *who, int dirfd, const char *path, int flags, mode_t mode, unsigned want,
		const char *what, struct verr *e)
{
	struct stat st;
	int fd, err;

	if (caller_fs_begin(who) != 0) {
		verr_sys(e, "ERR_SYSTEM", NULL, "cannot take the caller's identity");
		return -1;
	}
	/* No magic link on the way (/proc/PID/cwd, /proc/PID/fd/N): root
	 * keeps CAP_SYS_PTRACE through setfsuid, and those would lead past
	 * directories the caller cannot enter. */
	struct open_how how = {
		.flags = (uint64_t)(flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC |
				    (want & CALLER_DIR ? O_DIRECTORY : 0)),
		.mode = flags & O_CREAT ? mode : 0,
		.resolve = RESOLVE_NO_MAGICLINKS,
	};
	fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
	err = errno;
	caller_fs_end();
	if (fd < 0) {
		errno = err;
		if (err == ELOOP)
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_FILE", "name the file itself, not a symlink to it",
				 "%s %s is a symbolic link", what, path);
		else /* the caller's path: a refusal (1), not a failed system call (111) */
			verr_set(e, VMSAN_EXIT_FAIL, err == EACCES || err == EPERM ? "ERR_PERMISSION" : "ERR_FILE",
				 err == EACCES || err == EPERM ? "use a file you can open yourself" : NULL,
				 "cannot open %s %s: %s", what, path, strerror(err));
		errno = err;
		return -1;
	}
	if (fstat(fd, &st) != 0 || ((want & CALLER_REG) && !S_ISREG(st.st_mode)) ||
	    ((want & CALLER_DIR) && !S_ISDIR(st.st_mode))) {
		close(fd);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_FILE", NULL, "%s %s is not a %s", what, path,
			 want & CALLER_DIR ? "directory" : "regular file");
		errno = EINVAL;
		return -1;
	}
	if ((want & CALLER_OWNED) && !who->root && st.st_uid != who->uid) {
		close(fd);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_PERMISSION", "use your own files",
			 "%s %s belongs to uid %u, not to you (uid %u)", what, path, (unsigned)st.st_uid,
			 (unsigned)who->uid);
		errno = EPERM;
		return -1;
	}
	if (!(flags & O_NONBLOCK))
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

int become_uid(long long uid, long long gid, long long extra_gid)
{
	gid_t groups[2] = { (gid_t)gid, (gid_t)extra_gid };

	if (setgroups(extra_gid >= 0 ? 2 : 1, groups) < 0 || setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) < 0 ||
	    setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0)
		return -1;
	return 0;
}
