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
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#define CLOSE_RANGE_CLOEXEC_FLAG 4

struct slot { bool used; char id[17]; pid_t pid; };
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
		if (st != WS_UTF8_ACCEPT) {      /* ran out of bytes */
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

/* ---- spawning -------------------------------------------------------- */

struct spawn_err { int stage; int err; };
enum { STAGE_EXEC = 1, STAGE_CHDIR, STAGE_CREDS, STAGE_FDS };

struct child_args {
	const struct user *u;
	const char *cwd, *path;
	bool cwd_explicit;
	char **argv, **envp;
	int in, out, err, rep;
};

/* Runs in the new process, which shares the agent's memory until execve
 * (CLONE_VM | CLONE_VFORK, as posix_spawn does): no page tables are
 * copied and no copy-on-write faults follow in the agent, which is most
 * of what fork() from a threaded agent costs.  The spawning thread is
 * suspended meanwhile; other threads run on, so only syscalls and stack
 * memory here: no malloc, no locks, no stdio. */
static int child(void *arg)
{
	const struct child_args *a = arg;
	const struct user *u = a->u;
	const char *cwd = a->cwd, *path = a->path;
	int in = a->in, out = a->out, err = a->err, rep = a->rep;
	struct spawn_err se = { 0, 0 };
	/* Dispositions the agent set (SIGHUP's handler, SIGPIPE ignored)
	 * must not reach the command; all signals are still blocked here, so
	 * no handler can run in this shared address space first. */
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigaction(SIGHUP, &dfl, NULL);
	sigaction(SIGPIPE, &dfl, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
		se.stage = STAGE_FDS;
		goto fail;
	}
	/* Everything else the agent holds (sockets, other commands' pipes)
	 * is closed by execve; rep is already close-on-exec. */
	if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC_FLAG) < 0)
		for (int fd = 3; fd < 1024; fd++)
			if (fd != rep)
				close(fd);
	/* Raw syscalls: only this (single) thread's credentials change. */
	if (syscall(SYS_setgroups, u->ngroups, u->groups) < 0 ||
	    syscall(SYS_setgid, u->gid) < 0 || syscall(SYS_setuid, u->uid) < 0) {
		se.stage = STAGE_CREDS;
		goto fail;
	}
	/* A home that does not exist is not worth failing for (login(1)
	 * agrees); a directory the caller asked for is. */
	if (chdir(cwd) < 0 && (a->cwd_explicit || chdir("/") < 0)) {
		se.stage = STAGE_CHDIR;
		goto fail;
	}
	execve(path, a->argv, a->envp);
	se.stage = STAGE_EXEC;
fail:
	se.err = errno;
	(void)!write(rep, &se, sizeof se);
	_exit(127);
}

/* Start child() in a new process; returns its pid or -1 with errno. */
static pid_t spawn(struct child_args *a)
{
	/* The child's stack lives on this thread's stack: this thread does
	 * not run again until the child has called execve or exited. */
	char stack[16384] __attribute__((aligned(16)));
	sigset_t all, mask;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &mask);
	pid_t pid = clone(child, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, a);
	int e = errno;
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
	errno = e;
	return pid;
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

static _Thread_local struct buf raw_keep;   /* see handle_exec */

void exec_worker_exit(void)
{
	buf_free(&raw_keep);
}

