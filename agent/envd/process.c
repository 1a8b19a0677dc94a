/* process.Process: the table of envd's processes (at most --max-execs,
 * counted apart from POST /exec's), Start (the command as the request's
 * user, through spawn.c, on pipes or a PTY; /bin/bash, which E2B's SDK
 * runs every command with, falls back to /bin/sh where the image has no
 * bash), Connect, and the calls that steer a process: List, SendInput,
 * StreamInput, SendSignal, CloseStdin, Update.  A process outlives the
 * stream that started it; its thread (proc.c) serves its streams. */
#define _GNU_SOURCE
#include "proc.h"
#include "../spawn.h"
#include "../../proto/connect.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* How long a write of input may wait for the process to read. */
#define INPUT_WAIT_MS 30000

static struct eproc **table; /* cfg.max_execs slots; NULL when free */
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t table_freed = PTHREAD_COND_INITIALIZER; /* a slot became free */

void proc_init(void)
{
	table = calloc((size_t)cfg.max_execs, sizeof *table);
	if (!table)
		abort();
}

int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the table -------------------------------------------------------- */

/* A new process in a free slot (pid 0 until it runs: no one finds it),
 * with the table's reference; NULL when all slots are taken (*full) or
 * out of memory or descriptors. */
static struct eproc *eproc_reserve(bool *full)
{
	struct eproc *p = calloc(1, sizeof *p);
	int slot = -1;
	*full = false;
	if (!p || pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->in_mu, NULL);
	p->refs = 1;
	p->out = p->err = p->master = p->in = p->pidfd = -1;
	pthread_mutex_lock(&table_mu);
	for (int i = 0; i < cfg.max_execs && slot < 0; i++)
		if (!table[i])
			table[slot = i] = p;
	pthread_mutex_unlock(&table_mu);
	if (slot < 0) {
		eproc_put(p);
		*full = true;
		return NULL;
	}
	return p;
}

void eproc_unlist(struct eproc *p)
{
	bool listed = false;
	pthread_mutex_lock(&table_mu);
	for (int i = 0; i < cfg.max_execs; i++)
		if (table[i] == p) {
			table[i] = NULL;
			listed = true;
		}
	if (listed)
		pthread_cond_broadcast(&table_freed);
	pthread_mutex_unlock(&table_mu);
	if (listed)
		eproc_put(p);
}

/* The client of r hung up (or its connection failed). */
static bool client_gone(const struct rpc *r)
{
	struct pollfd pf = { .fd = r->c->fd, .events = POLLRDHUP };
	return poll(&pf, 1, 0) > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* A slot for a Start, waited for: E2B's own envd has no limit on its
 * processes, so its SDK expects a Start to run, not a refusal.  Past
 * --max-execs a Start waits (as vmsan exec does) for a process to end,
 * while its client is there and within its Connect-Timeout-Ms, of which
 * the wait takes its part.  NULL, with the call failed (a client gone
 * hears nothing), when it gave up. */
static struct eproc *eproc_reserve_wait(struct rpc *r, int *st)
{
	int64_t end = r->timeout_ms ? mono_ms() + r->timeout_ms : 0, left;
	struct eproc *p;
	bool said = false, full;

	while (!(p = eproc_reserve(&full))) {
		if (!full) {
			*st = rpc_fail(r, CC_RESOURCE_EXHAUSTED, "out of memory or file descriptors");
			return NULL;
		}
		if (!said)
			logj("info", "envd process waits for a slot", "\"limit\":%d,\"remote\":\"%s\"", cfg.max_execs,
			     r->c->peer);
		said = true;
		left = end ? end - mono_ms() : 200;
		if (left <= 0) {
			*st = rpc_fail(r, CC_RESOURCE_EXHAUSTED,
				       "too many processes (limit %d) for as long as the call's timeout",
				       cfg.max_execs);
			return NULL;
		}
		if (client_gone(r)) {
			*st = rpc_fail(r, CC_CANCELED, "the client went away while the process waited for a slot");
			return NULL;
		}
		/* woken when a slot frees, or to look at the client again */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (left < 200 ? left : 200) * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_mutex_lock(&table_mu);
		pthread_cond_timedwait(&table_freed, &table_mu, &ts);
		pthread_mutex_unlock(&table_mu);
	}
	if (end)
		r->timeout_ms = (left = end - mono_ms()) > 0 ? left : 1;
	return p;
}

void eproc_put(struct eproc *p)
{
	pthread_mutex_lock(&p->mu);
	bool last = --p->refs == 0;
	pthread_mutex_unlock(&p->mu);
	if (!last)
		return;
	int fds[] = { p->out, p->err, p->master, p->in, p->pidfd, p->wake[0], p->wake[1] };
	for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	for (int i = 0; i < p->npending; i++)
		close(p->pending[i].fd), buf_free(&p->pending[i].out);
	free(p->tag);
	free(p->config);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->in_mu);
	free(p);
}

