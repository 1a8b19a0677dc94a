/* libFuzzer target: the agent's HTTP/1.1 head parser, chunked decoder and
 * query/percent decoding, on arbitrary bytes.  Build: make fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = 0;
	struct http_head hd;
	/* As a request and as a response. */
	for (int req = 0; req < 2; req++) {
		char *copy = malloc(size + 1);
		memcpy(copy, data, size);
		copy[size] = 0;
		ssize_t n = http_parse_head(copy, size, req, &hd);
		if (n > 0) {
			char v[256];
			http_header(&hd, "content-length", v, sizeof v);
			char q[128];
			char *qs = strchr(hd.target, '?');
			if (qs)
				http_query(qs + 1, "token", q, sizeof q);
			/* The body after the head, fed to the chunked decoder in
			 * uneven pieces. */
			struct chunked ch = { 0 };
			size_t off = (size_t)n, step = 1 + (size % 7);
			/* chunked_span over the same bytes decodes the same
			 * data, to the same end. */
			struct chunked sp = { 0 };
			const char *body = (const char *)data + n;
			size_t blen = size - (size_t)n, soff = 0, slen = 0;
			char *sdata = malloc(blen + 1);
			int sbad = 0;
			while (soff < blen && !sp.done) {
				size_t k = blen - soff < step ? blen - soff : step, skip, out;
				ssize_t used = chunked_span(&sp, body + soff, k, &skip, &out);
				if (used < 0) {
					sbad = 1;
					break;
				}
				if (skip + out != (size_t)used)
					abort();
				memcpy(sdata + slen, body + soff + skip, out);
				slen += out;
				soff += (size_t)used;
				if (used == 0)
					break;
			}
			size_t dstart = off, dlen = 0;
			int dbad = 0;
			while (off < size && !ch.done) {
				size_t k = size - off < step ? size - off : step, out;
				ssize_t used = chunked_decode(&ch, copy + off, k, &out);
				if (used < 0) {
					dbad = 1;
					break;
				}
				if (out > (size_t)used)
					abort();
				memmove(copy + dstart + dlen, copy + off, out);
				dlen += out;
				off += (size_t)used;
				if (used == 0)
					break;
			}
			if (sbad != dbad || sp.done != ch.done ||
			    (!dbad && (slen != dlen || memcmp(sdata, copy + dstart, dlen))))
				abort();
			free(sdata);
		}
		free(copy);
	}
	http_pct_decode(buf);
	free(buf);
	return 0;
}
