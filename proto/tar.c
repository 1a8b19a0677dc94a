/* Tar reader and safe extractor (POSIX.1-2001 ustar/pax, plus GNU
 * ././@LongLink names); the writer is tar-write.c. */
#define _GNU_SOURCE
#include "tar.h"
#include "tar-impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define PAX_MAX (1u << 20)

/* ---- reader ---------------------------------------------------------- */

void tar_reader_init(struct tar_reader *t, tar_read_fn rd, void *ctx)
{
	memset(t, 0, sizeof *t);
	t->rd = rd;
	t->ctx = ctx;
}

static int terr(struct tar_reader *t, int kind, const char *msg)
{
	snprintf(t->err, sizeof t->err, "%s (at byte %llu of the archive)", msg, (unsigned long long)t->consumed);
	t->errkind = kind;
	return -1;
}

static int read_full(struct tar_reader *t, void *buf, size_t n, bool eof_ok)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = t->rd(t->ctx, (char *)buf + got, n - got);
		if (r < 0)
			return terr(t, TAR_E_SOURCE, "reading the archive failed");
		if (r == 0) {
			if (eof_ok && got == 0)
				return 0;
			return terr(t, TAR_E_FORMAT, "archive is truncated");
		}
		got += (size_t)r;
		t->consumed += (uint64_t)r;
	}
	return 1;
}

static int skip(struct tar_reader *t, uint64_t n)
{
	char buf[4096];
	while (n) {
		size_t k = n > sizeof buf ? sizeof buf : (size_t)n;
		if (read_full(t, buf, k, false) < 0)
			return -1;
		n -= k;
	}
	return 0;
}

/* Octal (NUL/space terminated) or base-256 numeric field. */
static int num_field(const char *f, size_t n, long long *out)
{
	unsigned char c0 = (unsigned char)f[0];
	if (c0 & 0x80) {
		if (c0 != 0x80 || n > 9 + 8)
			return -1; /* negative or absurdly large */
		unsigned long long v = 0;
		for (size_t i = 1; i < n; i++) {
			if (v >> 55)
				return -1;
			v = v << 8 | (unsigned char)f[i];
		}
		if (v > (unsigned long long)INT64_MAX)
			return -1;
		*out = (long long)v;
		return 0;
	}
	size_t i = 0;
	while (i < n && f[i] == ' ')
		i++;
	unsigned long long v = 0;
	size_t digits = 0;
	for (; i < n && f[i] >= '0' && f[i] <= '7'; i++, digits++)
		v = v * 8 + (unsigned)(f[i] - '0');
	for (; i < n; i++)
		if (f[i] != ' ' && f[i] != 0)
			return -1;
	if (digits > 21)
		return -1;
	*out = (long long)v;
	return 0;
}

static char *fielddup(const char *f, size_t n)
{
	size_t l = strnlen(f, n);
	char *s = malloc(l + 1);
	if (s) {
		memcpy(s, f, l);
		s[l] = 0;
	}
	return s;
}

struct pending {
	char *path, *link;
	bool has_size, has_uid, has_gid, has_mtime;
	long long size, uid, gid, mtime;
};

static void pending_free(struct pending *p)
{
	free(p->path);
	free(p->link);
	memset(p, 0, sizeof *p);
}

