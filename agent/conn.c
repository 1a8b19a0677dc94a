/* vmsan-agent's connection layer: a connection's reads and writes, a
 * request body (Content-Length or chunked), whole answers and chunked
 * streams.  The handlers (exec.c, files.c, shell.c) answer through it. */
#define _GNU_SOURCE
#include "conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

int conn_send(struct conn *c, const void *p, size_t n)
{
	int flags = c->more ? MSG_MORE : 0;
	c->more = false;
	return http_send_all(c->fd, p, n, flags);
}

static int conn_sendv(struct conn *c, struct iovec *iov, int cnt)
{
	return http_sendv_all(c->fd, iov, cnt);
}

/* Read more bytes into rbuf; 0 on EOF, -1 on error. */
ssize_t conn_fill(struct conn *c)
{
	if (c->rpos == c->rlen)
		c->rpos = c->rlen = 0;
	if (c->rlen == CONN_BUF) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
		c->rpos = 0;
		if (c->rlen == CONN_BUF)
			return -1;
	}
	for (;;) {
		ssize_t r = recv(c->fd, c->rbuf + c->rlen, CONN_BUF - c->rlen, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r > 0)
			c->rlen += (size_t)r;
		return r;
	}
}

void body_init(struct body *b, struct conn *c, const struct http_head *hd)
{
	memset(b, 0, sizeof *b);
	b->c = c;
	b->kind = hd->body;
	b->left = hd->content_length;
	b->done = hd->body == BODY_NONE;
}

ssize_t body_peek_some(struct body *b, const void **p, size_t n)
{
	struct conn *c = b->c;
	if (b->done && !b->dlen)
		return 0;
	if (b->kind == BODY_LENGTH) {
		if (c->rpos == c->rlen) {
			ssize_t r = conn_fill(c);
			if (r <= 0) {
				c->close_after = true;
				return -1;
			}
		}
		size_t k = c->rlen - c->rpos;
		if (k > n)
			k = n;
		if (k > b->left)
			k = (size_t)b->left;
		*p = c->rbuf + c->rpos;
		c->rpos += k;
		b->left -= k;
		b->total += k;
		if (!b->left)
			b->done = true;
		return (ssize_t)k;
	}
	/* chunked */
	if (!b->dlen && !b->ch.done) {
		if (c->rpos == c->rlen) {
			ssize_t r = conn_fill(c);
			if (r <= 0) {
				c->close_after = true;
				return -1;
			}
		}
		/* the data where it lies, not moved over the framing */
		size_t skip, out;
		ssize_t used = chunked_span(&b->ch, c->rbuf + c->rpos, c->rlen - c->rpos, &skip, &out);
		if (used < 0) {
			c->close_after = true;
			return -1;
		}
		b->dptr = c->rbuf + c->rpos + skip;
		b->dlen = out;
		c->rpos += (size_t)used;
		if (b->ch.done)
			b->done = true;
	}
	if (!b->dlen)
		return b->done ? 0 : -2;
	size_t k = b->dlen < n ? b->dlen : n;
	*p = b->dptr;
	b->dptr += k;
	b->dlen -= k;
	b->total += k;
	return (ssize_t)k;
}

ssize_t body_read_some(struct body *b, void *buf, size_t n)
{
	const void *p;
	ssize_t r = body_peek_some(b, &p, n);
	if (r > 0)
		memcpy(buf, p, (size_t)r);
	return r;
}

ssize_t body_peek(struct body *b, const void **p, size_t n)
{
	for (;;) {
		ssize_t r = body_peek_some(b, p, n);
		if (r != -2)
			return r;
	}
}

ssize_t body_read(struct body *b, void *buf, size_t n)
{
	for (;;) {
		ssize_t r = body_read_some(b, buf, n);
		if (r != -2)
			return r;
	}
}

/* Discard what is left of a body (bounded), so the connection can serve
 * the next request; else mark it for closing. */
