/* envd's Connect layer: a procedure's path to its handler, the request's
 * head (Content-Type, Connect-Timeout-Ms, Keepalive-Ping-Interval, the
 * user), its body (a JSON message, or one envelope holding it), and the
 * answers: a unary message, an error (the HTTP status of its code and
 * {"code","message"}), a stream's envelopes and its end. */
#define _GNU_SOURCE
#include "envd.h"
#include "../../proto/connect.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A request message: the SDK's largest is SendInput's data. */
#define MSG_MAX (16u << 20)

enum kind { UNARY, SERVER_STREAM, CLIENT_STREAM };

static const struct method {
	const char *path;
	enum kind kind;
	int (*fn)(struct rpc *r);
} methods[] = {
	{ "/process.Process/Start", SERVER_STREAM, proc_start },
	{ "/process.Process/Connect", SERVER_STREAM, proc_connect },
	{ "/process.Process/List", UNARY, proc_list },
	{ "/process.Process/SendInput", UNARY, proc_send_input },
	{ "/process.Process/StreamInput", CLIENT_STREAM, proc_stream_input },
	{ "/process.Process/SendSignal", UNARY, proc_signal },
	{ "/process.Process/CloseStdin", UNARY, proc_close_stdin },
	{ "/process.Process/Update", UNARY, proc_update },
	{ "/filesystem.Filesystem/Stat", UNARY, fs_stat },
	{ "/filesystem.Filesystem/ListDir", UNARY, fs_list },
	{ "/filesystem.Filesystem/MakeDir", UNARY, fs_mkdir },
	{ "/filesystem.Filesystem/Move", UNARY, fs_move },
	{ "/filesystem.Filesystem/Remove", UNARY, fs_remove },
	{ "/filesystem.Filesystem/WatchDir", SERVER_STREAM, watch_dir },
	{ "/filesystem.Filesystem/CreateWatcher", UNARY, watch_create },
	{ "/filesystem.Filesystem/GetWatcherEvents", UNARY, watch_events },
	{ "/filesystem.Filesystem/RemoveWatcher", UNARY, watch_remove },
};

void envd_init(void)
{
	proc_init();
	watch_init();
}

/* ---- answers ---------------------------------------------------------- */

static void error_json(struct buf *b, int code, const char *msg)
{
	buf_printf(b, "{\"code\":\"%s\",\"message\":", connect_code_name(code));
	pj_put_str(b, msg, strlen(msg));
	buf_puts(b, "}");
}

int rpc_ok(struct rpc *r, const struct buf *json)
{
	if (!json->p) {
		rpc_fail(r, CC_RESOURCE_EXHAUSTED, "out of memory");
		return 500;
	}
	respond(r->c, 200, "application/json", json->p, json->len);
	return 200;
}

int rpc_ok_empty(struct rpc *r, int st)
{
	struct buf b = { 0 };

	if (st)
		return st;
	buf_puts(&b, "{}");
	st = rpc_ok(r, &b);
	buf_free(&b);
	return st;
}

void rpc_env(struct buf *out, uint8_t flags, const char *json, size_t n)
{
	uint8_t h[CONNECT_ENV_HEAD];
	connect_env_head(h, flags, (uint32_t)n);
	buf_put(out, h, sizeof h);
	buf_put(out, json, n);
}

void rpc_end(struct buf *out, int code, const char *msg)
{
	struct buf j = { 0 };
	if (code) {
		buf_puts(&j, "{\"error\":");
		error_json(&j, code, msg);
		buf_puts(&j, "}");
	} else {
		buf_puts(&j, "{}");
	}
	rpc_env(out, CONNECT_FLAG_END, j.p ? j.p : "{}", j.p ? j.len : 2);
	buf_free(&j);
}

void rpc_stream_head(struct buf *out)
{
	buf_puts(out, "HTTP/1.1 200 OK\r\nContent-Type: application/connect+json\r\n"
		      "Transfer-Encoding: chunked\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n");
}

int rpc_fail(struct rpc *r, int code, const char *fmt, ...)
{
	char msg[1024];
	struct buf b = { 0 };
	va_list ap;
	int status = r->stream ? 200 : connect_code_http(code);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (r->stream) {
		/* A stream's error is its last envelope, after a 200. */
		rpc_end(&b, code, msg);
		stream_begin(r->c, 200, "application/connect+json");
		stream_chunk(r->c, b.p, b.len);
		stream_end(r->c);
	} else {
		error_json(&b, code, msg);
		respond(r->c, status, "application/json", b.p ? b.p : "{}", b.p ? b.len : 2);
	}
	buf_free(&b);
	return status;
}

