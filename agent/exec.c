/* POST /exec and POST /exec/{id}/kill.
 *
 * The command runs in its own session (so kill and timeout reach its whole
 * process group), as the requested user, with an environment built from
 * the image's and the request's (never the agent's).  Output is streamed
 * as NDJSON events as it is produced; stdin, when asked for, is the rest
 * of the request body after the JSON object.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "spawn.h"
#include "../proto/ws.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

struct slot {
	bool used;
	char id[17];
	pid_t pid;
};
static struct slot *slots;
static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;

void exec_init(void)
{
	slots = calloc((size_t)cfg.max_execs, sizeof *slots);
	if (!slots)
		abort();
}

static int slot_take(char id[17])
{
	pthread_mutex_lock(&slots_mu);
	int k = -1;
	for (int i = 0; i < cfg.max_execs; i++)
		if (!slots[i].used) {
			slots[i].used = true;
			slots[i].pid = 0;
			random_hex(slots[i].id, 16);
			memcpy(id, slots[i].id, 17);
			k = i;
			break;
		}
	pthread_mutex_unlock(&slots_mu);
	return k;
}

static void slot_set(int k, pid_t pid)
{
	pthread_mutex_lock(&slots_mu);
	slots[k].pid = pid;
	pthread_mutex_unlock(&slots_mu);
}

static void slot_free(int k)
{
	pthread_mutex_lock(&slots_mu);
	slots[k].used = false;
	slots[k].pid = 0;
	pthread_mutex_unlock(&slots_mu);
}

/* ---- events ---------------------------------------------------------- */

static void ev_begin(struct buf *ev, const char *type)
{
	buf_printf(ev, "{\"type\":\"%s\"", type);
}

static void ev_end(struct buf *ev)
{
	char ts[64];
	ts_now(ts);
	buf_printf(ev, ",\"ts\":\"%s\"}\n", ts);
}

struct ostream {
	int fd;
	const char *type;
	uint8_t carry[4];
	size_t carrylen;
	bool eof;
};

/* Index of the first byte that is not part of a valid UTF-8 sequence;
 * *partial when that byte starts a sequence cut short by the end. */
static size_t utf8_valid(const uint8_t *p, size_t n, bool *partial)
{
	size_t i = 0;
	*partial = false;
	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t k = p[i] >= 0xf0 ? 4 : p[i] >= 0xe0 ? 3 : 2;
		uint32_t st = ws_utf8_step(WS_UTF8_ACCEPT, p + i, n - i < k ? n - i : k);
		if (st == WS_UTF8_REJECT)
			return i;
		if (st != WS_UTF8_ACCEPT) { /* ran out of bytes */
			*partial = n - i < k;
			return i;
		}
		i += k;
	}
	return n;
}

static void emit_data(struct buf *ev, const char *type, const uint8_t *p, size_t n, bool b64)
{
	if (!n)
		return;
	ev_begin(ev, type);
	if (b64) {
		buf_puts(ev, ",\"b64\":\"");
		if (buf_reserve(ev, 4 * (n + 2) / 3 + 8) == 0) {
			ev->len += base64_encode(p, n, ev->p + ev->len);
		}
		buf_puts(ev, "\"");
	} else {
		buf_puts(ev, ",\"data\":");
		buf_jstr(ev, (const char *)p, n);
	}
	ev_end(ev);
}

/* Read what the pipe has and turn it into an event; returns bytes read,
 * 0 at EOF. */
static ssize_t pump_output(struct ostream *os, uint8_t *buf, size_t cap, struct buf *ev)
{
	memcpy(buf, os->carry, os->carrylen);
	ssize_t r = read(os->fd, buf + os->carrylen, cap - os->carrylen);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return -2;
	if (r <= 0) {
		os->eof = true;
		/* An incomplete sequence at the very end is not text. */
		emit_data(ev, os->type, buf, os->carrylen, true);
		os->carrylen = 0;
		return 0;
	}
	size_t n = os->carrylen + (size_t)r;
	bool partial;
	size_t ok = utf8_valid(buf, n, &partial);
	os->carrylen = 0;
	if (ok == n) {
		emit_data(ev, os->type, buf, n, false);
	} else if (partial) {
		emit_data(ev, os->type, buf, ok, false);
		os->carrylen = n - ok;
		memcpy(os->carry, buf + ok, os->carrylen);
	} else {
		emit_data(ev, os->type, buf, n, true);
	}
	return r;
}

