/* VM records: $VMSAN_DIR/vms/<id>.json, written atomically, read safely. */
#define _GNU_SOURCE
#include <dirent.h>
#include <time.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmsan.h"

#define FIX_DIR "set VMSAN_DIR to a directory you own, or fix the ownership and mode (chmod 700)"
#define RECORD_MAX (256 * 1024)

/* $VMSAN_DIR, else ~/.vmsan of $SUDO_USER when root under sudo, else of
 * the invoking user ($HOME, then the password database). */
int state_resolve_dir(char *out, size_t outlen, struct verr *e)
{
	const char *env = getenv("VMSAN_DIR"), *sudo_user = getenv("SUDO_USER");
	const char *home = NULL;
	struct passwd *pw;

	if (env && *env) {
		if (env[0] != '/') {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_STATE_DIR", "give VMSAN_DIR as an absolute path",
				 "VMSAN_DIR '%s' is not an absolute path", env);
			return -1;
		}
		if ((size_t)snprintf(out, outlen, "%s", env) >= outlen)
			goto toolong;
		return 0;
	}
	if (geteuid() == 0 && sudo_user && *sudo_user && strcmp(sudo_user, "root")) {
		pw = getpwnam(sudo_user);
		if (!pw) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_STATE_DIR", "set VMSAN_DIR",
				 "SUDO_USER '%s' has no entry in the password database", sudo_user);
			return -1;
		}
		home = pw->pw_dir;
	} else {
		home = getenv("HOME");
		if (!home || home[0] != '/') {
			pw = getpwuid(getuid());
			home = pw ? pw->pw_dir : NULL;
		}
	}
	if (!home || home[0] != '/') {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_STATE_DIR", "set VMSAN_DIR",
			 "cannot find your home directory for ~/.vmsan");
		return -1;
	}
	if ((size_t)snprintf(out, outlen, "%s/.vmsan", strcmp(home, "/") ? home : "") >= outlen)
		goto toolong;
	return 0;
toolong:
	verr_set(e, VMSAN_EXIT_USAGE, "ERR_STATE_DIR", "use a shorter VMSAN_DIR", "state directory path is too long");
	return -1;
}

bool caller_ids(long *uid, long *gid)
{
	const char *su = getenv("SUDO_UID"), *sg = getenv("SUDO_GID");

	*uid = (long)getuid();
	*gid = (long)getgid();
	if (geteuid() == 0 && su && sg) {
		char *end1, *end2;
		long u = strtol(su, &end1, 10), g = strtol(sg, &end2, 10);

		if (*su && !*end1 && *sg && !*end2 && u > 0 && g >= 0) {
			*uid = u;
			*gid = g;
			return true;
		}
	}
	return false;
}

/* Who the files belong to: us, or the sudo user we act for. */
static void owner_identity(struct state *st)
{
	st->chown_new = caller_ids(&st->owner_uid, &st->owner_gid);
}

