/* The Connect protocol (connectrpc.com/docs/protocol) with its JSON codec,
 * as E2B's envd speaks it: the envelopes of streaming calls, the error
 * codes and the HTTP statuses they travel with, the Content-Types, and
 * the base64 of proto3 JSON's bytes.  Pure parsers and encoders, no I/O;
 * fuzzed by tests/fuzz/fuzz-connect.c. */
#ifndef VMSAN_CONNECT_H
#define VMSAN_CONNECT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* An envelope: 1 flag byte, a 4-byte big-endian length, the message. */
#define CONNECT_ENV_HEAD 5
#define CONNECT_FLAG_COMPRESSED 0x01
#define CONNECT_FLAG_END 0x02

struct connect_env {
	uint8_t flags;
	uint32_t len;	    /* of the message */
	const uint8_t *msg; /* into the caller's buffer */
};

enum { CONNECT_ENV_TOO_BIG = -1, CONNECT_ENV_BAD_FLAGS = -2 };

/* The envelope at buf: its total size (head and message) when it is all
 * there, 0 when more bytes are needed, CONNECT_ENV_TOO_BIG when its
 * message is over max, CONNECT_ENV_BAD_FLAGS for flags a client may not
 * send (compression was not negotiated; end-of-stream is the server's). */
ssize_t connect_env_parse(const uint8_t *buf, size_t n, uint32_t max, struct connect_env *e);
void connect_env_head(uint8_t out[CONNECT_ENV_HEAD], uint8_t flags, uint32_t len);

/* The codes of the protocol, numbered as gRPC numbers them. */
enum connect_code {
	CC_CANCELED = 1,
	CC_UNKNOWN,
	CC_INVALID_ARGUMENT,
	CC_DEADLINE_EXCEEDED,
	CC_NOT_FOUND,
	CC_ALREADY_EXISTS,
	CC_PERMISSION_DENIED,
	CC_RESOURCE_EXHAUSTED,
	CC_FAILED_PRECONDITION,
	CC_ABORTED,
	CC_OUT_OF_RANGE,
	CC_UNIMPLEMENTED,
	CC_INTERNAL,
	CC_UNAVAILABLE,
	CC_DATA_LOSS,
	CC_UNAUTHENTICATED,
};
/* "not_found" and so on. */
const char *connect_code_name(int code);
/* The HTTP status a unary call's error travels with (404 for not_found,
 * 429 for resource_exhausted, ...). */
int connect_code_http(int code);

/* What a request's Content-Type asks for. */
enum connect_ctype { CT_OTHER, CT_UNARY_JSON, CT_STREAM_JSON, CT_PROTO };
enum connect_ctype connect_content_type(const char *ctype);

/* Base64 as proto3 JSON writes bytes, read as protojson reads it: the
 * standard or the URL-safe alphabet, padded or not.  Returns the length
 * decoded into out, or -1 (bad input, or more than outlen bytes). */
ssize_t connect_b64_decode(const char *in, size_t n, uint8_t *out, size_t outlen);

#endif