static int parse_decimal(const char *s, size_t n, long long *out)
{
	long long v = 0;
	size_t i = 0;
	if (n == 0)
		return -1;
	for (; i < n && s[i] != '.'; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v; /* a fraction (mtime) is dropped */
	return 0;
}

static int parse_pax(struct tar_reader *t, char *d, size_t n, struct pending *p)
{
	size_t i = 0;
	while (i < n) {
		size_t len = 0, j = i;
		while (j < n && d[j] >= '0' && d[j] <= '9' && len < PAX_MAX)
			len = len * 10 + (size_t)(d[j++] - '0');
		if (j >= n || d[j] != ' ' || len < (j - i) + 3 || i + len > n || d[i + len - 1] != '\n')
			return terr(t, TAR_E_FORMAT, "malformed pax extended header");
		char *kv = d + j + 1, *endp = d + i + len - 1;
		char *eq = memchr(kv, '=', (size_t)(endp - kv));
		if (!eq)
			return terr(t, TAR_E_FORMAT, "malformed pax record");
		size_t kl = (size_t)(eq - kv), vl = (size_t)(endp - eq - 1);
		const char *v = eq + 1;
		if (memchr(v, 0, vl))
			return terr(t, TAR_E_FORMAT, "NUL in a pax value");
		char **dst = NULL;
		if (kl == 4 && !memcmp(kv, "path", 4))
			dst = &p->path;
		else if (kl == 8 && !memcmp(kv, "linkpath", 8))
			dst = &p->link;
		if (dst) {
			free(*dst);
			if (!(*dst = fielddup(v, vl)))
				return terr(t, TAR_E_IO, "out of memory");
		} else if (kl == 4 && !memcmp(kv, "size", 4)) {
			if (parse_decimal(v, vl, &p->size) < 0)
				return terr(t, TAR_E_FORMAT, "bad pax size");
			p->has_size = true;
		} else if (kl == 3 && !memcmp(kv, "uid", 3)) {
			if (parse_decimal(v, vl, &p->uid) < 0)
				return terr(t, TAR_E_FORMAT, "bad pax uid");
			p->has_uid = true;
		} else if (kl == 3 && !memcmp(kv, "gid", 3)) {
			if (parse_decimal(v, vl, &p->gid) < 0)
				return terr(t, TAR_E_FORMAT, "bad pax gid");
			p->has_gid = true;
		} else if (kl == 5 && !memcmp(kv, "mtime", 5)) {
			if (vl && v[0] != '-' && parse_decimal(v, vl, &p->mtime) == 0)
				p->has_mtime = true;
		}
		i += len;
	}
	return 0;
}

static int read_blob(struct tar_reader *t, long long size, char **out)
{
	if (size < 0 || size > PAX_MAX)
		return terr(t, TAR_E_FORMAT, "extended header too large");
	size_t padded = ((size_t)size + BLK - 1) & ~(size_t)(BLK - 1);
	char *d = malloc(padded + 1);
	if (!d)
		return terr(t, TAR_E_IO, "out of memory");
	if (padded && read_full(t, d, padded, false) < 0) {
		free(d);
		return -1;
	}
	d[size] = 0;
	*out = d;
	return 0;
}

/* A block of zeros: the end of the archive. */
static bool zero_block(const char *h)
{
	for (int i = 0; i < BLK; i++)
		if (h[i])
			return false;
	return true;
}

struct hnum {
	long long size, mode, uid, gid, mtime;
};

/* Header h's checksum checked, and its numeric fields read into n. */
static int header_check(struct tar_reader *t, const char *h, struct hnum *n)
{
	long long chk, want = 0;
	if (num_field(h + 148, 8, &chk) < 0)
		return terr(t, TAR_E_FORMAT, "not a tar archive (bad header checksum field)");
	for (int i = 0; i < BLK; i++)
		want += (i >= 148 && i < 156) ? ' ' : (unsigned char)h[i];
	if (chk != want)
		return terr(t, TAR_E_FORMAT, "not a tar archive (header checksum mismatch)");
	if (num_field(h + 124, 12, &n->size) < 0 || num_field(h + 100, 8, &n->mode) < 0 ||
	    num_field(h + 108, 8, &n->uid) < 0 || num_field(h + 116, 8, &n->gid) < 0 ||
	    num_field(h + 136, 12, &n->mtime) < 0)
		return terr(t, TAR_E_FORMAT, "bad numeric field in a tar header");
	return 0;
}

static bool is_ext_header(char type)
{
	return type == 'x' || type == 'g' || type == 'L' || type == 'K';
}

/* An extended header's data (pax 'x', GNU 'L' and 'K'; a global pax 'g'
 * is read and dropped): what it says of the next entry, into p. */
static int read_ext(struct tar_reader *t, char type, long long size, struct pending *p)
{
	char *d = NULL;
	int r = 0;
	if (read_blob(t, size, &d) < 0)
		return -1;
	if (type == 'x')
		r = parse_pax(t, d, (size_t)size, p);
	else if (type == 'L' || type == 'K') {
		char **dst = type == 'L' ? &p->path : &p->link;
		free(*dst);
		*dst = fielddup(d, (size_t)size);
		r = *dst ? 0 : terr(t, TAR_E_IO, "out of memory");
	}
	free(d);
	return r;
}

/* t->e from header h (numbers n), what extended headers said (p) taking
 * precedence; p's names move into it. */
static int fill_entry(struct tar_reader *t, const char *h, const struct hnum *n, struct pending *p)
{
	struct tar_entry *e = &t->e;
	char type = h[156];
	if (p->path) {
		e->path = p->path;
		p->path = NULL;
	} else {
		char name[257];
		size_t pl = 0;
		if (!memcmp(h + 257, "ustar", 5) && h[345]) {
			pl = strnlen(h + 345, 155);
			memcpy(name, h + 345, pl);
			name[pl++] = '/';
		}
		size_t nl = strnlen(h, 100);
		memcpy(name + pl, h, nl);
		name[pl + nl] = 0;
		e->path = strdup(name);
	}
	if (p->link) {
		e->link = p->link;
		p->link = NULL;
	} else
		e->link = fielddup(h + 157, 100);
	if (!e->path || !e->link)
		return terr(t, TAR_E_IO, "out of memory");
	if (strlen(e->path) > NAME_MAX_LEN || strlen(e->link) > NAME_MAX_LEN)
		return terr(t, TAR_E_FORMAT, "name longer than 4096 bytes");
	e->type = type ? type : '0';
	if (e->type == '7')
		e->type = '0';
	e->mode = (unsigned)n->mode & 07777;
	e->uid = p->has_uid ? p->uid : n->uid;
	e->gid = p->has_gid ? p->gid : n->gid;
	e->mtime = p->has_mtime ? p->mtime : n->mtime;
	e->size = (uint64_t)(p->has_size ? p->size : n->size);
	/* Only files carry data; a link, dir or device with a size
	 * has that much to skip (which is what GNU tar does). */
	t->left = e->size;
	t->pad = (BLK - (e->size % BLK)) % BLK;
	if (e->type != '0')
		e->size = 0;
	return 0;
}

int tar_next(struct tar_reader *t, struct tar_entry **ep)
{
	struct pending p = { 0 };
	struct hnum n;
	char h[BLK];
	int r;

	if (skip(t, t->left + t->pad) < 0)
		return -1;
	t->left = t->pad = 0;
	free(t->e.path);
	free(t->e.link);
	memset(&t->e, 0, sizeof t->e);

	for (;;) {
		r = read_full(t, h, BLK, true);
		if (r < 0)
			break;
		/* EOF without the end blocks is accepted, and the second
		 * zero block is not required. */
		if (r == 0 || zero_block(h)) {
			r = 0;
			break;
		}
		if ((r = header_check(t, h, &n)) < 0)
			break;
		if (is_ext_header(h[156])) {
			if ((r = read_ext(t, h[156], n.size, &p)) < 0)
				break;
			continue;
		}
		if ((r = fill_entry(t, h, &n, &p)) == 0) {
			*ep = &t->e;
			r = 1;
		}
		break;
	}
	pending_free(&p);
	return r;
}

ssize_t tar_data_at(struct tar_reader *t, const void **p, void *buf, size_t n)
{
	if (t->e.type != '0' || !t->left)
		return 0;
	if (n > t->left)
		n = (size_t)t->left;
	ssize_t r;
	if (t->peek) {
		r = t->peek(t->ctx, p, n);
	} else {
		r = t->rd(t->ctx, buf, n);
		*p = buf;
	}
	if (r < 0) {
		terr(t, TAR_E_SOURCE, "reading the archive failed");
		return -1;
	}
	if (r == 0) {
		terr(t, TAR_E_FORMAT, "archive is truncated");
		return -1;
	}
	t->left -= (uint64_t)r;
	t->consumed += (uint64_t)r;
	return r;
}

ssize_t tar_data(struct tar_reader *t, void *buf, size_t n)
{
	const void *p;
	ssize_t r;
	tar_peek_fn peek = t->peek;

	t->peek = NULL; /* into buf */
	r = tar_data_at(t, &p, buf, n);
	t->peek = peek;
	return r;
}

void tar_reader_free(struct tar_reader *t)
{
	free(t->e.path);
	free(t->e.link);
	memset(&t->e, 0, sizeof t->e);
}

/* ---- extractor ------------------------------------------------------- */

int tar_clean_path(const char *in, char *out, size_t outlen)
{
	size_t o = 0, l;
	const char *p = in, *s;
	while ((s = tar_path_next(&p, &l))) {
		if (l == 1 && s[0] == '.')
			continue;
		if (l == 2 && s[0] == '.' && s[1] == '.')
			return -1;
		if (o + l + 2 > outlen)
			return -1;
		if (o)
			out[o++] = '/';
		memcpy(out + o, s, l);
		o += l;
	}
	out[o] = 0;
	return 0;
}

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
struct vm_open_how {
	uint64_t flags, mode, resolve;
};
#define V_RESOLVE_NO_MAGICLINKS 0x02
#define V_RESOLVE_BENEATH 0x08

static int openat2_supported = -1;

int tar_walk_nofollow(int dirfd, const char *rel, int flags)
{
	char tmp[4096], *save = NULL;
	int fd;

	if ((size_t)snprintf(tmp, sizeof tmp, "%s", rel) >= sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	for (char *c = strtok_r(tmp, "/", &save); c && fd >= 0;) {
		char *next = strtok_r(NULL, "/", &save);
		int nfd = openat(fd, c, (next ? O_PATH | O_DIRECTORY : flags) | O_NOFOLLOW | O_CLOEXEC);
		int saved = errno;
		close(fd);
		errno = saved;
		fd = nfd;
		c = next;
	}
	return fd;
}

/* Open a directory at relative path rel beneath rootfd, never leaving it.
 * With openat2 symlinks inside the tree are followed while they stay
 * beneath; without it, no symlink is followed at all. */
static int open_beneath(int rootfd, const char *rel, int flags)
{
	if (!*rel)
		return openat(rootfd, ".", flags | O_CLOEXEC);
	if (openat2_supported != 0) {
		struct vm_open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC),
					   .resolve = V_RESOLVE_BENEATH | V_RESOLVE_NO_MAGICLINKS };
		long fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
		if (fd >= 0 || errno != ENOSYS) {
			openat2_supported = 1;
			return (int)fd;
		}
		openat2_supported = 0;
	}
	return tar_walk_nofollow(rootfd, rel, flags);
}

