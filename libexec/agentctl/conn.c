/* The HTTP client: one connection to the agent, one exchange on it.  The
 * answer's head (and a small body) must arrive within head_timeout_s();
 * every byte of it is bounded (the limits are in vmsan-agentctl.c). */
#define _GNU_SOURCE
#include "agentctl/agentctl.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int head_timeout_s(void)
{
	const char *v = getenv("VMSAN_AGENT_TIMEOUT");
	char *end;
	long s = v && *v ? strtol(v, &end, 10) : 0;
	return v && *v && !*end && s > 0 && s <= 86400 ? (int)s : HEAD_TIMEOUT_S;
}

/* The answer's head (and a small body) must be in within the timeout:
 * an agent that drips a byte a second does not hold us forever. */
static void hc_arm(struct hc *h)
{
	h->deadline = now_ms() + head_timeout_s() * 1000LL;
}

/* Why the exchange failed, kept on the connection: each caller puts it in
 * its own words ("exec: ..."), the last failure the one told. */
static void hc_error(struct hc *h, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void hc_error(struct hc *h, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(h->why, sizeof h->why, fmt, ap);
	va_end(ap);
	h->ecode = code;
}

static int hc_connect(struct hc *h, const struct target *t, struct verr *e)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai, *p;
	int r, err = 0, one = 1;

	memset(h, 0, offsetof(struct hc, buf));
	h->pos = h->len = 0;
	h->deadline = 0;
	h->abort = NULL;
	h->ecode = NULL;
	h->why[0] = 0;
	h->ctype[0] = 0;
	h->fd = -1;
	r = getaddrinfo(t->host, t->port, &hints, &ai);
	if (r)
		return verr_fail(e, 1, "ERR_AGENT_UNREACHABLE", NULL, "cannot resolve %s: %s", t->host,
				 gai_strerror(r));
	for (p = ai; p && h->fd < 0; p = p->ai_next) {
		h->fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
		/* A guest that does not answer (paused, hung, hostile) costs
		 * CONNECT_TIMEOUT_S, not the kernel's two minutes of SYNs:
		 * connect(2) honours SO_SNDTIMEO, reset once connected. */
		struct timeval tv = { .tv_sec = CONNECT_TIMEOUT_S }, none = { 0 };
		if (h->fd >= 0)
			setsockopt(h->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		if (h->fd >= 0 && connect(h->fd, p->ai_addr, p->ai_addrlen) < 0) {
			err = errno == EINPROGRESS ? ETIMEDOUT : errno;
			close(h->fd);
			h->fd = -1;
		} else if (h->fd >= 0) {
			setsockopt(h->fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
		}
	}
	freeaddrinfo(ai);
	if (h->fd < 0)
		return verr_fail(e, 1, "ERR_AGENT_UNREACHABLE", "check that the VM is running ('vmsan list')",
				 "cannot connect to the agent at %s:%s: %s", t->host, t->port, strerror(err));
	setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return 0;
}

struct hc *hc_open(const struct target *t, struct verr *e)
{
	struct hc *h = malloc(sizeof *h);

	if (!h)
		return verr_fail(e, VMSAN_EXIT_SYS, "ERR_NOMEM", NULL, "out of memory"), NULL;
	if (hc_connect(h, t, e) < 0) {
		free(h);
		return NULL;
	}
	h->t = t;
	h->job = "request";
	return h;
}

void hc_close(struct hc *h)
{
	if (!h)
		return;
	if (h->fd >= 0)
		close(h->fd);
	free(h);
}

bool hc_vmm_gone(struct hc *h)
{
	if (!target_vmm_gone(h->t))
		return false;
	hc_error(h, "ERR_VM_CRASHED", "the VM's VMM (process %lld) died during the %s", h->t->vmm_pid, h->job);
	return true;
}

bool hc_crashed(const struct hc *h)
{
	return h->ecode && !strcmp(h->ecode, "ERR_VM_CRASHED");
}

int hc_fail(struct hc *h, const char *what, struct verr *e)
{
	char fix[160];

	if (hc_crashed(h)) {
		snprintf(fix, sizeof fix, "'vmsan logs %s' shows its console; 'vmsan gc' stops what is left of it",
			 h->t->vm[0] ? h->t->vm : "ID");
		return verr_fail(e, 1, h->ecode, fix, "%s: %s", what, h->why);
	}
	return verr_fail(e, 1, h->ecode ? h->ecode : "ERR_AGENT_PROTOCOL", NULL, "%s: %s", what,
			 h->why[0] ? h->why : "the connection to the agent failed");
}

/* Until the socket is ready for events, a tick at a time: the VMM looked
 * at each second, the deadline (when there is one) kept, a signal that
 * stops a download heard.  0, or -1 with h->why set. */
static int hc_wait(struct hc *h, short events)
{
	for (;;) {
		struct pollfd pf = { .fd = h->fd, .events = events };
		int tick = 1000, p;

		if (h->abort && *h->abort) {
			hc_error(h, "ERR_INTERRUPTED", "interrupted");
			return -1;
		}
		if (h->deadline) {
			int64_t left = h->deadline - now_ms();
			if (left <= 0) {
				hc_error(h, "ERR_AGENT_TIMEOUT", "no complete answer from the agent within %d s",
					 head_timeout_s());
				return -1;
			}
			if (left < tick)
				tick = (int)left;
		}
		p = poll(&pf, 1, tick);
		if (p > 0)
			return 0;
		if (p < 0 && errno != EINTR) {
			hc_error(h, "ERR_AGENT_PROTOCOL", "poll: %s", strerror(errno));
			return -1;
		}
		if (p == 0 && hc_vmm_gone(h))
			return -1;
	}
}

/* iov (cnt of them) sent whole, never blocking: a socket buffer that
 * stays full waits in hc_wait.  One buffer goes as send(2), several as
 * one sendmsg(2) (a chunk's size line, data and CRLF in one segment). */
static int hc_sendv(struct hc *h, struct iovec *iov, int cnt)
{
	while (cnt) {
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
		ssize_t w = cnt == 1 ? send(h->fd, iov->iov_base, iov->iov_len, MSG_NOSIGNAL | MSG_DONTWAIT)
				     : sendmsg(h->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (hc_wait(h, POLLOUT) < 0)
				return -1;
			continue;
		}
		if (w < 0) {
			int err = errno;
			if (!hc_vmm_gone(h))
				hc_error(h, "ERR_AGENT_PROTOCOL", "cannot send to the agent: %s", strerror(err));
			errno = err;
			return -1;
		}
		cnt = iov_advance(&iov, cnt, (size_t)w);
	}
	return 0;
}

int send_all(struct hc *h, const void *p, size_t n)
{
	struct iovec iov = { (void *)p, n };
	return n ? hc_sendv(h, &iov, 1) : 0;
}

/* fmt appended to head (*n of cap bytes used); false when it does not fit. */
static bool head_add(char *head, size_t cap, size_t *n, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static bool head_add(char *head, size_t cap, size_t *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(head + *n, cap - *n, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= cap - *n)
		return false;
	*n += (size_t)w;
	return true;
}

/* The head is built whole, up to the agent's own limit on one. */
int hc_send_head(struct hc *h, const struct target *t, const char *method, const char *path, const char *ctype,
		 long long body_len, const char *extra)
{
	char head[HTTP_HEAD_MAX];
	size_t n = 0;
	bool fits = head_add(head, sizeof head, &n,
			     "%s %s HTTP/1.1\r\nHost: %s:%s\r\nAuthorization: Bearer %s\r\n"
			     "User-Agent: vmsan-agentctl/" VMSAN_VERSION "\r\nConnection: close\r\n",
			     method, path, t->host, t->port, t->token) &&
		    (!ctype || head_add(head, sizeof head, &n, "Content-Type: %s\r\n", ctype)) &&
		    (body_len < 0 ? head_add(head, sizeof head, &n, "Transfer-Encoding: chunked\r\n")
				  : head_add(head, sizeof head, &n, "Content-Length: %lld\r\n", body_len)) &&
		    head_add(head, sizeof head, &n, "%s\r\n", extra ? extra : "");
	if (!fits) {
		hc_error(h, "ERR_USAGE", "the request's head is over the agent's limit of %d bytes", HTTP_HEAD_MAX);
		return -1;
	}
	return send_all(h, head, n);
}

int send_chunk(struct hc *h, const void *p, size_t n)
{
	char hx[24];
	int hl = snprintf(hx, sizeof hx, "%zx\r\n", n);
	struct iovec iov[3] = { { hx, (size_t)hl }, { (void *)p, n }, { (char *)"\r\n", 2 } };
	return hc_sendv(h, iov, 3);
}

ssize_t hc_fill(struct hc *h)
{
	if (h->pos == h->len)
		h->pos = h->len = 0;
	if (h->len == sizeof h->buf) {
		memmove(h->buf, h->buf + h->pos, h->len - h->pos);
		h->len -= h->pos;
		h->pos = 0;
		if (h->len == sizeof h->buf) {
			hc_error(h, "ERR_AGENT_PROTOCOL", "the agent sent more than %zu bytes that cannot be used",
				 sizeof h->buf);
			return -1;
		}
	}
	ssize_t r;
	do {
		if (hc_wait(h, POLLIN) < 0)
			return -1;
		r = recv(h->fd, h->buf + h->len, sizeof h->buf - h->len, MSG_DONTWAIT);
	} while (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK));
	int err = errno;
	if (r > 0)
		h->len += (size_t)r;
	else if (hc_vmm_gone(h)) /* the end of a VM that died: say so */
		r = -1;
	else if (r < 0)
		hc_error(h, "ERR_AGENT_PROTOCOL", "the connection to the agent failed: %s", strerror(err));
	else
		hc_error(h, "ERR_AGENT_PROTOCOL", "the agent closed the connection");
	return r;
}

/* The head just parsed (hl bytes) becomes the response being read. */
void hc_take_head(struct hc *h, ssize_t hl)
{
	http_header(&h->hd, "content-type", h->ctype, sizeof h->ctype);
	h->pos += (size_t)hl;
	h->kind = h->hd.body;
	h->left = h->hd.content_length;
	h->done = h->kind == BODY_NONE;
	h->status = h->hd.status;
}

void hc_bad_head(struct hc *h, ssize_t hl)
{
	if (hl == -431)
		hc_error(h, "ERR_AGENT_PROTOCOL", "the agent's response head exceeds %d bytes", HTTP_HEAD_MAX);
	else
		hc_error(h, "ERR_AGENT_PROTOCOL", "the agent's response head is malformed (%zd)", -hl);
}

/* Reads the response head within the deadline; returns the status or -1
 * with h->why set. */
int hc_response(struct hc *h)
{
	hc_arm(h);
	for (;;) {
		ssize_t hl = http_parse_head(h->buf + h->pos, h->len - h->pos, false, &h->hd);
		if (hl < 0) {
			hc_bad_head(h, hl);
			return -1;
		}
		if (hl > 0) {
			if (h->hd.status == 100) { /* 100 Continue: the real one follows */
				h->pos += (size_t)hl;
				continue;
			}
			hc_take_head(h, hl);
			h->deadline = 0;
			return h->status;
		}
		if (hc_fill(h) <= 0)
			return -1;
	}
}

ssize_t hc_read(struct hc *h, void *buf, size_t n)
{
	for (;;) {
		if (h->dlen) {
			size_t k = h->dlen < n ? h->dlen : n;
			memcpy(buf, h->dptr, k);
			h->dptr += k;
			h->dlen -= k;
			return (ssize_t)k;
		}
		if (h->done)
			return 0;
		if (h->pos == h->len) {
			ssize_t r = hc_fill(h);
			if (r < 0)
				return -1;
			if (r == 0) {
				if (h->kind == BODY_UNTIL_CLOSE) {
					h->done = true;
					return 0;
				}
				hc_error(h, "ERR_AGENT_PROTOCOL", "the agent closed the connection mid-answer");
				return -1;
			}
		}
		if (h->kind == BODY_CHUNKED) {
			size_t out;
			ssize_t used = chunked_decode(&h->ch, h->buf + h->pos, h->len - h->pos, &out);
			if (used < 0) {
				hc_error(h, "ERR_AGENT_PROTOCOL", "the agent's chunked body is malformed");
				return -1;
			}
			h->dptr = h->buf + h->pos;
			h->dlen = out;
			h->pos += (size_t)used;
			if (h->ch.done)
				h->done = true;
		} else {
			size_t k = h->len - h->pos;
			if (h->kind == BODY_LENGTH && k > h->left)
				k = (size_t)h->left;
			h->dptr = h->buf + h->pos;
			h->dlen = k;
			h->pos += k;
			if (h->kind == BODY_LENGTH) {
				h->left -= k;
				if (!h->left)
					h->done = true;
			}
		}
	}
}

/* Whole (small) body, NUL-terminated, at most BODY_MAX bytes and in by
 * the deadline; caller frees.  NULL with h->why set. */
char *hc_slurp(struct hc *h, size_t *len)
{
	size_t cap = 4096, n = 0;
	if (h->kind == BODY_LENGTH && h->left > BODY_MAX) {
		hc_error(h, "ERR_AGENT_TOO_LARGE", "the agent announces a %llu-byte answer; the limit is %u bytes",
			 (unsigned long long)h->left, BODY_MAX);
		return NULL;
	}
	hc_arm(h);
	char *b = malloc(cap);
	if (!b)
		hc_error(h, "ERR_NOMEM", "out of memory");
	while (b) {
		if (cap - n < 4096) {
			char *nb = cap < BODY_MAX + 8192 ? realloc(b, cap *= 2) : NULL;
			if (!nb) {
				if (cap >= BODY_MAX + 8192)
					hc_error(h, "ERR_AGENT_TOO_LARGE", "the agent's answer exceeds %u bytes",
						 BODY_MAX);
				else
					hc_error(h, "ERR_NOMEM", "out of memory");
				free(b);
				h->deadline = 0;
				return NULL;
			}
			b = nb;
		}
		ssize_t r = hc_read(h, b + n, cap - n - 1);
		if (r < 0) {
			free(b);
			h->deadline = 0;
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > BODY_MAX) {
			hc_error(h, "ERR_AGENT_TOO_LARGE", "the agent's answer exceeds %u bytes", BODY_MAX);
			free(b);
			h->deadline = 0;
			return NULL;
		}
	}
	h->deadline = 0;
	if (b)
		b[n] = 0;
	if (len)
		*len = n;
	return b;
}

/* An error reply from the agent, as a failure of ours. */
int agent_error(struct hc *h, const char *what, struct verr *e)
{
	char *body = hc_slurp(h, NULL);
	json_t *j = body ? json_loads(body, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(j, "error"));
	const char *code = h->status == 401 || h->status == 403 ? "ERR_AGENT_AUTH"
			   : h->status == 404			? "ERR_NOT_FOUND"
			   : h->status == 413			? "ERR_TOO_LARGE"
			   : h->status == 429			? "ERR_AGENT_BUSY"
			   : h->status >= 500			? "ERR_AGENT"
								: "ERR_AGENT_REFUSED";
	const char *fix = h->status == 403   ? "the token does not match this agent; check --token-file"
			  : h->status == 429 ? "wait for running commands or sessions to finish"
					     : NULL;
	/* The guest's words, printable and short: they reach a terminal. */
	char shown[900];
	verr_set(e, 1, code, fix, "%s: agent answered %d: %s", what, h->status,
		 clean(shown, sizeof shown,
		       msg	       ? msg
		       : body && *body ? body
				       : http_reason(h->status)));
	json_decref(j);
	free(body);
	return -1;
}
