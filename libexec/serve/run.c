/* Running vmsan's own commands (vmsan-create, -rm, -pause, ...) for a
 * request, with --json, and reading the one document each prints: the
 * daemon does what its user could type, and nothing more. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "serve/serve.h"

extern char **environ;

#define OUT_MAX (4 * 1024 * 1024)
#define RUN_SECONDS 600 /* a create that pulls an image may be slow */

/* Error codes copied out of replies: verr keeps a pointer to a static
 * string, and requests run in threads of their own. */
static _Thread_local char err_code[64];

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Reads fd to EOF or the deadline into a growing buffer. */
static char *slurp(int fd, size_t *len, int64_t deadline)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);

	while (buf) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) == 0)
			break;
		if (n + 1 == cap) {
			char *nb = cap >= OUT_MAX ? NULL : realloc(buf, cap * 2);
			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			buf[n] = '\0';
			*len = n;
			return buf;
		}
		n += (size_t)r;
	}
	free(buf);
	return NULL;
}

static json_t *error_from(json_t *doc, int status, struct verr *e)
{
	json_t *err = json_object_get(doc, "error");
	const char *code = json_string_value(json_object_get(err, "code"));
	const char *msg = json_string_value(json_object_get(err, "message"));
	const char *fix = json_string_value(json_object_get(err, "fix"));

	snprintf(err_code, sizeof err_code, "%s", code ? code : "ERR_COMMAND");
	verr_set(e, status == VMSAN_EXIT_USAGE ? VMSAN_EXIT_USAGE : VMSAN_EXIT_FAIL, err_code, fix, "%s",
		 msg ? msg : "the command failed without saying why");
	return NULL;
}

json_t *run_vmsan(const char *cmd, const char *const *args, struct verr *e)
{
	const char *libexec = getenv("VMSAN_LIBEXECDIR");
	char path[4200];
	const char *argv[16];
	size_t n = 0, len = 0;
	posix_spawn_file_actions_t fa;
	int out[2], st = 0;
	pid_t pid;
	char *text;
	json_t *doc;
	json_error_t je;

	snprintf(path, sizeof path, "%s/vmsan-%s", libexec ? libexec : ".", cmd);
	argv[n++] = path;
	argv[n++] = "--json";
	for (size_t i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	if (pipe2(out, O_CLOEXEC) < 0)
		return verr_sys(e, "ERR_SYSTEM", NULL, "pipe"), NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	int rc = posix_spawn(&pid, path, &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	if (rc != 0) {
		close(out[0]);
		errno = rc;
		return verr_sys(e, "ERR_SYSTEM", NULL, "cannot run %s", path), NULL;
	}
	text = slurp(out[0], &len, now_ms() + RUN_SECONDS * 1000);
	close(out[0]);
	if (!text)
		kill(pid, SIGTERM);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!text)
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_COMMAND", NULL, "vmsan %s did not answer in time", cmd), NULL;
	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	free(text);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_COMMAND", NULL, "vmsan %s printed no JSON document (exit %d)",
				 cmd, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)),
		       NULL;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || json_is_false(json_object_get(doc, "ok"))) {
		error_from(doc, WIFEXITED(st) ? WEXITSTATUS(st) : 1, e);
		json_decref(doc);
		return NULL;
	}
	return doc;
}

json_t *run_vm_record(const char *id, struct verr *e)
{
	struct state st;
	json_t *rec;

	if (state_open(&st, false, e) != 0)
		return NULL;
	rec = state_load(&st, id, e);
	if (rec)
		state_derive_status(rec);
	state_release(&st);
	return rec;
}

int run_agent_addr(const char *id, struct agent_addr *a, struct verr *e)
{
	struct state st;
	char tok[96];
	int rc = -1;

	if (state_open(&st, false, e) != 0)
		return -1;
	json_t *rec = state_load(&st, id, e);
	if (!rec)
		goto out;
	state_derive_status(rec);
	json_t *agent = json_object_get(rec, "agent");
	const char *status = json_string_value(json_object_get(rec, "status"));
	const char *addr = json_string_value(json_object_get(agent, "addr"));
	json_int_t port = json_integer_value(json_object_get(agent, "port"));
	if (!status || strcmp(status, "running")) {
		verr_fail(e, VMSAN_EXIT_FAIL, "ERR_VM_NOT_RUNNING", NULL, "sandbox %s is %s", id,
			  status ? status : "in an unknown state");
		goto out;
	}
	if (!addr || strlen(addr) >= sizeof a->host || port < 1 || port > 65535) {
		verr_fail(e, VMSAN_EXIT_FAIL, "ERR_VM_NO_AGENT", NULL, "sandbox %s has no agent address", id);
		goto out;
	}
	snprintf(a->host, sizeof a->host, "%s", addr);
	snprintf(a->port, sizeof a->port, "%d", (int)port);
	snprintf(tok, sizeof tok, "%s.token", id);
	int fd = openat(st.vmsfd, tok, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, a->token, sizeof a->token - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0) {
		verr_sys(e, "ERR_VM_NO_AGENT_TOKEN", NULL, "cannot read the agent token of %s", id);
		goto out;
	}
	a->token[n] = '\0';
	a->token[strcspn(a->token, "\r\n")] = '\0';
	rc = 0;
out:
	json_decref(rec);
	state_release(&st);
	return rc;
}
