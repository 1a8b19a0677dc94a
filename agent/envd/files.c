/* envd's REST file transfer: GET /files?path=P&username=U (the file's
 * bytes) and POST /files?path=P&username=U (multipart/form-data, one
 * file per "file" part, named by the query's path or the part's
 * filename; or, as envd 0.5.7 takes it, a raw application/octet-stream
 * body; gzip'd when Content-Encoding says so), X-Metadata-* headers kept
 * as user.e2b.* extended attributes.  Each takes the token, or a URL
 * signed with it (the SDK's downloadUrl and uploadUrl).  Files are read
 * and written as the user; errors are {"code":HTTP status,"message":...}. */
#define _GNU_SOURCE
#include "envd.h"
#include "../../proto/multipart.h"
#include "../../proto/sha256.h"
#include "../../proto/ws.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define META_MAX 32	/* X-Metadata-* headers */
#define META_TOTAL 4096 /* their bytes, as envd counts them */
#define MP_BUF (64 * 1024)

static int rest_error(struct conn *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int rest_error(struct conn *c, int status, const char *fmt, ...)
{
	char msg[1024];
	struct buf b = { 0 };
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	buf_printf(&b, "{\"code\":%d,\"message\":", status);
	pj_put_str(&b, msg, strlen(msg));
	buf_puts(&b, "}\n");
	respond(c, status, "application/json", b.p ? b.p : "{}", b.p ? b.len : 2);
	buf_free(&b);
	return status;
}

/* The status of a file error. */
static int errno_status(int e)
{
	return e == ENOENT || e == ENOTDIR		 ? 404
	       : e == EACCES || e == EPERM || e == EROFS ? 403
	       : e == ENOSPC || e == EDQUOT		 ? 507
	       : e == EISDIR || e == ENAMETOOLONG	 ? 400
							 : 500;
}

/* The query's user and path (resolved); 0, or the status answered. */
static int who_and_where(struct conn *c, const char *query, struct user *u, char *path, size_t n, bool *has_path)
{
	char name[256] = "", p[4200] = "", why[256];
	if (query && http_query(query, "username", name, sizeof name) < 0)
		name[0] = 0;
	*has_path = query && http_query(query, "path", p, sizeof p) >= 0;
	if (user_resolve(name, u, why, sizeof why) < 0)
		return rest_error(c, 401, "error looking up user '%s': %s", name, why);
	if (path_resolve(p, u, path, n, why, sizeof why) < 0)
		return rest_error(c, 400, "error expanding and resolving path '%s': %s", p, why);
	return 0;
}

/* ---- GET -------------------------------------------------------------- */

/* Content-Disposition's filename, as Go's mime.FormatMediaType writes
 * it: a token bare, other ASCII quoted, anything else RFC 2231-encoded. */
static void disposition(struct buf *b, const char *name)
{
	bool token = *name, ascii = true;
	for (const char *p = name; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		token &= ch > 0x20 && ch < 0x7f && !strchr("()<>@,;:\\\"/[]?=", ch);
		ascii &= ch >= 0x20 && ch < 0x7f;
	}
	buf_puts(b, "Content-Disposition: inline; ");
	if (token) {
		buf_printf(b, "filename=%s\r\n", name);
	} else if (ascii) {
		buf_puts(b, "filename=\"");
		for (const char *p = name; *p; p++)
			buf_printf(b, "%s%c", *p == '"' || *p == '\\' ? "\\" : "", *p);
		buf_puts(b, "\"\r\n");
	} else {
		buf_puts(b, "filename*=utf-8''");
		for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
			if (isalnum(*p) || strchr("-._~", *p))
				buf_put(b, p, 1);
			else
				buf_printf(b, "%%%02X", *p);
		}
		buf_puts(b, "\r\n");
	}
}

