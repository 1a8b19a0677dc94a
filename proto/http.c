/* HTTP/1.1 head and chunked-body parsers (RFC 9112), strict and bounded. */
#include "http.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>

static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool ieq(const char *a, size_t alen, const char *b)
{
	return alen == strlen(b) && strncasecmp(a, b, alen) == 0;
}

/* Does the comma-separated list in v contain token tok? */
static bool list_has(const char *v, size_t vlen, const char *tok)
{
	size_t i = 0;
	while (i < vlen) {
		while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < vlen && v[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e > s && ieq(v + s, e - s, tok))
			return true;
	}
	return false;
}

static int parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 19)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Parses "HTTP/1.x"; returns x or -1. */
static int parse_version(const char *s, size_t n)
{
	if (n != 8 || memcmp(s, "HTTP/", 5) != 0)
		return -1;
	if (s[5] != '1' || s[6] != '.' || s[7] < '0' || s[7] > '9')
		return -2;
	return s[7] - '0';
}

static ssize_t parse_request_line(char *l, size_t n, struct http_head *hd)
{
	char *sp1 = memchr(l, ' ', n);
	if (!sp1 || sp1 == l || (size_t)(sp1 - l) >= sizeof hd->method)
		return -400;
	for (char *p = l; p < sp1; p++)
		if (!is_tchar((unsigned char)*p))
			return -400;
	char *t = sp1 + 1;
	char *sp2 = memchr(t, ' ', n - (size_t)(t - l));
	if (!sp2 || sp2 == t)
		return -400;
	size_t tlen = (size_t)(sp2 - t);
	if (tlen >= sizeof hd->target)
		return -431;
	if (t[0] != '/')
		return -400;
	for (size_t i = 0; i < tlen; i++)
		if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
			return -400;
	int minor = parse_version(sp2 + 1, n - (size_t)(sp2 + 1 - l));
	if (minor == -2)
		return -505;
	if (minor < 0)
		return -400;
	memcpy(hd->method, l, (size_t)(sp1 - l));
	hd->method[sp1 - l] = 0;
	memcpy(hd->target, t, tlen);
	hd->target[tlen] = 0;
	hd->minor = minor;
	return 0;
}

static ssize_t parse_status_line(char *l, size_t n, struct http_head *hd)
{
	if (n < 12)
		return -400;
	int minor = parse_version(l, 8);
	if (minor < 0)
		return minor == -2 ? -505 : -400;
	if (l[8] != ' ')
		return -400;
	int st = 0;
	for (int i = 9; i < 12; i++) {
		if (l[i] < '0' || l[i] > '9')
			return -400;
		st = st * 10 + (l[i] - '0');
	}
	if (st < 100)
		return -400;
	if (n > 12 && l[12] != ' ')
		return -400;
	size_t rl = n > 13 ? n - 13 : 0;
	if (rl >= sizeof hd->reason)
		rl = sizeof hd->reason - 1;
	memcpy(hd->reason, l + 13 > l + n ? l + n : l + 13, rl);
	hd->reason[rl] = 0;
	hd->status = st;
	hd->minor = minor;
	return 0;
}

/* What the fields say about the body's framing and the connection. */
struct framing {
	bool have_len, have_te;
	bool conn_close, conn_keep, conn_upgrade, up_ws;
};

/* The head's blank line within the first HTTP_HEAD_MAX bytes, or NULL. */
static char *head_end(char *buf, size_t len)
{
	size_t lim = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
	for (size_t i = 0; i + 3 < lim; i++)
		if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n')
			return buf + i;
	return NULL;
}

/* A field the parser acts on; any other is only recorded. */
static ssize_t note_field(const char *name, size_t nlen, const char *v, size_t vlen, struct http_head *hd,
			  struct framing *f)
{
	if (ieq(name, nlen, "content-length")) {
		uint64_t cl;
		if (parse_u64(v, vlen, &cl) < 0)
			return -400;
		if (f->have_len && cl != hd->content_length)
			return -400;
		f->have_len = true;
		hd->content_length = cl;
	} else if (ieq(name, nlen, "transfer-encoding")) {
		if (f->have_te || !ieq(v, vlen, "chunked"))
			return -501;
		f->have_te = true;
	} else if (ieq(name, nlen, "connection")) {
		f->conn_close |= list_has(v, vlen, "close");
		f->conn_keep |= list_has(v, vlen, "keep-alive");
		f->conn_upgrade |= list_has(v, vlen, "upgrade");
	} else if (ieq(name, nlen, "upgrade")) {
		f->up_ws |= list_has(v, vlen, "websocket");
	} else if (ieq(name, nlen, "expect")) {
		if (!ieq(v, vlen, "100-continue"))
			return -400;
		hd->expect_continue = true;
	}
	return 0;
}

/* The header line [line, eol), not empty: checked, its value trimmed,
 * recorded in hd. */
