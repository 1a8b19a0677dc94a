/* multipart/form-data (RFC 7578, RFC 2046 section 5.1) as E2B's SDK
 * uploads files with it, and the header parameters (RFC 2045) that name a
 * boundary or a part.  A streaming parser over a buffer its caller keeps
 * and refills: nothing is copied, and no part needs to fit in memory.
 * No I/O; fuzzed by tests/fuzz/fuzz-multipart.c. */
#ifndef VMSAN_MULTIPART_H
#define VMSAN_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define MP_BOUNDARY_MAX 70
#define MP_HEADERS_MAX 8192 /* one part's header block */
#define MP_FILENAME_MAX 4096

struct mp {
	char delim[4 + MP_BOUNDARY_MAX + 1]; /* CRLF "--" boundary */
	size_t dlen;
	int state;
	/* the current part, from its Content-Disposition */
	char name[64];
	char filename[MP_FILENAME_MAX];
	bool has_filename;
};

enum mp_event {
	MP_ERROR = -1, /* malformed, or the body ended inside it */
	MP_NEED = 0,   /* more bytes, please (keep the ones not used) */
	MP_PART,       /* a part begins: name, filename */
	MP_DATA,       /* bytes of the current part */
	MP_END,	       /* the closing boundary */
};

/* boundary: the Content-Type's parameter; -1 when it is not 1-70 of the
 * characters RFC 2046 allows. */
int mp_init(struct mp *m, const char *boundary);

/* The next event from the len bytes at buf (what is left of the body
 * so far; eof when no more will come).  *used is how many of them were
 * consumed; MP_DATA points *data (its *dlen bytes) into buf. */
enum mp_event mp_next(struct mp *m, const char *buf, size_t len, bool eof, size_t *used, const char **data,
		      size_t *dlen);

/* Parameter key of a header value such as 'form-data; name="file"' or
 * 'multipart/form-data; boundary=x': a token or a quoted string (with
 * backslash escapes), case-insensitive key.  Returns its length, copied
 * NUL-terminated to out; -1 when absent, -2 when malformed or too long. */
ssize_t mp_param(const char *value, const char *key, char *out, size_t outlen);

#endif
