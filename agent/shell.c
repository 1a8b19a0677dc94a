/* PTY sessions over WebSocket: GET /ws/shell (new), /ws/shell/{id}
 * (re-attach), GET /shell/sessions, POST /shell/sessions/{id}/kill.
 *
 * Each session has one thread that owns the PTY and every subscriber's
 * socket: it reads the PTY and fans out, reads frames and writes input,
 * and ends the session when the program exits, when it is killed, or
 * when nobody has been attached for the grace period.  The last 64 KiB
 * of output are kept and replayed to each subscriber when it says Ready,
 * so a re-attached terminal shows where it was.
 */
#define _GNU_SOURCE
#include "agent.h"
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

#define RING (64 * 1024)
#define MSG_MAX (64 * 1024)
#define IN_CAP (MSG_MAX + 64)
#define OUT_MAX (1 << 20)
#define MAX_SUBS 8
#define MAX_PENDING 16

enum { T_DATA = 0, T_RESIZE = 1, T_READY = 2 };

struct sub {
	int fd;
	bool ready, dead;
	uint8_t *in;
	size_t inlen;
	uint8_t *msg;
	size_t msglen;
	int msgop;
	bool inmsg;
	struct buf out;
};

struct session {
	char id[33];
	char shell[256];
	char created[64];
	pid_t pid;
	int master, pidfd;
	int wake[2];
	pthread_mutex_t mu;
	struct { int fd; char *data; size_t len; } pending[MAX_PENDING];
	int npending;
	bool kill_req, dying;
	int nsubs_visible;
	struct sub subs[MAX_SUBS];
	int nsubs;
	uint8_t ring[RING];
	size_t ringpos;
	bool ringfull;
	struct buf input;       /* bytes for the PTY not yet written */
};

static struct session **sessions;
static pthread_mutex_t sessions_mu = PTHREAD_MUTEX_INITIALIZER;

