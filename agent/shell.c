/* PTY sessions over WebSocket: GET /ws/shell (new), /ws/shell/{id}
 * (re-attach), GET /shell/sessions, POST /shell/sessions/{id}/kill.
 *
 * Each session has one thread (session.c) that owns the PTY and every
 * subscriber's socket; this file creates sessions and hands sockets to
 * them.
 */
#define _GNU_SOURCE
#include "session.h"
#include "../proto/ws.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

struct session **sessions;
pthread_mutex_t sessions_mu = PTHREAD_MUTEX_INITIALIZER;

void shell_init(void)
{
	sessions = calloc((size_t)cfg.max_sessions, sizeof *sessions);
	if (!sessions)
		abort();
}

/* ---- creating and attaching ------------------------------------------ */

static const char *allowed_shells[] = { "/bin/sh",	"/bin/bash",	 "/bin/ash",  "/bin/zsh",      "/usr/bin/bash",
					"/usr/bin/zsh", "/usr/bin/fish", "/bin/dash", "/usr/bin/dash", NULL };

static bool shell_allowed(const char *sh)
{
	for (int i = 0; allowed_shells[i]; i++)
		if (!strcmp(sh, allowed_shells[i]))
			return true;
	FILE *f = fopen("/etc/shells", "re");
	char line[512];
	bool ok = false;
	while (f && !ok && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		ok = line[0] == '/' && !strcmp(line, sh);
	}
	if (f)
		fclose(f);
	return ok;
}

static bool executable(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0 && S_ISREG(sb.st_mode) && (sb.st_mode & 0111);
}

static int reply_ws_error(struct conn *c, int status, const char *msg)
{
	c->close_after = true;
	return respond_error(c, status, "%s", msg);
}

/* A new session's request (the query of GET /ws/shell) and what it runs. */
struct shell_req {
	char shell[256], user[128], cmdq[8192], cwd[1024], term[64];
	unsigned cols, rows;
	struct jarena a;
	struct user u;
	char **argv, **envp;
	char path[4096];
};

/* Read and check the query; 0, or -1 with why filled (a 400). */
static int read_query(const char *query, struct shell_req *r, char *why, size_t wl)
{
	char num[16];
	if (query) {
		http_query(query, "shell", r->shell, sizeof r->shell);
		http_query(query, "user", r->user, sizeof r->user);
		http_query(query, "cmd", r->cmdq, sizeof r->cmdq);
		http_query(query, "cwd", r->cwd, sizeof r->cwd);
		if (http_query(query, "term", r->term, sizeof r->term) >= 0 && !r->term[0])
			snprintf(r->term, sizeof r->term, "xterm-256color");
		if (http_query(query, "cols", num, sizeof num) > 0)
			r->cols = (unsigned)strtoul(num, NULL, 10);
		if (http_query(query, "rows", num, sizeof num) > 0)
			r->rows = (unsigned)strtoul(num, NULL, 10);
	}
	if (r->cols < 1 || r->cols > 1000 || r->rows < 1 || r->rows > 1000) {
		snprintf(why, wl, "cols and rows must be 1-1000");
		return -1;
	}
	for (char *p = r->term; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '.')) {
			snprintf(why, wl, "term: letters, digits, '-' and '.' only");
			return -1;
		}
	if (r->cwd[0] && r->cwd[0] != '/') {
		snprintf(why, wl, "cwd must be absolute");
		return -1;
	}
	return user_resolve(r->user, &r->u, why, wl);
}

/* argv, environment and program path: the command asked for, else a
 * login shell; 0, or -1 with why and *status filled. */