static int files_get(struct conn *c, const char *query)
{
	char path[4200];
	struct user u;
	struct stat sb;
	struct buf h = { 0 };
	bool has_path;
	int st = who_and_where(c, query, &u, path, sizeof path, &has_path), fd = -1, e = 0;
	if (st)
		return st;
	if (as_user(&u) < 0)
		return rest_error(c, 500, "cannot take the user's credentials: %s", strerror(errno));
	if (stat(path, &sb) < 0 || (!S_ISDIR(sb.st_mode) && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0))
		e = errno;
	as_agent();
	if (e == ENOENT || e == ENOTDIR)
		return rest_error(c, 404, "path '%s' does not exist", path);
	if (e)
		return rest_error(c, errno_status(e), "error opening file '%s': %s", path, strerror(e));
	if (S_ISDIR(sb.st_mode))
		return rest_error(c, 400, "path '%s' is a directory", path);
	if (fstat(fd, &sb) < 0) {
		close(fd);
		return rest_error(c, 500, "error checking file '%s': %s", path, strerror(errno));
	}
	const char *base = strrchr(path, '/');
	buf_printf(&h, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %lld\r\n",
		   (long long)sb.st_size);
	disposition(&h, base ? base + 1 : path);
	buf_printf(&h, "%s\r\n", c->close_after ? "Connection: close\r\n" : "");
	/* close_after may be set already (Connection: close): the body is
	 * still owed; only a failed send stops it. */
	bool broken = !h.p || conn_send(c, h.p, h.len) < 0;
	off_t off = 0;
	while (!broken && off < sb.st_size)
		if (sendfile(c->fd, fd, &off, (size_t)(sb.st_size - off)) <= 0)
			broken = true; /* shrunk or gone: the length was a promise */
	if (broken)
		c->close_after = true;
	buf_free(&h);
	close(fd);
	return 200;
}

/* ---- POST: the body --------------------------------------------------- */

/* The request body, gunzipped when it says it is gzip. */
struct src {
	struct body *b;
	bool gz, zinit, zend;
	z_stream z;
	unsigned char in[16384];
};

/* Up to n decoded bytes: >0, 0 at the end, -1 malformed. */
static ssize_t src_read(struct src *s, void *out, size_t n)
{
	if (!s->gz)
		return body_read(s->b, out, n);
	if (s->zend)
		return 0;
	s->z.next_out = out;
	s->z.avail_out = (uInt)(n > (1u << 30) ? (1u << 30) : n);
	while (s->z.next_out == (unsigned char *)out) {
		if (!s->z.avail_in) {
			ssize_t r = body_read(s->b, s->in, sizeof s->in);
			if (r <= 0)
				return -1; /* the gzip stream ended early */
			s->z.next_in = s->in;
			s->z.avail_in = (uInt)r;
		}
		int zr = inflate(&s->z, Z_NO_FLUSH);
		if (zr == Z_STREAM_END) {
			s->zend = true;
			break;
		}
		if (zr != Z_OK && zr != Z_BUF_ERROR)
			return -1;
	}
	return (ssize_t)((unsigned char *)s->z.next_out - (unsigned char *)out);
}

/* ---- POST: one file --------------------------------------------------- */

struct meta {
	char key[256], val[512];
};

/* One upload: its user, metadata, what it wrote. */
struct upload {
	struct conn *c;
	struct user u;
	struct meta meta[META_MAX];
	int nmeta;
	uint64_t bytes; /* written so far, against --max-upload */
	int fd;		/* the file being written */
	char cur[4200];
	struct buf done; /* the answer's entries */
	int ndone;
	char **paths; /* those written, each once */
};

/* The X-Metadata-* headers (keys lowercased, first value kept; names and
 * values are counted strings in the head); 0, or the status answered. */
static int read_meta(struct upload *up, const struct http_head *hd)
{
	size_t total = 0;
	for (int i = 0; i < hd->nheaders; i++) {
		const char *n = hd->h[i].name, *v = hd->h[i].value;
		bool dup = false;
		if (hd->h[i].nlen <= 11 || strncasecmp(n, "x-metadata-", 11))
			continue;
		if (hd->h[i].nlen - 11 >= sizeof up->meta[0].key || hd->h[i].vlen >= sizeof up->meta[0].val ||
		    up->nmeta == META_MAX)
			return rest_error(up->c, 400,
					  "invalid metadata: at most %d keys of 246 bytes, values "
					  "of 511",
					  META_MAX);
		struct meta *m = &up->meta[up->nmeta];
		for (size_t k = 0; k + 11 < hd->h[i].nlen; k++)
			m->key[k] = (char)tolower((unsigned char)n[11 + k]);
		m->key[hd->h[i].nlen - 11] = 0;
		for (size_t k = 0; k < hd->h[i].vlen; k++)
			if ((unsigned char)v[k] < 0x20 || (unsigned char)v[k] > 0x7e)
				return rest_error(up->c, 400,
						  "invalid metadata: the value for key \"%s\" is not "
						  "printable ASCII",
						  m->key);
		for (int j = 0; j < up->nmeta; j++)
			dup |= !strcmp(up->meta[j].key, m->key);
		if (dup)
			continue;
		memcpy(m->val, v, hd->h[i].vlen); /* values are not NUL-terminated */
		m->val[hd->h[i].vlen] = 0;
		total += 9 + strlen(m->key) + strlen(m->val);
		up->nmeta++;
	}
	if (total > META_TOTAL)
		return rest_error(up->c, 400, "invalid metadata: total metadata size %zu exceeds %d bytes", total,
				  META_TOTAL);
	return 0;
}

