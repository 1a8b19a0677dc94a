/* Tar writer: pax headers (POSIX.1-2001) over ustar blocks, for a file,
 * a symlink or a directory tree; the reader is tar.c. */
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
#include <sys/sysmacros.h>
#include <unistd.h>

static void octal(char *f, size_t n, unsigned long long v)
{
	f[n - 1] = 0;
	for (size_t i = n - 1; i-- > 0;) {
		f[i] = (char)('0' + (v & 7));
		v >>= 3;
	}
}

static int pax_rec(char *out, size_t cap, size_t *len, const char *key, const char *val)
{
	size_t body = strlen(key) + strlen(val) + 3; /* ' ' '=' '\n' */
	size_t digits = 1, tot;
	for (;;) {
		tot = body + digits;
		size_t d = 1;
		for (size_t v = tot; v >= 10; v /= 10)
			d++;
		if (d == digits)
			break;
		digits = d;
	}
	if (*len + tot + 1 > cap)
		return -1;
	*len += (size_t)snprintf(out + *len, cap - *len, "%zu %s=%s\n", tot, key, val);
	return 0;
}

static int emit_header(tar_write_fn wr, void *ctx, const char *name, const char *link, char type, const struct stat *sb,
		       uint64_t size)
{
	char h[BLK];
	char pax[2 * NAME_MAX_LEN + 256];
	size_t paxlen = 0;
	size_t nl = strlen(name), ll = link ? strlen(link) : 0;

	if (nl > 100 && pax_rec(pax, sizeof pax, &paxlen, "path", name) < 0)
		return -1;
	if (ll > 100 && pax_rec(pax, sizeof pax, &paxlen, "linkpath", link) < 0)
		return -1;
	char num[32];
	if (size > 077777777777ULL) {
		snprintf(num, sizeof num, "%llu", (unsigned long long)size);
		pax_rec(pax, sizeof pax, &paxlen, "size", num);
	}
	if (sb->st_uid > 07777777) {
		snprintf(num, sizeof num, "%u", (unsigned)sb->st_uid);
		pax_rec(pax, sizeof pax, &paxlen, "uid", num);
	}
	if (sb->st_gid > 07777777) {
		snprintf(num, sizeof num, "%u", (unsigned)sb->st_gid);
		pax_rec(pax, sizeof pax, &paxlen, "gid", num);
	}
	if (paxlen) {
		struct stat psb = { .st_mode = 0644 };
		char pname[100];
		snprintf(pname, sizeof pname, "PaxHeaders/%.80s", strrchr(name, '/') ? strrchr(name, '/') + 1 : name);
		if (emit_header(wr, ctx, pname, NULL, 'x', &psb, paxlen) < 0)
			return -1;
		size_t padded = (paxlen + BLK - 1) & ~(size_t)(BLK - 1);
		memset(pax + paxlen, 0, padded - paxlen);
		if (wr(ctx, pax, padded) < 0)
			return -1;
	}
	memset(h, 0, sizeof h);
	memcpy(h, name, nl > 100 ? 100 : nl);
	octal(h + 100, 8, sb->st_mode & 07777);
	octal(h + 108, 8, sb->st_uid > 07777777 ? 0 : sb->st_uid);
	octal(h + 116, 8, sb->st_gid > 07777777 ? 0 : sb->st_gid);
	octal(h + 124, 12, size > 077777777777ULL ? 0 : size);
	octal(h + 136, 12, sb->st_mtime < 0 ? 0 : (unsigned long long)sb->st_mtime & 077777777777ULL);
	h[156] = type;
	if (link)
		memcpy(h + 157, link, ll > 100 ? 100 : ll);
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	if (type == '3' || type == '4') {
		octal(h + 329, 8, major(sb->st_rdev));
		octal(h + 337, 8, minor(sb->st_rdev));
	}
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < BLK; i++)
		sum += (unsigned char)h[i];
	octal(h + 148, 7, sum);
	h[155] = ' ';
	return wr(ctx, h, BLK);
}

static int werr(char *err, size_t n, const char *path, const char *what)
{
	snprintf(err, n, "%s: %s: %s", path, what, strerror(errno));
	return TAR_E_IO;
}

struct wctx {
	tar_write_fn wr;
	void *ctx;
	struct tar_stats *st;
	char *err;
	size_t errlen;
	char *buf;
};

static int write_one(struct wctx *w, int dirfd, const char *name, const char *arc, bool follow, int depth);

/* A regular file's header and data, padded to the block; a file that
 * shrank while it was read is padded with zeros to the size in its
 * header. */
