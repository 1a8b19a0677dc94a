/* ext4.c: populate an ext4 image through libext2fs (see ext4.h): the
 * image opened and closed, and its inodes made, with their data; the
 * directory tree they go in (the entry index, path resolution, removal)
 * is ext4-tree.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "lib/ext4-impl.h"

extern char **environ;

#define E4_LINK_MAX 65000 /* the kernel's EXT4_LINK_MAX */

#define WBUF (1u << 20)

static const char *e4_code_full = "ERR_DISK_FULL";

/* ---- errors ---------------------------------------------------------- */

/* The image's own space (blocks, inodes, directory or xattr room) ran
 * out: the caller can name a bigger disk size. */
static bool is_full_err(errcode_t rc)
{
	return rc == EXT2_ET_BLOCK_ALLOC_FAIL || rc == EXT2_ET_INODE_ALLOC_FAIL || rc == EXT2_ET_DIR_NO_SPACE ||
	       rc == EXT2_ET_EA_NO_SPACE;
}

/* The file system holding the image file ran out: unix_io passes the
 * write's errno, or reports a short write. */
static bool is_host_full_err(errcode_t rc)
{
	return rc == ENOSPC || rc == EDQUOT || rc == EXT2_ET_SHORT_WRITE;
}

/* libext2fs's error code as a verr: the image full, the disk under it
 * full, or anything else (a bug or a damaged image). */
int e4_err(struct verr *e, errcode_t rc, const char *what, const char *path)
{
	if (is_full_err(rc))
		verr_set(e, VMSAN_EXIT_FAIL, e4_code_full, "give the image a larger disk size",
			 "the disk image is full while writing /%s", path);
	else if (is_host_full_err(rc))
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_NO_SPACE",
			 "free space where VMSAN_DIR lives, or point VMSAN_DIR elsewhere",
			 "no space left for the image file while writing /%s: %s", path, error_message(rc));
	else
		verr_set(e, VMSAN_EXIT_SYS, "ERR_EXT4", "this is a bug or a damaged image file; remove it and retry",
			 "%s /%s: %s", what, path, error_message(rc));
	return -1;
}

bool e4_is_full(const struct verr *e)
{
	return e->code == e4_code_full;
}

/* ---- open / close ---------------------------------------------------- */

int e4_mkfs(const char *path, unsigned long long bytes, bool journal, const char *label, struct verr *e)
{
	char size[32], features[64];
	snprintf(size, sizeof(size), "%lluk", bytes / 1024);
	/* No journal on the read-only image disk; lazy init keeps it sparse. */
	snprintf(features, sizeof(features), "%s", journal ? "has_journal" : "^has_journal");
	const char *argv[] = { "mke2fs",
			       "-q",
			       "-F",
			       "-t",
			       "ext4",
			       "-b",
			       "4096",
			       "-O",
			       features,
			       "-E",
			       "lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0",
			       "-L",
			       label,
			       "-m",
			       "0",
			       path,
			       size,
			       NULL };
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot create %s", path);
		return -1;
	}
	close(fd);
	if (truncate(path, (off_t)bytes) < 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot size %s", path);
		return -1;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int rc = posix_spawnp(&pid, "mke2fs", &fa, NULL, (char *const *)argv, environ);
	/* A user's PATH often lacks /sbin, where Debian keeps it. */
	if (rc == ENOENT)
		rc = posix_spawn(&pid, "/usr/sbin/mke2fs", &fa, NULL, (char *const *)argv, environ);
	if (rc == ENOENT)
		rc = posix_spawn(&pid, "/sbin/mke2fs", &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		errno = rc;
		verr_sys(e, "ERR_MISSING_TOOL", "install e2fsprogs", "cannot run mke2fs");
		return -1;
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_MKFS", "see the message above",
			 "mke2fs failed on %s (size %llu bytes)", path, bytes);
		return -1;
	}
	return 0;
}

