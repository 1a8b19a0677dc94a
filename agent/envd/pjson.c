/* proto3 JSON, the Connect codec envd speaks: a request's fields read
 * strictly (protojson's rules: lowerCamelCase or the proto name, null for
 * the default, no unknown field, integers as numbers or strings, enums by
 * name or number, bytes as base64), and the few value kinds the answers
 * write (strings that must be UTF-8, bytes, timestamps). */
#define _GNU_SOURCE
#include "envd.h"
#include "../../proto/connect.h"
#include "../../proto/ws.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void pj_fail(struct pj *p, const char *fmt, ...)
{
	va_list ap;
	if (p->bad)
		return; /* the first error is the one reported */
	p->bad = true;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof p->err, fmt, ap);
	va_end(ap);
}

/* key is name (lowerCamelCase) or its proto spelling (lower_snake). */
static bool key_is(const char *key, const char *name)
{
	for (; *name; name++, key++) {
		if (*name >= 'A' && *name <= 'Z') {
			if (*key == *name)
				continue;
			if (*key++ != '_' || *key != *name - 'A' + 'a')
				return false;
		} else if (*key != *name) {
			return false;
		}
	}
	return !*key;
}

/* The member for a field; NULL when absent or null (the default). */
static const struct jv *member(const struct jv *o, const char *name)
{
	for (const struct jv *m = o ? o->child : NULL; m; m = m->next)
		if (key_is(m->key, name))
			return m->t == J_NULL ? NULL : m;
	return NULL;
}

void pj_fields(struct pj *p, const struct jv *o, const char *what, const char *const *fields)
{
	if (!o || o->t != J_OBJ) {
		pj_fail(p, "%s: a JSON object is expected", what);
		return;
	}
	for (const struct jv *m = o->child; m; m = m->next) {
		int seen = 0;
		for (size_t i = 0; fields[i]; i++)
			seen += key_is(m->key, fields[i]);
		for (const struct jv *n = o->child; n != m; n = n->next)
			for (size_t i = 0; fields[i]; i++)
				if (key_is(m->key, fields[i]) && key_is(n->key, fields[i]))
					seen = 2; /* the same field twice, in both spellings */
		if (seen != 1) {
			pj_fail(p, seen ? "%s: field \"%.60s\" is set twice" : "%s: unknown field \"%.60s\"", what,
				m->key);
			return;
		}
	}
}

const struct jv *pj_msg(struct pj *p, const struct jv *o, const char *name, const char *const *fields)
{
	const struct jv *v = member(o, name);
	if (v)
		pj_fields(p, v, name, fields);
	return p->bad ? NULL : v;
}

const char *pj_str(struct pj *p, const struct jv *o, const char *name, bool *present)
{
	const struct jv *v = member(o, name);
	if (present)
		*present = v != NULL;
	if (!v)
		return "";
	if (v->t != J_STR) {
		pj_fail(p, "%s: a string is expected", name);
		return "";
	}
	return v->s;
}

bool pj_bool(struct pj *p, const struct jv *o, const char *name, bool *present)
{
	const struct jv *v = member(o, name);
	if (present)
		*present = v != NULL;
	if (v && v->t != J_BOOL)
		pj_fail(p, "%s: true or false is expected", name);
	return v && v->t == J_BOOL && v->b;
}

uint32_t pj_u32(struct pj *p, const struct jv *o, const char *name, bool *present)
{
	const struct jv *v = member(o, name);
	double d = -1;
	char *end;
	if (present)
		*present = v != NULL;
	if (!v)
		return 0;
	if (v->t == J_NUM)
		d = v->num;
	else if (v->t == J_STR && v->slen && v->slen <= 10 && strspn(v->s, "0123456789") == v->slen)
		d = strtod(v->s, &end);
	if (d < 0 || d > 4294967295.0 || d != (double)(uint32_t)d) {
		pj_fail(p, "%s: an integer from 0 to 4294967295 is expected", name);
		return 0;
	}
	return (uint32_t)d;
}