static void *reap_detached(void *arg)
{
	long v = (long)arg;
	pid_t pid = (pid_t)(v >> 16);
	int k = (int)(v & 0xffff);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	slot_free(k);
	return NULL;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *known[] = { "cmd", "args", "cwd", "env", "timeoutMs", "detached", "user", "stdin", NULL };

static _Thread_local struct buf raw_keep; /* see handle_exec */

void exec_worker_exit(void)
{
	buf_free(&raw_keep);
}

/* One POST /exec, from its request to its last event. */
struct exec_run {
	struct conn *c;
	struct body *b;
	struct buf raw; /* the request; stdin's first bytes follow the JSON */
	struct jarena a;
	size_t jend; /* where the JSON object ends in raw */
	/* the request, checked */
	struct jv *req, *args, *cwdv, *userv;
	char *cmd;
	long long timeout;
	bool detached, want_stdin;
	/* what the command runs with */
	struct user u;
	char **argv, **envp;
	char path[4096];
	const char *cwd;
	/* the command */
	char id[17];
	int k; /* its slot, -1 for none */
	pid_t pid;
	int pin[2], pout[2], perr[2], rep[2], pidfd;
	char err[200];
};

/* Read the body up to the end of its JSON object (with "stdin":true the
 * rest is stdin); 0, or -1 with the error answered. */
static int read_request(struct exec_run *x)
{
	struct conn *c = x->c;
	struct buf *raw = &x->raw;
	for (;;) {
		if (buf_reserve(raw, 65536) < 0) {
			respond_error(c, 500, "out of memory");
			return -1;
		}
		ssize_t r = body_read(x->b, raw->p + raw->len, 65536);
		if (r < 0) {
			c->close_after = true;
			respond_error(c, 400, "malformed request body");
			return -1;
		}
		if (r > 0) {
			bool close_seen = memchr(raw->p + raw->len, '}', (size_t)r) != NULL;
			raw->len += (size_t)r;
			if (!close_seen && raw->len <= (1 << 20))
				continue;
		}
		json_free(&x->a);
		x->req = json_parse(raw->p, raw->len, &x->jend, &x->a, x->err, sizeof x->err);
		if (x->req)
			return 0;
		if (r == 0) {
			respond_error(c, 400, raw->len ? "invalid JSON: %s" : "a JSON request body is required",
				      x->err);
			return -1;
		}
		if (raw->len > (1 << 20)) {
			c->close_after = true;
			respond_error(c, 413, "exec request over 1 MiB");
			return -1;
		}
	}
}

/* Parse and check the request; 0, or -1 with the error answered. */
static int parse_request(struct exec_run *x)
{
	struct conn *c = x->c;
	if (read_request(x) < 0)
		return -1;
	struct jv *req = x->req;
	if (req->t != J_OBJ) {
		respond_error(c, 400, "the request body must be a JSON object");
		return -1;
	}
	for (struct jv *m = req->child; m; m = m->next) {
		int i = 0;
		while (known[i] && strcmp(known[i], m->key))
			i++;
		if (!known[i]) {
			respond_error(c, 400,
				      "unknown field '%.60s' (known: cmd, args, cwd, env, timeoutMs, "
				      "detached, user, stdin)",
				      m->key);
			return -1;
		}
	}
	struct jv *cmd = json_get(req, "cmd"), *args = json_get(req, "args");
	struct jv *cwdv = json_get(req, "cwd"), *userv = json_get(req, "user");
	struct jv *det = json_get(req, "detached"), *stdinv = json_get(req, "stdin");
	if (!cmd || cmd->t != J_STR || !cmd->s[0]) {
		respond_error(c, 400, "cmd is required (a non-empty string)");
		return -1;
	}
	if (args && (args->t != J_ARR || args->n > 65536)) {
		respond_error(c, 400, "args must be an array of strings");
		return -1;
	}
	for (struct jv *v = args ? args->child : NULL; v; v = v->next)
		if (v->t != J_STR) {
			respond_error(c, 400, "args must be an array of strings");
			return -1;
		}
	if ((cwdv && (cwdv->t != J_STR || cwdv->s[0] != '/')) || (userv && userv->t != J_STR)) {
		respond_error(c, 400, "cwd must be an absolute path and user a string");
		return -1;
	}
	if ((det && det->t != J_BOOL) || (stdinv && stdinv->t != J_BOOL)) {
		respond_error(c, 400, "detached and stdin must be true or false");
		return -1;
	}
	if (json_int(req, "timeoutMs", 0, 1LL << 40, &x->timeout) < 0) {
		respond_error(c, 400, "timeoutMs must be a whole number of milliseconds >= 0");
		return -1;
	}
	x->detached = det && det->b;
	x->want_stdin = stdinv && stdinv->b;
	if (x->detached && x->want_stdin) {
		respond_error(c, 400, "a detached command cannot take stdin");
		return -1;
	}
	if (!x->want_stdin) {
		size_t e = x->jend;
		while (e < x->raw.len && strchr(" \t\r\n", x->raw.p[e]))
			e++;
		if (e != x->raw.len || !x->b->done) {
			c->close_after = true;
			respond_error(c, 400, "data after the JSON object (set \"stdin\":true to send stdin)");
			return -1;
		}
	}
	x->cmd = cmd->s;
	x->args = args;
	x->cwdv = cwdv;
	x->userv = userv;
	return 0;
}

/* A command that never ran: an error event, then its exit code. */
static void stream_failure(struct conn *c, const char *msg, int code)
{
	struct buf ev = { 0 };
	stream_begin(c, 200, "application/x-ndjson");
	ev_begin(&ev, "error");
	buf_puts(&ev, ",\"error\":");
	buf_jstr(&ev, msg, strlen(msg));
	ev_end(&ev);
	ev_begin(&ev, "exit");
	buf_printf(&ev, ",\"exitCode\":%d", code);
	ev_end(&ev);
	stream_chunk(c, ev.p, ev.len);
	stream_end(c);
	buf_free(&ev);
}

/* The user, environment, argv and program; 0, or -1 with the answer
 * (an error, or a stream ending in 126 or 127) given. */
static int prepare(struct exec_run *x)
{
	struct conn *c = x->c;
	if (user_resolve(x->userv ? x->userv->s : NULL, &x->u, x->err, sizeof x->err) < 0) {
		respond_error(c, 400, "resolve user: %s", x->err);
		return -1;
	}
	if (!(x->envp = env_build(&x->u, json_get(x->req, "env"), NULL, x->err, sizeof x->err))) {
		respond_error(c, 400, "%s", x->err);
		return -1;
	}
	size_t nargs = x->args ? x->args->n : 0;
	x->argv = calloc(nargs + 2, sizeof *x->argv);
	if (!x->argv) {
		respond_error(c, 500, "out of memory");
		return -1;
	}
	x->argv[0] = x->cmd;
	size_t ai = 1;
	for (struct jv *v = x->args ? x->args->child : NULL; v; v = v->next)
		x->argv[ai++] = v->s;
	x->cwd = x->cwdv ? x->cwdv->s : x->u.home;
	if (path_search(x->cmd, env_get(x->envp, "PATH"), x->path, sizeof x->path) < 0) {
		/* Like a shell: 127 not found, 126 found but not executable. */
		int code = errno == EACCES ? 126 : 127;
		snprintf(x->err, sizeof x->err, "%s: %s", x->cmd,
			 code == 127 ? "command not found" : "permission denied");
		stream_failure(c, x->err, code);
		return -1;
	}
	return 0;
}

/* Take a slot and start the command; 0, or -1 with the answer given. */
static int spawn_command(struct exec_run *x)
{
	struct conn *c = x->c;
	if ((x->k = slot_take(x->id)) < 0) {
		respond_error(c, 429, "too many concurrent commands (limit %d)", cfg.max_execs);
		return -1;
	}
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0 || pipe2(x->rep, O_CLOEXEC) < 0 ||
	    (!x->detached && (pipe2(x->pout, O_CLOEXEC) < 0 || pipe2(x->perr, O_CLOEXEC) < 0)) ||
	    (x->want_stdin && pipe2(x->pin, O_CLOEXEC) < 0)) {
		if (devnull >= 0)
			close(devnull);
		respond_error(c, 500, "pipe: %s", strerror(errno));
		return -1;
	}
	struct child_args ca = {
		.u = &x->u,
		.cwd = x->cwd,
		.path = x->path,
		.cwd_explicit = x->cwdv != NULL,
		.argv = x->argv,
		.envp = x->envp,
		.in = x->want_stdin ? x->pin[0] : devnull,
		.out = x->detached ? devnull : x->pout[1],
		.err = x->detached ? devnull : x->perr[1],
		.rep = x->rep[1],
	};
	pid_t pid = spawn(&ca);
	int fork_errno = errno;
	close(devnull);
	close(x->rep[1]);
	x->rep[1] = -1;
	if (pid < 0) {
		respond_error(c, 500, "clone: %s", strerror(fork_errno));
		return -1;
	}
	struct spawn_err se;
	ssize_t rn;
	while ((rn = read(x->rep[0], &se, sizeof se)) < 0 && errno == EINTR)
		;
	if (rn == (ssize_t)sizeof se) {
		int st;
		waitpid(pid, &st, 0);
		const char *what = se.stage == STAGE_CHDIR   ? "cannot change to directory"
				   : se.stage == STAGE_CREDS ? "cannot switch user"
				   : se.stage == STAGE_FDS   ? "cannot set up stdio"
							     : "cannot execute";
		int code = se.stage == STAGE_EXEC && se.err == ENOENT ? 127 : 126;
		snprintf(x->err, sizeof x->err, "%.60s: %s %.80s: %s", x->cmd, what,
			 se.stage == STAGE_CHDIR ? x->cwd : x->path, strerror(se.err));
		stream_failure(c, x->err, code);
		return -1;
	}
	x->pid = pid;
	slot_set(x->k, pid);
	return 0;
}