void shell_init(void)
{
	sessions = calloc((size_t)cfg.max_sessions, sizeof *sessions);
	if (!sessions)
		abort();
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- frames out ------------------------------------------------------ */

static void queue_frame(struct sub *s, int op, uint8_t type, const void *p, size_t n, bool typed)
{
	uint8_t h[16];
	size_t hl = ws_encode_header(h, op, true, n + (typed ? 1 : 0), NULL);
	buf_put(&s->out, h, hl);
	if (typed)
		buf_put(&s->out, &type, 1);
	if (n)
		buf_put(&s->out, p, n);
}

static void queue_close(struct sub *s, int code, const char *reason)
{
	uint8_t p[125];
	size_t rl = strlen(reason);
	if (rl > 120)
		rl = 120;
	p[0] = (uint8_t)(code >> 8);
	p[1] = (uint8_t)code;
	memcpy(p + 2, reason, rl);
	queue_frame(s, WS_CLOSE, 0, p, rl + 2, false);
	s->dead = true;
}

static void flush_sub(struct sub *s)
{
	while (s->out.len) {
		ssize_t w = send(s->fd, s->out.p, s->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			s->out.len = 0;
			s->dead = true;
			return;
		}
		memmove(s->out.p, s->out.p + w, s->out.len - (size_t)w);
		s->out.len -= (size_t)w;
	}
}

static void send_output(struct sub *s, const uint8_t *p, size_t n)
{
	while (n) {
		size_t k = n > MSG_MAX - 1 ? MSG_MAX - 1 : n;
		queue_frame(s, WS_BINARY, T_DATA, p, k, true);
		p += k;
		n -= k;
	}
	if (s->out.len > OUT_MAX) {
		/* Too slow to keep up: rather than drop bytes (and corrupt the
		 * terminal) it is detached and may re-attach for the replay. */
		s->out.len = 0;
		queue_close(s, WS_CLOSE_POLICY, "subscriber too slow; re-attach");
	}
}

static void replay_ring(struct session *se, struct sub *s)
{
	if (se->ringfull)
		send_output(s, se->ring + se->ringpos, RING - se->ringpos);
	send_output(s, se->ring, se->ringpos);
}

static void ring_add(struct session *se, const uint8_t *p, size_t n)
{
	while (n) {
		size_t k = RING - se->ringpos < n ? RING - se->ringpos : n;
		memcpy(se->ring + se->ringpos, p, k);
		se->ringpos += k;
		p += k;
		n -= k;
		if (se->ringpos == RING) {
			se->ringpos = 0;
			se->ringfull = true;
		}
	}
}

/* ---- frames in ------------------------------------------------------- */

static void on_message(struct session *se, struct sub *s, int op, uint8_t *p, size_t n)
{
	if (op == WS_TEXT) {
		if (ws_utf8_step(WS_UTF8_ACCEPT, p, n) != WS_UTF8_ACCEPT)
			queue_close(s, 1007, "invalid UTF-8");
		return;     /* text messages carry nothing for us */
	}
	if (n < 1)
		return;
	switch (p[0]) {
	case T_DATA:
		if (se->input.len + n - 1 > OUT_MAX)
			return;   /* the program is not reading: drop, as a full tty would block */
		buf_put(&se->input, p + 1, n - 1);
		break;
	case T_RESIZE:
		if (n == 5) {
			struct winsize ws = { .ws_col = (unsigned short)(p[1] << 8 | p[2]),
					      .ws_row = (unsigned short)(p[3] << 8 | p[4]) };
			if (ws.ws_col && ws.ws_row)
				ioctl(se->master, TIOCSWINSZ, &ws);
		}
		break;
	case T_READY:
		if (!s->ready) {
			s->ready = true;
			replay_ring(se, s);
		}
		break;
	default:
		break;
	}
}

static void read_sub(struct session *se, struct sub *s)
{
	ssize_t r = recv(s->fd, s->in + s->inlen, IN_CAP - s->inlen, MSG_DONTWAIT);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
		s->dead = true;
		s->out.len = 0;
		return;
	}
	if (r < 0)
		return;
	s->inlen += (size_t)r;
	for (;;) {
		struct ws_frame f;
		int k = ws_parse_header(s->in, s->inlen, true, MSG_MAX, &f);
		if (k < 0) {
			queue_close(s, -k, k == -WS_CLOSE_TOO_BIG ? "message too big" : "protocol error");
			return;
		}
		if (k == 0 || s->inlen < f.hdrlen + f.len)
			return;
		uint8_t *p = s->in + f.hdrlen;
		size_t n = (size_t)f.len;
		ws_unmask(p, n, f.mask, 0);
		switch (f.opcode) {
		case WS_CLOSE: {
			int code = n >= 2 ? p[0] << 8 | p[1] : WS_CLOSE_NORMAL;
			queue_close(s, code >= 1000 && code < 5000 && code != 1005 && code != 1006 ? code : 1002, "");
			return;
		}
		case WS_PING:
			queue_frame(s, WS_PONG, 0, p, n, false);
			break;
		case WS_PONG:
			break;
		case WS_TEXT:
		case WS_BINARY:
			if (s->inmsg) {
				queue_close(s, WS_CLOSE_PROTOCOL, "new message inside a fragmented one");
				return;
			}
			if (f.fin)
				on_message(se, s, f.opcode, p, n);
			else {
				s->inmsg = true;
				s->msgop = f.opcode;
				s->msglen = n;
				memcpy(s->msg, p, n);
			}
			break;
		case WS_CONT:
			if (!s->inmsg) {
				queue_close(s, WS_CLOSE_PROTOCOL, "continuation without a message");
				return;
			}
			if (s->msglen + n > MSG_MAX) {
				queue_close(s, WS_CLOSE_TOO_BIG, "message too big");
				return;
			}
			memcpy(s->msg + s->msglen, p, n);
			s->msglen += n;
			if (f.fin) {
				s->inmsg = false;
				on_message(se, s, s->msgop, s->msg, s->msglen);
			}
			break;
		}
		size_t used = f.hdrlen + n;
		memmove(s->in, s->in + used, s->inlen - used);
		s->inlen -= used;
		if (s->dead)
			return;
	}
}