int pj_enum(struct pj *p, const struct jv *o, const char *name, const struct pj_enum *values)
{
	const struct jv *v = member(o, name);
	if (!v)
		return 0;
	for (size_t i = 0; values[i].name; i++)
		if ((v->t == J_STR && !strcmp(v->s, values[i].name)) ||
		    (v->t == J_NUM && v->num == (double)values[i].value))
			return values[i].value;
	pj_fail(p, "%s: not a known value", name);
	return 0;
}

uint8_t *pj_bytes(struct pj *p, const struct jv *o, const char *name, size_t *len, bool *present)
{
	const struct jv *v = member(o, name);
	uint8_t *out;
	ssize_t n;
	*len = 0;
	if (present)
		*present = v != NULL;
	if (!v)
		return NULL;
	if (v->t != J_STR) {
		pj_fail(p, "%s: base64 bytes are expected", name);
		return NULL;
	}
	out = malloc(v->slen / 4 * 3 + 3);
	n = out ? connect_b64_decode(v->s, v->slen, out, v->slen / 4 * 3 + 3) : -1;
	if (n < 0) {
		free(out);
		pj_fail(p, out ? "%s: bad base64" : "%s: out of memory", name);
		return NULL;
	}
	*len = (size_t)n;
	return out;
}

const struct jv *pj_strmap(struct pj *p, const struct jv *o, const char *name)
{
	const struct jv *v = member(o, name);
	if (!v)
		return NULL;
	if (v->t != J_OBJ) {
		pj_fail(p, "%s: an object of strings is expected", name);
		return NULL;
	}
	for (const struct jv *m = v->child; m; m = m->next)
		if (m->t != J_STR) {
			pj_fail(p, "%s: \"%.60s\" must be a string", name, m->key);
			return NULL;
		}
	return v;
}

const struct jv *pj_strlist(struct pj *p, const struct jv *o, const char *name)
{
	const struct jv *v = member(o, name);
	if (!v)
		return NULL;
	if (v->t != J_ARR) {
		pj_fail(p, "%s: an array of strings is expected", name);
		return NULL;
	}
	for (const struct jv *m = v->child; m; m = m->next)
		if (m->t != J_STR) {
			pj_fail(p, "%s: an array of strings is expected", name);
			return NULL;
		}
	return v;
}

/* ---- writing ---------------------------------------------------------- */

void pj_put_str(struct buf *b, const char *s, size_t n)
{
	struct buf clean = { 0 };
	size_t i = 0;
	/* protojson refuses a string that is not UTF-8; a file name may not
	 * be: each byte that is not part of a valid sequence becomes U+FFFD,
	 * as Go's encoders do. */
	while (i < n) {
		unsigned char ch = (unsigned char)s[i];
		size_t k = ch < 0x80 ? 1 : ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : 2;
		if (k > n - i || (k > 1 && ws_utf8_step(WS_UTF8_ACCEPT, (const uint8_t *)s + i, k) != WS_UTF8_ACCEPT)) {
			buf_puts(&clean, "\xef\xbf\xbd");
			i++;
			continue;
		}
		buf_put(&clean, s + i, k);
		i += k;
	}
	buf_jstr(b, clean.p ? clean.p : "", clean.len);
	buf_free(&clean);
}

void pj_put_bytes(struct buf *b, const uint8_t *p, size_t n)
{
	buf_puts(b, "\"");
	if (buf_reserve(b, 4 * (n + 2) / 3 + 8) == 0) {
		b->len += base64_encode(p, n, b->p + b->len);
		buf_puts(b, "\"");
	}
}

void pj_put_time(struct buf *b, const struct timespec *ts)
{
	struct tm tm;
	time_t sec = ts->tv_sec;
	gmtime_r(&sec, &tm);
	buf_printf(b, "\"%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		   tm.tm_min, tm.tm_sec);
	/* protojson writes 0, 3, 6 or 9 digits of fraction */
	if (ts->tv_nsec % 1000000 == 0 && ts->tv_nsec)
		buf_printf(b, ".%03ld", ts->tv_nsec / 1000000);
	else if (ts->tv_nsec % 1000 == 0 && ts->tv_nsec)
		buf_printf(b, ".%06ld", ts->tv_nsec / 1000);
	else if (ts->tv_nsec)
		buf_printf(b, ".%09ld", ts->tv_nsec);
	buf_puts(b, "Z\"");
}
