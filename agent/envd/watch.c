/* filesystem.Filesystem's watches, with inotify: WatchDir (a stream this
 * connection's thread serves: the start, each event as it comes,
 * keepalives, until the client goes or its deadline) and the polled
 * watchers (CreateWatcher, GetWatcherEvents, RemoveWatcher), whose
 * events wait in the kernel's queue until they are asked for.  Events are
 * named relative to the watched directory and typed as envd's fsnotify
 * types them; a recursive watch adds each new directory as it appears. */
#define _GNU_SOURCE
#include "envd.h"
#include "../../proto/connect.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define WATCHERS_MAX 64
#define WATCH_DIRS_MAX 8192
#define MASK \
	(IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_ATTRIB | IN_MODIFY | IN_MOVE_SELF | IN_DELETE | IN_DELETE_SELF)

struct watch {
	int fd; /* inotify, non-blocking */
	char root[4200];
	bool recursive, include;
	struct {
		int wd;
		char *rel;
	} * dirs; /* rel "" is the root */
	int ndirs;
	struct user u;
};

static void watch_close(struct watch *w)
{
	if (w->fd >= 0)
		close(w->fd);
	for (int i = 0; i < w->ndirs; i++)
		free(w->dirs[i].rel);
	free(w->dirs);
	w->dirs = NULL;
	w->ndirs = 0;
	w->fd = -1;
}

/* Watch rel (below the root) and, when recursive, its subdirectories;
 * -1 with errno. */
