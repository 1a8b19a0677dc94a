/* vmsan-rootfs: OCI images into ext4 root disks, unprivileged, cached by
 * manifest digest.
 *
 *   $VMSAN_DIR/images/<hex>/rootfs.ext4   the image's filesystem (sparse)
 *   $VMSAN_DIR/images/<hex>/image.json    digest, config, sizes, layers
 *   $VMSAN_DIR/images/refs/<key>.json     a reference -> digest
 *   $VMSAN_DIR/images/tmp/<pid>.<n>/      builds in progress
 *
 * A build happens in tmp/ and becomes visible by one rename, so the cache
 * never holds a half-built image whatever kills us.  skopeo fetches
 * (registries, credentials, TLS, oci: and oci-archive: layouts); the
 * layers are then applied in-process (layer.c, ext4.c).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/vmsan.h"
#include "lib/ext4.h"
#include "lib/layer.h"

extern char **environ;

#define IMAGE_FORMAT 1          /* bump when the built image changes shape */
#define DEFAULT_DISK (10ULL << 30)
#define MIN_DISK (16ULL << 20)
#define MAX_DISK (1ULL << 40)
#define BASE_RECIPE 1

struct cache {
	struct state st;
	char dir[4200];         /* $VMSAN_DIR/images */
};

static bool progress_on;

/* ---- small utilities ------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}


/* snprintf where truncation is harmless: paths under the state directory
 * (its length was checked when it was resolved; an overlong one fails at
 * open()) and messages. */
static __attribute__((format(printf, 3, 4)))
char *bfmt(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, n, fmt, ap);
	va_end(ap);
	return buf;
}

static void own(const struct cache *c, const char *path)
{
	if (c->st.chown_new && lchown(path, (uid_t)c->st.owner_uid, (gid_t)c->st.owner_gid) != 0)
		vmsan_debug("cannot chown %s: %s", path, strerror(errno));
}

static int mkdir_own(const struct cache *c, const char *path, struct verr *e)
{
	if (mkdir(path, 0700) == 0) {
		own(c, path);
		return 0;
	}
	if (errno == EEXIST)
		return 0;
	verr_sys(e, "ERR_IO", NULL, "cannot create %s", path);
	return -1;
}

static int rm_tree(const char *path)
{
	return rm_tree_at(AT_FDCWD, path);
}

static int write_file(const struct cache *c, const char *path, const char *data,
		      struct verr *e)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot write %s", tmp);
		return -1;
	}
	size_t len = strlen(data), off = 0;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			verr_sys(e, errno == ENOSPC ? "ERR_NO_SPACE" : "ERR_IO",
				 errno == ENOSPC ? "free space where VMSAN_DIR lives" : NULL,
				 "cannot write %s", tmp);
			close(fd);
			unlink(tmp);
			return -1;
		}
		off += (size_t)n;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot write %s", tmp);
		unlink(tmp);
		return -1;
	}
	own(c, tmp);
	if (rename(tmp, path) != 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot rename %s", tmp);
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int dump_file(const struct cache *c, const char *path, json_t *j, struct verr *e)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!s) {
		verr_sys(e, "ERR_NOMEM", NULL, "encoding %s", path);
		return -1;
	}
	size_t n = strlen(s);
	char *t = realloc(s, n + 2);
	if (t) {
		s = t;
		s[n] = '\n';
		s[n + 1] = '\0';
	}
	int rc = write_file(c, path, s, e);
	free(s);
	return rc;
}

static json_t *load_json(const char *path, struct verr *e)
{
	json_error_t je;
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		if (errno == ENOENT && access(path, F_OK) != 0)
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_NOENT", NULL, "%s does not exist", path);
		else
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_CACHE_CORRUPT",
				 "remove it with 'vmsan images rm' and pull again",
				 "%s: %s (line %d)", path, je.text, je.line);
	}
	return j;
}

static int lock_file(const struct cache *c, const char *path, struct verr *e)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot open lock %s", path);
		return -1;
	}
	own(c, path);
	while (flock(fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			verr_sys(e, "ERR_IO", NULL, "cannot lock %s", path);
			close(fd);
			return -1;
		}
	}
	return fd;
}

/* ---- the cache ------------------------------------------------------- */

static int cache_open(struct cache *c, bool create, struct verr *e)
{
	memset(c, 0, sizeof(*c));
	c->st.vmsfd = -1;
	if (state_open(&c->st, create, e) != 0)
		return -1;
	bfmt(c->dir, sizeof(c->dir), "%s/images", c->st.dir);
	char p[PATH_MAX];
	if (!create)
		return 0;
	if (mkdir_own(c, c->dir, e) < 0)
		return -1;
	bfmt(p, sizeof(p), "%s/refs", c->dir);
	if (mkdir_own(c, p, e) < 0)
		return -1;
	bfmt(p, sizeof(p), "%s/tmp", c->dir);
	return mkdir_own(c, p, e);
}

/* A reference as a file name: percent-encoding keeps it reversible. */
static void ref_key(const char *ref, char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)ref; *p && o + 4 < n; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-') {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
}

static void ref_unkey(const char *key, char *out, size_t n)
{
	size_t o = 0;
	for (const char *p = key; *p && o + 1 < n; p++) {
		unsigned v;
		if (*p == '%' && sscanf(p + 1, "%2x", &v) == 1) {
			out[o++] = (char)v;
			p += 2;
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
}

static bool valid_hex64(const char *s)
{
	if (strlen(s) != 64)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

/* Removes tmp/<pid>.* of builders that are gone (killed mid-build). */
static void sweep_tmp(const struct cache *c)
{
	char p[PATH_MAX];
	bfmt(p, sizeof(p), "%s/tmp", c->dir);
	DIR *d = opendir(p);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (de->d_name[0] == '.' || *end != '.' || pid <= 0)
			continue;
		if (pid == getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		rm_tree_at(dirfd(d), de->d_name);
	}
	closedir(d);
}

/* ---- references ------------------------------------------------------ */

struct ref {
	char canon[600];        /* what the cache is keyed by */
	char skopeo[4200];      /* what skopeo is given */
	bool docker;            /* a registry (TLS and auth options apply) */
	char registry[256];
	char layout[PATH_MAX];  /* oci: a local layout, read in place */
	char tag[256];
};

static int is_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
	       ch == '_' || ch == '-' || ch == '/';
}

static int parse_ref(const char *in, struct ref *r, struct verr *e)
{
	memset(r, 0, sizeof(*r));
	while (*in == ' ' || *in == '\t')
		in++;
	if (strncmp(in, "oci:", 4) == 0 || strncmp(in, "oci-archive:", 12) == 0) {
		const char *rest = strchr(in, ':') + 1;
		char path[PATH_MAX], real[PATH_MAX];
		const char *colon = strchr(rest, ':');
		size_t pl = colon ? (size_t)(colon - rest) : strlen(rest);
		if (pl == 0 || pl >= sizeof(path)) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_IMAGE_REF",
				 "write oci:PATH[:TAG] or oci-archive:PATH[:TAG]",
				 "image reference '%s' has no path", in);
			return -1;
		}
		memcpy(path, rest, pl);
		path[pl] = '\0';
		if (!realpath(path, real)) {
			verr_sys(e, "ERR_IMAGE_NOT_FOUND", "check the path",
				 "image layout %s", path);
			e->exit = VMSAN_EXIT_FAIL;
			return -1;
		}
		bfmt(r->canon, sizeof(r->canon), "%.*s%s%s%s", (int)(rest - in), in,
			 real, colon ? ":" : "", colon ? colon + 1 : "");
		snprintf(r->skopeo, sizeof(r->skopeo), "%s", r->canon);
		if (strncmp(in, "oci:", 4) == 0) {     /* read in place, no copy */
			bfmt(r->layout, sizeof(r->layout), "%s", real);
			bfmt(r->tag, sizeof(r->tag), "%s", colon ? colon + 1 : "");
		}
		return 0;
	}
	if (strncmp(in, "docker://", 9) == 0)
		in += 9;
	size_t len = strlen(in);
	if (len == 0 || len > 500) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_IMAGE_REF",
			 "give a reference such as alpine:3.20 or registry:5000/team/app@sha256:...",
			 len ? "image reference is too long" : "image reference is empty");
		return -1;
	}
	char name[520], tag[160] = "", digest[80] = "", domain[256] = "";
	const char *at = strchr(in, '@');
	size_t nl = at ? (size_t)(at - in) : len;
	if (at) {
		if (strncmp(at + 1, "sha256:", 7) != 0 || !valid_hex64(at + 8)) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_IMAGE_REF",
				 "a digest is sha256: and 64 lowercase hex digits",
				 "image reference '%s' has a bad digest", in);
			return -1;
		}
		snprintf(digest, sizeof(digest), "%s", at + 1);
	}
	memcpy(name, in, nl);
	name[nl] = '\0';
	/* The tag follows the last ':' that comes after the last '/'. */
	char *slash = strrchr(name, '/'), *colon = strrchr(name, ':');
	if (colon && (!slash || colon > slash)) {
		*colon = '\0';
		snprintf(tag, sizeof(tag), "%s", colon + 1);
		if (!tag[0]) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_IMAGE_REF",
				 "leave the tag out for :latest, or name one",
				 "image reference '%s' has an empty tag", in);
			return -1;
		}
		for (const char *t = tag; *t; t++)
			if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') ||
			      (*t >= '0' && *t <= '9') || *t == '_' || *t == '.' || *t == '-') ||
			    t - tag >= 128) {
				verr_set(e, VMSAN_EXIT_USAGE, "ERR_IMAGE_REF",
					 "tags are up to 128 of [A-Za-z0-9_.-]",
					 "image reference '%s' has a bad tag", in);
				return -1;
			}
	}
	/* The first component is a registry if it looks like a host. */
	char *first = strchr(name, '/');
	char *path = name;
	if (first) {
		size_t dl = (size_t)(first - name);
		if (memchr(name, '.', dl) || memchr(name, ':', dl) ||
		    (dl == 9 && strncmp(name, "localhost", 9) == 0)) {
			if (dl >= sizeof(domain))
				dl = sizeof(domain) - 1;
			memcpy(domain, name, dl);
			domain[dl] = '\0';
			path = first + 1;
		}
	}
	if (!domain[0] || strcmp(domain, "index.docker.io") == 0)
		snprintf(domain, sizeof(domain), "docker.io");
	for (const char *p = domain; *p; p++)
		if (!(is_name_char(*p) || (*p >= 'A' && *p <= 'Z') || *p == ':') || *p == '/') {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_IMAGE_REF", NULL,
				 "image reference '%s' has a bad registry name", in);
			return -1;
		}
	bool bad = !*path || path[0] == '/' || path[strlen(path) - 1] == '/';
	for (const char *p = path; *p && !bad; p++)
		bad = !is_name_char(*p) || (*p == '/' && p[1] == '/');
	if (bad) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_IMAGE_REF",
			 "repository names are lowercase letters, digits and . _ - /",
			 "image reference '%s' is not a valid name", in);
		return -1;
	}
	bool library = strcmp(domain, "docker.io") == 0 && !strchr(path, '/');
	if (!tag[0] && !digest[0])
		snprintf(tag, sizeof(tag), "latest");
	bfmt(r->canon, sizeof(r->canon), "%s/%s%s%s%s%s", domain,
		 library ? "library/" : "", path, tag[0] ? ":" : "", tag,
		 digest[0] ? "@" : "");
	if (digest[0])
		strncat(r->canon, digest, sizeof(r->canon) - strlen(r->canon) - 1);
	snprintf(r->skopeo, sizeof(r->skopeo), "docker://%s", r->canon);
	snprintf(r->registry, sizeof(r->registry), "%s", domain);
	r->docker = true;
	return 0;
}

