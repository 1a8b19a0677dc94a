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
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return verr_sys(e, "ERR_SERVE_STATE", NULL, "cannot make %s", path), -1;
	snapdir = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (snapdir < 0)
		return verr_sys(e, "ERR_SERVE_STATE", NULL, "cannot open %s", path), -1;
	return 0;
}

static json_t *load(const char *id)
{
	char name[96];
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
	char name[96], tmp[96];
	int fd, rc = -1;

	snprintf(name, sizeof name, "%s.json", id);
	snprintf(tmp, sizeof tmp, ".%s.tmp", id);
	fd = openat(snapdir, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0 && json_dumpfd(j, fd, JSON_COMPACT) == 0 && fsync(fd) == 0 && renameat(snapdir, tmp, snapdir, name) == 0)
		rc = 0;
	else
		verr_sys(e, "ERR_SERVE_STATE", NULL, "cannot store the record of snapshot %s", id);
	if (fd >= 0)
		close(fd);
	if (rc)
		unlinkat(snapdir, tmp, 0);
	return rc;
}

/* The snapshot of owner that template names (its id or one of its names):
 * its id copied to out. */
bool snap_find(const char *template, const char *owner, char *out, size_t n)
{
	/* A dup shares the offset: rewind, or a second walk sees nothing. */
	DIR *d = fdopendir(dup(snapdir));
	struct dirent *de;
	bool found = false;

	if (d)
		rewinddir(d);
	while (d && !found && (de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".json"))
			continue;
		char id[96];
		snprintf(id, sizeof id, "%.*s", (int)(len - 5), de->d_name);
		json_t *j = load(id), *names = json_object_get(j, "names"), *x;
		size_t i;
		if (j && !strcmp(json_string_value(json_object_get(j, "owner")) ?: "", owner)) {
			found = !strcmp(id, template);
			json_array_foreach(names, i, x)
				found = found || !strcmp(json_string_value(x) ?: "", template);
			if (found)
				snprintf(out, n, "%s", id);
		}
		json_decref(j);
	}
	if (d)
		closedir(d);
	return found;
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

enum MHD_Result snap_list(struct req *q, const char *owner)
{
	const char *want_box = req_query(q, "sandboxID"), *want_name = req_query(q, "name");
	/* A dup shares the offset: rewind, or a second walk sees nothing. */
	DIR *d = fdopendir(dup(snapdir));
	struct dirent *de;
	json_t *out = json_array();

	if (d)
		rewinddir(d);
	while (d && (de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".json"))
			continue;
		char id[96];
		snprintf(id, sizeof id, "%.*s", (int)(len - 5), de->d_name);
		json_t *j = load(id), *names = json_object_get(j, "names"), *x;
		size_t i;
		bool named = !want_name;
		json_array_foreach(names, i, x)
			named = named || !strcmp(json_string_value(x) ?: "", want_name);
		if (j && !strcmp(json_string_value(json_object_get(j, "owner")) ?: "", owner) && named &&
		    (!want_box || !strcmp(json_string_value(json_object_get(j, "sandboxID")) ?: "", want_box)))
			json_array_append_new(out, json_pack("{s:s, s:O}", "snapshotID", id, "names", names));
		json_decref(j);
	}
	if (d)
		closedir(d);
	return http_json(q, 200, out);
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
		json_array_append_new(out, doc ? json_pack("{s:o}", "sandbox", doc)
					       : json_pack("{s:{s:i, s:s}}", "error", "code", 500, "message", e.message));
	}
	const char *rm[] = { "rm", sid, NULL };
	json_decref(run_vmsan("snapshot", rm, &e));
	free(sid);
	return http_json(q, 200, out);
}
