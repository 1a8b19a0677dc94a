/* vmsan-rootfs: OCI images into ext4 root disks, unprivileged, cached by
 * manifest digest in $VMSAN_DIR/images (rootfs/cache.c says how).
 *
 *   pull      an image by reference or runtime, built unless cached
 *   base      the offline base image (busybox-static)
 *   vmdisk    a VM's own writable disk, and its agent's token
 *   inspect, list, remove, prune   the cache
 *
 * This file is the core: it reads the requests and picks the runtime's
 * image.  skopeo fetches (rootfs/skopeo.c); the layers are applied
 * in-process (rootfs/build.c over lib/layer.c, lib/ext4.c); rootfs/rootfs.h
 * says which file does what.
 */
#define _GNU_SOURCE
#include "rootfs/rootfs.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- request fields -------------------------------------------------- */

static int read_disk(struct jr *r, uint64_t *disk)
{
	const char *s = jr_string(r, "diskSize", JR_OPTIONAL, valid_size);
	*disk = 0;
	if (!s)
		return verr_isset(r->e) ? -1 : 0;
	unsigned long long b;
	char why[128];
	if (parse_size(s, 30, &b, why, sizeof(why)) != 0 || b < MIN_DISK || b > MAX_DISK)
		return verr_fail(r->e, VMSAN_EXIT_USAGE, "ERR_DISK_SIZE",
				 "give a size between 16M and 1T, such as 10G (a bare number is GiB)",
				 "disk size '%s' is out of range", s);
	*disk = b;
	return 0;
}

static int valid_path(const char *s, char *why, size_t n)
{
	if (!*s || strlen(s) >= PATH_MAX) {
		snprintf(why, n, "expected a file path");
		return -1;
	}
	return 0;
}

/* ---- ops ------------------------------------------------------------- */

static const char *runtime_default(const char *rt)
{
	static const struct {
		const char *name, *ref;
	} map[] = {
		{ "node22", "docker.io/library/node:22" },
		{ "node24", "docker.io/library/node:24" },
		{ "python3.13", "docker.io/library/python:3.13-slim" },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(*map); i++)
		if (strcmp(map[i].name, rt) == 0)
			return map[i].ref;
	return NULL;
}

/* A runtime's image: its VMSAN_RUNTIME_<NAME> override, the base image,
 * or its default reference. */
static json_t *pull_runtime(struct cache *c, const char *rt, const struct pull_opts *o, bool force, uint64_t disk,
			    struct verr *e)
{
	char env[64], *q;
	snprintf(env, sizeof(env), "VMSAN_RUNTIME_%s", rt);
	for (q = env; *q; q++)
		*q = *q == '.' ? '_' : (*q >= 'a' && *q <= 'z') ? (char)(*q - 32) : *q;
	const char *over = getenv(env);
	if (strcmp(rt, "base") == 0 && !(over && *over))
		return base_image(c, NULL, disk, e);
	const char *def = runtime_default(rt);
	if (!def && strcmp(rt, "base") != 0)
		return verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_RUNTIME",
				"use one of: base, node22, node24, python3.13", "unknown runtime '%s'", rt),
		       NULL;
	return pull_image(c, over && *over ? over : def, o, force, disk, e);
}

static json_t *op_pull(struct jr *r, struct verr *e)
{
	bool force = false, tls = true, prog = false;
	uint64_t disk;
	const char *ref = jr_string(r, "ref", JR_OPTIONAL, NULL);
	const char *rt = jr_string(r, "runtime", JR_OPTIONAL, NULL);
	const char *auth = jr_string(r, "authFile", JR_OPTIONAL, valid_path);
	const char *certs = jr_string(r, "certDir", JR_OPTIONAL, valid_path);
	if (jr_bool(r, "pull", JR_OPTIONAL, &force) < 0 || jr_bool(r, "tlsVerify", JR_OPTIONAL, &tls) < 0 ||
	    jr_bool(r, "progress", JR_OPTIONAL, &prog) < 0 || read_disk(r, &disk) < 0 || jr_end(r))
		return NULL;
	progress_on = prog && isatty(STDERR_FILENO);
	if (!!ref == !!rt)
		return verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION", "give exactly one of them",
				"request: give \"ref\" or \"runtime\""),
		       NULL;
	struct cache c;
	if (cache_open(&c, true, e) < 0)
		return NULL;
	json_t *out;
	struct pull_opts o = { tls, auth, certs };
	if (rt) {
		out = pull_runtime(&c, rt, &o, force, disk, e);
		if (out)
			json_object_set_new(out, "runtime", json_string(rt));
	} else {
		out = pull_image(&c, ref, &o, force, disk, e);
	}
	state_release(&c.st);
	return out;
}

