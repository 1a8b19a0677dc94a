/* skopeo.c: skopeo copy fetches an image (registries, credentials, TLS,
 * oci: and oci-archive: layouts) into a directory; what it says when it
 * fails becomes one of our errors, with a fix. */
#define _GNU_SOURCE
#include "rootfs/rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *last_line_msg(char *buf)
{
	/* skopeo ends with: time="..." level=fatal msg="...": keep the msg. */
	char *m = strstr(buf, "msg=\"");
	char *last = NULL;
	while (m) {
		last = m;
		m = strstr(m + 5, "msg=\"");
	}
	if (last) {
		last += 5;
		char *q = strrchr(last, '"');
		if (q)
			*q = '\0';
		return last;
	}
	size_t n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	char *nl = strrchr(buf, '\n');
	return nl ? nl + 1 : buf;
}

static void classify_pull_error(const struct ref *r, char *out, struct verr *e)
{
	const char *msg = last_line_msg(out);
	char fix[384];
	if (strcasestr(msg, "manifest unknown") || strcasestr(msg, "name unknown") || strcasestr(msg, "not found") ||
	    strcasestr(msg, "no such file") || strcasestr(msg, "does not exist") ||
	    strcasestr(msg, "no descriptor found")) {
		bfmt(fix, sizeof(fix),
		     "check the name and tag of %s "
		     "(skopeo list-tags lists a repository's tags)",
		     r->canon);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_NOT_FOUND", fix, "image %s not found: %s", r->canon, msg);
	} else if (strcasestr(msg, "unauthorized") || strcasestr(msg, "authentication required") ||
		   strcasestr(msg, "denied")) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_REGISTRY_AUTH",
			 "log in with 'skopeo login REGISTRY' or pass --authfile FILE", "registry refused %s: %s",
			 r->canon, msg);
	} else if (strcasestr(msg, "digest") && (strcasestr(msg, "match") || strcasestr(msg, "mismatch"))) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_DIGEST_MISMATCH",
			 "the registry served damaged data; retry, and report it to its owner", "pulling %s: %s",
			 r->canon, msg);
	} else if (strcasestr(msg, "x509:") || strcasestr(msg, "certificate")) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_REGISTRY_TLS",
			 "trust the registry's CA: pass --cert-dir DIR holding its ca.crt",
			 "cannot verify registry %s: %s", r->registry, msg);
	} else if (strcasestr(msg, "server gave HTTP response to HTTPS client")) {
		snprintf(fix, sizeof(fix),
			 "for a plain-HTTP registry pass --insecure-registry "
			 "or add %s to VMSAN_INSECURE_REGISTRIES",
			 r->registry);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_REGISTRY_TLS", fix, "registry %s does not speak TLS: %s", r->registry,
			 msg);
	} else if (strcasestr(msg, "connection refused") || strcasestr(msg, "no such host") ||
		   strcasestr(msg, "timeout") || strcasestr(msg, "network is unreachable") ||
		   strcasestr(msg, "connection reset")) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_REGISTRY_UNREACHABLE",
			 "check the registry's address and your network", "cannot reach registry %s: %s",
			 r->docker ? r->registry : "(local)", msg);
	} else if (strcasestr(msg, "no space left")) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_NO_SPACE", "free space where VMSAN_DIR lives", "pulling %s: %s",
			 r->canon, msg);
	} else {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_PULL", "see the message; retry with --verbose",
			 "pulling %s failed: %s", r->canon, msg);
	}
}

/* skopeo's options for r; the buffers hold the ones with a value. */
struct skopeo_args {
	char dst[PATH_MAX + 8], auth[PATH_MAX + 32], certs[PATH_MAX + 32];
	const char *argv[16];
};

static void skopeo_argv(struct skopeo_args *a, const struct ref *r, const struct pull_opts *o, const char *dest)
{
	int n = 0;
	snprintf(a->dst, sizeof(a->dst), "dir:%s", dest);
	a->argv[n++] = "skopeo";
	a->argv[n++] = "copy";
	if (!progress_on)
		a->argv[n++] = "--quiet";
	if (r->docker && !o->tls_verify)
		a->argv[n++] = "--src-tls-verify=false";
	if (r->docker && o->auth_file) {
		snprintf(a->auth, sizeof(a->auth), "--src-authfile=%s", o->auth_file);
		a->argv[n++] = a->auth;
	}
	if (r->docker && o->cert_dir) {
		snprintf(a->certs, sizeof(a->certs), "--src-cert-dir=%s", o->cert_dir);
		a->argv[n++] = a->certs;
	}
	a->argv[n++] = r->skopeo;
	a->argv[n++] = a->dst;
	a->argv[n] = NULL;
}

/* skopeo started with stdout and stderr into a pipe; its read end. */
static int skopeo_spawn(const struct skopeo_args *a, pid_t *pid, struct verr *e)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		verr_sys(e, "ERR_IO", NULL, "pipe");
		return -1;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	int rc = posix_spawnp(pid, "skopeo", &fa, NULL, (char **)a->argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (rc) {
		close(pfd[0]);
		errno = rc;
		verr_sys(e, "ERR_MISSING_TOOL", "install skopeo (apt-get install skopeo)", "cannot run skopeo");
		return -1;
	}
	return pfd[0];
}

/* Reads fd to its end, keeping the tail in out (n bytes, terminated) for
 * the error message; shows it all when asked to. */
static void read_tail(int fd, char *out, size_t n)
{
	size_t used = 0;
	char buf[4096];
	ssize_t got;
	while ((got = read(fd, buf, sizeof(buf))) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (progress_on || vmsan_verbose)
			(void)!write(STDERR_FILENO, buf, (size_t)got);
		/* buf is smaller than out: drop the oldest bytes to fit. */
		if (used + (size_t)got >= n) {
			size_t drop = used + (size_t)got - (n - 1);
			memmove(out, out + drop, used - drop);
			used -= drop;
		}
		memcpy(out + used, buf, (size_t)got);
		used += (size_t)got;
	}
	out[used] = '\0';
}

int skopeo_copy(const struct ref *r, const struct pull_opts *o, const char *dest, struct verr *e)
{
	struct skopeo_args a = { .argv = { NULL } };
	char out[8192];
	pid_t pid;
	int fd, st;

	skopeo_argv(&a, r, o, dest);
	if ((fd = skopeo_spawn(&a, &pid, e)) < 0)
		return -1;
	read_tail(fd, out, sizeof(out));
	close(fd);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	classify_pull_error(r, out, e);
	return -1;
}