/* The upload's metadata replaces the file's. */
static void write_meta(struct upload *up)
{
	char names[4096], x[300];
	ssize_t n = flistxattr(up->fd, names, sizeof names);
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1)
		if (!strncmp(names + i, "user.e2b.", 9))
			fremovexattr(up->fd, names + i);
	for (int i = 0; i < up->nmeta; i++) {
		snprintf(x, sizeof x, "user.e2b.%s", up->meta[i].key);
		fsetxattr(up->fd, x, up->meta[i].val, strlen(up->meta[i].val), 0);
	}
}

/* Open path for writing, its directories made; 0, or the status
 * answered. */
static int file_open(struct upload *up, const char *path)
{
	char parent[4200];
	struct stat sb;
	for (int i = 0; i < up->ndone; i++)
		if (!strcmp(up->paths[i], path))
			return rest_error(up->c, 400,
					  "you cannot upload multiple files to the same path '%s' in "
					  "one upload request",
					  path);
	snprintf(parent, sizeof parent, "%s", path);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = 0;
	if (slash && slash != parent && mkdirs(parent) < 0)
		return rest_error(up->c, errno_status(errno), "error ensuring directories: %s", strerror(errno));
	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
		return rest_error(up->c, 400, "path is a directory: %s", path);
	up->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (up->fd < 0)
		return rest_error(up->c, errno_status(errno), "error opening file: %s", strerror(errno));
	snprintf(up->cur, sizeof up->cur, "%s", path);
	return 0;
}

