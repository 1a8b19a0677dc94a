/* WebSocket (RFC 6455) framing: a pure frame parser and encoder, the
 * opening-handshake key, and the SHA-1 and base64 it needs.  No I/O.
 * Fuzzed by tests/fuzz/fuzz-ws.c. */
#ifndef VMSAN_WS_H
#define VMSAN_WS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>

enum { WS_CONT = 0, WS_TEXT = 1, WS_BINARY = 2, WS_CLOSE = 8, WS_PING = 9, WS_PONG = 10 };

/* Close codes we send. */
enum {
	WS_CLOSE_NORMAL = 1000,
	WS_CLOSE_GOING_AWAY = 1001,
	WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_POLICY = 1008,
	WS_CLOSE_TOO_BIG = 1009,
	WS_CLOSE_INTERNAL = 1011
};

struct ws_frame {
	bool fin;
	int opcode;
	bool masked;
	uint8_t mask[4];
	uint64_t len;  /* payload length */
	size_t hdrlen; /* bytes of header before the payload */
};

/* Parse a frame header at buf.  Returns 1 when complete (fills f), 0 when
 * more bytes are needed, or -close_code when the header is invalid:
 * reserved bits, unknown opcodes, fragmented or oversized control frames,
 * non-minimal lengths, the wrong masking (require_mask: server side) or a
 * payload over max_payload (-WS_CLOSE_TOO_BIG). */
int ws_parse_header(const uint8_t *buf, size_t len, bool require_mask, uint64_t max_payload, struct ws_frame *f);

/* Unmask payload in place; offset is the payload position of p[0]. */
void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/* Write a frame header for a payload of len bytes into out (14 bytes
 * suffice); with mask non-NULL the header carries it (client side) and
 * the caller masks the payload.  Returns the header length. */
size_t ws_encode_header(uint8_t *out, int opcode, bool fin, uint64_t len, const uint8_t *mask);

/* Sec-WebSocket-Accept for a client key: base64(sha1(key + GUID)).
 * out needs 29 bytes.  Returns -1 when the key is not 16 base64 bytes. */
int ws_accept_key(const char *client_key, char out[29]);

/* Incremental UTF-8 validation for text messages: state 0 = accept. */
uint32_t ws_utf8_step(uint32_t state, const uint8_t *p, size_t n);
#define WS_UTF8_ACCEPT 0u
#define WS_UTF8_REJECT 0xffffffffu

void sha1(const void *data, size_t len, uint8_t out[20]);
/* Standard base64 with padding; out needs 4*((n+2)/3)+1 bytes. */
size_t base64_encode(const uint8_t *in, size_t n, char *out);
/* Returns decoded length or -1. */
ssize_t base64_decode(const char *in, size_t n, uint8_t *out, size_t outlen);

#endif
