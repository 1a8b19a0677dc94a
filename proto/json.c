/* Strict JSON (RFC 8259) reader and writer for the agent. */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

struct jblk {
	struct jblk *next;
	size_t used, cap;
	char mem[];
};

static void *aalloc(struct jarena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	struct jblk *b = a->head;
	if (!b || b->cap - b->used < n) {
		size_t cap = n > 8192 ? n : 8192;
		b = malloc(sizeof *b + cap);
		if (!b)
			return NULL;
		b->next = a->head;
		b->used = 0;
		b->cap = cap;
		a->head = b;
	}
	void *p = b->mem + b->used;
	b->used += n;
	return p;
}

void json_free(struct jarena *a)
{
	while (a->head) {
		struct jblk *n = a->head->next;
		free(a->head);
		a->head = n;
	}
}

struct jp {
	const char *s;
	size_t i, n;
	struct jarena *a;
	char *err;
	size_t errlen;
	int depth;
};

static struct jv *fail(struct jp *p, const char *what)
{
	if (!p->err[0])
		snprintf(p->err, p->errlen, "%s at byte %zu", what, p->i);
	return NULL;
}

static void ws(struct jp *p)
{
	while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
		p->i++;
}

static int hex4(struct jp *p, unsigned *out)
{
	unsigned v = 0;
	if (p->n - p->i < 4)
		return -1;
	for (int k = 0; k < 4; k++) {
		char c = p->s[p->i++];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 63));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 63));
		o[2] = (char)(0x80 | (cp & 63));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 63));
	o[2] = (char)(0x80 | ((cp >> 6) & 63));
	o[3] = (char)(0x80 | (cp & 63));
	return 4;
}

/* Length of a valid UTF-8 sequence at s (n bytes available), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t k;
	unsigned lo = 0x80, hi = 0xbf;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		k = 2;
	else if (c == 0xe0) {
		k = 3;
		lo = 0xa0;
	} else if (c == 0xed) {
		k = 3;
		hi = 0x9f;
	} else if (c >= 0xe1 && c <= 0xef)
		k = 3;
	else if (c == 0xf0) {
		k = 4;
		lo = 0x90;
	} else if (c >= 0xf1 && c <= 0xf3)
		k = 4;
	else if (c == 0xf4) {
		k = 4;
		hi = 0x8f;
	} else
		return 0;
	if (n < k || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t j = 2; j < k; j++)
		if (s[j] < 0x80 || s[j] > 0xbf)
			return 0;
	return k;
}

static char *parse_string(struct jp *p, size_t *outlen)
{
	p->i++; /* opening quote */
	size_t start = p->i, maxlen = 0;
	/* First pass: find the end and bound the decoded size. */
	while (p->i < p->n && p->s[p->i] != '"') {
		if (p->s[p->i] == '\\')
			p->i++;
		p->i++;
		maxlen++;
	}
	if (p->i >= p->n)
		return fail(p, "unterminated string"), NULL;
	size_t end = p->i;
	char *o = aalloc(p->a, maxlen * 4 + 1);
	if (!o)
		return fail(p, "out of memory"), NULL;
	size_t w = 0;
	p->i = start;
	while (p->i < end) {
		unsigned char c = (unsigned char)p->s[p->i];
		if (c < 0x20)
			return fail(p, "control character in string"), NULL;
		if (c != '\\') {
			size_t k = utf8_len((const unsigned char *)p->s + p->i, end - p->i);
			if (!k)
				return fail(p, "invalid UTF-8 in string"), NULL;
			memcpy(o + w, p->s + p->i, k);
			w += k;
			p->i += k;
			continue;
		}
		p->i++;
		char e = p->s[p->i++];
		switch (e) {
		case '"': o[w++] = '"'; break;
		case '\\': o[w++] = '\\'; break;
		case '/': o[w++] = '/'; break;
		case 'b': o[w++] = '\b'; break;
		case 'f': o[w++] = '\f'; break;
		case 'n': o[w++] = '\n'; break;
		case 'r': o[w++] = '\r'; break;
		case 't': o[w++] = '\t'; break;
		case 'u': {
			unsigned cp, lo;
			if (hex4(p, &cp) < 0)
				return fail(p, "bad \\u escape"), NULL;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (p->i + 2 > end || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
					return fail(p, "unpaired surrogate"), NULL;
				p->i += 2;
				if (hex4(p, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
					return fail(p, "unpaired surrogate"), NULL;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp <= 0xdfff)
				return fail(p, "unpaired surrogate"), NULL;
			if (cp == 0)
				return fail(p, "NUL in string"), NULL;
			w += put_utf8(o + w, cp);
			break;
		}
		default: return fail(p, "bad escape"), NULL;
		}
		if (p->i > end)
			return fail(p, "bad escape"), NULL;
	}
	o[w] = 0;
	p->i = end + 1;
	*outlen = w;
	return o;
}

static struct jv *parse_value(struct jp *p);

static struct jv *newv(struct jp *p, enum jtype t)
{
	struct jv *v = aalloc(p->a, sizeof *v);
	if (!v)
		return fail(p, "out of memory");
	memset(v, 0, sizeof *v);
	v->t = t;
	return v;
}

static bool lit(struct jp *p, const char *w)
{
	size_t l = strlen(w);
	if (p->n - p->i < l || memcmp(p->s + p->i, w, l) != 0)
		return false;
	p->i += l;
	return true;
}

/* Digits from p->i on: how many. */
static size_t digits(struct jp *p)
{
	size_t d = p->i;

	while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
		p->i++;
	return p->i - d;
}

static struct jv *parse_number(struct jp *p)
{
	size_t s = p->i;
	if (p->i < p->n && p->s[p->i] == '-')
		p->i++;
	if (p->i >= p->n)
		return fail(p, "bad number");
	if (p->s[p->i] == '0')
		p->i++;
	else if (p->s[p->i] >= '1' && p->s[p->i] <= '9')
		digits(p);
	else
		return fail(p, "bad number");
	if (p->i < p->n && p->s[p->i] == '.') {
		p->i++;
		if (!digits(p))
			return fail(p, "bad number");
	}
	if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
		p->i++;
		if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-'))
			p->i++;
		if (!digits(p))
			return fail(p, "bad number");
	}
	char tmp[64];
	if (p->i - s >= sizeof tmp)
		return fail(p, "number too long");
	memcpy(tmp, p->s + s, p->i - s);
	tmp[p->i - s] = 0;
	struct jv *v = newv(p, J_NUM);
	if (v)
		v->num = strtod(tmp, NULL);
	return v;
}

