/* ext4-tree.c: the image's directory tree (see ext4.h, ext4-impl.h).
 *
 * We make the filesystem empty (mke2fs) and are its only writer, so an
 * in-memory index of every directory entry, (parent inode, name) -> inode,
 * answers every lookup: libext2fs is only asked to add, remove and write.
 * Each index node remembers the layer that made it, which is what OCI
 * whiteouts and opaque directories need ("lower layers only").  Here: the
 * index, names linked in and removed, and paths resolved the way the
 * kernel would, never above the image root.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "lib/ext4-impl.h"

#define SYMLOOP_MAX_ 40
#define WALK_DEPTH 512 /* directories deep, for one path */

/* ---- the entry index ------------------------------------------------- */

static size_t hash(ext2_ino_t parent, const char *name, size_t len)
{
	size_t h = 1469598103934665603ULL ^ parent; /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)name[i]) * 1099511628211ULL;
	return h;
}

static struct node **slot(struct e4 *w, ext2_ino_t parent, const char *name, size_t len)
{
	struct node **p = &w->tab[hash(parent, name, len) & (w->nbuckets - 1)];
	for (; *p; p = &(*p)->next)
		if ((*p)->parent == parent && strncmp((*p)->name, name, len) == 0 && (*p)->name[len] == '\0')
			return p;
	return p;
}

static int grow(struct e4 *w)
{
	size_t n = w->nbuckets * 4;
	struct node **t = calloc(n, sizeof(*t));
	if (!t)
		return -1;
	for (size_t i = 0; i < w->nbuckets; i++)
		for (struct node *x = w->tab[i], *nx; x; x = nx) {
			nx = x->next;
			size_t b = hash(x->parent, x->name, strlen(x->name)) & (n - 1);
			x->next = t[b];
			t[b] = x;
		}
	free(w->tab);
	w->tab = t;
	w->nbuckets = n;
	return 0;
}

struct node *e4_tree_find(struct e4 *w, ext2_ino_t parent, const char *name, size_t len)
{
	return *slot(w, parent, name, len);
}

int e4_tree_add(struct e4 *w, ext2_ino_t parent, const char *name, ext2_ino_t ino, unsigned char type)
{
	if (w->nnodes >= w->nbuckets && grow(w) < 0)
		return -1;
	size_t len = strlen(name);
	struct node *x = malloc(sizeof(*x) + len + 1);
	if (!x)
		return -1;
	x->parent = parent;
	x->ino = ino;
	x->type = type;
	x->layer = w->layer;
	memcpy(x->name, name, len + 1);
	struct node **p = slot(w, parent, name, len);
	x->next = NULL;
	*p = x;
	w->nnodes++;
	return 0;
}

static void index_del(struct e4 *w, ext2_ino_t parent, const char *name)
{
	struct node **p = slot(w, parent, name, strlen(name));
	if (*p) {
		struct node *x = *p;
		*p = x->next;
		free(x);
		w->nnodes--;
	}
}

int e4_tree_init(struct e4 *w)
{
	w->nbuckets = 4096;
	w->tab = calloc(w->nbuckets, sizeof(*w->tab));
	return w->tab ? 0 : -1;
}

void e4_tree_free(struct e4 *w)
{
	for (size_t i = 0; w->tab && i < w->nbuckets; i++)
		for (struct node *x = w->tab[i], *nx; x; x = nx) {
			nx = x->next;
			free(x);
		}
	free(w->tab);
}

/* ---- linking ---------------------------------------------------------- */

