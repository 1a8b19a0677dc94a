/* skopeo.c: skopeo copy fetches an image (registries, credentials, TLS,
 * the registries VMSAN_INSECURE_REGISTRIES names, oci: and oci-archive:
 * layouts) into a directory; what it says when it fails, unquoted, becomes
 * one of our errors, with a fix. */
#define _GNU_SOURCE
#include "rootfs/rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* A hex digit's value, or -1. */
static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
		return (c | 0x20) - 'a' + 10;
	return -1;
}

/* The code point c as UTF-8 at out; its length. */
static size_t put_utf8(char *out, unsigned long c)
{
	if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		c = '?';
	if (c < 0x80)
		return out[0] = (char)c, 1;
	if (c < 0x800)
		return out[0] = (char)(0xc0 | c >> 6), out[1] = (char)(0x80 | (c & 0x3f)), 2;
	if (c < 0x10000)
		return out[0] = (char)(0xe0 | c >> 12), out[1] = (char)(0x80 | (c >> 6 & 0x3f)),
		       out[2] = (char)(0x80 | (c & 0x3f)), 3;
	out[0] = (char)(0xf0 | c >> 18);
	out[1] = (char)(0x80 | (c >> 12 & 0x3f));
	out[2] = (char)(0x80 | (c >> 6 & 0x3f));
	out[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/* One escape of Go's quoting, s just after its backslash: the code point
 * (a byte of \x or octal above 0x7f, which is not UTF-8 alone, is '?'). */
static unsigned long go_escape(const char **s)
{
	static const char simple[] = "a\ab\bf\fn\nr\rt\tv\v\\\\\"\"''";
	char k = *(*s)++;
	int width = k == 'x' ? 2 : k == 'u' ? 4 : k == 'U' ? 8 : 0, base = 16;
	unsigned long c = 0;
	if (k >= '0' && k <= '7')
		width = 2, base = 8, c = (unsigned long)(k - '0');
	if (!width) {
		const char *m = k ? strchr(simple, k) : NULL;
		return m && (m - simple) % 2 == 0 ? (unsigned char)m[1] : (unsigned char)k;
	}
	for (; width && hexval(**s) >= 0 && hexval(**s) < base; width--)
		c = c * (unsigned long)base + (unsigned long)hexval(*(*s)++);
	return (k == 'x' || base == 8) && c > 0x7f ? '?' : c;
}

/* skopeo's logger writes msg="..." as Go quotes a string (strconv.Quote):
 * unquoted in place, s just after the opening quote, up to the closing
 * one (no escape is shorter than what it stands for).  Left quoted, its
 * \" would be escaped again in our JSON reply (\\\").  Control characters
 * become spaces: the message is one line. */
static void go_unquote(char *s)
{
	const char *in = s;
	char *out = s;
	while (*in && *in != '"') {
		unsigned long c = (unsigned char)*in++;
		bool esc = c == '\\' && *in;
		if (esc)
			c = go_escape(&in);
		if (c < 0x20 || c == 0x7f)
			c = ' ';
		if (esc)
			out += put_utf8(out, c);
		else
			*out++ = (char)c; /* a byte of UTF-8 as it came */
	}
	*out = '\0';
}

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
		go_unquote(last + 5);
		return last + 5;
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
		const char *listed = getenv("VMSAN_INSECURE_REGISTRIES");
		if (listed && *listed)
			bfmt(fix, sizeof(fix),
			     "VMSAN_INSECURE_REGISTRIES is '%.120s', which does not name %s: add it "
			     "(comma-separated host:port)",
			     listed, r->registry);
		else
			bfmt(fix, sizeof(fix),
			     "for a plain-HTTP registry set VMSAN_INSECURE_REGISTRIES=%s "
			     "(vmsan images pull also takes --insecure-registry)",
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

/* Whether VMSAN_INSECURE_REGISTRIES (comma-separated host[:port]) names
 * registry.  Read here, where every pull reaches a registry (vmsan images
 * pull, create --from-image, run, vmsan serve's creates), and nowhere
 * else. */
static bool listed_insecure(const char *registry)
{
	const char *p = getenv("VMSAN_INSECURE_REGISTRIES");
	size_t n = strlen(registry);
	while (p && *p) {
		p += strspn(p, " \t,");
		size_t len = strcspn(p, ",");
		size_t word = len;
		while (word && (p[word - 1] == ' ' || p[word - 1] == '\t'))
			word--;
		if (word == n && strncasecmp(p, registry, n) == 0)
			return true;
		p += len;
	}
	return false;
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
	if (r->docker && (!o->tls_verify || listed_insecure(r->registry)))
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
