/* Strict requests: bounded read, strict parse, field-by-field reader. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmsan.h"

#define FIX_REQUEST "send one JSON object as described in the helper's --help"

json_t *request_read(int fd, struct verr *e)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	json_t *req = NULL;

	if (!buf) {
		verr_sys(e, "ERR_NOMEM", NULL, "cannot allocate request buffer");
		return NULL;
	}
	for (;;) {
		ssize_t n;

		if (len == cap) {
			char *nb;

			if (cap > VMSAN_REQUEST_MAX) {
				verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_TOO_LARGE", "send a smaller request",
					 "request is larger than %d bytes", VMSAN_REQUEST_MAX);
				goto out;
			}
			cap *= 2;
			nb = realloc(buf, cap);
			if (!nb) {
				verr_sys(e, "ERR_NOMEM", NULL, "cannot grow request buffer");
				goto out;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			verr_sys(e, "ERR_READ", NULL, "cannot read request");
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > VMSAN_REQUEST_MAX) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_TOO_LARGE", "send a smaller request",
			 "request is larger than %d bytes", VMSAN_REQUEST_MAX);
		goto out;
	}
	req = request_parse(buf, len, e);
out:
	free(buf);
	return req;
}

static bool all_space(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strchr(" \t\r\n", s[i]))
			return false;
	return true;
}

json_t *request_parse(const char *buf, size_t len, struct verr *e)
{
	json_error_t je;
	json_t *req;

	if (all_space(buf, len))
		return json_object();
	/* No JSON_DISABLE_EOF_CHECK: trailing garbage is an error.  jansson
	 * rejects invalid UTF-8 and, without JSON_ALLOW_NUL, "\u0000". */
	req = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!req) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_JSON", FIX_REQUEST,
			 "request is not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
		return NULL;
	}
	if (!json_is_object(req)) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_JSON", FIX_REQUEST, "request must be a JSON object");
		json_decref(req);
		return NULL;
	}
	return req;
}

void jr_init(struct jr *r, json_t *obj, const char *path, struct verr *e)
{
	r->obj = obj;
	snprintf(r->path, sizeof(r->path), "%s", path);
	r->nseen = 0;
	r->e = e;
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

/* Looks a key up and remembers it as known.  NULL: absent or error. */
static json_t *lookup(struct jr *r, const char *key, int flags)
{
	json_t *v;

	if (verr_isset(r->e))
		return NULL;
	if (r->nseen < JR_MAX_KEYS)
		r->seen[r->nseen++] = key;
	v = json_object_get(r->obj, key);
	if (!v && (flags & JR_REQUIRED))
		verr_set(r->e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", FIX_REQUEST, "%s: missing required field '%s'",
			 r->path, key);
	return v;
}

static bool want_type(struct jr *r, const char *key, json_t *v, json_type t, const char *tname)
{
	if (json_typeof(v) == t || (t == JSON_TRUE && json_is_boolean(v)))
		return true;
	verr_set(r->e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", FIX_REQUEST, "%s.%s: expected %s, got %s", r->path, key,
		 tname, type_name(v));
	return false;
}

const char *jr_string(struct jr *r, const char *key, int flags, validator_fn valid)
{
	json_t *v = lookup(r, key, flags);
	char why[256];
	const char *s;

	if (!v || !want_type(r, key, v, JSON_STRING, "a string"))
		return NULL;
	s = json_string_value(v);
	if (valid && valid(s, why, sizeof(why)) != 0) {
		verr_set(r->e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", NULL, "%s.%s: %s", r->path, key, why);
		return NULL;
	}
	return s;
}

int jr_int(struct jr *r, const char *key, int flags, long long min, long long max, long long *out)
{
	json_t *v = lookup(r, key, flags);
	long long x;

	if (!v)
		return verr_isset(r->e) ? -1 : 0;
	if (!want_type(r, key, v, JSON_INTEGER, "an integer"))
		return -1;
	x = json_integer_value(v);
	if (x < min || x > max) {
		verr_set(r->e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", NULL,
			 "%s.%s: %lld is out of range (%lld to %lld)", r->path, key, x, min, max);
		return -1;
	}
	*out = x;
	return 1;
}

int jr_bool(struct jr *r, const char *key, int flags, bool *out)
{
	json_t *v = lookup(r, key, flags);

	if (!v)
		return verr_isset(r->e) ? -1 : 0;
	if (!want_type(r, key, v, JSON_TRUE, "a boolean"))
		return -1;
	*out = json_is_true(v);
	return 1;
}

json_t *jr_object(struct jr *r, const char *key, int flags)
{
	json_t *v = lookup(r, key, flags);

	if (!v || !want_type(r, key, v, JSON_OBJECT, "an object"))
		return NULL;
	return v;
}

json_t *jr_array(struct jr *r, const char *key, int flags, size_t maxlen)
{
	json_t *v = lookup(r, key, flags);

	if (!v || !want_type(r, key, v, JSON_ARRAY, "an array"))
		return NULL;
	if (json_array_size(v) > maxlen) {
		verr_set(r->e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", NULL,
			 "%s.%s: at most %zu entries allowed, got %zu", r->path, key, maxlen, json_array_size(v));
		return NULL;
	}
	return v;
}

json_t *jr_any(struct jr *r, const char *key, int flags)
{
	return lookup(r, key, flags);
}

int jr_end(struct jr *r)
{
	const char *key;
	json_t *v;

	if (verr_isset(r->e))
		return -1;
	json_object_foreach(r->obj, key, v) {
		bool known = false;

		for (int i = 0; i < r->nseen && !known; i++)
			known = strcmp(r->seen[i], key) == 0;
		if (!known) {
			verr_set(r->e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", FIX_REQUEST, "%s: unknown field '%s'",
				 r->path, key);
			return -1;
		}
	}
	return 0;
}