static int add_tree(struct watch *w, const char *rel)
{
	char path[4200];
	if ((size_t)snprintf(path, sizeof path, "%s%s%s", w->root, rel[0] ? "/" : "", rel) >= sizeof path)
		return 0; /* too deep to name: not watched */
	int wd = inotify_add_watch(w->fd, path, MASK | IN_ONLYDIR);
	if (wd < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -1; /* gone meanwhile */
	if (w->ndirs >= WATCH_DIRS_MAX)
		return errno = ENOSPC, -1;
	void *nd = realloc(w->dirs, (size_t)(w->ndirs + 1) * sizeof *w->dirs);
	if (!nd)
		return -1;
	w->dirs = nd;
	w->dirs[w->ndirs].wd = wd;
	if (!(w->dirs[w->ndirs].rel = strdup(rel)))
		return -1;
	w->ndirs++;
	if (!w->recursive)
		return 0;
	DIR *d = opendir(path);
	struct dirent *de;
	int rc = 0;
	while (d && rc == 0 && (de = readdir(d))) {
		char sub[4200];
		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
		rc = add_tree(w, sub);
	}
	if (d)
		closedir(d);
	return rc;
}

/* The request's path, checked and watched; 0, or the status answered. */
static int watch_open(struct rpc *r, struct watch *w)
{
	static const char *const fields[] = { "path", "recursive", "includeEntry", "allowNetworkMounts", NULL };
	static const long net_fs[] = { 0x6969, (long)0xFF534D42, 0x517B, (long)0xFE534D42, 0x65735546 };
	char why[256];
	struct stat sb;
	struct statfs fs;
	pj_fields(&r->pj, r->msg, r->name, fields);
	const char *path = pj_str(&r->pj, r->msg, "path", NULL);
	w->recursive = pj_bool(&r->pj, r->msg, "recursive", NULL);
	w->include = pj_bool(&r->pj, r->msg, "includeEntry", NULL);
	bool net_ok = pj_bool(&r->pj, r->msg, "allowNetworkMounts", NULL);
	w->u = r->u;
	if (r->pj.bad)
		return rpc_bad(r);
	if (path_resolve(path, &r->u, w->root, sizeof w->root, why, sizeof why) < 0)
		return rpc_fail(r, CC_INVALID_ARGUMENT, "%s", why);
	if (as_user(&r->u) < 0)
		return rpc_fail(r, CC_INTERNAL, "cannot take the user's credentials: %s", strerror(errno));
	int st = 0, e;
	if (stat(w->root, &sb) < 0)
		e = errno, st = rpc_fail(r, e == ENOENT ? CC_NOT_FOUND : CC_INTERNAL, "path %s not found: %s", w->root,
					 strerror(e));
	else if (!S_ISDIR(sb.st_mode))
		st = rpc_fail(r, CC_INVALID_ARGUMENT, "path %s not a directory", w->root);
	else if (!net_ok && statfs(w->root, &fs) == 0)
		for (size_t i = 0; i < sizeof net_fs / sizeof *net_fs && !st; i++)
			if ((long)fs.f_type == net_fs[i])
				st = rpc_fail(r, CC_INVALID_ARGUMENT, "cannot watch path on network filesystem: %s",
					      w->root);
	if (!st && ((w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0 || add_tree(w, "") < 0))
		e = errno, st = rpc_fail(r, CC_INTERNAL, "error adding path %s to watcher: %s", w->root, strerror(e));
	as_agent();
	return st;
}

static const char *rel_of(const struct watch *w, int wd)
{
	for (int i = 0; i < w->ndirs; i++)
		if (w->dirs[i].wd == wd)
			return w->dirs[i].rel;
	return NULL;
}

static void forget(struct watch *w, int wd)
{
	for (int i = 0; i < w->ndirs; i++)
		if (w->dirs[i].wd == wd) {
			free(w->dirs[i].rel);
			w->dirs[i] = w->dirs[--w->ndirs];
			return;
		}
}

typedef int (*emit_fn)(void *ctx, const char *json, size_t n);

/* One inotify event as FilesystemEvents (envd's order: create, rename,
 * chmod, write, remove); the emitter's error, or 0. */
static int one_event(struct watch *w, const struct inotify_event *ev, emit_fn emit, void *ctx)
{
	static const struct {
		uint32_t mask;
		const char *type;
		bool entry;
	} ops[] = {
		{ IN_CREATE | IN_MOVED_TO, "EVENT_TYPE_CREATE", true },
		{ IN_MOVED_FROM | IN_MOVE_SELF, "EVENT_TYPE_RENAME", false },
		{ IN_ATTRIB, "EVENT_TYPE_CHMOD", true },
		{ IN_MODIFY, "EVENT_TYPE_WRITE", true },
		{ IN_DELETE | IN_DELETE_SELF, "EVENT_TYPE_REMOVE", false },
	};
	const char *rel = rel_of(w, ev->wd);
	char name[4200], path[8400];
	int rc = 0;
	if (ev->mask & IN_IGNORED)
		forget(w, ev->wd);
	/* a subdirectory's own end is told by its parent */
	if (!rel || ((ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) && rel[0]))
		return 0;
	if (ev->len && ev->name[0])
		snprintf(name, sizeof name, "%s%s%s", rel, rel[0] ? "/" : "", ev->name);
	else
		snprintf(name, sizeof name, "%s", rel[0] ? rel : ".");
	snprintf(path, sizeof path, "%s/%s", w->root, name);
	if (w->recursive && (ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO)))
		add_tree(w, name);
	for (size_t i = 0; i < sizeof ops / sizeof *ops && !rc; i++) {
		struct buf b = { 0 };
		if (!(ev->mask & ops[i].mask))
			continue;
		buf_puts(&b, "{\"name\":");
		pj_put_str(&b, name, strlen(name));
		buf_printf(&b, ",\"type\":\"%s\"", ops[i].type);
		if (w->include && ops[i].entry) {
			size_t mark = b.len;
			buf_puts(&b, ",\"entry\":");
			if (entry_json(&b, path) < 0)
				b.len = mark; /* gone meanwhile: no entry */
		}
		buf_puts(&b, "}");
		rc = b.p ? emit(ctx, b.p, b.len) : -1;
		buf_free(&b);
	}
	return rc;
}

/* The events the kernel holds; 0, -1 with errno (EOVERFLOW: events were
 * lost), or the emitter's error. */
static int drain(struct watch *w, emit_fn emit, void *ctx)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	int rc = 0;
	as_user(&w->u); /* entries are stat'ed as the user */
	while (!rc) {
		ssize_t n = read(w->fd, buf, sizeof buf);
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				rc = -1;
			break;
		}
		for (char *p = buf; p < buf + n && !rc;
		     p += sizeof(struct inotify_event) + ((struct inotify_event *)p)->len) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW)
				rc = (errno = EOVERFLOW, -1);
			else
				rc = one_event(w, ev, emit, ctx);
		}
	}
	as_agent();
	return rc;
}

/* ---- WatchDir --------------------------------------------------------- */

static int send_event(void *ctx, const char *json, size_t n)
{
	struct rpc *r = ctx;
	struct buf b = { 0 };
	int rc;
	buf_puts(&b, "{\"filesystem\":");
	buf_put(&b, json, n);
	buf_puts(&b, "}");
	rc = b.p ? rpc_stream_send(r, b.p) : -1;
	buf_free(&b);
	return rc < 0 ? -2 : 0;
}

/* Until the client goes (-2), its deadline passes (0), or the watch
 * fails (-1 with errno). */