struct xctx {
	const struct tar_extract_opts *o;
	char *err;
	size_t errlen;
	char dirpath[NAME_MAX_LEN + 1]; /* cached parent directory */
	int dirfd;
	char *buf;
	struct dmode {
		char *path;
		unsigned mode;
		int64_t mtime;
	} * dirs;
	size_t ndirs, capdirs;
};

static int xerr(struct xctx *x, int kind, const char *path, const char *what)
{
	snprintf(x->err, x->errlen, "%s: %s", path, what);
	return kind;
}

static int xsys(struct xctx *x, const char *path, const char *what)
{
	char m[200];
	if (errno == EXDEV || errno == ELOOP)
		return xerr(x, TAR_E_ESCAPE, path, "path escapes the target directory (through a symlink)");
	snprintf(m, sizeof m, "%s: %s", what, strerror(errno));
	return xerr(x, errno == ENOSPC || errno == EDQUOT ? TAR_E_LIMIT : TAR_E_IO, path, m);
}

/* fd of the directory holding rel's last component, creating missing
 * parents (0755) beneath the root. */
static int parent_fd(struct xctx *x, const char *rel, const char **base)
{
	const char *slash = strrchr(rel, '/');
	size_t dl = slash ? (size_t)(slash - rel) : 0;
	*base = slash ? slash + 1 : rel;
	if (x->dirfd >= 0 && strlen(x->dirpath) == dl && !memcmp(x->dirpath, rel, dl))
		return x->dirfd;
	if (x->dirfd >= 0)
		close(x->dirfd);
	x->dirfd = -1;
	memcpy(x->dirpath, rel, dl);
	x->dirpath[dl] = 0;
	int fd = open_beneath(x->o->rootfd, x->dirpath, O_PATH | O_DIRECTORY);
	if (fd < 0 && errno == ENOENT) {
		/* Create each missing component. */
		char part[NAME_MAX_LEN + 1];
		for (size_t i = 0; i <= dl; i++) {
			if (i < dl && x->dirpath[i] != '/')
				continue;
			memcpy(part, x->dirpath, i);
			part[i] = 0;
			const char *slash2 = strrchr(part, '/');
			char pp[NAME_MAX_LEN + 1];
			size_t ppl = slash2 ? (size_t)(slash2 - part) : 0;
			memcpy(pp, part, ppl);
			pp[ppl] = 0;
			int pfd = open_beneath(x->o->rootfd, pp, O_PATH | O_DIRECTORY);
			if (pfd < 0)
				return -1;
			int r = mkdirat(pfd, slash2 ? slash2 + 1 : part, 0755);
			int saved = errno;
			close(pfd);
			if (r < 0 && saved != EEXIST) {
				errno = saved;
				return -1;
			}
		}
		fd = open_beneath(x->o->rootfd, x->dirpath, O_PATH | O_DIRECTORY);
	}
	if (fd < 0)
		return -1;
	x->dirfd = fd;
	return fd;
}