/* A ProcessSelector: {"pid":N} or {"tag":T}. */
struct sel {
	bool by_tag;
	uint32_t pid;
	const char *tag;
};

/* The request's "process" selector; 0, or the status answered. */
static int read_selector(struct rpc *r, const struct jv *msg, struct sel *sel)
{
	static const char *const fields[] = { "pid", "tag", NULL };
	bool has_pid, has_tag;
	const struct jv *s = pj_msg(&r->pj, msg, "process", fields);
	sel->pid = pj_u32(&r->pj, s, "pid", &has_pid);
	sel->tag = pj_str(&r->pj, s, "tag", &has_tag);
	sel->by_tag = has_tag;
	if (!r->pj.bad && has_pid == has_tag)
		pj_fail(&r->pj, "process: a selector, pid or tag (one of them), is required");
	return r->pj.bad ? rpc_bad(r) : 0;
}

/* The running process sel names, with a reference, into *out; 0, or
 * the status of the not_found answered. */
static int eproc_find(struct rpc *r, const struct sel *sel, struct eproc **out)
{
	struct eproc *p = NULL;
	pthread_mutex_lock(&table_mu);
	for (int i = 0; i < cfg.max_execs && !p; i++) {
		struct eproc *q = table[i];
		if (q && q->pid && (sel->by_tag ? q->tag && !strcmp(q->tag, sel->tag) : q->pid == sel->pid))
			p = q;
	}
	if (p) {
		pthread_mutex_lock(&p->mu);
		p->refs++;
		pthread_mutex_unlock(&p->mu);
	}
	pthread_mutex_unlock(&table_mu);
	*out = p;
	if (p)
		return 0;
	if (sel->by_tag)
		return rpc_fail(r, CC_NOT_FOUND, "process with tag %.200s not found", sel->tag);
	return rpc_fail(r, CC_NOT_FOUND, "process with pid %u not found", sel->pid);
}

/* ---- Start ------------------------------------------------------------ */

/* One Start call, from its request to its process's thread. */
struct start {
	const struct jv *config, *args, *envs;
	const char *cmd, *cwd, *tag;
	bool has_cwd, has_tag, has_pty, want_stdin;
	uint32_t cols, rows;
	char dir[4200], path[4096], why[256];
	char **argv, **envp;
	int in[2], out[2], err[2], rep[2], master, slave;
	pid_t pid;
};

static const char *const config_fields[] = { "cmd", "args", "envs", "cwd", NULL };

