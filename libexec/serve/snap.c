/* E2B's snapshots and fork, as vmsan snapshots: POST /sandboxes/{id}/
 * snapshots is vmsan snapshot create (the sandbox paused, saved, resumed),
 * a snapshot's id or name is a template (vmsan create --snapshot: its
 * processes, memory and files, a new id and token), GET /snapshots lists
 * the key's, and fork is a snapshot then that many creates from it.
 *
 * Records of whose snapshot is whose: $VMSAN_DIR/serve/snapshots/<id>.json
 * (0600 in a 0700 directory), {owner, sandboxID, names}. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "serve/serve.h"

#define NAME_MAX_LEN 128
#define FORK_MAX 10

static int snapdir = -1;

int snap_init(const char *statedir, struct verr *e)
{
	char path[4200];

	snprintf(path, sizeof path, "%s/serve/snapshots", statedir);
	snapdir = serve_dir(path, e);
	return snapdir < 0 ? -1 : 0;
}

static json_t *load(const char *id)
{
	char name[128];
	json_error_t je;
	int fd;
	json_t *j;

	snprintf(name, sizeof name, "%s.json", id);
	fd = openat(snapdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	j = json_loadfd(fd, JSON_REJECT_DUPLICATES, &je);
	close(fd);
	return json_is_object(j) ? j : (json_decref(j), NULL);
}

static int store(const char *id, json_t *j, struct verr *e)
{
	char name[128], tmp[128];
	int fd, rc = -1;

	snprintf(name, sizeof name, "%s.json", id);
	snprintf(tmp, sizeof tmp, ".%s.tmp", id);
	fd = openat(snapdir, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0 && json_dumpfd(j, fd, JSON_COMPACT) == 0 && fsync(fd) == 0 &&
	    renameat(snapdir, tmp, snapdir, name) == 0)
		rc = 0;
	else
		verr_sys(e, "ERR_SERVE_STATE", NULL, "cannot store the record of snapshot %s", id);
	if (fd >= 0)
		close(fd);
	if (rc)
		unlinkat(snapdir, tmp, 0);
	return rc;
}

static json_t *load(const char *id);

/* fn(id, record, arg) for each snapshot record of owner, until it returns
 * true. */