int rm_tree_at(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return unlinkat(dfd, name, 0) == 0 || errno == ENOENT ? 0 : -1;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	struct dirent *de;
	int ret = 0;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		/* d_type may be unknown: the recursion tells a directory by opening it */
		if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN ? rm_tree_at(dirfd(d), de->d_name)
								     : unlinkat(dirfd(d), de->d_name, 0))
			ret = -1;
	}
	closedir(d);
	if (unlinkat(dfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
		ret = -1;
	return ret;
}

void utc_iso(time_t t, char out[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int check_dir(const struct state *st, const char *path, int fd, struct verr *e)
{
	struct stat sb;

	if (fstat(fd, &sb) != 0) {
		verr_sys(e, "ERR_STATE_DIR", NULL, "cannot stat %s", path);
		return -1;
	}
	if ((long)sb.st_uid != st->owner_uid) {
		struct passwd *pw = getpwuid(sb.st_uid);

		verr_set(e, VMSAN_EXIT_FAIL, "ERR_STATE_DIR_OWNER", FIX_DIR,
			 "state directory %s belongs to %s (uid %ld), not to you (uid %ld)", path,
			 pw ? pw->pw_name : "another user", (long)sb.st_uid, st->owner_uid);
		return -1;
	}
	if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_STATE_DIR_MODE", FIX_DIR,
			 "state directory %s is writable by others (mode %03o)", path, (unsigned)(sb.st_mode & 0777));
		return -1;
	}
	return 0;
}

static int give_away(const struct state *st, int fd)
{
	if (!st->chown_new)
		return 0;
	return fchown(fd, (uid_t)st->owner_uid, (gid_t)st->owner_gid);
}

static int open_dir(struct state *st, const char *path, bool create, struct verr *e)
{
	int fd;

	if (create && mkdir(path, 0700) == 0) {
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0 && give_away(st, fd) != 0) {
			verr_sys(e, "ERR_STATE_DIR", NULL, "cannot chown %s", path);
			close(fd);
			return -1;
		}
	} else if (create && errno != EEXIST) {
		verr_sys(e, "ERR_STATE_DIR", FIX_DIR, "cannot create %s", path);
		return -1;
	} else {
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0) {
		if (errno == ENOENT)
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_STATE_DIR_MISSING", NULL, "state directory %s does not exist",
				 path);
		else
			verr_sys(e, "ERR_STATE_DIR", FIX_DIR, "cannot open %s", path);
		return -1;
	}
	if (check_dir(st, path, fd, e) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int state_open(struct state *st, bool create, struct verr *e)
{
	int top;

	st->vmsfd = -1;
	owner_identity(st);
	if (state_resolve_dir(st->dir, sizeof(st->dir), e) != 0)
		return -1;
	snprintf(st->vms, sizeof(st->vms), "%s/vms", st->dir);
	top = open_dir(st, st->dir, create, e);
	if (top < 0)
		return -1;
	close(top);
	st->vmsfd = open_dir(st, st->vms, create, e);
	return st->vmsfd < 0 ? -1 : 0;
}

void state_release(struct state *st)
{
	if (st->vmsfd >= 0)
		close(st->vmsfd);
	st->vmsfd = -1;
}

int state_check_record(json_t *rec, const char *id, char *why, size_t n)
{
	json_t *v;
	const char *s;
	static const char *const statuses[] = { "creating", "running", "stopped", "error" };
	bool ok = false;

	if (!json_is_object(rec))
		return snprintf(why, n, "not a JSON object"), -1;
	v = json_object_get(rec, "schemaVersion");
	if (!json_is_integer(v))
		return snprintf(why, n, "no integer schemaVersion"), -1;
	if (json_integer_value(v) > VMSAN_SCHEMA_VERSION)
		return snprintf(why, n, "schemaVersion %lld is newer than this vmsan understands (%d)",
				json_integer_value(v), VMSAN_SCHEMA_VERSION),
		       -1;
	if (json_integer_value(v) < 1)
		return snprintf(why, n, "schemaVersion %lld is not valid", json_integer_value(v)), -1;
	s = json_string_value(json_object_get(rec, "id"));
	if (!s || strcmp(s, id) != 0)
		return snprintf(why, n, "its id does not match its file name"), -1;
	s = json_string_value(json_object_get(rec, "status"));
	for (size_t i = 0; s && i < sizeof(statuses) / sizeof(*statuses); i++)
		ok = ok || strcmp(s, statuses[i]) == 0;
	if (!ok)
		return snprintf(why, n, "status is missing or not one of creating, running, stopped, error"), -1;
	s = json_string_value(json_object_get(rec, "createdAt"));
	if (!s || valid_timestamp(s, why, n) != 0)
		return snprintf(why, n, "createdAt is missing or not a timestamp"), -1;
	v = json_object_get(rec, "pid");
	if (v && !json_is_null(v) &&
	    (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 4194304))
		return snprintf(why, n, "pid is not a process id"), -1;
	v = json_object_get(rec, "pidStartTime");
	if (v && !json_is_null(v) && !json_is_integer(v))
		return snprintf(why, n, "pidStartTime is not an integer"), -1;
	return 0;
}

json_t *state_load(struct state *st, const char *id, struct verr *e)
{
	char name[80], why[256];
	json_error_t je;
	json_t *rec;
	struct stat sb;
	char *buf;
	size_t len;
	int fd;

	if (valid_vm_id(id, why, sizeof(why)) != 0) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VM_ID", "VM ids look like vm-1a2b3c4d; see 'vmsan list'", "%s", why);
		return NULL;
	}
	snprintf(name, sizeof(name), "%s.json", id);
	fd = openat(st->vmsfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_VM_NOT_FOUND", "run 'vmsan list' to see your VMs",
				 "VM not found: %s", id);
		else
			verr_sys(e, "ERR_STATE_READ", NULL, "cannot open %s/%s", st->vms, name);
		return NULL;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > RECORD_MAX) {
		close(fd);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_STATE_CORRUPT",
			 "remove the file if the VM is gone, or restore it from a backup",
			 "VM record %s/%s is not a regular file of at most %d bytes", st->vms, name, RECORD_MAX);
		return NULL;
	}
	/* One read into a buffer: json_loadf's per-character reads cost more
	 * than the parse when listing a thousand records. */
	buf = malloc((size_t)sb.st_size + 1);
	len = 0;
	while (buf && len < (size_t)sb.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)sb.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (!buf || len != (size_t)sb.st_size) {
		free(buf);
		verr_sys(e, "ERR_STATE_READ", NULL, "cannot read %s/%s", st->vms, name);
		return NULL;
	}
	rec = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	if (!rec)
		snprintf(why, sizeof(why), "not valid JSON (%s, line %d)", je.text, je.line);
	if (!rec || state_check_record(rec, id, why, sizeof(why)) != 0) {
		json_decref(rec);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_STATE_CORRUPT",
			 "remove the file if the VM is gone, or restore it from a backup",
			 "VM record %s/%s is corrupt: %s", st->vms, name, why);
		return NULL;
	}
	return rec;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int state_store(struct state *st, const char *id, json_t *rec, bool exclusive, struct verr *e)
{
	char tmp[96], name[80], why[256];
	char *text = NULL;
	int fd = -1, rc = -1;

	if (state_check_record(rec, id, why, sizeof(why)) != 0) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_RECORD", NULL, "record for %s: %s", id, why);
		return -1;
	}
	snprintf(name, sizeof(name), "%s.json", id);
	snprintf(tmp, sizeof(tmp), ".%s.json.%ld.tmp", id, (long)getpid());
	text = json_dumps(rec, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	if (!text) {
		verr_set(e, VMSAN_EXIT_SYS, "ERR_NOMEM", NULL, "cannot serialize record");
		return -1;
	}
	fd = openat(st->vmsfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		verr_sys(e, "ERR_STATE_WRITE", NULL, "cannot create %s/%s", st->vms, tmp);
		goto out;
	}
	if (write_all(fd, text, strlen(text)) != 0 || write_all(fd, "\n", 1) != 0 || give_away(st, fd) != 0 ||
	    fsync(fd) != 0) {
		verr_sys(e, "ERR_STATE_WRITE", "check free space on the state directory's file system",
			 "cannot write %s/%s", st->vms, tmp);
		goto out;
	}
	/* link() refuses to replace: that is what makes "new" exclusive. */
	if (exclusive ? linkat(st->vmsfd, tmp, st->vmsfd, name, 0) : renameat(st->vmsfd, tmp, st->vmsfd, name)) {
		if (errno == EEXIST)
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_VM_EXISTS", NULL, "VM %s already exists", id);
		else
			verr_sys(e, "ERR_STATE_WRITE", NULL, "cannot put %s/%s in place", st->vms, name);
		goto out;
	}
	if (fsync(st->vmsfd) != 0) {
		verr_sys(e, "ERR_STATE_WRITE", NULL, "cannot sync %s", st->vms);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0) {
		close(fd);
		unlinkat(st->vmsfd, tmp, 0); /* gone already after rename */
	}
	free(text);
	return rc;
}