static json_t *op_build_base(struct jr *r, struct verr *e)
{
	uint64_t disk;
	const char *bb = jr_string(r, "busybox", JR_OPTIONAL, valid_path);
	if (read_disk(r, &disk) < 0 || jr_end(r))
		return NULL;
	struct cache c;
	if (cache_open(&c, true, e) < 0)
		return NULL;
	json_t *out = base_image(&c, bb, disk, e);
	state_release(&c.st);
	return out;
}

/* A VM's own disk (rootfs/vmdisk.c).  With "pull", the image is pulled
 * first (a pull request, nested): one process for both, as create wants. */
static json_t *op_vmdisk(struct jr *r, struct verr *e)
{
	struct vmdisk v = { .t0 = now_s() };
	struct cache c;
	json_t *pullreq, *out = NULL;

	v.id = jr_string(r, "id", JR_REQUIRED, valid_vm_id);
	v.image = jr_string(r, "image", JR_OPTIONAL, NULL);
	v.guest = jr_string(r, "guestDir", JR_REQUIRED, valid_path);
	pullreq = jr_object(r, "pull", JR_OPTIONAL);
	if (read_disk(r, &v.disk) < 0 || jr_end(r))
		return NULL;
	if (!v.disk)
		v.disk = DEFAULT_DISK;
	if (pullreq && v.image)
		return verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION", "give one of them",
				"request: \"image\" and \"pull\" cannot be combined"),
		       NULL;
	if (pullreq) {
		struct jr pr;
		jr_init(&pr, pullreq, "request.pull", e);
		if (!(v.img = op_pull(&pr, e)))
			return NULL;
		v.image = json_string_value(json_object_get(v.img, "digest"));
	}
	if (v.image && (strncmp(v.image, "sha256:", 7) || !valid_hex64(v.image + 7)))
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION", "give the digest vmsan-rootfs pull replied",
			 "image: '%.80s' is not a sha256: digest", v.image);
	else if (cache_open(&c, true, e) == 0) {
		out = vmdisk_make(&c, &v, e);
		state_release(&c.st);
	}
	json_decref(v.img);
	return out;
}

static json_t *op_list(struct jr *r, struct verr *e)
{
	if (jr_end(r))
		return NULL;
	struct cache c;
	if (cache_open(&c, false, e) < 0) {
		if (verr_take(e, "ERR_STATE_DIR_MISSING"))
			return json_pack("{s:[]}", "images");
		return NULL;
	}
	json_t *imgs = list_images(&c, e);
	state_release(&c.st);
	return imgs ? json_pack("{s:o}", "images", sorted(imgs)) : NULL;
}

static json_t *op_inspect(struct jr *r, struct verr *e)
{
	const char *what = jr_string(r, "image", JR_REQUIRED, NULL);
	if (!what || jr_end(r))
		return NULL;
	struct cache c;
	if (cache_open(&c, false, e) < 0) {
		if (verr_take(e, "ERR_STATE_DIR_MISSING"))
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_NOT_FOUND", "'vmsan images' lists the images",
				 "no image '%s' in the cache", what);
		return NULL;
	}
	json_t *imgs = list_images(&c, e), *out = NULL;
	state_release(&c.st);
	json_t *img = imgs ? find_image(imgs, what, e) : NULL;
	if (img)
		out = json_pack("{s:O}", "image", img);
	json_decref(imgs);
	return out;
}

static json_t *op_remove(struct jr *r, struct verr *e)
{
	bool force = false;
	json_t *names = jr_array(r, "images", JR_REQUIRED, 256);
	if (!names || jr_bool(r, "force", JR_OPTIONAL, &force) < 0 || jr_end(r))
		return NULL;
	struct cache c;
	if (cache_open(&c, false, e) < 0) {
		if (verr_take(e, "ERR_STATE_DIR_MISSING"))
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_NOT_FOUND", "'vmsan images' lists the images",
				 "the image cache is empty");
		return NULL;
	}
	int lk;
	char lp[PATH_MAX];
	bfmt(lp, sizeof(lp), "%s/lock", c.dir);
	json_t *imgs = NULL, *removed = json_array();
	if ((lk = lock_file(&c, lp, e)) < 0 || !(imgs = list_images(&c, e)))
		goto out;
	size_t i;
	json_t *n;
	/* All names are checked before anything is removed. */
	json_t *victims = json_array();
	json_array_foreach(names, i, n) {
		if (!json_is_string(n)) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION", NULL, "request.images[%zu]: expected a string",
				 i);
			break;
		}
		json_t *img = find_image(imgs, json_string_value(n), e);
		if (!img)
			break;
		json_t *users = json_object_get(img, "usedBy");
		if (json_array_size(users) && !force) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_IN_USE",
				 "remove those VMs first, or force it (the VMs keep working until they stop)",
				 "image %s is used by %zu VM(s), such as %s", json_string_value(n),
				 json_array_size(users), json_string_value(json_array_get(users, 0)));
			break;
		}
		json_array_append(victims, img);
	}
	if (!verr_isset(e)) {
		json_t *img;
		json_array_foreach(victims, i, img) {
			if (drop_image(&c, img, e) < 0)
				break;
			json_array_append(removed, json_object_get(img, "digest"));
		}
	}
	json_decref(victims);