static ssize_t parse_field(const char *line, const char *eol, struct http_head *hd, struct framing *f)
{
	size_t n = (size_t)(eol - line);
	if (line[0] == ' ' || line[0] == '\t')
		return -400; /* obsolete line folding */
	const char *colon = memchr(line, ':', n);
	if (!colon || colon == line)
		return -400;
	for (const char *p = line; p < colon; p++)
		if (!is_tchar((unsigned char)*p))
			return -400;
	const char *v = colon + 1, *ve = eol;
	while (v < ve && (*v == ' ' || *v == '\t'))
		v++;
	while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
		ve--;
	for (const char *p = v; p < ve; p++) {
		unsigned char c = (unsigned char)*p;
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -400;
	}
	if (hd->nheaders == HTTP_HEADERS_MAX)
		return -431;
	size_t nlen = (size_t)(colon - line), vlen = (size_t)(ve - v);
	hd->h[hd->nheaders].name = line;
	hd->h[hd->nheaders].nlen = nlen;
	hd->h[hd->nheaders].value = v;
	hd->h[hd->nheaders].vlen = vlen;
	hd->nheaders++;
	return note_field(line, nlen, v, vlen, hd, f);
}

/* Whether the connection stays open, and how the body is framed. */
static void set_body(struct http_head *hd, bool is_request, const struct framing *f)
{
	hd->keep_alive = hd->minor >= 1 ? !f->conn_close : f->conn_keep && !f->conn_close;
	hd->upgrade_websocket = f->conn_upgrade && f->up_ws;
	if (f->have_te)
		hd->body = BODY_CHUNKED;
	else if (f->have_len)
		hd->body = hd->content_length ? BODY_LENGTH : BODY_NONE;
	else if (is_request || hd->status < 200 || hd->status == 204 || hd->status == 304)
		hd->body = BODY_NONE;
	else {
		hd->body = BODY_UNTIL_CLOSE;
		hd->keep_alive = false;
	}
	if (!is_request && (hd->status < 200 || hd->status == 204 || hd->status == 304))
		hd->body = BODY_NONE;
}

ssize_t http_parse_head(char *buf, size_t len, bool is_request, struct http_head *hd)
{
	struct framing f = { 0 };
	char *end, *line, *eol;
	ssize_t r;

	memset(hd, 0, sizeof *hd);
	end = head_end(buf, len);
	if (!end)
		return len >= HTTP_HEAD_MAX ? -431 : 0;
	line = buf;
	eol = memchr(line, '\r', (size_t)(end - line) + 1);
	if (!eol || eol[1] != '\n')
		return -400;
	r = is_request ? parse_request_line(line, (size_t)(eol - line), hd)
		       : parse_status_line(line, (size_t)(eol - line), hd);
	if (r < 0)
		return r;
	for (line = eol + 2; line < end + 2; line = eol + 2) {
		eol = memchr(line, '\r', (size_t)(end + 2 - line));
		if (!eol || eol[1] != '\n')
			return -400;
		if (eol == line)
			break;
		if ((r = parse_field(line, eol, hd, &f)) < 0)
			return r;
	}
	/* Both framings at once is how requests are smuggled: refuse. */
	if (f.have_len && f.have_te)
		return -400;
	set_body(hd, is_request, &f);
	return (ssize_t)(end - buf) + 4;
}

ssize_t http_header(const struct http_head *hd, const char *name, char *out, size_t outlen)
{
	for (int i = 0; i < hd->nheaders; i++)
		if (ieq(hd->h[i].name, hd->h[i].nlen, name)) {
			if (hd->h[i].vlen >= outlen)
				return -2;
			memcpy(out, hd->h[i].value, hd->h[i].vlen);
			out[hd->h[i].vlen] = 0;
			return (ssize_t)hd->h[i].vlen;
		}
	return -1;
}

/* The size line's states come before CH_DATA: chunked_decode hands them
 * to size_byte by that order. */
enum {
	CH_SIZE,
	CH_EXT,
	CH_SIZE_LF,
	CH_DATA,
	CH_DATA_CR,
	CH_DATA_LF,
	CH_TRAILER_START,
	CH_TRAILER,
	CH_TRAILER_LF,
	CH_END_LF
};

/* A byte of a chunk's size line: the hex size, extensions (ignored),
 * CRLF. */
static int size_byte(struct chunked *c, unsigned char ch)
{
	switch (c->state) {
	case CH_SIZE: {
		int d = ch >= '0' && ch <= '9'	 ? ch - '0'
			: ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
			: ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
						 : -1;
		if (d >= 0) {
			if (++c->ndigits > 15)
				return -1;
			c->left = c->left * 16 + (uint64_t)d;
		} else if (c->ndigits && (ch == ';' || ch == ' ' || ch == '\t')) {
			c->state = CH_EXT;
			c->extlen = 0;
		} else if (c->ndigits && ch == '\r') {
			c->state = CH_SIZE_LF;
		} else
			return -1;
		return 0;
	}
	case CH_EXT:
		if (ch == '\r')
			c->state = CH_SIZE_LF;
		else if (ch == '\n' || ++c->extlen > 1024)
			return -1;
		return 0;
	case CH_SIZE_LF:
		if (ch != '\n')
			return -1;
		c->ndigits = 0;
		c->state = c->left ? CH_DATA : CH_TRAILER_START;
		return 0;
	default: return -1;
	}
}