struct e4 *e4_open(const char *path, struct verr *e)
{
	struct e4 *w = calloc(1, sizeof(*w));
	if (!w) {
		verr_sys(e, "ERR_NOMEM", NULL, "allocating the image writer");
		return NULL;
	}
	initialize_ext2_error_table();	     /* error_message() names EXT2_ET_* */
	bool indexed = e4_tree_init(w) == 0; /* out of memory: said after the image's errors */
	errcode_t rc = ext2fs_open2(path, NULL, EXT2_FLAG_RW | EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &w->fs);
	if (rc) {
		w->fs = NULL;
		e4_err(e, rc, "opening image", path);
		goto err;
	}
	if (!indexed || ext2fs_read_bitmaps(w->fs) || ext2fs_get_mem(w->fs->blocksize * 3, &w->buf)) {
		verr_sys(e, "ERR_NOMEM", NULL, "reading the bitmaps of %s", path);
		goto err;
	}
	w->fs->umask = 0;
	ext2_ino_t lf;
	if (ext2fs_lookup(w->fs, EXT2_ROOT_INO, "lost+found", 10, NULL, &lf) == 0 &&
	    e4_tree_add(w, EXT2_ROOT_INO, "lost+found", lf, EXT2_FT_DIR) < 0) {
		verr_sys(e, "ERR_NOMEM", NULL, "indexing %s", path);
		goto err;
	}
	w->layer = 1;
	return w;
err:
	e4_abort(w);
	return NULL;
}

void e4_abort(struct e4 *w)
{
	if (!w)
		return;
	if (w->fs) {
		w->fs->flags &= ~EXT2_FLAG_DIRTY;
		ext2fs_free_mem(&w->buf);
		ext2fs_free(w->fs);
	}
	e4_tree_free(w);
	free(w->wbuf);
	free(w->ext);
	free(w);
}

int e4_close(struct e4 *w, struct verr *e)
{
	ext2fs_free_mem(&w->buf);
	errcode_t rc = ext2fs_close_free(&w->fs);
	e4_tree_free(w);
	free(w->wbuf);
	free(w->ext);
	free(w);
	if (rc)
		return e4_err(e, rc, "closing image", "");
	return 0;
}

void e4_layer_begin(struct e4 *w)
{
	w->layer++;
}

void e4_usage(const struct e4 *w, struct e4_usage *u)
{
	struct ext2_super_block *sb = w->fs->super;
	u->block_size = w->fs->blocksize;
	u->blocks_total = ext2fs_blocks_count(sb);
	u->blocks_used = u->blocks_total - ext2fs_free_blocks_count(sb);
	u->inodes_total = sb->s_inodes_count;
	u->inodes_used = sb->s_inodes_count - sb->s_free_inodes_count;
	u->files = w->files;
	u->bytes = w->bytes;
}

/* ---- creation -------------------------------------------------------- */

static int ftype(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG: return EXT2_FT_REG_FILE;
	case S_IFDIR: return EXT2_FT_DIR;
	case S_IFLNK: return EXT2_FT_SYMLINK;
	case S_IFCHR: return EXT2_FT_CHRDEV;
	case S_IFBLK: return EXT2_FT_BLKDEV;
	case S_IFIFO: return EXT2_FT_FIFO;
	case S_IFSOCK: return EXT2_FT_SOCK;
	default: return -1;
	}
}

static void set_owner_times(struct ext2_inode *in, const struct e4_entry *ent)
{
	in->i_uid = (__u16)ent->uid;
	ext2fs_set_i_uid_high(*in, ent->uid >> 16);
	in->i_gid = (__u16)ent->gid;
	ext2fs_set_i_gid_high(*in, ent->gid >> 16);
	/* 32-bit seconds: ext4's extra epoch bits are left at 0 (to 2038). */
	__u32 t = ent->mtime < 0 ? 0 : ent->mtime > UINT32_MAX ? UINT32_MAX : (__u32)ent->mtime;
	in->i_atime = in->i_mtime = in->i_ctime = t;
}

static int set_xattrs(struct e4 *w, ext2_ino_t ino, const struct e4_entry *ent, struct verr *e)
{
	if (ent->nxattrs == 0)
		return 0;
	struct ext2_xattr_handle *h;
	errcode_t rc = ext2fs_xattrs_open(w->fs, ino, &h);
	if (rc)
		return e4_err(e, rc, "opening xattrs of", ent->path);
	if ((rc = ext2fs_xattrs_read(h)) == 0)
		for (size_t i = 0; i < ent->nxattrs && !rc; i++)
			rc = ext2fs_xattr_set(h, ent->xattrs[i].name, ent->xattrs[i].value, ent->xattrs[i].len);
	errcode_t rc2 = ext2fs_xattrs_close(&h);
	if (rc || rc2)
		return e4_err(e, rc ? rc : rc2, "setting xattrs of", ent->path);
	return 0;
}

/*
 * The fast path for a file without holes: allocate all its blocks at once
 * (contiguous where the allocator can), then write its data in runs of up
 * to 1 MiB straight to those blocks.  libext2fs's file API would issue one
 * 4 KiB write per block instead.  io_channel_write_blk64 keeps unix_io's
 * block cache coherent (writes over 4 blocks invalidate it).
 */
