/* pull.c: an image by reference into the cache.  A reference already
 * pulled, or a manifest already built under another name, is a cache
 * hit; otherwise skopeo fetches the image into a build (an oci: layout
 * is read in place), its manifest and config are checked, and its layers
 * are built into ext4 (build.c) and published. */
#define _GNU_SOURCE
#include "rootfs/rootfs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The one entry of an OCI index that is meant: at the top the one tagged
 * r->tag (any, untagged), in a nested index the linux/amd64 one. */
static json_t *pick_manifest(json_t *idx, const struct ref *r, int depth, struct verr *e)
{
	json_t *ms = json_object_get(idx, "manifests"), *m, *pick = NULL;
	size_t i, nm = 0;
	json_array_foreach(ms, i, m) {
		const char *name = json_string_value(
			json_object_get(json_object_get(m, "annotations"), "org.opencontainers.image.ref.name"));
		json_t *pl = json_object_get(m, "platform");
		bool ok = depth == 0 ? (r->tag[0] ? name && strcmp(name, r->tag) == 0 : true)
				     : (!pl || (json_equal(json_object_get(pl, "os"), json_string("linux")) &&
						json_equal(json_object_get(pl, "architecture"), json_string("amd64"))));
		if (ok) {
			pick = m;
			nm++;
		}
	}
	if (nm == 1)
		return pick;
	if (nm)
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_REF", "name the image with oci:PATH:TAG",
			 "%s holds %zu images: which one?", r->layout, nm);
	else
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_NOT_FOUND", "check the tag", "%s has no image%s%s%s", r->layout,
			 r->tag[0] ? " tagged '" : "", r->tag, r->tag[0] ? "'" : "");
	return NULL;
}

/* An OCI layout on this machine is read in place (no copy): the manifest
 * for tag (or the only one), through an index to linux/amd64 if need be.
 * Every blob's digest is still checked as it is read. */
static int oci_layout_manifest(const struct ref *r, char *path, size_t n, char digest[72], struct verr *e)
{
	char p[PATH_MAX];
	bfmt(p, sizeof(p), "%s/index.json", r->layout);
	json_t *idx = load_json(p, e);
	if (!idx) {
		if (verr_take(e, "ERR_NOENT"))
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_NOT_FOUND", "check the path",
				 "%s is not an OCI image layout (no index.json)", r->layout);
		return -1;
	}
	for (int depth = 0; depth < 3; depth++) {
		json_t *pick = pick_manifest(idx, r, depth, e);
		if (!pick)
			goto fail;
		const char *d = json_string_value(json_object_get(pick, "digest"));
		const char *mt = json_string_value(json_object_get(pick, "mediaType"));
		if (!d || strncmp(d, "sha256:", 7) != 0 || !valid_hex64(d + 7)) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_MANIFEST", NULL, "%s: a manifest without a sha256 digest",
				 r->layout);
			goto fail;
		}
		bfmt(path, n, "%s/blobs/sha256/%s", r->layout, d + 7);
		if (sha256_file(path, digest, e) < 0 || strcmp(digest, d) != 0) {
			if (!verr_isset(e))
				verr_set(e, VMSAN_EXIT_FAIL, "ERR_DIGEST_MISMATCH",
					 "the layout is damaged; copy the image again",
					 "%s: manifest %s does not match its digest", r->layout, d);
			goto fail;
		}
		bool is_index = mt && (strcmp(mt, "application/vnd.oci.image.index.v1+json") == 0 ||
				       strcmp(mt, "application/vnd.docker.distribution.manifest.list.v2+json") == 0);
		json_decref(idx);
		if (!is_index)
			return 0;
		if (!(idx = load_json(path, e)))
			return -1;
	}
	verr_set(e, VMSAN_EXIT_FAIL, "ERR_MANIFEST", NULL, "%s: indexes nested too deeply", r->layout);
fail:
	json_decref(idx);
	return -1;
}

/* The image's manifest (its file and digest), and where its blobs are
 * (blob <hex> is the file <blobs><hex>): in an oci: layout, in place;
 * else as skopeo copies them into the build. */
static int fetch(const struct build *b, const struct ref *r, const struct pull_opts *o, char blobs[PATH_MAX],
		 char manifest[PATH_MAX], char digest[72], struct verr *e)
{
	if (r->layout[0]) {
		bfmt(blobs, PATH_MAX, "%s/blobs/sha256/", r->layout);
		return oci_layout_manifest(r, manifest, PATH_MAX, digest, e);
	}
	bfmt(blobs, PATH_MAX, "%s/blobs", b->tmp);
	if (progress_on)
		fprintf(stderr, "pulling %s\n", r->canon);
	if (skopeo_copy(r, o, blobs, e) < 0)
		return -1;
	bfmt(manifest, PATH_MAX, "%s/manifest.json", blobs);
	if (sha256_file(manifest, digest, e) < 0)
		return -1;
	bfmt(blobs, PATH_MAX, "%s/blobs/", b->tmp);
	return 0;
}

/* The image's config, once its manifest is one we build and the config
 * blob is the one it names. */
