/* An envd process's thread: it owns the process's output (pipes or PTY)
 * and every stream subscribed to it (the Start call's, Connect calls'),
 * turns output into DataEvents for all of them (output nobody listens to
 * is dropped, as envd drops it; a subscriber that does not keep up holds
 * the output back), sends keepalives, ends a stream at its deadline,
 * kills the process at the Start call's, and at the end sends the
 * EndEvent and closes every stream.  process.c starts it. */
#define _GNU_SOURCE
#include "proc.h"
#include "../../proto/connect.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- a subscriber's bytes --------------------------------------------- */

/* One envelope, as one HTTP chunk, queued for s. */
static void sub_queue(struct esub *s, uint8_t flags, const char *json, size_t n)
{
	struct buf env = { 0 };
	rpc_env(&env, flags, json, n);
	if (!env.p) {
		s->dead = true;
		return;
	}
	buf_printf(&s->out, "%zx\r\n", env.len);
	buf_put(&s->out, env.p, env.len);
	buf_puts(&s->out, "\r\n");
	buf_free(&env);
	s->next_ka = mono_ms() + s->keepalive_ms;
}

/* A stream's end: its last envelope and the last chunk. */
static void sub_end(struct esub *s, int code, const char *msg)
{
	struct buf end = { 0 };
	rpc_end(&end, code, msg);
	if (end.p) {
		buf_printf(&s->out, "%zx\r\n", end.len);
		buf_put(&s->out, end.p, end.len);
		buf_puts(&s->out, "\r\n0\r\n\r\n");
	}
	buf_free(&end);
	s->closing = true;
}

void sub_init(struct esub *s, int fd, const struct rpc *r, uint32_t pid)
{
	char start[64];
	int n = snprintf(start, sizeof start, "{\"event\":{\"start\":{\"pid\":%u}}}", pid);
	memset(s, 0, sizeof *s);
	s->fd = fd;
	s->keepalive_ms = (int64_t)r->keepalive_s * 1000;
	s->deadline = r->timeout_ms ? mono_ms() + r->timeout_ms : 0;
	rpc_stream_head(&s->out);
	sub_queue(s, 0, start, (size_t)n);
}

static void sub_flush(struct esub *s)
{
	while (s->out.len && !s->dead) {
		ssize_t w = send(s->fd, s->out.p, s->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno != EAGAIN && errno != EINTR)
				s->dead = true;
			return;
		}
		memmove(s->out.p, s->out.p + w, s->out.len - (size_t)w);
		s->out.len -= (size_t)w;
	}
	if (!s->out.len && s->closing)
		s->dead = true;
}

static void sub_free(struct esub *s)
{
	if (s->fd >= 0) {
		shutdown(s->fd, SHUT_RDWR);
		close(s->fd);
	}
	buf_free(&s->out);
	s->fd = -1;
}

bool eproc_subscribe(struct eproc *p, struct esub *s)
{
	bool ok;
	pthread_mutex_lock(&p->mu);
	ok = !p->closed && p->npending < MAX_PENDING;
	if (ok)
		p->pending[p->npending++] = *s;
	pthread_mutex_unlock(&p->mu);
	if (ok)
		(void)!write(p->wake[1], "s", 1);
	return ok;
}

/* Pending subscribers become the thread's (those over MAX_SUBS are
 * ended with resource_exhausted). */
static void adopt(struct eproc *p)
{
	char d[64];
	while (read(p->wake[0], d, sizeof d) > 0)
		;
	pthread_mutex_lock(&p->mu);
	for (int i = 0; i < p->npending; i++) {
		if (p->nsubs < MAX_SUBS) {
			p->subs[p->nsubs++] = p->pending[i];
		} else {
			sub_end(&p->pending[i], CC_RESOURCE_EXHAUSTED, "too many streams on this process");
			sub_flush(&p->pending[i]);
			sub_free(&p->pending[i]);
		}
	}
	p->npending = 0;
	pthread_mutex_unlock(&p->mu);
}

/* ---- events ----------------------------------------------------------- */

static void broadcast(struct eproc *p, const char *json, size_t n)
{
	for (int i = 0; i < p->nsubs; i++)
		if (!p->subs[i].closing && !p->subs[i].dead)
			sub_queue(&p->subs[i], 0, json, n);
}

/* Output read from fd, as a DataEvent of kind (stdout, stderr, pty);
 * false at its end. */
static bool pump(struct eproc *p, int fd, const char *kind, uint8_t *buf, size_t cap)
{
	struct buf ev = { 0 };
	ssize_t r = read(fd, buf, cap);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (r <= 0)
		return false; /* EOF, or EIO: every slave of the PTY is closed */
	if (p->nsubs) {
		buf_printf(&ev, "{\"event\":{\"data\":{\"%s\":", kind);
		pj_put_bytes(&ev, buf, (size_t)r);
		buf_puts(&ev, "}}}");
		if (ev.p)
			broadcast(p, ev.p, ev.len);
	}
	buf_free(&ev);
	return true;
}

