/* upload: local files and directories as one tar stream, the chunked
 * body of POST /files/write; the agent extracts it under --dest. */
#define _GNU_SOURCE
#include "agentctl/agentctl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../proto/tar.h"

#define UPLOAD_USER_MAX 127 /* the agent's X-Owner */

/* The archive is written in pieces; they go out as chunks of up to cap. */
struct staged {
	struct hc *h;
	char *buf;
	size_t len, cap;
};

static int staged_write(void *ctx, const void *p, size_t n)
{
	struct staged *s = ctx;
	if (s->len + n > s->cap) {
		if (s->len && send_chunk(s->h, s->buf, s->len) < 0)
			return -1;
		s->len = 0;
		if (n > s->cap)
			return send_chunk(s->h, p, n);
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	return 0;
}

/* Every path is there before anything is sent. */
static int upload_check(char **paths, int npaths, const char *dest, struct verr *e)
{
	struct stat sb;

	for (int i = 0; i < npaths; i++)
		if (lstat(paths[i], &sb) < 0)
			return verr_fail(e, 1, "ERR_LOCAL_FILE", "check the path", "cannot upload %s: %s", paths[i],
					 strerror(errno));
	if (dest && dest[0] != '/')
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_DEST", "give an absolute path such as /root",
				 "--dest must be an absolute path in the guest, not '%s'", dest);
	return 0;
}

/* The request's own headers: where, and whose, the files become.  Each
 * value within what the agent takes: a path of PATH_MAX, a user of 127
 * bytes. */
static int upload_headers(char *extra, size_t n, const char *dest, const char *user, bool preserve, struct verr *e)
{
	size_t el = 0;

	extra[0] = 0;
	if (dest) {
		for (const char *p = dest; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_DEST", NULL,
						 "--dest contains a control character");
		if (strlen(dest) >= PATH_MAX)
			return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_DEST", "give a shorter path",
					 "--dest is %zu bytes long: a path in the guest is at most %d (PATH_MAX)",
					 strlen(dest), PATH_MAX - 1);
		el += (size_t)snprintf(extra + el, n - el, "X-Extract-Dir: %s\r\n", dest);
	}
	if (user && strlen(user) > UPLOAD_USER_MAX)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_USER", "give a user name or uid",
				 "--user is %zu bytes long: at most %d", strlen(user), UPLOAD_USER_MAX);
	if (user)
		el += (size_t)snprintf(extra + el, n - el, "X-Owner: %s\r\n", user);
	if (preserve)
		el += (size_t)snprintf(extra + el, n - el, "X-Preserve-Owner: true\r\n");
	return 0;
}

/* One path into the archive, under its last name; a TAR_* result, err set.
 * tar_write_path adds what it wrote to total. */
static int upload_one(const char *path, struct staged *s, struct tar_stats *total, char *err, size_t errn)
{
	char *copy = strdup(path);
	size_t l = strlen(copy);
	char dir[4200];
	int tr, dfd;

	while (l > 1 && copy[l - 1] == '/')
		copy[--l] = 0;
	char *slash = strrchr(copy, '/');
	const char *base = slash ? slash + 1 : copy;
	if (slash == copy)
		snprintf(dir, sizeof dir, "/");
	else if (slash)
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - copy), copy);
	else
		snprintf(dir, sizeof dir, ".");
	if (!strcmp(base, ".") || !strcmp(base, "..") || !*base) {
		free(copy);
		snprintf(err, errn, "%s: name a file or directory, not '.' or '..'", path);
		return TAR_E_IO;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		tr = TAR_E_IO;
		snprintf(err, errn, "%.300s: %s", dir, strerror(errno));
	} else {
		tr = tar_write_path(dfd, base, base, true, staged_write, s, total, err, errn);
		close(dfd);
	}
	free(copy);
	return tr;
}

/* The request and the whole archive; -1 with e set. */
static int upload_send(struct hc *h, const struct target *t, char **paths, int npaths, const char *extra,
		       struct tar_stats *total, struct verr *e)
{
	struct staged s = { .h = h, .cap = 256 * 1024 };
	char err[512] = "";
	int tr = TAR_OK, rc = -1;

