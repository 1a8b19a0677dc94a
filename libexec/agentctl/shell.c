/* shell (vmsan connect), and exec -t: a terminal session in the guest
 * over a WebSocket (GET /ws/shell, or /ws/shell/ID to resume one).  Our
 * binary messages start with a type byte: 0 input, 1 a resize (columns
 * and rows, 16 bits each, big-endian), 2 ready; the agent's with 0 carry
 * the terminal's output.  Its text messages are JSON: the session's id,
 * its exit code.  A close "session destroyed" ends the session; any other
 * end detaches from it, and it lives on in the guest. */
#define _GNU_SOURCE
#include "agentctl/agentctl.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <termios.h>
#include <unistd.h>

#include "../proto/ws.h"

static struct termios saved_tio;
static bool raw_on;

static void restore_tty(void)
{
	if (raw_on) {
		tcsetattr(0, TCSAFLUSH, &saved_tio);
		raw_on = false;
	}
}

/* Our terminal raw while the session has it; restored at exit too. */
static void tty_raw(void)
{
	if (tcgetattr(0, &saved_tio) == 0) {
		struct termios rawt = saved_tio;
		cfmakeraw(&rawt);
		if (tcsetattr(0, TCSAFLUSH, &rawt) == 0) {
			raw_on = true;
			atexit(restore_tty);
		}
	}
}

/* One masked frame; typed: a binary message with its type byte first. */
static int ws_send(struct hc *h, int op, uint8_t type, const void *p, size_t n, bool typed)
{
	uint8_t fh[16], mask[4];
	if (getrandom(mask, 4, 0) != 4)
		memset(mask, 0x5a, 4);
	size_t total = n + (typed ? 1 : 0);
	size_t hl = ws_encode_header(fh, op, true, total, mask);
	uint8_t *frame = malloc(hl + total);
	if (!frame)
		return -1;
	memcpy(frame, fh, hl);
	if (typed)
		frame[hl] = type;
	if (n)
		memcpy(frame + hl + (typed ? 1 : 0), p, n);
	ws_unmask(frame + hl, total, mask, 0);
	int r = send_all(h, frame, hl + total);
	free(frame);
	return r;
}

static void send_resize(struct hc *h)
{
	struct winsize w;
	if (ioctl(0, TIOCGWINSZ, &w) == 0 && w.ws_col && w.ws_row) {
		uint8_t p[4] = { (uint8_t)(w.ws_col >> 8), (uint8_t)w.ws_col, (uint8_t)(w.ws_row >> 8),
				 (uint8_t)w.ws_row };
		ws_send(h, WS_BINARY, 1, p, 4, true);
	}
}

/* Percent-encoding for the query string; -1 when s does not fit. */
static int pct(char *out, size_t n, const char *s)
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
	return *s ? -1 : 0;
}

/* &name=value added to the query at *pl when there is a value; -1 when it
 * does not fit, which is refused: a value cut short could name another
 * user or directory. */
static int query_add(char *path, size_t n, size_t *pl, const char *name, const char *value)
{
	char q[8200];
	int k;

	if (!value)
		return 0;
	if (pct(q, sizeof q, value) < 0)
		return -1;
	k = snprintf(path + *pl, n - *pl, "&%s=%s", name, q);
	if (k < 0 || (size_t)k >= n - *pl)
		return -1;
	*pl += (size_t)k;
	return 0;
}

/* The session's path and query: which session, the terminal, and for
 * exec -t the command. */
static int shell_path(char *path, size_t n, const char *session, const char *shell, const char *user, json_t *cmd,
		      const char *workdir, struct verr *e)
{
	const char *term = getenv("TERM");
	char q[8200], *cj = NULL;
	struct winsize w;
	size_t pl;
	int rc = 0;

	if (cmd) {
		cj = json_dumps(cmd, JSON_COMPACT);
		if (!cj || strlen(cj) > 2000) {
			free(cj);
			return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_CMD", NULL,
					 "command too long for a terminal session");
		}
	}
	if (session) {
		pct(q, sizeof q, session); /* 32 hex digits */
		pl = (size_t)snprintf(path, n, "/ws/shell/%s?x=1", q);
	} else
		pl = (size_t)snprintf(path, n, "/ws/shell?x=1");
	if (ioctl(0, TIOCGWINSZ, &w) == 0 && w.ws_col && w.ws_row)
		pl += (size_t)snprintf(path + pl, n - pl, "&cols=%u&rows=%u", w.ws_col, w.ws_row);
	if (query_add(path, n, &pl, "term", term && *term && strlen(term) < 60 ? term : NULL) < 0 ||
	    query_add(path, n, &pl, "shell", shell) < 0 || query_add(path, n, &pl, "user", user) < 0 ||
	    query_add(path, n, &pl, "cwd", workdir) < 0 || query_add(path, n, &pl, "cmd", cj) < 0)
		rc = verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", NULL,
			       "the shell, user and working directory are too long for a terminal session");
	free(cj);
	return rc;
}

