/* cache.c: the image cache's layout.
 *
 *   $VMSAN_DIR/images/<hex>/rootfs.ext4   the image's filesystem (sparse)
 *   $VMSAN_DIR/images/<hex>/image.json    digest, config, sizes, layers
 *   $VMSAN_DIR/images/refs/<key>.json     a reference -> digest
 *   $VMSAN_DIR/images/tmp/<pid>.<n>/      builds in progress
 */
#define _GNU_SOURCE
#include "rootfs/rootfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the cache ------------------------------------------------------- */

int cache_open(struct cache *c, bool create, struct verr *e)
{
	memset(c, 0, sizeof(*c));
	c->st.vmsfd = -1;
	if (state_open(&c->st, create, e) != 0)
		return -1;
	bfmt(c->dir, sizeof(c->dir), "%s/images", c->st.dir);
	char p[PATH_MAX];
	if (!create)
		return 0;
	if (mkdir_own(c, c->dir, e) < 0)
		return -1;
	bfmt(p, sizeof(p), "%s/refs", c->dir);
	if (mkdir_own(c, p, e) < 0)
		return -1;
	bfmt(p, sizeof(p), "%s/tmp", c->dir);
	return mkdir_own(c, p, e);
}

void ref_key(const char *ref, char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)ref; *p && o + 4 < n; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		    *p == '_' || *p == '-') {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
}

void ref_unkey(const char *key, char *out, size_t n)
{
	size_t o = 0;
	for (const char *p = key; *p && o + 1 < n; p++) {
		unsigned v;
		if (*p == '%' && sscanf(p + 1, "%2x", &v) == 1) {
			out[o++] = (char)v;
			p += 2;
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
}

void sweep_tmp(const struct cache *c)
{
	char p[PATH_MAX];
	bfmt(p, sizeof(p), "%s/tmp", c->dir);
	DIR *d = opendir(p);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (de->d_name[0] == '.' || *end != '.' || pid <= 0)
			continue;
		if (pid == getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		rm_tree_at(dirfd(d), de->d_name);
	}
	closedir(d);
}

/* ---- builds --------------------------------------------------------- */

int new_build(struct build *b, const struct cache *c, uint64_t disk, struct verr *e)
{
	static unsigned seq;
	memset(b, 0, sizeof(*b));
	b->c = c;
	b->disk = disk;
	b->t0 = now_s();
	for (int tries = 0; tries < 100; tries++) {
		bfmt(b->tmp, sizeof(b->tmp), "%s/tmp/%d.%u", c->dir, (int)getpid(), seq++);
		if (mkdir(b->tmp, 0700) == 0) {
			own(c, b->tmp);
			bfmt(b->img, sizeof(b->img), "%s/rootfs.ext4", b->tmp);
			return 0;
		}
		if (errno != EEXIST)
			break;
	}
	verr_sys(e, errno == ENOSPC ? "ERR_NO_SPACE" : "ERR_IO", NULL, "cannot create a build directory in %s/tmp",
		 c->dir);
	return -1;
}

int publish(struct build *b, const char *hex, json_t *rec, struct verr *e)
{
	char path[PATH_MAX], blobs[PATH_MAX];
	bfmt(blobs, sizeof(blobs), "%s/blobs", b->tmp);
	rm_tree_at(AT_FDCWD, blobs);
	json_object_set_new(rec, "buildSeconds", json_real(now_s() - b->t0));
	bfmt(path, sizeof(path), "%s/image.json", b->tmp);
	if (dump_file(b->c, path, rec, e) < 0)
		return -1;
	int fd = open(b->img, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot sync %s", b->img);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	chmod(b->img, 0444); /* shared read-only by every VM made from it */
	bfmt(path, sizeof(path), "%s/%s", b->c->dir, hex);
	if (rename(b->tmp, path) != 0) {
		if (errno != EEXIST && errno != ENOTEMPTY) {
			verr_sys(e, "ERR_IO", NULL, "cannot move the image into %s", path);
			return -1;
		}
		rm_tree_at(AT_FDCWD, b->tmp);
	}
	b->tmp[0] = '\0';
	int dfd = open(b->c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

void drop_build(struct build *b)
{
	if (b->tmp[0])
		rm_tree_at(AT_FDCWD, b->tmp);
	b->tmp[0] = '\0';
}

/* ---- records --------------------------------------------------------- */

json_t *load_image(const struct cache *c, const char *hex, struct verr *e)
{
	char p[PATH_MAX];
	bfmt(p, sizeof(p), "%s/%s/image.json", c->dir, hex);
	json_t *rec = load_json(p, e);
	if (!rec)
		return NULL;
	bfmt(p, sizeof(p), "%s/%s/rootfs.ext4", c->dir, hex);
	if (access(p, R_OK) != 0) {
		json_decref(rec);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_CACHE_CORRUPT", "remove it with 'vmsan images rm' and pull again",
			 "image %s has no rootfs.ext4", hex);
		return NULL;
	}
	json_object_set_new(rec, "path", json_string(p));
	return rec;
}

int store_ref(const struct cache *c, const char *canon, const char *digest, struct verr *e)
{
	char key[1800], p[PATH_MAX], when[32];
	/* Unchanged: no rewrite (and no fsync) on every cache hit. */
	char *have = lookup_ref(c, canon);
	bool same = have && strcmp(have, digest) == 0;
	free(have);
	if (same)
		return 0;
	ref_key(canon, key, sizeof(key));
	bfmt(p, sizeof(p), "%s/refs/%s.json", c->dir, key);
	utc_iso(time(NULL), when);
	json_t *j = json_pack("{s:s, s:s, s:s}", "ref", canon, "digest", digest, "updatedAt", when);
	int rc = dump_file(c, p, j, e);
	json_decref(j);
	return rc;
}

char *lookup_ref(const struct cache *c, const char *canon)
{
	char key[1800], p[PATH_MAX];
	ref_key(canon, key, sizeof(key));
	bfmt(p, sizeof(p), "%s/refs/%s.json", c->dir, key);
	json_t *j = json_load_file(p, 0, NULL);
	const char *d = json_string_value(json_object_get(j, "digest"));
	char *out = d && strncmp(d, "sha256:", 7) == 0 && valid_hex64(d + 7) ? strdup(d) : NULL;
	json_decref(j);
	return out;
}

int check_disk(json_t *rec, uint64_t disk, const char *what, struct verr *e)
{
	uint64_t need = (uint64_t)json_integer_value(json_object_get(rec, "neededDiskSize"));
	if (disk && need > disk)
		return disk_full_error(disk, need, what, e);
	return 0;
}

json_t *answer(json_t *rec, const char *ref, bool cached, double t0)
{
	json_object_set_new(rec, "ref", json_string(ref));
	json_object_set_new(rec, "cached", json_boolean(cached));
	json_object_set_new(rec, "seconds", json_real(now_s() - t0));
	return rec;
}