/* A detached command: its "started" event ends the stream, and a thread
 * reaps it and frees its slot. */
static void run_detached(struct exec_run *x, struct buf *ev)
{
	stream_chunk(x->c, ev->p, ev->len);
	stream_end(x->c);
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 64 * 1024);
	if (pthread_create(&t, &at, reap_detached, (void *)((long)x->pid << 16 | x->k)) == 0)
		x->k = -1; /* the reaper frees the slot */
	else {
		int st;
		waitpid(x->pid, &st, 0);
	}
}

/* ---- streaming ------------------------------------------------------- */

/* Per worker thread and kept: malloc would map and unmap 64 KiB blocks
 * on every command (a TLB shootdown each time). */
static _Thread_local uint8_t obuf[65536 + 4];
static _Thread_local char inbuf[65536];

/* A running command's stream: its output pipes, stdin still to write,
 * and what is known of its end. */
struct pump {
	struct ostream so, se;
	char *pend; /* stdin bytes read, not yet written */
	size_t pendlen;
	bool in_open, body_eof, conn_watch;
	bool exited, timed_out, gone;
	int status;
	int64_t deadline, exit_at;
	struct buf ev; /* events not yet sent */
};

/* Read the next stdin bytes from the body into the pump. */
static void read_stdin(struct exec_run *x, struct pump *p)
{
	struct body *b = x->b;
	ssize_t r = body_read_some(b, inbuf, 65536);
	if (r > 0) {
		p->pend = inbuf;
		p->pendlen = (size_t)r;
		p->body_eof = b->done && !b->dlen;
	} else if (r == 0)
		p->body_eof = true;
	else if (r == -1)
		p->gone = true;
}