/* The request's fields; 0, or the status answered. */
static int start_parse(struct rpc *r, struct start *s)
{
	static const char *const fields[] = { "process", "pty", "tag", "stdin", NULL };
	static const char *const pty_fields[] = { "size", NULL };
	static const char *const size_fields[] = { "cols", "rows", NULL };
	bool has_stdin;
	pj_fields(&r->pj, r->msg, r->name, fields);
	s->config = pj_msg(&r->pj, r->msg, "process", config_fields);
	s->cmd = pj_str(&r->pj, s->config, "cmd", NULL);
	s->args = pj_strlist(&r->pj, s->config, "args");
	s->envs = pj_strmap(&r->pj, s->config, "envs");
	s->cwd = pj_str(&r->pj, s->config, "cwd", &s->has_cwd);
	const struct jv *pty = pj_msg(&r->pj, r->msg, "pty", pty_fields);
	const struct jv *size = pj_msg(&r->pj, pty, "size", size_fields);
	s->has_pty = pty != NULL;
	s->cols = pj_u32(&r->pj, size, "cols", NULL);
	s->rows = pj_u32(&r->pj, size, "rows", NULL);
	s->tag = pj_str(&r->pj, r->msg, "tag", &s->has_tag);
	/* stdin is a pipe unless the request says no (as envd has it) */
	s->want_stdin = pj_bool(&r->pj, r->msg, "stdin", &has_stdin) || !has_stdin;
	if (!r->pj.bad && !s->cmd[0])
		pj_fail(&r->pj, "process.cmd is required");
	if (!r->pj.bad && (s->cols > 65535 || s->rows > 65535))
		pj_fail(&r->pj, "pty.size: cols and rows are at most 65535");
	return r->pj.bad ? rpc_bad(r) : 0;
}

/* Directory, environment, argv and program; 0, or the status answered. */
static int start_prepare(struct rpc *r, struct start *s)
{
	struct stat sb;
	size_t nargs = s->args ? s->args->n : 0, ai = 1;
	if (path_resolve(s->has_cwd ? s->cwd : "", &r->u, s->dir, sizeof s->dir, s->why, sizeof s->why) < 0)
		return rpc_fail(r, CC_INVALID_ARGUMENT, "%s", s->why);
	/* a home that is not there is not worth failing for (spawn.c runs
	 * the command in / then); a directory asked for is */
	if (s->has_cwd && stat(s->dir, &sb) < 0 && errno == ENOENT)
		return rpc_fail(r, CC_INVALID_ARGUMENT, "cwd '%s' does not exist", s->dir);
	if (!(s->envp = env_build(&r->u, s->envs, NULL, s->why, sizeof s->why)))
		return rpc_fail(r, CC_INVALID_ARGUMENT, "%s", s->why);
	if (!(s->argv = calloc(nargs + 2, sizeof *s->argv)))
		return rpc_fail(r, CC_RESOURCE_EXHAUSTED, "out of memory");
	s->argv[0] = (char *)s->cmd;
	for (const struct jv *v = s->args ? s->args->child : NULL; v; v = v->next)
		s->argv[ai++] = v->s;
	/* E2B's SDK runs every command as /bin/bash -l -c; an image without
	 * bash (busybox) has a POSIX sh, which takes -l, -i and -c too.
	 * argv[0] names it: a busybox applet is chosen by that name. */
	if (!strcmp(s->cmd, "/bin/bash") && access("/bin/bash", X_OK) < 0 && access("/bin/sh", X_OK) == 0)
		s->argv[0] = (char *)"/bin/sh"; /* execve does not write to it */
	if (path_search(s->argv[0], env_get(s->envp, "PATH"), s->path, sizeof s->path) < 0)
		return rpc_fail(r, CC_INVALID_ARGUMENT, "error starting process '%.200s': %s", s->cmd,
				errno == EACCES ? "permission denied" : "executable file not found");
	return 0;
}

/* The PTY: master (for the thread), slave (the child's stdio). */
static int open_pty(struct start *s)
{
	char name[64];
	struct winsize ws = { .ws_row = (unsigned short)s->rows, .ws_col = (unsigned short)s->cols };
	s->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s->master < 0 || grantpt(s->master) < 0 || unlockpt(s->master) < 0 ||
	    ptsname_r(s->master, name, sizeof name) != 0)
		return -1;
	ioctl(s->master, TIOCSWINSZ, &ws);
	s->slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	return s->slave < 0 ? -1 : 0;
}

