/* libFuzzer target: the multipart/form-data parser and the header
 * parameter reader, on arbitrary bytes fed in arbitrary pieces (the
 * first byte sets the piece size) as the agent's upload loop feeds them,
 * checking the promises the agent relies on.  Build: make fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The agent's buffer: the parser must never need more than this. */
#define CAP (MP_HEADERS_MAX + 8)

static void walk(struct mp *m, const uint8_t *in, size_t size, size_t piece)
{
	char *buf = malloc(CAP);
	size_t len = 0, off = 0;
	if (!buf)
		return;
	for (;;) {
		size_t k = size - off < piece ? size - off : piece;
		if (k > CAP - len)
			k = CAP - len;
		memcpy(buf + len, in + off, k);
		len += k;
		off += k;
		bool eof = off == size;
		size_t used;
		const char *d = NULL;
		size_t dl = 0;
		enum mp_event ev = mp_next(m, buf, len, eof, &used, &d, &dl);
		if (used > len)
			abort();
		if (ev == MP_DATA && (!dl || d != buf || dl > used))
			abort();
		if (ev == MP_PART && (strlen(m->filename) >= MP_FILENAME_MAX || strlen(m->name) >= 64))
			abort();
		if (ev == MP_ERROR || ev == MP_END)
			break;
		memmove(buf, buf + used, len - used);
		len -= used;
		if (ev == MP_NEED && !used && len == CAP)
			abort(); /* stuck with a full buffer: a promise broken */
		if (ev == MP_NEED && !used && eof)
			break;
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mp m;
	char hv[512], out[256];
	if (size < 1)
		return 0;
	if (mp_init(&m, "XbX") == 0)
		walk(&m, data + 1, size - 1, (size_t)data[0] % 97 + 1);
	size_t hn = size - 1 < sizeof hv - 1 ? size - 1 : sizeof hv - 1;
	memcpy(hv, data + 1, hn);
	hv[hn] = 0;
	ssize_t r = mp_param(hv, "boundary", out, sizeof out);
	if (r >= 0 && (size_t)r != strlen(out))
		abort();
	if (r >= 0 && mp_init(&m, out) == 0)
		walk(&m, data + 1, size - 1, 7);
	mp_param(hv, "filename", out, 8);
	return 0;
}