/* Go's names for the signals (syscall.Signal.String), which envd's
 * status strings use. */
static const char *go_signal(int sig)
{
	static const char *const names[] = { NULL,
					     "hangup",
					     "interrupt",
					     "quit",
					     "illegal instruction",
					     "trace/breakpoint trap",
					     "aborted",
					     "bus error",
					     "floating point exception",
					     "killed",
					     "user defined signal 1",
					     "segmentation fault",
					     "user defined signal 2",
					     "broken pipe",
					     "alarm clock",
					     "terminated",
					     "stack fault",
					     "child exited",
					     "continued",
					     "stopped (signal)",
					     "stopped",
					     "stopped (tty input)",
					     "stopped (tty output)",
					     "urgent I/O condition",
					     "CPU time limit exceeded",
					     "file size limit exceeded",
					     "virtual timer expired",
					     "profiling timer expired",
					     "window changed",
					     "I/O possible",
					     "power failure",
					     "bad system call" };
	return sig > 0 && sig < (int)(sizeof names / sizeof *names) ? names[sig] : NULL;
}

/* EndEvent as envd sends it: Go's ProcessState (exit code, -1 for a
 * signal; "exit status N", "signal: killed") and, when it failed, the
 * same words as the error. */
static void end_event(struct buf *b, int status)
{
	char st[80];
	int code = -1;
	if (WIFEXITED(status)) {
		code = WEXITSTATUS(status);
		snprintf(st, sizeof st, "exit status %d", code);
	} else {
		int sig = WTERMSIG(status);
		const char *n = go_signal(sig);
		if (n)
			snprintf(st, sizeof st, "signal: %s%s", n, WCOREDUMP(status) ? " (core dumped)" : "");
		else
			snprintf(st, sizeof st, "signal: signal %d%s", sig, WCOREDUMP(status) ? " (core dumped)" : "");
	}
	buf_printf(b, "{\"event\":{\"end\":{\"exitCode\":%d,\"exited\":%s,\"status\":\"%s\"", code,
		   WIFEXITED(status) ? "true" : "false", st);
	if (code != 0)
		buf_printf(b, ",\"error\":\"%s\"", st);
	buf_puts(b, "}}}");
}

/* ---- the thread ------------------------------------------------------- */

/* The process's state as its thread keeps it. */
struct run {
	struct eproc *p;
	uint8_t *buf;
	bool out_eof, err_eof, master_eof, exited, killed;
	int status;
	int64_t exit_at;
	struct pollfd pf[4 + MAX_SUBS];
	int np, iwake, iout, ierr, imaster, ipid, isub;
};

static bool held_back(const struct eproc *p)
{
	for (int i = 0; i < p->nsubs; i++)
		if (!p->subs[i].dead && p->subs[i].out.len > SUB_OUT_MAX)
			return true;
	return false;
}

static void add_fd(struct run *x, int *slot, int fd, short events)
{
	*slot = x->np;
	x->pf[x->np++] = (struct pollfd){ .fd = fd, .events = events };
}

/* The next wait: what to poll, and until when. */
static int prepare(struct run *x)
{
	struct eproc *p = x->p;
	int64_t now = mono_ms(), until = -1;
	bool hold = held_back(p);
	x->np = 0;
	x->iout = x->ierr = x->imaster = x->ipid = -1;
	add_fd(x, &x->iwake, p->wake[0], POLLIN);
	if (!x->out_eof && !hold)
		add_fd(x, &x->iout, p->out, POLLIN);
	if (!x->err_eof && !hold)
		add_fd(x, &x->ierr, p->err, POLLIN);
	if (!x->master_eof && !hold)
		add_fd(x, &x->imaster, p->master, POLLIN);
	if (!x->exited && p->pidfd >= 0)
		add_fd(x, &x->ipid, p->pidfd, POLLIN);
	x->isub = x->np;
	for (int i = 0; i < p->nsubs; i++) {
		struct esub *s = &p->subs[i];
		int slot;
		add_fd(x, &slot, s->fd, (short)(POLLIN | (s->out.len ? POLLOUT : 0)));
		if (!s->closing && (until < 0 || s->next_ka < until))
			until = s->next_ka;
		if (!s->closing && s->deadline && (until < 0 || s->deadline < until))
			until = s->deadline;
	}
	if (p->deadline && !x->killed && (until < 0 || p->deadline < until))
		until = p->deadline;
	if (x->exited && (until < 0 || x->exit_at + DRAIN_MS < until))
		until = x->exit_at + DRAIN_MS;
	if (!x->exited && p->pidfd < 0 && (until < 0 || now + 20 < until))
		until = now + 20; /* no pidfd (a kernel before 5.3): look for the exit */
	return until < 0 ? -1 : until > now ? (int)(until - now) : 0;
}

static void kill_group(struct eproc *p, int sig)
{
	pthread_mutex_lock(&p->mu);
	if (!p->reaped && kill(-(pid_t)p->pid, sig) < 0)
		kill((pid_t)p->pid, sig);
	pthread_mutex_unlock(&p->mu);
}

