/* POST /files/write (a tar stream, optionally gzip'd, extracted under
 * X-Extract-Dir) and POST /files/read (one file raw, or any path as a tar
 * stream). */
#define _GNU_SOURCE
#include "agent.h"
#include "../proto/tar.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* An absolute path without ".." components ("." and "//" are fine). */
static int check_abs_path(const char *p, char *why, size_t n)
{
	if (p[0] != '/') {
		snprintf(why, n, "path must be absolute: '%.200s'", p);
		return -1;
	}
	char tmp[4200];
	if (strlen(p) >= PATH_MAX) {
		snprintf(why, n, "the path is %zu bytes long: at most %d (PATH_MAX)", strlen(p), PATH_MAX - 1);
		return -1;
	}
	if (tar_clean_path(p, tmp, sizeof tmp) < 0) {
		snprintf(why, n, "path traversal (\"..\") is not allowed: '%.200s'", p);
		return -1;
	}
	return 0;
}

static int mkdir_p(const char *path)
{
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

struct src {
	struct body *b;
	bool gz, zinit, zend, between;
	z_stream z;
	unsigned char in[65536];
	size_t inpos, inlen; /* sniffed or pending compressed bytes */
	bool failed;
	char why[128];
};

static ssize_t src_read(void *ctx, void *buf, size_t n)
{
	struct src *s = ctx;
	if (!s->gz) {
		if (s->inpos < s->inlen) {
			size_t k = s->inlen - s->inpos < n ? s->inlen - s->inpos : n;
			memcpy(buf, s->in + s->inpos, k);
			s->inpos += k;
			return (ssize_t)k;
		}
		ssize_t r = body_read(s->b, buf, n);
		if (r < 0) {
			s->failed = true;
			snprintf(s->why, sizeof s->why, "malformed request body");
		}
		return r;
	}
	if (s->zend)
		return 0;
	s->z.next_out = buf;
	s->z.avail_out = (uInt)(n > (1u << 30) ? (1u << 30) : n);
	for (;;) {
		if (s->z.avail_in == 0) {
			ssize_t r;
			if (s->inpos < s->inlen) {
				s->z.next_in = s->in + s->inpos;
				r = (ssize_t)(s->inlen - s->inpos);
				s->inpos = s->inlen;
			} else {
				r = body_read(s->b, s->in, sizeof s->in);
				s->z.next_in = s->in;
			}
			if (r < 0) {
				s->failed = true;
				snprintf(s->why, sizeof s->why, "malformed request body");
				return -1;
			}
			if (r == 0) {
				if (s->between) { /* end after a whole member */
					s->zend = true;
					break;
				}
				s->failed = true;
				snprintf(s->why, sizeof s->why, "gzip stream is truncated");
				return -1;
			}
			s->z.avail_in = (uInt)r;
		}
		s->between = false;
		int zr = inflate(&s->z, Z_NO_FLUSH);
		if (zr == Z_STREAM_END) {
			/* Concatenated members are one stream, as gzip(1) has it. */
			inflateReset(&s->z);
			s->between = true;
		} else if (zr != Z_OK && zr != Z_BUF_ERROR) {
			s->failed = true;
			snprintf(s->why, sizeof s->why, "gzip: %s", s->z.msg ? s->z.msg : "corrupt data");
			return -1;
		}
		if (s->z.next_out != (unsigned char *)buf)
			break;
	}
	return (ssize_t)((unsigned char *)s->z.next_out - (unsigned char *)buf);
}

/* An upload's file data as it lies in the connection's buffer (tar_peek_fn),
 * when it is not gzip'd: written from there without a copy. */
static ssize_t src_peek(void *ctx, const void **p, size_t n)
{
	struct src *s = ctx;
	if (s->inpos < s->inlen) {
		size_t k = s->inlen - s->inpos < n ? s->inlen - s->inpos : n;
		*p = s->in + s->inpos;
		s->inpos += k;
		return (ssize_t)k;
	}
	ssize_t r = body_peek(s->b, p, n);
	if (r < 0) {
		s->failed = true;
		snprintf(s->why, sizeof s->why, "malformed request body");
	}
	return r;
}

static bool truthy(const char *v)
{
	return !strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes");
}

/* The upload's target and options from its headers (X-Extract-Dir,
 * X-Owner or ?user=, X-Preserve-Owner, Content-Encoding into enc): the
 * target directory made and opened, its fd in o->rootfd; 0, or -1 with
 * the error answered. */
static int upload_opts(struct conn *c, struct http_head *hd, const char *query, char *enc, size_t encn,
		       struct tar_extract_opts *o)
{
	char dir[4200] = "/", why[256], owner[128] = "", preserve[16] = "";
	int rootfd = -1;

	/* Header values point into the read buffer: copy them first.  One
	 * too long for its buffer is refused, never taken as absent (the
	 * files would land in / or keep root's owner). */
	ssize_t dl = http_header(hd, "x-extract-dir", dir, PATH_MAX),
		ol = http_header(hd, "x-owner", owner, sizeof owner);
	if (dl == -2 || ol == -2) {
		c->close_after = true;
		respond_error(c, 400, "%s is longer than %zu bytes", dl == -2 ? "X-Extract-Dir" : "X-Owner",
			      dl == -2 ? (size_t)PATH_MAX - 1 : sizeof owner - 1);
		return -1;
	}
	if (dl <= 0)
		snprintf(dir, sizeof dir, "/");
	if (query && !owner[0])
		http_query(query, "user", owner, sizeof owner);
	http_header(hd, "x-preserve-owner", preserve, sizeof preserve);
	http_header(hd, "content-encoding", enc, encn);
	if (check_abs_path(dir, why, sizeof why) < 0) {
		c->close_after = true;
		respond_error(c, 400, "X-Extract-Dir: %s", why);
		return -1;
	}
	if (enc[0] && strcasecmp(enc, "gzip") && strcasecmp(enc, "identity")) {
		c->close_after = true;
		respond_error(c, 415, "Content-Encoding %s is not supported (gzip or none)", enc);
		return -1;
	}
	if (hd->body == BODY_LENGTH && hd->content_length > cfg.max_upload + (64u << 20)) {
		c->close_after = true;
		respond_error(c, 413, "upload exceeds the limit of %llu bytes", (unsigned long long)cfg.max_upload);
		return -1;
	}
	*o = (struct tar_extract_opts){ .chown_uid = -1,
					.chown_gid = -1,
					.max_bytes = cfg.max_upload,
					.preserve_owner = preserve[0] && truthy(preserve) };
	if (owner[0]) {
		struct user u;
		if (user_resolve(owner, &u, why, sizeof why) < 0) {
			c->close_after = true;
			respond_error(c, 400, "resolve user: %s", why);
			return -1;
		}
		o->chown_uid = u.uid;
		o->chown_gid = u.gid;
	}
	if (mkdir_p(dir) < 0 || (rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		c->close_after = true;
		respond_error(c, errno == ENOTDIR || errno == EEXIST ? 400 : 500, "X-Extract-Dir %s: %s", dir,
			      strerror(errno));
		return -1;
	}
	o->rootfd = rootfd;
	return 0;
}

void handle_files_write(struct conn *c, struct http_head *hd, struct body *b, const char *query)
{
	char why[256], enc[64] = "";
	struct src *s = NULL;
	struct tar_extract_opts o;
	if (upload_opts(c, hd, query, enc, sizeof enc, &o) < 0)
		return;
	int rootfd = o.rootfd;
	s = calloc(1, sizeof *s);
	if (!s) {
		c->close_after = true;
		respond_error(c, 500, "out of memory");
		goto out;
	}
	s->b = b;
	/* gzip by header, or by its magic (the original's client sends
	 * gzip without saying so). */
	while (s->inlen < 2) {
		ssize_t r = body_read(b, s->in + s->inlen, sizeof s->in - s->inlen);
		if (r <= 0)
			break;
		s->inlen += (size_t)r;
	}
	s->gz = !strcasecmp(enc, "gzip") || (s->inlen >= 2 && s->in[0] == 0x1f && s->in[1] == 0x8b);
	if (s->gz) {
		if (inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK) {
			c->close_after = true;
			respond_error(c, 500, "zlib init failed");
			goto out;
		}
		s->zinit = true;
	}
	struct tar_reader t;
	struct tar_stats st;
	tar_reader_init(&t, src_read, s);
	if (!s->gz)
		t.peek = src_peek;
	int r = tar_extract(&t, &o, &st, why, sizeof why);
	tar_reader_free(&t);
	if (r == TAR_OK && s->gz && !s->zend) {
		/* Tar ended before the gzip stream: consume the rest. */
		char tmp[8192];
		while (src_read(s, tmp, sizeof tmp) > 0)
			;
	}
	if (r != TAR_OK) {
		c->close_after = true;
		int status = r == TAR_E_LIMIT ? 413 : r == TAR_E_IO ? 500 : 400;
		if (r == TAR_E_SOURCE && s->failed)
			snprintf(why, sizeof why, "%s", s->why);
		respond_error(c, status, "%s%s", r == TAR_E_ESCAPE ? "path traversal detected: " : "", why);
		logj("warn", "upload refused", "\"status\":%d,\"filesWritten\":%llu", status,
		     (unsigned long long)st.files);
		goto out;
	}
	char body[256];
	int n = snprintf(body, sizeof body,
			 "{\"filesWritten\":%llu,\"dirs\":%llu,\"symlinks\":%llu,\"hardlinks\":%llu,"
			 "\"skipped\":%llu,\"bytes\":%llu}\n",
			 (unsigned long long)st.files, (unsigned long long)st.dirs, (unsigned long long)st.symlinks,
			 (unsigned long long)st.hardlinks, (unsigned long long)st.skipped,
			 (unsigned long long)st.bytes);
	respond(c, 200, "application/json", body, (size_t)n);
out:
	if (s && s->zinit)
		inflateEnd(&s->z);
	free(s);
	if (rootfd >= 0)
		close(rootfd);
}

/* Tar output is staged and sent as large chunks. */
struct sink {
	struct conn *c;
	char *buf;
	size_t len, cap;
	bool failed;
};

static int sink_flush(struct sink *k)
{
	if (k->len && !k->failed && stream_chunk(k->c, k->buf, k->len) < 0)
		k->failed = true;
	k->len = 0;
	return k->failed ? -1 : 0;
}

static int sink_write(void *ctx, const void *p, size_t n)
{
	struct sink *k = ctx;
	if (k->failed)
		return -1;
	if (n >= k->cap) {
		if (sink_flush(k) < 0 || stream_chunk(k->c, p, n) < 0)
			return k->failed = true, -1;
		return 0;
	}
	if (k->len + n > k->cap && sink_flush(k) < 0)
		return -1;
	memcpy(k->buf + k->len, p, n);
	k->len += n;
	return 0;
}

/* One regular file, raw, with sendfile. */
static void send_file(struct conn *c, const char *path, struct stat *sb)
{
	int fd = -1;
	if (S_ISDIR(sb->st_mode)) {
		respond_error(c, 400, "path is a directory (ask for \"format\":\"tar\")");
		return;
	}
	if (!S_ISREG(sb->st_mode)) {
		respond_error(c, 400, "not a regular file: %s", path);
		return;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, sb) < 0) {
		respond_error(c, errno == EACCES ? 403 : 500, "%s: %s", path, strerror(errno));
		goto out;
	}
	char h[256];
	int hn = snprintf(h, sizeof h,
			  "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
			  "Content-Length: %lld\r\n%s\r\n",
			  (long long)sb->st_size, c->close_after ? "Connection: close\r\n" : "");
	if (conn_send(c, h, (size_t)hn) < 0) {
		c->close_after = true;
		goto out;
	}
	off_t off = 0;
	while (off < sb->st_size) {
		ssize_t w = sendfile(c->fd, fd, &off, (size_t)(sb->st_size - off));
		if (w <= 0) {
			/* Shrunk or the client left: the length is a promise
			 * we cannot keep, so end the connection. */
			c->close_after = true;
			break;
		}
	}
out:
	if (fd >= 0)
		close(fd);
}

/* A file, symlink or directory tree as a tar stream. */
static void send_tree(struct conn *c, const char *path)
{
	char why[256];
	int dfd;
	/* tar: the path's own name is the top entry */
	char parent[4200], name[4200];
	snprintf(parent, sizeof parent, "%s", path);
	size_t pl = strlen(parent);
	while (pl > 1 && parent[pl - 1] == '/')
		parent[--pl] = 0;
	char *slash = strrchr(parent, '/');
	if (pl == 1) {
		snprintf(name, sizeof name, ".");
	} else {
		snprintf(name, sizeof name, "%s", slash + 1);
		if (slash == parent)
			parent[1] = 0;
		else
			*slash = 0;
	}
	if ((dfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		respond_error(c, 500, "%s: %s", parent, strerror(errno));
		return;
	}
	struct sink k = { .c = c, .cap = 256 * 1024 };
	if (!(k.buf = malloc(k.cap))) {
		respond_error(c, 500, "out of memory");
		close(dfd);
		return;
	}
	stream_begin(c, 200, "application/x-tar");
	struct tar_stats st = { 0 };
	int r = tar_write_path(dfd, name, name, true, sink_write, &k, &st, why, sizeof why);
	if (r == TAR_OK && tar_write_end(sink_write, &k) == 0 && sink_flush(&k) == 0)
		stream_end(c);
	else {
		/* No terminating chunk: the client sees a truncated stream. */
		logj("warn", "download failed", "\"error\":\"%s\"", r == TAR_OK ? "send failed" : "source");
	}
	c->close_after = true;
	free(k.buf);
	close(dfd);
}

void handle_files_read(struct conn *c, struct body *b)
{
	struct jarena a = { 0 };
	struct buf raw = { 0 };
	char why[256];
	struct jv *req = read_json_body(c, b, &a, &raw);
	if (!req)
		goto out;
	for (struct jv *m = req->child; m; m = m->next)
		if (strcmp(m->key, "path") && strcmp(m->key, "format")) {
			respond_error(c, 400, "unknown field '%.60s' (known: path, format)", m->key);
			goto out;
		}
	struct jv *pv = json_get(req, "path"), *fv = json_get(req, "format");
	if (!pv || pv->t != J_STR || !pv->s[0]) {
		respond_error(c, 400, "path is required");
		goto out;
	}
	if (check_abs_path(pv->s, why, sizeof why) < 0) {
		respond_error(c, 400, "%s", why);
		goto out;
	}
	bool tar = false;
	if (fv && (fv->t != J_STR || (strcmp(fv->s, "raw") && strcmp(fv->s, "tar")))) {
		respond_error(c, 400, "format must be \"raw\" or \"tar\"");
		goto out;
	}
	tar = fv && !strcmp(fv->s, "tar");
	struct stat sb;
	if (stat(pv->s, &sb) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			respond_error(c, 404, "file not found: %s", pv->s);
		else
			respond_error(c, 500, "%s: %s", pv->s, strerror(errno));
		goto out;
	}
	if (!tar)
		send_file(c, pv->s, &sb);
	else
		send_tree(c, pv->s);
out:
	json_free(&a);
	buf_free(&raw);
}
