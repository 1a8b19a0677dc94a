/* The root helpers' configuration (rootconf.h). */
#define _GNU_SOURCE
#include "rootconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A directory or file an attacker could not have replaced: root's, and
 * not writable by group or others unless sticky (then others cannot
 * rename root's entries in it). */
static bool root_safe(const struct stat *st, bool dir)
{
	if (st->st_uid != 0)
		return false;
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return dir && (st->st_mode & S_ISVTX);
	return true;
}

/* Every directory above path (which is absolute) root-safe. */
static bool dirs_root_safe(const char *path, char *bad, size_t n)
{
	char d[PATH_MAX];
	struct stat st;

	snprintf(d, sizeof d, "%s", path);
	for (char *sl = strrchr(d, '/'); sl; sl = strrchr(d, '/')) {
		if (sl == d)
			sl[1] = '\0';
		else
			*sl = '\0';
		if (lstat(d, &st) != 0 || !S_ISDIR(st.st_mode) || !root_safe(&st, true)) {
			snprintf(bad, n, "%s", d);
			return false;
		}
		if (sl == d)
			break;
	}
	return true;
}

bool rootconf_trusted_program(const char *path, const char *what, struct verr *e)
{
	struct stat st;
	char bad[PATH_MAX], real[PATH_MAX];

	if (path[0] != '/') {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_ROOT_CONFIG", "give an absolute path in " ROOTCONF_PATH,
			 "%s '%s' is not an absolute path", what, path);
		return false;
	}
	if (!realpath(path, real) || stat(real, &st) != 0) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_MISSING_TOOL", "install it, or set its path in " ROOTCONF_PATH,
			 "%s %s is not there: %s", what, path, strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode) || !root_safe(&st, false) || !(st.st_mode & S_IXUSR)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_ROOT_CONFIG", "chown root it and chmod go-w it",
			 "%s %s is not an executable that only root can change", what, path);
		return false;
	}
	/* the directories of the name run, and of the file it leads to */
	if (!dirs_root_safe(path, bad, sizeof bad) || !dirs_root_safe(real, bad, sizeof bad)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_ROOT_CONFIG", "keep the VMM programs in root's directories",
			 "%s %s: directory %s is not root's alone", what, path, bad);
		return false;
	}
	return true;
}

static void defaults(struct rootconf *c)
{
	memset(c, 0, sizeof *c);
	snprintf(c->qemu, sizeof c->qemu, "/usr/bin/qemu-system-x86_64");
	snprintf(c->firecracker, sizeof c->firecracker, "/usr/bin/firecracker");
	snprintf(c->jailer, sizeof c->jailer, "/usr/bin/jailer");
	snprintf(c->chroot_base, sizeof c->chroot_base, "/srv/jailer");
	c->max_vms_per_user = 64;
	c->port_min = 1024;
	c->port_max = 65535;
}

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

static bool abs_path_value(const char *v)
{
	return v[0] == '/' && strlen(v) < ROOTCONF_PATH_MAX && !strstr(v, "/../") && !strchr(v, ',');
}

/* One "key = value" line into c; false with why filled. */
static bool set_one(struct rootconf *c, const char *k, const char *v, char *why, size_t n)
{
	struct {
		const char *key;
		char *dst;
	} paths[] = {
		{ "qemu", c->qemu },
		{ "firecracker", c->firecracker },
		{ "jailer", c->jailer },
		{ "chroot-base", c->chroot_base },
	};
	char *end;

	for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
		if (!strcmp(k, paths[i].key)) {
			if (!abs_path_value(v))
				return snprintf(why, n, "%s must be an absolute path without '..' or ','", k), false;
			snprintf(paths[i].dst, ROOTCONF_PATH_MAX, "%s", v);
			return true;
		}
	if (!strcmp(k, "max-vms-per-user")) {
		long l = strtol(v, &end, 10);
		if (!*v || *end || l < 1 || l > 32768)
			return snprintf(why, n, "max-vms-per-user must be 1 to 32768"), false;
		c->max_vms_per_user = l;
		return true;
	}
	if (!strcmp(k, "publish-ports")) {
		unsigned lo, hi;
		char w[128];
		if (parse_port_range(v, &lo, &hi, w, sizeof w) != 0)
			return snprintf(why, n, "publish-ports: %s", w), false;
		c->port_min = lo;
		c->port_max = hi;
		return true;
	}
	return snprintf(why, n, "unknown setting '%.40s'", k), false;
}

int rootconf_load(struct rootconf *c, struct verr *e)
{
	long uid, gid;
	const char *path = ROOTCONF_PATH, *env = getenv("VMSAN_ROOT_CONFIG");
	char line[PATH_MAX + 64], why[160], bad[PATH_MAX];
	struct stat st;
	FILE *f;
	int fd, ln = 0;

	defaults(c);
	/* Another file only for root itself: under sudo the environment is
	 * the caller's to choose as far as sudoers lets it. */
	if (env && *env && !caller_ids(&uid, &gid) && uid == 0)
		path = env;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		verr_sys(e, "ERR_ROOT_CONFIG", NULL, "cannot open %s", path);
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !root_safe(&st, false) ||
	    !dirs_root_safe(path, bad, sizeof bad)) {
		close(fd);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_ROOT_CONFIG", "chown root it and its directories; chmod go-w",
			 "%s is not a file only root can change: refusing it", path);
		return -1;
	}
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		verr_sys(e, "ERR_ROOT_CONFIG", NULL, "cannot read %s", path);
		return -1;
	}
	snprintf(c->path, sizeof c->path, "%s", path);
	while (fgets(line, sizeof line, f)) {
		char *s = trim(line), *eq;
		ln++;
		if (!*s || *s == '#')
			continue;
		eq = strchr(s, '=');
		if (!eq) {
			snprintf(why, sizeof why, "no '='");
		} else {
			*eq = '\0';
			if (set_one(c, trim(s), trim(eq + 1), why, sizeof why))
				continue;
		}
		fclose(f);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_ROOT_CONFIG", "see vmsan-security(7) for the settings", "%s:%d: %s",
			 path, ln, why);
		return -1;
	}
	fclose(f);
	if (c->port_min < 1)
		c->port_min = 1;
	return 0;
}
