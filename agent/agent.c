/* vmsan-agent: the in-guest agent.  HTTP/1.1 (+ WebSocket) on TCP.
 *
 * One thread per connection, one per PTY session.  The token is read from
 * a root-only file (or, once, from VMSAN_AGENT_TOKEN, which is then
 * removed); the agent's own environment is cleared at start so nothing it
 * was given reaches a child.  SIGHUP re-reads the token file.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "envd/envd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef VMSAN_VERSION
#define VMSAN_VERSION "dev"
#endif

struct config cfg = {
	.listen_addr = "0.0.0.0",
	.port = 9119,
	.token_file = "/run/vmsan/agent.token",
	.env_file = "/run/vmsan/agent.env",
	.max_upload = 1ULL << 30,
	.max_execs = 64,
	.max_sessions = 8,
	.max_subscribers = 8,
	.session_grace = 60,
};

static atomic_int nconns;
#define MAX_CONNS 512

/* ---- routing --------------------------------------------------------- */

static void log_request(struct conn *c, const struct http_head *hd, const char *path, int status, struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
	struct buf p = { 0 };
	buf_jstr(&p, path, strlen(path));
	logj("info", "request", "\"method\":\"%s\",\"path\":%s,\"status\":%d,\"durationMs\":%.3f,\"remote\":\"%s\"",
	     hd->method, p.p ? p.p : "\"\"", status, ms, c->peer);
	buf_free(&p);
}

/* One request, as a route's handler sees it: id is the {id} of a path
 * like /exec/{id}/kill (at most 63 bytes of it, kept in arg), or NULL. */
struct req {
	struct conn *c;
	struct http_head *hd;
	struct body *b;
	const char *path, *query;
	char arg[64];
	const char *id;
};

/* A handler returns the status to log; 101 when a WebSocket session took
 * the connection over. */
typedef int (*route_fn)(struct req *r);

static int route_health(struct req *r)
{
	static const char ok[] = "{\"status\":\"ok\",\"version\":\"" VMSAN_VERSION "\","
				 "\"envdVersion\":\"" ENVD_VERSION "\"}\n";
	respond(r->c, 200, "application/json", ok, sizeof ok - 1);
	return 200;
}

static int route_exec(struct req *r)
{
	handle_exec(r->c, r->hd, r->b);
	return 200;
}

static int route_exec_kill(struct req *r)
{
	handle_exec_kill(r->c, r->b, r->id);
	return 200;
}

static int route_files_write(struct req *r)
{
	handle_files_write(r->c, r->hd, r->b, r->query);
	return 200;
}

static int route_files_read(struct req *r)
{
	handle_files_read(r->c, r->b);
	return 200;
}

static int route_ws_shell(struct req *r)
{
	return handle_ws_shell(r->c, r->hd, r->id, r->query) ? 101 : 200;
}

static int route_tunnel(struct req *r)
{
	return handle_tunnel(r->c, r->hd, r->id);
}

static int route_shutdown(struct req *r)
{
	if (!cfg.init_shutdown) {
		respond_error(r->c, 501, "this agent was not started by vmsan-init");
		return 501;
	}
	/* Answer first: the stop takes the agent down with it. */
	static const char ok[] = "{\"status\":\"stopping\"}\n";
	respond(r->c, 202, "application/json", ok, sizeof ok - 1);
	r->c->close_after = true;
	kill(1, SIGTERM);
	return 202;
}

static int route_restored(struct req *r)
{
	handle_restored(r->c, r->b);
	return 200;
}

static int route_sessions_list(struct req *r)
{
	handle_sessions_list(r->c);
	return 200;
}

static int route_session_kill(struct req *r)
{
	handle_session_kill(r->c, r->id);
	return 200;
}

/* E2B's envd protocol (envd/): Connect calls, and /files. */
static int route_envd_rpc(struct req *r)
{
	return envd_rpc(r->c, r->hd, r->b, r->path);
}

static int route_envd_files(struct req *r)
{
	return envd_files(r->c, r->hd, r->b, r->query);
}

/* How a route's path is matched: exactly; as prefix{id}suffix with a
 * non-empty {id}; or exactly, or as prefix/{id} ({id} may be empty). */
enum match { EXACT, ID, OPTIONAL_ID };