/* A byte of the framing after a chunk's data: its CRLF, or after the
 * last chunk the trailers (read and ignored) and the final CRLF. */
static int frame_byte(struct chunked *c, unsigned char ch)
{
	switch (c->state) {
	case CH_DATA_CR:
		if (ch != '\r')
			return -1;
		c->state = CH_DATA_LF;
		return 0;
	case CH_DATA_LF:
		if (ch != '\n')
			return -1;
		c->state = CH_SIZE;
		return 0;
	case CH_TRAILER_START:
		if (ch == '\r')
			c->state = CH_END_LF;
		else {
			c->state = CH_TRAILER;
			c->extlen = 1;
		}
		return 0;
	case CH_TRAILER:
		if (ch == '\r')
			c->state = CH_TRAILER_LF;
		else if (ch == '\n' || ++c->extlen > 4096)
			return -1;
		return 0;
	case CH_TRAILER_LF:
		if (ch != '\n')
			return -1;
		c->state = CH_TRAILER_START;
		return 0;
	case CH_END_LF:
		if (ch != '\n')
			return -1;
		c->done = true;
		return 0;
	default: return -1;
	}
}

ssize_t chunked_decode(struct chunked *c, char *buf, size_t len, size_t *out)
{
	size_t i = 0, o = 0;
	while (i < len && !c->done) {
		if (c->state == CH_DATA) {
			/* as much of the chunk as is here, in one move */
			size_t n = len - i;
			if (n > c->left)
				n = (size_t)c->left;
			memmove(buf + o, buf + i, n);
			o += n;
			i += n;
			c->left -= n;
			if (!c->left)
				c->state = CH_DATA_CR;
			continue;
		}
		/* every other state takes one byte */
		unsigned char ch = (unsigned char)buf[i++];
		if ((c->state < CH_DATA ? size_byte(c, ch) : frame_byte(c, ch)) < 0)
			return -1;
	}
	*out = o;
	return (ssize_t)i;
}

ssize_t chunked_span(struct chunked *c, const char *buf, size_t len, size_t *skip, size_t *out)
{
	size_t i = 0, n = 0;
	while (i < len && !c->done && c->state != CH_DATA) {
		unsigned char ch = (unsigned char)buf[i++];
		if ((c->state < CH_DATA ? size_byte(c, ch) : frame_byte(c, ch)) < 0)
			return -1;
	}
	if (i < len && c->state == CH_DATA) {
		n = len - i;
		if (n > c->left)
			n = (size_t)c->left;
		c->left -= n;
		if (!c->left)
			c->state = CH_DATA_CR;
	}
	*skip = i;
	*out = n;
	return (ssize_t)(i + n);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

ssize_t http_pct_decode(char *s)
{
	char *w = s;
	for (const char *r = s; *r; r++) {
		if (*r == '%') {
			int a = hexval((unsigned char)r[1]), b = a < 0 ? -1 : hexval((unsigned char)r[2]);
			if (a < 0 || b < 0 || (a == 0 && b == 0))
				return -1;
			*w++ = (char)(a * 16 + b);
			r += 2;
		} else if (*r == '+') {
			*w++ = ' ';
		} else
			*w++ = *r;
	}
	*w = 0;
	return w - s;
}

ssize_t http_query(const char *query, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	const char *p = query;
	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t seg = amp ? (size_t)(amp - p) : strlen(p);
		if (seg > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			size_t vl = seg - nl - 1;
			if (vl >= outlen)
				return -1;
			memcpy(out, p + nl + 1, vl);
			out[vl] = 0;
			return http_pct_decode(out);
		}
		if (seg == nl && strncmp(p, name, nl) == 0) {
			if (outlen < 1)
				return -1;
			out[0] = 0;
			return 0;
		}
		p = amp ? amp + 1 : NULL;
	}
	return -1;
}

const char *http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 499: return "Client Closed Request";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 507: return "Insufficient Storage";
	default: return "Unknown";
	}
}

int http_send_all(int fd, const void *p, size_t n, int flags)
{
	const char *s = p;
	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL | flags);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int iov_advance(struct iovec **iov, int cnt, size_t sent)
{
	struct iovec *v = *iov;
	while (cnt && sent >= v->iov_len) {
		sent -= v->iov_len;
		v++;
		cnt--;
	}
	if (cnt) {
		v->iov_base = (char *)v->iov_base + sent;
		v->iov_len -= sent;
	}
	*iov = v;
	return cnt;
}

int http_sendv_all(int fd, struct iovec *iov, int cnt)
{
	while (cnt) {
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
		ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		cnt = iov_advance(&iov, cnt, (size_t)w);
	}
	return 0;
}
