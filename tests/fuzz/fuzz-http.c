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
			while (off < size && !ch.done) {
				size_t k = size - off < step ? size - off : step, out;
				ssize_t used = chunked_decode(&ch, copy + off, k, &out);
				if (used < 0)
					break;
				if (out > (size_t)used)
					abort();
				off += (size_t)used;
				if (used == 0)
					break;
			}
		}
		free(copy);
	}
	http_pct_decode(buf);
	free(buf);
	return 0;
}