static int write_file(struct wctx *w, int fd, const char *arc, const struct stat *sb)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl & O_PATH) {
		errno = EACCES;
		return werr(w->err, w->errlen, arc, "cannot read");
	}
	fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	int r = TAR_OK;
	if (emit_header(w->wr, w->ctx, arc, NULL, '0', sb, (uint64_t)sb->st_size) < 0)
		r = TAR_E_SOURCE;
	char *buf = w->buf;
	const size_t bufsz = XBUF;
	uint64_t left = (uint64_t)sb->st_size;
	while (r == TAR_OK && left) {
		ssize_t n = read(fd, buf, left < bufsz ? (size_t)left : bufsz);
		if (n < 0) {
			r = werr(w->err, w->errlen, arc, "read failed");
			break;
		}
		if (n == 0) { /* shrank while we read: pad with zeros */
			memset(buf, 0, bufsz);
			n = (ssize_t)(left < bufsz ? left : bufsz);
		}
		if (w->wr(w->ctx, buf, (size_t)n) < 0)
			r = TAR_E_SOURCE;
		left -= (uint64_t)n;
		w->st->bytes += (uint64_t)n;
	}
	size_t pad = (BLK - (size_t)(sb->st_size % BLK)) % BLK;
	if (r == TAR_OK && pad) {
		memset(buf, 0, pad);
		if (w->wr(w->ctx, buf, pad) < 0)
			r = TAR_E_SOURCE;
	}
	w->st->files++;
	return r;
}

/* A directory's header, then each of its entries (symlinks stored, not
 * followed). */
static int write_dir(struct wctx *w, int fd, const char *arc, const struct stat *sb, int depth)
{
	char *child = malloc(NAME_MAX_LEN + 2);
	int r = TAR_OK;
	if (!child) {
		snprintf(w->err, w->errlen, "out of memory");
		return TAR_E_IO;
	}
	snprintf(child, NAME_MAX_LEN + 2, "%s/", arc);
	if (emit_header(w->wr, w->ctx, child, NULL, '5', sb, 0) < 0)
		r = TAR_E_SOURCE;
	w->st->dirs++;
	int dfd = dup(fd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		int saved = errno;
		if (dfd >= 0)
			close(dfd); /* fdopendir took it only on success */
		free(child);
		errno = saved;
		return werr(w->err, w->errlen, arc, "cannot list directory");
	}
	struct dirent *de;
	while (r == TAR_OK && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if ((size_t)snprintf(child, NAME_MAX_LEN + 2, "%s/%s", arc, de->d_name) >= NAME_MAX_LEN + 1) {
			snprintf(w->err, w->errlen, "%s: name longer than 4096 bytes", arc);
			r = TAR_E_IO;
			break;
		}
		r = write_one(w, fd, de->d_name, child, false, depth + 1);
	}
	closedir(d);
	free(child);
	return r;
}

static int write_symlink(struct wctx *w, int fd, const char *arc, const struct stat *sb)
{
	char *target = malloc(NAME_MAX_LEN + 1);
	ssize_t n = target ? readlinkat(fd, "", target, NAME_MAX_LEN) : -1;
	int r = TAR_OK;
	if (n < 0)
		r = werr(w->err, w->errlen, arc, "cannot read link");
	else {
		target[n] = 0;
		if (emit_header(w->wr, w->ctx, arc, target, '2', sb, 0) < 0)
			r = TAR_E_SOURCE;
		w->st->symlinks++;
	}
	free(target);
	return r;
}

/* Devices and FIFOs: a header; sockets are skipped. */
static int write_special(struct wctx *w, const char *arc, const struct stat *sb)
{
	char type = S_ISCHR(sb->st_mode) ? '3' : S_ISBLK(sb->st_mode) ? '4' : S_ISFIFO(sb->st_mode) ? '6' : 0;
	if (!type) {
		w->st->skipped++;
		return TAR_OK;
	}
	return emit_header(w->wr, w->ctx, arc, NULL, type, sb, 0) < 0 ? TAR_E_SOURCE : TAR_OK;
}

static int write_one(struct wctx *w, int dirfd, const char *name, const char *arc, bool follow, int depth)
{
	struct stat sb;
	int r;
	if (depth > 512) {
		snprintf(w->err, w->errlen, "%s: directory tree too deep", arc);
		return TAR_E_IO;
	}
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (follow ? 0 : O_NOFOLLOW));
	if (fd < 0 && (errno == ELOOP || errno == ENXIO || errno == EACCES || errno == EPERM))
		fd = openat(dirfd, name, O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
	if (fd < 0)
		return werr(w->err, w->errlen, arc, "cannot open");
	if (fstat(fd, &sb) < 0) {
		close(fd);
		return werr(w->err, w->errlen, arc, "cannot stat");
	}
	if (S_ISREG(sb.st_mode))
		r = write_file(w, fd, arc, &sb);
	else if (S_ISDIR(sb.st_mode))
		r = write_dir(w, fd, arc, &sb, depth);
	else if (S_ISLNK(sb.st_mode))
		r = write_symlink(w, fd, arc, &sb);
	else
		r = write_special(w, arc, &sb);
	close(fd);
	if (r == TAR_E_SOURCE && !w->err[0])
		snprintf(w->err, w->errlen, "the receiver went away");
	return r;
}

int tar_write_path(int dirfd, const char *name, const char *arcname, bool follow_top, tar_write_fn wr, void *ctx,
		   struct tar_stats *st, char *err, size_t errlen)
{
	err[0] = 0;
	struct wctx w = { wr, ctx, st, err, errlen, malloc(XBUF) };
	if (!w.buf) {
		snprintf(err, errlen, "out of memory");
		return TAR_E_IO;
	}
	int r = write_one(&w, dirfd, name, arcname, follow_top, 0);
	free(w.buf);
	return r;
}

int tar_write_end(tar_write_fn wr, void *ctx)
{
	static const char z[2 * BLK];
	return wr(ctx, z, sizeof z);
}
