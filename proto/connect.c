/* The Connect protocol's framing, codes and Content-Types (connect.h). */
#include "connect.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

ssize_t connect_env_parse(const uint8_t *buf, size_t n, uint32_t max, struct connect_env *e)
{
	if (n < 1)
		return 0;
	/* A client's messages are plain: no compression was negotiated, and
	 * the end-of-stream flag is only the server's to send. */
	if (buf[0] != 0)
		return CONNECT_ENV_BAD_FLAGS;
	if (n < CONNECT_ENV_HEAD)
		return 0;
	e->flags = buf[0];
	e->len = (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 | buf[4];
	if (e->len > max)
		return CONNECT_ENV_TOO_BIG;
	if (n - CONNECT_ENV_HEAD < e->len)
		return 0;
	e->msg = buf + CONNECT_ENV_HEAD;
	return (ssize_t)(CONNECT_ENV_HEAD + (size_t)e->len);
}

void connect_env_head(uint8_t out[CONNECT_ENV_HEAD], uint8_t flags, uint32_t len)
{
	out[0] = flags;
	out[1] = (uint8_t)(len >> 24);
	out[2] = (uint8_t)(len >> 16);
	out[3] = (uint8_t)(len >> 8);
	out[4] = (uint8_t)len;
}

static const struct {
	const char *name;
	int http;
} codes[] = {
	[CC_CANCELED] = { "canceled", 499 },
	[CC_UNKNOWN] = { "unknown", 500 },
	[CC_INVALID_ARGUMENT] = { "invalid_argument", 400 },
	[CC_DEADLINE_EXCEEDED] = { "deadline_exceeded", 504 },
	[CC_NOT_FOUND] = { "not_found", 404 },
	[CC_ALREADY_EXISTS] = { "already_exists", 409 },
	[CC_PERMISSION_DENIED] = { "permission_denied", 403 },
	[CC_RESOURCE_EXHAUSTED] = { "resource_exhausted", 429 },
	[CC_FAILED_PRECONDITION] = { "failed_precondition", 400 },
	[CC_ABORTED] = { "aborted", 409 },
	[CC_OUT_OF_RANGE] = { "out_of_range", 400 },
	[CC_UNIMPLEMENTED] = { "unimplemented", 501 },
	[CC_INTERNAL] = { "internal", 500 },
	[CC_UNAVAILABLE] = { "unavailable", 503 },
	[CC_DATA_LOSS] = { "data_loss", 500 },
	[CC_UNAUTHENTICATED] = { "unauthenticated", 401 },
};

const char *connect_code_name(int code)
{
	if (code < CC_CANCELED || code > CC_UNAUTHENTICATED)
		code = CC_UNKNOWN;
	return codes[code].name;
}

int connect_code_http(int code)
{
	if (code < CC_CANCELED || code > CC_UNAUTHENTICATED)
		code = CC_UNKNOWN;
	return codes[code].http;
}

/* application/json, application/connect+json (either with
 * "; charset=utf-8"), application/proto, application/connect+proto. */
enum connect_ctype connect_content_type(const char *ct)
{
	static const char app[] = "application/";
	bool stream;
	if (strncasecmp(ct, app, sizeof app - 1))
		return CT_OTHER;
	ct += sizeof app - 1;
	stream = !strncasecmp(ct, "connect+", 8);
	if (stream)
		ct += 8;
	if (!strcasecmp(ct, "proto"))
		return CT_PROTO;
	if (strncasecmp(ct, "json", 4))
		return CT_OTHER;
	ct += 4;
	if (*ct == ';') {
		ct++;
		while (*ct == ' ')
			ct++;
		if (strcasecmp(ct, "charset=utf-8") && strcasecmp(ct, "charset=utf8"))
			return CT_OTHER;
	} else if (*ct) {
		return CT_OTHER;
	}
	return stream ? CT_STREAM_JSON : CT_UNARY_JSON;
}

static int b64_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+' || ch == '-')
		return 62;
	if (ch == '/' || ch == '_')
		return 63;
	return -1;
}

ssize_t connect_b64_decode(const char *in, size_t n, uint8_t *out, size_t outlen)
{
	uint32_t acc = 0;
	size_t o = 0, digits = 0, pad = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value(in[i]);
		if (in[i] == '=') {
			pad++;
			continue;
		}
		if (v < 0 || pad)
			return -1; /* padding only at the end */
		acc = acc << 6 | (uint32_t)v;
		if (++digits % 4 == 0) {
			if (o + 3 > outlen)
				return -1;
			out[o++] = (uint8_t)(acc >> 16);
			out[o++] = (uint8_t)(acc >> 8);
			out[o++] = (uint8_t)acc;
			acc = 0;
		}
	}
	size_t rest = digits % 4;
	if (rest == 1 || (pad && (rest + pad) % 4))
		return -1;
	if (rest) {
		acc <<= 6 * (4 - rest);
		if (o + rest - 1 > outlen)
			return -1;
		out[o++] = (uint8_t)(acc >> 16);
		if (rest == 3)
			out[o++] = (uint8_t)(acc >> 8);
	}
	return (ssize_t)o;
}