int state_remove(struct state *st, const char *id, struct verr *e)
{
	char name[80];

	snprintf(name, sizeof(name), "%s.json", id);
	if (unlinkat(st->vmsfd, name, 0) != 0 && errno != ENOENT) {
		verr_sys(e, "ERR_STATE_WRITE", NULL, "cannot remove %s/%s", st->vms, name);
		return -1;
	}
	snprintf(name, sizeof(name), "%s.lock", id);
	unlinkat(st->vmsfd, name, 0);
	return fsync(st->vmsfd) == 0 ? 0 : (verr_sys(e, "ERR_STATE_WRITE", NULL, "cannot sync %s", st->vms), -1);
}

int state_lock(struct state *st, const char *id, struct verr *e)
{
	char name[80];
	int fd;

	snprintf(name, sizeof(name), "%s.lock", id);
	fd = openat(st->vmsfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		verr_sys(e, "ERR_STATE_LOCK", NULL, "cannot open lock %s/%s", st->vms, name);
		return -1;
	}
	give_away(st, fd);
	while (flock(fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			verr_sys(e, "ERR_STATE_LOCK", NULL, "cannot lock %s/%s", st->vms, name);
			close(fd);
			return -1;
		}
	}
	return fd;
}

long long proc_start_time(long pid)
{
	char path[64], buf[1024], *p, *q;
	long long start = -1;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* comm may hold spaces and ')': fields resume after the last ')'. */
	p = q = strrchr(buf, ')');
	if (!p || !p[1] || !p[2])
		return -1;
	if (q[2] == 'Z')
		return -1; /* a zombie has exited: not alive for us */
	/* After ") " come field 3 (state) ... field 22 (starttime). */
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p && sscanf(p + 1, "%lld", &start) != 1)
		start = -1;
	return start;
}