/* Keepalives due, streams past their deadline, the process past its. */
static void timers(struct run *x)
{
	struct eproc *p = x->p;
	int64_t now = mono_ms();
	for (int i = 0; i < p->nsubs; i++) {
		struct esub *s = &p->subs[i];
		if (s->closing || s->dead)
			continue;
		if (s->deadline && now >= s->deadline)
			sub_end(s, CC_DEADLINE_EXCEEDED, "the call's timeout (Connect-Timeout-Ms) passed");
		else if (now >= s->next_ka)
			sub_queue(s, 0, "{\"event\":{\"keepalive\":{}}}", 26);
	}
	if (p->deadline && !x->killed && now >= p->deadline) {
		/* the Start call's timeout is the process's */
		kill_group(p, SIGKILL);
		x->killed = true;
	}
}

/* What the poll found: new subscribers, output, the exit, sockets. */
static void events(struct run *x)
{
	struct eproc *p = x->p;
	if (x->pf[x->iwake].revents)
		adopt(p);
	if (x->iout >= 0 && x->pf[x->iout].revents && !pump(p, p->out, "stdout", x->buf, 32768))
		x->out_eof = true;
	if (x->ierr >= 0 && x->pf[x->ierr].revents && !pump(p, p->err, "stderr", x->buf, 32768))
		x->err_eof = true;
	if (x->imaster >= 0 && x->pf[x->imaster].revents && !pump(p, p->master, "pty", x->buf, 16384))
		x->master_eof = true;
	if (!x->exited && (p->pidfd < 0 || x->pf[x->ipid].revents)) {
		pthread_mutex_lock(&p->mu);
		if (waitpid((pid_t)p->pid, &x->status, WNOHANG) == (pid_t)p->pid) {
			p->reaped = x->exited = true;
			x->exit_at = mono_ms();
		}
		pthread_mutex_unlock(&p->mu);
	}
	for (int i = 0; i < p->nsubs && x->isub + i < x->np; i++) {
		struct esub *s = &p->subs[i];
		short re = x->pf[x->isub + i].revents;
		char junk[512];
		/* a client says nothing more after its request; its end is
		 * the end of its stream */
		if (re & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = recv(s->fd, junk, sizeof junk, MSG_DONTWAIT);
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
				s->dead = true;
		}
	}
}

static void drop_dead(struct eproc *p)
{
	for (int i = 0; i < p->nsubs;) {
		sub_flush(&p->subs[i]);
		if (p->subs[i].dead) {
			sub_free(&p->subs[i]);
			p->subs[i] = p->subs[--p->nsubs];
		} else {
			i++;
		}
	}
}

/* The end: no more subscribers, the EndEvent to every stream, a little
 * time for slow readers, and the process out of the table. */
static void finish(struct run *x)
{
	struct eproc *p = x->p;
	struct buf ev = { 0 };
	pthread_mutex_lock(&p->mu);
	p->closed = true;
	pthread_mutex_unlock(&p->mu);
	adopt(p);
	end_event(&ev, x->status);
	for (int i = 0; i < p->nsubs; i++) {
		struct esub *s = &p->subs[i];
		if (s->closing || s->dead)
			continue;
		sub_queue(s, 0, ev.p ? ev.p : "{}", ev.p ? ev.len : 2);
		sub_end(s, 0, NULL);
	}
	for (int tries = 0; tries < 40; tries++) {
		bool left = false;
		for (int i = 0; i < p->nsubs; i++) {
			sub_flush(&p->subs[i]);
			left |= !p->subs[i].dead;
		}
		if (!left)
			break;
		poll(NULL, 0, 50);
	}
	for (int i = 0; i < p->nsubs; i++)
		sub_free(&p->subs[i]);
	p->nsubs = 0;
	buf_free(&ev);
	logj("info", "envd process ended", "\"pid\":%u,\"status\":%d", p->pid, x->status);
	eproc_unlist(p);
}

void *proc_thread(void *arg)
{
	struct run x = { .p = arg };
	struct eproc *p = x.p;
	x.out_eof = p->out < 0;
	x.err_eof = p->err < 0;
	x.master_eof = p->master < 0;
	x.buf = malloc(32768);
	while (x.buf) {
		int wait = prepare(&x);
		if (poll(x.pf, (nfds_t)x.np, wait) < 0 && errno != EINTR)
			break;
		events(&x);
		timers(&x);
		drop_dead(p);
		/* after the exit, output its children still hold is read for
		 * a moment */
		if (x.exited && ((x.out_eof && x.err_eof && x.master_eof) || mono_ms() >= x.exit_at + DRAIN_MS))
			break;
	}
	if (!x.exited) { /* out of memory: do not leave it unwatched */
		kill_group(p, SIGKILL);
		pthread_mutex_lock(&p->mu);
		while (waitpid((pid_t)p->pid, &x.status, 0) < 0 && errno == EINTR)
			;
		p->reaped = true;
		pthread_mutex_unlock(&p->mu);
	}
	finish(&x);
	free(x.buf);
	eproc_put(p);
	return NULL;
}
