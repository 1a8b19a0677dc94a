/* Running a helper, in one place: vmsan-<helper> OP started with its
 * request on stdin, its reply (one JSON line) read, the helper reaped, at
 * exit at the latest (see vm.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vm/vm.h"

extern char **environ;

/* Error codes copied out of helper replies live here (verr keeps a
 * pointer to a static string). */
static char err_code[64];

/* Helpers that replied but had not exited yet; waited for at exit. */
static pid_t unreaped[32];
static size_t nunreaped;
static pid_t main_pid;

static void reap_all(void)
{
	if (getpid() != main_pid)
		return;
	while (nunreaped > 0)
		while (waitpid(unreaped[--nunreaped], NULL, 0) < 0 && errno == EINTR)
			;
}

static void reap_later(pid_t pid)
{
	if (nunreaped == sizeof unreaped / sizeof *unreaped)
		reap_all();
	unreaped[nunreaped++] = pid;
}

/* Starts vmsan-<helper> OP with req (stolen) on stdin. */
int call_start(const char *helper, const char *op, json_t *req, bool root, struct pending *pd, struct verr *e)
{
	pd->out = -1;
	pd->helper = helper;
	pd->op = op;
	pd->root = root;
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/vmsan-%s", libexec, helper);
	const char *argv[6];
	int n = 0;
	if (root && geteuid() != 0) {
		argv[n++] = "sudo";
		argv[n++] = "-n";
	}
	argv[n++] = path;
	argv[n++] = op;
	argv[n] = NULL;
	if (!req) {
		verr_set(e, VMSAN_EXIT_SYS, "ERR_INTERNAL", "report this bug",
			 "the request for vmsan-%s %s could not be built (a record field is missing)", helper, op);
		return -1;
	}
	char *body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	int in[2], out[2];
	if (!body || pipe2(in, O_CLOEXEC) < 0) {
		free(body);
		verr_sys(e, "ERR_SYSTEM", NULL, "pipe");
		return -1;
	}
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		free(body);
		verr_sys(e, "ERR_SYSTEM", NULL, "pipe");
		return -1;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	if (rc) {
		close(in[1]);
		close(out[0]);
		free(body);
		errno = rc;
		verr_sys(e, "ERR_MISSING_TOOL", root ? "reinstall vmsan (./install.sh)" : NULL, "cannot run %s",
			 argv[0]);
		return -1;
	}
	size_t bl = strlen(body), off = 0;
	while (off < bl) {
		ssize_t w = write(in[1], body + off, bl - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(in[1]);
	free(body);
	pd->pid = pid;
	pd->out = out[0];
	return 0;
}

/* Reads the reply of a started helper: the reply without "ok", or NULL
 * with e set from the helper's error. */
json_t *call_finish(struct pending *pd, struct verr *e)
{
	const char *helper = pd->helper, *op = pd->op;
	bool root = pd->root;
	pid_t pid = pd->pid;
	int out[2] = { pd->out, -1 };
	if (pd->out < 0)
		return NULL;
	pd->out = -1;
	size_t cap = 8192, len = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (buf && len + 4096 > cap) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb) {
				free(buf);
				buf = NULL;
			}
			buf = nb;
		}
		if (!buf)
			break;
		ssize_t r = read(out[0], buf + len, cap - len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		/* A reply is one line: the helper's work is done when it ends. */
		bool eol = memchr(buf + len, '\n', (size_t)r) != NULL;
		len += (size_t)r;
		if (eol)
			break;
	}
	close(out[0]);
	int st = 0;
	json_t *reply = buf ? json_loadb(buf, len, 0, NULL) : NULL;
	free(buf);
	/* A helper that has replied ok may still be exiting: closing a
	 * netfilter socket after a commit waits for an RCU grace period
	 * (10-20 ms here, in nf_tables' NETLINK_URELEASE handler), and sudo
	 * holds our pipe until its child is gone.  Its reply is its result;
	 * it is reaped before we exit. */
	if (json_is_true(json_object_get(reply, "ok")) && waitpid(pid, &st, WNOHANG) == 0)
		reap_later(pid);
	else
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	if (!json_is_object(reply)) {
		json_decref(reply);
		if (root && geteuid() != 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1)
			verr_set(
				e, VMSAN_EXIT_FAIL, "ERR_SUDO",
				"add yourself to the vmsan group (./install.sh did, for the user who ran it) and log in again",
				"sudo refused to run vmsan-%s", helper);
		else
			verr_set(e, VMSAN_EXIT_SYS, "ERR_HELPER", "see vmsan doctor",
				 "vmsan-%s %s gave no JSON reply (exit status %d)", helper, op,
				 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		return NULL;
	}
	if (!json_is_true(json_object_get(reply, "ok"))) {
		json_t *er = json_object_get(reply, "error");
		const char *code = json_string_value(json_object_get(er, "code"));
		const char *fix = json_string_value(json_object_get(er, "fix"));
		snprintf(err_code, sizeof err_code, "%s", code ? code : "ERR_HELPER");
		int ex = WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : VMSAN_EXIT_FAIL;
		verr_set(e, ex, err_code, fix, "%s", json_string_value(json_object_get(er, "message")) ?: "failed");
		json_decref(reply);
		return NULL;
	}
	json_object_del(reply, "ok");
	return reply;
}

/* Runs vmsan-<helper> OP with req (stolen) on stdin; the reply without
 * "ok", or NULL with e set from the helper's error. */
json_t *call(const char *helper, const char *op, json_t *req, bool root, struct verr *e)
{
	struct pending pd;
	return call_start(helper, op, req, root, &pd, e) < 0 ? NULL : call_finish(&pd, e);
}

/* Best-effort call whose failure only goes to stderr (undo paths). */
void call_quiet(const char *helper, const char *op, json_t *req, bool root)
{
	struct verr e = { 0 };
	json_t *r = call(helper, op, req, root, &e);
	if (!r)
		fprintf(stderr, "vmsan %s: cleanup: vmsan-%s %s: %s\n", cmd, helper, op, e.message);
	json_decref(r);
}

/* Before any call: helpers left unreaped are waited for at exit (by the
 * process that started them, not by a forked child). */
void call_init(void)
{
	main_pid = getpid();
	atexit(reap_all);
}