static unsigned final_mode(struct xctx *x, unsigned mode)
{
	return x->o->strip_special_bits ? mode & 0777 : mode & 07777;
}

static void owner(struct xctx *x, int fd, const char *name, const struct tar_entry *e)
{
	long long u = -1, g = -1;
	if (x->o->preserve_owner) {
		u = e->uid;
		g = e->gid;
	} else if (x->o->chown_uid >= 0) {
		u = x->o->chown_uid;
		g = x->o->chown_gid;
	}
	if (u < 0)
		return;
	/* Errors ignored as tar does for a non-root extractor. */
	if (name)
		(void)!fchownat(fd, name, (uid_t)u, (gid_t)g, AT_SYMLINK_NOFOLLOW);
	else
		(void)!fchown(fd, (uid_t)u, (gid_t)g);
}

static int x_file(struct xctx *x, struct tar_reader *t, const struct tar_entry *e, int pfd, const char *base,
		  const char *rel, struct tar_stats *st)
{
	int fd = openat(pfd, base, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == ELOOP || errno == ETXTBSY)) {
		/* A symlink (or busy binary) in the way is replaced, not followed. */
		if (unlinkat(pfd, base, 0) == 0)
			fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	}
	if (fd < 0)
		return xsys(x, rel, "cannot create file");
	for (;;) {
		const void *v;
		ssize_t n = tar_data_at(t, &v, x->buf, XBUF);
		const char *buf = v;
		if (n < 0) {
			close(fd);
			snprintf(x->err, x->errlen, "%s", t->err);
			return t->errkind;
		}
		if (n == 0)
			break;
		st->bytes += (uint64_t)n;
		if (x->o->max_bytes && st->bytes > x->o->max_bytes) {
			close(fd);
			snprintf(x->err, x->errlen, "upload exceeds the limit of %llu bytes",
				 (unsigned long long)x->o->max_bytes);
			return TAR_E_LIMIT;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));
			if (w < 0) {
				int r = xsys(x, rel, "write failed");
				close(fd);
				return r;
			}
			off += w;
		}
	}
	owner(x, fd, NULL, e);
	fchmod(fd, final_mode(x, e->mode));
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = e->mtime } };
	futimens(fd, ts);
	if (close(fd) < 0)
		return xsys(x, rel, "close failed");
	st->files++;
	return TAR_OK;
}

