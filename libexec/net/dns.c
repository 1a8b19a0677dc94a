/* The VM's resolver of allowed domains, vmsan-dns: started in the VM's
 * namespace (its log opened as the caller), given a new list over its
 * control socket, stopped, and followed when the rules change.  Root's
 * record (v->dns) names its processes by pid and start time. */
#define _GNU_SOURCE
#include "net/net.h"
#include "lib/rootproc.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define DNS_CTL "vmsan-dns-ctl"

/* The resolver's process (DNS_SETTER, the pid vmsan-dns answered with)
 * or its child (DNS_RESOLVER), when the record names it and it still
 * runs (same start time, not a zombie); else 0. */
enum { DNS_SETTER, DNS_RESOLVER };
static long dns_proc(const struct vmnet *v, int which)
{
	static const char *const keys[2][2] = { { "pid", "start" }, { "resolver", "resolverStart" } };
	long long pid = v->dns ? json_integer_value(json_object_get(v->dns, keys[which][0])) : 0;

	return pid > 0 && proc_start_time((long)pid) == json_integer_value(json_object_get(v->dns, keys[which][1]))
		       ? (long)pid
		       : 0;
}

bool dns_alive(const struct vmnet *v)
{
	return dns_proc(v, DNS_SETTER) > 0;
}

/* Ends the VM's resolver: its two processes killed and dead (zombies at
 * most: their sockets closed) before this returns, so that a new one can
 * bind the same ports at once.  The resolver dies with the setter
 * (PDEATHSIG), but not at once: it is killed and waited for too. */
void dns_stop(struct vmnet *v)
{
	for (int k = DNS_SETTER; k <= DNS_RESOLVER; k++) {
		long pid = dns_proc(v, k);
		if (pid)
			kill((pid_t)pid, SIGKILL);
	}
	for (int i = 0; i < 400 && (dns_proc(v, DNS_SETTER) || dns_proc(v, DNS_RESOLVER)); i++)
		usleep(5000);
	json_decref(v->dns);
	v->dns = NULL;
}

/* The log, opened as the caller (caller_open: their fsuid, fsgid and
 * groups, no symlink, no FIFO or device: a regular file, or one they
 * create), so that naming a path never lets them make root write (or
 * create) anything they could not: -1 if none was asked for. */
static int dns_log_open(const char *path, struct verr *e)
{
	int fd;

	if (!path)
		return -1;
	fd = caller_open(&who, AT_FDCWD, path, O_WRONLY | O_APPEND | O_CREAT | O_NOCTTY, 0640, CALLER_REG,
			 "request.dns.log", e);
	if (fd < 0 && !verr_isset(e))
		verr_sys(e, "ERR_DNS_LOG", "check the VM's directory", "cannot open the DNS log %s", path);
	return fd;
}

/* vmsan-dns, beside us (we may be installed anywhere), into path. */
static int dns_path(char *path, size_t size, struct verr *e)
{
	ssize_t n = readlink("/proc/self/exe", path, size - 16);

	if (n <= 0 || !memchr(path, '/', (size_t)n)) {
		verr_sys(e, "ERR_DNS", NULL, "cannot find vmsan-dns");
		return -1;
	}
	path[n] = 0;
	strcpy(strrchr(path, '/') + 1, "vmsan-dns");
	return 0;
}

/* The child: a session of its own in the VM's namespace, its settings on
 * stdin (in), its answer on stdout (out), the log on 3 if there is one,
 * nothing else open.  The child's pid, or -1. */
static pid_t dns_spawn(const struct vmnet *v, const char *path, int in, int out, int logfd)
{
	pid_t pid = fork();
	int null;
	struct verr ignore = { 0 };

	if (pid != 0)
		return pid;
	null = open("/dev/null", O_WRONLY);
	setsid();
	if (enter_ns(v->nspath, &ignore) || dup2(in, 0) < 0 || dup2(out, 1) < 0 || null < 0 || dup2(null, 2) < 0 ||
	    (logfd >= 0 ? dup2(logfd, 3) : close(3) * 0) < 0)
		_exit(127);
	closefrom(4);
	rootproc_child_signals(); /* vmsan-net holds or ignores some */
	execl(path, "vmsan-dns", (char *)NULL);
	_exit(127);
}

