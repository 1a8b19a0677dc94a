/* layer.h: apply OCI image layers (tar, tar+gzip, tar+zstd) to an ext4
 * image, in order, with OCI whiteout semantics, verifying each blob's
 * digest and diff_id as it streams. */
#ifndef VMSAN_LAYER_H
#define VMSAN_LAYER_H

#include <stdbool.h>
#include <stdint.h>
#include "lib/ext4.h"

struct layer_stats {
	/* Set once the image is full: later entries are only counted, so the
	 * error can name the size that would have been enough. */
	bool full;
	uint64_t more_bytes; /* file bytes (rounded to blocks) not written */
	uint64_t more_inodes;
	uint64_t entries;
	uint64_t in_bytes; /* compressed bytes read, all layers so far */
};

typedef void (*layer_progress_fn)(void *ctx, uint64_t in_bytes);

struct layer {
	const char *path;    /* the blob file */
	const char *digest;  /* "sha256:<hex>" of the blob as stored */
	const char *diff_id; /* "sha256:<hex>" of the uncompressed tar, or NULL */
	const char *label;   /* for messages: "layer 2/5" */
};

/* Applies one layer.  On a full image, e holds ERR_DISK_FULL (e4_is_full)
 * and the rest of the layer has been read and counted into st. */
int layer_apply(struct e4 *w, const struct layer *l, struct layer_stats *st, layer_progress_fn progress, void *pctx,
		struct verr *e);

/* Normalizes a tar member name into an image path ("a/b"; "" is the
 * root).  Refuses ".." components: a layer must not name anything outside
 * its root.  Returns 0, or -1 with why filled. */
int layer_norm_path(const char *name, char *out, size_t outlen, char *why, size_t whylen);

/* sha256 of a file, as "sha256:<hex>". */
int sha256_file(const char *path, char out[72], struct verr *e);
void sha256_hex(const void *data, size_t len, char out[72]);

#endif