/* ---- session thread -------------------------------------------------- */

static void sub_free(struct sub *s)
{
	if (s->fd >= 0) {
		flush_sub(s);
		shutdown(s->fd, SHUT_RDWR);
		close(s->fd);
	}
	free(s->in);
	free(s->msg);
	buf_free(&s->out);
	memset(s, 0, sizeof *s);
	s->fd = -1;
}

static void adopt_pending(struct session *se)
{
	pthread_mutex_lock(&se->mu);
	for (int i = 0; i < se->npending; i++) {
		int fd = se->pending[i].fd;
		struct sub *s = NULL;
		if (se->nsubs < MAX_SUBS && se->nsubs < cfg.max_subscribers)
			s = &se->subs[se->nsubs];
		if (s) {
			memset(s, 0, sizeof *s);
			s->fd = fd;
			s->in = malloc(IN_CAP);
			s->msg = malloc(MSG_MAX);
		}
		if (!s || !s->in || !s->msg) {
			struct sub tmp = { .fd = fd };
			if (s) {
				free(s->in);
				free(s->msg);
			}
			queue_close(&tmp, WS_CLOSE_POLICY, "too many subscribers");
			flush_sub(&tmp);
			buf_free(&tmp.out);
			close(fd);
		} else {
			size_t k = se->pending[i].len < IN_CAP ? se->pending[i].len : IN_CAP;
			memcpy(s->in, se->pending[i].data, k);
			s->inlen = k;
			se->nsubs++;
		}
		free(se->pending[i].data);
	}
	se->npending = 0;
	se->nsubs_visible = se->nsubs;
	pthread_mutex_unlock(&se->mu);
}