void body_drain(struct body *b)
{
	char tmp[16384];
	uint64_t budget = 1 << 20;
	while (!b->done || b->dlen) {
		ssize_t r = body_read(b, tmp, sizeof tmp);
		if (r <= 0 || (uint64_t)r > budget) {
			b->c->close_after = true;
			return;
		}
		budget -= (uint64_t)r;
	}
}

static int send_head(struct conn *c, int status, const char *ctype, long long len, const char *extra)
{
	char h[1024];
	c->status = status;
	int n = snprintf(h, sizeof h, "HTTP/1.1 %d %s\r\n%s%s%s", status, http_reason(status),
			 ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "");
	if (len >= 0)
		n += snprintf(h + n, sizeof h - (size_t)n, "Content-Length: %lld\r\n", len);
	else
		n += snprintf(h + n, sizeof h - (size_t)n, "Transfer-Encoding: chunked\r\n");
	n += snprintf(h + n, sizeof h - (size_t)n, "%s%s\r\n", c->close_after ? "Connection: close\r\n" : "",
		      extra ? extra : "");
	return conn_send(c, h, (size_t)n);
}

int respond(struct conn *c, int status, const char *ctype, const char *body, size_t len)
{
	char h[512];
	c->status = status;
	int n = snprintf(h, sizeof h, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status,
			 http_reason(status), ctype, len, c->close_after ? "Connection: close\r\n" : "");
	struct iovec iov[2] = { { h, (size_t)n }, { (void *)body, len } };
	return conn_sendv(c, iov, len ? 2 : 1);
}

int respond_error(struct conn *c, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct buf b = { 0 };
	buf_puts(&b, "{\"error\":");
	buf_jstr(&b, msg, strlen(msg));
	buf_puts(&b, "}\n");
	int r = respond(c, status, "application/json", b.p ? b.p : "", b.len);
	buf_free(&b);
	return r;
}

int stream_begin(struct conn *c, int status, const char *ctype)
{
	c->streaming = true;
	/* Every caller sends its first chunk straight away: hold the head
	 * back for it (MSG_MORE), one segment and one wakeup of the client
	 * instead of two.  The kernel sends it anyway within 200 ms. */
	c->more = true;
	return send_head(c, status, ctype, -1, "Cache-Control: no-store\r\n");
}

int stream_chunk(struct conn *c, const void *p, size_t n)
{
	if (!n)
		return 0;
	char h[24];
	int hl = snprintf(h, sizeof h, "%zx\r\n", n);
	struct iovec iov[3] = { { h, (size_t)hl }, { (void *)p, n }, { (char *)"\r\n", 2 } };
	return conn_sendv(c, iov, 3);
}

int stream_end(struct conn *c)
{
	c->streaming = false;
	return conn_send(c, "0\r\n\r\n", 5);
}

struct jv *read_json_body(struct conn *c, struct body *b, struct jarena *a, struct buf *raw)
{
	char err[160];
	for (;;) {
		if (buf_reserve(raw, 65536) < 0) {
			respond_error(c, 500, "out of memory");
			return NULL;
		}
		ssize_t r = body_read(b, raw->p + raw->len, 65536);
		if (r < 0) {
			c->close_after = true;
			respond_error(c, 400, "malformed request body");
			return NULL;
		}
		if (r == 0)
			break;
		raw->len += (size_t)r;
		if (raw->len > (1 << 20)) {
			c->close_after = true;
			respond_error(c, 413, "request body over 1 MiB");
			return NULL;
		}
	}
	if (!raw->len) {
		respond_error(c, 400, "a JSON request body is required");
		return NULL;
	}
	size_t end;
	struct jv *v = json_parse(raw->p, raw->len, &end, a, err, sizeof err);
	if (!v) {
		respond_error(c, 400, "invalid JSON: %s", err);
		return NULL;
	}
	while (end < raw->len && strchr(" \t\r\n", raw->p[end]))
		end++;
	if (end != raw->len) {
		respond_error(c, 400, "invalid JSON: trailing data after the value");
		return NULL;
	}
	if (v->t != J_OBJ) {
		respond_error(c, 400, "the request body must be a JSON object");
		return NULL;
	}
	return v;
}