int rpc_bad(struct rpc *r)
{
	return rpc_fail(r, CC_INVALID_ARGUMENT, "%s", r->pj.err);
}

int rpc_stream_begin(struct rpc *r, const char *json)
{
	stream_begin(r->c, 200, "application/connect+json");
	return rpc_stream_send(r, json);
}

int rpc_stream_send(struct rpc *r, const char *json)
{
	struct buf b = { 0 };
	int rc;
	rpc_env(&b, 0, json, strlen(json));
	rc = b.p ? stream_chunk(r->c, b.p, b.len) : -1;
	buf_free(&b);
	return rc;
}

void rpc_stream_finish(struct rpc *r, int code, const char *msg)
{
	struct buf b = { 0 };
	rpc_end(&b, code, msg);
	if (b.p && stream_chunk(r->c, b.p, b.len) == 0)
		stream_end(r->c);
	else
		r->c->close_after = true;
	buf_free(&b);
}

bool envd_deny(struct conn *c, const char *path, int status)
{
	static const char msg[] = "unauthorized access, please provide a valid access token";
	char body[256];
	int n;
	if (!strcmp(path, "/files"))
		n = snprintf(body, sizeof body, "{\"code\":%d,\"message\":\"%s\"}\n", status, msg);
	else if (!strncmp(path, "/process.Process/", 17) || !strncmp(path, "/filesystem.Filesystem/", 23))
		n = snprintf(body, sizeof body, "{\"code\":\"%s\",\"message\":\"%s\"}\n",
			     status == 401 ? "unauthenticated" : "permission_denied", msg);
	else
		return false;
	respond(c, status, "application/json", body, (size_t)n);
	return true;
}

/* ---- the request ------------------------------------------------------ */

/* The user a call acts as: named by Authorization: Basic (as E2B's SDK
 * sends it beside X-Access-Token), else the default user. */
static int rpc_user(struct rpc *r)
{
	char v[512], who[256] = "", why[256];
	uint8_t dec[384];
	ssize_t n = http_header(r->hd, "authorization", v, sizeof v);
	if (n > 6 && !strncasecmp(v, "Basic ", 6)) {
		ssize_t k = connect_b64_decode(v + 6, (size_t)n - 6, dec, sizeof dec - 1);
		uint8_t *colon = k > 0 ? memchr(dec, ':', (size_t)k) : NULL;
		if (!colon || memchr(dec, 0, (size_t)k) || colon - dec >= (ssize_t)sizeof who)
			return rpc_fail(r, CC_UNAUTHENTICATED, "malformed Basic authorization");
		memcpy(who, dec, (size_t)(colon - dec));
		who[colon - dec] = 0;
	}
	if (user_resolve(who, &r->u, why, sizeof why) < 0)
		return rpc_fail(r, CC_UNAUTHENTICATED, "invalid username: '%s'", who[0] ? who : "(default)");
	return 0;
}

/* Content-Type, the timeout and the keepalive interval; 0, or the
 * status of the error answered. */
static int rpc_head(struct rpc *r, enum kind kind)
{
	char v[128], msg[256];
	enum connect_ctype ct;
	ssize_t n;
	int st;
	if (http_header(r->hd, "content-type", v, sizeof v) < 0)
		snprintf(v, sizeof v, "(none)");
	ct = connect_content_type(v);
	if (ct != (kind == UNARY ? CT_UNARY_JSON : CT_STREAM_JSON)) {
		/* as connect-go: 415 (the protobuf codec is not spoken here) */
		struct buf b = { 0 };
		snprintf(msg, sizeof msg, "Content-Type %s: this call takes application/%sjson", v,
			 kind == UNARY ? "" : "connect+");
		error_json(&b, CC_UNIMPLEMENTED, msg);
		r->c->close_after = true;
		respond(r->c, 415, "application/json", b.p ? b.p : "{}", b.p ? b.len : 2);
		buf_free(&b);
		return 415;
	}
	n = http_header(r->hd, "connect-timeout-ms", v, sizeof v);
	if (n >= 0) {
		if (n < 1 || n > 10 || strspn(v, "0123456789") != (size_t)n) {
			r->c->close_after = true;
			return rpc_fail(r, CC_INVALID_ARGUMENT, "protocol error: bad Connect-Timeout-Ms");
		}
		r->timeout_ms = strtoll(v, NULL, 10);
	}
	n = http_header(r->hd, "keepalive-ping-interval", v, sizeof v);
	if (n > 0 && n <= 6 && strspn(v, "0123456789") == (size_t)n && atoi(v) > 0)
		r->keepalive_s = atoi(v);
	st = rpc_user(r);
	if (st)
		r->c->close_after = true;
	return st;
}