/* Every session (or connection) taken: nothing started, ask again. */
#define SHELL_BUSY (-2)

/* The upgrade to a WebSocket, its accept key checked: 0, -1 with e set,
 * SHELL_BUSY. */
static int shell_handshake(struct hc *h, const struct target *t, const char *path, const char *what, struct verr *e)
{
	uint8_t rawkey[16];
	char key[32], want[29], acc[64], head[16000];
	int hn;

	if (getrandom(rawkey, sizeof rawkey, 0) != sizeof rawkey)
		return verr_fail(e, VMSAN_EXIT_SYS, "ERR_RANDOM", NULL, "getrandom failed");
	base64_encode(rawkey, sizeof rawkey, key);
	ws_accept_key(key, want);
	/* Not hc_send_head's: an upgrade has no body and its own Connection. */
	hn = snprintf(head, sizeof head,
		      "GET %s HTTP/1.1\r\nHost: %s:%s\r\nAuthorization: Bearer %s\r\n"
		      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
		      "Sec-WebSocket-Key: %s\r\n\r\n",
		      path, t->host, t->port, t->token, key);
	if (hn >= (int)sizeof head)
		return verr_fail(e, 1, "ERR_AGENT_PROTOCOL", NULL, "%s: the request is too long", what);
	if (send_all(h, head, (size_t)hn) < 0 || hc_response(h) < 0)
		return hc_fail(h, what, e);
	/* 429: every session taken; 503: every connection, answered before
	 * the request is read.  Nothing was started. */
	if (h->status == 429 || h->status == 503) {
		free(hc_slurp(h, NULL));
		return SHELL_BUSY;
	}
	if (h->status != 101)
		return agent_error(h, what, e);
	if (http_header(&h->hd, "sec-websocket-accept", acc, sizeof acc) < 0 || strcmp(acc, want))
		return verr_fail(e, 1, "ERR_AGENT_PROTOCOL", NULL, "%s: bad WebSocket handshake from the agent", what);
	return 0;
}

/* ---- the session ----------------------------------------------------- */

struct shell_run {
	struct hc *h; /* frames in h->buf[pos..len), and on the socket */
	bool tty;     /* our stdin is a terminal */
	uint8_t *msg; /* the binary message being put together */
	size_t msglen;
	char sid[80]; /* the session's id, to resume it */
	int exit_code;
	bool destroyed, in_open, closed;
	char bad[160]; /* why we hang up on the agent */
};

static void shell_frame(struct shell_run *s, const struct ws_frame *f, uint8_t *p, size_t n)
{
	if (f->opcode == WS_BINARY || f->opcode == WS_CONT) {
		if (s->msglen + n > WS_MSG_MAX) {
			snprintf(s->bad, sizeof s->bad, "the agent sent a WebSocket message of more than %u bytes",
				 WS_MSG_MAX);
			s->closed = true;
			return;
		}
		memcpy(s->msg + s->msglen, p, n);
		s->msglen += n;
		if (f->fin) {
			if (s->msglen && s->msg[0] == 0)
				write_all_fd(1, (char *)s->msg + 1, s->msglen - 1);
			s->msglen = 0;
		}
	} else if (f->opcode == WS_TEXT) {
		json_t *j = json_loadb((char *)p, n, 0, NULL);
		const char *id = json_string_value(json_object_get(j, "sessionId"));
		if (token_ok(id, 32, "0123456789abcdef")) /* we print it */
			snprintf(s->sid, sizeof s->sid, "%s", id);
		if (json_object_get(j, "exitCode"))
			s->exit_code = (int)json_integer_value(json_object_get(j, "exitCode"));
		json_decref(j);
	} else if (f->opcode == WS_PING) {
		ws_send(s->h, WS_PONG, 0, p, n, false);
	} else if (f->opcode == WS_CLOSE) {
		static const uint8_t cc[2] = { 0x03, 0xe8 };
		s->destroyed =
			n >= 2 && n - 2 == strlen("session destroyed") && !memcmp(p + 2, "session destroyed", n - 2);
		ws_send(s->h, WS_CLOSE, 0, cc, 2, false);
		s->closed = true;
	}
}