static struct jv *parse_container(struct jp *p, bool obj)
{
	if (++p->depth > JSON_MAX_DEPTH)
		return fail(p, "nested too deeply");
	struct jv *v = newv(p, obj ? J_OBJ : J_ARR), **tail;
	if (!v)
		return NULL;
	tail = &v->child;
	p->i++;
	ws(p);
	if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
		p->i++;
		p->depth--;
		return v;
	}
	for (;;) {
		char *key = NULL;
		if (obj) {
			ws(p);
			size_t kl;
			if (p->i >= p->n || p->s[p->i] != '"')
				return fail(p, "expected a member name");
			if (!(key = parse_string(p, &kl)))
				return NULL;
			for (struct jv *c = v->child; c; c = c->next)
				if (strcmp(c->key, key) == 0)
					return fail(p, "duplicate member name");
			ws(p);
			if (p->i >= p->n || p->s[p->i] != ':')
				return fail(p, "expected ':'");
			p->i++;
		}
		struct jv *c = parse_value(p);
		if (!c)
			return NULL;
		c->key = key;
		*tail = c;
		tail = &c->next;
		v->n++;
		ws(p);
		if (p->i < p->n && p->s[p->i] == ',') {
			p->i++;
			continue;
		}
		if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
			p->i++;
			break;
		}
		return fail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
	p->depth--;
	return v;
}

static struct jv *parse_value(struct jp *p)
{
	ws(p);
	if (p->i >= p->n)
		return fail(p, "unexpected end");
	char c = p->s[p->i];
	struct jv *v;
	switch (c) {
	case '{': return parse_container(p, true);
	case '[': return parse_container(p, false);
	case '"':
		if (!(v = newv(p, J_STR)))
			return NULL;
		return (v->s = parse_string(p, &v->slen)) ? v : NULL;
	case 't':
	case 'f':
		if (!lit(p, c == 't' ? "true" : "false"))
			return fail(p, "bad literal");
		if ((v = newv(p, J_BOOL)))
			v->b = c == 't';
		return v;
	case 'n':
		if (!lit(p, "null"))
			return fail(p, "bad literal");
		return newv(p, J_NULL);
	default: return parse_number(p);
	}
}

struct jv *json_parse(const char *buf, size_t len, size_t *end, struct jarena *a, char *err, size_t errlen)
{
	struct jp p = { .s = buf, .n = len, .a = a, .err = err, .errlen = errlen };
	err[0] = 0;
	struct jv *v = parse_value(&p);
	if (v && end)
		*end = p.i;
	return v;
}

struct jv *json_get(const struct jv *obj, const char *key)
{
	if (!obj || obj->t != J_OBJ)
		return NULL;
	for (struct jv *c = obj->child; c; c = c->next)
		if (strcmp(c->key, key) == 0)
			return c;
	return NULL;
}

int json_int(const struct jv *obj, const char *key, long long min, long long max, long long *out)
{
	struct jv *v = json_get(obj, key);
	if (!v || v->t == J_NULL)
		return 0;
	if (v->t != J_NUM || v->num != floor(v->num) || v->num < (double)min || v->num > (double)max)
		return -1;
	*out = (long long)v->num;
	return 1;
}

int buf_reserve(struct buf *b, size_t more)
{
	if (b->cap - b->len > more)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len <= more)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

int buf_put(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -1;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = 0;
	return 0;
}

int buf_puts(struct buf *b, const char *s)
{
	return buf_put(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_reserve(b, (size_t)n + 1) < 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int buf_jstr(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	if (buf_reserve(b, n * 6 + 3) < 0)
		return -1;
	char *o = b->p + b->len;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c == '\n') {
			*o++ = '\\';
			*o++ = 'n';
		} else if (c == '\t') {
			*o++ = '\\';
			*o++ = 't';
		} else if (c == '\r') {
			*o++ = '\\';
			*o++ = 'r';
		} else if (c < 0x20 || c == 0x7f) {
			*o++ = '\\';
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		} else
			*o++ = (char)c;
	}
	*o++ = '"';
	b->len = (size_t)(o - b->p);
	b->p[b->len] = 0;
	return 0;
}

void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}