/* A record's status is what was true when it was written; what is true now
 * depends on whether the process it names still runs.  The pid is matched
 * with its start time so that a recycled pid does not count. */
void state_derive_status(json_t *rec)
{
	const char *status = json_string_value(json_object_get(rec, "status"));
	json_t *jpid = json_object_get(rec, "pid");
	json_t *jst = json_object_get(rec, "pidStartTime");
	long long pid, st;
	char reason[160];

	if (!status || (strcmp(status, "running") && strcmp(status, "creating")))
		return;
	if (!json_is_integer(jpid)) {
		snprintf(reason, sizeof(reason), "record says %s but names no process", status);
		goto dead;
	}
	pid = json_integer_value(jpid);
	st = proc_start_time((long)pid);
	/* a running VM's process is its VMM: gone, the VM crashed (or was
	 * killed); a creating one's is the create */
	if (st < 0) {
		snprintf(reason, sizeof(reason), "%sprocess %lld is gone",
			 strcmp(status, "running") ? "" : "crashed: ", pid);
		goto dead;
	}
	if (json_is_integer(jst) && json_integer_value(jst) != st) {
		snprintf(reason, sizeof(reason), "%sprocess %lld is gone (its pid now belongs to another process)",
			 strcmp(status, "running") ? "" : "crashed: ", pid);
		goto dead;
	}
	return;
dead:
	json_object_set_new(rec, "recordedStatus", json_string(status));
	json_object_set_new(rec, "status", json_string("error"));
	json_object_set_new(rec, "statusReason", json_string(reason));
}

static int by_created_desc(const void *a, const void *b)
{
	json_t *ra = *(json_t *const *)a, *rb = *(json_t *const *)b;
	int c = strcmp(json_string_value(json_object_get(rb, "createdAt")),
		       json_string_value(json_object_get(ra, "createdAt")));

	return c ? c
		 : strcmp(json_string_value(json_object_get(ra, "id")), json_string_value(json_object_get(rb, "id")));
}

static void add_error(json_t *errors, const char *file, const char *id, const struct verr *e)
{
	json_array_append_new(errors, json_pack("{s:s, s:s?, s:s, s:s}", "file", file, "id", id, "code", e->code,
						"message", e->message));
}

/* Loads one record into the list, or its failure into errors. */
static int collect(struct state *st, const char *id, const char *file, json_t *vms, json_t *errors)
{
	struct verr le = { 0 };
	json_t *rec = state_load(st, id, &le);

	if (!rec) {
		add_error(errors, file, id, &le);
		return 0;
	}
	return json_array_append_new(vms, rec);
}

static int collect_dir(struct state *st, json_t *vms, json_t *errors, struct verr *e)
{
	int dfd = dup(st->vmsfd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		verr_sys(e, "ERR_STATE_READ", NULL, "cannot read %s", st->vms);
		return -1;
	}
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char id[80], why[256];
		struct verr le = { 0 };

		if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".json"))
			continue;
		snprintf(id, sizeof(id), "%.*s", (int)(len - 5), de->d_name);
		if (len - 5 >= sizeof(id) || valid_vm_id(id, why, sizeof(why))) {
			verr_set(&le, VMSAN_EXIT_FAIL, "ERR_STATE_CORRUPT", NULL, "file name is not a VM id");
			add_error(errors, de->d_name, NULL, &le);
			continue;
		}
		if (collect(st, id, de->d_name, vms, errors) != 0) {
			closedir(d);
			verr_set(e, VMSAN_EXIT_SYS, "ERR_NOMEM", NULL, "out of memory listing VMs");
			return -1;
		}
	}
	closedir(d);
	return 0;
}

