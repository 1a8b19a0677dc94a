/* build.c: an image's layers applied in order into a fresh ext4 file
 * (lib/layer.c does one layer, lib/ext4.c the filesystem), and the sizes
 * that say how big a disk the image needs. */
#define _GNU_SOURCE
#include "rootfs/rootfs.h"

#include <stdio.h>
#include <string.h>

/* Size that would have held the content: data plus ext4's own metadata
 * (1 inode per 16 KiB, 256-byte inodes: ~1.6%) plus a margin. */
static uint64_t needed_size(const struct e4_usage *u0, const struct e4_usage *u, const struct layer_stats *st)
{
	uint64_t data = (u->blocks_used - u0->blocks_used) * u->block_size + st->more_bytes;
	uint64_t inodes = u->inodes_used + st->more_inodes;
	uint64_t by_data = data + data / 16 + (16ULL << 20);
	uint64_t by_inodes = inodes * 16384 + inodes * 16384 / 16;
	uint64_t need = by_data > by_inodes ? by_data : by_inodes;
	return (need + (64ULL << 20) - 1) & ~((64ULL << 20) - 1);
}

static void human_size(uint64_t b, char *out, size_t n)
{
	if (b >= (1ULL << 30) && b % (1ULL << 30) == 0)
		snprintf(out, n, "%lluG", (unsigned long long)(b >> 30));
	else
		snprintf(out, n, "%lluM", (unsigned long long)((b + (1ULL << 20) - 1) >> 20));
}

int disk_full_error(uint64_t disk, uint64_t need, const char *what, struct verr *e)
{
	char have[32], want[32], fix[200];
	human_size(disk, have, sizeof(have));
	human_size(need, want, sizeof(want));
	snprintf(fix, sizeof(fix), "use --disk-size %s or more", want);
	return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_DISK_TOO_SMALL", fix,
			 "disk size %s is too small for %s: it needs about %s", have, what, want);
}

/* Each layer of the manifest into w; layers are added to jl.  A full
 * image is not the end: *full is set and the other layers are still read
 * and counted into st, so that the error can say what would be enough. */
static int apply_layers(struct e4 *w, const char *blobs, json_t *manifest, json_t *config, json_t *jl,
			struct layer_stats *st, bool *full, struct verr *e)
{
	json_t *layers = json_object_get(manifest, "layers");
	json_t *diffs = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
	size_t nl = json_array_size(layers);
	uint64_t total = 0;
	for (size_t i = 0; i < nl; i++)
		total += (uint64_t)json_integer_value(json_object_get(json_array_get(layers, i), "size"));
	struct progress pr = { total, 0, "building rootfs" };
	for (size_t i = 0; i < nl; i++) {
		json_t *L = json_array_get(layers, i);
		const char *dg = json_string_value(json_object_get(L, "digest"));
		const char *diff = json_is_array(diffs) && json_array_size(diffs) == nl
					   ? json_string_value(json_array_get(diffs, i))
					   : NULL;
		if (!dg || strncmp(dg, "sha256:", 7) != 0 || !valid_hex64(dg + 7))
			return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_MANIFEST", NULL, "layer %zu has no sha256 digest",
					 i + 1);
		char path[PATH_MAX], label[64];
		bfmt(path, sizeof(path), "%s%s", blobs, dg + 7);
		snprintf(label, sizeof(label), "layer %zu/%zu", i + 1, nl);
		struct layer l = { path, dg, diff, label };
		struct verr le = { 0 };
		if (layer_apply(w, &l, st, show_progress, &pr, &le) < 0) {
			if (!e4_is_full(&le)) {
				*e = le;
				return -1;
			}
			*full = true; /* go on counting the other layers */
		}
		json_array_append_new(jl, json_pack("{s:s, s:I}", "digest", dg, "size",
						    json_integer_value(json_object_get(L, "size"))));
	}
	return 0;
}

/* The build's sizes into its record. */
static void record_sizes(json_t *rec, const struct build *b, const struct e4_usage *u0, const struct e4_usage *u,
			 const struct layer_stats *st)
{
	json_object_set_new(rec, "diskSize", json_integer((json_int_t)b->disk));
	json_object_set_new(rec, "usedBytes", json_integer((json_int_t)(u->blocks_used * u->block_size)));
	json_object_set_new(rec, "neededDiskSize", json_integer((json_int_t)needed_size(u0, u, st)));
	json_object_set_new(rec, "files", json_integer((json_int_t)u->files));
	json_object_set_new(rec, "contentBytes", json_integer((json_int_t)u->bytes));
	json_object_set_new(rec, "compressedBytes", json_integer((json_int_t)st->in_bytes));
}

int build_from_manifest(struct build *b, const char *blobs, json_t *manifest, json_t *config, json_t *rec,
			struct verr *e)
{
	struct e4_usage u0, u;
	struct layer_stats st = { 0 };
	bool full = false;
	json_t *jl;
	struct e4 *w;

	if (e4_mkfs(b->img, b->disk, false, "vmsan-image", e) < 0)
		return -1;
	own(b->c, b->img);
	if (!(w = e4_open(b->img, e)))
		return -1;
	e4_usage(w, &u0);
	jl = json_array();
	if (apply_layers(w, blobs, manifest, config, jl, &st, &full, e) < 0)
		goto fail;
	progress_end();
	e4_usage(w, &u);
	if (full) {
		char what[64];
		snprintf(what, sizeof(what), "this image (%llu files)", (unsigned long long)st.entries);
		disk_full_error(b->disk, needed_size(&u0, &u, &st), what, e);
		goto fail;
	}
	if (e4_close(w, e) < 0) {
		json_decref(jl);
		return -1;
	}
	json_object_set_new(rec, "layers", jl);
	record_sizes(rec, b, &u0, &u, &st);
	return 0;
fail:
	progress_end();
	json_decref(jl);
	e4_abort(w);
	return -1;
}