/* Move what stdin has to the command's pipe, as far as it goes without
 * waiting. */
static void feed_stdin(struct exec_run *x, struct pump *p)
{
	struct conn *c = x->c;
	struct body *b = x->b;
	if (p->in_open && !p->pendlen && !p->body_eof && (c->rpos < c->rlen || b->dlen))
		read_stdin(x, p);
	if (p->in_open && p->pendlen) {
		ssize_t w = write(x->pin[1], p->pend, p->pendlen);
		if (w > 0) {
			p->pend += w;
			p->pendlen -= (size_t)w;
		} else if (w < 0 && errno == EPIPE) {
			close(x->pin[1]);
			x->pin[1] = -1;
			p->in_open = false;
			p->pendlen = 0;
		}
	}
	if (p->in_open && !p->pendlen && p->body_eof) {
		close(x->pin[1]);
		x->pin[1] = -1;
		p->in_open = false;
	}
	if (!p->in_open && x->want_stdin && !p->body_eof && !p->pendlen) {
		/* The command closed stdin: discard the rest of it. */
		ssize_t r = (c->rpos < c->rlen || b->dlen) ? body_read_some(b, inbuf, 65536) : -2;
		if (r == 0)
			p->body_eof = true;
		else if (r == -1)
			p->gone = true;
	}
}