static const struct route {
	const char *method, *path, *suffix; /* method NULL: the handler's choice */
	enum match match;
	route_fn fn;
	bool open;	 /* no token needed */
	bool audit;	 /* logged */
	const char *how; /* the 405 answer's detail */
} routes[] = {
	{ "GET", "/health", NULL, EXACT, route_health, true, false, NULL },
	{ "POST", "/exec", NULL, EXACT, route_exec, false, true, NULL },
	{ "POST", "/exec/", "/kill", ID, route_exec_kill, false, true, NULL },
	{ "POST", "/files/write", NULL, EXACT, route_files_write, false, true, NULL },
	{ "POST", "/files/read", NULL, EXACT, route_files_read, false, true, NULL },
	{ "GET", "/ws/shell", NULL, OPTIONAL_ID, route_ws_shell, false, true, " with a WebSocket upgrade" },
	{ "GET", "/tunnel", NULL, OPTIONAL_ID, route_tunnel, false, true, " with Upgrade: vmsan-tcp" },
	{ "POST", "/shutdown", NULL, EXACT, route_shutdown, false, true, NULL },
	{ "POST", "/restored", NULL, EXACT, route_restored, false, true, NULL },
	{ "GET", "/shell/sessions", NULL, EXACT, route_sessions_list, false, false, NULL },
	{ "POST", "/shell/sessions/", "/kill", ID, route_session_kill, false, false, NULL },
	{ "POST", "/process.Process", NULL, OPTIONAL_ID, route_envd_rpc, false, true, NULL },
	{ "POST", "/filesystem.Filesystem", NULL, OPTIONAL_ID, route_envd_rpc, false, true, NULL },
	/* the token, or a URL signed with it: envd/files.c checks */
	{ NULL, "/files", NULL, EXACT, route_envd_files, true, true, NULL },
};

/* The route for path, its {id} copied to arg (*id set) when it has one. */
static const struct route *route_find(const char *path, char *arg, size_t argn, const char **id)
{
	size_t n = strlen(path);
	*id = NULL;
	for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
		const struct route *rt = &routes[i];
		size_t pl = strlen(rt->path);
		if (rt->match == EXACT && !strcmp(path, rt->path))
			return rt;
		if (rt->match == OPTIONAL_ID && !strncmp(path, rt->path, pl) && (!path[pl] || path[pl] == '/')) {
			*id = path[pl] ? path + pl + 1 : NULL;
			return rt;
		}
		if (rt->match == ID) {
			size_t sl = strlen(rt->suffix);
			if (n > pl + sl && !strncmp(path, rt->path, pl) && !strcmp(path + n - sl, rt->suffix)) {
				size_t il = n - pl - sl;
				snprintf(arg, argn, "%.*s", (int)(il < argn ? il : argn - 1), path + pl);
				*id = arg;
				return rt;
			}
		}
	}
	return NULL;
}

/* The next request's head, reading until it is all in rbuf: its length,
 * -status when it is malformed or too large, 0 when the peer is gone. */
static ssize_t read_head(struct conn *c, struct http_head *hd)
{
	for (;;) {
		ssize_t hl = http_parse_head(c->rbuf + c->rpos, c->rlen - c->rpos, true, hd);
		if (hl != 0)
			return hl;
		if (c->rlen - c->rpos >= HTTP_HEAD_MAX)
			return -431;
		if (conn_fill(c) <= 0)
			return 0;
	}
}

static void refuse_head(struct conn *c, int st)
{
	c->close_after = true;
	respond_error(c, st, "%s",
		      st == 431	  ? "request head over 16 KiB or too many headers"
		      : st == 505 ? "only HTTP/1.x is spoken here"
		      : st == 501 ? "unsupported Transfer-Encoding (only chunked)"
				  : "malformed HTTP request");
	logj("warn", "bad request", "\"status\":%d,\"remote\":\"%s\"", st, c->peer);
}

/* The token, for a route that is not open (a WebSocket's may be in the
 * query); then 100 Continue to a client that waits for it.  False when
 * refused, answered and logged. */
static bool admit(struct conn *c, const struct http_head *hd, const char *path, const char *query, struct timespec *t0)
{
	bool ws = !strncmp(path, "/ws/", 4);
	int auth = authorize(hd, query, ws);
	if (auth) {
		c->close_after = true; /* do not read an unauthenticated body */
		if (!envd_deny(c, path, auth))
			respond_error(c, auth, auth == 401 ? "missing authorization" : "invalid token");
		log_request(c, hd, path, auth, t0);
		return false;
	}
	if (hd->expect_continue && !ws)
		conn_send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	return true;
}

