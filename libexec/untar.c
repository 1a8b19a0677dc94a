/* untar: a guest's tar stream, extracted so that it cannot escape.
 *
 * Why libarchive reads the archive here and proto/tar.c does not: the
 * bytes come from a guest that may be hostile, and the project prefers a
 * well-kept, distribution-patched, continuously fuzzed (OSS-Fuzz) parser
 * to our own on the host.  Only its tar reader is enabled (no filters, no
 * other formats), and every byte it reads passes through ua_read, which
 * counts it against max_bytes.  Its own disk writer (archive_write_disk,
 * with ARCHIVE_EXTRACT_SECURE_SYMLINKS | _NODOTDOT | _NOABSOLUTEPATHS)
 * checks paths with lstat and then acts on path names; we want the kernel
 * to do the resolution (openat2 beneath a directory only we have written
 * in, no symlink crossed at all), so the writer below is ours and applies
 * those three rules and more: no device nodes or FIFOs (skipped), no
 * setuid, setgid or sticky bits, no owners from the archive, hard links
 * only to regular files this download made.  proto/tar.c stays the guest
 * agent's (it extracts uploads from the host, which it trusts, and it must
 * build static with musl, without libarchive).
 */
#define _GNU_SOURCE
#include "untar.h"
#include "../proto/tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define UBUF (1 << 18) /* read and write in 256 KiB pieces */
#define TOP "t"	       /* the result's name inside the hidden directory */

void untar_printable(char *out, size_t outlen, const char *s, size_t len, size_t max)
{
	size_t o = 0, i = 0;
	if (!outlen)
		return;
	if (max > len)
		max = len;
	while (i < max && o + 8 < outlen) {
		unsigned char c = (unsigned char)s[i];
		size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
		bool ok = n && i + n <= len;
		uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
		for (size_t k = 1; ok && k < n; k++) {
			unsigned char d = (unsigned char)s[i + k];
			ok = (d & 0xc0) == 0x80;
			cp = cp << 6 | (d & 0x3f);
		}
		/* overlong forms, surrogates, out of range, and controls:
		 * C0, DEL and C1 (U+0080..U+009F, which terminals obey too) */
		if (ok && ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
			   (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff))
			ok = false;
		if (!ok || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
			i++;
			continue;
		}
		if (o + n + 1 >= outlen)
			break;
		memcpy(out + o, s + i, n);
		o += n;
		i += n;
	}
	if (i < len && o + 4 <= outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o < outlen ? o : outlen - 1] = 0;
}

struct udir {
	char *rel;
	unsigned mode;
	int64_t mtime;
	int depth;
};

struct ux {
	const struct untar_opts *o;
	struct untar_stats *st;
	char *err;
	size_t errlen;
	untar_read_fn rd;
	void *ctx;
	uint64_t received, max_bytes, max_entries;
	unsigned keep; /* mode bits kept: 0777 less the umask */
	bool source_failed, over_limit, aborted;
	char *buf;
	int tfd;		       /* the hidden directory, O_PATH */
	char tname[40];		       /* its name in o->dirfd */
	char pdir[UNTAR_NAME_MAX + 8]; /* cached parent directory ... */
	int pfd;		       /* ... and its fd */
	struct udir *dirs;
	size_t ndirs, capdirs;
};