/* ---- skopeo ---------------------------------------------------------- */

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
	if (strcasestr(msg, "manifest unknown") || strcasestr(msg, "name unknown") ||
	    strcasestr(msg, "not found") || strcasestr(msg, "no such file") ||
	    strcasestr(msg, "does not exist") || strcasestr(msg, "no descriptor found")) {
		bfmt(fix, sizeof(fix), "check the name and tag of %s "
			 "(skopeo list-tags lists a repository's tags)", r->canon);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_NOT_FOUND", fix,
			 "image %s not found: %s", r->canon, msg);
	} else if (strcasestr(msg, "unauthorized") || strcasestr(msg, "authentication required") ||
		   strcasestr(msg, "denied")) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_REGISTRY_AUTH",
			 "log in with 'skopeo login REGISTRY' or pass --authfile FILE",
			 "registry refused %s: %s", r->canon, msg);
	} else if (strcasestr(msg, "digest") && (strcasestr(msg, "match") || strcasestr(msg, "mismatch"))) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_DIGEST_MISMATCH",
			 "the registry served damaged data; retry, and report it to its owner",
			 "pulling %s: %s", r->canon, msg);
	} else if (strcasestr(msg, "x509:") || strcasestr(msg, "certificate")) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_REGISTRY_TLS",
			 "trust the registry's CA: pass --cert-dir DIR holding its ca.crt",
			 "cannot verify registry %s: %s", r->registry, msg);
	} else if (strcasestr(msg, "server gave HTTP response to HTTPS client")) {
		snprintf(fix, sizeof(fix), "for a plain-HTTP registry pass --insecure-registry "
			 "or add %s to VMSAN_INSECURE_REGISTRIES", r->registry);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_REGISTRY_TLS", fix,
			 "registry %s does not speak TLS: %s", r->registry, msg);
	} else if (strcasestr(msg, "connection refused") || strcasestr(msg, "no such host") ||
		   strcasestr(msg, "timeout") || strcasestr(msg, "network is unreachable") ||
		   strcasestr(msg, "connection reset")) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_REGISTRY_UNREACHABLE",
			 "check the registry's address and your network",
			 "cannot reach registry %s: %s", r->docker ? r->registry : "(local)", msg);
	} else if (strcasestr(msg, "no space left")) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_NO_SPACE", "free space where VMSAN_DIR lives",
			 "pulling %s: %s", r->canon, msg);
	} else {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_PULL", "see the message; retry with --verbose",
			 "pulling %s failed: %s", r->canon, msg);
	}
}

struct pull_opts {
	bool tls_verify;
	const char *auth_file;
	const char *cert_dir;
};