static int choose_program(struct shell_req *r, char *why, size_t wl, int *status)
{
	if (r->cmdq[0]) {
		char err[128];
		struct jv *v = json_parse(r->cmdq, strlen(r->cmdq), NULL, &r->a, err, sizeof err);
		if (!v || v->t != J_ARR || !v->n) {
			snprintf(why, wl, "cmd must be a JSON array of strings: %s", v ? "not an array" : err);
			return -1;
		}
		r->argv = calloc(v->n + 1, sizeof *r->argv);
		size_t i = 0;
		for (struct jv *x = v->child; x && r->argv; x = x->next) {
			if (x->t != J_STR) {
				snprintf(why, wl, "cmd must be a JSON array of strings");
				return -1;
			}
			r->argv[i++] = x->s;
		}
	} else {
		if (!r->shell[0]) {
			const char *cands[] = { r->u.shell, "/bin/bash", "/bin/sh" };
			for (size_t i = 0; i < 3 && !r->shell[0]; i++)
				if (cands[i][0] && shell_allowed(cands[i]) && executable(cands[i]))
					snprintf(r->shell, sizeof r->shell, "%s", cands[i]);
		} else if (!shell_allowed(r->shell)) {
			snprintf(why, wl,
				 "shell not allowed: %s (allowed: those in /etc/shells and /bin/sh, "
				 "/bin/bash, /bin/ash, /bin/zsh, /usr/bin/fish, ...)",
				 r->shell);
			return -1;
		}
		if (!r->shell[0] || !executable(r->shell)) {
			snprintf(why, wl, "no shell: %s is not in this guest", r->shell[0] ? r->shell : "/bin/sh");
			return -1;
		}
		r->argv = calloc(2, sizeof *r->argv);
		if (r->argv) {
			/* A login shell, so the image's profile sets PATH and prompt. */
			static __thread char argv0[260];
			const char *b = strrchr(r->shell, '/');
			snprintf(argv0, sizeof argv0, "-%s", b ? b + 1 : r->shell);
			r->argv[0] = argv0;
		}
	}
	if (!r->argv) {
		snprintf(why, wl, "out of memory");
		*status = 500;
		return -1;
	}
	if (!(r->envp = env_build(&r->u, NULL, r->term, why, wl)))
		return -1;
	if (r->cmdq[0]) {
		if (path_search(r->argv[0], env_get(r->envp, "PATH"), r->path, sizeof r->path) < 0) {
			snprintf(why, wl, "%s: command not found", r->argv[0]);
			return -1;
		}
	} else
		snprintf(r->path, sizeof r->path, "%s", r->shell);
	return 0;
}

/* A free slot, with a new session in it; NULL with why and *status
 * filled. */
static struct session *session_reserve(const struct shell_req *r, char *why, size_t wl, int *status)
{
	struct session *se = NULL;
	pthread_mutex_lock(&sessions_mu);
	int slot = -1;
	for (int i = 0; i < cfg.max_sessions && slot < 0; i++)
		if (!sessions[i])
			slot = i;
	if (slot >= 0) {
		se = calloc(1, sizeof *se);
		if (se)
			sessions[slot] = se; /* reserved; filled below */
	}
	pthread_mutex_unlock(&sessions_mu);
	if (slot < 0) {
		*status = 429;
		snprintf(why, wl, "too many concurrent sessions (limit %d)", cfg.max_sessions);
		return NULL;
	}
	if (!se) {
		*status = 500;
		snprintf(why, wl, "out of memory");
		return NULL;
	}
	se->master = -1;
	se->pidfd = -1;
	se->wake[0] = se->wake[1] = -1;
	pthread_mutex_init(&se->mu, NULL);
	random_hex(se->id, 32);
	snprintf(se->shell, sizeof se->shell, "%s", r->cmdq[0] ? r->argv[0] : r->shell);
	ts_now(se->created);
	for (int i = 0; i < MAX_SUBS; i++)
		se->subs[i].fd = -1;
	return se;
}

/* Undo session_reserve (and what start_program opened, and any socket
 * queued for the thread that never started). */
static void session_release(struct session *se)
{
	pthread_mutex_lock(&sessions_mu);
	for (int i = 0; i < cfg.max_sessions; i++)
		if (sessions[i] == se)
			sessions[i] = NULL;
	pthread_mutex_unlock(&sessions_mu);
	for (int i = 0; i < se->npending; i++) {
		close(se->pending[i].fd);
		free(se->pending[i].data);
	}
	if (se->master >= 0)
		close(se->master);
	if (se->pidfd >= 0)
		close(se->pidfd);
	if (se->wake[0] >= 0) {
		close(se->wake[0]);
		close(se->wake[1]);
	}
	pthread_mutex_destroy(&se->mu);
	free(se);
}

/* In the forked child: the PTY as controlling terminal and stdio, the
 * user's credentials, the directory, then the program; errno on rep when
 * any of it fails. */
__attribute__((noreturn)) static void pty_child(const struct shell_req *r, const char *slave, int rep)
{
	const char *dir = r->cwd[0] ? r->cwd : r->u.home;
	int e = 0;
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	int s = open(slave, O_RDWR);
	if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0 || dup2(s, 0) < 0 || dup2(s, 1) < 0 || dup2(s, 2) < 0)
		goto child_fail;
	if (s > 2)
		close(s);
	if (syscall(SYS_close_range, 3, ~0U, 4) < 0)
		for (int fd = 3; fd < 1024; fd++)
			if (fd != rep)
				close(fd);
	if (syscall(SYS_setgroups, r->u.ngroups, r->u.groups) < 0 || syscall(SYS_setgid, r->u.gid) < 0 ||
	    syscall(SYS_setuid, r->u.uid) < 0)
		goto child_fail;
	if (chdir(dir) < 0 && (r->cwd[0] || chdir("/") < 0))
		goto child_fail;
	execve(r->path, r->argv, r->envp);
child_fail:
	e = errno;
	(void)!write(rep, &e, sizeof e);
	_exit(127);
}

