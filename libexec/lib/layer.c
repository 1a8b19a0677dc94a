/* layer.c: one OCI layer into the ext4 image (see layer.h).
 *
 * Two threads per layer: a feeder reads the blob, hashes it, decompresses
 * it (zlib or zstd, chosen by the blob's magic bytes, not its media type)
 * and hashes the tar it produces, writing that tar into a pipe; the
 * calling thread parses the tar with libarchive and writes the image.  On
 * two cores that overlaps decompression with ext4 writing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <zlib.h>
#include <zstd.h>
#include "lib/layer.h"

#define CHUNK (256 * 1024)

/* ---- sha256 ---------------------------------------------------------- */

static void hex_digest(EVP_MD_CTX *c, char out[72])
{
	unsigned char md[32];
	unsigned n = 0;
	EVP_DigestFinal_ex(c, md, &n);
	memcpy(out, "sha256:", 7);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
}

void sha256_hex(const void *data, size_t len, char out[72])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	EVP_DigestUpdate(c, data, len);
	hex_digest(c, out);
	EVP_MD_CTX_free(c);
}

int sha256_file(const char *path, char out[72], struct verr *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot open %s", path);
		return -1;
	}
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	char *buf = malloc(CHUNK);
	ssize_t n = -1;
	while (buf && (n = read(fd, buf, CHUNK)) > 0)
		EVP_DigestUpdate(c, buf, (size_t)n);
	if (n < 0)
		verr_sys(e, "ERR_IO", NULL, "cannot read %s", path);
	else
		hex_digest(c, out);
	free(buf);
	EVP_MD_CTX_free(c);
	close(fd);
	return n < 0 ? -1 : 0;
}

/* ---- the feeder thread ----------------------------------------------- */

enum comp { COMP_NONE, COMP_GZIP, COMP_ZSTD };

struct feeder {
	int in, out;
	enum comp comp;
	EVP_MD_CTX *blob, *tar;
	_Atomic uint64_t in_bytes;
	_Atomic uint64_t tar_bytes; /* counted before they are written */
	int err;		    /* errno of a failed read/write */
	char msg[200];		    /* decompressor's complaint */
};

