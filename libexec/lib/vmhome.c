/* A VM's home, as root's records remember it (vmhome.h). */
#define _GNU_SOURCE
#include "vmhome.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* The directory fd stands for, by the path the kernel knows it under (no
 * symlink, no "." or ".."): what a later look must find again. */
static int fd_path(int fd, char *out, size_t n)
{
	char p[64];
	ssize_t len;

	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	len = readlink(p, out, n - 1);
	if (len <= 0 || (size_t)len >= n - 1 || out[0] != '/')
		return -1;
	out[len] = 0;
	return 0;
}

int vmhome_take(const struct caller *who, const char *dir, const char *what, struct vmhome *h, struct verr *e)
{
	struct stat st;
	int fd;

	memset(h, 0, sizeof *h);
	if (strlen(dir) >= sizeof h->path || dir[0] != '/')
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", NULL,
				 "%s: expected an absolute path shorter than %zu", what, sizeof h->path);
	fd = caller_open(who, AT_FDCWD, dir, O_RDONLY, 0, CALLER_DIR | CALLER_OWNED, what, e);
	if (fd < 0) {
		if (!verr_isset(e))
			verr_sys(e, "ERR_VM_DIR", "give the VM's own directory", "cannot open the VM's directory %s",
				 dir);
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		close(fd);
		return verr_sys(e, "ERR_VM_DIR", NULL, "cannot read the VM's directory %s", dir), -1;
	}
	/* Noted only where no one but its owner (and root) could make it
	 * look gone later: otherwise none is noted, and nothing of the VM
	 * is ever taken for an orphan because of its home. */
	if (fd_path(fd, h->path, sizeof h->path) == 0) {
		h->dev = (long long)st.st_dev;
		h->ino = (long long)st.st_ino;
		if (vmhome_state(h, who->root ? 0 : (long)who->uid) != VMHOME_THERE)
			memset(h, 0, sizeof *h);
	}
	close(fd);
	return 0;
}

json_t *vmhome_json(const struct vmhome *h)
{
	return h->path[0] ? json_pack("{s:s, s:I, s:I}", "path", h->path, "dev", (json_int_t)h->dev, "ino",
				      (json_int_t)h->ino)
			  : NULL;
}

void vmhome_read(json_t *j, struct vmhome *h)
{
	const char *p = json_string_value(json_object_get(j, "path"));

	memset(h, 0, sizeof *h);
	if (!p || p[0] != '/' || strlen(p) >= sizeof h->path)
		return;
	snprintf(h->path, sizeof h->path, "%s", p);
	h->dev = json_integer_value(json_object_get(j, "dev"));
	h->ino = json_integer_value(json_object_get(j, "ino"));
}

/* The owner as a caller: uid, its primary group and groups (none known:
 * the uid's number as its group, and no other). */
static void owner_caller(long owner, struct caller *c)
{
	struct passwd *pw = getpwuid((uid_t)owner);
	int n = CALLER_MAX_GROUPS;

	memset(c, 0, sizeof *c);
	c->uid = (uid_t)owner;
	c->gid = pw ? pw->pw_gid : (gid_t)owner;
	c->root = owner == 0;
	c->groups[0] = c->gid;
	c->ngroups = 1;
	if (pw && !c->root && getgrouplist(pw->pw_name, c->gid, c->groups, &n) >= 0)
		c->ngroups = n;
}

/* Whether gid's members are owner alone: no other user has it, as
 * their primary group or as a member. */
static bool group_of_owner_alone(gid_t gid, long owner)
{
	struct passwd *pw = getpwuid((uid_t)owner), *p;
	struct group *gr;
	char name[256];
	bool alone = true;

	if (!pw || snprintf(name, sizeof name, "%s", pw->pw_name) >= (int)sizeof name || !(gr = getgrgid(gid)))
		return false;
	for (char **m = gr->gr_mem; *m; m++)
		alone = alone && !strcmp(*m, name);
	setpwent();
	while (alone && (p = getpwent()))
		alone = p->pw_gid != gid || p->pw_uid == (uid_t)owner;
	endpwent();
	return alone;
}

/* Whether a directory's entries can be removed, renamed or put there by
 * its owner (root, or owner) alone: nobody else writes to it, or the
 * sticky bit keeps others to their own entries (which the walk then
 * enters no further than the directory they make untrusted).  A
 * group-writable one: only for a group of the owner alone (the private
 * group a umask of 002 gives), and with no ACL (whose named entries the
 * group bits' mask lets write). */
static bool dir_trusted(int fd, const struct stat *st, long owner)
{
	char p[64];

	if (!S_ISDIR(st->st_mode) || (st->st_uid != 0 && (long)st->st_uid != owner))
		return false;
	if (st->st_mode & S_ISVTX)
		return true;
	if (st->st_mode & S_IWOTH)
		return false;
	if (!(st->st_mode & S_IWGRP))
		return true;
	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	if (getxattr(p, "system.posix_acl_access", NULL, 0) >= 0 || (errno != ENODATA && errno != ENOTSUP))
		return false;
	return group_of_owner_alone(st->st_gid, owner);
}

/* The walk of vmhome_state, one component at a time from /, never
 * following a symlink: VMHOME_GONE is said only where every directory on
 * the way is trusted (dir_trusted), so that what is missing or changed
 * there was done by the owner or root, never by another user (a
 * directory of theirs on the way, a symlink of theirs, their rename). */
static int walk(const struct vmhome *h, long owner)
{
	char path[PATH_MAX], *save = NULL, *name, *next;
	struct stat st;
	int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC), nfd, rc = VMHOME_UNKNOWN;

	snprintf(path, sizeof path, "%s", h->path);
	for (name = strtok_r(path, "/", &save); fd >= 0 && name; name = next) {
		next = strtok_r(NULL, "/", &save);
		if (fstat(fd, &st) != 0 || !dir_trusted(fd, &st, owner) || !strcmp(name, "..") || !strcmp(name, "."))
			break;
		nfd = openat(fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0) {
			rc = errno == ENOENT ? VMHOME_GONE : VMHOME_UNKNOWN;
			break;
		}
		close(fd);
		fd = nfd;
		if (fstat(fd, &st) != 0)
			break;
		if (!next) { /* the VM's directory itself, or something else in its place */
			rc = S_ISDIR(st.st_mode) && (long long)st.st_dev == h->dev && (long long)st.st_ino == h->ino
				     ? VMHOME_THERE
				     : VMHOME_GONE;
		} else if (S_ISLNK(st.st_mode)) {
			break; /* noted with none: not this VM's home's path (an older vmsan's note) */
		} else if (!S_ISDIR(st.st_mode)) {
			rc = VMHOME_GONE;
			break;
		}
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

int vmhome_state(const struct vmhome *h, long owner)
{
	struct caller c;
	int rc;

	if (!h->path[0] || h->path[0] != '/' || owner < 0)
		return VMHOME_UNKNOWN;
	owner_caller(owner, &c);
	if (caller_fs_begin(&c) != 0)
		return VMHOME_UNKNOWN;
	rc = walk(h, owner);
	caller_fs_end();
	return rc;
}