/* The frames already buffered, each used once it is whole. */
static void shell_frames(struct shell_run *s)
{
	struct hc *h = s->h;
	struct ws_frame f;
	int k;

	while (!s->closed) {
		/* A frame is whole in h->buf before it is used, so it must
		 * fit there: WS_FRAME_MAX, well under the buffer. */
		k = ws_parse_header((uint8_t *)h->buf + h->pos, h->len - h->pos, false, WS_FRAME_MAX, &f);
		if (k < 0) {
			if (k == -WS_CLOSE_TOO_BIG)
				snprintf(s->bad, sizeof s->bad,
					 "the agent sent a WebSocket frame of more than %u bytes", WS_FRAME_MAX);
			else
				snprintf(s->bad, sizeof s->bad, "the agent sent an invalid WebSocket frame (%d)", -k);
			s->closed = true;
			return;
		}
		if (k == 0 || h->len - h->pos < f.hdrlen + f.len) {
			if (h->pos && h->pos == h->len)
				h->pos = h->len = 0;
			else if (h->len == sizeof h->buf) {
				memmove(h->buf, h->buf + h->pos, h->len - h->pos);
				h->len -= h->pos;
				h->pos = 0;
			}
			return;
		}
		shell_frame(s, &f, (uint8_t *)h->buf + h->pos + f.hdrlen, (size_t)f.len);
		h->pos += f.hdrlen + (size_t)f.len;
	}
}

/* SIGWINCH a resize; SIGINT (stdin not a terminal) a ^C; SIGTERM,
 * SIGHUP detach, and the session lives on. */
static void shell_on_signals(struct shell_run *s)
{
	char sig;

	while (read(sigpipe_fds[0], &sig, 1) == 1) {
		if (sig == SIGWINCH)
			send_resize(s->h);
		else if (sig == SIGINT) {
			char c = 3;
			ws_send(s->h, WS_BINARY, 0, &c, 1, true);
		} else {
			s->closed = true;
		}
	}
}

static void shell_on_stdin(struct shell_run *s)
{
	char inb[16384];
	ssize_t n = read(0, inb, sizeof inb);

	if (n > 0)
		ws_send(s->h, WS_BINARY, 0, inb, (size_t)n, true);
	else if (n == 0 || errno != EINTR) {
		s->in_open = false;
		if (!s->tty) {
			/* Like a terminal's ^D at an empty line. */
			char eot = 4;
			ws_send(s->h, WS_BINARY, 0, &eot, 1, true);
		}
	}
}

/* Until the session ends, we detach, or the agent goes: a VM that dies
 * sends nothing, so its VMM is looked at each second without a byte (and
 * by each wait to send, in conn.c). */
static void shell_loop(struct shell_run *s)
{
	struct pollfd pf[3];
	int pr;

	while (!s->closed && s->msg && !hc_crashed(s->h)) {
		shell_frames(s);
		if (s->closed)
			break;
		pf[0] = (struct pollfd){ .fd = s->h->fd, .events = POLLIN };
		pf[1] = (struct pollfd){ .fd = sigpipe_fds[0], .events = POLLIN };
		pf[2] = (struct pollfd){ .fd = s->in_open ? 0 : -1, .events = POLLIN };
		pr = poll(pf, 3, 1000);
		if (pr < 0 && errno != EINTR)
			break;
		if (pr == 0 && hc_vmm_gone(s->h))
			break;
		if (pr <= 0)
			continue;
		if (pf[1].revents)
			shell_on_signals(s);
		if (pf[2].revents)
			shell_on_stdin(s);
		if (pf[0].revents && hc_fill(s->h) <= 0)
			break;
	}
}

