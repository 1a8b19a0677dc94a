/* What ext4.c (the image, its inodes and their data) and ext4-tree.c (its
 * directory tree: the entry index, path resolution, linking and removal)
 * share; not part of the interface in ext4.h. */
#ifndef VMSAN_EXT4_IMPL_H
#define VMSAN_EXT4_IMPL_H

#include <ext2fs/ext2fs.h>
#include "lib/ext4.h"

/* An entry of the index: (parent inode, name) -> inode. */
struct node {
	struct node *next; /* hash chain */
	ext2_ino_t parent, ino;
	unsigned layer;	    /* the layer that made it */
	unsigned char type; /* EXT2_FT_* */
	char name[];
};

struct e4 {
	ext2_filsys fs;
	struct node **tab;
	size_t nbuckets, nnodes;
	unsigned layer;
	uint64_t files, bytes;
	char *buf;		   /* one block, for ext2fs_punch */
	char *wbuf;		   /* WBUF bytes: file data on its way out */
	struct ext2fs_extent *ext; /* a file's extents, while writing it */
	size_t next, ext_cap;
};

/* ext4.c: libext2fs's error rc while doing what to /path, as e; -1. */
int e4_err(struct verr *e, errcode_t rc, const char *what, const char *path);

/* ext4-tree.c */
int e4_tree_init(struct e4 *w);
void e4_tree_free(struct e4 *w);
/* The index learns an entry made outside e4_tree_link (lost+found). */
int e4_tree_add(struct e4 *w, ext2_ino_t parent, const char *name, ext2_ino_t ino, unsigned char type);
struct node *e4_tree_find(struct e4 *w, ext2_ino_t parent, const char *name, size_t len);
/* name in dir -> ino, in the image and in the index. */
int e4_tree_link(struct e4 *w, ext2_ino_t dir, const char *name, ext2_ino_t ino, int type, const char *path,
		 struct verr *e);
/* The directory holding path's last component (*dir, its name *base),
 * symlinks followed inside the image, missing directories made when
 * create is set: 0; 1 when a parent is missing (create not set); -1. */
int e4_tree_parent(struct e4 *w, const char *path, bool create, ext2_ino_t *dir, const char **base, struct verr *e);
/* x, an entry of parent, removed (a directory with everything in it). */
int e4_tree_unlink(struct e4 *w, ext2_ino_t parent, struct node *x, const char *path, struct verr *e);

#endif