static int put(struct feeder *f, const void *p, size_t n)
{
	const char *b = p;
	EVP_DigestUpdate(f->tar, p, n);
	atomic_fetch_add(&f->tar_bytes, n);
	while (n > 0) {
		ssize_t w = write(f->out, b, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			f->err = errno;
			return -1;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The decompressor a feeder runs, chosen by the blob's magic bytes. */
struct inflater {
	z_stream z;
	ZSTD_DStream *zs;
	bool zinit;
	bool zend; /* a gzip member ended (another may follow) */
	unsigned char *out;
};

static int inflater_init(struct feeder *f, struct inflater *d)
{
	if (!(d->out = malloc(CHUNK))) {
		f->err = ENOMEM;
		return -1;
	}
	if (f->comp == COMP_GZIP) {
		if (inflateInit2(&d->z, 15 + 16) != Z_OK) {
			snprintf(f->msg, sizeof(f->msg), "zlib init failed");
			return -1;
		}
		d->zinit = true;
	} else if (f->comp == COMP_ZSTD) {
		if (!(d->zs = ZSTD_createDStream())) {
			f->err = ENOMEM;
			return -1;
		}
	}
	return 0;
}

static void inflater_end(struct inflater *d)
{
	if (d->zinit)
		inflateEnd(&d->z);
	ZSTD_freeDStream(d->zs);
	free(d->out);
}

static int gunzip(struct feeder *f, struct inflater *d, unsigned char *in, size_t n)
{
	d->z.next_in = in;
	d->z.avail_in = (uInt)n;
	while (d->z.avail_in > 0) {
		if (d->zend) { /* another gzip member follows */
			inflateReset(&d->z);
			d->zend = false;
		}
		d->z.next_out = d->out;
		d->z.avail_out = CHUNK;
		int rc = inflate(&d->z, Z_NO_FLUSH);
		if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
			snprintf(f->msg, sizeof(f->msg), "gzip: %s", d->z.msg ? d->z.msg : "corrupt data");
			return -1;
		}
		if (put(f, d->out, CHUNK - d->z.avail_out) < 0)
			return -1;
		if (rc == Z_STREAM_END)
			d->zend = true;
		else if (rc == Z_BUF_ERROR && d->z.avail_out == CHUNK)
			break;
	}
	return 0;
}

static int unzstd(struct feeder *f, struct inflater *d, unsigned char *in, size_t n)
{
	ZSTD_inBuffer ib = { in, n, 0 };
	while (ib.pos < ib.size) {
		ZSTD_outBuffer ob = { d->out, CHUNK, 0 };
		size_t rc = ZSTD_decompressStream(d->zs, &ob, &ib);
		if (ZSTD_isError(rc)) {
			snprintf(f->msg, sizeof(f->msg), "zstd: %s", ZSTD_getErrorName(rc));
			return -1;
		}
		if (put(f, d->out, ob.pos) < 0)
			return -1;
	}
	return 0;
}

/* One chunk of the blob, decompressed, into the pipe. */
static int inflate_chunk(struct feeder *f, struct inflater *d, unsigned char *in, size_t n)
{
	switch (f->comp) {
	case COMP_GZIP: return gunzip(f, d, in, n);
	case COMP_ZSTD: return unzstd(f, d, in, n);
	default: return put(f, in, n);
	}
}

static void *feed(void *arg)
{
	struct feeder *f = arg;
	struct inflater d = { .zs = NULL };
	unsigned char *in = malloc(CHUNK);
	ssize_t n = -1;

	if (!in) {
		f->err = ENOMEM;
	} else if (inflater_init(f, &d) == 0) {
		while ((n = read(f->in, in, CHUNK)) != 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				f->err = errno;
				break;
			}
			EVP_DigestUpdate(f->blob, in, (size_t)n);
			atomic_fetch_add(&f->in_bytes, (uint64_t)n);
			if (inflate_chunk(f, &d, in, (size_t)n) < 0)
				break;
		}
		if (n == 0 && f->comp == COMP_GZIP && !d.zend)
			snprintf(f->msg, sizeof(f->msg), "gzip: the stream ends early");
	}
	inflater_end(&d);
	free(in);
	close(f->out); /* EOF for the tar reader */
	f->out = -1;
	return NULL;
}

/* ---- paths ----------------------------------------------------------- */

int layer_norm_path(const char *name, char *out, size_t outlen, char *why, size_t whylen)
{
	size_t o = 0;
	const char *p = name;
	while (*p) {
		while (*p == '/')
			p++;
		const char *s = strchr(p, '/');
		size_t len = s ? (size_t)(s - p) : strlen(p);
		if (len == 0)
			break;
		if (len == 1 && p[0] == '.') {
			p += len;
			continue;
		}
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			snprintf(why, whylen,
				 "'%s' has a '..' component, which would name "
				 "something outside the image",
				 name);
			return -1;
		}
		if (o + len + 2 > outlen) {
			snprintf(why, whylen, "a path is longer than %zu bytes", outlen);
			return -1;
		}
		if (o)
			out[o++] = '/';
		memcpy(out + o, p, len);
		o += len;
		p += len;
	}
	out[o] = '\0';
	return 0;
}

/* ---- entries --------------------------------------------------------- */

struct reader {
	struct archive *a;
	const char *label;
};

static int read_block(void *ctx, const void **buf, size_t *len, int64_t *off, struct verr *e)
{
	struct reader *r = ctx;
	la_int64_t o;
	int rc = archive_read_data_block(r->a, buf, len, &o);
	if (rc == ARCHIVE_EOF)
		return 0;
	if (rc < ARCHIVE_WARN) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_LAYER_CORRUPT", "the image is damaged; pull it again", "%s: %s",
			 r->label, archive_error_string(r->a));
		return -1;
	}
	*off = o;
	return 1;
}