static int skopeo_copy(const struct ref *r, const struct pull_opts *o,
		       const char *dest, struct verr *e)
{
	char dst[PATH_MAX + 8], auth[PATH_MAX + 32], certs[PATH_MAX + 32];
	const char *argv[16];
	int n = 0;
	snprintf(dst, sizeof(dst), "dir:%s", dest);
	argv[n++] = "skopeo";
	argv[n++] = "copy";
	if (!progress_on)
		argv[n++] = "--quiet";
	if (r->docker && !o->tls_verify)
		argv[n++] = "--src-tls-verify=false";
	if (r->docker && o->auth_file) {
		snprintf(auth, sizeof(auth), "--src-authfile=%s", o->auth_file);
		argv[n++] = auth;
	}
	if (r->docker && o->cert_dir) {
		snprintf(certs, sizeof(certs), "--src-cert-dir=%s", o->cert_dir);
		argv[n++] = certs;
	}
	argv[n++] = r->skopeo;
	argv[n++] = dst;
	argv[n] = NULL;

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
	pid_t pid;
	int rc = posix_spawnp(&pid, "skopeo", &fa, NULL, (char **)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (rc) {
		close(pfd[0]);
		errno = rc;
		verr_sys(e, "ERR_MISSING_TOOL", "install skopeo (apt-get install skopeo)",
			 "cannot run skopeo");
		return -1;
	}
	/* Keep the tail for the error message; show it all when asked to. */
	char out[8192];
	size_t used = 0;
	char buf[4096];
	ssize_t got;
	while ((got = read(pfd[0], buf, sizeof(buf))) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (progress_on || vmsan_verbose)
			(void)!write(STDERR_FILENO, buf, (size_t)got);
		/* buf is smaller than out: drop the oldest bytes to fit. */
		if (used + (size_t)got >= sizeof(out)) {
			size_t drop = used + (size_t)got - (sizeof(out) - 1);
			memmove(out, out + drop, used - drop);
			used -= drop;
		}
		memcpy(out + used, buf, (size_t)got);
		used += (size_t)got;
	}
	out[used] = '\0';
	close(pfd[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	classify_pull_error(r, out, e);
	return -1;
}

/* ---- building -------------------------------------------------------- */

struct progress {
	uint64_t total;
	double last;
	const char *what;
};

static void show_progress(void *ctx, uint64_t done)
{
	struct progress *p = ctx;
	double t = now_s();
	if (!progress_on || (t - p->last < 0.1 && done < p->total))
		return;
	p->last = t;
	fprintf(stderr, "\r%s: %.1f/%.1f MiB %3d%%\033[K", p->what,
		(double)done / 1048576.0, (double)p->total / 1048576.0,
		p->total ? (int)(done * 100 / p->total) : 100);
}

/* Size that would have held the content: data plus ext4's own metadata
 * (1 inode per 16 KiB, 256-byte inodes: ~1.6%) plus a margin. */
static uint64_t needed_size(const struct e4_usage *u0, const struct e4_usage *u,
			    const struct layer_stats *st)
{
	uint64_t data = (u->blocks_used - u0->blocks_used) * u->block_size + st->more_bytes;
	uint64_t inodes = u->inodes_used + st->more_inodes;
	uint64_t by_data = data + data / 16 + (16ULL << 20);
	uint64_t by_inodes = inodes * 16384 + inodes * 16384 / 16;
	uint64_t need = by_data > by_inodes ? by_data : by_inodes;
	return (need + (64ULL << 20) - 1) & ~((64ULL << 20) - 1);
}

static void human_size(uint64_t b, char *out, size_t n)
{
	if (b >= (1ULL << 30) && b % (1ULL << 30) == 0)
		snprintf(out, n, "%lluG", (unsigned long long)(b >> 30));
	else
		snprintf(out, n, "%lluM", (unsigned long long)((b + (1ULL << 20) - 1) >> 20));
}

static int disk_full_error(uint64_t disk, uint64_t need, const char *what, struct verr *e)
{
	char have[32], want[32], fix[200];
	human_size(disk, have, sizeof(have));
	human_size(need, want, sizeof(want));
	snprintf(fix, sizeof(fix), "use --disk-size %s or more", want);
	verr_set(e, VMSAN_EXIT_FAIL, "ERR_DISK_TOO_SMALL", fix,
		 "disk size %s is too small for %s: it needs about %s", have, what, want);
	return -1;
}

struct build {
	const struct cache *c;
	char tmp[PATH_MAX];     /* build directory */
	char img[PATH_MAX];     /* tmp/rootfs.ext4 */
	uint64_t disk;
	double t0;
};

/* Applies the layers listed by a manifest, blob <hex> being the file
 * <blobs><hex>; fills rec. */
static int build_from_manifest(struct build *b, const char *blobs, json_t *manifest,
			       json_t *config, json_t *rec, struct verr *e)
{
	json_t *layers = json_object_get(manifest, "layers");
	json_t *diffs = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
	size_t nl = json_array_size(layers);
	uint64_t total = 0;
	for (size_t i = 0; i < nl; i++)
		total += (uint64_t)json_integer_value(json_object_get(json_array_get(layers, i), "size"));

	if (e4_mkfs(b->img, b->disk, false, "vmsan-image", e) < 0)
		return -1;
	own(b->c, b->img);
	struct e4 *w = e4_open(b->img, e);
	if (!w)
		return -1;
	struct e4_usage u0, u;
	e4_usage(w, &u0);
	struct layer_stats st = { 0 };
	struct progress pr = { total, 0, "building rootfs" };
	json_t *jl = json_array();
	bool full = false;
	for (size_t i = 0; i < nl; i++) {
		json_t *L = json_array_get(layers, i);
		const char *dg = json_string_value(json_object_get(L, "digest"));
		const char *diff = json_is_array(diffs) && json_array_size(diffs) == nl
				   ? json_string_value(json_array_get(diffs, i)) : NULL;
		if (!dg || strncmp(dg, "sha256:", 7) != 0 || !valid_hex64(dg + 7)) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_MANIFEST", NULL,
				 "layer %zu has no sha256 digest", i + 1);
			goto fail;
		}
		char path[PATH_MAX], label[64];
		bfmt(path, sizeof(path), "%s%s", blobs, dg + 7);
		snprintf(label, sizeof(label), "layer %zu/%zu", i + 1, nl);
		struct layer l = { path, dg, diff, label };
		struct verr le = { 0 };
		if (layer_apply(w, &l, &st, show_progress, &pr, &le) < 0) {
			if (!e4_is_full(&le)) {
				*e = le;
				goto fail;
			}
			full = true;    /* go on counting the other layers */
		}
		json_array_append_new(jl, json_pack("{s:s, s:I}", "digest", dg, "size",
			json_integer_value(json_object_get(L, "size"))));
	}
	if (progress_on)
		fputs("\r\033[K", stderr);
	e4_usage(w, &u);
	if (full) {
		char what[64];
		snprintf(what, sizeof(what), "this image (%llu files)",
			 (unsigned long long)st.entries);
		disk_full_error(b->disk, needed_size(&u0, &u, &st), what, e);
		goto fail;
	}
	if (e4_close(w, e) < 0) {
		json_decref(jl);
		return -1;
	}
	json_object_set_new(rec, "layers", jl);
	json_object_set_new(rec, "diskSize", json_integer((json_int_t)b->disk));
	json_object_set_new(rec, "usedBytes", json_integer((json_int_t)(u.blocks_used * u.block_size)));
	json_object_set_new(rec, "neededDiskSize",
			    json_integer((json_int_t)needed_size(&u0, &u, &st)));
	json_object_set_new(rec, "files", json_integer((json_int_t)u.files));
	json_object_set_new(rec, "contentBytes", json_integer((json_int_t)u.bytes));
	json_object_set_new(rec, "compressedBytes", json_integer((json_int_t)st.in_bytes));
	return 0;
fail:
	if (progress_on)
		fputs("\r\033[K", stderr);
	json_decref(jl);
	e4_abort(w);
	return -1;
}

static json_t *exec_config(json_t *config)
{
	json_t *cc = json_object_get(config, "config");
	json_t *out = json_object();
	static const struct { const char *from, *to; } keys[] = {
		{ "Env", "env" }, { "WorkingDir", "workingDir" }, { "User", "user" },
		{ "Entrypoint", "entrypoint" }, { "Cmd", "cmd" },
		{ "ExposedPorts", "exposedPorts" }, { "StopSignal", "stopSignal" },
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
		json_t *v = json_object_get(cc, keys[i].from);
		if (v && !json_is_null(v))
			json_object_set(out, keys[i].to, v);
	}
	return out;
}

static int new_build(struct build *b, const struct cache *c, uint64_t disk, struct verr *e)
{
	static unsigned seq;
	memset(b, 0, sizeof(*b));
	b->c = c;
	b->disk = disk;
	b->t0 = now_s();
	for (int tries = 0; tries < 100; tries++) {
		bfmt(b->tmp, sizeof(b->tmp), "%s/tmp/%d.%u", c->dir, (int)getpid(), seq++);
		if (mkdir(b->tmp, 0700) == 0) {
			own(c, b->tmp);
			bfmt(b->img, sizeof(b->img), "%s/rootfs.ext4", b->tmp);
			return 0;
		}
		if (errno != EEXIST)
			break;
	}
	verr_sys(e, errno == ENOSPC ? "ERR_NO_SPACE" : "ERR_IO", NULL,
		 "cannot create a build directory in %s/tmp", c->dir);
	return -1;
}

/* tmp -> images/<hex>; if another builder got there first, keep theirs. */
static int publish(struct build *b, const char *hex, json_t *rec, struct verr *e)
{
	char path[PATH_MAX], blobs[PATH_MAX];
	bfmt(blobs, sizeof(blobs), "%s/blobs", b->tmp);
	rm_tree(blobs);
	json_object_set_new(rec, "buildSeconds", json_real(now_s() - b->t0));
	bfmt(path, sizeof(path), "%s/image.json", b->tmp);
	if (dump_file(b->c, path, rec, e) < 0)
		return -1;
	int fd = open(b->img, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot sync %s", b->img);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	chmod(b->img, 0444);    /* shared read-only by every VM made from it */
	bfmt(path, sizeof(path), "%s/%s", b->c->dir, hex);
	if (rename(b->tmp, path) != 0) {
		if (errno != EEXIST && errno != ENOTEMPTY) {
			verr_sys(e, "ERR_IO", NULL, "cannot move the image into %s", path);
			return -1;
		}
		rm_tree(b->tmp);
	}
	b->tmp[0] = '\0';
	int dfd = open(b->c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

static void drop_build(struct build *b)
{
	if (b->tmp[0])
		rm_tree(b->tmp);
	b->tmp[0] = '\0';
}

/* ---- records --------------------------------------------------------- */

static json_t *load_image(const struct cache *c, const char *hex, struct verr *e)
{
	char p[PATH_MAX];
	bfmt(p, sizeof(p), "%s/%s/image.json", c->dir, hex);
	json_t *rec = load_json(p, e);
	if (!rec)
		return NULL;
	bfmt(p, sizeof(p), "%s/%s/rootfs.ext4", c->dir, hex);
	if (access(p, R_OK) != 0) {
		json_decref(rec);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_CACHE_CORRUPT",
			 "remove it with 'vmsan images rm' and pull again",
			 "image %s has no rootfs.ext4", hex);
		return NULL;
	}
	json_object_set_new(rec, "path", json_string(p));
	return rec;
}

static char *lookup_ref(const struct cache *c, const char *canon);

static int store_ref(const struct cache *c, const char *canon, const char *digest,
		     struct verr *e)
{
	char key[1800], p[PATH_MAX], when[32];
	/* Unchanged: no rewrite (and no fsync) on every cache hit. */
	char *have = lookup_ref(c, canon);
	bool same = have && strcmp(have, digest) == 0;
	free(have);
	if (same)
		return 0;
	ref_key(canon, key, sizeof(key));
	bfmt(p, sizeof(p), "%s/refs/%s.json", c->dir, key);
	utc_iso(time(NULL), when);
	json_t *j = json_pack("{s:s, s:s, s:s}", "ref", canon, "digest", digest,
			      "updatedAt", when);
	int rc = dump_file(c, p, j, e);
	json_decref(j);
	return rc;
}

/* The digest a reference points at, or NULL (not pulled yet). */
static char *lookup_ref(const struct cache *c, const char *canon)
{
	char key[1800], p[PATH_MAX];
	ref_key(canon, key, sizeof(key));
	bfmt(p, sizeof(p), "%s/refs/%s.json", c->dir, key);
	json_t *j = json_load_file(p, 0, NULL);
	const char *d = json_string_value(json_object_get(j, "digest"));
	char *out = d && strncmp(d, "sha256:", 7) == 0 && valid_hex64(d + 7) ? strdup(d) : NULL;
	json_decref(j);
	return out;
}

static int check_disk(json_t *rec, uint64_t disk, const char *what, struct verr *e)
{
	uint64_t need = (uint64_t)json_integer_value(json_object_get(rec, "neededDiskSize"));
	if (disk && need > disk)
		return disk_full_error(disk, need, what, e);
	return 0;
}

static json_t *answer(json_t *rec, const char *ref, bool cached, double t0)
{
	json_object_set_new(rec, "ref", json_string(ref));
	json_object_set_new(rec, "cached", json_boolean(cached));
	json_object_set_new(rec, "seconds", json_real(now_s() - t0));
	return rec;
}

/* ---- request fields -------------------------------------------------- */

static int read_disk(struct jr *r, uint64_t *disk)
{
	const char *s = jr_string(r, "diskSize", JR_OPTIONAL, valid_size);
	*disk = 0;
	if (!s)
		return verr_isset(r->e) ? -1 : 0;
	unsigned long long b;
	char why[128];
	if (parse_size(s, 30, &b, why, sizeof(why)) != 0 || b < MIN_DISK || b > MAX_DISK) {
		verr_set(r->e, VMSAN_EXIT_USAGE, "ERR_DISK_SIZE",
			 "give a size between 16M and 1T, such as 10G (a bare number is GiB)",
			 "disk size '%s' is out of range", s);
		return -1;
	}
	*disk = b;
	return 0;
}

static int valid_path(const char *s, char *why, size_t n)
{
	if (!*s || strlen(s) >= PATH_MAX) {
		snprintf(why, n, "expected a file path");
		return -1;
	}
	return 0;
}

/* ---- ops ------------------------------------------------------------- */

static const char *runtime_default(const char *rt)
{
	static const struct { const char *name, *ref; } map[] = {
		{ "node22", "docker.io/library/node:22" },
		{ "node24", "docker.io/library/node:24" },
		{ "python3.13", "docker.io/library/python:3.13-slim" },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(*map); i++)
		if (strcmp(map[i].name, rt) == 0)
			return map[i].ref;
	return NULL;
}

static json_t *op_base(struct cache *c, const char *busybox, uint64_t disk, struct verr *e);

/* An OCI layout on this machine is read in place (no copy): the manifest
 * for tag (or the only one), through an index to linux/amd64 if need be.
 * Every blob's digest is still checked as it is read. */
static int oci_layout_manifest(const struct ref *r, char *path, size_t n, char digest[72],
			       struct verr *e)
{
	char p[PATH_MAX];
	bfmt(p, sizeof(p), "%s/index.json", r->layout);
	json_t *idx = load_json(p, e), *pick = NULL;
	if (!idx) {
		if (verr_take(e, "ERR_NOENT"))
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_NOT_FOUND", "check the path",
				 "%s is not an OCI image layout (no index.json)", r->layout);
		return -1;
	}
	for (int depth = 0; depth < 3; depth++) {
		json_t *ms = json_object_get(idx, "manifests"), *m;
		size_t i, nm = 0;
		pick = NULL;
		json_array_foreach(ms, i, m) {
			const char *name = json_string_value(json_object_get(
				json_object_get(m, "annotations"), "org.opencontainers.image.ref.name"));
			json_t *pl = json_object_get(m, "platform");
			bool ok = depth == 0 ? (r->tag[0] ? name && strcmp(name, r->tag) == 0 : true)
				  : (!pl || (json_equal(json_object_get(pl, "os"), json_string("linux")) &&
					     json_equal(json_object_get(pl, "architecture"), json_string("amd64"))));
			if (ok) {
				pick = m;
				nm++;
			}
		}
		if (nm != 1) {
			if (nm)
				verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_REF",
					 "name the image with oci:PATH:TAG",
					 "%s holds %zu images: which one?", r->layout, nm);
			else
				verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_NOT_FOUND", "check the tag",
					 "%s has no image%s%s%s", r->layout,
					 r->tag[0] ? " tagged '" : "", r->tag, r->tag[0] ? "'" : "");
			json_decref(idx);
			return -1;
		}
		const char *d = json_string_value(json_object_get(pick, "digest"));
		const char *mt = json_string_value(json_object_get(pick, "mediaType"));
		if (!d || strncmp(d, "sha256:", 7) != 0 || !valid_hex64(d + 7)) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_MANIFEST", NULL,
				 "%s: a manifest without a sha256 digest", r->layout);
			json_decref(idx);
			return -1;
		}
		bfmt(path, n, "%s/blobs/sha256/%s", r->layout, d + 7);
		if (sha256_file(path, digest, e) < 0 || strcmp(digest, d) != 0) {
			if (!verr_isset(e))
				verr_set(e, VMSAN_EXIT_FAIL, "ERR_DIGEST_MISMATCH",
					 "the layout is damaged; copy the image again",
					 "%s: manifest %s does not match its digest", r->layout, d);
			json_decref(idx);
			return -1;
		}
		bool is_index = mt && (strcmp(mt, "application/vnd.oci.image.index.v1+json") == 0 ||
				       strcmp(mt, "application/vnd.docker.distribution.manifest.list.v2+json") == 0);
		json_decref(idx);
		if (!is_index)
			return 0;
		if (!(idx = load_json(path, e)))
			return -1;
	}
	json_decref(idx);
	verr_set(e, VMSAN_EXIT_FAIL, "ERR_MANIFEST", NULL, "%s: indexes nested too deeply",
		 r->layout);
	return -1;
}

