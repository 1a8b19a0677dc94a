/* The libmicrohttpd glue: a thread per connection (a slow or stalled
 * client holds only its own thread), bodies bounded, every answer in E2B's
 * shapes, one JSON log line per request on stderr. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "serve/serve.h"

static const struct serve_opts *opts;

enum MHD_Result http_json(struct req *q, unsigned status, json_t *doc)
{
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	size_t len = text ? strlen(text) : 0;
	struct MHD_Response *r;
	enum MHD_Result rc;

	json_decref(doc);
	r = MHD_create_response_from_buffer(len, text ? text : (char *)"",
					    text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	if (text)
		MHD_add_response_header(r, "Content-Type", "application/json");
	q->status = status;
	rc = MHD_queue_response(q->conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

enum MHD_Result http_error(struct req *q, unsigned status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return http_json(q, status, json_pack("{s:i, s:s}", "code", (int)status, "message", msg));
}

const char *req_header(struct req *q, const char *name)
{
	return MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, name);
}

const char *req_query(struct req *q, const char *name)
{
	return MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, name);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_len, void **ctx)
{
	struct req *q = *ctx;

	(void)cls;
	(void)version;
	if (!q)
		return MHD_NO;
	if (!q->started) {
		/* The head alone: decide who answers before any body is read. */
		q->started = true;
		q->conn = conn;
		q->url = url;
		q->method = method;
		if (proxy_wants(q, opts->domain))
			return proxy_handle(q, NULL, NULL);
		return MHD_YES;
	}
	if (q->proxy)
		return proxy_handle(q, upload, upload_len);
	if (*upload_len) {
		if (!q->too_big && q->len + *upload_len <= SERVE_BODY_MAX) {
			char *nb = realloc(q->body, q->len + *upload_len + 1);
			if (!nb)
				return MHD_NO;
			q->body = nb;
			memcpy(q->body + q->len, upload, *upload_len);
			q->len += *upload_len;
			q->body[q->len] = '\0';
		} else {
			q->too_big = true;
		}
		*upload_len = 0;
		return MHD_YES;
	}
	if (q->too_big)
		return http_error(q, 413, "the request body is over %d bytes", SERVE_BODY_MAX);
	return control_route(q);
}

/* Called first for each request, with the target as sent (the proxy
 * forwards it unchanged); what it returns is the request's context. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct req *q = calloc(1, sizeof *q);

	(void)cls;
	(void)conn;
	if (!q)
		return NULL;
	q->target = strdup(uri);
	if (!q->target) {
		free(q);
		return NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &q->t0);
	return q;
}

static void on_done(void *cls, struct MHD_Connection *conn, void **ctx, enum MHD_RequestTerminationCode why)
{
	struct req *q = *ctx;
	struct timespec t1;
	json_t *line;
	char *text;

	(void)cls;
	(void)conn;
	if (!q)
		return;
	proxy_done(q);
	if (!q->method) { /* a head MHD refused before it reached us */
		free(q->target);
		free(q);
		*ctx = NULL;
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - q->t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - q->t0.tv_nsec) / 1e6;
	line = json_pack("{s:s, s:s, s:i, s:f, s:b}", "method", q->method, "path", q->url, "status", (int)q->status,
			 "ms", ms, "completed", why == MHD_REQUEST_TERMINATED_COMPLETED_OK);
	if (line && q->sandbox[0])
		json_object_set_new(line, "sandbox", json_string(q->sandbox));
	text = line ? json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(4)) : NULL;
	if (text)
		fprintf(stderr, "%s\n", text);
	free(text);
	json_decref(line);
	free(q->body);
	free(q->target);
	free(q);
	*ctx = NULL;
}

struct MHD_Daemon *http_start(const struct serve_opts *o, struct verr *e)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o->port) };
	struct MHD_Daemon *d;

	opts = o;
	if (inet_pton(AF_INET, o->listen, &sa.sin_addr) != 1)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", "give an IPv4 address, e.g. 127.0.0.1",
				 "--listen %s: not an IPv4 address", o->listen),
		       NULL;
	d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
			     NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
			     MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
			     /* Idle longer than the SDK's 50 s stream keepalives. */
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)75, MHD_OPTION_CONNECTION_LIMIT, o->max_conns,
			     MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_END);
	if (!d)
		return verr_sys(e, "ERR_LISTEN", "is another server on that port? try --port", "cannot listen on %s:%u",
				o->listen, o->port),
		       NULL;
	return d;
}
