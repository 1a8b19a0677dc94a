/* A sandbox's envd and ports, proxied.  A request names its sandbox and
 * port in E2b-Sandbox-Id and E2b-Sandbox-Port (as the SDK sends them
 * through E2B_SANDBOX_URL) or in its Host, PORT-ID.DOMAIN (the SDK's
 * getHost(port)).  Port 49983 is envd: the guest's agent speaks it itself
 * (vmsan-agent(8)), with the sandbox's access token.  Any other port is
 * reached through the agent's tunnel (GET /tunnel/PORT, the agent's token),
 * so the VM opens no port to the host; E2B's traffic token guards it when
 * the sandbox was made with one.
 *
 * The request is passed on as it came (target, body, the headers envd
 * reads); the answer comes back as the guest sent it, through the shared
 * parsers of proto/http.c: its head bounded, its body de-chunked with a
 * limit on idle time.  The guest is not trusted: nothing it answers is
 * more than bytes for the client. */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve/serve.h"
#include "../proto/http.h"

#define ENVD_PORT 49983u
#define UPSTREAM_IDLE_MS (120 * 1000) /* over the SDK's 50 s keepalives */
#define BUF_SIZE 65536

struct proxy {
	int fd;		 /* to the guest's agent */
	bool tunnel;	 /* a port other than envd's, through /tunnel */
	bool chunked_up; /* the body goes up chunked (its length unknown) */
	bool has_body;
	char head[HTTP_HEAD_MAX + 1];
	size_t headlen;
	struct http_head hd;
	struct chunked ch;
	uint64_t left; /* BODY_LENGTH: bytes still to come */
	char buf[BUF_SIZE];
	size_t off, len; /* body bytes read with the head, not yet given */
};

static const char *const up_headers[] = { "Content-Type",
					  "Content-Encoding",
					  "Accept-Encoding",
					  "Connect-Protocol-Version",
					  "Connect-Timeout-Ms",
					  "Connect-Content-Encoding",
					  "Connect-Accept-Encoding",
					  "Keepalive-Ping-Interval",
					  "X-Access-Token",
					  "Authorization",
					  NULL };
static const char *const down_headers[] = { "Content-Type", "Content-Encoding", "Connect-Content-Encoding",
					    "Connect-Accept-Encoding", NULL };
/* Not passed on through a tunnel: hop-by-hop (RFC 9110 7.6.1), the framing
 * (redone here), and what only the proxy reads. */
static const char *const hop_headers[] = { "Connection",
					   "Keep-Alive",
					   "Proxy-Connection",
					   "Proxy-Authorization",
					   "TE",
					   "Trailer",
					   "Transfer-Encoding",
					   "Upgrade",
					   "Content-Length",
					   "Host",
					   "E2b-Sandbox-Id",
					   "E2b-Sandbox-Port",
					   "E2b-Traffic-Access-Token",
					   NULL };

static bool listed(const char *const *list, const char *name)
{
	for (size_t i = 0; list[i]; i++)
		if (!strcasecmp(list[i], name))
			return true;
	return false;
}

/* The sandbox and port a request names, from its headers or its Host. */
static bool target_of(struct req *q, char id[64], unsigned *port)
{
	const char *hid = req_header(q, "E2b-Sandbox-Id"), *hport = req_header(q, "E2b-Sandbox-Port");
	const char *host = req_header(q, "Host");
	char *end;

	if (hid) {
		snprintf(id, 64, "%.63s", hid);
		*port = hport ? (unsigned)strtoul(hport, &end, 10) : 49983;
		return !hport || (*hport && !*end);
	}
	/* PORT-vm-XXXXXXXX.DOMAIN */
	if (!host)
		return false;
	unsigned long n = strtoul(host, &end, 10);
	const char *dot = *end == '-' ? strchr(end + 1, '.') : NULL;
	if (end == host || !dot || n < 1 || n > 65535 || (size_t)(dot - end - 1) >= 64)
		return false;
	snprintf(id, 64, "%.*s", (int)(dot - end - 1), end + 1);
	*port = (unsigned)n;
	return !strncmp(id, "vm-", 3);
}

bool proxy_wants(struct req *q, const char *domain)
{
	char id[64];
	unsigned port;

	(void)domain;
	return req_header(q, "E2b-Sandbox-Id") != NULL || target_of(q, id, &port);
}