out:
	json_decref(imgs);
	if (lk >= 0)
		close(lk);
	state_release(&c.st);
	return removal_reply(removed, json_object(), e);
}

static json_t *op_prune(struct jr *r, struct verr *e)
{
	bool all = false;
	if (jr_bool(r, "all", JR_OPTIONAL, &all) < 0 || jr_end(r))
		return NULL;
	struct cache c;
	if (cache_open(&c, false, e) < 0) {
		if (verr_take(e, "ERR_STATE_DIR_MISSING"))
			return json_pack("{s:[], s:I}", "removed", "freedBytes", (json_int_t)0);
		return NULL;
	}
	char lp[PATH_MAX];
	bfmt(lp, sizeof(lp), "%s/lock", c.dir);
	json_t *imgs = NULL, *removed = json_array();
	uint64_t freed = 0;
	int lk = lock_file(&c, lp, e);
	if (lk >= 0 && (imgs = list_images(&c, e))) {
		sweep_tmp(&c);
		size_t i;
		json_t *img;
		json_array_foreach(imgs, i, img) {
			if (json_array_size(json_object_get(img, "usedBy")))
				continue;
			if (!all && json_array_size(json_object_get(img, "refs")))
				continue;
			if (drop_image(&c, img, e) < 0)
				break;
			freed += (uint64_t)json_integer_value(json_object_get(img, "allocatedBytes"));
			json_array_append(removed, json_object_get(img, "digest"));
		}
	}
	json_decref(imgs);
	if (lk >= 0) {
		freed += sweep_templates(&c, true);
		close(lk);
	}
	state_release(&c.st);
	return removal_reply(removed, json_pack("{s:I}", "freedBytes", (json_int_t)freed), e);
}

static const struct helper_op ops[] = {
	{ "pull", op_pull }, { "base", op_build_base }, { "vmdisk", op_vmdisk }, { "inspect", op_inspect },
	{ "list", op_list }, { "remove", op_remove },	{ "prune", op_prune },
};

static const struct helper helper = {
	.name = "vmsan-rootfs",
	.summary = "plumbing: OCI images into ext4 root disks, cached by digest",
	.usage =
		"usage: vmsan-rootfs [OP] [--verbose] < request.json\n"
		"\n"
		"Builds ext4 root disks from OCI/Docker images without root or a daemon,\n"
		"and keeps them in $VMSAN_DIR/images by manifest digest.\n"
		"\n"
		"  {\"op\":\"pull\", \"ref\":REF | \"runtime\":RT, \"pull\":BOOL, \"tlsVerify\":BOOL,\n"
		"   \"authFile\":PATH, \"certDir\":DIR, \"diskSize\":\"10G\", \"progress\":BOOL}\n"
		"                                  the image's disk, built unless cached\n"
		"  {\"op\":\"base\", \"busybox\":PATH, \"diskSize\":SIZE}\n"
		"                                  the offline base image (busybox-static)\n"
		"  {\"op\":\"inspect\", \"image\":REF|DIGEST}   one cached image\n"
		"  {\"op\":\"list\"}                          all cached images\n"
		"  {\"op\":\"remove\", \"images\":[REF|DIGEST...], \"force\":BOOL}\n"
		"  {\"op\":\"prune\", \"all\":BOOL}           unreferenced (all: unused) images\n"
		"  {\"op\":\"vmdisk\", \"id\":ID, \"guestDir\":DIR, \"image\":DIGEST | \"pull\":{PULL}, \"diskSize\":SIZE}\n"
		"                                  a VM's writable disk vms/ID/disk.ext4 (vmsan-init,\n"
		"                                  the agent, a new token, also in vms/ID.token)\n"
		"\n"
		"REF: docker://, oci:PATH[:TAG], oci-archive:PATH[:TAG], or a registry\n"
		"reference (alpine:3.20 = docker.io/library/alpine:3.20).  Runtimes: base\n"
		"(offline, from busybox-static), node22, node24, python3.13; override one\n"
		"with VMSAN_RUNTIME_<NAME>=REF (NODE22, PYTHON3_13, ...).\n"
		"\n"
		"Exit status: 0 ok, 1 refused or failed, 100 bad request, 111 system error.\n"
		"See vmsan-rootfs(8).\n",
	.ops = ops,
	.nops = sizeof(ops) / sizeof(*ops),
};

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	return helper_main(&helper, argc, argv);
}