static int load_extents(struct e4 *w, ext2_ino_t ino, struct ext2_inode *in, const char *path, struct verr *e)
{
	ext2_extent_handle_t h;
	struct ext2fs_extent x;
	errcode_t rc = ext2fs_extent_open2(w->fs, ino, in, &h);
	if (rc)
		return e4_err(e, rc, "mapping", path);
	w->next = 0;
	int op = EXT2_EXTENT_ROOT;
	while ((rc = ext2fs_extent_get(h, op, &x)) == 0) {
		op = EXT2_EXTENT_NEXT_LEAF;
		if (!(x.e_flags & EXT2_EXTENT_FLAGS_LEAF))
			continue;
		if (w->next == w->ext_cap) {
			size_t cap = w->ext_cap ? 2 * w->ext_cap : 16;
			void *n = realloc(w->ext, cap * sizeof(*w->ext));
			if (!n) {
				ext2fs_extent_free(h);
				verr_sys(e, "ERR_NOMEM", NULL, "mapping /%s", path);
				return -1;
			}
			w->ext = n;
			w->ext_cap = cap;
		}
		w->ext[w->next++] = x;
	}
	ext2fs_extent_free(h);
	if (rc != EXT2_ET_EXTENT_NO_NEXT)
		return e4_err(e, rc, "mapping", path);
	return 0;
}

/* Writes n blocks of wbuf at the file's logical block lblk. */
static int put_blocks(struct e4 *w, blk64_t lblk, blk64_t n, const char *path, struct verr *e)
{
	unsigned bs = w->fs->blocksize;
	const char *p = w->wbuf;
	for (size_t i = 0; i < w->next && n > 0; i++) {
		struct ext2fs_extent *x = &w->ext[i];
		if (lblk < x->e_lblk || lblk >= x->e_lblk + x->e_len)
			continue;
		blk64_t run = x->e_lblk + x->e_len - lblk;
		if (run > n)
			run = n;
		errcode_t rc = io_channel_write_blk64(w->fs->io, x->e_pblk + (lblk - x->e_lblk), (int)run, p);
		if (rc)
			return e4_err(e, rc, "writing", path);
		p += run * bs;
		lblk += run;
		n -= run;
	}
	if (n > 0)
		return e4_err(e, EXT2_ET_BAD_BLOCK_NUM, "writing (unmapped block)", path);
	return 0;
}

static int write_fast(struct e4 *w, ext2_ino_t ino, const struct e4_entry *ent, struct verr *e)
{
	unsigned bs = w->fs->blocksize;
	blk64_t nblk = (ent->size + bs - 1) / bs;
	struct ext2_inode in;
	errcode_t rc;
	if (!w->wbuf && !(w->wbuf = malloc(WBUF))) {
		verr_sys(e, "ERR_NOMEM", NULL, "writing /%s", ent->path);
		return -1;
	}
	if ((rc = ext2fs_read_inode(w->fs, ino, &in)) ||
	    (nblk && (rc = ext2fs_fallocate(w->fs, EXT2_FALLOCATE_FORCE_INIT, ino, &in, ~0ULL, 0, nblk))) ||
	    (rc = ext2fs_inode_size_set(w->fs, &in, ent->size)) || (rc = ext2fs_write_inode(w->fs, ino, &in)))
		return e4_err(e, rc, "allocating", ent->path);
	if (nblk && load_extents(w, ino, &in, ent->path, e) < 0)
		return -1;
	uint64_t pos = 0;
	size_t fill = 0;
	blk64_t lblk = 0;
	for (;;) {
		const void *buf;
		size_t len;
		int64_t off;
		int r = ent->read(ent->read_ctx, &buf, &len, &off, e);
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		if (off < 0 || (uint64_t)off != pos || pos + len > ent->size) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_CONTENT", NULL,
				 "/%s: data does not match the file's size", ent->path);
			return -1;
		}
		const char *b = buf;
		pos += len;
		while (len > 0) {
			size_t take = WBUF - fill < len ? WBUF - fill : len;
			memcpy(w->wbuf + fill, b, take);
			fill += take;
			b += take;
			len -= take;
			if (fill == WBUF) {
				if (put_blocks(w, lblk, WBUF / bs, ent->path, e) < 0)
					return -1;
				lblk += WBUF / bs;
				fill = 0;
			}
		}
	}
	if (pos != ent->size) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_CONTENT", NULL, "/%s: %llu bytes of data for a file of %llu",
			 ent->path, (unsigned long long)pos, (unsigned long long)ent->size);
		return -1;
	}
	if (fill > 0) {
		size_t pad = (bs - fill % bs) % bs; /* the tail block's rest: zeros */
		memset(w->wbuf + fill, 0, pad);
		if (put_blocks(w, lblk, (fill + pad) / bs, ent->path, e) < 0)
			return -1;
	}
	w->bytes += ent->size;
	return 0;
}