static bool is_rpc(const struct req *q)
{
	return !strncmp(q->url, "/process.", 9) || !strncmp(q->url, "/filesystem.", 12);
}

/* An error in the shape the client expects at that path: Connect's for the
 * RPCs, envd's REST one for /files and /health. */
static enum MHD_Result proxy_error(struct req *q, unsigned status, const char *code, const char *msg)
{
	if (is_rpc(q))
		return http_json(q, status, json_pack("{s:s, s:s}", "code", code, "message", msg));
	return http_error(q, status, "%s", msg);
}

/* envd's surface and nothing else of the agent's. */
static bool envd_path(const char *url)
{
	return !strcmp(url, "/health") || !strcmp(url, "/files") || !strncmp(url, "/process.Process/", 17) ||
	       !strncmp(url, "/filesystem.Filesystem/", 23);
}

static bool token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = (unsigned char)(la != lb);

	for (size_t i = 0; i < lb; i++)
		d |= (unsigned char)(a[i < la ? i : 0] ^ b[i]);
	return d == 0 && la > 0;
}

static int dial(const struct agent_addr *a)
{
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST }, *ai;
	int fd;

	if (getaddrinfo(a->host, a->port, &hints, &ai) != 0)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

struct head_out {
	char *buf;
	size_t n, cap;
};

static enum MHD_Result add_any(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
	struct head_out *h = cls;

	(void)kind;
	if (!listed(hop_headers, k) && h->n < h->cap)
		h->n += (size_t)snprintf(h->buf + h->n, h->cap - h->n, "%s: %s\r\n", k, v ? v : "");
	return MHD_YES;
}

/* envd's own headers, and the file metadata it keeps (X-Metadata-*). */
static enum MHD_Result add_envd(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
	struct head_out *h = cls;

	(void)kind;
	if ((listed(up_headers, k) || !strncasecmp(k, "X-Metadata-", 11)) && h->n < h->cap)
		h->n += (size_t)snprintf(h->buf + h->n, h->cap - h->n, "%s: %s\r\n", k, v ? v : "");
	return MHD_YES;
}

/* The request's head as the guest gets it: envd's headers only, or, to a
 * sandbox's own server, all but the hop-by-hop ones. */
static int send_head(struct req *q, struct proxy *p, const struct agent_addr *a)
{
	char head[HTTP_HEAD_MAX];
	struct head_out h = { head, 0, sizeof head };
	const char *cl = req_header(q, "Content-Length"), *te = req_header(q, "Transfer-Encoding");
	const char *host = req_header(q, "Host");

	h.n = (size_t)snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", q->method,
			       q->target, p->tunnel && host ? host : a->host);
	MHD_get_connection_values(q->conn, MHD_HEADER_KIND, p->tunnel ? add_any : add_envd, &h);
	p->has_body = (cl && strcmp(cl, "0")) || te;
	p->chunked_up = p->has_body && !cl;
	if (h.n < sizeof head && p->has_body)
		h.n += (size_t)snprintf(head + h.n, sizeof head - h.n,
					p->chunked_up ? "Transfer-Encoding: chunked\r\n" : "Content-Length: %s\r\n",
					cl);
	if (h.n < sizeof head)
		h.n += (size_t)snprintf(head + h.n, sizeof head - h.n, "\r\n");
	if (h.n >= sizeof head)
		return -1;
	return http_send_all(p->fd, head, h.n, 0);
}

static int send_body(struct proxy *p, const char *data, size_t len)
{
	char size[24];

	if (!p->chunked_up)
		return http_send_all(p->fd, data, len, 0);
	snprintf(size, sizeof size, "%zx\r\n", len);
	if (http_send_all(p->fd, size, strlen(size), MSG_MORE) || http_send_all(p->fd, data, len, MSG_MORE) ||
	    http_send_all(p->fd, "\r\n", 2, 0))
		return -1;
	return 0;
}

static ssize_t read_idle(int fd, char *buf, size_t n)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int r = poll(&pfd, 1, UPSTREAM_IDLE_MS);

	if (r <= 0)
		return -1;
	ssize_t got;
	do
		got = recv(fd, buf, n, 0);
	while (got < 0 && errno == EINTR);
	return got;
}

/* The answer's head (bytes already in p->head first); body bytes that came
 * with it are kept in p->buf. */