static json_t *do_pull(struct cache *c, const char *refstr, const struct pull_opts *o,
		       bool force, uint64_t disk, struct verr *e)
{
	double t0 = now_s();
	struct ref r;
	if (parse_ref(refstr, &r, e) < 0)
		return NULL;
	char key[1800], lockp[PATH_MAX];
	ref_key(r.canon, key, sizeof(key));
	bfmt(lockp, sizeof(lockp), "%s/refs/%s.lock", c->dir, key);
	int lk = lock_file(c, lockp, e);
	if (lk < 0)
		return NULL;
	json_t *rec = NULL;
	struct build b = { 0 };
	char *have = force ? NULL : lookup_ref(c, r.canon);
	if (have) {
		struct verr le = { 0 };
		rec = load_image(c, have + 7, &le);
		free(have);
		if (rec) {
			if (check_disk(rec, disk, r.canon, e) < 0)
				goto fail;
			close(lk);
			return answer(rec, r.canon, true, t0);
		}
	}
	sweep_tmp(c);
	if (new_build(&b, c, disk ? disk : DEFAULT_DISK, e) < 0)
		goto fail;
	char blobs[PATH_MAX], p[PATH_MAX], digest[72];
	if (r.layout[0]) {
		bfmt(blobs, sizeof(blobs), "%s/blobs/sha256/", r.layout);
		if (oci_layout_manifest(&r, p, sizeof(p), digest, e) < 0)
			goto fail;
	} else {
		bfmt(blobs, sizeof(blobs), "%s/blobs", b.tmp);
		if (progress_on)
			fprintf(stderr, "pulling %s\n", r.canon);
		if (skopeo_copy(&r, o, blobs, e) < 0)
			goto fail;
		bfmt(p, sizeof(p), "%s/manifest.json", blobs);
		if (sha256_file(p, digest, e) < 0)
			goto fail;
		bfmt(blobs, sizeof(blobs), "%s/blobs/", b.tmp);
	}
	json_t *manifest = load_json(p, e);
	if (!manifest)
		goto fail;
	/* Already built under another name (or by a racing pull)? */
	struct verr le = { 0 };
	if ((rec = load_image(c, digest + 7, &le))) {
		json_decref(manifest);
		if (check_disk(rec, disk, r.canon, e) < 0 || store_ref(c, r.canon, digest, e) < 0)
			goto fail;
		drop_build(&b);
		close(lk);
		return answer(rec, r.canon, true, t0);
	}
	const char *mt = json_string_value(json_object_get(manifest, "mediaType"));
	long sv = (long)json_integer_value(json_object_get(manifest, "schemaVersion"));
	const char *cfgd = json_string_value(json_object_get(json_object_get(manifest, "config"), "digest"));
	if (sv != 2 || !cfgd || strncmp(cfgd, "sha256:", 7) != 0 || !valid_hex64(cfgd + 7) ||
	    (mt && strcmp(mt, "application/vnd.oci.image.manifest.v1+json") != 0 &&
	     strcmp(mt, "application/vnd.docker.distribution.manifest.v2+json") != 0)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_MANIFEST",
			 "only OCI and Docker v2 schema 2 image manifests are supported",
			 "%s has an unsupported manifest (%s)", r.canon, mt ? mt : "no media type");
		json_decref(manifest);
		goto fail;
	}
	bfmt(p, sizeof(p), "%s%s", blobs, cfgd + 7);
	char cdig[72];
	json_t *config = NULL;
	if (sha256_file(p, cdig, e) < 0 || strcmp(cdig, cfgd) != 0) {
		if (!verr_isset(e))
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_DIGEST_MISMATCH", "pull the image again",
				 "%s: the config blob is %s, the manifest says %s", r.canon, cdig, cfgd);
		json_decref(manifest);
		goto fail;
	}
	if (!(config = load_json(p, e))) {
		json_decref(manifest);
		goto fail;
	}
	char when[32];
	utc_iso(time(NULL), when);
	rec = json_pack("{s:i, s:s, s:s, s:s, s:o, s:{s:O, s:O}, s:s, s:s}",
			"schemaVersion", 1, "digest", digest, "source", r.canon,
			"configDigest", cfgd, "config", exec_config(config),
			"platform", "os", json_object_get(config, "os"),
			"architecture", json_object_get(config, "architecture"),
			"builtAt", when, "builder", "vmsan-rootfs " VMSAN_VERSION);
	json_object_set_new(rec, "format", json_integer(IMAGE_FORMAT));
	int brc = build_from_manifest(&b, blobs, manifest, config, rec, e);
	json_decref(manifest);
	json_decref(config);
	if (brc < 0 || publish(&b, digest + 7, rec, e) < 0 ||
	    store_ref(c, r.canon, digest, e) < 0)
		goto fail;
	json_decref(rec);
	if (!(rec = load_image(c, digest + 7, e)))
		goto fail;
	close(lk);
	return answer(rec, r.canon, false, t0);
fail:
	json_decref(rec);
	drop_build(&b);
	close(lk);
	return NULL;
}

static json_t *op_pull(struct jr *r, struct verr *e)
{
	bool force = false, tls = true, prog = false;
	uint64_t disk;
	const char *ref = jr_string(r, "ref", JR_OPTIONAL, NULL);
	const char *rt = jr_string(r, "runtime", JR_OPTIONAL, NULL);
	const char *auth = jr_string(r, "authFile", JR_OPTIONAL, valid_path);
	const char *certs = jr_string(r, "certDir", JR_OPTIONAL, valid_path);
	if (jr_bool(r, "pull", JR_OPTIONAL, &force) < 0 ||
	    jr_bool(r, "tlsVerify", JR_OPTIONAL, &tls) < 0 ||
	    jr_bool(r, "progress", JR_OPTIONAL, &prog) < 0 || read_disk(r, &disk) < 0 ||
	    jr_end(r))
		return NULL;
	progress_on = prog && isatty(STDERR_FILENO);
	if (!!ref == !!rt) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION", "give exactly one of them",
			 "request: give \"ref\" or \"runtime\"");
		return NULL;
	}
	struct cache c;
	if (cache_open(&c, true, e) < 0)
		return NULL;
	json_t *out = NULL;
	struct pull_opts o = { tls, auth, certs };
	if (rt) {
		char env[64], *q;
		snprintf(env, sizeof(env), "VMSAN_RUNTIME_%s", rt);
		for (q = env; *q; q++)
			*q = *q == '.' ? '_' : (*q >= 'a' && *q <= 'z') ? (char)(*q - 32) : *q;
		const char *over = getenv(env);
		if (strcmp(rt, "base") == 0 && !(over && *over)) {
			out = op_base(&c, NULL, disk, e);
		} else {
			const char *def = runtime_default(rt);
			if (!def && strcmp(rt, "base") != 0) {
				verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_RUNTIME",
					 "use one of: base, node22, node24, python3.13",
					 "unknown runtime '%s'", rt);
			} else {
				out = do_pull(&c, over && *over ? over : def, &o, force, disk, e);
			}
		}
		if (out)
			json_object_set_new(out, "runtime", json_string(rt));
	} else {
		out = do_pull(&c, ref, &o, force, disk, e);
	}
	state_release(&c.st);
	return out;
}