/* Its settings (vmsan-dns(8)), as one JSON object on fd. */
static void dns_settings(int fd, const struct vmnet *v, json_t *dns, long long lo, long long hi)
{
	json_t *cfg = json_pack("{s:s, s:I, s:I, s:O, s:O, s:I, s:I, s:b}", "id", v->id, "uid",
				(json_int_t)(NET_DNS_UID_BASE + (unsigned)v->slot), "gid",
				(json_int_t)(NET_DNS_UID_BASE + (unsigned)v->slot), "upstreams",
				json_object_get(dns, "upstreams"), "domains", json_object_get(dns, "domains"), "ttlMin",
				lo, "ttlMax", hi, "strict", json_is_true(json_object_get(dns, "strict")));
	char *text = json_dumps(cfg, JSON_COMPACT);
	size_t tl, off = 0;
	ssize_t w;

	json_decref(cfg);
	if (!text)
		return;
	tl = strlen(text);
	while (off < tl && (w = write(fd, text + off, tl - off)) > 0)
		off += (size_t)w;
	free(text);
}

/* Its one line, within 5 s, into line (NUL-terminated, *len bytes);
 * parsed, or NULL. */
static json_t *dns_answer(int fd, char *line, size_t size, size_t *len)
{
	*len = 0;
	for (struct pollfd pf = { fd, POLLIN, 0 }; *len < size - 1 && poll(&pf, 1, 5000) == 1;) {
		ssize_t r = read(fd, line + *len, size - 1 - *len);

		if (r <= 0)
			break;
		*len += (size_t)r;
		if (memchr(line, '\n', *len))
			break;
	}
	line[*len] = 0;
	return json_loads(line, JSON_DISABLE_EOF_CHECK, NULL);
}

/* vmsan-dns started in the VM's namespace; v->dns says which process
 * (and, for dns_follow, with which settings). */
int dns_start(struct vmnet *v, json_t *dns, struct verr *e)
{
	char path[PATH_MAX], line[1024];
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, logfd, rc = -1;
	long long lo = NET_DNS_TTL_MIN, hi = NET_DNS_TTL_MAX;
	json_t *st = NULL;
	json_int_t res;
	size_t len;
	pid_t pid;

	if (dns_path(path, sizeof path, e))
		return -1;
	if (json_is_integer(json_object_get(dns, "ttlMin")))
		lo = json_integer_value(json_object_get(dns, "ttlMin"));
	if (json_is_integer(json_object_get(dns, "ttlMax")))
		hi = json_integer_value(json_object_get(dns, "ttlMax"));
	logfd = dns_log_open(json_string_value(json_object_get(dns, "log")), e);
	if (logfd < 0 && verr_isset(e))
		return -1;
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || (pid = dns_spawn(v, path, in[0], out[1], logfd)) < 0) {
		verr_sys(e, "ERR_DNS", NULL, "cannot start vmsan-dns");
		goto out;
	}
	close(in[0]);
	close(out[1]);
	in[0] = out[1] = -1;
	dns_settings(in[1], v, dns, lo, hi);
	close(in[1]);
	in[1] = -1;
	st = dns_answer(out[0], line, sizeof line, &len);
	if (!json_is_true(json_object_get(st, "ok")) || json_integer_value(json_object_get(st, "pid")) != pid) {
		const char *m = json_string_value(json_object_get(json_object_get(st, "error"), "message"));

		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_DNS", NULL, "vmsan-dns did not start: %s",
			 m     ? m
			 : len ? line
			       : "no answer");
		goto out;
	}
	json_decref(v->dns);
	res = json_integer_value(json_object_get(st, "resolver"));
	v->dns = json_pack("{s:I, s:I, s:I, s:I, s:O, s:I, s:I, s:b}", "pid", (json_int_t)pid, "start",
			   (json_int_t)proc_start_time(pid), "resolver", res, "resolverStart",
			   (json_int_t)(res > 0 ? proc_start_time((long)res) : 0), "upstreams",
			   json_object_get(dns, "upstreams"), "ttlMin", lo, "ttlMax", hi, "strict",
			   json_is_true(json_object_get(dns, "strict")));
	rc = 0;