/* How the session ended, as our exit status. */
static int shell_end(const struct shell_run *s, const struct target *t, const char *what, struct verr *e)
{
	if (hc_crashed(s->h)) {
		if (s->tty)
			fputs("\r\n", stderr); /* after the session's last line */
		return hc_fail(s->h, what, e);
	}
	if (s->bad[0])
		return verr_fail(e, 1, "ERR_AGENT_PROTOCOL", NULL, "%s: %s; disconnected%s%s", what, s->bad,
				 s->sid[0] ? ", the session may live on: " : "", s->sid);
	if (s->destroyed)
		return s->exit_code >= 0 ? s->exit_code : 0;
	if (s->sid[0])
		fprintf(stderr, "\r\nvmsan: detached; resume this session with: vmsan connect %s --session %s\n",
			t->vm[0] ? t->vm : "<vm>", s->sid);
	return 0;
}

/* The session's connection, upgraded.  The agent runs so many sessions
 * at once (vmsan-agent --max-sessions) and answers 429 past that: as
 * exec does, the upgrade is asked again, 50 ms apart doubling to 1 s,
 * until a session is free; the wait is said once on a terminal, and a
 * signal ends it (128+N).  NULL with e set. */
static struct hc *shell_open(const struct target *t, const char *path, bool is_exec, struct verr *e)
{
	const char *what = is_exec ? "exec" : "connect";

	for (int delay = 50;; delay = delay < 1000 ? delay * 2 : 1000) {
		struct hc *h = hc_open(t, e);
		int rc;

		if (!h)
			return NULL;
		h->job = is_exec ? "command" : "session";
		rc = shell_handshake(h, t, path, what, e);
		if (rc == 0)
			return h;
		hc_close(h);
		if (rc != SHELL_BUSY)
			return NULL;
		if (delay == 50 && isatty(2))
			fprintf(stderr,
				"vmsan %s: the agent runs as many terminal sessions as it may; waiting for one\n",
				what);
		if (busy_wait(delay, 0, what, is_exec ? "the command did not run" : "no session was started", e) < 0)
			return NULL;
	}
}

int run_shell(const struct target *t, const char *session, const char *shell, const char *user, json_t *cmd,
	      const char *workdir, struct verr *e)
{
	/* SIGINT only when stdin is no terminal: a raw one sends ^C as a byte. */
	static const int sigs[] = { SIGWINCH, SIGTERM, SIGHUP, SIGINT };
	struct shell_run s = { .exit_code = -1, .in_open = true };
	char path[12000];
	int rc;

	/* Usage first: options too long are refused without the agent. */
	if (shell_path(path, sizeof path, session, shell, user, cmd, workdir, e) < 0)
		return -1;
	s.tty = isatty(0);
	sigpipe_open(sigs, s.tty ? 3 : 4); /* before the wait for a session */
	s.h = shell_open(t, path, cmd != NULL, e);
	if (!s.h)
		return -1;
	if (s.tty)
		tty_raw();
	ws_send(s.h, WS_BINARY, 2, NULL, 0, true); /* Ready */
	send_resize(s.h);
	if (session)
		snprintf(s.sid, sizeof s.sid, "%s", session);
	s.msg = malloc(WS_MSG_MAX);
	shell_loop(&s);
	restore_tty();
	free(s.msg);
	rc = shell_end(&s, t, cmd ? "exec" : "connect", e);
	hc_close(s.h);
	return rc;
}

static const struct option shell_lo[] = { { "session", required_argument, 0, 's' },
					  { "shell", required_argument, 0, 'S' },
					  { "user", required_argument, 0, 'u' },
					  { 0, 0, 0, 0 } };
const struct cmd_opts shell_opts = { "+s:u:", shell_lo };

/* shell [--session ID] [--shell PATH] [-u USER] */
int cmd_shell(const struct target *t, int ac, char **av, struct verr *e)
{
	const char *session = NULL, *shell = NULL, *user = NULL;
	int c;

	while ((c = getopt_long(ac, av, shell_opts.shortopts, shell_opts.longopts, NULL)) != -1) {
		if (c == 's')
			session = optarg;
		else if (c == 'S')
			shell = optarg;
		else if (c == 'u')
			user = optarg;
		else
			return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "unknown option %s", av[optind - 1]);
	}
	if (optind != ac)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", NULL,
				 "connect takes no arguments after its options");
	if (session) {
		for (const char *p = session; *p; p++)
			if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')) || strlen(session) != 32)
				return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_SESSION",
						 "session ids are 32 hex digits", "'%s' is not a session id", session);
	}
	return run_shell(t, session, shell, user, NULL, NULL, e);
}