/* The offline base image: busybox-static and a minimal /etc, built from
 * Debian's package with no registry. */
struct membuf {
	const char *p;
	size_t len;
	bool done;
};

static int mem_read(void *ctx, const void **buf, size_t *len, int64_t *off, struct verr *e)
{
	(void)e;
	struct membuf *m = ctx;
	if (m->done || m->len == 0)
		return 0;
	m->done = true;
	*buf = m->p;
	*len = m->len;
	*off = 0;
	return 1;
}

struct filebuf {
	int fd;
	char buf[65536];
	int64_t off;
};

static int file_read(void *ctx, const void **buf, size_t *len, int64_t *off, struct verr *e)
{
	struct filebuf *f = ctx;
	ssize_t n;
	while ((n = read(f->fd, f->buf, sizeof(f->buf))) < 0 && errno == EINTR)
		;
	if (n < 0) {
		verr_sys(e, "ERR_IO", NULL, "reading a file into the image");
		return -1;
	}
	if (n == 0)
		return 0;
	*buf = f->buf;
	*len = (size_t)n;
	*off = f->off;
	f->off += n;
	return 1;
}

static int put_text(struct e4 *w, const char *path, mode_t mode, const char *text,
		    struct verr *e)
{
	struct membuf m = { text, strlen(text), false };
	struct e4_entry ent = { .path = path, .mode = S_IFREG | mode, .size = m.len,
				.read = mem_read, .read_ctx = &m, .mtime = 0 };
	return e4_put(w, &ent, e);
}

/* Copies the regular file open as fd (from its start) into the image;
 * src names it in messages. */
static int put_fd(struct e4 *w, const char *path, mode_t mode, int fd, const char *src, struct verr *e)
{
	struct stat sb;
	struct filebuf *fb = malloc(sizeof(*fb));
	int rc = -1;
	if (!fb || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
		verr_sys(e, "ERR_IO", NULL, "reading %s", src);
	else {
		fb->fd = fd;
		fb->off = 0;
		struct e4_entry ent = { .path = path, .mode = S_IFREG | mode, .size = (uint64_t)sb.st_size,
					.read = file_read, .read_ctx = fb, .mtime = sb.st_mtime };
		rc = e4_put(w, &ent, e);
	}
	free(fb);
	return rc;
}

/* Copies a host file into the image (the guest binaries). */
static int put_file(struct e4 *w, const char *path, mode_t mode, const char *src, struct verr *e)
{
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		verr_sys(e, "ERR_GUEST_MISSING", "build it (make) or reinstall vmsan", "cannot read %s", src);
		return -1;
	}
	int rc = put_fd(w, path, mode, fd, src, e);
	close(fd);
	return rc;
}

static bool is_static_elf(int fd)
{
	/* A dynamic executable names its loader in a PT_INTERP header. */
	unsigned char h[64];
	if (pread(fd, h, sizeof(h), 0) != sizeof(h) || memcmp(h, "\177ELF", 4) != 0 || h[4] != 2)
		return false;
	uint64_t phoff;
	uint16_t phentsize, phnum;
	memcpy(&phoff, h + 32, 8);
	memcpy(&phentsize, h + 54, 2);
	memcpy(&phnum, h + 56, 2);
	for (unsigned i = 0; i < phnum && i < 64; i++) {
		uint32_t type;
		if (pread(fd, &type, 4, (off_t)(phoff + (uint64_t)i * phentsize)) != 4)
			return false;
		if (type == 3)
			return false;
	}
	return true;
}

static json_t *op_base(struct cache *c, const char *busybox, uint64_t disk, struct verr *e)
{
	double t0 = now_s();
	if (!busybox)
		busybox = getenv("VMSAN_BUSYBOX") && *getenv("VMSAN_BUSYBOX")
			  ? getenv("VMSAN_BUSYBOX") : "/bin/busybox";
	int fd = open(busybox, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		verr_sys(e, "ERR_MISSING_TOOL", "install busybox-static (apt-get install busybox-static)",
			 "cannot open %s", busybox);
		e->exit = VMSAN_EXIT_FAIL;
		return NULL;
	}
	if (!is_static_elf(fd)) {
		close(fd);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_MISSING_TOOL",
			 "install busybox-static, whose /bin/busybox needs no libraries",
			 "%s is not a static x86_64 executable", busybox);
		return NULL;
	}
	/* Hashing busybox (2 MB) costs more than the rest of a cache hit:
	 * its sum is remembered by device, inode, size and mtime. */
	char bbsum[72] = "", idsrc[160], digest[72], sump[PATH_MAX], sl[256], want[200];
	struct stat bs;
	bfmt(sump, sizeof(sump), "%s/refs/vmsan%%2Fbase.busybox", c->dir);
	if (fstat(fd, &bs) == 0) {
		snprintf(want, sizeof(want), "%llu %llu %lld %lld.%09ld ", (unsigned long long)bs.st_dev,
			 (unsigned long long)bs.st_ino, (long long)bs.st_size, (long long)bs.st_mtim.tv_sec,
			 bs.st_mtim.tv_nsec);
		FILE *f = fopen(sump, "re");
		if (f && fgets(sl, sizeof(sl), f) && !strncmp(sl, want, strlen(want)) &&
		    strlen(sl + strlen(want)) >= 71 && !strncmp(sl + strlen(want), "sha256:", 7)) {
			memcpy(bbsum, sl + strlen(want), 71);
			bbsum[71] = 0;
		}
		if (f)
			fclose(f);
	}
	if (!bbsum[0]) {
		if (sha256_file(busybox, bbsum, e) < 0) {
			close(fd);
			return NULL;
		}
		char tmp[PATH_MAX + 16];
		bfmt(tmp, sizeof(tmp), "%s.%d", sump, (int)getpid());
		FILE *f = fopen(tmp, "we");
		bool wrote = f && fprintf(f, "%s%s\n", want, bbsum) > 0;
		if (f && fclose(f) != 0)
			wrote = false;
		if (wrote) {
			own(c, tmp);
			if (rename(tmp, sump) < 0)
				unlink(tmp);
		} else {
			unlink(tmp);
		}
	}
	snprintf(idsrc, sizeof(idsrc), "vmsan-base recipe %d format %d busybox %s",
		 BASE_RECIPE, IMAGE_FORMAT, bbsum);
	sha256_hex(idsrc, strlen(idsrc), digest);
	const char *canon = "vmsan/base";
	char lockp[PATH_MAX];
	bfmt(lockp, sizeof(lockp), "%s/refs/vmsan%%2Fbase.lock", c->dir);
	int lk = lock_file(c, lockp, e);
	json_t *rec = NULL;
	struct build b = { 0 };
	if (lk < 0) {
		close(fd);
		return NULL;
	}
	struct verr le = { 0 };
	if ((rec = load_image(c, digest + 7, &le))) {
		close(fd);
		if (check_disk(rec, disk, canon, e) < 0 || store_ref(c, canon, digest, e) < 0)
			goto fail;
		close(lk);
		return answer(rec, canon, true, t0);
	}
	sweep_tmp(c);
	if (new_build(&b, c, disk ? disk : DEFAULT_DISK, e) < 0 ||
	    e4_mkfs(b.img, b.disk, false, "vmsan-base", e) < 0)
		goto fail;
	struct e4 *w = e4_open(b.img, e);
	if (!w)
		goto fail;
	static const struct { const char *path; mode_t mode; } dirs[] = {
		{ "bin", 0755 }, { "sbin", 0755 }, { "usr", 0755 }, { "usr/bin", 0755 },
		{ "usr/sbin", 0755 }, { "etc", 0755 }, { "root", 0700 }, { "home", 0755 },
		{ "tmp", 01777 }, { "proc", 0555 }, { "sys", 0555 }, { "dev", 0755 },
		{ "run", 0755 }, { "var", 0755 }, { "var/tmp", 01777 }, { "mnt", 0755 },
	};
	int rc = 0;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(*dirs) && rc == 0; i++) {
		struct e4_entry d = { .path = dirs[i].path, .mode = S_IFDIR | dirs[i].mode };
		rc = e4_put(w, &d, e);
	}
	if (rc == 0)
		rc = put_fd(w, "bin/busybox", 0755, fd, busybox, e);
	/* The applets, as busybox itself lists them ("/bin/sh" ...). */
	if (rc == 0) {
		int pfd[2];
		pid_t pid = -1;
		if (pipe2(pfd, O_CLOEXEC) == 0) {
			posix_spawn_file_actions_t fa;
			posix_spawn_file_actions_init(&fa);
			posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
			const char *argv[] = { busybox, "--list-full", NULL };
			if (posix_spawn(&pid, busybox, &fa, NULL, (char *const *)argv, environ) != 0)
				pid = -1;
			posix_spawn_file_actions_destroy(&fa);
			close(pfd[1]);
			FILE *f = fdopen(pfd[0], "r");
			char line[256];
			unsigned n = 0;
			while (f && fgets(line, sizeof(line), f)) {
				line[strcspn(line, "\n")] = '\0';
				char *ap = line[0] == '/' ? line + 1 : line;
				if (!*ap || strcmp(ap, "bin/busybox") == 0 || rc)
					continue;
				struct e4_entry l = { .path = ap, .mode = S_IFLNK | 0777,
						      .target = "/bin/busybox" };
				rc = e4_put(w, &l, e);
				n++;
			}
			if (f)
				fclose(f);
			else
				close(pfd[0]);
			if (rc == 0 && n < 50) {
				verr_set(e, VMSAN_EXIT_FAIL, "ERR_MISSING_TOOL",
					 "install busybox-static", "%s lists only %u applets",
					 busybox, n);
				rc = -1;
			}
		} else {
			verr_sys(e, "ERR_IO", NULL, "pipe");
			rc = -1;
		}
		if (pid > 0)
			waitpid(pid, NULL, 0);
	}
	close(fd);
	fd = -1;
	if (rc == 0)
		rc = put_text(w, "etc/passwd", 0644,
			      "root:x:0:0:root:/root:/bin/sh\n"
			      "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", e);
	if (rc == 0)
		rc = put_text(w, "etc/group", 0644, "root:x:0:\nnogroup:x:65534:\n", e);
	if (rc == 0)
		rc = put_text(w, "etc/shadow", 0640, "root:*:1::::::\nnobody:*:1::::::\n", e);
	if (rc == 0)
		rc = put_text(w, "etc/os-release", 0644,
			      "NAME=\"vmsan base\"\nID=vmsan-base\nPRETTY_NAME=\"vmsan base (busybox)\"\n", e);
	if (rc == 0)
		rc = put_text(w, "etc/hosts", 0644, "127.0.0.1 localhost\n", e);
	struct e4_usage u;
	if (rc == 0) {
		e4_usage(w, &u);
		rc = e4_close(w, e);
	} else {
		if (e4_is_full(e)) {
			memset(e, 0, sizeof(*e));
			disk_full_error(b.disk, 64ULL << 20, "the base image", e);
		}
		e4_abort(w);
	}
	if (rc < 0)
		goto fail;
	char when[32];
	utc_iso(time(NULL), when);
	rec = json_pack("{s:i, s:s, s:s, s:{s:[s], s:s, s:s, s:[s]}, s:{s:s, s:s}, s:s, s:s, s:i,"
			" s:I, s:I, s:I, s:I, s:[]}",
			"schemaVersion", 1, "digest", digest, "source", canon,
			"config", "env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "workingDir", "/",
			"user", "root", "cmd", "/bin/sh",
			"platform", "os", "linux", "architecture", "amd64",
			"builtAt", when, "builder", "vmsan-rootfs " VMSAN_VERSION,
			"format", IMAGE_FORMAT,
			"diskSize", (json_int_t)b.disk,
			"usedBytes", (json_int_t)(u.blocks_used * u.block_size),
			"neededDiskSize", (json_int_t)(64ULL << 20),
			"files", (json_int_t)u.files, "layers");
	json_object_set_new(rec, "busybox", json_string(bbsum));
	if (publish(&b, digest + 7, rec, e) < 0 || store_ref(c, canon, digest, e) < 0)
		goto fail;
	json_decref(rec);
	if (!(rec = load_image(c, digest + 7, e)))
		goto fail;
	close(lk);
	return answer(rec, canon, false, t0);