/* Apply top_from -> top_to to a cleaned path in place. */
static int rename_top(const struct tar_extract_opts *o, char *rel, size_t cap)
{
	if (!o->top_from || !strcmp(o->top_from, "."))
		return 0;
	size_t fl = strlen(o->top_from), tl = strlen(o->top_to), rl = strlen(rel);
	if (strncmp(rel, o->top_from, fl) || (rel[fl] && rel[fl] != '/'))
		return -1;
	if (rl - fl + tl + 1 > cap)
		return -1;
	memmove(rel + tl, rel + fl, rl - fl + 1);
	memcpy(rel, o->top_to, tl);
	return 0;
}

/* A directory: made, or one already there kept; its mode and time are
 * set at the end (x_finish). */
static int x_dir(struct xctx *x, const struct tar_entry *e, int pfd, const char *base, const char *rel,
		 struct tar_stats *st)
{
	if (mkdirat(pfd, base, 0700) < 0) {
		struct stat sb;
		if (errno != EEXIST || fstatat(pfd, base, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(sb.st_mode))
			return errno == EEXIST ? xerr(x, TAR_E_IO, rel, "exists and is not a directory")
					       : xsys(x, rel, "cannot create directory");
	}
	owner(x, pfd, base, e);
	if (x->ndirs == x->capdirs) {
		size_t cap = x->capdirs ? x->capdirs * 2 : 64;
		void *nd = realloc(x->dirs, cap * sizeof *x->dirs);
		if (!nd)
			return xerr(x, TAR_E_IO, rel, "out of memory");
		x->dirs = nd;
		x->capdirs = cap;
	}
	if (!(x->dirs[x->ndirs].path = strdup(rel)))
		return xerr(x, TAR_E_IO, rel, "out of memory");
	x->dirs[x->ndirs].mode = final_mode(x, e->mode);
	x->dirs[x->ndirs++].mtime = e->mtime;
	st->dirs++;
	return TAR_OK;
}

/* A symlink, replacing what is in the way unless that is a directory. */
static int x_symlink(struct xctx *x, const struct tar_entry *e, int pfd, const char *base, const char *rel,
		     struct tar_stats *st)
{
	struct stat sb;
	if (symlinkat(e->link, pfd, base) < 0 &&
	    (errno != EEXIST || fstatat(pfd, base, &sb, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(sb.st_mode) ||
	     unlinkat(pfd, base, 0) < 0 || symlinkat(e->link, pfd, base) < 0))
		return xsys(x, rel, "cannot create symlink");
	owner(x, pfd, base, e);
	st->symlinks++;
	return TAR_OK;
}

/* A hard link to an entry of this archive, found beneath the root. */
static int x_hardlink(struct xctx *x, const struct tar_entry *e, int pfd, const char *base, const char *rel,
		      struct tar_stats *st)
{
	char lrel[NAME_MAX_LEN + 2], ldir[NAME_MAX_LEN + 2];
	if (tar_clean_path(e->link, lrel, sizeof lrel) < 0 || !lrel[0] || rename_top(x->o, lrel, sizeof lrel) < 0)
		return xerr(x, TAR_E_ESCAPE, e->link, "hard link target escapes the target directory");
	const char *lslash = strrchr(lrel, '/');
	size_t ldl = lslash ? (size_t)(lslash - lrel) : 0;
	memcpy(ldir, lrel, ldl);
	ldir[ldl] = 0;
	int lfd = open_beneath(x->o->rootfd, ldir, O_PATH | O_DIRECTORY);
	if (lfd < 0)
		return xsys(x, e->link, "hard link target not found");
	unlinkat(pfd, base, 0);
	int lr = linkat(lfd, lslash ? lslash + 1 : lrel, pfd, base, 0);
	int saved = errno;
	close(lfd);
	if (lr < 0) {
		errno = saved;
		return xsys(x, rel, "cannot create hard link");
	}
	st->hardlinks++;
	return TAR_OK;
}

/* A device node or FIFO, when the options allow them; else skipped. */
static int x_node(struct xctx *x, const struct tar_entry *e, int pfd, const char *base, const char *rel,
		  struct tar_stats *st)
{
	if (!x->o->devices) {
		st->skipped++;
		return TAR_OK;
	}
	mode_t m = e->type == '3' ? S_IFCHR : e->type == '4' ? S_IFBLK : S_IFIFO;
	if (mknodat(pfd, base, m | (e->mode & 0777), 0) < 0)
		return xsys(x, rel, "cannot create node");
	return TAR_OK;
}

/* One entry: its path checked and placed beneath the root, then made. */
static int x_entry(struct xctx *x, struct tar_reader *t, const struct tar_entry *e, struct tar_stats *st)
{
	char rel[NAME_MAX_LEN + 2];
	const char *base;
	int pfd;

	if (tar_clean_path(e->path, rel, sizeof rel) < 0)
		return xerr(x, TAR_E_ESCAPE, e->path, "path traversal (\"..\") is not allowed");
	if (rel[0] && rename_top(x->o, rel, sizeof rel) < 0)
		return xerr(x, TAR_E_ESCAPE, e->path, "entry outside the requested path");
	if (!rel[0]) /* "./" : the target itself */
		return e->type == '5' ? TAR_OK : xerr(x, TAR_E_FORMAT, e->path, "entry has an empty name");
	pfd = parent_fd(x, rel, &base);
	if (pfd < 0)
		return xsys(x, rel, "cannot open parent directory");
	switch (e->type) {
	case '0': return x_file(x, t, e, pfd, base, rel, st);
	case '5': return x_dir(x, e, pfd, base, rel, st);
	case '2': return x_symlink(x, e, pfd, base, rel, st);
	case '1': return x_hardlink(x, e, pfd, base, rel, st);
	case '3':
	case '4':
	case '6': return x_node(x, e, pfd, base, rel, st);
	default: st->skipped++; return TAR_OK;
	}
}

/* Directory modes last, deepest first, so a read-only directory does not
 * stop its own contents from being written (none after an error); then
 * x's memory and descriptor. */
static void x_finish(struct xctx *x, int r)
{
	for (size_t i = x->ndirs; i-- > 0;) {
		if (r == TAR_OK) {
			int fd = open_beneath(x->o->rootfd, x->dirs[i].path, O_RDONLY | O_DIRECTORY);
			if (fd >= 0) {
				fchmod(fd, x->dirs[i].mode);
				struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = x->dirs[i].mtime } };
				futimens(fd, ts);
				close(fd);
			}
		}
		free(x->dirs[i].path);
	}
	free(x->dirs);
	free(x->buf);
	if (x->dirfd >= 0)
		close(x->dirfd);
}

int tar_extract(struct tar_reader *t, const struct tar_extract_opts *o, struct tar_stats *st, char *err, size_t errlen)
{
	struct xctx x = { .o = o, .err = err, .errlen = errlen, .dirfd = -1 };
	struct tar_entry *e;
	uint64_t n = 0;
	int r = TAR_OK;
	memset(st, 0, sizeof *st);
	err[0] = 0;
	if (!(x.buf = malloc(XBUF))) {
		snprintf(err, errlen, "out of memory");
		return TAR_E_IO;
	}

	for (;;) {
		int k = tar_next(t, &e);
		if (k < 0) {
			snprintf(err, errlen, "%s", t->err);
			r = t->errkind;
			break;
		}
		if (k == 0)
			break;
		if (o->max_entries && ++n > o->max_entries) {
			snprintf(err, errlen, "more than %llu entries", (unsigned long long)o->max_entries);
			r = TAR_E_LIMIT;
			break;
		}
		if ((r = x_entry(&x, t, e, st)) != TAR_OK)
			break;
	}
	x_finish(&x, r);
	return r;
}