/* The route's handler, or 404 or 405: the status to log. */
static int dispatch(struct req *r, const struct route *rt)
{
	if (!rt) {
		respond_error(r->c, 404, "no such endpoint: %s", r->path);
		return 404;
	}
	if (rt->method && strcmp(r->hd->method, rt->method)) {
		respond_error(r->c, 405, "use %s%s", rt->method, rt->how ? rt->how : "");
		return 405;
	}
	return rt->fn(r);
}

/* Returns false when the connection must close. */
static bool serve_one(struct conn *c)
{
	char target[HTTP_TARGET_MAX], path[HTTP_TARGET_MAX], *query;
	const struct route *rt;
	struct http_head hd;
	struct timespec t0;
	struct body b;
	int status;
	ssize_t hl = read_head(c, &hd);

	if (hl == 0)
		return false;
	if (hl < 0) {
		refuse_head(c, (int)-hl);
		return false;
	}
	/* The head's strings point into rbuf; copy the target, then move on. */
	snprintf(target, sizeof target, "%s", hd.target);
	query = strchr(target, '?');
	if (query)
		*query++ = 0;
	snprintf(path, sizeof path, "%s", target);
	if (http_pct_decode(path) < 0) {
		c->close_after = true;
		respond_error(c, 400, "bad percent-encoding in the path");
		return false;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* Header values stay valid until rbuf moves: handlers read the ones
	 * they need before reading the body (conn_fill compacts only when
	 * the buffer is full, and rpos moves past the head first). */
	c->rpos += (size_t)hl;
	if (!hd.keep_alive)
		c->close_after = true;
	body_init(&b, c, &hd);

	struct req r = { c, &hd, &b, path, query, "", NULL };
	rt = route_find(path, r.arg, sizeof r.arg, &r.id);
	if ((!rt || !rt->open) && !admit(c, &hd, path, query, &t0))
		return false;
	c->status = 0;
	status = dispatch(&r, rt);
	/* what was answered: handlers that stream or refuse return 200 */
	if (c->status && status != 101)
		status = c->status;
	if (status == 101) {
		log_request(c, &hd, path, 101, &t0);
		return false; /* the session owns the socket now */
	}
	if (rt && rt->audit)
		log_request(c, &hd, path, status, &t0);
	if (c->streaming)
		return false;
	body_drain(&b);
	return !c->close_after;
}

/* Connections are served by threads that outlive them: a new thread, its
 * stack and a 256 KiB read buffer per connection cost a clone, several
 * mmaps and, on the way out, munmaps whose TLB shootdowns stall every
 * other thread.  Idle threads wait in accept() themselves (leader and
 * followers), so a connection is served by the thread the kernel woke for
 * it, with no hand-off to another thread.  Whenever the last waiting
 * thread takes a connection it starts another, so one is always waiting.
 * Up to POOL_IDLE_MAX wait; an extra one ends after POOL_IDLE_SECS idle.
 * The main thread is one of them and never ends. */
#define POOL_IDLE_MAX 4
#define POOL_IDLE_SECS 30
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static int pool_waiting; /* threads in accept_conn() */
static int listen_fd;
static pthread_attr_t worker_attr;

static void *worker(void *arg);

static void start_worker(void)
{
	pthread_t t;
	if (pthread_create(&t, &worker_attr, worker, NULL) != 0)
		logj("error", "cannot start a worker thread", "\"errno\":%d", errno);
}

static void refuse_busy(int fd)
{
	static const char body[] = "{\"error\":\"too many connections\"}\n";
	char busy[256];
	int bn = snprintf(busy, sizeof busy,
			  "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
			  "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
			  sizeof body - 1, body);
	(void)!send(fd, busy, (size_t)bn, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

/* The next connection for this thread; NULL when it should end. */
static struct conn *accept_conn(bool permanent)
{
	pthread_mutex_lock(&pool_mu);
	if (!permanent && pool_waiting >= POOL_IDLE_MAX) {
		pthread_mutex_unlock(&pool_mu);
		return NULL;
	}
	pool_waiting++;
	pthread_mutex_unlock(&pool_mu);
	for (;;) {
		struct sockaddr_in peer;
		socklen_t pl = sizeof peer;
		/* SO_RCVTIMEO on the listening socket bounds the wait */
		int fd = accept4(listen_fd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
		if (fd < 0) {
			if ((errno == EAGAIN || errno == EWOULDBLOCK) && !permanent) {
				pthread_mutex_lock(&pool_mu);
				pool_waiting--;
				pthread_mutex_unlock(&pool_mu);
				return NULL; /* idle too long; the main thread stays */
			}
			if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN && errno != EWOULDBLOCK) {
				logj("error", "accept failed", "\"errno\":%d", errno);
				poll(NULL, 0, 100); /* EMFILE and friends: back off */
			}
			continue;
		}
		pthread_mutex_lock(&pool_mu);
		bool last = --pool_waiting == 0;
		pthread_mutex_unlock(&pool_mu);
		if (last)
			start_worker();
		if (atomic_fetch_add(&nconns, 1) >= MAX_CONNS) {
			atomic_fetch_sub(&nconns, 1);
			refuse_busy(fd);
		} else {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			struct timeval tv = { .tv_sec = 300 }, none = { 0 };
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
			/* accepted sockets inherit the listener's accept timeout */
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
			struct conn *c = calloc(1, sizeof *c);
			if (c) {
				c->fd = fd;
				char ip[INET_ADDRSTRLEN] = "?";
				inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
				snprintf(c->peer, sizeof c->peer, "%s:%u", ip, ntohs(peer.sin_port));
				return c;
			}
			close(fd);
			atomic_fetch_sub(&nconns, 1);
		}
		pthread_mutex_lock(&pool_mu);
		pool_waiting++;
		pthread_mutex_unlock(&pool_mu);
	}
}

static void serve_loop(bool permanent)
{
	char *rbuf = malloc(CONN_BUF);
	struct conn *c;
	if (!rbuf) {
		logj("error", "out of memory for a worker", "\"bytes\":%d", CONN_BUF);
		return;
	}
	while ((c = accept_conn(permanent)) != NULL) {
		c->rbuf = rbuf;
		while (serve_one(c))
			;
		if (c->fd >= 0)
			close(c->fd);
		free(c);
		atomic_fetch_sub(&nconns, 1);
	}
	free(rbuf);
	exec_worker_exit();
}

static void *worker(void *arg)
{
	(void)arg;
	serve_loop(false);
	return NULL;
}

/* Signals ignored by whoever started us would be ignored by every command
 * we run (execve keeps SIG_IGN).  Back to the default, all of them, with
 * the raw syscall: libc refuses the ones it reserves (32-34 in musl),
 * which glibc programs use. */
static void unignore_signals(void)
{
	struct ksa {
		void *handler;
		unsigned long flags;
		void *restorer;
		uint64_t mask;
	};
	for (int sig = 1; sig <= 64; sig++) {
		struct ksa old, dfl = { .handler = SIG_DFL };
		if (syscall(SYS_rt_sigaction, sig, NULL, &old, 8) == 0 && old.handler == SIG_IGN)
			syscall(SYS_rt_sigaction, sig, &dfl, NULL, 8);
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: vmsan-agent [--listen ADDR] [--port N] [--token-file FILE]\n"
		   "                   [--env-file FILE] [--default-user USER] [--max-upload BYTES]\n"
		   "                   [--max-execs N] [--max-sessions N] [--session-grace SECONDS] [--quiet]\n"
		   "                   [--init-shutdown]\n"
		   "\n"
		   "The vmsan guest agent: exec, PTY shells and file transfer over HTTP/1.1 and\n"
		   "WebSocket on ADDR:N (default 0.0.0.0:9119).  The bearer token is read from\n"
		   "FILE (default /run/vmsan/agent.token; re-read on SIGHUP) or, if that is\n"
		   "absent, from VMSAN_AGENT_TOKEN, which is then removed from the environment.\n"
		   "A token on the command line is refused: every process could read it.\n"
		   "--init-shutdown (vmsan-init passes it) lets POST /shutdown ask PID 1 to stop\n"
		   "the VM; without it /shutdown answers 501.\n");
}

static int num_arg(const char *opt, const char *v, long long lo, long long hi, long long *out)
{
	char *end;
	errno = 0;
	long long x = v ? strtoll(v, &end, 10) : 0;
	if (!v || errno || end == v || *end || x < lo || x > hi) {
		fprintf(stderr, "vmsan-agent: %s wants a number from %lld to %lld\n", opt, lo, hi);
		return -1;
	}
	*out = x;
	return 0;
}

/* The command line into cfg: -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv)
{
	long long v;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
#define STR_OPT(name, field)                                                      \
	if (!strcmp(a, name)) {                                                   \
		if (!val || strlen(val) >= sizeof cfg.field) {                    \
			fprintf(stderr, "vmsan-agent: %s needs a value\n", name); \
			return 2;                                                 \
		}                                                                 \
		snprintf(cfg.field, sizeof cfg.field, "%s", val);                 \
		i++;                                                              \
		continue;                                                         \
	}
#define NUM_OPT(name, field, lo, hi)                    \
	if (!strcmp(a, name)) {                         \
		if (num_arg(name, val, lo, hi, &v) < 0) \
			return 2;                       \
		cfg.field = (__typeof__(cfg.field))v;   \
		i++;                                    \
		continue;                               \
	}
		STR_OPT("--listen", listen_addr)
		STR_OPT("--token-file", token_file)
		STR_OPT("--env-file", env_file)
		STR_OPT("--default-user", default_user)
		NUM_OPT("--port", port, 1, 65535)
		NUM_OPT("--max-upload", max_upload, 1, 1LL << 50)
		NUM_OPT("--max-execs", max_execs, 1, 4096)
		NUM_OPT("--max-sessions", max_sessions, 1, 256)
		NUM_OPT("--session-grace", session_grace, 0, 86400)
#undef STR_OPT
#undef NUM_OPT
		if (!strcmp(a, "--quiet")) {
			cfg.quiet = true;
			continue;
		}
		if (!strcmp(a, "--init-shutdown")) {
			cfg.init_shutdown = true;
			continue;
		}
		if (!strcmp(a, "--token")) {
			fprintf(stderr, "vmsan-agent: --token is refused: a token on the command line is "
					"readable by every process; use --token-file FILE (mode 0600)\n");
			return 2;
		}
		if (!strcmp(a, "--version")) {
			printf("vmsan-agent %s\n", VMSAN_VERSION);
			return 0;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		fprintf(stderr, "vmsan-agent: unknown option %s\n", a);
		usage(stderr);
		return 2;
	}
	return -1;
}

/* The token, from the token file or else VMSAN_AGENT_TOKEN; then the
 * environment emptied.  0, or the exit status. */
static int load_token(void)
{
	const char *envtok = getenv("VMSAN_AGENT_TOKEN");
	int tr = token_load(NULL);
	if (tr == -1 && envtok)
		tr = token_load(envtok);
	/* Nothing the agent was started with is passed on to children. */
	if (clearenv() != 0) {
		fprintf(stderr, "vmsan-agent: clearenv failed\n");
		return 1;
	}
	if (tr == -2) {
		fprintf(stderr, "vmsan-agent: the token must be 16 to 256 printable characters\n");
		return 1;
	}
	if (tr < 0) {
		fprintf(stderr, "vmsan-agent: no token: %s is missing and VMSAN_AGENT_TOKEN is not set\n",
			cfg.token_file);
		return 1;
	}
	return 0;
}

/* The listening socket into *ls: 0, or the exit status. */
static int listen_socket(int *ls)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)cfg.port) };
	int one = 1;
	if (inet_pton(AF_INET, cfg.listen_addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "vmsan-agent: --listen wants an IPv4 address, not '%s'\n", cfg.listen_addr);
		return 2;
	}
	*ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(*ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (*ls < 0 || bind(*ls, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(*ls, 128) < 0) {
		fprintf(stderr, "vmsan-agent: cannot listen on %s:%d: %s\n", cfg.listen_addr, cfg.port,
			strerror(errno));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_sighup, .sa_flags = SA_RESTART };
	struct timeval idle = { .tv_sec = POOL_IDLE_SECS };
	int rc, ls;

	if ((rc = parse_args(argc, argv)) >= 0 || (rc = load_token()) != 0)
		return rc;
	unignore_signals();
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGHUP, &sa, NULL);
	if ((rc = listen_socket(&ls)) != 0)
		return rc;
	exec_init();
	shell_init();
	envd_init();
	logj("info", "listening", "\"addr\":\"%s\",\"port\":%d,\"version\":\"%s\"", cfg.listen_addr, cfg.port,
	     VMSAN_VERSION);

	setsockopt(ls, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
	listen_fd = ls;
	pthread_attr_init(&worker_attr);
	pthread_attr_setdetachstate(&worker_attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&worker_attr, 512 * 1024);
	for (;;) {
		serve_loop(true); /* returns only when out of memory */
		poll(NULL, 0, 1000);
	}
}
