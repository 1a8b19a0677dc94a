/* images.c: the cached images listed (with their references and the VMs
 * that use them), found by digest or reference, and removed. */
#define _GNU_SOURCE
#include "rootfs/rootfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Which VMs use which image: records carry "imageDigest". */
static json_t *users_by_digest(struct verr *e)
{
	struct state st = { .vmsfd = -1 };
	json_t *vms = NULL, *errors = NULL, *map = json_object();
	if (state_list(&st, NULL, &vms, &errors, e) != 0) {
		json_decref(map);
		return NULL;
	}
	size_t i;
	json_t *vm;
	json_array_foreach(vms, i, vm) {
		const char *d = json_string_value(json_object_get(vm, "imageDigest"));
		const char *id = json_string_value(json_object_get(vm, "id"));
		if (!d || !id)
			continue;
		json_t *a = json_object_get(map, d);
		if (!a)
			json_object_set_new(map, d, a = json_array());
		json_array_append_new(a, json_string(id));
	}
	json_decref(vms);
	json_decref(errors);
	return map;
}

/* Which references name which image: refs/<key>.json carry "digest". */
static json_t *refs_by_digest(const struct cache *c)
{
	json_t *refs = json_object(); /* digest -> [ref] */
	char p[PATH_MAX];
	bfmt(p, sizeof(p), "%s/refs", c->dir);
	DIR *d = opendir(p);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0)
			continue;
		char f[PATH_MAX], name[1800];
		bfmt(f, sizeof(f), "%s/%s", p, de->d_name);
		json_t *j = json_load_file(f, 0, NULL);
		const char *dg = json_string_value(json_object_get(j, "digest"));
		de->d_name[l - 5] = '\0';
		ref_unkey(de->d_name, name, sizeof(name));
		if (dg) {
			json_t *a = json_object_get(refs, dg);
			if (!a)
				json_object_set_new(refs, dg, a = json_array());
			json_array_append_new(a, json_string(name));
		}
		json_decref(j);
	}
	if (d)
		closedir(d);
	return refs;
}

json_t *list_images(const struct cache *c, struct verr *e)
{
	json_t *users = users_by_digest(e);
	if (!users)
		return NULL;
	json_t *refs = refs_by_digest(c);
	json_t *out = json_array();
	struct dirent *de;
	DIR *d = opendir(c->dir);
	while (d && (de = readdir(d))) {
		if (!valid_hex64(de->d_name))
			continue;
		struct verr le = { 0 };
		json_t *rec = load_image(c, de->d_name, &le);
		if (!rec) {
			fprintf(stderr, "%s: images/%s: %s\n", vmsan_prog, de->d_name, le.message);
			continue;
		}
		const char *dg = json_string_value(json_object_get(rec, "digest"));
		json_t *a = dg ? json_object_get(refs, dg) : NULL;
		json_object_set_new(rec, "refs", a ? json_incref(a) : json_array());
		a = dg ? json_object_get(users, dg) : NULL;
		json_object_set_new(rec, "usedBy", a ? json_incref(a) : json_array());
		struct stat sb;
		const char *path = json_string_value(json_object_get(rec, "path"));
		if (path && stat(path, &sb) == 0)
			json_object_set_new(rec, "allocatedBytes", json_integer((json_int_t)sb.st_blocks * 512));
		json_array_append_new(out, rec);
	}
	if (d)
		closedir(d);
	json_decref(refs);
	json_decref(users);
	return out;
}

static int by_built_desc(const void *a, const void *b)
{
	const char *x = json_string_value(json_object_get(*(json_t *const *)a, "builtAt"));
	const char *y = json_string_value(json_object_get(*(json_t *const *)b, "builtAt"));
	return strcmp(y ? y : "", x ? x : "");
}

json_t *sorted(json_t *arr)
{
	size_t n = json_array_size(arr);
	json_t **v = malloc((n ? n : 1) * sizeof(*v));
	if (!v)
		return arr;
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(arr, i));
	qsort(v, n, sizeof(*v), by_built_desc);
	json_t *out = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(out, v[i]);
	free(v);
	json_decref(arr);
	return out;
}

json_t *find_image(json_t *imgs, const char *what, struct verr *e)
{
	/* By digest (full or a unique prefix of 4+ hex digits) or by reference. */
	const char *hex = strncmp(what, "sha256:", 7) == 0 ? what + 7 : what;
	size_t hl = strlen(hex);
	struct ref r;
	struct verr pe = { 0 };
	bool isref = parse_ref(what, &r, &pe) == 0;
	json_t *hit = NULL, *img;
	size_t i, nhit = 0;
	json_array_foreach(imgs, i, img) {
		const char *d = json_string_value(json_object_get(img, "digest"));
		bool m = false;
		if (hl >= 4 && d && strncmp(d + 7, hex, hl) == 0 && strspn(hex, "0123456789abcdef") == hl)
			m = true;
		size_t k;
		json_t *rf;
		json_array_foreach(json_object_get(img, "refs"), k, rf)
			if ((isref && strcmp(json_string_value(rf), r.canon) == 0) ||
			    strcmp(json_string_value(rf), what) == 0)
				m = true;
		if (m) {
			hit = img;
			nhit++;
		}
	}
	if (nhit == 1)
		return hit;
	verr_set(e, VMSAN_EXIT_FAIL, nhit ? "ERR_IMAGE_AMBIGUOUS" : "ERR_IMAGE_NOT_FOUND",
		 nhit ? "give more digits of the digest" : "'vmsan images' lists the images",
		 nhit ? "'%s' names more than one image" : "no image '%s' in the cache", what);
	return NULL;
}

int drop_image(const struct cache *c, json_t *img, struct verr *e)
{
	const char *d = json_string_value(json_object_get(img, "digest"));
	char p[PATH_MAX], key[1800];
	size_t i;
	json_t *rf;
	json_array_foreach(json_object_get(img, "refs"), i, rf) {
		ref_key(json_string_value(rf), key, sizeof(key));
		bfmt(p, sizeof(p), "%s/refs/%s.json", c->dir, key);
		unlink(p);
		bfmt(p, sizeof(p), "%s/refs/%s.lock", c->dir, key);
		unlink(p);
		bfmt(p, sizeof(p), "%s/refs/%s.busybox", c->dir, key); /* the base image's */
		unlink(p);
	}
	/* Move aside first: a half-deleted image must never look whole. */
	char from[PATH_MAX], to[PATH_MAX];
	bfmt(from, sizeof(from), "%s/%s", c->dir, d + 7);
	bfmt(to, sizeof(to), "%s/tmp/%d.rm-%.12s", c->dir, (int)getpid(), d + 7);
	if (rename(from, to) != 0 || rm_tree_at(AT_FDCWD, to) != 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot remove %s", from);
		return -1;
	}
	return 0;
}

json_t *removal_reply(json_t *removed, json_t *reply, struct verr *e)
{
	if (verr_isset(e)) {
		size_t n = json_array_size(removed);
		size_t l = strlen(e->message);
		if (n)
			snprintf(e->message + l, sizeof(e->message) - l, " (after removing %zu image(s), the last %s)",
				 n, json_string_value(json_array_get(removed, n - 1)));
		json_decref(removed);
		json_decref(reply);
		return NULL;
	}
	json_object_set_new(reply, "removed", removed);
	return reply;
}
