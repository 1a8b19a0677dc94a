/* libFuzzer target: the WebSocket frame header parser, unmasking and the
 * UTF-8 validator, on arbitrary bytes, walking a stream frame by frame as
 * the agent does.  Build: make fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	for (int server = 0; server < 2; server++) {
		size_t off = 0;
		while (off < size) {
			struct ws_frame f;
			int k = ws_parse_header(buf + off, size - off, server, 65536, &f);
			if (k <= 0)
				break;
			if (f.len > 65536 || (f.opcode >= 8 && f.len > 125))
				abort(); /* a limit the parser promised */
			if (size - off < f.hdrlen + f.len)
				break;
			if (f.masked)
				ws_unmask(buf + off + f.hdrlen, (size_t)f.len, f.mask, 0);
			ws_utf8_step(WS_UTF8_ACCEPT, buf + off + f.hdrlen, (size_t)f.len);
			off += f.hdrlen + (size_t)f.len;
		}
	}
	uint8_t out[32];
	if (size >= 24) {
		char key[25];
		memcpy(key, data, 24);
		key[24] = 0;
		char acc[29];
		ws_accept_key(key, acc);
	}
	base64_decode((const char *)data, size, out, sizeof out);
	free(buf);
	return 0;
}