#define MAX_XATTRS 64

/* Past a full image an entry is only counted: what it would have taken. */
static void count_entry(struct archive_entry *ae, struct layer_stats *st)
{
	if (archive_entry_filetype(ae) == AE_IFREG)
		st->more_bytes += (archive_entry_size(ae) + 4095) & ~4095LL;
	else if (archive_entry_filetype(ae) == AE_IFDIR)
		st->more_bytes += 4096;
	st->more_inodes++;
}

/* OCI whiteouts: .wh.<name> deletes name from lower layers;
 * .wh..wh..opq empties the directory of lower layers' entries.  base is
 * path's last component, name the member's own name. */
static int whiteout(struct e4 *w, const char *path, const char *base, const char *name, const struct layer *l,
		    struct verr *e)
{
	char dir[PATH_MAX], victim[PATH_MAX]; /* victim: path without the ".wh." */
	size_t dl = (size_t)(base - path);
	memcpy(dir, path, dl);
	dir[dl ? dl - 1 : 0] = '\0';
	if (strcmp(base, ".wh..wh..opq") == 0)
		return e4_clear_dir(w, dir, e);
	if (strncmp(base, ".wh..wh.", 8) == 0)
		return 0; /* other aufs bookkeeping: not content */
	memcpy(victim, path, dl);
	strcpy(victim + dl, base + 4);
	if (base[4] == '\0' || strcmp(base + 4, ".") == 0 || strcmp(base + 4, "..") == 0)
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_LAYER_UNSAFE", NULL, "%s: bad whiteout '%s'", l->label, name);
	return e4_remove(w, victim, true, e);
}

/* What the member's type adds to ent: a symlink's target, a device's
 * numbers, a file's size. */
static int entry_type(struct archive_entry *ae, struct e4_entry *ent, const char *name, const struct layer *l,
		      struct verr *e)
{
	switch (archive_entry_filetype(ae)) {
	case AE_IFLNK:
		ent->target = archive_entry_symlink(ae);
		if (!ent->target || !*ent->target)
			return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_LAYER_CORRUPT", NULL, "%s: symlink %s has no target",
					 l->label, name);
		break;
	case AE_IFCHR:
	case AE_IFBLK:
		ent->dev_major = (unsigned)archive_entry_rdevmajor(ae);
		ent->dev_minor = (unsigned)archive_entry_rdevminor(ae);
		break;
	case AE_IFREG:
		ent->size = (uint64_t)archive_entry_size(ae);
		ent->sparse = archive_entry_sparse_count(ae) > 0;
		break;
	default: break;
	}
	return 0;
}

/* The member's xattrs into xs (MAX_XATTRS of them at most). */
static int read_xattrs(struct archive_entry *ae, struct e4_xattr *xs, size_t *nx, const char *name,
		       const struct layer *l, struct verr *e)
{
	const char *xn;
	const void *xv;
	size_t xl;
	*nx = 0;
	archive_entry_xattr_reset(ae);
	while (archive_entry_xattr_next(ae, &xn, &xv, &xl) == ARCHIVE_OK) {
		/* overlayfs's own attributes would change how the guest's
		 * overlay reads this lower layer: not the image's to set. */
		if (strncmp(xn, "trusted.overlay.", 16) == 0)
			continue;
		if (*nx == MAX_XATTRS)
			return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_LAYER_UNSAFE", NULL, "%s: %s has more than %d xattrs",
					 l->label, name, MAX_XATTRS);
		xs[(*nx)++] = (struct e4_xattr){ xn, xv, xl };
	}
	return 0;
}

static int apply_entry(struct e4 *w, struct archive *a, struct archive_entry *ae, const struct layer *l,
		       struct layer_stats *st, struct verr *e)
{
	char path[PATH_MAX], target[PATH_MAX], why[PATH_MAX + 100];
	const char *name = archive_entry_pathname(ae), *base, *hl;
	struct e4_xattr xs[MAX_XATTRS];
	struct reader rd = { a, l->label };