/* What one poll waits for, and where each descriptor is in pf. */
struct pollset {
	struct pollfd pf[5];
	int np, iso, ise, ipid, iconn;
	bool want_body;
};

/* Wait for the next thing to do; false when the stream is over. */
static bool wait_events(struct exec_run *x, struct pump *p, struct pollset *ps)
{
	struct conn *c = x->c;
	*ps = (struct pollset){ .iso = -1, .ise = -1, .ipid = -1, .iconn = -1 };
	if (!p->so.eof) {
		ps->iso = ps->np;
		ps->pf[ps->np++] = (struct pollfd){ .fd = p->so.fd, .events = POLLIN };
	}
	if (!p->se.eof) {
		ps->ise = ps->np;
		ps->pf[ps->np++] = (struct pollfd){ .fd = p->se.fd, .events = POLLIN };
	}
	if (!p->exited && x->pidfd >= 0) {
		ps->ipid = ps->np;
		ps->pf[ps->np++] = (struct pollfd){ .fd = x->pidfd, .events = POLLIN };
	}
	ps->want_body = x->want_stdin && !p->body_eof && !p->pendlen;
	if (ps->want_body || (p->body_eof && p->conn_watch)) {
		ps->iconn = ps->np;
		ps->pf[ps->np++] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
	}
	if (p->in_open && p->pendlen)
		ps->pf[ps->np++] = (struct pollfd){ .fd = x->pin[1], .events = POLLOUT };
	int64_t now = now_ms(), wait = -1;
	if (p->deadline && !p->timed_out)
		wait = p->deadline > now ? p->deadline - now : 0;
	if (p->exited) {
		/* Output still held by the command's children is read for
		 * a moment after it exits, then the stream ends. */
		int64_t left = p->exit_at + 200 - now;
		if (left < 0 || (p->so.eof && p->se.eof))
			return false;
		wait = left;
	}
	/* Body bytes already in our buffer make no poll event: go round. */
	if (ps->want_body && (c->rpos < c->rlen || x->b->dlen))
		wait = 0;
	if (x->pidfd < 0 && !p->exited) { /* no pidfd: poll for exit */
		if (wait < 0 || wait > 20)
			wait = 20;
	}
	int pr = poll(ps->pf, (nfds_t)ps->np, (int)wait);
	return !(pr < 0 && errno != EINTR);
}

/* Act on what the poll found: the deadline, output, the exit, the
 * client's socket; then send the events gathered. */