static void *session_thread(void *arg)
{
	struct session *se = arg;
	uint8_t *buf = malloc(32 * 1024);
	bool exited = false, master_eof = false;
	int status = 0;
	int64_t empty_since = mono_ms(), exit_at = 0;

	while (buf) {
		struct pollfd pf[3 + MAX_SUBS];
		int np = 0;
		pf[np++] = (struct pollfd){ .fd = se->wake[0], .events = POLLIN };
		int imaster = -1, ipid = -1;
		if (!master_eof) {
			imaster = np;
			pf[np++] = (struct pollfd){ .fd = se->master,
				.events = (short)(POLLIN | (se->input.len ? POLLOUT : 0)) };
		}
		if (!exited && se->pidfd >= 0) {
			ipid = np;
			pf[np++] = (struct pollfd){ .fd = se->pidfd, .events = POLLIN };
		}
		int sub0 = np;
		for (int i = 0; i < se->nsubs; i++)
			pf[np++] = (struct pollfd){ .fd = se->subs[i].fd,
				.events = (short)(POLLIN | (se->subs[i].out.len ? POLLOUT : 0)) };
		int timeout = se->nsubs ? -1 : 500;
		if (exited || se->pidfd < 0)
			timeout = 50;
		poll(pf, (nfds_t)np, timeout);

		if (pf[0].revents) {
			char d[64];
			while (read(se->wake[0], d, sizeof d) > 0)
				;
			adopt_pending(se);
		}
		if (imaster >= 0 && (pf[imaster].revents & POLLOUT) && se->input.len) {
			ssize_t w = write(se->master, se->input.p, se->input.len);
			if (w > 0) {
				memmove(se->input.p, se->input.p + w, se->input.len - (size_t)w);
				se->input.len -= (size_t)w;
			}
		}
		if (imaster >= 0 && (pf[imaster].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t r = read(se->master, buf, 32 * 1024);
			if (r > 0) {
				ring_add(se, buf, (size_t)r);
				for (int i = 0; i < se->nsubs; i++)
					if (se->subs[i].ready && !se->subs[i].dead)
						send_output(&se->subs[i], buf, (size_t)r);
			} else if (r == 0 || (errno != EAGAIN && errno != EINTR))
				master_eof = true;   /* EIO: every slave fd is closed */
		}
		if (!exited && ((ipid >= 0 && pf[ipid].revents) || se->pidfd < 0)) {
			if (waitpid(se->pid, &status, WNOHANG) == se->pid) {
				exited = true;
				exit_at = mono_ms();
			}
		}
		for (int i = 0; i < se->nsubs; i++) {
			short re = pf[sub0 + i].revents;
			if (sub0 + i < np && (re & POLLIN) && !se->subs[i].dead)
				read_sub(se, &se->subs[i]);
			else if (re & (POLLHUP | POLLERR))
				se->subs[i].dead = true;
			flush_sub(&se->subs[i]);
		}
		/* Drop the subscribers that are gone. */
		bool changed = false;
		for (int i = 0; i < se->nsubs;) {
			if (se->subs[i].dead) {
				sub_free(&se->subs[i]);
				se->subs[i] = se->subs[se->nsubs - 1];
				se->subs[se->nsubs - 1].fd = -1;
				se->nsubs--;
				changed = true;
			} else
				i++;
		}
		if (changed) {
			pthread_mutex_lock(&se->mu);
			se->nsubs_visible = se->nsubs;
			pthread_mutex_unlock(&se->mu);
		}
		int64_t now = mono_ms();
		if (se->nsubs)
			empty_since = 0;
		else if (!empty_since)
			empty_since = now;
		pthread_mutex_lock(&se->mu);
		bool kill_req = se->kill_req;
		pthread_mutex_unlock(&se->mu);
		bool grace_over = !se->nsubs && empty_since && now - empty_since >= (int64_t)cfg.session_grace * 1000;
		if (!exited && (kill_req || grace_over)) {
			kill(-se->pid, SIGHUP);
			kill(-se->pid, SIGKILL);
			while (waitpid(se->pid, &status, 0) < 0 && errno == EINTR)
				;
			exited = true;
			exit_at = now;
		}
		/* After exit, output still in the PTY is passed on for a moment. */
		if (exited && (master_eof || now - exit_at > 200))
			break;
	}
	/* Tell everyone how it ended, then take the session down. */
	pthread_mutex_lock(&sessions_mu);
	for (int i = 0; i < cfg.max_sessions; i++)
		if (sessions[i] == se)
			sessions[i] = NULL;
	pthread_mutex_unlock(&sessions_mu);
	adopt_pending(se);
	char ex[96];
	int n = WIFSIGNALED(status)
		? snprintf(ex, sizeof ex, "{\"type\":\"exit\",\"exitCode\":%d,\"signal\":\"SIG%s\"}",
			   128 + WTERMSIG(status), signal_name(WTERMSIG(status)) ? signal_name(WTERMSIG(status)) : "UNKNOWN")
		: snprintf(ex, sizeof ex, "{\"type\":\"exit\",\"exitCode\":%d}", WEXITSTATUS(status));
	for (int i = 0; i < se->nsubs; i++) {
		struct sub *s = &se->subs[i];
		if (!s->dead) {
			queue_frame(s, WS_TEXT, 0, ex, (size_t)n, false);
			queue_close(s, WS_CLOSE_NORMAL, "session destroyed");
			/* Give a slow reader a little time for the last bytes. */
			for (int tries = 0; s->out.len && tries < 20; tries++) {
				struct pollfd p = { .fd = s->fd, .events = POLLOUT };
				poll(&p, 1, 50);
				flush_sub(s);
			}
		}
		sub_free(s);
	}
	logj("info", "session ended", "\"sessionId\":\"%s\",\"status\":%d", se->id, status);
	close(se->master);
	if (se->pidfd >= 0)
		close(se->pidfd);
	close(se->wake[0]);
	close(se->wake[1]);
	buf_free(&se->input);
	pthread_mutex_destroy(&se->mu);
	free(se);
	free(buf);
	return NULL;
}

/* ---- creating and attaching ------------------------------------------ */

static const char *allowed_shells[] = { "/bin/sh", "/bin/bash", "/bin/ash", "/bin/zsh",
	"/usr/bin/bash", "/usr/bin/zsh", "/usr/bin/fish", "/bin/dash", "/usr/bin/dash", NULL };

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

static struct session *spawn_session(struct conn *c, const char *query, char *why, size_t wl,
				     int *status)
{
	char shell[256] = "", user[128] = "", cmdq[8192] = "", cwd[1024] = "", term[64] = "xterm-256color";
	char num[16];
	unsigned cols = 80, rows = 24;
	struct jarena a = { 0 };
	struct user u;
	char **argv = NULL, **envp = NULL;
	struct session *se = NULL;
	*status = 400;

	if (query) {
		http_query(query, "shell", shell, sizeof shell);
		http_query(query, "user", user, sizeof user);
		http_query(query, "cmd", cmdq, sizeof cmdq);
		http_query(query, "cwd", cwd, sizeof cwd);
		if (http_query(query, "term", term, sizeof term) >= 0 && !term[0])
			snprintf(term, sizeof term, "xterm-256color");
		if (http_query(query, "cols", num, sizeof num) > 0)
			cols = (unsigned)strtoul(num, NULL, 10);
		if (http_query(query, "rows", num, sizeof num) > 0)
			rows = (unsigned)strtoul(num, NULL, 10);
	}
	if (cols < 1 || cols > 1000 || rows < 1 || rows > 1000) {
		snprintf(why, wl, "cols and rows must be 1-1000");
		return NULL;
	}
	for (char *p = term; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.')) {
			snprintf(why, wl, "term: letters, digits, '-' and '.' only");
			return NULL;
		}
	if (cwd[0] && cwd[0] != '/') {
		snprintf(why, wl, "cwd must be absolute");
		return NULL;
	}
	if (user_resolve(user, &u, why, wl) < 0)
		return NULL;
	if (cmdq[0]) {
		char err[128];
		struct jv *v = json_parse(cmdq, strlen(cmdq), NULL, &a, err, sizeof err);
		if (!v || v->t != J_ARR || !v->n) {
			snprintf(why, wl, "cmd must be a JSON array of strings: %s", v ? "not an array" : err);
			goto fail;
		}
		argv = calloc(v->n + 1, sizeof *argv);
		size_t i = 0;
		for (struct jv *x = v->child; x && argv; x = x->next) {
			if (x->t != J_STR) {
				snprintf(why, wl, "cmd must be a JSON array of strings");
				goto fail;
			}
			argv[i++] = x->s;
		}
	} else {
		if (!shell[0]) {
			const char *cands[] = { u.shell, "/bin/bash", "/bin/sh" };
			for (size_t i = 0; i < 3 && !shell[0]; i++)
				if (cands[i][0] && shell_allowed(cands[i]) && executable(cands[i]))
					snprintf(shell, sizeof shell, "%s", cands[i]);
		} else if (!shell_allowed(shell)) {
			snprintf(why, wl, "shell not allowed: %s (allowed: those in /etc/shells and /bin/sh, "
				 "/bin/bash, /bin/ash, /bin/zsh, /usr/bin/fish, ...)", shell);
			goto fail;
		}
		if (!shell[0] || !executable(shell)) {
			snprintf(why, wl, "no shell: %s is not in this guest", shell[0] ? shell : "/bin/sh");
			goto fail;
		}
		argv = calloc(2, sizeof *argv);
		if (argv) {
			/* A login shell, so the image's profile sets PATH and prompt. */
			static __thread char argv0[260];
			const char *b = strrchr(shell, '/');
			snprintf(argv0, sizeof argv0, "-%s", b ? b + 1 : shell);
			argv[0] = argv0;
		}
	}
	if (!argv) {
		snprintf(why, wl, "out of memory");
		*status = 500;
		goto fail;
	}
	char path[4096];
	if (!(envp = env_build(&u, NULL, term, why, wl)))
		goto fail;
	if (cmdq[0]) {
		if (path_search(argv[0], env_get(envp, "PATH"), path, sizeof path) < 0) {
			snprintf(why, wl, "%s: command not found", argv[0]);
			goto fail;
		}
	} else
		snprintf(path, sizeof path, "%s", shell);

	pthread_mutex_lock(&sessions_mu);
	int slot = -1;
	for (int i = 0; i < cfg.max_sessions && slot < 0; i++)
		if (!sessions[i])
			slot = i;
	if (slot >= 0) {
		se = calloc(1, sizeof *se);
		if (se)
			sessions[slot] = se;     /* reserved; filled below */
	}
	pthread_mutex_unlock(&sessions_mu);
	if (slot < 0) {
		*status = 429;
		snprintf(why, wl, "too many concurrent sessions (limit %d)", cfg.max_sessions);
		goto fail;
	}
	if (!se) {
		*status = 500;
		snprintf(why, wl, "out of memory");
		goto fail;
	}
	se->master = -1;
	se->pidfd = -1;
	se->wake[0] = se->wake[1] = -1;
	pthread_mutex_init(&se->mu, NULL);
	random_hex(se->id, 32);
	snprintf(se->shell, sizeof se->shell, "%s", cmdq[0] ? argv[0] : shell);
	ts_now(se->created);
	for (int i = 0; i < MAX_SUBS; i++)
		se->subs[i].fd = -1;

	char slave[64];
	int rep[2] = { -1, -1 };
	se->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (se->master < 0 || grantpt(se->master) < 0 || unlockpt(se->master) < 0 ||
	    ptsname_r(se->master, slave, sizeof slave) != 0 || pipe2(se->wake, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    pipe2(rep, O_CLOEXEC) < 0) {
		*status = 500;
		snprintf(why, wl, "cannot allocate a pty: %s", strerror(errno));
		goto fail_se;
	}
	struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
	ioctl(se->master, TIOCSWINSZ, &ws);
	const char *dir = cwd[0] ? cwd : u.home;
	pid_t pid = fork();
	if (pid == 0) {
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
				if (fd != rep[1])
					close(fd);
		if (syscall(SYS_setgroups, u.ngroups, u.groups) < 0 || syscall(SYS_setgid, u.gid) < 0 ||
		    syscall(SYS_setuid, u.uid) < 0)
			goto child_fail;
		if (chdir(dir) < 0 && (cwd[0] || chdir("/") < 0))
			goto child_fail;
		execve(path, argv, envp);
child_fail:
		e = errno;
		(void)!write(rep[1], &e, sizeof e);
		_exit(127);
	}
	close(rep[1]);
	int cerr = 0;
	ssize_t rn = pid > 0 ? read(rep[0], &cerr, sizeof cerr) : -1;
	close(rep[0]);
	if (pid < 0 || rn == (ssize_t)sizeof cerr) {
		if (pid > 0)
			waitpid(pid, NULL, 0);
		*status = 500;
		snprintf(why, wl, "cannot start %.200s: %s", path, strerror(pid < 0 ? errno : cerr));
		goto fail_se;
	}
	se->pid = pid;
	se->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	fcntl(se->master, F_SETFL, O_NONBLOCK);
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 256 * 1024);
	if (pthread_create(&t, &at, session_thread, se) != 0) {
		kill(-pid, SIGKILL);
		waitpid(pid, NULL, 0);
		*status = 500;
		snprintf(why, wl, "cannot start the session thread");
		goto fail_se;
	}
	logj("info", "session started", "\"sessionId\":\"%s\",\"pid\":%d,\"remote\":\"%s\"", se->id, (int)pid, c->peer);
	free(argv);
	env_free(envp);
	json_free(&a);
	return se;

fail_se:
	pthread_mutex_lock(&sessions_mu);
	for (int i = 0; i < cfg.max_sessions; i++)
		if (sessions[i] == se)
			sessions[i] = NULL;
	pthread_mutex_unlock(&sessions_mu);
	if (se->master >= 0)
		close(se->master);
	if (se->wake[0] >= 0) {
		close(se->wake[0]);
		close(se->wake[1]);
	}
	pthread_mutex_destroy(&se->mu);
	free(se);
	se = NULL;
fail:
	free(argv);
	env_free(envp);
	json_free(&a);
	return NULL;
}

static struct session *find_session(const char *sid)
{
	for (int i = 0; i < cfg.max_sessions; i++)
		if (sessions[i] && sessions[i]->pid && !strcmp(sessions[i]->id, sid))
			return sessions[i];
	return NULL;
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
		int rn = snprintf(r, sizeof r, "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"
				  "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
				  sizeof body - 1, body);
		conn_send(c, r, (size_t)rn);
		return false;
	}
	if (http_header(hd, "sec-websocket-key", key, sizeof key) < 0 || ws_accept_key(key, accept) < 0) {
		reply_ws_error(c, 400, "bad Sec-WebSocket-Key");
		return false;
	}
	struct session *se = NULL;
	if (sid) {
		pthread_mutex_lock(&sessions_mu);
		se = find_session(sid);
		pthread_mutex_unlock(&sessions_mu);
		if (!se) {
			reply_ws_error(c, 404, "session not found");
			return false;
		}
	} else {
		int status;
		if (!(se = spawn_session(c, query, why, sizeof why, &status))) {
			reply_ws_error(c, status, why);
			return false;
		}
	}
	char resp[256];
	int n = snprintf(resp, sizeof resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
	char idmsg[64];
	int idn = snprintf(idmsg, sizeof idmsg, "{\"sessionId\":\"%s\"}", se->id);
	char hello[8 + 64];
	size_t hl = 0;
	if (!sid) {
		hl = ws_encode_header((uint8_t *)hello, WS_TEXT, true, (uint64_t)idn, NULL);
		memcpy(hello + hl, idmsg, (size_t)idn);
		hl += (size_t)idn;
	}
	if (conn_send(c, resp, (size_t)n) < 0 || (hl && conn_send(c, hello, hl) < 0)) {
		c->close_after = true;
		return false;   /* a new session without subscribers ends after the grace period */
	}
	/* Hand the socket (and any bytes already read past the handshake)
	 * to the session thread. */
	char copy[64];
	snprintf(copy, sizeof copy, "%s", se->id);
	pthread_mutex_lock(&sessions_mu);
	se = find_session(copy);
	bool ok = false;
	if (se) {
		pthread_mutex_lock(&se->mu);
		if (se->npending < MAX_PENDING) {
			size_t extra = c->rlen - c->rpos;
			char *d = extra ? malloc(extra) : NULL;
			if (!extra || d) {
				if (extra)
					memcpy(d, c->rbuf + c->rpos, extra);
				se->pending[se->npending].fd = c->fd;
				se->pending[se->npending].data = d;
				se->pending[se->npending].len = extra;
				se->npending++;
				ok = true;
			}
		}
		pthread_mutex_unlock(&se->mu);
		if (ok)
			(void)!write(se->wake[1], "x", 1);
	}
	pthread_mutex_unlock(&sessions_mu);
	if (!ok) {
		static const uint8_t bye[] = { 0x88, 19, 0x03, 0xe8, 's', 'e', 's', 's', 'i', 'o', 'n', ' ',
					       'd', 'e', 's', 't', 'r', 'o', 'y', 'e', 'd' };
		conn_send(c, bye, sizeof bye);
		c->close_after = true;
		return false;
	}
	c->fd = -1;
	return true;
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
		buf_printf(&b, ",\"pid\":%d,\"createdAt\":\"%s\",\"subscriberCount\":%d}", (int)se->pid,
			   se->created, ns);
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
