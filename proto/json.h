/* A small strict JSON reader and writer for the agent, which is static
 * and links no JSON library.  Documents are bounded (depth, size) and
 * strings are decoded to UTF-8 without NULs (a NUL cannot be passed to
 * execve or open, so it is refused at the door). */
#ifndef VMSAN_JSON_H
#define VMSAN_JSON_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
	enum jtype t;
	bool b;
	double num;
	char *s; /* J_STR: decoded, NUL-terminated */
	size_t slen;
	char *key; /* member name when inside an object */
	struct jv *child, *next;
	size_t n; /* members of an array or object */
};

struct jarena {
	struct jblk *head;
};

#define JSON_MAX_DEPTH 16

/* Parse one JSON value at the start of buf (leading whitespace allowed).
 * *end receives the offset just past the value.  Returns NULL with a
 * message in err on a syntax error, duplicate key or NUL in a string. */
struct jv *json_parse(const char *buf, size_t len, size_t *end, struct jarena *a, char *err, size_t errlen);
void json_free(struct jarena *a);

struct jv *json_get(const struct jv *obj, const char *key);
/* An integer-valued number within [min,max]: 1 ok, 0 absent, -1 bad. */
int json_int(const struct jv *obj, const char *key, long long min, long long max, long long *out);

/* A growable byte buffer. */
struct buf {
	char *p;
	size_t len, cap;
};
int buf_reserve(struct buf *b, size_t more);
int buf_put(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal (quotes included); s must be UTF-8. */
int buf_jstr(struct buf *b, const char *s, size_t n);
void buf_free(struct buf *b);

#endif