	s.buf = malloc(s.cap);
	if (!s.buf) {
		verr_set(e, VMSAN_EXIT_SYS, "ERR_NOMEM", NULL, "out of memory");
		goto out;
	}
	if (hc_send_head(h, t, "POST", "/files/write", "application/x-tar", -1, extra) < 0) {
		hc_fail(h, "upload", e);
		goto out;
	}
	for (int i = 0; i < npaths && tr == TAR_OK; i++)
		tr = upload_one(paths[i], &s, total, err, sizeof err);
	if (tr == TAR_OK && (tar_write_end(staged_write, &s) < 0 || (s.len && send_chunk(h, s.buf, s.len) < 0) ||
			     send_all(h, "0\r\n\r\n", 5) < 0))
		tr = TAR_E_SOURCE;
	/* A VM that died will not answer: said now, not after a wait. */
	if (tr == TAR_E_SOURCE && hc_crashed(h)) {
		hc_fail(h, "upload", e);
		goto out;
	}
	/* A local file that failed: end the connection without the last
	 * chunk, so that the partial archive does not look complete.  The
	 * agent that went away (TAR_E_SOURCE) tells why in its answer. */
	if (tr != TAR_OK && tr != TAR_E_SOURCE) {
		verr_set(e, 1, "ERR_LOCAL_FILE", NULL, "upload: %s", err);
		goto out;
	}
	rc = 0;
out:
	free(s.buf);
	return rc;
}

static int upload_answer(struct hc *h, const char *dest, const struct tar_stats *total, struct verr *e)
{
	int status = hc_response(h);
	char *resp;
	json_t *j;

	if (status < 0)
		return hc_fail(h, "upload", e);
	if (status != 200)
		return agent_error(h, "upload", e);
	resp = hc_slurp(h, NULL);
	if (!resp)
		return hc_fail(h, "upload", e);
	j = json_loads(resp, 0, NULL);
	free(resp);
	if (!j)
		return verr_fail(e, 1, "ERR_AGENT_PROTOCOL", NULL, "upload: the agent's answer is not JSON");
	if (json_out) {
		reply_ok(json_pack("{s:s?, s:o, s:I, s:I}", "dest", dest, "written", j, "files",
				   (json_int_t)total->files, "bytes", (json_int_t)total->bytes));
	} else {
		json_decref(j);
		fprintf(stderr, "uploaded %llu file(s), %llu bytes\n", (unsigned long long)total->files,
			(unsigned long long)total->bytes);
	}
	return 0;
}

static int run_upload(const struct target *t, char **paths, int npaths, const char *dest, const char *user,
		      bool preserve, struct verr *e)
{
	struct tar_stats total = { 0 };
	char extra[PATH_MAX + UPLOAD_USER_MAX + 128]; /* upload_headers' three at most */
	struct hc *h;
	int rc = -1;

	if (upload_check(paths, npaths, dest, e) < 0)
		return -1;
	h = hc_open(t, e);
	if (!h)
		return -1;
	h->job = "transfer";
	if (upload_headers(extra, sizeof extra, dest, user, preserve, e) == 0 &&
	    upload_send(h, t, paths, npaths, extra, &total, e) == 0)
		rc = upload_answer(h, dest, &total, e);
	hc_close(h);
	return rc;
}

static const struct option upload_lo[] = { { "dest", required_argument, 0, 'd' },
					   { "user", required_argument, 0, 'u' },
					   { "preserve-owner", no_argument, 0, 'p' },
					   { 0, 0, 0, 0 } };
/* Options may follow the paths (the usage puts --dest last); no command
 * follows them to protect, unlike exec's. */
const struct cmd_opts upload_opts = { "d:u:", upload_lo };

/* upload [--dest DIR] [-u USER] [--preserve-owner] PATH... */
int cmd_upload(const struct target *t, int ac, char **av, struct verr *e)
{
	const char *dest = NULL, *user = NULL;
	bool preserve = false;
	int c;

	while ((c = getopt_long(ac, av, upload_opts.shortopts, upload_opts.longopts, NULL)) != -1) {
		if (c == 'd')
			dest = optarg;
		else if (c == 'u')
			user = optarg;
		else if (c == 'p')
			preserve = true;
		else
			return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "unknown option %s", av[optind - 1]);
	}
	if (optind >= ac)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", "usage: vmsan upload ID PATH... [--dest DIR]",
				 "no file paths provided");
	return run_upload(t, av + optind, ac - optind, dest, user, preserve, e);
}
