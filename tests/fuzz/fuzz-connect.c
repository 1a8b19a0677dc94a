/* libFuzzer target: the Connect envelope reader walking a request body
 * envelope by envelope, the Content-Type reader and proto3 JSON's base64,
 * on arbitrary bytes.  Build: make fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/connect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	char ct[128];
	uint8_t out[64];
	while (off < size) {
		struct connect_env e;
		ssize_t k = connect_env_parse(data + off, size - off, 1024, &e);
		if (k <= 0)
			break;
		if (e.len > 1024 || (size_t)k != CONNECT_ENV_HEAD + e.len || e.msg != data + off + CONNECT_ENV_HEAD)
			abort(); /* a limit or an offset the reader promised */
		off += (size_t)k;
	}
	size_t n = size < sizeof ct - 1 ? size : sizeof ct - 1;
	memcpy(ct, data, n);
	ct[n] = 0;
	connect_content_type(ct);
	ssize_t r = connect_b64_decode((const char *)data, size, out, sizeof out);
	if (r > (ssize_t)sizeof out)
		abort();
	return 0;
}