static int watch_loop(struct rpc *r, struct watch *w)
{
	int64_t ka = (int64_t)r->keepalive_s * 1000, next_ka = mono_ms() + ka;
	int64_t deadline = r->timeout_ms ? mono_ms() + r->timeout_ms : 0;
	for (;;) {
		int64_t now = mono_ms(), until = next_ka;
		if (deadline && deadline < until)
			until = deadline;
		struct pollfd pf[2] = { { .fd = w->fd, .events = POLLIN }, { .fd = r->c->fd, .events = POLLIN } };
		if (poll(pf, 2, until > now ? (int)(until - now) : 0) < 0 && errno != EINTR)
			return -1;
		if (pf[1].revents) {
			char ch;
			ssize_t k = recv(r->c->fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
			if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
				return -2; /* it hung up: nobody to tell */
			if (k > 0)
				return -2; /* it says more: not a client of this stream */
		}
		if (pf[0].revents) {
			int rc = drain(w, send_event, r);
			if (rc)
				return rc;
			next_ka = mono_ms() + ka;
		}
		now = mono_ms();
		if (deadline && now >= deadline)
			return 0;
		if (now >= next_ka) {
			if (rpc_stream_send(r, "{\"keepalive\":{}}") < 0)
				return -2;
			next_ka = now + ka;
		}
	}
}

int watch_dir(struct rpc *r)
{
	struct watch w = { .fd = -1 };
	int st = watch_open(r, &w);
	if (st) {
		watch_close(&w);
		return st;
	}
	if (rpc_stream_begin(r, "{\"start\":{}}") == 0) {
		int rc = watch_loop(r, &w);
		int e = errno;
		if (rc == 0)
			rpc_stream_finish(r, CC_DEADLINE_EXCEEDED, "the call's timeout (Connect-Timeout-Ms) passed");
		else if (rc == -1)
			rpc_stream_finish(r, CC_INTERNAL,
					  e == EOVERFLOW ? "watcher error: events were lost "
							   "(the queue overflowed)"
							 : "watcher error");
	}
	if (r->c->streaming) { /* not ended properly: the client sees that */
		r->c->streaming = false;
		r->c->close_after = true;
	}
	watch_close(&w);
	return 200;
}

/* ---- watchers --------------------------------------------------------- */

static struct watcher {
	char id[20]; /* "w" and hex; "" when free */
	struct watch w;
	bool failed;
} watchers[WATCHERS_MAX];
static pthread_mutex_t watchers_mu = PTHREAD_MUTEX_INITIALIZER;

void watch_init(void)
{
	for (int i = 0; i < WATCHERS_MAX; i++)
		watchers[i].w.fd = -1;
}

int watch_create(struct rpc *r)
{
	struct watch w = { .fd = -1 };
	struct buf b = { 0 };
	int st = watch_open(r, &w), slot = -1;
	if (st) {
		watch_close(&w);
		return st;
	}
	pthread_mutex_lock(&watchers_mu);
	for (int i = 0; i < WATCHERS_MAX && slot < 0; i++)
		if (!watchers[i].id[0]) {
			slot = i;
			watchers[i].id[0] = 'w';
			random_hex(watchers[i].id + 1, 16);
			watchers[i].w = w;
			watchers[i].failed = false;
			buf_printf(&b, "{\"watcherId\":\"%s\"}", watchers[i].id);
		}
	pthread_mutex_unlock(&watchers_mu);
	if (slot < 0) {
		watch_close(&w);
		return rpc_fail(r, CC_RESOURCE_EXHAUSTED, "too many watchers (limit %d): remove some", WATCHERS_MAX);
	}
	st = rpc_ok(r, &b);
	buf_free(&b);
	return st;
}

/* The watcher the request's watcherId names (under watchers_mu);
 * NULL with not_found answered. */
static struct watcher *find_watcher(struct rpc *r, int *st)
{
	static const char *const fields[] = { "watcherId", NULL };
	pj_fields(&r->pj, r->msg, r->name, fields);
	const char *id = pj_str(&r->pj, r->msg, "watcherId", NULL);
	if (r->pj.bad) {
		*st = rpc_bad(r);
		return NULL;
	}
	for (int i = 0; i < WATCHERS_MAX; i++)
		if (id[0] && !strcmp(watchers[i].id, id))
			return &watchers[i];
	*st = rpc_fail(r, CC_NOT_FOUND, "watcher with id %.40s not found", id);
	return NULL;
}

static int collect(void *ctx, const char *json, size_t n)
{
	struct buf *b = ctx;
	if (b->p[b->len - 1] == '}')
		buf_puts(b, ",");
	return buf_put(b, json, n);
}

int watch_events(struct rpc *r)
{
	struct buf b = { 0 };
	int st = 0, rc = 0;
	pthread_mutex_lock(&watchers_mu);
	struct watcher *x = find_watcher(r, &st);
	buf_puts(&b, "{\"events\":[");
	if (x && !x->failed && (rc = drain(&x->w, collect, &b)) == -1)
		x->failed = true; /* envd keeps a watcher's error */
	if (x && x->failed)
		st = rpc_fail(r, CC_INTERNAL, "watcher error: events were lost or the watch failed");
	pthread_mutex_unlock(&watchers_mu);
	if (!st) {
		buf_puts(&b, "]}");
		st = rpc_ok(r, &b);
	}
	buf_free(&b);
	return st;
}

int watch_remove(struct rpc *r)
{
	int st = 0;
	pthread_mutex_lock(&watchers_mu);
	struct watcher *x = find_watcher(r, &st);
	if (x) {
		watch_close(&x->w);
		x->id[0] = 0;
	}
	pthread_mutex_unlock(&watchers_mu);
	return rpc_ok_empty(r, st);
}