static void handle_events(struct exec_run *x, struct pump *p, const struct pollset *ps)
{
	struct conn *c = x->c;
	if (p->deadline && !p->timed_out && now_ms() >= p->deadline) {
		kill(-x->pid, SIGKILL);
		kill(x->pid, SIGKILL);
		p->timed_out = true;
		ev_begin(&p->ev, "timeout");
		buf_printf(&p->ev, ",\"timeoutMs\":%lld", x->timeout);
		ev_end(&p->ev);
	}
	if (ps->iso >= 0 && ps->pf[ps->iso].revents)
		pump_output(&p->so, obuf, 65536 + 4, &p->ev);
	if (ps->ise >= 0 && ps->pf[ps->ise].revents)
		pump_output(&p->se, obuf, 65536 + 4, &p->ev);
	if (!p->exited && ((ps->ipid >= 0 && ps->pf[ps->ipid].revents) || x->pidfd < 0)) {
		pid_t w = waitpid(x->pid, &p->status, WNOHANG);
		if (w == x->pid) {
			p->exited = true;
			p->exit_at = now_ms();
		}
	}
	if (ps->iconn >= 0 && ps->pf[ps->iconn].revents) {
		if (ps->want_body)
			read_stdin(x, p);
		else {
			char ch;
			ssize_t r = recv(c->fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
			if (r == 0 || (r < 0 && errno != EAGAIN))
				p->gone = true; /* the client went away */
			else
				p->conn_watch = false; /* pipelined bytes: not ours */
		}
	}
	if (p->ev.len) {
		if (stream_chunk(c, p->ev.p, p->ev.len) < 0)
			p->gone = true;
		p->ev.len = 0;
	}
}

/* The last events: output already in the pipes, output held back, then
 * the exit.  The window after the exit (wait_events) waits for output of
 * children that outlive the command; what the command itself wrote is in
 * the pipe before its exit is seen, and is read here whatever the window
 * did: a guest descheduled past the window (TCG on a loaded host) must
 * not lose it.  At most 16 pipe-fulls, so a child that keeps writing
 * cannot hold the exit back. */
static void stream_exit(struct exec_run *x, struct pump *p)
{
	struct buf *ev = &p->ev;
	for (int k = 0; k < 16 && !p->so.eof && pump_output(&p->so, obuf, sizeof obuf, ev) > 0; k++)
		;
	for (int k = 0; k < 16 && !p->se.eof && pump_output(&p->se, obuf, sizeof obuf, ev) > 0; k++)
		;
	if (!p->so.eof || p->so.carrylen)
		emit_data(ev, "stdout", p->so.carry, p->so.carrylen, true);
	if (!p->se.eof || p->se.carrylen)
		emit_data(ev, "stderr", p->se.carry, p->se.carrylen, true);
	ev_begin(ev, "exit");
	if (WIFSIGNALED(p->status)) {
		int sig = WTERMSIG(p->status);
		const char *sn = signal_name(sig);
		buf_printf(ev, ",\"exitCode\":%d,\"signal\":\"SIG%s\"", 128 + sig, sn ? sn : "UNKNOWN");
	} else
		buf_printf(ev, ",\"exitCode\":%d", WEXITSTATUS(p->status));
	if (p->timed_out)
		buf_puts(ev, ",\"timedOut\":true");
	ev_end(ev);
	stream_chunk(x->c, ev->p, ev->len);
	stream_end(x->c);
}

/* Stream the command's output as events until it has exited (or the
 * client went away), feeding it stdin meanwhile; ev holds "started". */
static void stream_command(struct exec_run *x, struct buf *ev)
{
	struct conn *c = x->c;
	struct body *b = x->b;
	close(x->pout[1]);
	close(x->perr[1]);
	x->pout[1] = x->perr[1] = -1;
	if (x->want_stdin) {
		close(x->pin[0]);
		x->pin[0] = -1;
		fcntl(x->pin[1], F_SETFL, O_NONBLOCK);
	}
	fcntl(x->pout[0], F_SETFL, O_NONBLOCK);
	fcntl(x->perr[0], F_SETFL, O_NONBLOCK);
	x->pidfd = (int)syscall(SYS_pidfd_open, x->pid, 0);

	struct pump p = {
		.so = { .fd = x->pout[0], .type = "stdout" },
		.se = { .fd = x->perr[0], .type = "stderr" },
		/* stdin bytes already read with the JSON */
		.pend = x->raw.p + x->jend,
		.pendlen = x->want_stdin ? x->raw.len - x->jend : 0,
		.in_open = x->want_stdin,
		.body_eof = b->done && !b->dlen,
		.conn_watch = true,
		.deadline = x->timeout ? now_ms() + x->timeout : 0,
		.ev = *ev,
	};
	*ev = (struct buf){ 0 };
	stream_chunk(c, p.ev.p, p.ev.len);
	p.ev.len = 0;
	while (!p.gone) {
		struct pollset ps;
		feed_stdin(x, &p);
		if (p.gone || !wait_events(x, &p, &ps))
			break;
		handle_events(x, &p, &ps);
	}
	if (p.gone || !p.exited) {
		/* The client went away (or an internal failure): stop the
		 * command rather than leave it running unobserved. */
		kill(-x->pid, SIGKILL);
		kill(x->pid, SIGKILL);
		if (!p.exited)
			while (waitpid(x->pid, &p.status, 0) < 0 && errno == EINTR)
				;
		c->close_after = true;
		if (p.gone) {
			logj("warn", "client went away; command killed", "\"id\":\"%s\"", x->id);
			buf_free(&p.ev);
			return;
		}
	}
	stream_exit(x, &p);
	buf_free(&p.ev);
}

/* POST /exec: parse, spawn, stream. */
void handle_exec(struct conn *c, struct http_head *hd, struct body *b)
{
	(void)hd;
	struct exec_run *x = &(struct exec_run){
		.c = c,
		.b = b,
		.k = -1,
		.pin = { -1, -1 },
		.pout = { -1, -1 },
		.perr = { -1, -1 },
		.rep = { -1, -1 },
		.pidfd = -1,
	};
	/* The request buffer stays with the worker thread between requests
	 * (up to 1 MiB): a fresh 128 KiB one would be mapped and unmapped
	 * by malloc each time. */
	x->raw = raw_keep;
	x->raw.len = 0;
	raw_keep = (struct buf){ 0 };

	if (parse_request(x) == 0 && prepare(x) == 0 && spawn_command(x) == 0) {
		struct buf ev = { 0 };
		stream_begin(c, 200, "application/x-ndjson");
		ev_begin(&ev, "started");
		buf_printf(&ev, ",\"id\":\"%s\",\"pid\":%d", x->id, (int)x->pid);
		ev_end(&ev);
		if (x->detached)
			run_detached(x, &ev);
		else
			stream_command(x, &ev);
		buf_free(&ev);
	}
	if (x->k >= 0)
		slot_free(x->k);
	int fds[] = { x->pin[0],  x->pin[1], x->pout[0], x->pout[1], x->perr[0],
		      x->perr[1], x->rep[0], x->rep[1],	 x->pidfd };
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(x->argv);
	env_free(x->envp);
	json_free(&x->a);
	if (x->raw.cap <= (1 << 20))
		raw_keep = x->raw;
	else
		buf_free(&x->raw);
}

void handle_exec_kill(struct conn *c, struct body *b, const char *id)
{
	struct jarena a = { 0 };
	struct buf raw = { 0 };
	int sig = SIGKILL;
	if (!b->done) {
		struct jv *req = read_json_body(c, b, &a, &raw);
		if (!req)
			goto out;
		for (struct jv *m = req->child; m; m = m->next)
			if (strcmp(m->key, "signal")) {
				respond_error(c, 400, "unknown field '%.60s' (known: signal)", m->key);
				goto out;
			}
		if (parse_signal(json_get(req, "signal"), &sig) < 0) {
			respond_error(c, 400, "signal must be a name such as \"TERM\" or a number 1-64");
			goto out;
		}
	}
	pid_t pid = 0;
	pthread_mutex_lock(&slots_mu);
	for (int i = 0; i < cfg.max_execs; i++)
		if (slots[i].used && slots[i].pid && !strcmp(slots[i].id, id))
			pid = slots[i].pid;
	/* Signal under the lock: the slot (and its pid) cannot be reused
	 * until the command has been reaped, so the pid is still ours. */
	int r = pid ? kill(-pid, sig) : 0;
	if (pid && r < 0 && errno == ESRCH)
		r = kill(pid, sig);
	int kerr = errno;
	pthread_mutex_unlock(&slots_mu);
	if (!pid)
		respond_error(c, 404, "command not found: %s", id);
	else if (r < 0)
		respond_error(c, 500, "kill: %s", strerror(kerr));
	else {
		char body[96];
		const char *sn = signal_name(sig);
		int n = snprintf(body, sizeof body, "{\"status\":\"killed\",\"signal\":\"SIG%s\"}\n",
				 sn ? sn : "UNKNOWN");
		respond(c, 200, "application/json", body, (size_t)n);
	}
out:
	json_free(&a);
	buf_free(&raw);
}