/* Pipes or the PTY, then the command; 0, or the status answered. */
static int start_spawn(struct rpc *r, struct start *s)
{
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	struct spawn_err se;
	ssize_t rn;
	if (devnull < 0 || pipe2(s->rep, O_CLOEXEC) < 0 ||
	    (s->has_pty ? open_pty(s) < 0
			: pipe2(s->out, O_CLOEXEC) < 0 || pipe2(s->err, O_CLOEXEC) < 0 ||
				  (s->want_stdin && pipe2(s->in, O_CLOEXEC) < 0))) {
		int e = errno;
		if (devnull >= 0)
			close(devnull);
		return rpc_fail(r, CC_INTERNAL, "cannot make the process's %s: %s", s->has_pty ? "pty" : "pipes",
				strerror(e));
	}
	struct child_args ca = {
		.u = &r->u,
		.cwd = s->dir,
		.path = s->path,
		.cwd_explicit = s->has_cwd,
		.argv = s->argv,
		.envp = s->envp,
		.rep = s->rep[1],
		.ctty = s->has_pty,
		.in = s->has_pty      ? s->slave
		      : s->want_stdin ? s->in[0]
				      : devnull,
		.out = s->has_pty ? s->slave : s->out[1],
		.err = s->has_pty ? s->slave : s->err[1],
	};
	s->pid = spawn(&ca);
	int e = errno;
	close(devnull);
	close(s->rep[1]);
	s->rep[1] = -1;
	if (s->pid < 0)
		return rpc_fail(r, CC_INTERNAL, "clone: %s", strerror(e));
	while ((rn = read(s->rep[0], &se, sizeof se)) < 0 && errno == EINTR)
		;
	if (rn == (ssize_t)sizeof se) {
		waitpid(s->pid, NULL, 0);
		s->pid = -1;
		return rpc_fail(r, CC_INVALID_ARGUMENT, "error starting process '%.200s': %s: %s", s->cmd,
				se.stage == STAGE_CHDIR	  ? "cannot change to its directory"
				: se.stage == STAGE_CREDS ? "cannot switch user"
				: se.stage == STAGE_FDS	  ? "cannot set up its stdio"
							  : "cannot execute",
				strerror(se.err));
	}
	return 0;
}

/* The ProcessConfig List answers with. */
static char *config_json(const struct start *s)
{
	struct buf b = { 0 };
	buf_puts(&b, "{\"cmd\":");
	pj_put_str(&b, s->cmd, strlen(s->cmd));
	buf_puts(&b, ",\"args\":[");
	for (const struct jv *v = s->args ? s->args->child : NULL; v; v = v->next) {
		buf_puts(&b, v == s->args->child ? "" : ",");
		pj_put_str(&b, v->s, v->slen);
	}
	buf_puts(&b, "],\"envs\":{");
	for (const struct jv *v = s->envs ? s->envs->child : NULL; v; v = v->next) {
		buf_puts(&b, v == s->envs->child ? "" : ",");
		pj_put_str(&b, v->key, strlen(v->key));
		buf_puts(&b, ":");
		pj_put_str(&b, v->s, v->slen);
	}
	buf_puts(&b, "}");
	if (s->has_cwd) {
		buf_puts(&b, ",\"cwd\":");
		pj_put_str(&b, s->cwd, strlen(s->cwd));
	}
	buf_puts(&b, "}");
	return b.p;
}

static int take(int *fd)
{
	int v = *fd;
	*fd = -1;
	return v;
}

/* The process becomes p, this call's stream its first subscriber, and
 * its thread starts: RPC_TOOK_OVER, or the status answered. */
