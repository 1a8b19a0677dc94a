/* A QMP client: what vmsan-fc says to QEMU over the socket it bound in
 * root's directory.  QEMU runs as the caller's uid, so what comes back is
 * the caller's to forge: every read is into a fixed buffer, every reply
 * only searched for what we expect. */
#define _GNU_SOURCE
#include "fc/fc.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* What one exchange may read before we give up on it: QEMU's replies to
 * our commands are a few hundred bytes; a peer that streams more is not
 * answering. */
#define QMP_READ_MAX (1 << 20)

/* Read until a line containing want, or the connection ends. */
static bool qmp_expect(int fd, const char *want)
{
	char buf[8192];
	size_t len = 0, total = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
		if (n <= 0 || (total += (size_t)n) > QMP_READ_MAX)
			return false;
		len += (size_t)n;
		buf[len] = 0;
		if (strstr(buf, want))
			return true;
		if (len == sizeof buf - 1)
			len = 0;
	}
}

int qmp_open(const char *sock, int timeout)
{
	int fd = unix_connect(sock, timeout);
	if (fd < 0)
		return -1;
	static const char caps[] = "{\"execute\":\"qmp_capabilities\"}\n";
	if (!qmp_expect(fd, "\"QMP\"") || write(fd, caps, sizeof caps - 1) != (ssize_t)sizeof caps - 1 ||
	    !qmp_expect(fd, "\"return\"")) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Send one command; true when the reply contains want. */
bool qmp_call(int fd, const char *cmd, const char *want)
{
	char req[128];
	int n = snprintf(req, sizeof req, "{\"execute\":\"%s\"}\n", cmd);
	return write(fd, req, (size_t)n) == n && qmp_expect(fd, want);
}

/* One reply (a "return" or an "error" line; events are skipped) into buf. */
static bool qmp_reply(int fd, char *buf, size_t n)
{
	size_t len = 0, total = 0;
	for (;;) {
		char *nl;
		while ((nl = memchr(buf, '\n', len))) {
			*nl = 0;
			if (strstr(buf, "\"return\"") || strstr(buf, "\"error\""))
				return strstr(buf, "\"return\"") != NULL;
			memmove(buf, nl + 1, len - (size_t)(nl + 1 - buf));
			len -= (size_t)(nl + 1 - buf);
		}
		if (len == n - 1)
			len = 0;
		ssize_t r = read(fd, buf + len, n - 1 - len);
		if (r <= 0 || (total += (size_t)r) > QMP_READ_MAX)
			return false;
		len += (size_t)r;
		buf[len] = 0;
	}
}

/* A command given as JSON; true when it returned (its reply in buf). */
bool qmp_do(int fd, const char *json, char *buf, size_t n)
{
	size_t l = strlen(json);
	return write(fd, json, l) == (ssize_t)l && write(fd, "\n", 1) == 1 && qmp_reply(fd, buf, n);
}

/* Hands QEMU a descriptor under a name (getfd, SCM_RIGHTS), for fd: URIs:
 * QEMU opens no file of ours and cannot run a command (-sandbox). */
bool qmp_send_fd(int fd, int pass, const char *name)
{
	char cmd[128], buf[4096];
	int n = snprintf(cmd, sizeof cmd, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"%s\"}}\n", name);
	struct iovec iov = { .iov_base = cmd, .iov_len = (size_t)n };
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &pass, sizeof(int));
	return sendmsg(fd, &m, 0) == n && qmp_reply(fd, buf, sizeof buf);
}

/* Polls query-migrate until the migration ends; true when it completed
 * (QEMU's error, if any, in err). */
bool qmp_migration_done(int fd, double timeout_s, char *err, size_t n)
{
	char buf[8192];
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (!qmp_do(fd, "{\"execute\":\"query-migrate\"}", buf, sizeof buf)) {
			snprintf(err, n, "QMP query-migrate failed: %.200s", buf);
			return false;
		}
		if (strstr(buf, "\"status\": \"completed\"") || strstr(buf, "\"status\":\"completed\""))
			return true;
		if (strstr(buf, "\"failed\"") || strstr(buf, "\"cancelled\"")) {
			char *d = strstr(buf, "\"error-desc\"");
			snprintf(err, n, "migration failed%s%.200s", d ? ": " : "", d ? d : "");
			return false;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 > timeout_s) {
			snprintf(err, n, "migration did not end within %.0f s", timeout_s);
			return false;
		}
		poll(NULL, 0, 2);
	}
}

/* One QMP command on a fresh connection; best effort. */
int qmp_command(const char *sock, const char *cmd)
{
	int fd = qmp_open(sock, 2);
	if (fd < 0)
		return -1;
	int rc = qmp_call(fd, cmd, "\"return\"") ? 0 : -1;
	close(fd);
	return rc;
}
