/* util.c: small file utilities for the image cache: atomic JSON files,
 * locks, and files given to the state directory's owner. */
#define _GNU_SOURCE
#include "rootfs/rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *bfmt(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, n, fmt, ap);
	va_end(ap);
	return buf;
}

void own(const struct cache *c, const char *path)
{
	if (c->st.chown_new && lchown(path, (uid_t)c->st.owner_uid, (gid_t)c->st.owner_gid) != 0)
		vmsan_debug("cannot chown %s: %s", path, strerror(errno));
}

int mkdir_own(const struct cache *c, const char *path, struct verr *e)
{
	if (mkdir(path, 0700) == 0) {
		own(c, path);
		return 0;
	}
	if (errno == EEXIST)
		return 0;
	verr_sys(e, "ERR_IO", NULL, "cannot create %s", path);
	return -1;
}

static int write_file(const struct cache *c, const char *path, const char *data, struct verr *e)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot write %s", tmp);
		return -1;
	}
	size_t len = strlen(data), off = 0;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			verr_sys(e, errno == ENOSPC ? "ERR_NO_SPACE" : "ERR_IO",
				 errno == ENOSPC ? "free space where VMSAN_DIR lives" : NULL, "cannot write %s", tmp);
			close(fd);
			unlink(tmp);
			return -1;
		}
		off += (size_t)n;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot write %s", tmp);
		unlink(tmp);
		return -1;
	}
	own(c, tmp);
	if (rename(tmp, path) != 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot rename %s", tmp);
		unlink(tmp);
		return -1;
	}
	return 0;
}

int dump_file(const struct cache *c, const char *path, json_t *j, struct verr *e)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!s) {
		verr_sys(e, "ERR_NOMEM", NULL, "encoding %s", path);
		return -1;
	}
	size_t n = strlen(s);
	char *t = realloc(s, n + 2);
	if (t) {
		s = t;
		s[n] = '\n';
		s[n + 1] = '\0';
	}
	int rc = write_file(c, path, s, e);
	free(s);
	return rc;
}

json_t *load_json(const char *path, struct verr *e)
{
	json_error_t je;
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		if (errno == ENOENT && access(path, F_OK) != 0)
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_NOENT", NULL, "%s does not exist", path);
		else
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_CACHE_CORRUPT",
				 "remove it with 'vmsan images rm' and pull again", "%s: %s (line %d)", path, je.text,
				 je.line);
	}
	return j;
}

int lock_file(const struct cache *c, const char *path, struct verr *e)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot open lock %s", path);
		return -1;
	}
	own(c, path);
	while (flock(fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			verr_sys(e, "ERR_IO", NULL, "cannot lock %s", path);
			close(fd);
			return -1;
		}
	}
	return fd;
}

bool valid_hex64(const char *s)
{
	if (strlen(s) != 64)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}