int e4_tree_link(struct e4 *w, ext2_ino_t dir, const char *name, ext2_ino_t ino, int type, const char *path,
		 struct verr *e)
{
	errcode_t rc = ext2fs_link(w->fs, dir, name, ino, type);
	if (rc == EXT2_ET_DIR_NO_SPACE) {
		if ((rc = ext2fs_expand_dir(w->fs, dir)) == 0)
			rc = ext2fs_link(w->fs, dir, name, ino, type);
	}
	if (rc)
		return e4_err(e, rc, "linking", path);
	if (e4_tree_add(w, dir, name, ino, (unsigned char)type) < 0) {
		verr_sys(e, "ERR_NOMEM", NULL, "indexing /%s", path);
		return -1;
	}
	return 0;
}

/* A missing parent directory, made 0755 and root's. */
static int new_dir(struct e4 *w, ext2_ino_t parent, const char *name, ext2_ino_t *ino, const char *path, struct verr *e)
{
	errcode_t rc = ext2fs_new_inode(w->fs, parent, LINUX_S_IFDIR | 0755, NULL, ino);
	if (!rc)
		rc = ext2fs_mkdir(w->fs, parent, *ino, NULL);
	if (rc)
		return e4_err(e, rc, "creating directory", path);
	return e4_tree_link(w, parent, name, *ino, EXT2_FT_DIR, path, e);
}

/* ---- removal --------------------------------------------------------- */

static int drop_inode(struct e4 *w, ext2_ino_t ino, const char *path, struct verr *e)
{
	struct ext2_inode_large in;
	errcode_t rc = ext2fs_read_inode_full(w->fs, ino, (struct ext2_inode *)&in, sizeof(in));
	if (rc)
		return e4_err(e, rc, "reading inode of", path);
	bool dir = LINUX_S_ISDIR(in.i_mode);
	if (!dir && in.i_links_count > 1) {
		in.i_links_count--;
		rc = ext2fs_write_inode_full(w->fs, ino, (struct ext2_inode *)&in, sizeof(in));
		return rc ? e4_err(e, rc, "writing inode of", path) : 0;
	}
	if (ext2fs_inode_has_valid_blocks2(w->fs, (struct ext2_inode *)&in)) {
		rc = ext2fs_punch(w->fs, ino, (struct ext2_inode *)&in, w->buf, 0, ~0ULL);
		if (rc)
			return e4_err(e, rc, "freeing blocks of", path);
	}
	rc = ext2fs_free_ext_attr(w->fs, ino, &in);
	if (rc)
		return e4_err(e, rc, "freeing xattrs of", path);
	in.i_links_count = 0;
	in.i_dtime = w->fs->now ? (__u32)w->fs->now : (__u32)time(NULL);
	rc = ext2fs_write_inode_full(w->fs, ino, (struct ext2_inode *)&in, sizeof(in));
	if (rc)
		return e4_err(e, rc, "writing inode of", path);
	ext2fs_inode_alloc_stats2(w->fs, ino, -1, dir);
	return 0;
}

struct names {
	char **v;
	size_t n, cap;
};

static int collect(struct ext2_dir_entry *de, int off, int bs, char *buf, void *p)
{
	(void)off;
	(void)bs;
	(void)buf;
	struct names *ns = p;
	size_t len = ext2fs_dirent_name_len(de);
	if ((len == 1 && de->name[0] == '.') || (len == 2 && de->name[0] == '.' && de->name[1] == '.'))
		return 0;
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 16;
		char **v = realloc(ns->v, cap * sizeof(*v));
		if (!v)
			return DIRENT_ABORT;
		ns->v = v;
		ns->cap = cap;
	}
	if (!(ns->v[ns->n] = strndup(de->name, len)))
		return DIRENT_ABORT;
	ns->n++;
	return 0;
}

static void names_free(struct names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
}

/* Remove dir's children (those of lower layers only, if asked). */
static int clear_children(struct e4 *w, ext2_ino_t dir, const char *path, bool only_lower, struct verr *e)
{
	struct names ns = { 0 };
	errcode_t rc = ext2fs_dir_iterate(w->fs, dir, 0, NULL, collect, &ns);
	if (rc) {
		names_free(&ns);
		return e4_err(e, rc, "listing", path);
	}
	int ret = 0;
	for (size_t i = 0; i < ns.n && ret == 0; i++) {
		struct node *x = e4_tree_find(w, dir, ns.v[i], strlen(ns.v[i]));
		if (!x || (only_lower && x->layer == w->layer))
			continue;
		ret = e4_tree_unlink(w, dir, x, path, e);
	}
	names_free(&ns);
	return ret;
}