fail:
	if (fd >= 0)
		close(fd);
	json_decref(rec);
	drop_build(&b);
	close(lk);
	return NULL;
}

static json_t *op_build_base(struct jr *r, struct verr *e)
{
	uint64_t disk;
	const char *bb = jr_string(r, "busybox", JR_OPTIONAL, valid_path);
	if (read_disk(r, &disk) < 0 || jr_end(r))
		return NULL;
	struct cache c;
	if (cache_open(&c, true, e) < 0)
		return NULL;
	json_t *out = op_base(&c, bb, disk, e);
	state_release(&c.st);
	return out;
}

/* Which VMs use which image: records carry "imageDigest". */
static json_t *users_by_digest(struct verr *e)
{
	struct state st = { .vmsfd = -1 };
	json_t *vms = NULL, *errors = NULL, *map = json_object();
	if (state_list(&st, NULL, &vms, &errors, e) != 0) {
		json_decref(map);
		return NULL;
	}
	size_t i;
	json_t *vm;
	json_array_foreach(vms, i, vm) {
		const char *d = json_string_value(json_object_get(vm, "imageDigest"));
		const char *id = json_string_value(json_object_get(vm, "id"));
		if (!d || !id)
			continue;
		json_t *a = json_object_get(map, d);
		if (!a)
			json_object_set_new(map, d, a = json_array());
		json_array_append_new(a, json_string(id));
	}
	json_decref(vms);
	json_decref(errors);
	return map;
}

/* All images with their references and users. */
static json_t *list_images(const struct cache *c, struct verr *e)
{
	json_t *users = users_by_digest(e);
	if (!users)
		return NULL;
	json_t *refs = json_object();   /* digest -> [ref] */
	char p[PATH_MAX];
	bfmt(p, sizeof(p), "%s/refs", c->dir);
	DIR *d = opendir(p);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0)
			continue;
		char f[PATH_MAX], name[1800];
		bfmt(f, sizeof(f), "%s/%s", p, de->d_name);
		json_t *j = json_load_file(f, 0, NULL);
		const char *dg = json_string_value(json_object_get(j, "digest"));
		de->d_name[l - 5] = '\0';
		ref_unkey(de->d_name, name, sizeof(name));
		if (dg) {
			json_t *a = json_object_get(refs, dg);
			if (!a)
				json_object_set_new(refs, dg, a = json_array());
			json_array_append_new(a, json_string(name));
		}
		json_decref(j);
	}
	if (d)
		closedir(d);
	json_t *out = json_array();
	d = opendir(c->dir);
	while (d && (de = readdir(d))) {
		if (!valid_hex64(de->d_name))
			continue;
		struct verr le = { 0 };
		json_t *rec = load_image(c, de->d_name, &le);
		if (!rec) {
			fprintf(stderr, "%s: images/%s: %s\n", vmsan_prog, de->d_name, le.message);
			continue;
		}
		const char *dg = json_string_value(json_object_get(rec, "digest"));
		json_t *a = dg ? json_object_get(refs, dg) : NULL;
		json_object_set_new(rec, "refs", a ? json_incref(a) : json_array());
		a = dg ? json_object_get(users, dg) : NULL;
		json_object_set_new(rec, "usedBy", a ? json_incref(a) : json_array());
		struct stat sb;
		const char *path = json_string_value(json_object_get(rec, "path"));
		if (path && stat(path, &sb) == 0)
			json_object_set_new(rec, "allocatedBytes", json_integer((json_int_t)sb.st_blocks * 512));
		json_array_append_new(out, rec);
	}
	if (d)
		closedir(d);
	json_decref(refs);
	json_decref(users);
	return out;
}

static int by_built_desc(const void *a, const void *b)
{
	const char *x = json_string_value(json_object_get(*(json_t *const *)a, "builtAt"));
	const char *y = json_string_value(json_object_get(*(json_t *const *)b, "builtAt"));
	return strcmp(y ? y : "", x ? x : "");
}

static json_t *sorted(json_t *arr)
{
	size_t n = json_array_size(arr);
	json_t **v = malloc((n ? n : 1) * sizeof(*v));
	if (!v)
		return arr;
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(arr, i));
	qsort(v, n, sizeof(*v), by_built_desc);
	json_t *out = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(out, v[i]);
	free(v);
	json_decref(arr);
	return out;
}

/* ---- a VM's own disk -------------------------------------------------- */

/* VM disk templates: rebuilt on demand, so prune may drop them all; a
 * build that died leaves <key>.ext4.<pid>.tmp, swept when its pid is gone. */
static uint64_t sweep_templates(const struct cache *c, bool all)
{
	char p[PATH_MAX];
	uint64_t freed = 0;
	bfmt(p, sizeof(p), "%s/vmdisk", c->dir);
	int dfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return 0;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		const char *t = strstr(de->d_name, ".ext4.");
		bool drop = all;
		if (t && strcmp(t + 6, "offset")) {
			long pid = strtol(t + 6, NULL, 10);
			drop = pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
		}
		struct stat st;
		if (drop && fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    unlinkat(dfd, de->d_name, 0) == 0)
			freed += (uint64_t)st.st_blocks * 512;
	}
	closedir(d);
	return freed;
}

#define TOKEN_HOLDER "0000000000000000000000000000000000000000000000000000000000000000"

/* Builds the template of a VM disk: everything but the token, which is a
 * placeholder of the same length whose data block is found once, so each
 * VM's copy only has it overwritten in place. */
static int build_template(const struct cache *c, const char *tpl, const char *init, const char *agent,
			  const char *env, uint64_t disk, uint64_t *tok_off, struct verr *e)
{
	char tmp[PATH_MAX], meta[PATH_MAX];
	sweep_templates(c, false);
	bfmt(tmp, sizeof(tmp), "%s.%d.tmp", tpl, (int)getpid());
	struct e4 *w = NULL;
	if (e4_mkfs(tmp, disk, true, "vmsan-vm", e) < 0 || !(w = e4_open(tmp, e)))
		goto fail;
	struct e4_entry d1 = { .path = "vmsan", .mode = S_IFDIR | 0700 };
	struct e4_entry d2 = { .path = "upper", .mode = S_IFDIR | 0755 };
	struct e4_entry d3 = { .path = "work", .mode = S_IFDIR | 0700 };
	if (e4_put(w, &d1, e) || e4_put(w, &d2, e) || e4_put(w, &d3, e) ||
	    put_file(w, "vmsan/init", 0755, init, e) || put_file(w, "vmsan/vmsan-agent", 0755, agent, e) ||
	    put_text(w, "vmsan/agent.token", 0600, TOKEN_HOLDER, e) || put_text(w, "vmsan/agent.env", 0600, env, e))
		goto fail;
	int rc = e4_close(w, e);
	w = NULL;
	if (rc < 0 || e4_data_offset(tmp, "vmsan/agent.token", tok_off, e) < 0)
		goto fail;
	/* the offset beside it, then the template: present means complete */
	bfmt(meta, sizeof(meta), "%s.offset", tpl);
	FILE *f = fopen(meta, "we");
	if (!f || fprintf(f, "%llu\n", (unsigned long long)*tok_off) < 0 || fclose(f) != 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot write %s", meta);
		goto fail;
	}
	own(c, meta);
	own(c, tmp);
	if (rename(tmp, tpl) < 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot rename %s", tmp);
		goto fail;
	}
	return 0;
fail:
	if (w)
		e4_abort(w);
	unlink(tmp);
	return -1;
}