	if (!name)
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_LAYER_CORRUPT", NULL, "%s: a member has no usable name",
				 l->label);
	if (layer_norm_path(name, path, sizeof(path), why, sizeof(why)) < 0)
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_LAYER_UNSAFE",
				 "do not use this image; its layer was not built by a normal image builder",
				 "%s (%s): %s", l->label, l->digest, why);
	st->entries++;
	if (st->full) { /* only count what would have been written */
		count_entry(ae, st);
		return 0;
	}
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (strncmp(base, ".wh.", 4) == 0)
		return whiteout(w, path, base, name, l, e);

	struct e4_entry ent = {
		.path = path,
		.mode = archive_entry_mode(ae),
		.uid = (uint32_t)archive_entry_uid(ae),
		.gid = (uint32_t)archive_entry_gid(ae),
		.mtime = archive_entry_mtime(ae),
	};
	if ((hl = archive_entry_hardlink(ae))) {
		if (layer_norm_path(hl, target, sizeof(target), why, sizeof(why)) < 0)
			return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_LAYER_UNSAFE", "do not use this image",
					 "%s: hard link %s: %s", l->label, name, why);
		ent.hardlink = true;
		ent.target = target;
		return e4_put(w, &ent, e);
	}
	if (entry_type(ae, &ent, name, l, e) < 0)
		return -1;
	if (S_ISREG(ent.mode)) {
		ent.read = read_block;
		ent.read_ctx = &rd;
	}
	if (read_xattrs(ae, xs, &ent.nxattrs, name, l, e) < 0)
		return -1;
	ent.xattrs = xs;
	int rc = e4_put(w, &ent, e);
	if (rc < 0 && e4_is_full(e) && S_ISREG(ent.mode))
		st->more_bytes += (ent.size + 4095) & ~4095ULL;
	return rc;
}

/* ---- one layer ------------------------------------------------------- */

static enum comp sniff(int fd)
{
	unsigned char m[4] = { 0 };
	ssize_t n = pread(fd, m, sizeof(m), 0);
	if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b)
		return COMP_GZIP;
	if (n == 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd)
		return COMP_ZSTD;
	return COMP_NONE;
}

/* The feeder for l's blob (f->in), its thread th started; the read end
 * of the pipe it writes the tar into. */
static int feeder_start(struct feeder *f, const struct layer *l, pthread_t *th, struct verr *e)
{
	int pfd[2], rc;
	f->comp = sniff(f->in);
	f->blob = EVP_MD_CTX_new();
	f->tar = EVP_MD_CTX_new();
	if (!f->blob || !f->tar || pipe2(pfd, O_CLOEXEC) < 0) {
		verr_sys(e, "ERR_IO", NULL, "%s: setting up", l->label);
		return -1;
	}
	(void)fcntl(pfd[1], F_SETPIPE_SZ, 1 << 20);
	EVP_DigestInit_ex(f->blob, EVP_sha256(), NULL);
	EVP_DigestInit_ex(f->tar, EVP_sha256(), NULL);
	f->out = pfd[1]; /* the feeder owns and closes it */
	if ((rc = pthread_create(th, NULL, feed, f))) {
		close(pfd[0]);
		close(pfd[1]);
		f->out = -1;
		errno = rc;
		verr_sys(e, "ERR_IO", NULL, "%s: starting the decompressor", l->label);
		return -1;
	}
	return pfd[0];
}

/* The tar's members, read from fd, into the image.  A full image is not
 * the end: the rest is read to learn how much more was needed. */