static json_t *load_config(const struct ref *r, const char *blobs, json_t *manifest, struct verr *e)
{
	const char *mt = json_string_value(json_object_get(manifest, "mediaType"));
	long sv = (long)json_integer_value(json_object_get(manifest, "schemaVersion"));
	const char *cfgd = json_string_value(json_object_get(json_object_get(manifest, "config"), "digest"));
	char p[PATH_MAX], cdig[72];
	if (sv != 2 || !cfgd || strncmp(cfgd, "sha256:", 7) != 0 || !valid_hex64(cfgd + 7) ||
	    (mt && strcmp(mt, "application/vnd.oci.image.manifest.v1+json") != 0 &&
	     strcmp(mt, "application/vnd.docker.distribution.manifest.v2+json") != 0))
		return verr_set(e, VMSAN_EXIT_FAIL, "ERR_MANIFEST",
				"only OCI and Docker v2 schema 2 image manifests are supported",
				"%s has an unsupported manifest (%s)", r->canon, mt ? mt : "no media type"),
		       NULL;
	bfmt(p, sizeof(p), "%s%s", blobs, cfgd + 7);
	if (sha256_file(p, cdig, e) < 0 || strcmp(cdig, cfgd) != 0) {
		if (!verr_isset(e))
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_DIGEST_MISMATCH", "pull the image again",
				 "%s: the config blob is %s, the manifest says %s", r->canon, cdig, cfgd);
		return NULL;
	}
	return load_json(p, e);
}

/* What a VM runs, from the image's config, under our names. */
static json_t *exec_config(json_t *config)
{
	json_t *cc = json_object_get(config, "config");
	json_t *out = json_object();
	static const struct {
		const char *from, *to;
	} keys[] = {
		{ "Env", "env" },
		{ "WorkingDir", "workingDir" },
		{ "User", "user" },
		{ "Entrypoint", "entrypoint" },
		{ "Cmd", "cmd" },
		{ "ExposedPorts", "exposedPorts" },
		{ "StopSignal", "stopSignal" },
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
		json_t *v = json_object_get(cc, keys[i].from);
		if (v && !json_is_null(v))
			json_object_set(out, keys[i].to, v);
	}
	return out;
}

/* The image's record (image.json), before its build adds the layers and
 * sizes. */
static json_t *new_record(const struct ref *r, const char *digest, json_t *manifest, json_t *config)
{
	const char *cfgd = json_string_value(json_object_get(json_object_get(manifest, "config"), "digest"));
	char when[32];
	utc_iso(time(NULL), when);
	json_t *rec =
		json_pack("{s:i, s:s, s:s, s:s, s:o, s:{s:O, s:O}, s:s, s:s}", "schemaVersion", 1, "digest", digest,
			  "source", r->canon, "configDigest", cfgd, "config", exec_config(config), "platform", "os",
			  json_object_get(config, "os"), "architecture", json_object_get(config, "architecture"),
			  "builtAt", when, "builder", "vmsan-rootfs " VMSAN_VERSION);
	json_object_set_new(rec, "format", json_integer(IMAGE_FORMAT));
	return rec;
}

/* The image a reference was last pulled as, if it is still in the cache. */
static json_t *cached_ref(const struct cache *c, const char *canon)
{
	struct verr le = { 0 };
	char *have = lookup_ref(c, canon);
	json_t *rec = have ? load_image(c, have + 7, &le) : NULL;
	free(have);
	return rec;
}

/* One pull of a reference at a time: refs/<key>.lock. */
static int ref_lock(const struct cache *c, const char *canon, struct verr *e)
{
	char key[1800], lockp[PATH_MAX];
	ref_key(canon, key, sizeof(key));
	bfmt(lockp, sizeof(lockp), "%s/refs/%s.lock", c->dir, key);
	return lock_file(c, lockp, e);
}

json_t *pull_image(struct cache *c, const char *refstr, const struct pull_opts *o, bool force, uint64_t disk,
		   struct verr *e)
{
	double t0 = now_s();
	struct ref r;
	struct build b = { 0 };
	char blobs[PATH_MAX], p[PATH_MAX], digest[72];
	json_t *rec = NULL, *manifest = NULL, *config = NULL;
	struct verr le = { 0 };
	bool ok = false, cached = true;
	int lk;

	if (parse_ref(refstr, &r, e) < 0 || (lk = ref_lock(c, r.canon, e)) < 0)
		return NULL;
	if (!force && (rec = cached_ref(c, r.canon))) {
		ok = check_disk(rec, disk, r.canon, e) == 0;
		goto out;
	}
	sweep_tmp(c);
	if (new_build(&b, c, disk ? disk : DEFAULT_DISK, e) < 0 || fetch(&b, &r, o, blobs, p, digest, e) < 0 ||
	    !(manifest = load_json(p, e)))
		goto out;
	/* Already built under another name (or by a racing pull)? */
	if ((rec = load_image(c, digest + 7, &le))) {
		ok = check_disk(rec, disk, r.canon, e) == 0 && store_ref(c, r.canon, digest, e) == 0;
		goto out;
	}
	if (!(config = load_config(&r, blobs, manifest, e)))
		goto out;
	rec = new_record(&r, digest, manifest, config);
	cached = false;
	if (build_from_manifest(&b, blobs, manifest, config, rec, e) < 0 || publish(&b, digest + 7, rec, e) < 0 ||
	    store_ref(c, r.canon, digest, e) < 0)
		goto out;
	json_decref(rec);
	ok = (rec = load_image(c, digest + 7, e)) != NULL;
out:
	json_decref(manifest);
	json_decref(config);
	drop_build(&b);
	close(lk);
	if (!ok) {
		json_decref(rec);
		return NULL;
	}
	return answer(rec, r.canon, cached, t0);
}
