/* vmsan-agentctl: the host-side client of vmsan-agent.  Unprivileged.
 *
 *   vmsan-agentctl [TARGET] health | exec ... | kill ID | shell ... |
 *                  sessions | session-kill ID | upload ... | download ...
 *   TARGET: --vm ID (the VM record's agent address and its token file) or
 *           --agent HOST:PORT --token-file FILE
 *
 * Speaks HTTP/1.1 and WebSocket itself (proto/http.c, proto/ws.c) and
 * extracts downloads with untar.c (libarchive's reader, our openat2
 * writer), which lets nothing land outside the name asked for.
 *
 * The guest is hostile: every byte the agent sends back is bounded here,
 * and what of it we print in our own messages is made printable first.
 *   response head        16 KiB (HTTP_HEAD_MAX), within VMSAN_AGENT_TIMEOUT
 *                        seconds (30) of the request being sent
 *   a small reply body   1 MiB (JSON answers, error bodies), same deadline
 *   an exec event line   1 MiB without a newline
 *   exec --json output   16 MiB each of stdout and stderr
 *   a WebSocket frame    128 KiB; a message 1 MiB
 *   a download           16 GiB (--max-bytes), 1,000,000 entries,
 *                        names 4096 bytes, 256 levels deep
 * Streams that may legitimately be slow (exec output, a download's body,
 * a shell) have no deadline: their sizes are what is bounded.
 * Exit status: the remote command's for exec and shell; 124 when an exec
 * timed out; 1 when the request failed; 100 for bad usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "lib/vmsan.h"
#include "../proto/http.h"
#include "../proto/tar.h"
#include "../proto/ws.h"
#include "untar.h"

#define EXIT_TIMEOUT 124
#define HEAD_TIMEOUT_S 30               /* VMSAN_AGENT_TIMEOUT overrides */
#define CONNECT_TIMEOUT_S 10            /* a SYN the guest never answers */
#define BODY_MAX (1u << 20)             /* a reply read whole */
#define EVENT_LINE_MAX (1u << 20)       /* exec: agent lines are < 400 KiB */
#define JSON_OUTPUT_MAX (16u << 20)     /* exec --json: per stream */
#define WS_FRAME_MAX (128u << 10)       /* the agent sends <= 64 KiB */
#define WS_MSG_MAX (1u << 20)

static bool json_out;
static const char *cmdname = "agentctl";

/* ---- errors ---------------------------------------------------------- */