int e4_tree_unlink(struct e4 *w, ext2_ino_t parent, struct node *x, const char *path, struct verr *e)
{
	ext2_ino_t ino = x->ino;
	bool dir = x->type == EXT2_FT_DIR;
	if (dir && clear_children(w, ino, path, false, e) < 0)
		return -1;
	errcode_t rc = ext2fs_unlink(w->fs, parent, x->name, ino, 0);
	if (rc)
		return e4_err(e, rc, "unlinking", path);
	index_del(w, parent, x->name);
	if (dir) {
		struct ext2_inode pin;
		if ((rc = ext2fs_read_inode(w->fs, parent, &pin)) == 0) {
			if (pin.i_links_count > 2)
				pin.i_links_count--;
			rc = ext2fs_write_inode(w->fs, parent, &pin);
		}
		if (rc)
			return e4_err(e, rc, "updating parent of", path);
	}
	return drop_inode(w, ino, path, e);
}

/* ---- path resolution ------------------------------------------------- */

/* Reads a symlink's target (fast or in a block) into out. */
static int read_link(struct e4 *w, ext2_ino_t ino, char *out, size_t outlen, const char *path, struct verr *e)
{
	struct ext2_inode in;
	errcode_t rc = ext2fs_read_inode(w->fs, ino, &in);
	if (rc)
		return e4_err(e, rc, "reading symlink", path);
	size_t len = EXT2_I_SIZE(&in);
	if (len >= outlen) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_CONTENT", NULL, "symlink /%s is too long to follow", path);
		return -1;
	}
	if (ext2fs_is_fast_symlink(&in)) {
		memcpy(out, in.i_block, len);
	} else {
		ext2_file_t f;
		unsigned got = 0;
		if ((rc = ext2fs_file_open(w->fs, ino, 0, &f)) == 0) {
			rc = ext2fs_file_read(f, out, (unsigned)len, &got);
			ext2fs_file_close(f);
		}
		if (rc || got != len)
			return e4_err(e, rc ? rc : EXT2_ET_SHORT_READ, "reading symlink", path);
	}
	out[len] = '\0';
	return 0;
}

/* A walk down a path's directories. */
struct walk {
	char *todo;		      /* what is left to walk (malloc'd) */
	ext2_ino_t stack[WALK_DEPTH]; /* the directories walked into */
	size_t depth;
	int links; /* symlinks followed */
};

static int push(struct walk *k, ext2_ino_t ino, const char *path, struct verr *e)
{
	if (k->depth + 1 >= WALK_DEPTH)
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_CONTENT", NULL, "/%s is nested too deeply", path);
	k->stack[++k->depth] = ino;
	return 0;
}

/* Through the symlink x: the work list becomes its target, then what was
 * left after it (next), and *p its start. */
static int follow(struct e4 *w, struct walk *k, const struct node *x, const char *next, char **p, const char *path,
		  struct verr *e)
{
	char target[4096];
	size_t tl, rl;
	char *nt;

	if (++k->links > SYMLOOP_MAX_)
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_CONTENT", NULL,
				 "too many levels of symbolic links under /%s", path);
	if (read_link(w, x->ino, target, sizeof(target), path, e) < 0)
		return -1;
	tl = strlen(target);
	rl = strlen(next);
	nt = malloc(tl + rl + 2);
	if (!nt) {
		verr_sys(e, "ERR_NOMEM", NULL, "resolving /%s", path);
		return -1;
	}
	memcpy(nt, target, tl);
	nt[tl] = '/';
	memcpy(nt + tl + 1, next, rl + 1); /* next is in the old list: copied before it goes */
	free(k->todo);
	k->todo = *p = nt;
	if (target[0] == '/')
		k->depth = 0; /* absolute: from the image root, never the host's */
	return 0;
}