static int write_data(struct e4 *w, ext2_ino_t ino, const struct e4_entry *ent, struct verr *e)
{
	if (!ent->sparse && ext2fs_has_feature_extents(w->fs->super))
		return write_fast(w, ino, ent, e);

	ext2_file_t f;
	errcode_t rc = ext2fs_file_open(w->fs, ino, EXT2_FILE_WRITE, &f);
	if (rc)
		return e4_err(e, rc, "opening", ent->path);
	uint64_t pos = 0;
	int ret = 0;
	for (;;) {
		const void *buf;
		size_t len;
		int64_t off;
		int r = ent->read(ent->read_ctx, &buf, &len, &off, e);
		if (r < 0) {
			ret = -1;
			break;
		}
		if (r == 0)
			break;
		if (off < 0 || (uint64_t)off + len > ent->size) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_CONTENT", NULL, "/%s: data beyond the file's size",
				 ent->path);
			ret = -1;
			break;
		}
		if ((uint64_t)off != pos) { /* a hole: leave it unallocated */
			if ((rc = ext2fs_file_llseek(f, (__u64)off, EXT2_SEEK_SET, NULL)))
				break;
			pos = (uint64_t)off;
		}
		const char *b = buf;
		while (len > 0) {
			unsigned got;
			unsigned chunk = len > (1u << 30) ? 1u << 30 : (unsigned)len;
			if ((rc = ext2fs_file_write(f, b, chunk, &got)))
				break;
			b += got;
			len -= got;
			pos += got;
		}
		if (rc)
			break;
	}
	if (!rc && ret == 0)
		rc = ext2fs_file_set_size2(f, ent->size);
	errcode_t rc2 = ext2fs_file_close(f);
	if (ret < 0)
		return -1;
	if (rc || rc2)
		return e4_err(e, rc ? rc : rc2, "writing", ent->path);
	w->bytes += ent->size;
	return 0;
}

static int make_inode(struct e4 *w, ext2_ino_t dir, const char *name, const struct e4_entry *ent, struct verr *e)
{
	int type = ftype(ent->mode);
	ext2_ino_t ino;
	errcode_t rc = ext2fs_new_inode(w->fs, dir, (int)(ent->mode & S_IFMT ? ent->mode : 0), NULL, &ino);
	if (rc)
		return e4_err(e, rc, "allocating an inode for", ent->path);
	struct ext2_inode in;
	if (type == EXT2_FT_DIR) {
		if ((rc = ext2fs_mkdir(w->fs, dir, ino, NULL)))
			return e4_err(e, rc, "creating directory", ent->path);
	} else if (type == EXT2_FT_SYMLINK) {
		if ((rc = ext2fs_symlink(w->fs, dir, ino, NULL, ent->target)))
			return e4_err(e, rc, "creating symlink", ent->path);
	} else {
		memset(&in, 0, sizeof(in));
		in.i_mode = (__u16)ent->mode;
		in.i_links_count = 1;
		if (type == EXT2_FT_CHRDEV || type == EXT2_FT_BLKDEV) {
			unsigned ma = ent->dev_major, mi = ent->dev_minor;
			if (ma < 256 && mi < 256) {
				in.i_block[0] = ma * 256 + mi;
			} else {
				in.i_block[1] = (mi & 0xff) | (ma << 8) | ((mi & ~0xffu) << 12);
			}
		} else if (type == EXT2_FT_REG_FILE && ext2fs_has_feature_extents(w->fs->super)) {
			ext2_extent_handle_t h;
			if ((rc = ext2fs_extent_open2(w->fs, ino, &in, &h)))
				return e4_err(e, rc, "creating", ent->path);
			ext2fs_extent_free(h);
		}
		if ((rc = ext2fs_write_new_inode(w->fs, ino, &in)))
			return e4_err(e, rc, "writing inode of", ent->path);
		ext2fs_inode_alloc_stats2(w->fs, ino, +1, 0);
	}
	if ((rc = ext2fs_read_inode(w->fs, ino, &in)))
		return e4_err(e, rc, "reading inode of", ent->path);
	in.i_mode = (__u16)ent->mode;
	set_owner_times(&in, ent);
	if ((rc = ext2fs_write_inode(w->fs, ino, &in)))
		return e4_err(e, rc, "writing inode of", ent->path);
	/* Linked before its data is written: a failure later still leaves a
	 * consistent tree for the caller to throw away. */
	if (e4_tree_link(w, dir, name, ino, type, ent->path, e) < 0)
		return -1;
	if (type == EXT2_FT_REG_FILE && ent->read && write_data(w, ino, ent, e) < 0)
		return -1;
	return set_xattrs(w, ino, ent, e);
}