static int fail(int exit, const char *code, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(int exit, const char *code, const char *fix, const char *fmt, ...)
{
	struct verr e = { 0 };
	char msg[700];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	verr_set(&e, exit, code, fix, "%s", msg);
	if (json_out)
		return reply_error(&e);
	fprintf(stderr, "vmsan %s: %s\n", cmdname, msg);
	if (fix)
		fprintf(stderr, "  fix: %s\n", fix);
	return exit;
}

/* Guest bytes in our own messages: printable, and at most 200 bytes. */
static const char *clean(char *buf, size_t n, const char *s)
{
	untar_printable(buf, n, s ? s : "", s ? strlen(s) : 0, 200);
	return buf;
}

/* ---- target ---------------------------------------------------------- */

struct target {
	char host[256];
	char port[8];
	char token[300];
	char vm[64];
};

static int read_token(int dirfd, const char *path, char *out, size_t n)
{
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	ssize_t r = read(fd, out, n - 1);
	close(fd);
	if (r <= 0)
		return -1;
	while (r && (out[r - 1] == '\n' || out[r - 1] == '\r'))
		r--;
	out[r] = 0;
	return r >= 16 ? 0 : -1;
}

static int target_from_vm(struct target *t, const char *id)
{
	struct state st;
	struct verr e = { 0 };
	char why[128];
	if (valid_vm_id(id, why, sizeof why) != 0)
		return fail(VMSAN_EXIT_USAGE, "ERR_VALIDATION_VM_ID", "VM ids look like vm-1a2b3c4d",
			    "invalid VM id '%s': %s", id, why);
	if (state_open(&st, false, &e) != 0) {
		if (verr_take(&e, "ERR_STATE_DIR_MISSING"))
			return fail(1, "ERR_VM_NOT_FOUND", "run 'vmsan list' to see your VMs", "VM not found: %s", id);
		return json_out ? reply_error(&e) : fail(e.exit, e.code, e.fix[0] ? e.fix : NULL, "%s", e.message);
	}
	json_t *rec = state_load(&st, id, &e);
	if (!rec) {
		state_release(&st);
		return fail(e.exit, e.code, e.fix[0] ? e.fix : NULL, "%s", e.message);
	}
	state_derive_status(rec);
	const char *status = json_string_value(json_object_get(rec, "status"));
	json_t *agent = json_object_get(rec, "agent");
	const char *addr = json_string_value(json_object_get(agent, "addr"));
	json_int_t port = json_integer_value(json_object_get(agent, "port"));
	char tokname[96];
	snprintf(tokname, sizeof tokname, "%s.token", id);
	int rc = 0;
	if (!status || strcmp(status, "running"))
		rc = fail(1, "ERR_VM_NOT_RUNNING", "start it with 'vmsan start'", "VM %s is %s, not running", id,
			  status ? status : "in an unknown state");
	else if (!addr || port < 1 || port > 65535)
		rc = fail(1, "ERR_VM_NO_AGENT", "recreate the VM", "VM %s has no agent address in its record", id);
	else if (read_token(st.vmsfd, tokname, t->token, sizeof t->token) < 0)
		rc = fail(1, "ERR_VM_NO_AGENT_TOKEN", "recreate the VM",
			  "cannot read the agent token of %s (%s/%s)", id, st.vms, tokname);
	else {
		snprintf(t->host, sizeof t->host, "%s", addr);
		snprintf(t->port, sizeof t->port, "%d", (int)port);
		snprintf(t->vm, sizeof t->vm, "%s", id);
	}
	json_decref(rec);
	state_release(&st);
	return rc;
}

/* ---- HTTP client ----------------------------------------------------- */

struct hc {
	int fd;
	char buf[256 * 1024];
	size_t pos, len;
	struct http_head hd;
	enum http_body kind;
	uint64_t left;
	struct chunked ch;
	char *dptr;
	size_t dlen;
	bool done;
	int status;
	char ctype[128];
	int64_t deadline;        /* ms, CLOCK_MONOTONIC; 0 = none */
	volatile int *abort;     /* a signal stops a download */
	const char *ecode;       /* why the last hc_* call failed ... */
	char why[200];           /* ... in words */
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int head_timeout_s(void)
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

static void hc_fail(struct hc *h, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void hc_fail(struct hc *h, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(h->why, sizeof h->why, fmt, ap);
	va_end(ap);
	h->ecode = code;
}

static int hc_connect(struct hc *h, const struct target *t)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai, *p;
	memset(h, 0, offsetof(struct hc, buf));
	h->pos = h->len = 0;
	h->deadline = 0;
	h->abort = NULL;
	h->ecode = NULL;
	h->why[0] = 0;
	h->ctype[0] = 0;
	h->fd = -1;
	int r = getaddrinfo(t->host, t->port, &hints, &ai);
	if (r)
		return fail(1, "ERR_AGENT_UNREACHABLE", NULL, "cannot resolve %s: %s", t->host, gai_strerror(r));
	int err = 0;
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
		return fail(1, "ERR_AGENT_UNREACHABLE", "check that the VM is running ('vmsan list')",
			    "cannot connect to the agent at %s:%s: %s", t->host, t->port, strerror(err));
	int one = 1;
	setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return 0;
}

static int send_all(int fd, const void *p, size_t n)
{
	return http_send_all(fd, p, n, 0);
}

/* Sends the request head; body_len < 0 means a chunked body follows. */
static int hc_send_head(struct hc *h, const struct target *t, const char *method, const char *path,
			const char *ctype, long long body_len, const char *extra)
{
	char head[2048];
	int n = snprintf(head, sizeof head,
			 "%s %s HTTP/1.1\r\nHost: %s:%s\r\nAuthorization: Bearer %s\r\nUser-Agent: vmsan-agentctl/"
			 VMSAN_VERSION "\r\nConnection: close\r\n",
			 method, path, t->host, t->port, t->token);
	if (ctype)
		n += snprintf(head + n, sizeof head - (size_t)n, "Content-Type: %s\r\n", ctype);
	if (body_len >= 0)
		n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %lld\r\n", body_len);
	else
		n += snprintf(head + n, sizeof head - (size_t)n, "Transfer-Encoding: chunked\r\n");
	n += snprintf(head + n, sizeof head - (size_t)n, "%s\r\n", extra ? extra : "");
	if (n >= (int)sizeof head)
		return -1;
	return send_all(h->fd, head, (size_t)n);
}

static int send_chunk(int fd, const void *p, size_t n)
{
	char hx[24];
	int hl = snprintf(hx, sizeof hx, "%zx\r\n", n);
	if (send_all(fd, hx, (size_t)hl) < 0 || send_all(fd, p, n) < 0 || send_all(fd, "\r\n", 2) < 0)
		return -1;
	return 0;
}

/* >0 bytes added, 0 the agent closed, -1 error with h->why set. */
static ssize_t hc_fill(struct hc *h)
{
	if (h->pos == h->len)
		h->pos = h->len = 0;
	if (h->len == sizeof h->buf) {
		memmove(h->buf, h->buf + h->pos, h->len - h->pos);
		h->len -= h->pos;
		h->pos = 0;
		if (h->len == sizeof h->buf) {
			hc_fail(h, "ERR_AGENT_PROTOCOL", "the agent sent more than %zu bytes that cannot be used",
				sizeof h->buf);
			return -1;
		}
	}
	ssize_t r;
	for (;;) {
		if (h->abort && *h->abort) {
			hc_fail(h, "ERR_INTERRUPTED", "interrupted");
			return -1;
		}
		if (h->deadline) {
			int64_t left = h->deadline - now_ms();
			struct pollfd pf = { .fd = h->fd, .events = POLLIN };
			int p = left > 0 ? poll(&pf, 1, (int)left) : 0;
			if (p < 0 && errno == EINTR)
				continue;
			if (p == 0) {
				hc_fail(h, "ERR_AGENT_TIMEOUT", "no complete answer from the agent within %d s",
					head_timeout_s());
				return -1;
			}
		}
		r = recv(h->fd, h->buf + h->len, sizeof h->buf - h->len, 0);
		if (r >= 0 || errno != EINTR)
			break;
	}
	if (r > 0)
		h->len += (size_t)r;
	else if (r < 0)
		hc_fail(h, "ERR_AGENT_PROTOCOL", "the connection to the agent failed: %s", strerror(errno));
	else
		hc_fail(h, "ERR_AGENT_PROTOCOL", "the agent closed the connection");
	return r;
}

/* The head just parsed (hl bytes) becomes the response being read. */
static void hc_take_head(struct hc *h, ssize_t hl)
{
	http_header(&h->hd, "content-type", h->ctype, sizeof h->ctype);
	h->pos += (size_t)hl;
	h->kind = h->hd.body;
	h->left = h->hd.content_length;
	h->done = h->kind == BODY_NONE;
	h->status = h->hd.status;
}

static void hc_bad_head(struct hc *h, ssize_t hl)
{
	if (hl == -431)
		hc_fail(h, "ERR_AGENT_PROTOCOL", "the agent's response head exceeds %d bytes", HTTP_HEAD_MAX);
	else
		hc_fail(h, "ERR_AGENT_PROTOCOL", "the agent's response head is malformed (%zd)", -hl);
}

/* Reads the response head within the deadline; returns the status or -1
 * with h->why set. */
static int hc_response(struct hc *h)
{
	hc_arm(h);
	for (;;) {
		ssize_t hl = http_parse_head(h->buf + h->pos, h->len - h->pos, false, &h->hd);
		if (hl < 0) {
			hc_bad_head(h, hl);
			return -1;
		}
		if (hl > 0) {
			if (h->hd.status == 100) {   /* 100 Continue: the real one follows */
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

/* >0 bytes, 0 end of body, -1 error (connection lost mid-body). */
static ssize_t hc_read(struct hc *h, void *buf, size_t n)
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
				hc_fail(h, "ERR_AGENT_PROTOCOL", "the agent closed the connection mid-answer");
				return -1;
			}
		}
		if (h->kind == BODY_CHUNKED) {
			size_t out;
			ssize_t used = chunked_decode(&h->ch, h->buf + h->pos, h->len - h->pos, &out);
			if (used < 0) {
				hc_fail(h, "ERR_AGENT_PROTOCOL", "the agent's chunked body is malformed");
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
static char *hc_slurp(struct hc *h, size_t *len)
{
	size_t cap = 4096, n = 0;
	if (h->kind == BODY_LENGTH && h->left > BODY_MAX) {
		hc_fail(h, "ERR_AGENT_TOO_LARGE", "the agent announces a %llu-byte answer; the limit is %u bytes",
			(unsigned long long)h->left, BODY_MAX);
		return NULL;
	}
	hc_arm(h);
	char *b = malloc(cap);
	if (!b)
		hc_fail(h, "ERR_NOMEM", "out of memory");
	while (b) {
		if (cap - n < 4096) {
			char *nb = cap < BODY_MAX + 8192 ? realloc(b, cap *= 2) : NULL;
			if (!nb) {
				if (cap >= BODY_MAX + 8192)
					hc_fail(h, "ERR_AGENT_TOO_LARGE", "the agent's answer exceeds %u bytes", BODY_MAX);
				else
					hc_fail(h, "ERR_NOMEM", "out of memory");
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
			hc_fail(h, "ERR_AGENT_TOO_LARGE", "the agent's answer exceeds %u bytes", BODY_MAX);
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
static int agent_error(struct hc *h, const char *what)
{
	char *body = hc_slurp(h, NULL);
	json_t *j = body ? json_loads(body, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(j, "error"));
	const char *code = h->status == 401 || h->status == 403 ? "ERR_AGENT_AUTH"
			 : h->status == 404 ? "ERR_NOT_FOUND"
			 : h->status == 413 ? "ERR_TOO_LARGE"
			 : h->status == 429 ? "ERR_AGENT_BUSY"
			 : h->status >= 500 ? "ERR_AGENT" : "ERR_AGENT_REFUSED";
	const char *fix = h->status == 403 ? "the token does not match this agent; check --token-file"
			: h->status == 429 ? "wait for running commands or sessions to finish" : NULL;
	/* The guest's words, printable and short: they reach a terminal. */
	char shown[900];
	int rc = fail(1, code, fix, "%s: agent answered %d: %s", what, h->status,
		      clean(shown, sizeof shown, msg ? msg : body && *body ? body : http_reason(h->status)));
	json_decref(j);
	free(body);
	return rc;
}

/* ---- health, kill, sessions ------------------------------------------ */

static int simple_request(const struct target *t, const char *method, const char *path,
			  const char *body, const char *what)
{
	struct hc *h = malloc(sizeof *h);
	if (!h)
		return fail(111, "ERR_NOMEM", NULL, "out of memory");
	int rc = hc_connect(h, t);
	if (rc) {
		free(h);
		return rc;
	}
	size_t bl = body ? strlen(body) : 0;
	if (hc_send_head(h, t, method, path, body ? "application/json" : NULL, (long long)bl, NULL) < 0 ||
	    (bl && send_all(h->fd, body, bl) < 0)) {
		rc = fail(1, "ERR_AGENT_PROTOCOL", NULL, "%s: cannot send the request: %s", what, strerror(errno));
		goto out;
	}
	if (hc_response(h) < 0) {
		rc = fail(1, h->ecode, NULL, "%s: %s", what, h->why);
		goto out;
	}
	if (h->status / 100 != 2) {
		rc = agent_error(h, what);
		goto out;
	}
	char *resp = hc_slurp(h, NULL);
	json_t *j = resp ? json_loads(resp, 0, NULL) : NULL;
	if (!resp) {
		rc = fail(1, h->ecode, NULL, "%s: %s", what, h->why);
	} else if (!j) {
		rc = fail(1, "ERR_AGENT_PROTOCOL", NULL, "%s: the agent's answer is not JSON", what);
	} else if (json_out) {
		json_t *o = json_is_object(j) ? json_incref(j) : json_pack("{s:O}", "items", j);
		reply_ok(o);
	} else {
		/* ASCII escapes: a guest string cannot drive the terminal. */
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		if (s)
			puts(s);
		free(s);
	}
	json_decref(j);
	free(resp);
out:
	close(h->fd);
	free(h);
	return rc;
}

/* ---- exec ------------------------------------------------------------ */

static volatile sig_atomic_t got_signal;
static int sigpipe_fds[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	got_signal = sig;
	if (sigpipe_fds[1] >= 0)
		(void)!write(sigpipe_fds[1], &(char){ (char)sig }, 1);
	errno = saved;
}

static void write_all_fd(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

struct exec_result {
	int exit_code;
	bool timed_out, have_exit;
	char id[40];
	char signal[16];
	char error[512];
	struct { char *p; size_t len, cap; } out, err;   /* --json: collected output */
	const char *overflow;                            /* "stdout" or "stderr" */
};

/* --json keeps the output in memory, so it has a bound. */
static int collect(struct exec_result *r, bool is_out, const char *data, size_t n)
{
	__typeof__(r->out) *acc = is_out ? &r->out : &r->err;
	if (acc->len + n > JSON_OUTPUT_MAX) {
		r->overflow = is_out ? "stdout" : "stderr";
		return -1;
	}
	if (acc->len + n + 1 > acc->cap) {
		size_t cap = acc->cap ? acc->cap : 4096;
		while (cap < acc->len + n + 1)
			cap *= 2;
		char *np = realloc(acc->p, cap);
		if (!np) {
			r->overflow = is_out ? "stdout" : "stderr";
			return -1;
		}
		acc->p = np;
		acc->cap = cap;
	}
	memcpy(acc->p + acc->len, data, n);
	acc->len += n;
	return 0;
}

/* An id or a signal name from the agent, used only when it looks like
 * one: it is printed, and put in paths. */
static bool token_ok(const char *s, size_t max, const char *alphabet)
{
	size_t n = s ? strlen(s) : 0;
	return n && n <= max && strspn(s, alphabet) == n;
}

/* Text when it is UTF-8, else base64 under NAME + "B64". */
static void put_output(json_t *o, const char *name, const char *p, size_t n)
{
	json_t *s = json_stringn(p ? p : "", n);
	if (s) {
		json_object_set_new(o, name, s);
		return;
	}
	char *b = malloc(4 * (n + 2) / 3 + 1), key[32];
	if (!b)
		return;
	base64_encode((const uint8_t *)p, n, b);
	snprintf(key, sizeof key, "%sB64", name);
	json_object_set_new(o, key, json_string(b));
	free(b);
}

/* -1 when --json's output bound is crossed. */
static int handle_event(json_t *ev, struct exec_result *r)
{
	int rc = 0;
	const char *type = json_string_value(json_object_get(ev, "type"));
	if (!type)
		return 0;
	if (!strcmp(type, "started")) {
		const char *id = json_string_value(json_object_get(ev, "id"));
		if (token_ok(id, sizeof r->id - 1, "0123456789abcdef"))
			snprintf(r->id, sizeof r->id, "%s", id);
	} else if (!strcmp(type, "stdout") || !strcmp(type, "stderr")) {
		bool is_out = type[3] == 'o';
		json_t *d = json_object_get(ev, "data");
		const char *b64 = json_string_value(json_object_get(ev, "b64"));
		char *raw = NULL;
		const char *p = NULL;
		size_t n = 0;
		if (json_is_string(d)) {
			p = json_string_value(d);
			n = json_string_length(d);
		} else if (b64) {
			size_t bl = strlen(b64);
			raw = malloc(bl / 4 * 3 + 3);
			ssize_t k = raw ? base64_decode(b64, bl, (uint8_t *)raw, bl / 4 * 3 + 3) : -1;
			if (k >= 0) {
				p = raw;
				n = (size_t)k;
			}
		}
		if (p) {
			if (json_out)
				rc = collect(r, is_out, p, n);
			else
				write_all_fd(is_out ? 1 : 2, p, n);
		}
		free(raw);
	} else if (!strcmp(type, "exit")) {
		r->exit_code = (int)json_integer_value(json_object_get(ev, "exitCode"));
		r->have_exit = true;
		const char *sg = json_string_value(json_object_get(ev, "signal"));
		if (token_ok(sg, sizeof r->signal - 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-"))
			snprintf(r->signal, sizeof r->signal, "%s", sg);
	} else if (!strcmp(type, "timeout")) {
		r->timed_out = true;
	} else if (!strcmp(type, "error")) {
		/* The guest's words, printable and short, for stderr and JSON. */
		const char *e = json_string_value(json_object_get(ev, "error"));
		clean(r->error, sizeof r->error, e ? e : "unknown error");
		if (!json_out)
			fprintf(stderr, "vmsan exec: %s\n", r->error);
	}
	return rc;
}

static void remote_kill(const struct target *t, const char *id, int sig)
{
	struct hc *h = malloc(sizeof *h);
	struct verr quiet = { 0 };
	(void)quiet;
	bool saved = json_out;
	json_out = true;      /* errors here are not worth a message */
	int saved_out = dup(1);
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	dup2(devnull, 1);
	if (h && hc_connect(h, t) == 0) {
		char path[96], body[64];
		snprintf(path, sizeof path, "/exec/%s/kill", id);
		int n = snprintf(body, sizeof body, "{\"signal\":%d}", sig);
		if (hc_send_head(h, t, "POST", path, "application/json", n, NULL) == 0 &&
		    send_all(h->fd, body, (size_t)n) == 0 && hc_response(h) >= 0)
			free(hc_slurp(h, NULL));
		close(h->fd);
	}
	dup2(saved_out, 1);
	close(saved_out);
	close(devnull);
	json_out = saved;
	free(h);
}

struct exec_opts {
	json_t *env;
	const char *workdir, *user;
	long long timeout_ms;
	bool interactive, tty, detach;
	char **argv;
	int argc;
};

static int run_exec(const struct target *t, struct exec_opts *o)
{
	struct hc *h = malloc(sizeof *h);
	struct exec_result r = { .exit_code = -1 };
	char *line = NULL, *inbuf = NULL;
	json_t *req = json_object();
	json_t *args = json_array();
	for (int i = 1; i < o->argc; i++)
		json_array_append_new(args, json_string(o->argv[i]));
	json_object_set_new(req, "cmd", json_string(o->argv[0]));
	json_object_set_new(req, "args", args);
	if (json_object_size(o->env))
		json_object_set(req, "env", o->env);
	if (o->workdir)
		json_object_set_new(req, "cwd", json_string(o->workdir));
	if (o->user)
		json_object_set_new(req, "user", json_string(o->user));
	if (o->timeout_ms)
		json_object_set_new(req, "timeoutMs", json_integer(o->timeout_ms));
	if (o->detach)
		json_object_set_new(req, "detached", json_true());
	if (o->interactive)
		json_object_set_new(req, "stdin", json_true());
	char *body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	int rc = 0;
	if (!h || !body) {
		free(h);
		free(body);
		return fail(111, "ERR_NOMEM", NULL, "out of memory");
	}
	if ((rc = hc_connect(h, t))) {
		free(h);
		free(body);
		return rc;
	}
	size_t bl = strlen(body);
	int sent = o->interactive
		? hc_send_head(h, t, "POST", "/exec", "application/json", -1, NULL) || send_chunk(h->fd, body, bl)
		: hc_send_head(h, t, "POST", "/exec", "application/json", (long long)bl, NULL) ||
		  send_all(h->fd, body, bl);
	free(body);
	if (sent) {
		rc = fail(1, "ERR_AGENT_PROTOCOL", NULL, "cannot send the request: %s", strerror(errno));
		goto out;
	}
	/* Signals are passed to the remote command, which then decides. */
	if (pipe2(sigpipe_fds, O_CLOEXEC | O_NONBLOCK) == 0) {
		struct sigaction sa = { .sa_handler = on_signal };
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
	}
	signal(SIGPIPE, SIG_IGN);
	bool in_open = o->interactive, head_done = false;
	size_t linelen = 0, linecap = 0;
	inbuf = malloc(65536);
	char rd[65536];
	/* The head within the deadline; the events after it may take as
	 * long as the command does. */
	int64_t head_by = now_ms() + head_timeout_s() * 1000LL;
	h->deadline = head_by;   /* for hc_fill, with part of a head in */
	for (;;) {
		struct pollfd pf[3];
		int np = 0;
		pf[np++] = (struct pollfd){ .fd = h->fd, .events = POLLIN };
		int isig = -1, iin = -1;
		if (sigpipe_fds[0] >= 0) {
			isig = np;
			pf[np++] = (struct pollfd){ .fd = sigpipe_fds[0], .events = POLLIN };
		}
		if (in_open) {
			iin = np;
			pf[np++] = (struct pollfd){ .fd = 0, .events = POLLIN };
		}
		/* Bytes already buffered need no poll. */
		bool buffered = h->pos < h->len || h->dlen;
		int wait = -1;
		if (!head_done) {
			int64_t left = head_by - now_ms();
			wait = left > 0 ? (int)left : 0;
		}
		int pr = buffered ? 1 : poll(pf, (nfds_t)np, wait);
		if (pr < 0 && errno != EINTR)
			break;
		if (pr == 0 && !head_done) {
			rc = fail(1, "ERR_AGENT_TIMEOUT", "check the VM ('vmsan list'); VMSAN_AGENT_TIMEOUT sets the limit",
				  "exec: no answer from the agent within %d s", head_timeout_s());
			goto out;
		}
		if (isig >= 0 && pf[isig].revents) {
			char s;
			while (read(sigpipe_fds[0], &s, 1) == 1)
				if (r.id[0])
					remote_kill(t, r.id, s);
			pf[isig].revents = 0;
		}
		if (iin >= 0 && pf[iin].revents) {
			ssize_t n = inbuf ? read(0, inbuf, 65536) : 0;
			if (n > 0) {
				if (send_chunk(h->fd, inbuf, (size_t)n) < 0)
					in_open = false;
			} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
				send_all(h->fd, "0\r\n\r\n", 5);   /* EOF of stdin = end of body */
				in_open = false;
			}
		}
		if (!buffered && !(pf[0].revents))
			continue;
		if (!head_done) {
			ssize_t hl;
			if (h->pos == h->len || (hl = http_parse_head(h->buf + h->pos, h->len - h->pos, false, &h->hd)) == 0) {
				if (hc_fill(h) <= 0) {
					rc = fail(1, h->ecode, NULL, "exec: %s", h->why);
					goto out;
				}
				continue;
			}
			if (hl < 0) {
				hc_bad_head(h, hl);
				rc = fail(1, h->ecode, NULL, "exec: %s", h->why);
				goto out;
			}
			if (h->hd.status == 100) {
				h->pos += (size_t)hl;
				continue;
			}
			hc_take_head(h, hl);
			head_done = true;
			h->deadline = 0;
			if (h->status != 200) {
				rc = agent_error(h, "exec");
				goto out;
			}
			continue;
		}
		ssize_t n = hc_read(h, rd, sizeof rd);
		if (n < 0) {
			rc = fail(1, "ERR_AGENT_PROTOCOL", NULL, "the connection to the agent broke mid-command (%s)", h->why);
			goto out;
		}
		if (n == 0)
			break;
		if (linelen + (size_t)n + 1 > linecap) {
			size_t cap = linecap ? linecap : 65536;
			while (cap < linelen + (size_t)n + 1)
				cap *= 2;
			char *nl = realloc(line, cap);
			if (!nl) {
				rc = fail(111, "ERR_NOMEM", NULL, "out of memory");
				goto out;
			}
			line = nl;
			linecap = cap;
		}
		memcpy(line + linelen, rd, (size_t)n);
		linelen += (size_t)n;
		size_t start = 0;
		int over = 0;
		for (size_t i = 0; i < linelen && !over; i++)
			if (line[i] == '\n') {
				json_t *ev = json_loadb(line + start, i - start, 0, NULL);
				if (ev)
					over = handle_event(ev, &r);
				json_decref(ev);
				start = i + 1;
			}
		memmove(line, line + start, linelen - start);
		linelen -= start;
		if (over) {
			if (r.id[0])
				remote_kill(t, r.id, SIGKILL);
			rc = fail(1, "ERR_OUTPUT_TOO_LARGE", "run it without --json to stream the output, or write it "
				  "to a file in the guest and use 'vmsan download'",
				  "exec --json: the command's %s exceeds %u bytes; it was stopped", r.overflow,
				  JSON_OUTPUT_MAX);
			goto out;
		}
		if (linelen > EVENT_LINE_MAX) {
			if (r.id[0])
				remote_kill(t, r.id, SIGKILL);
			rc = fail(1, "ERR_AGENT_PROTOCOL", NULL,
				  "exec: the agent sent an event line of more than %u bytes without a newline",
				  EVENT_LINE_MAX);
			goto out;
		}
	}
	if (o->detach && !r.id[0]) {
		rc = fail(1, "ERR_AGENT_PROTOCOL", NULL, "exec --detach: the agent sent no usable command id");
	} else if (o->detach) {
		if (json_out)
			reply_ok(json_pack("{s:s, s:b}", "id", r.id, "detached", 1));
		else
			printf("%s\n", r.id);
		rc = 0;
	} else if (!r.have_exit) {
		rc = fail(1, "ERR_AGENT_PROTOCOL", NULL, "the agent ended the stream without an exit status");
	} else {
		rc = r.timed_out ? EXIT_TIMEOUT : r.exit_code;
		if (r.timed_out && !json_out)
			fprintf(stderr, "vmsan exec: timed out after %lld ms; the command was killed\n", o->timeout_ms);
		if (json_out) {
			json_t *o2 = json_pack("{s:s, s:i, s:b}", "id", r.id, "exitCode", r.exit_code,
					       "timedOut", r.timed_out);
			if (r.signal[0])
				json_object_set_new(o2, "signal", json_string(r.signal));
			if (r.error[0])
				json_object_set_new(o2, "error", json_string(r.error));
			put_output(o2, "stdout", r.out.p, r.out.len);
			put_output(o2, "stderr", r.err.p, r.err.len);
			reply_ok(o2);
		}
	}
out:
	free(r.out.p);
	free(r.err.p);
	free(line);
	free(inbuf);
	if (h->fd >= 0)
		close(h->fd);
	free(h);
	return rc;
}

/* ---- tar over HTTP: upload and download ------------------------------ */

static int sink_chunk(void *ctx, const void *p, size_t n)
{
	struct hc *h = ctx;
	return send_chunk(h->fd, p, n);
}

struct staged { struct hc *h; char *buf; size_t len, cap; };

static int staged_write(void *ctx, const void *p, size_t n)
{
	struct staged *s = ctx;
	if (s->len + n > s->cap) {
		if (s->len && send_chunk(s->h->fd, s->buf, s->len) < 0)
			return -1;
		s->len = 0;
		if (n > s->cap)
			return send_chunk(s->h->fd, p, n);
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	return 0;
}

static int run_upload(const struct target *t, char **paths, int npaths, const char *dest,
		      const char *user, bool preserve)
{
	struct hc *h = malloc(sizeof *h);
	int rc;
	if (!h)
		return fail(111, "ERR_NOMEM", NULL, "out of memory");
	for (int i = 0; i < npaths; i++) {
		struct stat sb;
		if (lstat(paths[i], &sb) < 0) {
			free(h);
			return fail(1, "ERR_LOCAL_FILE", "check the path", "cannot upload %s: %s", paths[i],
				    strerror(errno));
		}
	}
	if (dest && dest[0] != '/') {
		free(h);
		return fail(VMSAN_EXIT_USAGE, "ERR_VALIDATION_DEST", "give an absolute path such as /root",
			    "--dest must be an absolute path in the guest, not '%s'", dest);
	}
	if ((rc = hc_connect(h, t))) {
		free(h);
		return rc;
	}
	char extra[4400] = "";
	size_t el = 0;
	if (dest) {
		for (const char *p = dest; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f) {
				close(h->fd);
				free(h);
				return fail(VMSAN_EXIT_USAGE, "ERR_VALIDATION_DEST", NULL,
					    "--dest contains a control character");
			}
		el += (size_t)snprintf(extra + el, sizeof extra - el, "X-Extract-Dir: %s\r\n", dest);
	}
	if (user)
		el += (size_t)snprintf(extra + el, sizeof extra - el, "X-Owner: %s\r\n", user);
	if (preserve)
		el += (size_t)snprintf(extra + el, sizeof extra - el, "X-Preserve-Owner: true\r\n");
	struct staged s = { .h = h, .cap = 256 * 1024 };
	s.buf = malloc(s.cap);
	struct tar_stats st = { 0 }, total = { 0 };
	char err[512] = "";
	int tr = TAR_OK;
	if (!s.buf || hc_send_head(h, t, "POST", "/files/write", "application/x-tar", -1, extra) < 0) {
		rc = fail(1, "ERR_AGENT_PROTOCOL", NULL, "upload: cannot send the request");
		goto out;
	}
	for (int i = 0; i < npaths && tr == TAR_OK; i++) {
		char *copy = strdup(paths[i]);
		size_t l = strlen(copy);
		while (l > 1 && copy[l - 1] == '/')
			copy[--l] = 0;
		char *slash = strrchr(copy, '/');
		const char *base = slash ? slash + 1 : copy;
		char dir[4200];
		if (slash == copy)
			snprintf(dir, sizeof dir, "/");
		else if (slash)
			snprintf(dir, sizeof dir, "%.*s", (int)(slash - copy), copy);
		else
			snprintf(dir, sizeof dir, ".");
		if (!strcmp(base, ".") || !strcmp(base, "..") || !*base) {
			free(copy);
			tr = TAR_E_IO;
			snprintf(err, sizeof err, "%s: name a file or directory, not '.' or '..'", paths[i]);
			break;
		}
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0) {
			tr = TAR_E_IO;
			snprintf(err, sizeof err, "%.300s: %s", dir, strerror(errno));
		} else {
			tr = tar_write_path(dfd, base, base, true, staged_write, &s, &st, err, sizeof err);
			close(dfd);
		}
		total.files += st.files;
		total.dirs += st.dirs;
		total.bytes += st.bytes;
		free(copy);
	}
	if (tr == TAR_OK && (tar_write_end(staged_write, &s) < 0 ||
			     (s.len && send_chunk(h->fd, s.buf, s.len) < 0) || send_all(h->fd, "0\r\n\r\n", 5) < 0))
		tr = TAR_E_SOURCE;
	if (tr != TAR_OK && tr != TAR_E_SOURCE) {
		/* Do not let a partial archive look complete: end the connection
		 * without the last chunk. */
		rc = fail(1, "ERR_LOCAL_FILE", NULL, "upload: %s", err);
		goto out;
	}
	int status = hc_response(h);
	if (status < 0) {
		rc = fail(1, h->ecode, NULL, "upload: %s", h->why);
		goto out;
	}
	if (status != 200) {
		rc = agent_error(h, "upload");
		goto out;
	}
	char *resp = hc_slurp(h, NULL);
	json_t *j = resp ? json_loads(resp, 0, NULL) : NULL;
	bool got = resp != NULL;
	free(resp);
	if (!got) {
		rc = fail(1, h->ecode, NULL, "upload: %s", h->why);
		goto out;
	}
	if (!j) {
		rc = fail(1, "ERR_AGENT_PROTOCOL", NULL, "upload: the agent's answer is not JSON");
		goto out;
	}
	if (json_out)
		reply_ok(json_pack("{s:s?, s:o, s:I, s:I}", "dest", dest, "written", j,
				   "files", (json_int_t)total.files, "bytes", (json_int_t)total.bytes));
	else {
		json_decref(j);
		fprintf(stderr, "uploaded %llu file(s), %llu bytes\n", (unsigned long long)total.files,
			(unsigned long long)total.bytes);
	}
	rc = 0;
out:
	(void)sink_chunk;
	free(s.buf);
	close(h->fd);
	free(h);
	return rc;
}

static ssize_t hc_tar_read(void *ctx, void *buf, size_t n)
{
	return hc_read(ctx, buf, n);
}

static volatile int dl_abort;

static void on_dl_signal(int sig)
{
	dl_abort = sig;
}

static int run_download(const struct target *t, const char *remote, const char *dest, uint64_t max_bytes)
{
	if (remote[0] != '/')
		return fail(VMSAN_EXIT_USAGE, "ERR_VALIDATION_PATH", "give an absolute path in the guest",
			    "the remote path must be absolute, not '%s'", remote);
	/* Where it goes: into DEST when DEST is a directory (or ends in /),
	 * else as DEST; with no DEST, into the current directory. */
	char rbase[4200];
	snprintf(rbase, sizeof rbase, "%s", remote);
	size_t rl = strlen(rbase);
	while (rl > 1 && rbase[rl - 1] == '/')
		rbase[--rl] = 0;
	const char *rb = strrchr(rbase, '/') + 1;
	if (!*rb)
		rb = ".";
	char dir[4200], newname[4200];
	struct stat sb;
	if (!dest || !*dest) {
		snprintf(dir, sizeof dir, ".");
		snprintf(newname, sizeof newname, "%s", rb);
	} else if (dest[strlen(dest) - 1] == '/' || (stat(dest, &sb) == 0 && S_ISDIR(sb.st_mode))) {
		snprintf(dir, sizeof dir, "%s", dest);
		snprintf(newname, sizeof newname, "%s", rb);
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return fail(1, "ERR_LOCAL_FILE", NULL, "cannot create %s: %s", dir, strerror(errno));
	} else {
		char tmp[4200];
		snprintf(tmp, sizeof tmp, "%s", dest);
		char *sl = strrchr(tmp, '/');
		if (sl == tmp)
			snprintf(dir, sizeof dir, "/");
		else if (sl) {
			*sl = 0;
			snprintf(dir, sizeof dir, "%s", tmp);
		} else
			snprintf(dir, sizeof dir, ".");
		snprintf(newname, sizeof newname, "%s", sl ? sl + 1 : tmp);
	}
	if (!strcmp(rb, ".") && strcmp(newname, "."))
		return fail(VMSAN_EXIT_USAGE, "ERR_VALIDATION_PATH", NULL, "download the guest's / into a directory");
	if (!strcmp(newname, "..") || (!strcmp(newname, ".") && strcmp(rb, ".")))
		return fail(VMSAN_EXIT_USAGE, "ERR_VALIDATION_DEST", "name a file or directory with --dest",
			    "--dest cannot end in '%s'", newname);
	int rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return fail(1, "ERR_LOCAL_FILE", "create the destination directory first", "cannot open %s: %s", dir,
			    strerror(errno));
	struct hc *h = malloc(sizeof *h);
	int rc;
	if (!h || (rc = hc_connect(h, t))) {
		close(rootfd);
		free(h);
		return h ? rc : fail(111, "ERR_NOMEM", NULL, "out of memory");
	}
	json_t *req = json_pack("{s:s, s:s}", "path", remote, "format", "tar");
	char *body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!body || hc_send_head(h, t, "POST", "/files/read", "application/json", (long long)strlen(body), NULL) < 0 ||
	    send_all(h->fd, body, strlen(body)) < 0) {
		free(body);
		rc = fail(1, "ERR_AGENT_PROTOCOL", NULL, "download: cannot send the request");
		goto out;
	}
	free(body);
	if (hc_response(h) < 0) {
		rc = fail(1, h->ecode, NULL, "download: %s", h->why);
		goto out;
	}
	if (h->status == 404) {
		free(hc_slurp(h, NULL));
		rc = fail(1, "ERR_REMOTE_NOT_FOUND", "check the path with 'vmsan exec ID -- ls -la DIR'",
			  "file not found on VM: %s", remote);
		goto out;
	}
	if (h->status != 200) {
		rc = agent_error(h, "download");
		goto out;
	}
	if (h->kind == BODY_LENGTH && h->left > max_bytes) {
		rc = fail(1, "ERR_DOWNLOAD_LIMIT", "raise the limit with --max-bytes if you expect that much",
			  "download: the agent announces %llu bytes; the limit is %llu bytes",
			  (unsigned long long)h->left, (unsigned long long)max_bytes);
		goto out;
	}
	/* The archive comes from the guest: untrusted.  untar builds it in a
	 * hidden directory of its own and moves it into place only when it
	 * is whole; a signal stops it and removes what was made. */
	struct sigaction sa = { .sa_handler = on_dl_signal }, old[3];   /* no SA_RESTART */
	const int sigs[3] = { SIGINT, SIGTERM, SIGHUP };
	for (int i = 0; i < 3; i++)
		sigaction(sigs[i], &sa, &old[i]);
	h->abort = &dl_abort;
	struct untar_stats st;
	char err[900];
	struct untar_opts uo = { .dirfd = rootfd, .name = newname, .top = rb, .max_bytes = max_bytes,
				 .abort = &dl_abort };
	int x = untar(hc_tar_read, h, &uo, &st, err, sizeof err);
	for (int i = 0; i < 3; i++)
		sigaction(sigs[i], &old[i], NULL);
	if (x != UNTAR_OK) {
		static const char *const codes[] = {
			[UNTAR_E_UNSAFE] = "ERR_UNSAFE_ARCHIVE", [UNTAR_E_FORMAT] = "ERR_AGENT_PROTOCOL",
			[UNTAR_E_LIMIT] = "ERR_DOWNLOAD_LIMIT", [UNTAR_E_SOURCE] = "ERR_AGENT_PROTOCOL",
			[UNTAR_E_EXISTS] = "ERR_DEST_EXISTS", [UNTAR_E_LOCAL] = "ERR_LOCAL_FILE" };
		const char *fix = x == UNTAR_E_UNSAFE ? "the guest sent an archive that tries to leave the destination; "
							"nothing was written"
				: x == UNTAR_E_LIMIT ? "the limits are in vmsan-agentctl(8); --max-bytes sets the one on "
						       "bytes; nothing was written"
				: x == UNTAR_E_EXISTS ? "remove it, or name another --dest"
				: "nothing was written";
		if (x == UNTAR_E_SOURCE && h->ecode && !dl_abort)
			rc = fail(1, h->ecode, fix, "download: %s (%s)", err, h->why);
		else
			rc = fail(dl_abort ? 128 + dl_abort : 1, dl_abort ? "ERR_INTERRUPTED" : codes[x], fix,
				  "download: %s", err);
		goto out;
	}
	char local[8500];
	snprintf(local, sizeof local, "%s/%s", dir, newname);
	if (json_out)
		reply_ok(json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "remotePath", remote, "localPath", local,
				   "files", (json_int_t)st.files, "dirs", (json_int_t)st.dirs,
				   "bytes", (json_int_t)st.bytes, "symlinks", (json_int_t)st.symlinks,
				   "skipped", (json_int_t)st.skipped));
	else {
		fprintf(stderr, "downloaded %s to %s (%llu file(s), %llu bytes)\n", remote, local,
			(unsigned long long)st.files, (unsigned long long)st.bytes);
		if (st.skipped)
			fprintf(stderr, "  %llu device node(s), FIFO(s) or socket(s) were not created\n",
				(unsigned long long)st.skipped);
	}
	rc = 0;
out:
	close(rootfd);
	close(h->fd);
	free(h);
	return rc;
}

/* ---- shell (WebSocket PTY) ------------------------------------------- */

static struct termios saved_tio;
static bool raw_on;

static void restore_tty(void)
{
	if (raw_on) {
		tcsetattr(0, TCSAFLUSH, &saved_tio);
		raw_on = false;
	}
}

static int ws_send(int fd, int op, uint8_t type, const void *p, size_t n, bool typed)
{
	uint8_t h[16], mask[4];
	if (getrandom(mask, 4, 0) != 4)
		memset(mask, 0x5a, 4);
	size_t total = n + (typed ? 1 : 0);
	size_t hl = ws_encode_header(h, op, true, total, mask);
	uint8_t *frame = malloc(hl + total);
	if (!frame)
		return -1;
	memcpy(frame, h, hl);
	if (typed)
		frame[hl] = type;
	if (n)
		memcpy(frame + hl + (typed ? 1 : 0), p, n);
	ws_unmask(frame + hl, total, mask, 0);
	int r = send_all(fd, frame, hl + total);
	free(frame);
	return r;
}

static void send_resize(int fd)
{
	struct winsize w;
	if (ioctl(0, TIOCGWINSZ, &w) == 0 && w.ws_col && w.ws_row) {
		uint8_t p[4] = { (uint8_t)(w.ws_col >> 8), (uint8_t)w.ws_col, (uint8_t)(w.ws_row >> 8), (uint8_t)w.ws_row };
		ws_send(fd, WS_BINARY, 1, p, 4, true);
	}
}

static void pct(char *out, size_t n, const char *s)
{
	size_t o = 0;
	for (; *s && o + 4 < n; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~/", c))
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, n - o, "%%%02X", c);
	}
	out[o] = 0;
}

static int run_shell(const struct target *t, const char *session, const char *shell, const char *user,
		     json_t *cmd, const char *workdir)
{
	struct hc *h = malloc(sizeof *h);
	int rc;
	if (!h)
		return fail(111, "ERR_NOMEM", NULL, "out of memory");
	if ((rc = hc_connect(h, t))) {
		free(h);
		return rc;
	}
	char path[12000], q[8200];
	size_t pl;
	if (session) {
		pct(q, sizeof q, session);
		pl = (size_t)snprintf(path, sizeof path, "/ws/shell/%s?x=1", q);
	} else
		pl = (size_t)snprintf(path, sizeof path, "/ws/shell?x=1");
	struct winsize w;
	if (ioctl(0, TIOCGWINSZ, &w) == 0 && w.ws_col && w.ws_row)
		pl += (size_t)snprintf(path + pl, sizeof path - pl, "&cols=%u&rows=%u", w.ws_col, w.ws_row);
	const char *term = getenv("TERM");
	if (term && *term && strlen(term) < 60) {
		pct(q, sizeof q, term);
		pl += (size_t)snprintf(path + pl, sizeof path - pl, "&term=%s", q);
	}
	if (shell) {
		pct(q, sizeof q, shell);
		pl += (size_t)snprintf(path + pl, sizeof path - pl, "&shell=%s", q);
	}
	if (user) {
		pct(q, sizeof q, user);
		pl += (size_t)snprintf(path + pl, sizeof path - pl, "&user=%s", q);
	}
	if (workdir) {
		pct(q, sizeof q, workdir);
		pl += (size_t)snprintf(path + pl, sizeof path - pl, "&cwd=%s", q);
	}
	if (cmd) {
		char *cj = json_dumps(cmd, JSON_COMPACT);
		if (!cj || strlen(cj) > 2000) {
			free(cj);
			close(h->fd);
			free(h);
			return fail(VMSAN_EXIT_USAGE, "ERR_VALIDATION_CMD", NULL, "command too long for a terminal session");
		}
		pct(q, sizeof q, cj);
		free(cj);
		pl += (size_t)snprintf(path + pl, sizeof path - pl, "&cmd=%s", q);
	}
	uint8_t rawkey[16];
	char key[32], want[29], extra[256];
	if (getrandom(rawkey, sizeof rawkey, 0) != sizeof rawkey) {
		close(h->fd);
		free(h);
		return fail(111, "ERR_RANDOM", NULL, "getrandom failed");
	}
	base64_encode(rawkey, sizeof rawkey, key);
	ws_accept_key(key, want);
	snprintf(extra, sizeof extra, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
		 "Sec-WebSocket-Key: %s\r\n", key);
	/* GET with no body; hc_send_head adds Content-Length: 0 */
	char head[16000];
	int hn = snprintf(head, sizeof head, "GET %s HTTP/1.1\r\nHost: %s:%s\r\nAuthorization: Bearer %s\r\n%s\r\n",
			  path, t->host, t->port, t->token, extra);
	if (hn >= (int)sizeof head || send_all(h->fd, head, (size_t)hn) < 0) {
		rc = fail(1, "ERR_AGENT_PROTOCOL", NULL, "connect: cannot send the request");
		goto out;
	}
	if (hc_response(h) < 0) {
		rc = fail(1, h->ecode, NULL, "connect: %s", h->why);
		goto out;
	}
	if (h->status != 101) {
		rc = agent_error(h, "connect");
		goto out;
	}
	char acc[64];
	if (http_header(&h->hd, "sec-websocket-accept", acc, sizeof acc) < 0 || strcmp(acc, want)) {
		rc = fail(1, "ERR_AGENT_PROTOCOL", NULL, "connect: bad WebSocket handshake from the agent");
		goto out;
	}
	/* Frames follow in h->buf[pos..len) and on the socket. */
	bool tty = isatty(0);
	if (tty && tcgetattr(0, &saved_tio) == 0) {
		struct termios rawt = saved_tio;
		cfmakeraw(&rawt);
		if (tcsetattr(0, TCSAFLUSH, &rawt) == 0) {
			raw_on = true;
			atexit(restore_tty);
		}
	}
	if (pipe2(sigpipe_fds, O_CLOEXEC | O_NONBLOCK) == 0) {
		struct sigaction sa = { .sa_handler = on_signal };
		sigaction(SIGWINCH, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
		if (!tty)
			sigaction(SIGINT, &sa, NULL);
	}
	signal(SIGPIPE, SIG_IGN);
	ws_send(h->fd, WS_BINARY, 2, NULL, 0, true);   /* Ready */
	send_resize(h->fd);
	char sid[80] = "";
	if (session)
		snprintf(sid, sizeof sid, "%s", session);
	int exit_code = -1;
	bool destroyed = false, in_open = true, closed = false;
	uint8_t *msg = malloc(WS_MSG_MAX);
	size_t msglen = 0;
	char inb[16384];
	char bad[160] = "";   /* why we hang up on the agent */
	rc = 1;
	while (!closed && msg) {
		/* frames already buffered */
		for (;;) {
			struct ws_frame f;
			/* A frame is whole in h->buf before it is used, so it must
			 * fit there: WS_FRAME_MAX, well under the buffer. */
			int k = ws_parse_header((uint8_t *)h->buf + h->pos, h->len - h->pos, false, WS_FRAME_MAX, &f);
			if (k < 0) {
				if (k == -WS_CLOSE_TOO_BIG)
					snprintf(bad, sizeof bad, "the agent sent a WebSocket frame of more than %u bytes",
						 WS_FRAME_MAX);
				else
					snprintf(bad, sizeof bad, "the agent sent an invalid WebSocket frame (%d)", -k);
				closed = true;
				break;
			}
			if (k == 0 || h->len - h->pos < f.hdrlen + f.len) {
				if (h->pos && h->pos == h->len)
					h->pos = h->len = 0;
				else if (h->len == sizeof h->buf) {
					memmove(h->buf, h->buf + h->pos, h->len - h->pos);
					h->len -= h->pos;
					h->pos = 0;
				}
				break;
			}
			uint8_t *p = (uint8_t *)h->buf + h->pos + f.hdrlen;
			size_t n = (size_t)f.len;
			if (f.opcode == WS_BINARY || f.opcode == WS_CONT) {
				if (msglen + n > WS_MSG_MAX) {
					snprintf(bad, sizeof bad, "the agent sent a WebSocket message of more than %u bytes",
						 WS_MSG_MAX);
					closed = true;
					break;
				}
				memcpy(msg + msglen, p, n);
				msglen += n;
				if (f.fin) {
					if (msglen && msg[0] == 0)
						write_all_fd(1, (char *)msg + 1, msglen - 1);
					msglen = 0;
				}
			} else if (f.opcode == WS_TEXT) {
				json_t *j = json_loadb((char *)p, n, 0, NULL);
				const char *s = json_string_value(json_object_get(j, "sessionId"));
				if (token_ok(s, 32, "0123456789abcdef"))   /* we print it */
					snprintf(sid, sizeof sid, "%s", s);
				if (json_object_get(j, "exitCode"))
					exit_code = (int)json_integer_value(json_object_get(j, "exitCode"));
				json_decref(j);
			} else if (f.opcode == WS_PING) {
				ws_send(h->fd, WS_PONG, 0, p, n, false);
			} else if (f.opcode == WS_CLOSE) {
				destroyed = n >= 2 && n - 2 == strlen("session destroyed") &&
					    !memcmp(p + 2, "session destroyed", n - 2);
				uint8_t cc[2] = { 0x03, 0xe8 };
				ws_send(h->fd, WS_CLOSE, 0, cc, 2, false);
				closed = true;
			}
			h->pos += f.hdrlen + n;
			if (closed)
				break;
		}
		if (closed)
			break;
		struct pollfd pf[3] = { { .fd = h->fd, .events = POLLIN },
					{ .fd = sigpipe_fds[0], .events = POLLIN },
					{ .fd = in_open ? 0 : -1, .events = POLLIN } };
		if (poll(pf, 3, -1) < 0 && errno != EINTR)
			break;
		if (pf[1].revents) {
			char s;
			while (read(sigpipe_fds[0], &s, 1) == 1) {
				if (s == SIGWINCH)
					send_resize(h->fd);
				else if (s == SIGINT) {
					char c = 3;
					ws_send(h->fd, WS_BINARY, 0, &c, 1, true);
				} else {
					closed = true;   /* detach; the session lives on */
				}
			}
		}
		if (pf[2].revents) {
			ssize_t n = read(0, inb, sizeof inb);
			if (n > 0)
				ws_send(h->fd, WS_BINARY, 0, inb, (size_t)n, true);
			else if (n == 0 || errno != EINTR) {
				in_open = false;
				if (!tty) {
					/* Like a terminal's ^D at an empty line. */
					char eot = 4;
					ws_send(h->fd, WS_BINARY, 0, &eot, 1, true);
				}
			}
		}
		if (pf[0].revents) {
			ssize_t r = hc_fill(h);
			if (r <= 0)
				break;
		}
	}
	restore_tty();
	free(msg);
	if (bad[0]) {
		rc = fail(1, "ERR_AGENT_PROTOCOL", NULL, "connect: %s; disconnected%s%s", bad,
			  sid[0] ? ", the session may live on: " : "", sid);
	} else if (destroyed && exit_code >= 0)
		rc = exit_code;
	else if (destroyed)
		rc = 0;
	else {
		if (sid[0])
			fprintf(stderr, "\r\nvmsan: detached; resume this session with: vmsan connect %s --session %s\n",
				t->vm[0] ? t->vm : "<vm>", sid);
		rc = 0;
	}
out:
	close(h->fd);
	free(h);
	return rc;
}

/* ---- main ------------------------------------------------------------ */

/* fail() for exec's option errors, which also drops the env object. */
#define exec_fail(env, ...) (json_decref(env), fail(__VA_ARGS__))

static void usage(FILE *f)
{
	fprintf(f,
"usage: vmsan-agentctl [--json] (--vm ID | --agent HOST:PORT --token-file FILE) COMMAND ...\n"
"\n"
"  health\n"
"  shutdown             ask vmsan-init to stop the VM (processes stopped, disks synced)\n"
"  exec [-i] [-t] [-e K=V]... [-w DIR] [-u USER | --sudo] [--timeout SECONDS] [--detach] [--] CMD [ARG...]\n"
"  kill EXEC_ID [--signal SIG]\n"
"  shell [--session ID] [--shell PATH] [-u USER]\n"
"  sessions\n"
"  session-kill SESSION_ID\n"
"  upload [--dest DIR] [-u USER] [--preserve-owner] PATH...\n"
"  download [--dest PATH] [--max-bytes N] REMOTE_PATH\n"
"\n"
"The host side of vmsan-agent.  exec exits with the remote command's status\n"
"(124 when it timed out); shell with the shell's.  A token is never taken\n"
"on the command line: it is read from the VM's token file or --token-file.\n");
}

int main(int argc, char **argv)
{
	struct target t = { 0 };
	const char *vm = NULL, *agent = NULL, *tokfile = NULL;
	int i = 1;
	vmsan_prog = "vmsan-agentctl";
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--json"))
			json_out = true;
		else if (!strcmp(argv[i], "--vm") && i + 1 < argc)
			vm = argv[++i];
		else if (!strcmp(argv[i], "--agent") && i + 1 < argc)
			agent = argv[++i];
		else if (!strcmp(argv[i], "--token-file") && i + 1 < argc)
			tokfile = argv[++i];
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--summary")) {
			puts("plumbing: talk to a VM's guest agent (exec, shell, files)");
			return 0;
		} else if (!strcmp(argv[i], "--complete")) {
			puts("health\nshutdown\nexec\nkill\nshell\nsessions\nsession-kill\nupload\ndownload\n"
			     "--vm\n--agent\n--token-file\n--json\n--help\n--summary\n--version");
			return 0;
		} else if (!strcmp(argv[i], "--version")) {
			printf("vmsan-agentctl %s\n", VMSAN_VERSION);
			return 0;
		} else {
			fprintf(stderr, "vmsan-agentctl: unknown option %s\n", argv[i]);
			usage(stderr);
			return VMSAN_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return VMSAN_EXIT_USAGE;
	}
	const char *cmd = argv[i++];
	cmdname = cmd;
	if (!strcmp(cmd, "shell"))
		cmdname = "connect";
	int rc;
	if (vm) {
		if ((rc = target_from_vm(&t, vm)))
			return rc;
	} else if (agent && tokfile) {
		const char *colon = strrchr(agent, ':');
		if (!colon || colon == agent || strlen(colon + 1) >= sizeof t.port ||
		    (size_t)(colon - agent) >= sizeof t.host)
			return fail(VMSAN_EXIT_USAGE, "ERR_VALIDATION_AGENT", NULL, "--agent wants HOST:PORT");
		snprintf(t.host, sizeof t.host, "%.*s", (int)(colon - agent), agent);
		snprintf(t.port, sizeof t.port, "%s", colon + 1);
		if (read_token(AT_FDCWD, tokfile, t.token, sizeof t.token) < 0)
			return fail(1, "ERR_TOKEN", "the file must hold the agent's token (16+ characters)",
				    "cannot read a token from %s", tokfile);
	} else
		return fail(VMSAN_EXIT_USAGE, "ERR_USAGE", "see vmsan-agentctl --help",
			    "name the agent: --vm ID, or --agent HOST:PORT with --token-file FILE");

	int ac = argc - i + 1;
	char **av = argv + i - 1;   /* av[0] = command name, for getopt */
	optind = 1;
	opterr = 0;
	if (!strcmp(cmd, "health")) {
		if (ac != 1)
			return fail(VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "health takes no arguments");
		return simple_request(&t, "GET", "/health", NULL, "health");
	}
	if (!strcmp(cmd, "sessions"))
		return simple_request(&t, "GET", "/shell/sessions", NULL, "sessions");
	if (!strcmp(cmd, "shutdown")) {
		if (ac != 1)
			return fail(VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "shutdown takes no arguments");
		return simple_request(&t, "POST", "/shutdown", "", "shutdown");
	}
	if (!strcmp(cmd, "session-kill") || !strcmp(cmd, "kill")) {
		const char *sig = NULL;
		static const struct option lo[] = { { "signal", required_argument, 0, 's' }, { 0, 0, 0, 0 } };
		int c;
		while ((c = getopt_long(ac, av, "+s:", lo, NULL)) != -1) {
			if (c == 's')
				sig = optarg;
			else
				return fail(VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "unknown option %s", av[optind - 1]);
		}
		if (optind != ac - 1)
			return fail(VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "%s takes one id", cmd);
		const char *id = av[optind];
		for (const char *p = id; *p; p++)
			if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')) || strlen(id) > 64)
				return fail(VMSAN_EXIT_USAGE, "ERR_VALIDATION_ID", NULL, "'%s' is not an id", id);
		char path[128], body[96];
		if (!strcmp(cmd, "kill")) {
			snprintf(path, sizeof path, "/exec/%s/kill", id);
			json_t *b = json_pack("{s:s}", "signal", sig ? sig : "KILL");
			char *s = json_dumps(b, JSON_COMPACT);
			json_decref(b);
			snprintf(body, sizeof body, "%s", s ? s : "{}");
			free(s);
			return simple_request(&t, "POST", path, body, "kill");
		}
		snprintf(path, sizeof path, "/shell/sessions/%s/kill", id);
		return simple_request(&t, "POST", path, "", "session-kill");
	}
	if (!strcmp(cmd, "exec")) {
		struct exec_opts o = { .env = json_object() };
		static const struct option lo[] = {
			{ "env", required_argument, 0, 'e' }, { "workdir", required_argument, 0, 'w' },
			{ "user", required_argument, 0, 'u' }, { "sudo", no_argument, 0, 'S' },
			{ "timeout", required_argument, 0, 'T' }, { "interactive", no_argument, 0, 'i' },
			{ "tty", no_argument, 0, 't' }, { "detach", no_argument, 0, 'd' }, { 0, 0, 0, 0 } };
		int c;
		while ((c = getopt_long(ac, av, "+e:w:u:itd", lo, NULL)) != -1) {
			switch (c) {
			case 'e': {
				const char *eq = strchr(optarg, '=');
				if (!eq || eq == optarg)
					return exec_fail(o.env, VMSAN_EXIT_USAGE, "ERR_VALIDATION_ENV", "write --env NAME=VALUE",
						    "--env '%s' is not NAME=VALUE", optarg);
				char name[256];
				snprintf(name, sizeof name, "%.*s", (int)(eq - optarg), optarg);
				json_object_set_new(o.env, name, json_string(eq + 1));
				if (!json_object_get(o.env, name))
					return exec_fail(o.env, VMSAN_EXIT_USAGE, "ERR_VALIDATION_ENV", NULL,
						    "--env %s: the value is not valid UTF-8", name);
				break;
			}
			case 'w': o.workdir = optarg; break;
			case 'u': o.user = optarg; break;
			case 'S': o.user = "root"; break;
			case 'i': o.interactive = true; break;
			case 't': o.tty = true; break;
			case 'd': o.detach = true; break;
			case 'T': {
				char why[160];
				unsigned long long ms;
				char *end;
				double secs = strtod(optarg, &end);
				(void)why;
				if (end == optarg || *end || secs <= 0 || secs > 86400 * 365)
					return exec_fail(o.env, VMSAN_EXIT_USAGE, "ERR_VALIDATION_TIMEOUT", "give seconds, such as 30 or 0.5",
						    "--timeout '%s' is not a number of seconds", optarg);
				ms = (unsigned long long)(secs * 1000 + 0.5);
				o.timeout_ms = (long long)(ms ? ms : 1);
				break;
			}
			default:
				return exec_fail(o.env, VMSAN_EXIT_USAGE, "ERR_USAGE", "see vmsan exec --help", "unknown option %s",
					    av[optind - 1]);
			}
		}
		if (optind >= ac)
			return exec_fail(o.env, VMSAN_EXIT_USAGE, "ERR_USAGE", "usage: vmsan exec ID [--] CMD [ARG...]",
				    "no command given");
		if (o.workdir && o.workdir[0] != '/')
			return exec_fail(o.env, VMSAN_EXIT_USAGE, "ERR_VALIDATION_WORKDIR", NULL,
				    "--workdir must be an absolute path in the guest, not '%s'", o.workdir);
		o.argv = av + optind;
		o.argc = ac - optind;
		if (o.tty) {
			if (o.detach || json_out || o.timeout_ms || json_object_size(o.env))
				return exec_fail(o.env, VMSAN_EXIT_USAGE, "ERR_USAGE", NULL,
					    "-t cannot be combined with --detach, --json, --timeout or --env");
			json_t *argvj = json_array();
			for (int k = 0; k < o.argc; k++)
				json_array_append_new(argvj, json_string(o.argv[k]));
			rc = run_shell(&t, NULL, NULL, o.user, argvj, o.workdir);
			json_decref(argvj);
			json_decref(o.env);
			return rc;
		}
		if (o.detach && o.interactive)
			return exec_fail(o.env, VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "--detach cannot be combined with -i");
		rc = run_exec(&t, &o);
		json_decref(o.env);
		return rc;
	}
	if (!strcmp(cmd, "shell")) {
		const char *session = NULL, *shell = NULL, *user = NULL;
		static const struct option lo[] = { { "session", required_argument, 0, 's' },
			{ "shell", required_argument, 0, 'S' }, { "user", required_argument, 0, 'u' }, { 0, 0, 0, 0 } };
		int c;
		while ((c = getopt_long(ac, av, "+s:u:", lo, NULL)) != -1) {
			if (c == 's')
				session = optarg;
			else if (c == 'S')
				shell = optarg;
			else if (c == 'u')
				user = optarg;
			else
				return fail(VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "unknown option %s", av[optind - 1]);
		}
		if (optind != ac)
			return fail(VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "connect takes no arguments after its options");
		if (session) {
			for (const char *p = session; *p; p++)
				if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')) || strlen(session) != 32)
					return fail(VMSAN_EXIT_USAGE, "ERR_VALIDATION_SESSION", "session ids are 32 hex digits",
						    "'%s' is not a session id", session);
		}
		return run_shell(&t, session, shell, user, NULL, NULL);
	}
	if (!strcmp(cmd, "upload")) {
		const char *dest = NULL, *user = NULL;
		bool preserve = false;
		static const struct option lo[] = { { "dest", required_argument, 0, 'd' },
			{ "user", required_argument, 0, 'u' }, { "preserve-owner", no_argument, 0, 'p' }, { 0, 0, 0, 0 } };
		int c;
		/* Options may follow the paths (the usage puts --dest last); no
		 * command follows them to protect, unlike exec's. */
		while ((c = getopt_long(ac, av, "d:u:", lo, NULL)) != -1) {
			if (c == 'd')
				dest = optarg;
			else if (c == 'u')
				user = optarg;
			else if (c == 'p')
				preserve = true;
			else
				return fail(VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "unknown option %s", av[optind - 1]);
		}
		if (optind >= ac)
			return fail(VMSAN_EXIT_USAGE, "ERR_USAGE", "usage: vmsan upload ID PATH... [--dest DIR]",
				    "no file paths provided");
		return run_upload(&t, av + optind, ac - optind, dest, user, preserve);
	}
	if (!strcmp(cmd, "download")) {
		const char *dest = NULL;
		uint64_t max_bytes = UNTAR_MAX_BYTES_DEFAULT;
		static const struct option lo[] = { { "dest", required_argument, 0, 'd' },
			{ "max-bytes", required_argument, 0, 'M' }, { 0, 0, 0, 0 } };
		int c;
		while ((c = getopt_long(ac, av, "d:", lo, NULL)) != -1) {   /* options anywhere, as upload */
			if (c == 'd')
				dest = optarg;
			else if (c == 'M') {
				char *end;
				errno = 0;
				unsigned long long v = strtoull(optarg, &end, 10);
				if (end == optarg || *end || errno || v == 0 || optarg[0] == '-')
					return fail(VMSAN_EXIT_USAGE, "ERR_VALIDATION_MAX_BYTES", "give a number of bytes",
						    "--max-bytes '%s' is not a positive number", optarg);
				max_bytes = v;
			} else
				return fail(VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "unknown option %s", av[optind - 1]);
		}
		if (optind != ac - 1)
			return fail(VMSAN_EXIT_USAGE, "ERR_USAGE", "usage: vmsan download ID REMOTE_PATH [--dest PATH]",
				    "download takes one remote path");
		return run_download(&t, av[optind], dest, max_bytes);
	}
	return fail(VMSAN_EXIT_USAGE, "ERR_USAGE", "see vmsan-agentctl --help", "unknown command '%s'", cmd);
}
