/* A PTY session's thread: it owns the PTY and every subscriber's socket,
 * reads the PTY and fans out, reads frames and writes input, and ends the
 * session when the program exits, when it is killed, or when nobody has
 * been attached for the grace period.  The last 64 KiB of output are kept
 * and replayed to each subscriber when it says Ready, so a re-attached
 * terminal shows where it was.  shell.c creates and attaches sessions.
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
		return; /* text messages carry nothing for us */
	}
	if (n < 1)
		return;
	switch (p[0]) {
	case T_DATA:
		if (se->input.len + n - 1 > OUT_MAX)
			return; /* the program is not reading: drop, as a full tty would block */
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
	default: break;
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
		case WS_PING: queue_frame(s, WS_PONG, 0, p, n, false); break;
		case WS_PONG: break;
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

/* Input waiting for the PTY goes in; output coming out goes to the ring
 * and every ready subscriber. */
static void pty_io(struct session *se, short revents, uint8_t *buf, bool *master_eof)
{
	if ((revents & POLLOUT) && se->input.len) {
		ssize_t w = write(se->master, se->input.p, se->input.len);
		if (w > 0) {
			memmove(se->input.p, se->input.p + w, se->input.len - (size_t)w);
			se->input.len -= (size_t)w;
		}
	}
	if (revents & (POLLIN | POLLHUP | POLLERR)) {
		ssize_t r = read(se->master, buf, 32 * 1024);
		if (r > 0) {
			ring_add(se, buf, (size_t)r);
			for (int i = 0; i < se->nsubs; i++)
				if (se->subs[i].ready && !se->subs[i].dead)
					send_output(&se->subs[i], buf, (size_t)r);
		} else if (r == 0 || (errno != EAGAIN && errno != EINTR))
			*master_eof = true; /* EIO: every slave fd is closed */
	}
}

/* Drop the subscribers that are gone. */
static void drop_dead_subs(struct session *se)
{
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
}

/* Tell everyone how it ended, then take the session down. */
static void session_end(struct session *se, int status)
{
	pthread_mutex_lock(&sessions_mu);
	for (int i = 0; i < cfg.max_sessions; i++)
		if (sessions[i] == se)
			sessions[i] = NULL;
	pthread_mutex_unlock(&sessions_mu);
	adopt_pending(se);
	char ex[96];
	int n = WIFSIGNALED(status)
			? snprintf(ex, sizeof ex, "{\"type\":\"exit\",\"exitCode\":%d,\"signal\":\"SIG%s\"}",
				   128 + WTERMSIG(status),
				   signal_name(WTERMSIG(status)) ? signal_name(WTERMSIG(status)) : "UNKNOWN")
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
}

void *session_thread(void *arg)
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
		if (imaster >= 0)
			pty_io(se, pf[imaster].revents, buf, &master_eof);
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
		drop_dead_subs(se);
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
	session_end(se, status);
	free(buf);
	return NULL;
}