int state_list(struct state *st, json_t *ids, json_t **vms_out, json_t **errors_out, struct verr *e)
{
	json_t *vms = json_array(), *errors = json_array(), *v;
	size_t i, n;
	json_t **sorted = NULL;

	json_array_foreach(ids, i, v) {
		char why[256];

		if (!json_is_string(v) || valid_vm_id(json_string_value(v), why, sizeof(why))) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_VM_ID", "VM ids look like vm-1a2b3c4d; see 'vmsan list'",
				 "request.ids[%zu]: %s", i, json_is_string(v) ? why : "expected a string");
			goto fail;
		}
	}
	if (state_open(st, false, e) != 0) {
		if (!verr_take(e, "ERR_STATE_DIR_MISSING"))
			goto fail;
		/* no state yet: no VMs */
		json_array_foreach(ids, i, v) {
			struct verr nf = { 0 };

			verr_set(&nf, VMSAN_EXIT_FAIL, "ERR_VM_NOT_FOUND", NULL, "VM not found: %s",
				 json_string_value(v));
			add_error(errors, "", json_string_value(v), &nf);
		}
		goto done;
	}
	if (ids) {
		json_array_foreach(ids, i, v) {
			char file[96];

			snprintf(file, sizeof(file), "%s.json", json_string_value(v));
			if (collect(st, json_string_value(v), file, vms, errors) != 0)
				goto nomem;
		}
	} else if (collect_dir(st, vms, errors, e) != 0) {
		goto fail;
	}
	/* Newest first; status derived from what runs now. */
	n = json_array_size(vms);
	if (n) {
		sorted = calloc(n, sizeof(*sorted));
		if (!sorted)
			goto nomem;
		json_array_foreach(vms, i, v)
			sorted[i] = json_incref(v);
		qsort(sorted, n, sizeof(*sorted), by_created_desc);
		json_array_clear(vms);
		for (i = 0; i < n; i++) {
			state_derive_status(sorted[i]);
			json_array_append_new(vms, sorted[i]);
		}
		free(sorted);
	}
done:
	state_release(st);
	*vms_out = vms;
	*errors_out = errors;
	return 0;
nomem:
	verr_set(e, VMSAN_EXIT_SYS, "ERR_NOMEM", NULL, "out of memory listing VMs");
fail:
	state_release(st);
	json_decref(vms);
	json_decref(errors);
	return -1;
}

/* A new record from fields (copied): a fresh id claimed with link(), so
 * two creates never share one; schemaVersion, createdAt, status
 * "creating" unless given, and the pid's start time.  The record, or NULL
 * with e set. */
json_t *state_new(struct state *st, json_t *fields, struct verr *e)
{
	char when[32], id[16];

	utc_iso(time(NULL), when);
	for (int tries = 0; tries < 16; tries++) {
		unsigned char rnd[4];
		json_t *rec, *pid;

		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
			verr_sys(e, "ERR_RANDOM", NULL, "cannot get random bytes for a VM id");
			return NULL;
		}
		snprintf(id, sizeof(id), "vm-%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
		rec = fields ? json_deep_copy(fields) : json_object();
		json_object_set_new(rec, "id", json_string(id));
		json_object_set_new(rec, "schemaVersion", json_integer(VMSAN_SCHEMA_VERSION));
		json_object_set_new(rec, "createdAt", json_string(when));
		if (!json_object_get(rec, "status"))
			json_object_set_new(rec, "status", json_string("creating"));
		pid = json_object_get(rec, "pid");
		if (json_is_integer(pid) && !json_object_get(rec, "pidStartTime")) {
			long long t = proc_start_time((long)json_integer_value(pid));

			json_object_set_new(rec, "pidStartTime", t >= 0 ? json_integer(t) : json_null());
		}
		if (json_is_null(pid))
			json_object_del(rec, "pidStartTime");
		if (state_store(st, id, rec, true, e) == 0)
			return rec;
		json_decref(rec);
		if (!verr_take(e, "ERR_VM_EXISTS"))
			return NULL;
		/* id taken: draw another */
	}
	verr_set(e, VMSAN_EXIT_FAIL, "ERR_VM_ID", NULL, "could not find a free VM id in 16 tries");
	return NULL;
}