/* The name [*p, *p + len) of the walk (next: what follows it): into it
 * when it is a directory, made first when it is missing and create is
 * set, or through it when it is a symlink; *p then moves on.  0; 1 when it
 * is missing; -1. */
static int walk_name(struct e4 *w, struct walk *k, char **p, size_t len, char *next, bool create, const char *path,
		     struct verr *e)
{
	struct node *x = e4_tree_find(w, k->stack[k->depth], *p, len);
	char name[EXT2_NAME_LEN + 1];
	ext2_ino_t ino;

	if (len > EXT2_NAME_LEN)
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_CONTENT", NULL,
				 "a name in /%s is longer than 255 bytes", path);
	memcpy(name, *p, len);
	name[len] = '\0';
	if (!x && !create)
		return 1;
	if (!x) {
		if (new_dir(w, k->stack[k->depth], name, &ino, path, e) < 0)
			return -1;
		*p = next;
		return push(k, ino, path, e);
	}
	if (x->type == EXT2_FT_DIR) {
		*p = next;
		return push(k, x->ino, path, e);
	}
	if (x->type != EXT2_FT_SYMLINK)
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_CONTENT",
				 "the image's layers disagree; rebuild the image",
				 "cannot create /%s: a parent is not a directory", path);
	return follow(w, k, x, next, p, path, e);
}

int e4_tree_parent(struct e4 *w, const char *path, bool create, ext2_ino_t *dir, const char **base, struct verr *e)
{
	const char *last = strrchr(path, '/');
	struct walk k = { .stack = { EXT2_ROOT_INO } };
	int ret = 0;
	char *p;

	*base = last ? last + 1 : path;
	if (!last) {
		*dir = EXT2_ROOT_INO;
		return 0;
	}
	k.todo = strndup(path, (size_t)(last - path));
	if (!k.todo) {
		verr_sys(e, "ERR_NOMEM", NULL, "resolving /%s", path);
		return -1;
	}
	for (p = k.todo; *p;) {
		char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		char *next = slash ? slash + 1 : p + len;
		if (len == 0 || (len == 1 && p[0] == '.')) {
			p = next;
			continue;
		}
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			if (k.depth > 0)
				k.depth--;
			p = next;
			continue;
		}
		if ((ret = walk_name(w, &k, &p, len, next, create, path, e)) != 0)
			goto out;
	}
	*dir = k.stack[k.depth];
out:
	free(k.todo);
	return ret;
}

/* ---- whiteouts --------------------------------------------------------- */

int e4_remove(struct e4 *w, const char *path, bool only_lower, struct verr *e)
{
	ext2_ino_t dir;
	const char *name;
	int rc = e4_tree_parent(w, path, false, &dir, &name, e);
	if (rc != 0)
		return rc < 0 ? -1 : 0; /* no parent: nothing to remove */
	struct node *x = e4_tree_find(w, dir, name, strlen(name));
	if (!x || (only_lower && x->layer == w->layer))
		return 0;
	return e4_tree_unlink(w, dir, x, path, e);
}

int e4_clear_dir(struct e4 *w, const char *path, struct verr *e)
{
	ext2_ino_t dir = EXT2_ROOT_INO;
	if (path[0]) {
		ext2_ino_t parent;
		const char *name;
		int rc = e4_tree_parent(w, path, false, &parent, &name, e);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
		struct node *x = e4_tree_find(w, parent, name, strlen(name));
		if (!x || x->type != EXT2_FT_DIR)
			return 0;
		dir = x->ino;
	}
	return clear_children(w, dir, path, true, e);
}