/* The PTY and the program on it (the thread comes with session_launch);
 * 0, or -1 with why and *status filled. */
static int start_program(struct session *se, const struct shell_req *r, char *why, size_t wl, int *status)
{
	char slave[64];
	int rep[2] = { -1, -1 };
	*status = 500;
	se->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (se->master < 0 || grantpt(se->master) < 0 || unlockpt(se->master) < 0 ||
	    ptsname_r(se->master, slave, sizeof slave) != 0 || pipe2(se->wake, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    pipe2(rep, O_CLOEXEC) < 0) {
		snprintf(why, wl, "cannot allocate a pty: %s", strerror(errno));
		return -1;
	}
	struct winsize ws = { .ws_row = (unsigned short)r->rows, .ws_col = (unsigned short)r->cols };
	ioctl(se->master, TIOCSWINSZ, &ws);
	pid_t pid = fork();
	if (pid == 0)
		pty_child(r, slave, rep[1]);
	close(rep[1]);
	int cerr = 0;
	ssize_t rn = pid > 0 ? read(rep[0], &cerr, sizeof cerr) : -1;
	close(rep[0]);
	if (pid < 0 || rn == (ssize_t)sizeof cerr) {
		if (pid > 0)
			waitpid(pid, NULL, 0);
		snprintf(why, wl, "cannot start %.200s: %s", r->path, strerror(pid < 0 ? errno : cerr));
		return -1;
	}
	se->pid = pid;
	se->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	fcntl(se->master, F_SETFL, O_NONBLOCK);
	return 0;
}

/* The session's thread, which owns the session from here on and frees it
 * when the program has ended: whoever started it must not touch it after
 * this (a program like `true` ends, and its session is freed, at once).
 * When the thread cannot start, the program is killed and the session,
 * with any socket queued for it, undone. */
static int session_launch(struct session *se)
{
	pthread_t t;
	pthread_attr_t at;
	int rc;

	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 256 * 1024);
	rc = pthread_create(&t, &at, session_thread, se);
	pthread_attr_destroy(&at);
	if (rc == 0)
		return 0;
	kill(-se->pid, SIGKILL);
	waitpid(se->pid, NULL, 0);
	logj("error", "session failed", "\"sessionId\":\"%s\",\"error\":\"cannot start the session thread\"", se->id);
	session_release(se);
	return -1;
}

/* A new session from the query: checked, reserved, its program started,
 * its thread not yet (see session_launch); NULL with why and *status
 * (400, 429, 500) filled. */
static struct session *spawn_session(struct conn *c, const char *query, char *why, size_t wl, int *status)
{
	struct shell_req *r = &(struct shell_req){ .term = "xterm-256color", .cols = 80, .rows = 24 };
	struct session *se = NULL;
	*status = 400;
	if (read_query(query, r, why, wl) == 0 && choose_program(r, why, wl, status) == 0 &&
	    (se = session_reserve(r, why, wl, status))) {
		if (start_program(se, r, why, wl, status) < 0) {
			session_release(se);
			se = NULL;
		} else
			logj("info", "session started", "\"sessionId\":\"%s\",\"pid\":%d,\"remote\":\"%s\"", se->id,
			     (int)se->pid, c->peer);
	}
	free(r->argv);
	env_free(r->envp);
	json_free(&r->a);
	return se;
}

static struct session *find_session(const char *sid)
{
	for (int i = 0; i < cfg.max_sessions; i++)
		if (sessions[i] && sessions[i]->pid && !strcmp(sessions[i]->id, sid))
			return sessions[i];
	return NULL;
}

/* The socket, and any bytes already read past the handshake, queued for
 * the session's thread to adopt; under se->mu.  False when too many
 * sockets wait or there is no memory. */
static bool queue_conn(struct session *se, struct conn *c)
{
	size_t extra = c->rlen - c->rpos;
	char *d = extra ? malloc(extra) : NULL;

	if (se->npending >= MAX_PENDING || (extra && !d)) {
		free(d);
		return false;
	}
	if (extra)
		memcpy(d, c->rbuf + c->rpos, extra);
	se->pending[se->npending].fd = c->fd;
	se->pending[se->npending].data = d;
	se->pending[se->npending].len = extra;
	se->npending++;
	c->fd = -1;
	return true;
}

/* Hand the socket to a running session, found again by id under the lock
 * (it may have ended since it was looked up); false, with a close frame
 * sent, when the session is gone or has too many sockets waiting. */