static int read_head(struct proxy *p)
{
	char copy[HTTP_HEAD_MAX + 1];

	for (;;) {
		if (p->headlen) {
			memcpy(copy, p->head, p->headlen);
			ssize_t h = http_parse_head(p->head, p->headlen, false, &p->hd);
			if (h < 0)
				return -1;
			if (h > 0) {
				p->len = p->headlen - (size_t)h;
				p->off = 0;
				memcpy(p->buf, copy + h, p->len);
				p->left = p->hd.content_length;
				p->ch = (struct chunked){ 0 };
				return 0;
			}
			memcpy(p->head, copy, p->headlen); /* as it came, for the next try */
			if (p->headlen == HTTP_HEAD_MAX)
				return -1;
		}
		ssize_t got = read_idle(p->fd, p->head + p->headlen, HTTP_HEAD_MAX - p->headlen);
		if (got <= 0)
			return -1;
		p->headlen += (size_t)got;
	}
}

/* Through the agent to a port of the guest: GET /tunnel/PORT, 101, then
 * the connection is the guest server's.  What came after the 101 is the
 * start of that server's answer. */
static int open_tunnel(struct proxy *p, const struct agent_addr *a, unsigned port)
{
	char req[512];
	int n = snprintf(req, sizeof req,
			 "GET /tunnel/%u HTTP/1.1\r\nHost: %s:%s\r\nAuthorization: Bearer %s\r\n"
			 "Connection: Upgrade\r\nUpgrade: vmsan-tcp\r\n\r\n",
			 port, a->host, a->port, a->token);

	if (n < 0 || (size_t)n >= sizeof req || http_send_all(p->fd, req, (size_t)n, 0) != 0 || read_head(p) != 0)
		return -1;
	if (p->hd.status != 101)
		return p->hd.status == 502 ? -502 : -1;
	memmove(p->head, p->buf, p->len);
	p->headlen = p->len;
	p->len = 0;
	return 0;
}

/* libmicrohttpd asks for the next bytes of the answer. */
static ssize_t body_reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct proxy *p = cls;

	(void)pos;
	for (;;) {
		if (p->len) {
			size_t take = p->len < max ? p->len : max;
			if (p->hd.body == BODY_CHUNKED) {
				size_t dec = 0;
				ssize_t used = chunked_decode(&p->ch, p->buf + p->off, take, &dec);
				if (used < 0)
					return MHD_CONTENT_READER_END_WITH_ERROR;
				memcpy(out, p->buf + p->off, dec);
				p->off += (size_t)used;
				p->len -= (size_t)used;
				if (p->ch.done)
					p->len = 0;
				if (dec)
					return (ssize_t)dec;
				if (p->ch.done)
					return MHD_CONTENT_READER_END_OF_STREAM;
				continue;
			}
			if (p->hd.body == BODY_LENGTH && take > p->left)
				take = (size_t)p->left;
			memcpy(out, p->buf + p->off, take);
			p->off += take;
			p->len -= take;
			p->left -= take;
			return (ssize_t)take;
		}
		if ((p->hd.body == BODY_CHUNKED && p->ch.done) || (p->hd.body == BODY_LENGTH && p->left == 0) ||
		    p->hd.body == BODY_NONE)
			return MHD_CONTENT_READER_END_OF_STREAM;
		ssize_t got = read_idle(p->fd, p->buf, sizeof p->buf);
		if (got == 0 && p->hd.body == BODY_UNTIL_CLOSE)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (got <= 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		p->off = 0;
		p->len = (size_t)got;
	}
}

static enum MHD_Result answer(struct req *q, struct proxy *p)
{
	struct MHD_Response *r;
	enum MHD_Result rc;
	char v[512];