void handle_exec(struct conn *c, struct http_head *hd, struct body *b)
{
	(void)hd;
	struct jarena a = { 0 };
	/* The request buffer stays with the worker thread between requests
	 * (up to 1 MiB): a fresh 128 KiB one would be mapped and unmapped
	 * by malloc each time. */
	struct buf raw = raw_keep;
	raw.len = 0;
	raw_keep = (struct buf){ 0 };
	struct jv *req = NULL;
	size_t jend = 0;
	char err[200];
	char id[17];
	int k = -1;
	char **argv = NULL, **envp = NULL;
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 }, rep[2] = { -1, -1 };
	int pidfd = -1;

	/* The JSON object first; with "stdin":true the rest is stdin. */
	for (;;) {
		if (buf_reserve(&raw, 65536) < 0) {
			respond_error(c, 500, "out of memory");
			goto out;
		}
		ssize_t r = body_read(b, raw.p + raw.len, 65536);
		if (r < 0) {
			c->close_after = true;
			respond_error(c, 400, "malformed request body");
			goto out;
		}
		if (r > 0) {
			bool close_seen = memchr(raw.p + raw.len, '}', (size_t)r) != NULL;
			raw.len += (size_t)r;
			if (!close_seen && raw.len <= (1 << 20))
				continue;
		}
		json_free(&a);
		req = json_parse(raw.p, raw.len, &jend, &a, err, sizeof err);
		if (req)
			break;
		if (r == 0) {
			respond_error(c, 400, raw.len ? "invalid JSON: %s" : "a JSON request body is required", err);
			goto out;
		}
		if (raw.len > (1 << 20)) {
			c->close_after = true;
			respond_error(c, 413, "exec request over 1 MiB");
			goto out;
		}
	}
	if (req->t != J_OBJ) {
		respond_error(c, 400, "the request body must be a JSON object");
		goto out;
	}
	for (struct jv *m = req->child; m; m = m->next) {
		int i = 0;
		while (known[i] && strcmp(known[i], m->key))
			i++;
		if (!known[i]) {
			respond_error(c, 400, "unknown field '%.60s' (known: cmd, args, cwd, env, timeoutMs, "
				      "detached, user, stdin)", m->key);
			goto out;
		}
	}
	struct jv *cmd = json_get(req, "cmd"), *args = json_get(req, "args");
	struct jv *cwdv = json_get(req, "cwd"), *userv = json_get(req, "user");
	struct jv *det = json_get(req, "detached"), *stdinv = json_get(req, "stdin");
	long long timeout = 0;
	if (!cmd || cmd->t != J_STR || !cmd->s[0]) {
		respond_error(c, 400, "cmd is required (a non-empty string)");
		goto out;
	}
	if (args && (args->t != J_ARR || args->n > 65536)) {
		respond_error(c, 400, "args must be an array of strings");
		goto out;
	}
	for (struct jv *x = args ? args->child : NULL; x; x = x->next)
		if (x->t != J_STR) {
			respond_error(c, 400, "args must be an array of strings");
			goto out;
		}
	if ((cwdv && (cwdv->t != J_STR || cwdv->s[0] != '/')) || (userv && userv->t != J_STR)) {
		respond_error(c, 400, "cwd must be an absolute path and user a string");
		goto out;
	}
	if ((det && det->t != J_BOOL) || (stdinv && stdinv->t != J_BOOL)) {
		respond_error(c, 400, "detached and stdin must be true or false");
		goto out;
	}
	if (json_int(req, "timeoutMs", 0, 1LL << 40, &timeout) < 0) {
		respond_error(c, 400, "timeoutMs must be a whole number of milliseconds >= 0");
		goto out;
	}
	bool detached = det && det->b, want_stdin = stdinv && stdinv->b;
	if (detached && want_stdin) {
		respond_error(c, 400, "a detached command cannot take stdin");
		goto out;
	}
	if (!want_stdin) {
		size_t e = jend;
		while (e < raw.len && strchr(" \t\r\n", raw.p[e]))
			e++;
		if (e != raw.len || !b->done) {
			c->close_after = true;
			respond_error(c, 400, "data after the JSON object (set \"stdin\":true to send stdin)");
			goto out;
		}
	}

	struct user u;
	if (user_resolve(userv ? userv->s : NULL, &u, err, sizeof err) < 0) {
		respond_error(c, 400, "resolve user: %s", err);
		goto out;
	}
	if (!(envp = env_build(&u, json_get(req, "env"), NULL, err, sizeof err))) {
		respond_error(c, 400, "%s", err);
		goto out;
	}
	size_t nargs = args ? args->n : 0;
	argv = calloc(nargs + 2, sizeof *argv);
	if (!argv) {
		respond_error(c, 500, "out of memory");
		goto out;
	}
	argv[0] = cmd->s;
	size_t ai = 1;
	for (struct jv *x = args ? args->child : NULL; x; x = x->next)
		argv[ai++] = x->s;

	char path[4096];
	const char *cwd = cwdv ? cwdv->s : u.home;
	if (path_search(cmd->s, env_get(envp, "PATH"), path, sizeof path) < 0) {
		/* Like a shell: 127 not found, 126 found but not executable. */
		int code = errno == EACCES ? 126 : 127;
		struct buf ev = { 0 };
		stream_begin(c, 200, "application/x-ndjson");
		ev_begin(&ev, "error");
		buf_puts(&ev, ",\"error\":");
		snprintf(err, sizeof err, "%s: %s", cmd->s, code == 127 ? "command not found" : "permission denied");
		buf_jstr(&ev, err, strlen(err));
		ev_end(&ev);
		ev_begin(&ev, "exit");
		buf_printf(&ev, ",\"exitCode\":%d", code);
		ev_end(&ev);
		stream_chunk(c, ev.p, ev.len);
		stream_end(c);
		buf_free(&ev);
		goto out;
	}

	if ((k = slot_take(id)) < 0) {
		respond_error(c, 429, "too many concurrent commands (limit %d)", cfg.max_execs);
		goto out;
	}
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0 || pipe2(rep, O_CLOEXEC) < 0 ||
	    (!detached && (pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0)) ||
	    (want_stdin && pipe2(pin, O_CLOEXEC) < 0)) {
		if (devnull >= 0)
			close(devnull);
		respond_error(c, 500, "pipe: %s", strerror(errno));
		goto out;
	}
	struct child_args ca = {
		.u = &u, .cwd = cwd, .path = path, .cwd_explicit = cwdv != NULL, .argv = argv, .envp = envp,
		.in = want_stdin ? pin[0] : devnull, .out = detached ? devnull : pout[1],
		.err = detached ? devnull : perr[1], .rep = rep[1],
	};
	pid_t pid = spawn(&ca);
	int fork_errno = errno;
	close(devnull);
	close(rep[1]);
	rep[1] = -1;
	if (pid < 0) {
		respond_error(c, 500, "clone: %s", strerror(fork_errno));
		goto out;
	}
	struct spawn_err se;
	ssize_t rn;
	while ((rn = read(rep[0], &se, sizeof se)) < 0 && errno == EINTR)
		;
	if (rn == (ssize_t)sizeof se) {
		int st;
		waitpid(pid, &st, 0);
		const char *what = se.stage == STAGE_CHDIR ? "cannot change to directory"
				 : se.stage == STAGE_CREDS ? "cannot switch user"
				 : se.stage == STAGE_FDS ? "cannot set up stdio" : "cannot execute";
		int code = se.stage == STAGE_EXEC && se.err == ENOENT ? 127 : 126;
		struct buf ev = { 0 };
		stream_begin(c, 200, "application/x-ndjson");
		ev_begin(&ev, "error");
		buf_puts(&ev, ",\"error\":");
		snprintf(err, sizeof err, "%.60s: %s %.80s: %s", cmd->s, what,
			 se.stage == STAGE_CHDIR ? cwd : path, strerror(se.err));
		buf_jstr(&ev, err, strlen(err));
		ev_end(&ev);
		ev_begin(&ev, "exit");
		buf_printf(&ev, ",\"exitCode\":%d", code);
		ev_end(&ev);
		stream_chunk(c, ev.p, ev.len);
		stream_end(c);
		buf_free(&ev);
		goto out;
	}
	slot_set(k, pid);

	struct buf ev = { 0 };
	stream_begin(c, 200, "application/x-ndjson");
	ev_begin(&ev, "started");
	buf_printf(&ev, ",\"id\":\"%s\",\"pid\":%d", id, (int)pid);
	ev_end(&ev);

	if (detached) {
		stream_chunk(c, ev.p, ev.len);
		stream_end(c);
		buf_free(&ev);
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, 64 * 1024);
		if (pthread_create(&t, &at, reap_detached, (void *)((long)pid << 16 | k)) == 0)
			k = -1;   /* the reaper frees the slot */
		else {
			int st;
			waitpid(pid, &st, 0);
		}
		goto out;
	}
	close(pout[1]);
	close(perr[1]);
	pout[1] = perr[1] = -1;
	if (want_stdin) {
		close(pin[0]);
		pin[0] = -1;
		fcntl(pin[1], F_SETFL, O_NONBLOCK);
	}
	fcntl(pout[0], F_SETFL, O_NONBLOCK);
	fcntl(perr[0], F_SETFL, O_NONBLOCK);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

	struct ostream so = { .fd = pout[0], .type = "stdout" }, se2 = { .fd = perr[0], .type = "stderr" };
	/* Per worker thread and kept: malloc would map and unmap 64 KiB
	 * blocks on every command (a TLB shootdown each time). */
	static _Thread_local uint8_t obuf[65536 + 4];
	static _Thread_local char inbuf[65536];
	/* stdin bytes already read with the JSON */
	char *pend = raw.p + jend;
	size_t pendlen = want_stdin ? raw.len - jend : 0;
	bool in_open = want_stdin, body_eof = b->done && !b->dlen, conn_watch = true;
	bool exited = false, timed_out = false, gone = false;
	int status = 0;
	int64_t deadline = timeout ? now_ms() + timeout : 0, exit_at = 0;

	stream_chunk(c, ev.p, ev.len);
	ev.len = 0;
	while (!gone) {
		/* stdin: move body bytes to the pipe */
		if (in_open && !pendlen && !body_eof && (c->rpos < c->rlen || b->dlen)) {
			ssize_t r = body_read_some(b, inbuf, 65536);
			if (r > 0) {
				pend = inbuf;
				pendlen = (size_t)r;
				body_eof = b->done && !b->dlen;
			} else if (r == 0)
				body_eof = true;
			else if (r == -1)
				gone = true;
		}
		if (in_open && pendlen) {
			ssize_t w = write(pin[1], pend, pendlen);
			if (w > 0) {
				pend += w;
				pendlen -= (size_t)w;
			} else if (w < 0 && errno == EPIPE) {
				close(pin[1]);
				pin[1] = -1;
				in_open = false;
				pendlen = 0;
			}
		}
		if (in_open && !pendlen && body_eof) {
			close(pin[1]);
			pin[1] = -1;
			in_open = false;
		}
		if (!in_open && want_stdin && !body_eof && !pendlen) {
			/* The command closed stdin: discard the rest of it. */
			ssize_t r = (c->rpos < c->rlen || b->dlen) ? body_read_some(b, inbuf, 65536) : -2;
			if (r == 0)
				body_eof = true;
			else if (r == -1)
				gone = true;
		}
		if (gone)
			break;

		struct pollfd pf[5];
		int np = 0, iso = -1, ise = -1, ipid = -1, iconn = -1, iin = -1;
		if (!so.eof) {
			iso = np;
			pf[np++] = (struct pollfd){ .fd = so.fd, .events = POLLIN };
		}
		if (!se2.eof) {
			ise = np;
			pf[np++] = (struct pollfd){ .fd = se2.fd, .events = POLLIN };
		}
		if (!exited && pidfd >= 0) {
			ipid = np;
			pf[np++] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
		}
		bool want_body = want_stdin && !body_eof && !pendlen;
		if (want_body || (body_eof && conn_watch)) {
			iconn = np;
			pf[np++] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
		}
		if (in_open && pendlen) {
			iin = np;
			pf[np++] = (struct pollfd){ .fd = pin[1], .events = POLLOUT };
		}
		int64_t now = now_ms(), wait = -1;
		if (deadline && !timed_out)
			wait = deadline > now ? deadline - now : 0;
		if (exited) {
			/* Output still held by the command's children is read for
			 * a moment after it exits, then the stream ends. */
			int64_t left = exit_at + 200 - now;
			if (left < 0 || (so.eof && se2.eof))
				break;
			wait = left;
		}
		/* Body bytes already in our buffer make no poll event: go round. */
		if (want_body && (c->rpos < c->rlen || b->dlen))
			wait = 0;
		if (pidfd < 0 && !exited) {   /* no pidfd: poll for exit */
			if (wait < 0 || wait > 20)
				wait = 20;
		}
		int pr = poll(pf, (nfds_t)np, (int)wait);
		if (pr < 0 && errno != EINTR)
			break;
		if (deadline && !timed_out && now_ms() >= deadline) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			timed_out = true;
			ev_begin(&ev, "timeout");
			buf_printf(&ev, ",\"timeoutMs\":%lld", timeout);
			ev_end(&ev);
		}
		if (iso >= 0 && pf[iso].revents)
			pump_output(&so, obuf, 65536 + 4, &ev);
		if (ise >= 0 && pf[ise].revents)
			pump_output(&se2, obuf, 65536 + 4, &ev);
		if (!exited && ((ipid >= 0 && pf[ipid].revents) || pidfd < 0)) {
			pid_t w = waitpid(pid, &status, WNOHANG);
			if (w == pid) {
				exited = true;
				exit_at = now_ms();
			}
		}
		if (iconn >= 0 && pf[iconn].revents) {
			if (want_body) {
				ssize_t r = body_read_some(b, inbuf, 65536);
				if (r > 0) {
					pend = inbuf;
					pendlen = (size_t)r;
					body_eof = b->done && !b->dlen;
				} else if (r == 0)
					body_eof = true;
				else if (r == -1)
					gone = true;
			} else {
				char x;
				ssize_t r = recv(c->fd, &x, 1, MSG_PEEK | MSG_DONTWAIT);
				if (r == 0 || (r < 0 && errno != EAGAIN))
					gone = true;   /* the client went away */
				else
					conn_watch = false;   /* pipelined bytes: not ours */
			}
		}
		(void)iin;
		if (ev.len) {
			if (stream_chunk(c, ev.p, ev.len) < 0)
				gone = true;
			ev.len = 0;
		}
	}
	if (gone || !exited) {
		/* The client went away (or an internal failure): stop the
		 * command rather than leave it running unobserved. */
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		if (!exited)
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
		c->close_after = true;
		if (gone) {
			logj("warn", "client went away; command killed", "\"id\":\"%s\"", id);
			buf_free(&ev);
			goto out;
		}
	}
	if (!so.eof || so.carrylen)
		emit_data(&ev, "stdout", so.carry, so.carrylen, true);
	if (!se2.eof || se2.carrylen)
		emit_data(&ev, "stderr", se2.carry, se2.carrylen, true);
	ev_begin(&ev, "exit");
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		const char *sn = signal_name(sig);
		buf_printf(&ev, ",\"exitCode\":%d,\"signal\":\"SIG%s\"", 128 + sig, sn ? sn : "UNKNOWN");
	} else
		buf_printf(&ev, ",\"exitCode\":%d", WEXITSTATUS(status));
	if (timed_out)
		buf_puts(&ev, ",\"timedOut\":true");
	ev_end(&ev);
	stream_chunk(c, ev.p, ev.len);
	stream_end(c);
	buf_free(&ev);
out:
	if (k >= 0)
		slot_free(k);
	{
		int fds[] = { pin[0], pin[1], pout[0], pout[1], perr[0], perr[1], rep[0], rep[1], pidfd };
		for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
	free(argv);
	env_free(envp);
	json_free(&a);
	if (raw.cap <= (1 << 20))
		raw_keep = raw;
	else
		buf_free(&raw);
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