static bool hand_over(struct conn *c, const char *sid)
{
	pthread_mutex_lock(&sessions_mu);
	struct session *se = find_session(sid);
	bool ok = false;
	if (se) {
		pthread_mutex_lock(&se->mu);
		ok = queue_conn(se, c);
		pthread_mutex_unlock(&se->mu);
		if (ok)
			(void)!write(se->wake[1], "x", 1);
	}
	pthread_mutex_unlock(&sessions_mu);
	if (!ok) {
		static const uint8_t bye[] = { 0x88, 19,  0x03, 0xe8, 's', 'e', 's', 's', 'i', 'o', 'n',
					       ' ',  'd', 'e',	's',  't', 'r', 'o', 'y', 'e', 'd' };
		conn_send(c, bye, sizeof bye);
		c->close_after = true;
	}
	return ok;
}

bool handle_ws_shell(struct conn *c, struct http_head *hd, const char *sid, const char *query)
{
	char key[64], ver[16], accept[29], why[512];
	if (!hd->upgrade_websocket) {
		reply_ws_error(c, 426, "this endpoint needs a WebSocket upgrade");
		return false;
	}
	if (http_header(hd, "sec-websocket-version", ver, sizeof ver) < 0 || strcmp(ver, "13")) {
		c->close_after = true;
		static const char body[] = "{\"error\":\"unsupported WebSocket version (13 is spoken here)\"}\n";
		char r[512];
		int rn =
			snprintf(r, sizeof r,
				 "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"
				 "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
				 sizeof body - 1, body);
		conn_send(c, r, (size_t)rn);
		return false;
	}
	if (http_header(hd, "sec-websocket-key", key, sizeof key) < 0 || ws_accept_key(key, accept) < 0) {
		reply_ws_error(c, 400, "bad Sec-WebSocket-Key");
		return false;
	}
	char resp[256];
	int n = snprintf(resp, sizeof resp,
			 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			 accept);
	if (sid) {
		pthread_mutex_lock(&sessions_mu);
		bool found = find_session(sid) != NULL;
		pthread_mutex_unlock(&sessions_mu);
		if (!found) {
			reply_ws_error(c, 404, "session not found");
			return false;
		}
		if (conn_send(c, resp, (size_t)n) < 0) {
			c->close_after = true;
			return false;
		}
		return hand_over(c, sid);
	}
	/* A new session: its creator is its first subscriber before its
	 * thread starts, so a program that ends at once still reports its
	 * exit, and nothing here reads the session after the launch. */
	int status;
	struct session *se = spawn_session(c, query, why, sizeof why, &status);
	if (!se) {
		reply_ws_error(c, status, why);
		return false;
	}
	char idmsg[64], hello[8 + 64];
	int idn = snprintf(idmsg, sizeof idmsg, "{\"sessionId\":\"%s\"}", se->id);
	size_t hl = ws_encode_header((uint8_t *)hello, WS_TEXT, true, (uint64_t)idn, NULL);
	memcpy(hello + hl, idmsg, (size_t)idn);
	hl += (size_t)idn;
	bool queued = false;
	if (conn_send(c, resp, (size_t)n) == 0 && conn_send(c, hello, hl) == 0) {
		pthread_mutex_lock(&se->mu);
		queued = queue_conn(se, c);
		pthread_mutex_unlock(&se->mu);
		if (queued)
			(void)!write(se->wake[1], "x", 1);
	}
	if (!queued)
		c->close_after = true; /* without subscribers it ends after the grace period */
	return session_launch(se) == 0 ? queued : c->fd < 0;
}

void handle_sessions_list(struct conn *c)
{
	struct buf b = { 0 };
	buf_puts(&b, "[");
	pthread_mutex_lock(&sessions_mu);
	bool first = true;
	for (int i = 0; i < cfg.max_sessions; i++) {
		struct session *se = sessions[i];
		if (!se || !se->pid)
			continue;
		pthread_mutex_lock(&se->mu);
		int ns = se->nsubs_visible;
		pthread_mutex_unlock(&se->mu);
		buf_printf(&b, "%s{\"sessionId\":\"%s\",\"shell\":", first ? "" : ",", se->id);
		buf_jstr(&b, se->shell, strlen(se->shell));
		buf_printf(&b, ",\"pid\":%d,\"createdAt\":\"%s\",\"subscriberCount\":%d}", (int)se->pid, se->created,
			   ns);
		first = false;
	}
	pthread_mutex_unlock(&sessions_mu);
	buf_puts(&b, "]\n");
	respond(c, 200, "application/json", b.p, b.len);
	buf_free(&b);
}

void handle_session_kill(struct conn *c, const char *sid)
{
	pthread_mutex_lock(&sessions_mu);
	struct session *se = find_session(sid);
	if (se) {
		pthread_mutex_lock(&se->mu);
		se->kill_req = true;
		pthread_mutex_unlock(&se->mu);
		(void)!write(se->wake[1], "k", 1);
	}
	pthread_mutex_unlock(&sessions_mu);
	if (!se)
		respond_error(c, 404, "session not found");
	else
		respond(c, 200, "application/json", "{\"ok\":true}\n", 12);
}