	if (read_head(p) != 0 || p->hd.status < 200 || p->hd.status > 599)
		return proxy_error(q, 502, "unavailable",
				   p->tunnel ? "the sandbox's server sent no valid answer"
					     : "the sandbox's agent sent no valid answer");
	r = MHD_create_response_from_callback(p->hd.body == BODY_LENGTH ? p->hd.content_length : MHD_SIZE_UNKNOWN,
					      BUF_SIZE, body_reader, p, NULL);
	if (!r)
		return MHD_NO;
	/* The parser's names and values are spans of the head, not strings. */
	for (int i = 0; p->tunnel && i < p->hd.nheaders; i++) {
		char name[128];
		if (p->hd.h[i].nlen >= sizeof name || p->hd.h[i].vlen >= sizeof v)
			continue;
		snprintf(name, sizeof name, "%.*s", (int)p->hd.h[i].nlen, p->hd.h[i].name);
		snprintf(v, sizeof v, "%.*s", (int)p->hd.h[i].vlen, p->hd.h[i].value);
		if (!listed(hop_headers, name) && !strpbrk(v, "\r\n"))
			MHD_add_response_header(r, name, v);
	}
	for (size_t i = 0; !p->tunnel && down_headers[i]; i++)
		if (http_header(&p->hd, down_headers[i], v, sizeof v) >= 0 && !strpbrk(v, "\r\n"))
			MHD_add_response_header(r, down_headers[i], v);
	q->status = (unsigned)p->hd.status;
	rc = MHD_queue_response(q->conn, (unsigned)p->hd.status, r);
	MHD_destroy_response(r);
	return rc;
}

/* First call: check and connect, then pass the body on as it comes, then
 * answer with what the guest sends. */
enum MHD_Result proxy_handle(struct req *q, const char *upload, size_t *upload_len)
{
	struct proxy *p = q->proxy;

	if (!p) {
		const char *tok = req_header(q, "X-Access-Token");
		struct agent_addr a;
		struct verr e = { 0 };
		struct box b;
		char id[64], why[128];
		unsigned port = 0;
		int t;

		q->proxy = p = calloc(1, sizeof *p);
		if (!p)
			return MHD_NO;
		p->fd = -1;
		if (!target_of(q, id, &port) || port < 1 || port > 65535)
			return proxy_error(q, 400, "invalid_argument", "name a sandbox and a port 1-65535");
		snprintf(q->sandbox, sizeof q->sandbox, "%s", id);
		if (valid_vm_id(id, why, sizeof why) != 0 || !box_get(id, NULL, &b))
			return proxy_error(q, 404, "not_found", "no such sandbox");
		p->tunnel = port != ENVD_PORT;
		bool traffic_ok = !b.traffic_token[0] ||
				  token_equal(req_header(q, "E2b-Traffic-Access-Token") ?: "", b.traffic_token);
		box_release(&b);
		if (!p->tunnel && !envd_path(q->url))
			return proxy_error(q, 404, "not_found", "not an envd path");
		if (run_agent_addr(id, &a, &e) != 0)
			return proxy_error(q, 502, "unavailable", "the sandbox is not running");
		/* A signed /files URL (the SDK's downloadUrl, uploadUrl) carries no
		 * token: the agent checks its signature. */
		bool signed_url = !strcmp(q->url, "/files") && req_query(q, "signature");
		if (!p->tunnel && !signed_url && (!tok || !token_equal(tok, a.token)))
			return proxy_error(q, 401, "unauthenticated", "a valid X-Access-Token is required");
		if (p->tunnel && !traffic_ok)
			return proxy_error(q, 403, "permission_denied", "a valid e2b-traffic-access-token is required");
		p->fd = dial(&a);
		if (p->fd < 0)
			return proxy_error(q, 502, "unavailable", "cannot reach the sandbox's agent");
		if (p->tunnel && (t = open_tunnel(p, &a, port)) != 0)
			return proxy_error(q, 502, "unavailable",
					   t == -502 ? "nothing answers on that port in the sandbox"
						     : "the sandbox's agent refused the tunnel");
		if (send_head(q, p, &a) != 0)
			return proxy_error(q, 502, "unavailable", "cannot reach the sandbox's agent");
		return MHD_YES;
	}
	if (q->status) /* answered already: drop the body */
		return (*upload_len = 0), MHD_YES;
	if (*upload_len) {
		if (send_body(p, upload, *upload_len) != 0)
			return proxy_error(q, 502, "unavailable", "the sandbox's agent went away");
		*upload_len = 0;
		return MHD_YES;
	}
	if (p->chunked_up && http_send_all(p->fd, "0\r\n\r\n", 5, 0) != 0)
		return proxy_error(q, 502, "unavailable", "the sandbox's agent went away");
	return answer(q, p);
}

void proxy_done(struct req *q)
{
	struct proxy *p = q->proxy;

	if (!p)
		return;
	if (p->fd >= 0)
		close(p->fd);
	free(p);
	q->proxy = NULL;
}
