/* multipart/form-data: the streaming parser and header parameters
 * (multipart.h). */
#define _GNU_SOURCE
#include "multipart.h"

#include <string.h>
#include <strings.h>

enum { ST_START, ST_PREAMBLE, ST_AFTER_DELIM, ST_HEADERS, ST_DATA, ST_EPILOGUE };

static bool bchar(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch && strchr("'()+_,-./:=? ", ch));
}

int mp_init(struct mp *m, const char *boundary)
{
	size_t n = strlen(boundary);
	memset(m, 0, sizeof *m);
	/* a boundary may not end in a space (RFC 2046) */
	if (n < 1 || n > MP_BOUNDARY_MAX || boundary[n - 1] == ' ')
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!bchar(boundary[i]))
			return -1;
	memcpy(m->delim, "\r\n--", 4);
	memcpy(m->delim + 4, boundary, n + 1);
	m->dlen = 4 + n;
	m->state = ST_START;
	return 0;
}

static bool tspecial_or_ctl(char ch)
{
	return (unsigned char)ch <= 0x20 || ch == 0x7f || strchr("()<>@,;:\\\"/[]?=", ch);
}

/* One value at *pp (a token or a quoted string) into out; 0, -2. */
static int param_value(const char **pp, char *out, size_t outlen)
{
	const char *p = *pp;
	size_t o = 0;
	if (*p == '"') {
		for (p++; *p != '"'; p++) {
			if (!*p)
				return -2;
			if (*p == '\\' && p[1])
				p++;
			if (o + 1 >= outlen)
				return -2;
			out[o++] = *p;
		}
		p++;
	} else {
		for (; *p && !tspecial_or_ctl(*p); p++) {
			if (o + 1 >= outlen)
				return -2;
			out[o++] = *p;
		}
		if (!o)
			return -2;
	}
	out[o] = 0;
	*pp = p;
	return (int)o;
}

ssize_t mp_param(const char *value, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);
	const char *p = strchr(value, ';');
	char tmp[MP_FILENAME_MAX];
	while (p) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		const char *k = p;
		while (*p && *p != '=' && *p != ';')
			p++;
		size_t n = (size_t)(p - k);
		while (n && (k[n - 1] == ' ' || k[n - 1] == '\t'))
			n--;
		if (*p != '=')
			return -2;
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		bool want = n == kl && !strncasecmp(k, key, kl);
		int r = want ? param_value(&p, out, outlen) : param_value(&p, tmp, sizeof tmp);
		if (r < 0)
			return -2;
		if (want)
			return r;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p && *p != ';')
			return -2;
		if (!*p)
			break;
	}
	return -1;
}

/* The part's header block (lines, without the blank line that ends
 * it): its Content-Disposition names it. */
static int part_headers(struct mp *m, const char *h, size_t n)
{
	char line[MP_HEADERS_MAX + 8];
	m->name[0] = m->filename[0] = 0;
	m->has_filename = false;
	while (n) {
		const char *eol = memmem(h, n, "\r\n", 2);
		size_t ll = eol ? (size_t)(eol - h) : n;
		memcpy(line, h, ll);
		line[ll] = 0;
		h += ll + (eol ? 2 : 0);
		n -= ll + (eol ? 2 : 0);
		if (memchr(line, 0, ll) || !strchr(line, ':'))
			return -1; /* a NUL, or not a header (folding is obsolete) */
		if (strncasecmp(line, "content-disposition:", 20))
			continue;
		const char *v = line + 20;
		while (*v == ' ' || *v == '\t')
			v++;
		if (strncasecmp(v, "form-data", 9) || (v[9] && v[9] != ';' && v[9] != ' '))
			return -1;
		if (mp_param(v, "name", m->name, sizeof m->name) == -2)
			m->name[0] = 0; /* too long: not a name we look for */
		ssize_t fl = mp_param(v, "filename", m->filename, sizeof m->filename);
		if (fl == -2)
			return -1;
		m->has_filename = fl >= 0;
	}
	return 0;
}

/* After a delimiter: "--" ends the body, else optional whitespace and a
 * line break start a part. */
static enum mp_event after_delim(struct mp *m, const char *buf, size_t len, bool eof, size_t *used)
{
	size_t i = 0;
	if (len >= 2 && buf[0] == '-' && buf[1] == '-') {
		*used = 2;
		m->state = ST_EPILOGUE;
		return MP_NEED;
	}
	while (i < len && (buf[i] == ' ' || buf[i] == '\t'))
		i++;
	if (i > 64)
		return MP_ERROR;
	if (len - i < 2)
		return eof ? MP_ERROR : MP_NEED;
	if (buf[0] == '-' || buf[i] != '\r' || buf[i + 1] != '\n')
		return MP_ERROR;
	*used = i + 2;
	m->state = ST_HEADERS;
	return MP_NEED;
}

/* One step of the machine; MP_NEED with *used > 0 means "call again". */
static enum mp_event step(struct mp *m, const char *buf, size_t len, bool eof, size_t *used, const char **data,
			  size_t *dlen)
{
	const char *hit;
	*used = 0;
	switch (m->state) {
	case ST_START:
		/* the first delimiter may lack its line break */
		if (len < m->dlen - 2)
			return eof ? MP_ERROR : MP_NEED;
		if (!memcmp(buf, m->delim + 2, m->dlen - 2)) {
			*used = m->dlen - 2;
			m->state = ST_AFTER_DELIM;
			return MP_NEED;
		}
		m->state = ST_PREAMBLE;
		/* fall through */
	case ST_PREAMBLE:
		hit = memmem(buf, len, m->delim, m->dlen);
		if (hit) {
			*used = (size_t)(hit - buf) + m->dlen;
			m->state = ST_AFTER_DELIM;
		} else if (eof) {
			return MP_ERROR;
		} else if (len >= m->dlen) {
			*used = len - m->dlen + 1; /* the rest may start one */
		}
		return MP_NEED;
	case ST_AFTER_DELIM: return after_delim(m, buf, len, eof, used);
	case ST_HEADERS:
		if (len >= 2 && buf[0] == '\r' && buf[1] == '\n')
			hit = buf; /* no headers at all */
		else if ((hit = memmem(buf, len < MP_HEADERS_MAX + 4 ? len : MP_HEADERS_MAX + 4, "\r\n\r\n", 4)))
			hit += 2;
		if (!hit)
			return eof || len >= MP_HEADERS_MAX + 4 ? MP_ERROR : MP_NEED;
		if (part_headers(m, buf, (size_t)(hit - buf)) < 0)
			return MP_ERROR;
		*used = (size_t)(hit - buf) + 2;
		m->state = ST_DATA;
		return MP_PART;
	case ST_DATA:
		hit = memmem(buf, len, m->delim, m->dlen);
		if (hit == buf) {
			*used = m->dlen;
			m->state = ST_AFTER_DELIM;
			return MP_NEED;
		}
		*dlen = hit ? (size_t)(hit - buf) : len >= m->dlen ? len - m->dlen + 1 : 0;
		if (!*dlen)
			return eof ? MP_ERROR : MP_NEED;
		*data = buf;
		*used = *dlen;
		return MP_DATA;
	default: /* the epilogue is ignored */ *used = len; return MP_END;
	}
}

enum mp_event mp_next(struct mp *m, const char *buf, size_t len, bool eof, size_t *used, const char **data,
		      size_t *dlen)
{
	size_t total = 0;
	for (;;) {
		size_t u;
		enum mp_event ev = step(m, buf + total, len - total, eof, &u, data, dlen);
		total += u;
		if (ev != MP_NEED || !u) {
			*used = total;
			return ev;
		}
	}
}
