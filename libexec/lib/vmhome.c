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
#include <unistd.h>

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
	close(fd);
	snprintf(h->path, sizeof h->path, "%s", dir);
	h->dev = (long long)st.st_dev;
	h->ino = (long long)st.st_ino;
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

int vmhome_state(const struct vmhome *h, long owner)
{
	struct caller c;
	struct stat st;
	int rc, err;

	if (!h->path[0] || owner < 0)
		return VMHOME_UNKNOWN;
	owner_caller(owner, &c);
	if (caller_fs_begin(&c) != 0)
		return VMHOME_UNKNOWN;
	rc = fstatat(AT_FDCWD, h->path, &st, AT_SYMLINK_NOFOLLOW);
	err = errno;
	caller_fs_end();
	if (rc != 0)
		return err == ENOENT || err == ENOTDIR ? VMHOME_GONE : VMHOME_UNKNOWN;
	if (!S_ISDIR(st.st_mode) || (long long)st.st_dev != h->dev || (long long)st.st_ino != h->ino)
		return VMHOME_GONE;
	return VMHOME_THERE;
}