/* A VM's file that must not exist yet (0600). */
static int create_new(const char *path, int mode, const char *id, const char *what, struct verr *e)
{
	int fd = open(path, mode | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && errno == EEXIST)
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VM_EXISTS", "remove the VM first (vmsan rm -f)",
			 "%s already has %s", id, what);
	else if (fd < 0)
		verr_sys(e, "ERR_IO", NULL, "cannot create %s", path);
	return fd;
}

/* vms/<id>/disk.ext4: the VM's writable disk, which vmsan-init boots from
 * (/vmsan/init, the agent, its token and the image's environment) and
 * whose /upper and /work it lays over the image's read-only disk.  Its
 * cost does not depend on the image: a template per (size, image
 * environment, guest binaries) is made once in images/vmdisk/, and each VM
 * gets a sparse copy (a reflink where possible) with its own token written
 * over the placeholder.  The token also goes to vms/<id>.token (0600),
 * where vmsan-agentctl --vm finds it. */
static json_t *op_vmdisk(struct jr *r, struct verr *e)
{
	double t0 = now_s();
	const char *id = jr_string(r, "id", JR_REQUIRED, valid_vm_id);
	const char *image = jr_string(r, "image", JR_OPTIONAL, NULL);
	const char *guest = jr_string(r, "guestDir", JR_REQUIRED, valid_path);
	json_t *pullreq = jr_object(r, "pull", JR_OPTIONAL), *img = NULL;
	uint64_t disk;
	if (read_disk(r, &disk) < 0 || jr_end(r))
		return NULL;
	if (!disk)
		disk = DEFAULT_DISK;
	/* With "pull", the image is pulled first (a pull request, nested): one
	 * process for both, as create wants. */
	if (pullreq && image) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION", "give one of them",
			 "request: \"image\" and \"pull\" cannot be combined");
		return NULL;
	}
	if (pullreq) {
		struct jr pr;
		jr_init(&pr, pullreq, "request.pull", e);
		if (!(img = op_pull(&pr, e)))
			return NULL;
		image = json_string_value(json_object_get(img, "digest"));
	}
	if (image && (strncmp(image, "sha256:", 7) || !valid_hex64(image + 7))) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION", "give the digest vmsan-rootfs pull replied",
			 "image: '%.80s' is not a sha256: digest", image);
		return NULL;
	}
	struct cache c;
	if (cache_open(&c, true, e) < 0)
		return NULL;
	json_t *env = NULL, *rec = NULL, *out = NULL;
	char dir[PATH_MAX], path[PATH_MAX], tok[PATH_MAX], tpl[PATH_MAX], token[65], text[8192];
	bool made_disk = false, made_tok = false, template_hit = true;
	int in = -1, fd = -1;
	/* The image's environment: in the pull's reply, else in its record. */
	if (img)
		env = json_object_get(json_object_get(img, "config"), "env");
	else if (image) {
		if (!(rec = load_image(&c, image + 7, e)))
			goto fail;
		env = json_object_get(json_object_get(rec, "config"), "env");
	}
	size_t k = 0, i;
	json_t *x;
	json_array_foreach(env, i, x) {
		const char *v = json_string_value(x);
		if (v && !strchr(v, '\n') && k + strlen(v) + 2 < sizeof(text))
			k += (size_t)snprintf(text + k, sizeof(text) - k, "%s\n", v);
	}
	text[k] = 0;
	/* The template's key: size, environment, and the guest binaries. */
	char init[PATH_MAX], agent[PATH_MAX], key[PATH_MAX + 9000], hex[72];
	bfmt(init, sizeof(init), "%s/vmsan-init", guest);
	bfmt(agent, sizeof(agent), "%s/vmsan-agent", guest);
	struct stat si, sa;
	if (stat(init, &si) < 0 || stat(agent, &sa) < 0) {
		verr_sys(e, "ERR_GUEST_MISSING", "build it (make) or reinstall vmsan", "cannot find %s",
			 access(init, F_OK) ? init : agent);
		goto fail;
	}
	int kl = snprintf(key, sizeof(key), "%llu\n%s\n%llu.%llu.%lld.%lld.%ld\n%llu.%llu.%lld.%lld.%ld\n",
			  (unsigned long long)disk, text, (unsigned long long)si.st_dev,
			  (unsigned long long)si.st_ino, (long long)si.st_size, (long long)si.st_mtim.tv_sec,
			  si.st_mtim.tv_nsec, (unsigned long long)sa.st_dev, (unsigned long long)sa.st_ino,
			  (long long)sa.st_size, (long long)sa.st_mtim.tv_sec, sa.st_mtim.tv_nsec);
	sha256_hex(key, (size_t)kl, hex);
	bfmt(tpl, sizeof(tpl), "%s/vmdisk", c.dir);
	if (mkdir_own(&c, tpl, e) < 0)
		goto fail;
	bfmt(tpl, sizeof(tpl), "%s/vmdisk/%.32s.ext4", c.dir, hex + 7);
	uint64_t tok_off = 0;
	{
		char meta[PATH_MAX + 8];
		bfmt(meta, sizeof(meta), "%s.offset", tpl);
		FILE *f = access(tpl, F_OK) == 0 ? fopen(meta, "re") : NULL;
		unsigned long long o = 0;
		if (!f || fscanf(f, "%llu", &o) != 1 || !o) {
			template_hit = false;
			if (build_template(&c, tpl, init, agent, text, disk, &tok_off, e) < 0) {
				if (f)
					fclose(f);
				goto fail;
			}
		} else {
			tok_off = o;
		}
		if (f)
			fclose(f);
	}
	bfmt(dir, sizeof(dir), "%s/%s", c.st.vms, id);
	bfmt(path, sizeof(path), "%s/disk.ext4", dir);
	bfmt(tok, sizeof(tok), "%s/%s.token", c.st.vms, id);
	if (mkdir_own(&c, dir, e) < 0)
		goto fail;
	/* The token: 32 random bytes, as hex. */
	unsigned char raw[32];
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		verr_sys(e, "ERR_SYSTEM", NULL, "getrandom");
		goto fail;
	}
	for (i = 0; i < sizeof(raw); i++)
		snprintf(token + 2 * i, 3, "%02x", raw[i]);
	if ((fd = create_new(path, O_RDWR, id, "a disk", e)) < 0)
		goto fail;
	made_disk = true;
	own(&c, path);
	in = open(tpl, O_RDONLY | O_CLOEXEC);
	char holder[64];
	if (in < 0 || copy_sparse(in, fd, disk, "copying the VM disk template", e) < 0 || pread(fd, holder, 64, (off_t)tok_off) != 64 ||
	    memcmp(holder, TOKEN_HOLDER, 64) != 0 || pwrite(fd, token, 64, (off_t)tok_off) != 64) {
		if (!verr_isset(e))
			verr_set(e, VMSAN_EXIT_SYS, "ERR_IO", "remove images/vmdisk/ to rebuild the template",
				 "the VM disk template %s is not as it was made", tpl);
		goto fail;
	}
	close(fd);
	if ((fd = create_new(tok, O_WRONLY, id, "a token", e)) < 0)
		goto fail;
	made_tok = true;
	own(&c, tok);
	if (write(fd, token, 64) != 64) {
		verr_sys(e, "ERR_IO", NULL, "cannot write %s", tok);
		goto fail;
	}
	out = json_pack("{s:s, s:s, s:s, s:s, s:I, s:b, s:f, s:I}", "id", id, "dir", dir, "disk", path, "tokenFile",
			tok, "diskSize", (json_int_t)disk, "templateHit", template_hit, "seconds", now_s() - t0,
			"tokenOffset", (json_int_t)tok_off);
	if (img)
		json_object_set(out, "image", img);
fail:
	if (fd >= 0)
		close(fd);
	if (in >= 0)
		close(in);
	if (!out) {
		if (made_disk)
			unlink(path);
		if (made_tok)
			unlink(tok);
	}
	explicit_bzero(token, sizeof(token));
	json_decref(rec);
	json_decref(img);
	state_release(&c.st);
	return out;
}

static json_t *op_list(struct jr *r, struct verr *e)
{
	if (jr_end(r))
		return NULL;
	struct cache c;
	if (cache_open(&c, false, e) < 0) {
		if (verr_take(e, "ERR_STATE_DIR_MISSING"))
			return json_pack("{s:[]}", "images");
		return NULL;
	}
	json_t *imgs = list_images(&c, e);
	state_release(&c.st);
	return imgs ? json_pack("{s:o}", "images", sorted(imgs)) : NULL;
}