static int update_dir(struct e4 *w, ext2_ino_t ino, const struct e4_entry *ent, struct verr *e)
{
	struct ext2_inode in;
	errcode_t rc = ext2fs_read_inode(w->fs, ino, &in);
	if (rc)
		return e4_err(e, rc, "reading inode of", ent->path);
	in.i_mode = (__u16)ent->mode;
	set_owner_times(&in, ent);
	if ((rc = ext2fs_write_inode(w->fs, ino, &in)))
		return e4_err(e, rc, "writing inode of", ent->path);
	return set_xattrs(w, ino, ent, e);
}

static int hard_link(struct e4 *w, ext2_ino_t dir, const char *name, const struct e4_entry *ent, struct verr *e)
{
	ext2_ino_t tdir;
	const char *tbase;
	int rc0 = e4_tree_parent(w, ent->target, false, &tdir, &tbase, e);
	if (rc0 < 0)
		return -1;
	struct node *t = rc0 ? NULL : e4_tree_find(w, tdir, tbase, strlen(tbase));
	if (!t || t->type == EXT2_FT_DIR) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_CONTENT", "the layer is malformed; rebuild the image",
			 "hard link /%s: target /%s %s", ent->path, ent->target,
			 t ? "is a directory" : "does not exist");
		return -1;
	}
	ext2_ino_t ino = t->ino;
	struct ext2_inode in;
	errcode_t rc = ext2fs_read_inode(w->fs, ino, &in);
	if (rc)
		return e4_err(e, rc, "reading inode of", ent->target);
	if (in.i_links_count >= E4_LINK_MAX) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_CONTENT", NULL, "too many hard links to /%s", ent->target);
		return -1;
	}
	in.i_links_count++;
	if ((rc = ext2fs_write_inode(w->fs, ino, &in)))
		return e4_err(e, rc, "writing inode of", ent->target);
	return e4_tree_link(w, dir, name, ino, t->type, ent->path, e);
}

int e4_put(struct e4 *w, const struct e4_entry *ent, struct verr *e)
{
	if (ftype(ent->mode) < 0 && !ent->hardlink) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_CONTENT", NULL, "/%s: unknown file type %o", ent->path,
			 ent->mode & S_IFMT);
		return -1;
	}
	if (ent->path[0] == '\0') { /* the root itself: metadata only */
		w->files++;
		return update_dir(w, EXT2_ROOT_INO, ent, e);
	}
	ext2_ino_t dir;
	const char *name;
	if (e4_tree_parent(w, ent->path, true, &dir, &name, e) < 0)
		return -1;
	if (strlen(name) > EXT2_NAME_LEN) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_CONTENT", NULL, "/%s: name longer than 255 bytes", ent->path);
		return -1;
	}
	struct node *x = e4_tree_find(w, dir, name, strlen(name));
	if (x && x->type == EXT2_FT_DIR && !ent->hardlink && S_ISDIR(ent->mode)) {
		x->layer = w->layer;
		w->files++;
		return update_dir(w, x->ino, ent, e);
	}
	if (x && e4_tree_unlink(w, dir, x, ent->path, e) < 0)
		return -1;
	w->files++;
	if (ent->hardlink)
		return hard_link(w, dir, name, ent, e);
	return make_inode(w, dir, name, ent, e);
}

int e4_data_offset(const char *img, const char *path, uint64_t *off, struct verr *e)
{
	ext2_filsys fs = NULL;
	initialize_ext2_error_table();
	errcode_t rc = ext2fs_open2(img, NULL, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs);
	if (rc)
		return e4_err(e, rc, "opening image", img);
	ext2_ino_t ino;
	blk64_t pblk = 0;
	rc = ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, &ino);
	if (!rc)
		rc = ext2fs_bmap2(fs, ino, NULL, NULL, 0, 0, NULL, &pblk);
	if (!rc && !pblk)
		rc = EXT2_ET_BAD_BLOCK_NUM;
	if (!rc)
		*off = (uint64_t)pblk * fs->blocksize;
	ext2fs_close_free(&fs);
	return rc ? e4_err(e, rc, "finding the data of", path) : 0;
}