/* The body, whole; 0, or the status of the error answered. */
static int read_all(struct rpc *r, size_t max)
{
	for (;;) {
		if (buf_reserve(&r->raw, 65536) < 0)
			return rpc_fail(r, CC_RESOURCE_EXHAUSTED, "out of memory");
		ssize_t n = body_read(r->b, r->raw.p + r->raw.len, 65536);
		if (n < 0) {
			r->c->close_after = true;
			return rpc_fail(r, CC_INVALID_ARGUMENT, "malformed request body");
		}
		if (n == 0)
			return 0;
		r->raw.len += (size_t)n;
		if (r->raw.len > max) {
			r->c->close_after = true;
			return rpc_fail(r, CC_RESOURCE_EXHAUSTED, "request message over %u bytes", MSG_MAX);
		}
	}
}

/* The request message: the body of a unary call, the one envelope of a
 * server stream's; 0, or the status of the error answered. */
static int rpc_read(struct rpc *r)
{
	const char *json;
	size_t n, end;
	char err[160];
	int st = read_all(r, MSG_MAX + CONNECT_ENV_HEAD);
	if (st)
		return st;
	json = r->raw.p;
	n = r->raw.len;
	if (r->stream) {
		struct connect_env e;
		ssize_t k = connect_env_parse((const uint8_t *)r->raw.p, r->raw.len, MSG_MAX, &e);
		if (k == CONNECT_ENV_TOO_BIG)
			return rpc_fail(r, CC_RESOURCE_EXHAUSTED, "request message over %u bytes", MSG_MAX);
		if (k < 0)
			return rpc_fail(r, CC_INVALID_ARGUMENT,
					"protocol error: envelope flags 0x%02x "
					"(compression was not negotiated)",
					(unsigned char)r->raw.p[0]);
		if (k == 0)
			return rpc_fail(r, CC_INVALID_ARGUMENT,
					r->raw.len ? "protocol error: incomplete envelope"
						   : "protocol error: missing request message");
		if ((size_t)k != r->raw.len)
			return rpc_fail(r, CC_INVALID_ARGUMENT, "protocol error: more than one request message");
		json = (const char *)e.msg;
		n = e.len;
	}
	if (!n) {
		json = "{}"; /* an empty message, all defaults */
		n = 2;
	}
	r->msg = json_parse(json, n, &end, &r->a, err, sizeof err);
	while (r->msg && end < n && strchr(" \t\r\n", json[end]))
		end++;
	if (!r->msg || end != n || r->msg->t != J_OBJ)
		return rpc_fail(r, CC_INVALID_ARGUMENT, "invalid JSON message: %s",
				!r->msg	   ? err
				: end != n ? "data after the value"
					   : "not an object");
	return 0;
}

int envd_rpc(struct conn *c, struct http_head *hd, struct body *b, const char *path)
{
	struct rpc *r = &(struct rpc){ .c = c, .hd = hd, .b = b, .keepalive_s = 90 };
	const struct method *m = NULL;
	int status;
	for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
		if (!strcmp(path, methods[i].path))
			m = &methods[i];
	if (!m) {
		/* Connect answers an unknown procedure as HTTP does: 404. */
		struct buf e = { 0 };
		char msg[300];
		snprintf(msg, sizeof msg, "no such procedure: %.200s", path);
		error_json(&e, CC_UNIMPLEMENTED, msg);
		respond(c, 404, "application/json", e.p ? e.p : "{}", e.p ? e.len : 2);
		buf_free(&e);
		return 404;
	}
	r->name = strrchr(m->path, '/') + 1;
	r->stream = m->kind != UNARY;
	status = rpc_head(r, m->kind);
	/* A client stream's envelopes are read as they come. */
	if (!status && m->kind != CLIENT_STREAM)
		status = rpc_read(r);
	r->hd = NULL; /* its strings are gone with the body read */
	if (!status)
		status = m->fn(r);
	json_free(&r->a);
	buf_free(&r->raw);
	return status;
}