static int uerr(struct ux *x, int kind, const char *name, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* "NAME: what"; NAME (guest bytes) made printable and cut at 200. */
static int uerr(struct ux *x, int kind, const char *name, const char *fmt, ...)
{
	char what[300], pn[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (name) {
		untar_printable(pn, sizeof pn, name, strlen(name), 200);
		snprintf(x->err, x->errlen, "%s: %s", pn, what);
	} else
		snprintf(x->err, x->errlen, "%s", what);
	return kind;
}

static int usys(struct ux *x, const char *name, const char *what)
{
	int e = errno;
	if (e == ELOOP || e == EXDEV || e == ENOTDIR)
		return uerr(x, UNTAR_E_UNSAFE, name,
			    "%s: the path crosses a symlink or a non-directory "
			    "(refused, nothing is followed)",
			    what);
	return uerr(x, e == ENOSPC || e == EDQUOT ? UNTAR_E_LIMIT : UNTAR_E_LOCAL, name, "%s: %s", what, strerror(e));
}

static la_ssize_t ua_read(struct archive *a, void *cd, const void **out)
{
	struct ux *x = cd;
	if (x->o->abort && *x->o->abort) {
		x->aborted = true;
		archive_set_error(a, EINTR, "interrupted");
		return -1;
	}
	ssize_t n = x->rd(x->ctx, x->buf, UBUF);
	if (n < 0) {
		x->source_failed = true;
		archive_set_error(a, EIO, "the transfer was cut short");
		return -1;
	}
	x->received += (uint64_t)n;
	if (x->received > x->max_bytes) {
		x->over_limit = true;
		archive_set_error(a, EFBIG, "over the limit");
		return -1;
	}
	*out = x->buf;
	return n;
}

/* openat2 beneath the hidden directory, crossing no symlink (magic or
 * not) and no mount; rel has no "..", no "." and no empty component. */
static int open_beneath(struct ux *x, const char *rel, int flags)
{
	static int have_openat2 = -1;
	if (have_openat2 != 0) {
		struct open_how how = { .flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
					.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
						   RESOLVE_NO_XDEV };
		long fd = syscall(SYS_openat2, x->tfd, rel, &how, sizeof how);
		if (fd >= 0 || (errno != ENOSYS && errno != EPERM)) {
			have_openat2 = 1;
			return (int)fd;
		}
		have_openat2 = 0; /* an old kernel, or a seccomp filter */
	}
	/* The same walk by hand: one component at a time, none followed. */
	return tar_walk_nofollow(x->tfd, rel, flags);
}

/* A guest name -> a path under the hidden directory ("t" or "t/..."),
 * or an error: absolute, "..", outside top, too long or too deep. */
static int map_name(struct ux *x, const char *name, char *out, size_t outlen)
{
	if (!name || !*name)
		return uerr(x, UNTAR_E_FORMAT, NULL, "an entry has no name");
	size_t nl = strnlen(name, UNTAR_NAME_MAX + 1);
	if (nl > UNTAR_NAME_MAX)
		return uerr(x, UNTAR_E_LIMIT, name, "name longer than %d bytes", UNTAR_NAME_MAX);
	if (name[0] == '/')
		return uerr(x, UNTAR_E_UNSAFE, name, "absolute name in the archive (refused)");
	bool any = !strcmp(x->o->top, ".");
	size_t o = (size_t)snprintf(out, outlen, "%s", TOP);
	int comps = 0;
	size_t l;
	for (const char *p = name, *s; (s = tar_path_next(&p, &l));) {
		if (l == 1 && s[0] == '.')
			continue;
		if (l == 2 && s[0] == '.' && s[1] == '.')
			return uerr(x, UNTAR_E_UNSAFE, name, "\"..\" in a name (refused)");
		if (comps++ == 0 && !any) {
			if (l != strlen(x->o->top) || memcmp(s, x->o->top, l))
				return uerr(x, UNTAR_E_UNSAFE, name, "entry outside the path asked for (refused)");
			continue; /* the top itself is TOP */
		}
		if (comps > UNTAR_DEPTH_MAX)
			return uerr(x, UNTAR_E_LIMIT, name, "more than %d levels deep", UNTAR_DEPTH_MAX);
		if (o + 1 + l + 1 > outlen)
			return uerr(x, UNTAR_E_LIMIT, name, "name too long");
		out[o++] = '/';
		memcpy(out + o, s, l);
		o += l;
	}
	out[o] = 0;
	if (comps == 0 && !any)
		return uerr(x, UNTAR_E_UNSAFE, name, "entry outside the path asked for (refused)");
	return UNTAR_OK;
}

static int note_dir(struct ux *x, const char *rel, unsigned mode, int64_t mtime)
{
	int depth = 0;
	for (const char *c = rel; *c; c++)
		depth += *c == '/';
	if (x->ndirs == x->capdirs) {
		size_t cap = x->capdirs ? x->capdirs * 2 : 64;
		void *nd = realloc(x->dirs, cap * sizeof *x->dirs);
		if (!nd)
			return -1;
		x->dirs = nd;
		x->capdirs = cap;
	}
	char *r = strdup(rel);
	if (!r)
		return -1;
	x->dirs[x->ndirs++] = (struct udir){ r, mode, mtime, depth };
	return 0;
}

/* fd of the directory that holds rel's last component (its name in
 * *base), creating missing parents (0700 now, 0755 at the end). */
static int parent_of(struct ux *x, const char *rel, const char **base)
{
	const char *slash = strrchr(rel, '/');
	size_t dl = slash ? (size_t)(slash - rel) : 0;
	*base = slash ? slash + 1 : rel;
	if (!slash)
		return x->tfd;
	if (x->pfd >= 0 && strlen(x->pdir) == dl && !memcmp(x->pdir, rel, dl))
		return x->pfd;
	if (x->pfd >= 0)
		close(x->pfd);
	memcpy(x->pdir, rel, dl);
	x->pdir[dl] = 0;
	x->pfd = open_beneath(x, x->pdir, O_PATH | O_DIRECTORY);
	if (x->pfd >= 0 || errno != ENOENT)
		return x->pfd;
	char part[UNTAR_NAME_MAX + 8];
	for (size_t i = 0; i <= dl; i++) {
		if (i < dl && x->pdir[i] != '/')
			continue;
		memcpy(part, x->pdir, i);
		part[i] = 0;
		const char *pb;
		int pfd = open_beneath(x, part, O_PATH | O_DIRECTORY);
		if (pfd >= 0) {
			close(pfd);
			continue;
		}
		if (errno != ENOENT)
			return -1;
		char *sl = strrchr(part, '/');
		char up[UNTAR_NAME_MAX + 8];
		snprintf(up, sizeof up, "%.*s", sl ? (int)(sl - part) : 0, part);
		pb = sl ? sl + 1 : part;
		int ufd = sl ? open_beneath(x, up, O_PATH | O_DIRECTORY) : dup(x->tfd);
		if (ufd < 0)
			return -1;
		int r = mkdirat(ufd, pb, 0700);
		int saved = errno;
		close(ufd);
		if (r < 0 && saved != EEXIST) {
			errno = saved;
			return -1;
		}
		if (r == 0 && note_dir(x, part, 0755 & x->keep, -1) < 0) {
			errno = ENOMEM;
			return -1;
		}
	}
	x->pfd = open_beneath(x, x->pdir, O_PATH | O_DIRECTORY);
	return x->pfd;
}

/* Make room for a non-directory at pfd/base: what is there goes, unless it
 * is a directory (an archive replacing a directory with something else
 * is refused). */
static int clear_for(struct ux *x, int pfd, const char *base, const char *name)
{
	struct stat sb;
	if (fstatat(pfd, base, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? UNTAR_OK : usys(x, name, "cannot look at it");
	if (S_ISDIR(sb.st_mode))
		return uerr(x, UNTAR_E_UNSAFE, name, "would replace a directory the archive made (refused)");
	if (unlinkat(pfd, base, 0) < 0)
		return usys(x, name, "cannot replace it");
	return UNTAR_OK;
}

static int x_file(struct ux *x, struct archive *a, struct archive_entry *e, int pfd, const char *base, const char *name)
{
	int r = clear_for(x, pfd, base, name);
	if (r)
		return r;
	if (archive_entry_size_is_set(e) && (uint64_t)archive_entry_size(e) > x->max_bytes - x->received)
		return uerr(x, UNTAR_E_LIMIT, name, "%lld bytes, over the download limit of %llu bytes",
			    (long long)archive_entry_size(e), (unsigned long long)x->max_bytes);
	int fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return usys(x, name, "cannot create file");
	const void *blk;
	size_t n;
	la_int64_t off;
	int k;
	while ((k = archive_read_data_block(a, &blk, &n, &off)) == ARCHIVE_OK) {
		/* Sparse files come as blocks at offsets. */
		const char *p = blk;
		while (n) {
			ssize_t w = pwrite(fd, p, n, (off_t)off);
			if (w < 0) {
				r = usys(x, name, "write failed");
				close(fd);
				return r;
			}
			p += w;
			n -= (size_t)w;
			off += w;
			x->st->bytes += (uint64_t)w;
		}
	}
	if (k != ARCHIVE_EOF) {
		close(fd);
		return -1; /* the caller reports the archive's error */
	}
	if (archive_entry_size_is_set(e) && ftruncate(fd, (off_t)archive_entry_size(e)) < 0) {
		r = usys(x, name, "cannot set its size");
		close(fd);
		return r;
	}
	(void)!fchmod(fd, archive_entry_perm(e) & x->keep);
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = archive_entry_mtime(e) } };
	(void)!futimens(fd, ts);
	if (close(fd) < 0)
		return usys(x, name, "close failed");
	x->st->files++;
	return UNTAR_OK;
}

static int x_hardlink(struct ux *x, const char *target, int pfd, const char *base, const char *name)
{
	char trel[UNTAR_NAME_MAX + 8];
	int r = map_name(x, target, trel, sizeof trel);
	if (r)
		return r == UNTAR_E_UNSAFE
			       ? uerr(x, UNTAR_E_UNSAFE, name, "hard link to a file outside this download (refused)")
			       : r;
	const char *slash = strrchr(trel, '/');
	char tdir[UNTAR_NAME_MAX + 8];
	snprintf(tdir, sizeof tdir, "%.*s", slash ? (int)(slash - trel) : 0, trel);
	int lfd = slash ? open_beneath(x, tdir, O_PATH | O_DIRECTORY) : dup(x->tfd);
	if (lfd < 0)
		return errno == ENOENT ? uerr(x, UNTAR_E_UNSAFE, name,
					      "hard link to a file this download did not make (refused)")
				       : usys(x, name, "hard link");
	const char *tbase = slash ? slash + 1 : trel;
	struct stat sb;
	/* Only a regular file: the hidden directory is fresh, so whatever
	 * file is there, this archive made it. */
	if (fstatat(lfd, tbase, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode)) {
		close(lfd);
		return uerr(x, UNTAR_E_UNSAFE, name,
			    "hard link to something that is not a file this download "
			    "made (refused)");
	}
	if ((r = clear_for(x, pfd, base, name)) == UNTAR_OK && linkat(lfd, tbase, pfd, base, 0) < 0)
		r = usys(x, name, "cannot create hard link");
	close(lfd);
	if (r == UNTAR_OK)
		x->st->hardlinks++;
	return r;
}

static int one_entry(struct ux *x, struct archive *a, struct archive_entry *e)
{
	const char *name = archive_entry_pathname(e);
	if (!name)
		name = archive_entry_pathname_utf8(e);
	char rel[UNTAR_NAME_MAX + 8];
	int r = map_name(x, name, rel, sizeof rel);
	if (r)
		return r;
	const char *hl = archive_entry_hardlink(e);
	mode_t type = archive_entry_filetype(e);
	if (!hl && type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
		x->st->skipped++; /* devices, FIFOs, sockets: never made here */
		return UNTAR_OK;
	}
	if (!strcmp(rel, TOP) && !strcmp(x->o->top, ".") && type != AE_IFDIR)
		return uerr(x, UNTAR_E_UNSAFE, name, "the top of the archive is not a directory");
	const char *base;
	int pfd = parent_of(x, rel, &base);
	if (pfd < 0)
		return usys(x, name, "cannot open its directory");
	if (hl)
		return x_hardlink(x, hl, pfd, base, name);
	if (type == AE_IFREG)
		return x_file(x, a, e, pfd, base, name);
	if (type == AE_IFLNK) {
		const char *target = archive_entry_symlink(e);
		if (!target)
			target = archive_entry_symlink_utf8(e);
		if (!target || !*target || strnlen(target, UNTAR_NAME_MAX + 1) > UNTAR_NAME_MAX)
			return uerr(x, UNTAR_E_FORMAT, name, "symlink without a usable target");
		/* Made as it is, whatever it names: it is never followed here. */
		if ((r = clear_for(x, pfd, base, name)))
			return r;
		if (symlinkat(target, pfd, base) < 0)
			return usys(x, name, "cannot create symlink");
		x->st->symlinks++;
		return UNTAR_OK;
	}
	if (mkdirat(pfd, base, 0700) < 0) {
		struct stat sb;
		if (errno != EEXIST)
			return usys(x, name, "cannot create directory");
		if (fstatat(pfd, base, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(sb.st_mode))
			return uerr(x, UNTAR_E_UNSAFE, name,
				    "a directory over a non-directory the archive made "
				    "(refused)");
	}
	if (note_dir(x, rel, archive_entry_perm(e) & x->keep, archive_entry_mtime(e)) < 0)
		return uerr(x, UNTAR_E_LOCAL, NULL, "out of memory");
	x->st->dirs++;
	return UNTAR_OK;
}

static int deeper_first(const void *a, const void *b)
{
	const struct udir *p = a, *q = b;
	return (q->depth > p->depth) - (q->depth < p->depth);
}

/* Remove what this download made under dfd/name: its own tree, so no
 * symlink in it is followed (unlinkat removes links themselves). */
static void rm_tree(int dfd, const char *name, int depth)
{
	struct stat sb;
	if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if (!S_ISDIR(sb.st_mode)) {
		unlinkat(dfd, name, 0);
		return;
	}
	if (depth > UNTAR_DEPTH_MAX + 2)
		return;
	(void)!fchmodat(dfd, name, 0700, 0); /* a 0500 directory of ours */
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				rm_tree(fd, de->d_name, depth + 1);
		closedir(d);
	} else if (fd >= 0)
		close(fd);
	unlinkat(dfd, name, AT_REMOVEDIR);
}

/* The whole tree is in: modes and times of directories (deepest first,
 * so a read-only one does not lock out its contents), then the move. */
static int finish(struct ux *x)
{
	if (x->ndirs) /* qsort wants a non-NULL base even for none */
		qsort(x->dirs, x->ndirs, sizeof *x->dirs, deeper_first);
	int topfd = -1;
	unsigned topmode = 0755;
	int64_t topmtime = -1;
	for (size_t i = 0; i < x->ndirs; i++) {
		if (!strcmp(x->dirs[i].rel, TOP)) {
			topmode = x->dirs[i].mode;
			topmtime = x->dirs[i].mtime;
			continue;
		}
		int fd = open_beneath(x, x->dirs[i].rel, O_RDONLY | O_DIRECTORY);
		if (fd < 0)
			continue;
		(void)!fchmod(fd, x->dirs[i].mode);
		if (x->dirs[i].mtime >= 0) {
			struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = x->dirs[i].mtime } };
			(void)!futimens(fd, ts);
		}
		close(fd);
	}
	struct stat sb;
	if (fstatat(x->tfd, TOP, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return uerr(x, UNTAR_E_FORMAT, NULL, "the archive is empty");
	if (!strcmp(x->o->name, ".")) {
		/* Into the directory itself (the guest's /): each top-level
		 * name must be free there, and is moved without replacing. */
		int fd = openat(x->tfd, TOP, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		if (!d) {
			if (fd >= 0)
				close(fd);
			return usys(x, NULL, "cannot list what was downloaded");
		}
		struct dirent *de;
		int r = UNTAR_OK;
		for (int pass = 0; pass < 2 && r == UNTAR_OK; pass++) {
			rewinddir(d);
			while (r == UNTAR_OK && (de = readdir(d))) {
				if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
					continue;
				if (pass == 0 && fstatat(x->o->dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
					r = uerr(x, UNTAR_E_EXISTS, de->d_name, "already exists in the destination");
				else if (pass == 1 &&
					 renameat2(fd, de->d_name, x->o->dirfd, de->d_name, RENAME_NOREPLACE) < 0)
					r = errno == EEXIST ? uerr(x, UNTAR_E_EXISTS, de->d_name,
								   "already exists in the destination")
							    : usys(x, de->d_name, "cannot move it into place");
			}
		}
		closedir(d);
		return r;
	}
	if (S_ISDIR(sb.st_mode))
		topfd = openat(x->tfd, TOP, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	/* rename replaces a file or an empty directory, and a symlink in the
	 * way is itself replaced: nothing is followed. */
	if (renameat(x->tfd, TOP, x->o->dirfd, x->o->name) < 0) {
		int e = errno;
		if (topfd >= 0)
			close(topfd);
		if (e == EEXIST || e == ENOTEMPTY || e == EISDIR || e == ENOTDIR)
			return uerr(x, UNTAR_E_EXISTS, x->o->name, "already exists and is %s",
				    e == EISDIR	   ? "a directory"
				    : e == ENOTDIR ? "not a directory"
						   : "a directory that is not empty");
		errno = e;
		return usys(x, x->o->name, "cannot move it into place");
	}
	if (topfd >= 0) {
		(void)!fchmod(topfd, topmode);
		if (topmtime >= 0) {
			struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = topmtime } };
			(void)!futimens(topfd, ts);
		}
		close(topfd);
	}
	return UNTAR_OK;
}

/* The hidden directory: a new name, made by us, 0700, and opened.
 * x->tname names it only once it is ours (the cleanup removes what it
 * names): a name found taken, then a failure, leaves it empty. */
static int make_hidden(struct ux *x)
{
	char name[sizeof x->tname];
	for (int i = 0; i < 16; i++) {
		uint8_t rnd[8];
		if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
			return usys(x, NULL, "getrandom");
		snprintf(name, sizeof name, ".vmsan-download-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
			 rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
		if (mkdirat(x->o->dirfd, name, 0700) == 0) {
			memcpy(x->tname, name, sizeof name);
			break;
		}
		if (errno != EEXIST || i == 15)
			return usys(x, NULL, "cannot create a directory to download into");
	}
	x->tfd = openat(x->o->dirfd, x->tname, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (x->tfd < 0)
		return usys(x, NULL, "cannot open the directory to download into");
	return UNTAR_OK;
}

/* Every entry into the hidden directory, then finish: UNTAR_OK, an
 * error, or -1 when the archive's reader stopped. */
static int read_entries(struct ux *x, struct archive *a)
{
	struct archive_entry *e;
	uint64_t n = 0;
	int r;
	for (;;) {
		int k = archive_read_next_header(a, &e);
		if (k == ARCHIVE_EOF)
			break;
		if (k < ARCHIVE_WARN)
			return -1;
		if (++n > x->max_entries)
			return uerr(x, UNTAR_E_LIMIT, NULL, "more than %llu entries",
				    (unsigned long long)x->max_entries);
		if ((r = one_entry(x, a, e)) != UNTAR_OK)
			return r;
	}
	if (n == 0)
		return uerr(x, UNTAR_E_FORMAT, NULL, "the archive is empty");
	return finish(x);
}

/* The archive's reader stopped: say why, in our words first. */
static int reader_stopped(struct ux *x, struct archive *a)
{
	if (x->aborted)
		return uerr(x, UNTAR_E_SOURCE, NULL, "interrupted");
	if (x->over_limit)
		return uerr(x, UNTAR_E_LIMIT, NULL, "the archive exceeds the download limit of %llu bytes",
			    (unsigned long long)x->max_bytes);
	if (x->source_failed)
		return uerr(x, UNTAR_E_SOURCE, NULL, "the transfer was cut short");
	const char *m = a ? archive_error_string(a) : NULL;
	int r = uerr(x, UNTAR_E_FORMAT, NULL, "not a valid tar archive");
	if (m) {
		char pm[300];
		untar_printable(pm, sizeof pm, m, strlen(m), 200);
		snprintf(x->err, x->errlen, "not a valid tar archive: %s", pm);
	}
	return r;
}

int untar(untar_read_fn rd, void *ctx, const struct untar_opts *o, struct untar_stats *st, char *err, size_t errlen)
{
	struct ux x = { .o = o,
			.st = st,
			.err = err,
			.errlen = errlen,
			.rd = rd,
			.ctx = ctx,
			.tfd = -1,
			.pfd = -1,
			.max_bytes = o->max_bytes ? o->max_bytes : UNTAR_MAX_BYTES_DEFAULT,
			.max_entries = o->max_entries ? o->max_entries : UNTAR_MAX_ENTRIES_DEFAULT };
	struct archive *a = NULL;
	mode_t um;
	int r;

	memset(st, 0, sizeof *st);
	err[0] = 0;
	/* The guest's modes, as tar gives them to a user who is not root:
	 * less the umask (a 0777 directory from a guest stays 0755), and
	 * never setuid, setgid or sticky. */
	um = umask(022);
	umask(um);
	x.keep = 0777 & ~(unsigned)um;
	if (!(x.buf = malloc(UBUF)))
		return uerr(&x, UNTAR_E_LOCAL, NULL, "out of memory");
	r = make_hidden(&x);
	if (r == UNTAR_OK) {
		if (!(a = archive_read_new()) || archive_read_support_format_tar(a) != ARCHIVE_OK ||
		    archive_read_open(a, &x, NULL, ua_read, NULL) != ARCHIVE_OK)
			r = -1;
		else
			r = read_entries(&x, a);
	}
	if (r == -1)
		r = reader_stopped(&x, a);
	if (a)
		archive_read_free(a);
	if (x.pfd >= 0)
		close(x.pfd);
	if (x.tfd >= 0)
		close(x.tfd);
	if (x.tname[0]) {
		/* Success leaves it empty; failure leaves whatever was made. */
		if (r != UNTAR_OK)
			rm_tree(o->dirfd, x.tname, 0);
		else if (unlinkat(o->dirfd, x.tname, AT_REMOVEDIR) < 0)
			rm_tree(o->dirfd, x.tname, 0);
	}
	for (size_t i = 0; i < x.ndirs; i++)
		free(x.dirs[i].rel);
	free(x.dirs);
	free(x.buf);
	return r;
}