static int file_write(struct upload *up, const char *p, size_t n)
{
	if ((up->bytes += n) > cfg.max_upload)
		return rest_error(up->c, 413, "upload exceeds the limit of %llu bytes",
				  (unsigned long long)cfg.max_upload);
	while (n) {
		ssize_t w = write(up->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return rest_error(up->c, errno_status(errno),
					  errno == ENOSPC ? "not enough disk space available"
							  : "error writing file: %s",
					  strerror(errno));
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The file is written: its metadata, its entry in the answer. */
static int file_close(struct upload *up)
{
	char **np = realloc(up->paths, (size_t)(up->ndone + 1) * sizeof *np);
	const char *base = strrchr(up->cur, '/');
	write_meta(up);
	close(up->fd);
	up->fd = -1;
	if (!np || !(np[up->ndone] = strdup(up->cur)))
		return rest_error(up->c, 500, "out of memory");
	up->paths = np;
	buf_puts(&up->done, up->ndone++ ? ",{\"name\":" : "{\"name\":");
	pj_put_str(&up->done, base ? base + 1 : up->cur, strlen(base ? base + 1 : up->cur));
	buf_puts(&up->done, ",\"path\":");
	pj_put_str(&up->done, up->cur, strlen(up->cur));
	buf_puts(&up->done, ",\"type\":\"file\"");
	for (int i = 0; i < up->nmeta; i++) {
		buf_puts(&up->done, i ? "," : ",\"metadata\":{");
		pj_put_str(&up->done, up->meta[i].key, strlen(up->meta[i].key));
		buf_puts(&up->done, ":");
		pj_put_str(&up->done, up->meta[i].val, strlen(up->meta[i].val));
	}
	buf_puts(&up->done, up->nmeta ? "}}" : "}");
	return 0;
}

/* A raw body is the one file at path; 0, or the status answered. */
static int upload_raw(struct upload *up, struct src *s, const char *path)
{
	char buf[65536];
	int st = file_open(up, path);
	while (!st) {
		ssize_t n = src_read(s, buf, sizeof buf);
		if (n < 0)
			st = rest_error(up->c, 400, "malformed request body");
		else if (n == 0)
			return file_close(up);
		else
			st = file_write(up, buf, (size_t)n);
	}
	return st;
}

/* A part begins: a "file" part is a file, at the query's path or its
 * filename (resolved); other parts are skipped. */
static int part_begins(struct upload *up, const struct mp *m, const char *qpath, bool has_qpath)
{
	char path[4200], why[256];
	int st;
	if (up->fd >= 0 && (st = file_close(up)))
		return st;
	if (strcmp(m->name, "file"))
		return 0;
	if (!has_qpath && !m->has_filename)
		return rest_error(up->c, 400, "filename not found in Content-Disposition header");
	if (path_resolve(has_qpath ? qpath : m->filename, &up->u, path, sizeof path, why, sizeof why) < 0)
		return rest_error(up->c, 400, "error resolving path: %s", why);
	return file_open(up, path);
}

/* A multipart body: its "file" parts; 0, or the status answered. */
static int upload_multipart(struct upload *up, struct src *s, const char *boundary, const char *qpath, bool has_qpath)
{
	struct mp m;
	char *buf = malloc(MP_BUF);
	size_t len = 0;
	bool eof = false;
	int st = 0;
	if (!buf || mp_init(&m, boundary) < 0)
		st = buf ? rest_error(up->c, 400, "error parsing multipart form: bad boundary")
			 : rest_error(up->c, 500, "out of memory");
	while (!st) {
		size_t used, dl = 0;
		const char *d = NULL;
		enum mp_event ev = mp_next(&m, buf, len, eof, &used, &d, &dl);
		if (ev == MP_ERROR)
			st = rest_error(up->c, 400, "error reading form: malformed multipart body");
		else if (ev == MP_END)
			break;
		else if (ev == MP_PART)
			st = part_begins(up, &m, qpath, has_qpath);
		else if (ev == MP_DATA && up->fd >= 0)
			st = file_write(up, d, dl);
		memmove(buf, buf + used, len - used);
		len -= used;
		if (!st && ev == MP_NEED) {
			ssize_t n = src_read(s, buf + len, MP_BUF - len);
			if (n < 0)
				st = rest_error(up->c, 400, "malformed request body");
			eof = n == 0;
			len += n > 0 ? (size_t)n : 0;
		}
	}
	if (!st && up->fd >= 0)
		st = file_close(up);
	if (!st) { /* the epilogue, if any, is not ours to leave unread */
		while (src_read(s, buf, MP_BUF) > 0)
			;
	}
	free(buf);
	return st;
}

/* What the body is (application/octet-stream or multipart/form-data, its
 * encoding); 0, or the status answered.  Header values are read here,
 * before the body moves them. */
static int body_kind(struct conn *c, const struct http_head *hd, struct src *s, bool *raw, char *boundary, size_t bn)
{
	char ct[256] = "", enc[64] = "";
	http_header(hd, "content-type", ct, sizeof ct);
	http_header(hd, "content-encoding", enc, sizeof enc);
	if (enc[0] && strcasecmp(enc, "identity") && strcasecmp(enc, "gzip"))
		return rest_error(c, 400, "error decompressing request body: unsupported Content-Encoding %s", enc);
	s->gz = !strcasecmp(enc, "gzip");
	*raw = !strncasecmp(ct, "application/octet-stream", 24) && (!ct[24] || ct[24] == ';');
	if (!*raw && strncasecmp(ct, "multipart/", 10))
		return rest_error(c, 400,
				  "unsupported content type: %s, expected multipart/form-data or "
				  "application/octet-stream",
				  ct);
	if (!*raw && mp_param(ct, "boundary", boundary, bn) < 0)
		return rest_error(c, 400, "error parsing multipart form: no boundary");
	if (s->gz && inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK)
		return rest_error(c, 500, "zlib init failed");
	s->zinit = s->gz;
	return 0;
}

static int files_post(struct conn *c, struct http_head *hd, struct body *b, const char *query)
{
	struct upload up = { .c = c, .fd = -1 };
	struct src s = { .b = b };
	char path[4200], qpath[4200] = "", boundary[MP_BOUNDARY_MAX + 1];
	bool has_path, raw = false;
	int st = who_and_where(c, query, &up.u, path, sizeof path, &has_path);
	if (!st && has_path)
		http_query(query, "path", qpath, sizeof qpath);
	if (!st)
		st = read_meta(&up, hd);
	if (!st)
		st = body_kind(c, hd, &s, &raw, boundary, sizeof boundary);
	if (!st && raw && !has_path)
		st = rest_error(c, 400, "path query parameter is required for raw body upload");
	if (!st && as_user(&up.u) < 0)
		st = rest_error(c, 500, "cannot take the user's credentials: %s", strerror(errno));
	if (!st) {
		st = raw ? upload_raw(&up, &s, path) : upload_multipart(&up, &s, boundary, qpath, has_path);
		as_agent();
	}
	if (up.fd >= 0)
		close(up.fd);
	if (!st) {
		struct buf out = { 0 };
		buf_printf(&out, "[%s]\n", up.done.p ? up.done.p : "");
		respond(c, 200, "application/json", out.p, out.len);
		buf_free(&out);
		st = 200;
	} else {
		c->close_after = true; /* the rest of the body is unread */
	}
	if (s.zinit)
		inflateEnd(&s.z);
	for (int i = 0; i < up.ndone; i++)
		free(up.paths[i]);
	free(up.paths);
	buf_free(&up.done);
	return st;
}

/* ---- who may ---------------------------------------------------------- */

/* envd's v1 signature of op (read, write) on the query's path for its
 * user: "v1_" and the unpadded base64 of SHA-256(path:op:user:token, and
 * :expiry when the URL has one). */
static void signature(const char *query, const char *op, const char *exp, char out[48])
{
	char path[4200] = "", user[256] = "", token[300];
	struct buf m = { 0 };
	uint8_t h[32];
	if (http_query(query, "path", path, sizeof path) < 0)
		path[0] = 0;
	if (http_query(query, "username", user, sizeof user) < 0)
		user[0] = 0;
	token_copy(token, sizeof token);
	buf_printf(&m, "%s:%s:%s:%s%s%s", path, op, user, token, exp ? ":" : "", exp ? exp : "");
	sha256(m.p ? m.p : "", m.len, h);
	memcpy(out, "v1_", 3);
	size_t n = base64_encode(h, sizeof h, out + 3);
	while (n && out[3 + n - 1] == '=')
		out[3 + --n] = 0;
	explicit_bzero(token, sizeof token);
	if (m.p)
		explicit_bzero(m.p, m.len);
	buf_free(&m);
}

/* The token (X-Access-Token or a bearer), else a signature in the query;
 * 0, or the status answered. */
static int may(struct conn *c, const struct http_head *hd, const char *query, const char *op)
{
	char v[300], sig[128], exp[24], want[48];
	ssize_t n = http_header(hd, "authorization", v, sizeof v);
	bool bearer = n >= 7 && !strncasecmp(v, "Bearer ", 7);
	int st;
	if (bearer || http_header(hd, "x-access-token", v, sizeof v) >= 0) {
		if ((st = authorize(hd, NULL, false))) {
			c->close_after = true;
			envd_deny(c, "/files", st);
		}
		return st;
	}
	c->close_after = true; /* until the request proves itself */
	if (!query || http_query(query, "signature", sig, sizeof sig) < 0)
		return rest_error(c, 401,
				  "unauthorized access, please provide a valid access token or "
				  "method signing if supported");
	bool has_exp = http_query(query, "signature_expiration", exp, sizeof exp) >= 0;
	if (has_exp && (!exp[0] || strspn(exp, "0123456789") != strlen(exp)))
		return rest_error(c, 401, "invalid signature expiration");
	signature(query, op, has_exp ? exp : NULL, want);
	/* constant time in the signature presented and ours */
	size_t wl = strlen(want), sl = strlen(sig);
	unsigned diff = (unsigned)(wl ^ sl);
	for (size_t i = 0; i < sizeof want; i++)
		diff |= (unsigned)((i < wl ? want[i] : 0) ^ (i < sl ? sig[i] : 0));
	explicit_bzero(want, sizeof want);
	if (diff)
		return rest_error(c, 401, "invalid signature");
	if (has_exp && strtoll(exp, NULL, 10) < (long long)time(NULL))
		return rest_error(c, 401, "signature is already expired");
	c->close_after = false;
	return 0;
}

int envd_files(struct conn *c, struct http_head *hd, struct body *b, const char *query)
{
	bool get = !strcmp(hd->method, "GET"), post = !strcmp(hd->method, "POST");
	int st;
	if (!get && !post) {
		c->close_after = true; /* an unauthenticated body is not read */
		respond_error(c, 405, "use GET or POST");
		return 405;
	}
	if ((st = may(c, hd, query, get ? "read" : "write")))
		return st;
	if (hd->expect_continue)
		conn_send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	return get ? files_get(c, query) : files_post(c, hd, b, query);
}
