/* ext4.h: write a filesystem tree into an ext4 image file, unprivileged.
 *
 * Everything goes through libext2fs into the image file: no mount, no
 * host path is ever created, so ownership, modes, device nodes and
 * xattrs are exactly what the caller asks for whatever uid runs us, and a
 * hostile path cannot write anywhere but inside the image.
 *
 * Paths are image paths, already normalized by the caller ("a/b/c": no
 * leading "/", no "." or ".." components, no empty components).  Parent
 * directories are resolved inside the image, following symlinks the way
 * the kernel would but never above the image root; missing parents are
 * created (0755, root).  The last component is never followed.
 */
#ifndef VMSAN_EXT4_H
#define VMSAN_EXT4_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "lib/vmsan.h"

struct e4;

/* mke2fs an empty sparse image of `bytes` (journal: for a writable disk). */
int e4_mkfs(const char *path, unsigned long long bytes, bool journal, const char *label, struct verr *e);
struct e4 *e4_open(const char *path, struct verr *e);
/* Writes bitmaps and superblock; frees w.  Returns -1 and sets e on error. */
int e4_close(struct e4 *w, struct verr *e);
/* Frees w without caring about the image (the caller deletes it). */
void e4_abort(struct e4 *w);

struct e4_xattr {
	const char *name;
	const void *value;
	size_t len;
};

/* Source of a regular file's bytes: returns 1 with a block (offset
 * within the file, for sparse files), 0 at the end, -1 on error (with e
 * set by the callback). */
typedef int (*e4_read_fn)(void *ctx, const void **buf, size_t *len, int64_t *offset, struct verr *e);

struct e4_entry {
	const char *path;
	mode_t mode; /* type and permission bits, S_IFMT included */
	uint32_t uid, gid;
	int64_t mtime;
	unsigned dev_major, dev_minor;
	const char *target; /* symlink target, or hardlink's image path */
	bool hardlink;
	uint64_t size; /* regular files */
	bool sparse;   /* data comes with holes (read() offsets jump) */
	const struct e4_xattr *xattrs;
	size_t nxattrs;
	e4_read_fn read; /* regular files */
	void *read_ctx;
};

/* Create or replace path with the entry.  An existing directory that
 * meets a directory keeps its children and takes the new metadata;
 * anything else that is in the way is removed first (a directory
 * recursively). */
int e4_put(struct e4 *w, const struct e4_entry *ent, struct verr *e);
/* Remove path if it exists (recursively).  Entries created since the
 * last e4_layer_begin() are kept when only_lower is set: OCI whiteouts
 * apply to lower layers only. */
int e4_remove(struct e4 *w, const char *path, bool only_lower, struct verr *e);
/* Empty directory path of what lower layers put there (opaque dir). */
int e4_clear_dir(struct e4 *w, const char *path, struct verr *e);
void e4_layer_begin(struct e4 *w);

/* Byte offset in img of the first data block of the regular file path
 * (image path), for rewriting its first bytes in place. */
int e4_data_offset(const char *img, const char *path, uint64_t *off, struct verr *e);

struct e4_usage {
	uint64_t blocks_used, blocks_total, block_size;
	uint64_t inodes_used, inodes_total;
	uint64_t files, bytes; /* entries written, regular-file bytes */
};
void e4_usage(const struct e4 *w, struct e4_usage *u);
/* True if e holds an out-of-space (blocks or inodes) error from e4. */
bool e4_is_full(const struct verr *e);

#endif