static json_t *find_image(json_t *imgs, const char *what, struct verr *e)
{
	/* By digest (full or a unique prefix of 4+ hex digits) or by reference. */
	const char *hex = strncmp(what, "sha256:", 7) == 0 ? what + 7 : what;
	size_t hl = strlen(hex);
	struct ref r;
	struct verr pe = { 0 };
	bool isref = parse_ref(what, &r, &pe) == 0;
	json_t *hit = NULL, *img;
	size_t i, nhit = 0;
	json_array_foreach(imgs, i, img) {
		const char *d = json_string_value(json_object_get(img, "digest"));
		bool m = false;
		if (hl >= 4 && d && strncmp(d + 7, hex, hl) == 0 && strspn(hex, "0123456789abcdef") == hl)
			m = true;
		size_t k;
		json_t *rf;
		json_array_foreach(json_object_get(img, "refs"), k, rf)
			if ((isref && strcmp(json_string_value(rf), r.canon) == 0) ||
			    strcmp(json_string_value(rf), what) == 0)
				m = true;
		if (m) {
			hit = img;
			nhit++;
		}
	}
	if (nhit == 1)
		return hit;
	verr_set(e, VMSAN_EXIT_FAIL, nhit ? "ERR_IMAGE_AMBIGUOUS" : "ERR_IMAGE_NOT_FOUND",
		 nhit ? "give more digits of the digest" : "'vmsan images' lists the images",
		 nhit ? "'%s' names more than one image" : "no image '%s' in the cache", what);
	return NULL;
}

static json_t *op_inspect(struct jr *r, struct verr *e)
{
	const char *what = jr_string(r, "image", JR_REQUIRED, NULL);
	if (!what || jr_end(r))
		return NULL;
	struct cache c;
	if (cache_open(&c, false, e) < 0) {
		if (verr_take(e, "ERR_STATE_DIR_MISSING"))
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_NOT_FOUND",
				 "'vmsan images' lists the images", "no image '%s' in the cache", what);
		return NULL;
	}
	json_t *imgs = list_images(&c, e), *out = NULL;
	state_release(&c.st);
	json_t *img = imgs ? find_image(imgs, what, e) : NULL;
	if (img)
		out = json_pack("{s:O}", "image", img);
	json_decref(imgs);
	return out;
}

static int drop_image(const struct cache *c, json_t *img, bool untag, struct verr *e)
{
	const char *d = json_string_value(json_object_get(img, "digest"));
	char p[PATH_MAX], key[1800];
	size_t i;
	json_t *rf;
	json_array_foreach(json_object_get(img, "refs"), i, rf) {
		ref_key(json_string_value(rf), key, sizeof(key));
		bfmt(p, sizeof(p), "%s/refs/%s.json", c->dir, key);
		unlink(p);
		bfmt(p, sizeof(p), "%s/refs/%s.lock", c->dir, key);
		unlink(p);
	}
	if (untag)
		return 0;
	/* Move aside first: a half-deleted image must never look whole. */
	char from[PATH_MAX], to[PATH_MAX];
	bfmt(from, sizeof(from), "%s/%s", c->dir, d + 7);
	bfmt(to, sizeof(to), "%s/tmp/%d.rm-%.12s", c->dir, (int)getpid(), d + 7);
	if (rename(from, to) != 0 || rm_tree(to) != 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot remove %s", from);
		return -1;
	}
	return 0;
}

/* The reply of remove and prune.  A failure after some images went is
 * still a failure, and says which went. */
static json_t *removal_reply(json_t *removed, json_t *reply, struct verr *e)
{
	if (verr_isset(e)) {
		size_t n = json_array_size(removed);
		size_t l = strlen(e->message);
		if (n)
			snprintf(e->message + l, sizeof(e->message) - l,
				 " (after removing %zu image(s), the last %s)", n,
				 json_string_value(json_array_get(removed, n - 1)));
		json_decref(removed);
		json_decref(reply);
		return NULL;
	}
	json_object_set_new(reply, "removed", removed);
	return reply;
}

static json_t *op_remove(struct jr *r, struct verr *e)
{
	bool force = false;
	json_t *names = jr_array(r, "images", JR_REQUIRED, 256);
	if (!names || jr_bool(r, "force", JR_OPTIONAL, &force) < 0 || jr_end(r))
		return NULL;
	struct cache c;
	if (cache_open(&c, false, e) < 0) {
		if (verr_take(e, "ERR_STATE_DIR_MISSING"))
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_NOT_FOUND",
				 "'vmsan images' lists the images", "the image cache is empty");
		return NULL;
	}
	int lk;
	char lp[PATH_MAX];
	bfmt(lp, sizeof(lp), "%s/lock", c.dir);
	json_t *imgs = NULL, *removed = json_array();
	if ((lk = lock_file(&c, lp, e)) < 0 || !(imgs = list_images(&c, e)))
		goto out;
	size_t i;
	json_t *n;
	/* All names are checked before anything is removed. */
	json_t *victims = json_array();
	json_array_foreach(names, i, n) {
		if (!json_is_string(n)) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION", NULL,
				 "request.images[%zu]: expected a string", i);
			break;
		}
		json_t *img = find_image(imgs, json_string_value(n), e);
		if (!img)
			break;
		json_t *users = json_object_get(img, "usedBy");
		if (json_array_size(users) && !force) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_IMAGE_IN_USE",
				 "remove those VMs first, or force it (the VMs keep working until they stop)",
				 "image %s is used by %zu VM(s), such as %s",
				 json_string_value(n), json_array_size(users),
				 json_string_value(json_array_get(users, 0)));
			break;
		}
		json_array_append(victims, img);
	}
	if (!verr_isset(e)) {
		json_t *img;
		json_array_foreach(victims, i, img) {
			if (drop_image(&c, img, false, e) < 0)
				break;
			json_array_append(removed, json_object_get(img, "digest"));
		}
	}
	json_decref(victims);
out:
	json_decref(imgs);
	if (lk >= 0)
		close(lk);
	state_release(&c.st);
	return removal_reply(removed, json_object(), e);
}

static json_t *op_prune(struct jr *r, struct verr *e)
{
	bool all = false;
	if (jr_bool(r, "all", JR_OPTIONAL, &all) < 0 || jr_end(r))
		return NULL;
	struct cache c;
	if (cache_open(&c, false, e) < 0) {
		if (verr_take(e, "ERR_STATE_DIR_MISSING"))
			return json_pack("{s:[], s:I}", "removed", "freedBytes", (json_int_t)0);
		return NULL;
	}
	char lp[PATH_MAX];
	bfmt(lp, sizeof(lp), "%s/lock", c.dir);
	json_t *imgs = NULL, *removed = json_array();
	uint64_t freed = 0;
	int lk = lock_file(&c, lp, e);
	if (lk >= 0 && (imgs = list_images(&c, e))) {
		sweep_tmp(&c);
		size_t i;
		json_t *img;
		json_array_foreach(imgs, i, img) {
			if (json_array_size(json_object_get(img, "usedBy")))
				continue;
			if (!all && json_array_size(json_object_get(img, "refs")))
				continue;
			if (drop_image(&c, img, false, e) < 0)
				break;
			freed += (uint64_t)json_integer_value(json_object_get(img, "allocatedBytes"));
			json_array_append(removed, json_object_get(img, "digest"));
		}
	}
	json_decref(imgs);
	if (lk >= 0) {
		freed += sweep_templates(&c, true);
		close(lk);
	}
	state_release(&c.st);
	return removal_reply(removed, json_pack("{s:I}", "freedBytes", (json_int_t)freed), e);
}

static const struct helper_op ops[] = {
	{ "pull", op_pull },
	{ "base", op_build_base },
	{ "vmdisk", op_vmdisk },
	{ "inspect", op_inspect },
	{ "list", op_list },
	{ "remove", op_remove },
	{ "prune", op_prune },
};

static const struct helper helper = {
	.name = "vmsan-rootfs",
	.summary = "plumbing: OCI images into ext4 root disks, cached by digest",
	.usage =
	"usage: vmsan-rootfs [OP] [--verbose] < request.json\n"
	"\n"
	"Builds ext4 root disks from OCI/Docker images without root or a daemon,\n"
	"and keeps them in $VMSAN_DIR/images by manifest digest.\n"
	"\n"
	"  {\"op\":\"pull\", \"ref\":REF | \"runtime\":RT, \"pull\":BOOL, \"tlsVerify\":BOOL,\n"
	"   \"authFile\":PATH, \"certDir\":DIR, \"diskSize\":\"10G\", \"progress\":BOOL}\n"
	"                                  the image's disk, built unless cached\n"
	"  {\"op\":\"base\", \"busybox\":PATH, \"diskSize\":SIZE}\n"
	"                                  the offline base image (busybox-static)\n"
	"  {\"op\":\"inspect\", \"image\":REF|DIGEST}   one cached image\n"
	"  {\"op\":\"list\"}                          all cached images\n"
	"  {\"op\":\"remove\", \"images\":[REF|DIGEST...], \"force\":BOOL}\n"
	"  {\"op\":\"prune\", \"all\":BOOL}           unreferenced (all: unused) images\n"
	"  {\"op\":\"vmdisk\", \"id\":ID, \"guestDir\":DIR, \"image\":DIGEST | \"pull\":{PULL}, \"diskSize\":SIZE}\n"
	"                                  a VM's writable disk vms/ID/disk.ext4 (vmsan-init,\n"
	"                                  the agent, a new token, also in vms/ID.token)\n"
	"\n"
	"REF: docker://, oci:PATH[:TAG], oci-archive:PATH[:TAG], or a registry\n"
	"reference (alpine:3.20 = docker.io/library/alpine:3.20).  Runtimes: base\n"
	"(offline, from busybox-static), node22, node24, python3.13; override one\n"
	"with VMSAN_RUNTIME_<NAME>=REF (NODE22, PYTHON3_13, ...).\n"
	"\n"
	"Exit status: 0 ok, 1 refused or failed, 100 bad request, 111 system error.\n"
	"See vmsan-rootfs(8).\n",
	.ops = ops,
	.nops = sizeof(ops) / sizeof(*ops),
};

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	return helper_main(&helper, argc, argv);
}