static int start_run(struct rpc *r, struct start *s, struct eproc *p)
{
	pthread_t t;
	pthread_attr_t at;
	if ((s->has_tag && !(p->tag = strdup(s->tag))) || !(p->config = config_json(s))) {
		kill(-s->pid, SIGKILL);
		return rpc_fail(r, CC_RESOURCE_EXHAUSTED, "out of memory");
	}
	p->pty = s->has_pty;
	p->master = take(&s->master);
	p->out = take(&s->out[0]);
	p->err = take(&s->err[0]);
	p->in = take(&s->in[1]);
	int nb[] = { p->master, p->out, p->err, p->in };
	for (size_t i = 0; i < sizeof nb / sizeof *nb; i++)
		if (nb[i] >= 0)
			fcntl(nb[i], F_SETFL, O_NONBLOCK);
	p->pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
	p->deadline = r->timeout_ms ? mono_ms() + r->timeout_ms : 0;
	sub_init(&p->subs[0], r->c->fd, r, (uint32_t)s->pid);
	p->nsubs = 1;
	p->refs++; /* the thread's */
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	/* as the workers': the agent's thread-local buffers (exec.c's, 128
	 * KiB) come out of it where libc puts static TLS on the stack */
	pthread_attr_setstacksize(&at, 512 * 1024);
	pthread_mutex_lock(&table_mu);
	p->pid = (uint32_t)s->pid; /* now it can be found */
	pthread_mutex_unlock(&table_mu);
	if (pthread_create(&t, &at, proc_thread, p) != 0) {
		kill(-s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		p->refs--;
		p->nsubs = 0;
		buf_free(&p->subs[0].out);
		return rpc_fail(r, CC_INTERNAL, "cannot start the process's thread");
	}
	logj("info", "envd process started", "\"pid\":%d,\"remote\":\"%s\"", (int)s->pid, r->c->peer);
	r->c->fd = -1; /* the process's thread has the socket now */
	return RPC_TOOK_OVER;
}

int proc_start(struct rpc *r)
{
	struct start *s = &(struct start){
		.in = { -1, -1 },
		.out = { -1, -1 },
		.err = { -1, -1 },
		.rep = { -1, -1 },
		.master = -1,
		.slave = -1,
		.pid = -1,
	};
	struct eproc *p = NULL;
	int st = start_parse(r, s);
	if (!st)
		st = start_prepare(r, s);
	if (!st)
		p = eproc_reserve_wait(r, &st);
	if (!st)
		st = start_spawn(r, s);
	if (!st)
		st = start_run(r, s, p);
	int fds[] = { s->in[0],	 s->in[1],  s->out[0], s->out[1], s->err[0],
		      s->err[1], s->rep[0], s->rep[1], s->master, s->slave };
	for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (st != RPC_TOOK_OVER && s->pid > 0)
		waitpid(s->pid, NULL, 0); /* killed above */
	if (st != RPC_TOOK_OVER && p)
		eproc_unlist(p);
	free(s->argv);
	env_free(s->envp);
	return st;
}

/* ---- the others ------------------------------------------------------- */

int proc_connect(struct rpc *r)
{
	static const char *const fields[] = { "process", NULL };
	struct sel sel;
	struct eproc *p;
	struct esub s;
	int st;
	pj_fields(&r->pj, r->msg, r->name, fields);
	if ((st = read_selector(r, r->msg, &sel)) || (st = eproc_find(r, &sel, &p)))
		return st;
	sub_init(&s, r->c->fd, r, p->pid);
	if (!eproc_subscribe(p, &s)) {
		buf_free(&s.out);
		eproc_put(p);
		return rpc_fail(r, CC_NOT_FOUND, "process with pid %u not found (it has ended)", sel.pid);
	}
	r->c->fd = -1;
	eproc_put(p);
	return RPC_TOOK_OVER;
}

int proc_list(struct rpc *r)
{
	static const char *const fields[] = { NULL };
	struct buf b = { 0 };
	bool first = true;
	int st;
	pj_fields(&r->pj, r->msg, r->name, fields);
	if (r->pj.bad)
		return rpc_bad(r);
	buf_puts(&b, "{\"processes\":[");
	pthread_mutex_lock(&table_mu);
	for (int i = 0; i < cfg.max_execs; i++) {
		struct eproc *p = table[i];
		if (!p || !p->pid)
			continue;
		buf_printf(&b, "%s{\"config\":%s,\"pid\":%u", first ? "" : ",", p->config, p->pid);
		if (p->tag) {
			buf_puts(&b, ",\"tag\":");
			pj_put_str(&b, p->tag, strlen(p->tag));
		}
		buf_puts(&b, "}");
		first = false;
	}
	pthread_mutex_unlock(&table_mu);
	buf_puts(&b, "]}");
	st = rpc_ok(r, &b);
	buf_free(&b);
	return st;
}

/* All n bytes to fd (non-blocking), waiting at most INPUT_WAIT_MS for
 * the process to read; 0, or -1 with errno. */
static int write_input(int fd, const uint8_t *d, size_t n)
{
	int64_t until = mono_ms() + INPUT_WAIT_MS;
	while (n) {
		ssize_t w = write(fd, d, n);
		if (w > 0) {
			d += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		int64_t left = until - mono_ms();
		struct pollfd pf = { .fd = fd, .events = POLLOUT };
		if (left <= 0 || poll(&pf, 1, (int)left) == 0)
			return errno = ETIMEDOUT, -1;
	}
	return 0;
}

/* A ProcessInput ({"stdin":B} or {"pty":B}) to p; 0, or the status
 * answered. */
static int give_input(struct rpc *r, struct eproc *p, const struct jv *input)
{
	static const char *const fields[] = { "stdin", "pty", NULL };
	size_t n = 0, m = 0;
	bool has_stdin, has_pty;
	int st = 0;
	if (!input)
		return r->pj.bad ? rpc_bad(r) : rpc_fail(r, CC_UNIMPLEMENTED, "input: stdin or pty (one of them)");
	pj_fields(&r->pj, input, "input", fields);
	uint8_t *in = pj_bytes(&r->pj, input, "stdin", &n, &has_stdin);
	uint8_t *pt = pj_bytes(&r->pj, input, "pty", &m, &has_pty);
	if (r->pj.bad || has_stdin == has_pty) {
		st = r->pj.bad ? rpc_bad(r) : rpc_fail(r, CC_UNIMPLEMENTED, "input: stdin or pty (one of them)");
		goto out;
	}
	pthread_mutex_lock(&p->in_mu);
	if (has_pty && !p->pty)
		st = rpc_fail(r, CC_INTERNAL, "error writing to tty: tty not assigned to process");
	else if (has_stdin && p->pty)
		st = rpc_fail(r, CC_INTERNAL,
			      "error writing to stdin: tty assigned to process "
			      "(input goes to the pty)");
	else if (has_stdin && p->in < 0)
		st = rpc_fail(r, CC_INTERNAL, "error writing to stdin: stdin not enabled or closed");
	else if (write_input(has_pty ? p->master : p->in, has_pty ? pt : in, has_pty ? m : n) < 0)
		st = rpc_fail(r, CC_INTERNAL, "error writing to %s of process %u: %s", has_pty ? "tty" : "stdin",
			      p->pid, strerror(errno));
	pthread_mutex_unlock(&p->in_mu);
out:
	free(in);
	free(pt);
	return st;
}

int proc_send_input(struct rpc *r)
{
	static const char *const fields[] = { "process", "input", NULL };
	static const char *const input_fields[] = { "stdin", "pty", NULL };
	struct sel sel;
	struct eproc *p;
	int st;
	pj_fields(&r->pj, r->msg, r->name, fields);
	const struct jv *input = pj_msg(&r->pj, r->msg, "input", input_fields);
	if ((st = read_selector(r, r->msg, &sel)) || (st = eproc_find(r, &sel, &p)))
		return st;
	st = give_input(r, p, input);
	eproc_put(p);
	return rpc_ok_empty(r, st);
}

int proc_signal(struct rpc *r)
{
	static const char *const fields[] = { "process", "signal", NULL };
	static const struct pj_enum sigs[] = {
		{ "SIGNAL_UNSPECIFIED", 0 }, { "SIGNAL_SIGTERM", SIGTERM }, { "SIGNAL_SIGKILL", SIGKILL }, { NULL, 0 }
	};
	struct sel sel;
	struct eproc *p;
	int st, sig, rc = 0;
	pj_fields(&r->pj, r->msg, r->name, fields);
	sig = pj_enum(&r->pj, r->msg, "signal", sigs);
	if ((st = read_selector(r, r->msg, &sel)) || (st = eproc_find(r, &sel, &p)))
		return st;
	if (!sig) {
		eproc_put(p);
		return rpc_fail(r, CC_UNIMPLEMENTED, "invalid signal: SIGNAL_UNSPECIFIED");
	}
	/* under mu: until the thread has reaped it, the pid (and group) is
	 * the process's */
	pthread_mutex_lock(&p->mu);
	if (!p->reaped && kill(-(pid_t)p->pid, sig) < 0)
		rc = kill((pid_t)p->pid, sig);
	pthread_mutex_unlock(&p->mu);
	eproc_put(p);
	if (rc < 0 && errno != ESRCH)
		return rpc_fail(r, CC_INTERNAL, "error sending signal: %s", strerror(errno));
	return rpc_ok_empty(r, 0);
}

int proc_close_stdin(struct rpc *r)
{
	static const char *const fields[] = { "process", NULL };
	struct sel sel;
	struct eproc *p;
	int st;
	pj_fields(&r->pj, r->msg, r->name, fields);
	if ((st = read_selector(r, r->msg, &sel)) || (st = eproc_find(r, &sel, &p)))
		return st;
	pthread_mutex_lock(&p->in_mu);
	if (p->pty)
		st = rpc_fail(r, CC_UNKNOWN,
			      "error closing stdin: cannot close stdin for PTY process "
			      "(send Ctrl+D, 0x04, instead)");
	else if (p->in >= 0)
		close(take(&p->in));
	pthread_mutex_unlock(&p->in_mu);
	eproc_put(p);
	return rpc_ok_empty(r, st);
}

int proc_update(struct rpc *r)
{
	static const char *const fields[] = { "process", "pty", NULL };
	static const char *const pty_fields[] = { "size", NULL };
	static const char *const size_fields[] = { "cols", "rows", NULL };
	struct sel sel;
	struct eproc *p;
	int st;
	pj_fields(&r->pj, r->msg, r->name, fields);
	const struct jv *pty = pj_msg(&r->pj, r->msg, "pty", pty_fields);
	const struct jv *size = pj_msg(&r->pj, pty, "size", size_fields);
	struct winsize ws = { .ws_col = (unsigned short)pj_u32(&r->pj, size, "cols", NULL),
			      .ws_row = (unsigned short)pj_u32(&r->pj, size, "rows", NULL) };
	if ((st = read_selector(r, r->msg, &sel)) || (st = eproc_find(r, &sel, &p)))
		return st;
	if (pty && !p->pty)
		st = rpc_fail(r, CC_INTERNAL, "error resizing tty: tty not assigned to process");
	else if (pty && ioctl(p->master, TIOCSWINSZ, &ws) < 0)
		st = rpc_fail(r, CC_INTERNAL, "error resizing tty: %s", strerror(errno));
	eproc_put(p);
	return rpc_ok_empty(r, st);
}

/* ---- StreamInput: a client stream ------------------------------------- */

/* One StreamInputRequest: start (the selector), data (an input) or a
 * keepalive; 0, or the status answered. */
static int stream_event(struct rpc *r, struct eproc **p)
{
	static const char *const fields[] = { "start", "data", "keepalive", NULL };
	static const char *const start_fields[] = { "process", NULL };
	static const char *const data_fields[] = { "input", NULL };
	static const char *const input_fields[] = { "stdin", "pty", NULL };
	static const char *const none[] = { NULL };
	struct sel sel;
	int st;
	pj_fields(&r->pj, r->msg, r->name, fields);
	const struct jv *start = pj_msg(&r->pj, r->msg, "start", start_fields);
	const struct jv *data = pj_msg(&r->pj, r->msg, "data", data_fields);
	const struct jv *ka = pj_msg(&r->pj, r->msg, "keepalive", none);
	if (r->pj.bad || (start != NULL) + (data != NULL) + (ka != NULL) != 1)
		return r->pj.bad ? rpc_bad(r)
				 : rpc_fail(r, CC_UNIMPLEMENTED,
					    "invalid event: start, data or "
					    "keepalive (one of them)");
	if (start) {
		if (*p)
			return rpc_fail(r, CC_INVALID_ARGUMENT, "a second start event");
		if ((st = read_selector(r, start, &sel)) || (st = eproc_find(r, &sel, p)))
			return st;
	} else if (data) {
		if (!*p)
			return rpc_fail(r, CC_FAILED_PRECONDITION, "data before the start event");
		const struct jv *input = pj_msg(&r->pj, data, "input", input_fields);
		return give_input(r, *p, input);
	}
	return 0;
}

int proc_stream_input(struct rpc *r)
{
	struct eproc *p = NULL;
	struct buf *in = &r->raw;
	size_t off = 0;
	int st = buf_reserve(in, 65536) < 0 ? rpc_fail(r, CC_RESOURCE_EXHAUSTED, "out of memory") : 0;
	char err[160];
	while (!st) {
		struct connect_env e;
		ssize_t k = connect_env_parse((const uint8_t *)in->p + off, in->len - off, 1u << 24, &e);
		if (k < 0) {
			st = rpc_fail(r, k == CONNECT_ENV_TOO_BIG ? CC_RESOURCE_EXHAUSTED : CC_INVALID_ARGUMENT,
				      k == CONNECT_ENV_TOO_BIG ? "request message over 16 MiB"
							       : "protocol error: bad envelope flags");
			break;
		}
		if (k > 0) {
			const char *js = e.len ? (const char *)e.msg : "{}";
			size_t jn = e.len ? e.len : 2, end;
			json_free(&r->a);
			r->msg = json_parse(js, jn, &end, &r->a, err, sizeof err);
			while (r->msg && end < jn && strchr(" \t\r\n", js[end]))
				end++;
			if (!r->msg || end != jn || r->msg->t != J_OBJ) {
				st = rpc_fail(r, CC_INVALID_ARGUMENT, "invalid JSON message: %s",
					      !r->msg ? err : "not one object");
				break;
			}
			off += (size_t)k;
			if ((st = stream_event(r, &p)))
				break;
			continue;
		}
		/* more bytes: keep what is unread, then read */
		memmove(in->p, in->p + off, in->len - off);
		in->len -= off;
		off = 0;
		if (buf_reserve(in, 65536) < 0) {
			st = rpc_fail(r, CC_RESOURCE_EXHAUSTED, "out of memory");
			break;
		}
		ssize_t n = body_read(r->b, in->p + in->len, 65536);
		if (n <= 0) {
			if (n < 0 || in->len)
				st = rpc_fail(r, CC_INVALID_ARGUMENT,
					      n < 0 ? "malformed request body" : "protocol error: incomplete envelope");
			break;
		}
		in->len += (size_t)n;
	}
	if (p)
		eproc_put(p);
	if (st) {
		r->c->close_after = true; /* the rest of the body is unread */
		return st;
	}
	if (rpc_stream_begin(r, "{}") == 0)
		rpc_stream_finish(r, 0, NULL);
	return 200;
}