static void each_of(const char *owner, bool (*fn)(const char *, json_t *, void *), void *arg)
{
	/* A dup shares the offset: rewind, or a second walk sees nothing. */
	DIR *d = fdopendir(dup(snapdir));
	struct dirent *de;
	bool stop = false;

	if (!d)
		return;
	rewinddir(d);
	while (!stop && (de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char id[96];
		if (de->d_name[0] == '.' || len < 6 || len > 90 || strcmp(de->d_name + len - 5, ".json"))
			continue;
		snprintf(id, sizeof id, "%.*s", (int)(len - 5), de->d_name);
		json_t *j = load(id);
		if (j && !strcmp(json_string_value(json_object_get(j, "owner")) ?: "", owner))
			stop = fn(id, j, arg);
		json_decref(j);
	}
	closedir(d);
}

static bool has_name(json_t *rec, const char *name)
{
	json_t *x;
	size_t i;

	json_array_foreach(json_object_get(rec, "names"), i, x)
		if (!strcmp(json_string_value(x) ?: "", name))
			return true;
	return false;
}

struct find {
	const char *template;
	char *out;
	size_t n;
	bool found;
};

static bool find_one(const char *id, json_t *rec, void *arg)
{
	struct find *f = arg;

	if (strcmp(id, f->template) && !has_name(rec, f->template))
		return false;
	snprintf(f->out, f->n, "%s", id);
	return f->found = true;
}

/* The snapshot of owner that template names (its id or one of its names):
 * its id copied to out. */
bool snap_find(const char *template, const char *owner, char *out, size_t n)
{
	struct find f = { template, out, n, false };

	each_of(owner, find_one, &f);
	return f.found;
}

/* vmsan snapshot create ID: the snapshot's id, or NULL. */
static char *take_snapshot(const char *id, struct verr *e)
{
	const char *args[] = { "create", id, NULL };
	json_t *r = run_vmsan("snapshot", args, e);
	const char *s = json_string_value(json_object_get(r, "snapshotId"));
	char *out = s ? strdup(s) : NULL, why[128];

	if (r && (!out || valid_snapshot_id(out, why, sizeof why) != 0)) {
		free(out);
		out = NULL;
		verr_fail(e, VMSAN_EXIT_FAIL, "ERR_COMMAND", NULL, "vmsan snapshot create named no snapshot");
	}
	json_decref(r);
	return out;
}

enum MHD_Result snap_create(struct req *q, const struct box *b, json_t *body)
{
	const char *name = json_string_value(json_object_get(body, "name")), *k;
	static const char *const known[] = { "name", NULL };
	struct verr e = { 0 };
	char *sid;
	json_t *rec, *names;
	enum MHD_Result rc;
	char other[96];

	if ((k = body_unknown_key(body, known)))
		return http_error(q, 400, "unknown field '%.64s'", k);
	if (json_object_get(body, "name") && (!name || !*name || strlen(name) > NAME_MAX_LEN ||
					      strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != strlen(name)))
		return http_error(q, 400, "name: 1-128 of a-z, 0-9, '-', '_' and '.'");
	if (name && snap_find(name, b->owner, other, sizeof other))
		return http_error(q, 409, "a snapshot is named '%s' already", name);
	if (!(sid = take_snapshot(b->id, &e)))
		return http_error(q, 500, "%s", e.message);
	names = name ? json_pack("[s]", name) : json_array();
	rec = json_pack("{s:s, s:s, s:O}", "owner", b->owner, "sandboxID", b->id, "names", names);
	if (store(sid, rec, &e) != 0) {
		const char *rm[] = { "rm", sid, NULL };
		json_decref(run_vmsan("snapshot", rm, &(struct verr){ 0 }));
		rc = http_error(q, 500, "%s", e.message);
	} else {
		rc = http_json(q, 201, json_pack("{s:s, s:O}", "snapshotID", sid, "names", names));
	}
	json_decref(rec);
	json_decref(names);
	free(sid);
	return rc;
}

struct listing {
	const char *sandbox, *name;
	json_t *out;
};

static bool list_one(const char *id, json_t *rec, void *arg)
{
	struct listing *l = arg;

	if ((!l->name || has_name(rec, l->name)) &&
	    (!l->sandbox || !strcmp(json_string_value(json_object_get(rec, "sandboxID")) ?: "", l->sandbox)))
		json_array_append_new(
			l->out, json_pack("{s:s, s:O}", "snapshotID", id, "names", json_object_get(rec, "names")));
	return false;
}

enum MHD_Result snap_list(struct req *q, const char *owner)
{
	struct listing l = { req_query(q, "sandboxID"), req_query(q, "name"), json_array() };

	each_of(owner, list_one, &l);
	return http_json(q, 200, l.out);
}

/* Fork: the sandbox snapshotted (and resumed), count sandboxes created from
 * it, the snapshot removed.  Each result is a sandbox or an error. */
enum MHD_Result snap_fork(struct req *q, const struct box *b, json_t *body)
{
	static const char *const known[] = { "timeout", "count", NULL };
	json_t *jc = json_object_get(body, "count"), *jt = json_object_get(body, "timeout"), *out;
	json_int_t count = jc && !json_is_null(jc) ? json_integer_value(jc) : 1;
	json_int_t timeout = jt && !json_is_null(jt) ? json_integer_value(jt) : SERVE_TIMEOUT_DEFAULT;
	struct verr e = { 0 };
	const char *k;
	char *sid;

	if ((k = body_unknown_key(body, known)))
		return http_error(q, 400, "unknown field '%.64s'", k);
	if ((jc && !json_is_null(jc) && !json_is_integer(jc)) || count < 1 || count > FORK_MAX)
		return http_error(q, 400, "count: 1 to %d", FORK_MAX);
	if ((jt && !json_is_null(jt) && !json_is_integer(jt)) || timeout < 1 || timeout > SERVE_TIMEOUT_MAX)
		return http_error(q, 400, "timeout: expected whole seconds, 1 to 86400");
	if (!(sid = take_snapshot(b->id, &e)))
		return http_error(q, 500, "%s", e.message);
	out = json_array();
	for (json_int_t i = 0; i < count; i++) {
		struct box nb = *b;
		json_t *doc;
		e = (struct verr){ 0 };
		nb.metadata = b->metadata;
		nb.traffic_token[0] = '\0';
		const char *args[] = { "--snapshot", sid, NULL };
		doc = sandbox_from(&nb, args, (long)timeout, &e);
		json_array_append_new(out,
				      doc ? json_pack("{s:o}", "sandbox", doc)
					  : json_pack("{s:{s:i, s:s}}", "error", "code", 500, "message", e.message));
	}
	const char *rm[] = { "rm", sid, NULL };
	json_decref(run_vmsan("snapshot", rm, &e));
	free(sid);
	return http_json(q, 200, out);
}