static int read_entries(struct e4 *w, int fd, struct feeder *f, const struct layer *l, struct layer_stats *st,
			layer_progress_fn progress, void *pctx, struct verr *e)
{
	struct archive *a = archive_read_new();
	uint64_t base = st->in_bytes;
	int ret = -1;

	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	/* An empty layer may be an empty stream (a 0-byte blob, or one that
	 * decompresses to nothing), which libarchive does not take for a tar:
	 * not an error, whichever layer it is.  Bytes are counted before the
	 * feeder writes them, so none counted once libarchive gave up means
	 * it saw the end of the stream and nothing else.  (feeder_verdict
	 * still checks the blob's digest and diff_id.) */
	int rc = archive_read_open_fd(a, fd, CHUNK);
	if (rc != ARCHIVE_OK && atomic_load(&f->tar_bytes) == 0) {
		ret = 0;
		goto out;
	}
	if (rc != ARCHIVE_OK) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_LAYER_CORRUPT", "pull the image again", "%s (%s): %s", l->label,
			 l->digest, archive_error_string(a));
		goto out;
	}
	e4_layer_begin(w);
	for (;;) {
		struct archive_entry *ae;
		rc = archive_read_next_header(a, &ae);
		if (rc == ARCHIVE_EOF)
			break;
		if (rc < ARCHIVE_WARN) {
			if (atomic_load(&f->tar_bytes) == 0)
				break; /* an empty stream, as above */
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_LAYER_CORRUPT",
				 "pull the image again; if it persists the image is damaged", "%s (%s): %s", l->label,
				 l->digest, archive_error_string(a));
			goto out;
		}
		struct verr le = { 0 };
		if (apply_entry(w, a, ae, l, st, &le) < 0) {
			if (!e4_is_full(&le)) {
				*e = le;
				goto out;
			}
			if (!st->full)
				*e = le;
			st->full = true;
		}
		if (progress)
			progress(pctx, base + atomic_load(&f->in_bytes));
	}
	ret = 0;
out:
	archive_read_free(a);
	return ret;
}

/* What the feeder found: a read error, a damaged stream, or a blob or tar
 * other than the manifest and the config name. */
static int feeder_verdict(const struct feeder *f, const struct layer *l, struct verr *e)
{
	char got[72];
	if (f->err) {
		errno = f->err;
		verr_sys(e, "ERR_IO", NULL, "%s: reading %s", l->label, l->path);
		return -1;
	}
	if (f->msg[0])
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_LAYER_CORRUPT", "pull the image again", "%s (%s): %s",
				 l->label, l->digest, f->msg);
	hex_digest(f->blob, got);
	if (strcmp(got, l->digest) != 0)
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_DIGEST_MISMATCH",
				 "the blob was changed or damaged in transit; pull the image again",
				 "%s: digest mismatch: the manifest says %s, the blob is %s", l->label, l->digest, got);
	if (l->diff_id && (hex_digest(f->tar, got), strcmp(got, l->diff_id) != 0))
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_DIGEST_MISMATCH",
				 "the image's config does not match its layers; pull it again",
				 "%s: the uncompressed layer is %s, the config says %s", l->label, got, l->diff_id);
	return 0;
}

int layer_apply(struct e4 *w, const struct layer *l, struct layer_stats *st, layer_progress_fn progress, void *pctx,
		struct verr *e)
{
	struct feeder f = { .in = -1, .out = -1 };
	char sink[65536];
	pthread_t th;
	int rd, ret = -1;

	f.in = open(l->path, O_RDONLY | O_CLOEXEC);
	if (f.in < 0) {
		verr_sys(e, "ERR_IO", "pull the image again", "%s: cannot open %s", l->label, l->path);
		return -1;
	}
	if ((rd = feeder_start(&f, l, &th, e)) < 0)
		goto out;
	ret = read_entries(w, rd, &f, l, st, progress, pctx, e);
	/* Read the tar to its end so the feeder hashes the whole blob. */
	while (read(rd, sink, sizeof(sink)) > 0)
		;
	pthread_join(th, NULL);
	close(rd);
	st->in_bytes += atomic_load(&f.in_bytes);
	if (ret == 0)
		ret = feeder_verdict(&f, l, e);
	if (st->full && ret == 0)
		ret = -1; /* e already holds ERR_DISK_FULL */
out:
	close(f.in);
	EVP_MD_CTX_free(f.blob);
	EVP_MD_CTX_free(f.tar);
	return ret;
}