out:
	json_decref(st);
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	if (logfd >= 0)
		close(logfd);
	return rc;
}

/* The running resolver given a new list (it re-syncs the set, which a
 * rules change has just replaced); -1 if it did not take it. */
static int dns_update(struct vmnet *v, json_t *domains, struct verr *e)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(DNS_CTL));
	struct timeval tv = { 5, 0 };
	struct ucred cr;
	socklen_t cl = sizeof cr;
	json_t *rq = json_pack("{s:O}", "domains", domains), *rep = NULL;
	char *text = json_dumps(rq, JSON_COMPACT), buf[4096];
	size_t len = 0;
	int fd = -1, rc = -1;

	json_decref(rq);
	memcpy(un.sun_path + 1, DNS_CTL, strlen(DNS_CTL));
	if (!text || enter_ns(v->nspath, e))
		goto out_nons;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* the server must be the resolver (it listened before it split: the
	 * setter's pid, as root), not something else in the namespace that
	 * bound the name first */
	if (fd < 0 || connect(fd, (struct sockaddr *)&un, sl) || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) ||
	    cr.uid != 0 || cr.pid != (pid_t)json_integer_value(json_object_get(v->dns, "pid")))
		goto out;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	for (size_t off = 0, tl = strlen(text); off < tl;) {
		ssize_t w = send(fd, text + off, tl - off, MSG_NOSIGNAL);
		if (w <= 0)
			goto out;
		off += (size_t)w;
	}
	shutdown(fd, SHUT_WR);
	for (ssize_t r; len < sizeof buf - 1 && (r = read(fd, buf + len, sizeof buf - 1 - len)) > 0;)
		len += (size_t)r;
	buf[len] = 0;
	rep = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
	rc = json_is_true(json_object_get(rep, "ok")) ? 0 : -1;
out:
	leave_ns();
out_nons:
	if (fd >= 0)
		close(fd);
	if (rc && !verr_isset(e))
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_DNS", NULL, "the resolver of %s did not take the new list%s%s", v->id,
			 json_string_value(json_object_get(rep, "error")) ? ": " : "",
			 json_string_value(json_object_get(rep, "error")) ?: "");
	json_decref(rep);
	free(text);
	return rc;
}

/* Whether the running resolver stays for request.dns (its settings are
 * the same: only the list may change), so the set it filled can outlive
 * the rules' replacement. */
bool dns_stays(struct vmnet *v, json_t *dns)
{
	return dns && dns_alive(v) &&
	       json_equal(json_object_get(v->dns, "upstreams"), json_object_get(dns, "upstreams")) &&
	       json_integer_value(json_object_get(v->dns, "ttlMin")) ==
		       (json_object_get(dns, "ttlMin") ? json_integer_value(json_object_get(dns, "ttlMin"))
						       : NET_DNS_TTL_MIN) &&
	       json_integer_value(json_object_get(v->dns, "ttlMax")) ==
		       (json_object_get(dns, "ttlMax") ? json_integer_value(json_object_get(dns, "ttlMax"))
						       : NET_DNS_TTL_MAX) &&
	       json_is_true(json_object_get(v->dns, "strict")) == json_is_true(json_object_get(dns, "strict"));
}

/* After the rules changed: the resolver as request.dns (NULL: none) says.
 * A new one starts from an empty set (vmsan-dns flushes it), whatever the
 * replacement kept. */
int dns_follow(struct vmnet *v, json_t *dns, struct verr *e)
{
	if (!dns) {
		dns_stop(v);
		return 0;
	}
	if (dns_stays(v, dns)) {
		struct verr ignore = { 0 };

		if (dns_update(v, json_object_get(dns, "domains"), &ignore) == 0)
			return 0;
	}
	/* none yet, other settings, or it did not answer: a new one */
	dns_stop(v);
	return dns_start(v, dns, e);
}
