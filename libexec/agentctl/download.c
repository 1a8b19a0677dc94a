/* download: POST /files/read answers with a tar stream of the remote
 * path, written here through ../untar.c (libarchive's reader, our openat2
 * writer), which lets nothing land outside the name asked for. */
#define _GNU_SOURCE
#include "agentctl/agentctl.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "untar.h"

/* Where it goes: into DEST when DEST is a directory (or ends in /), else
 * as DEST; with no DEST, into the current directory. */
struct place {
	char rbase[4200];   /* the remote path without trailing slashes */
	const char *rb;	    /* its last name, in rbase ("." for /) */
	char dir[4200];	    /* the local directory ... */
	char newname[4200]; /* ... and the name in it */
};

static int place_find(struct place *pl, const char *remote, const char *dest, struct verr *e)
{
	struct stat sb;
	size_t rl;

	snprintf(pl->rbase, sizeof pl->rbase, "%s", remote);
	rl = strlen(pl->rbase);
	while (rl > 1 && pl->rbase[rl - 1] == '/')
		pl->rbase[--rl] = 0;
	pl->rb = strrchr(pl->rbase, '/') + 1;
	if (!*pl->rb)
		pl->rb = ".";
	if (!dest || !*dest) {
		snprintf(pl->dir, sizeof pl->dir, ".");
		snprintf(pl->newname, sizeof pl->newname, "%s", pl->rb);
	} else if (dest[strlen(dest) - 1] == '/' || (stat(dest, &sb) == 0 && S_ISDIR(sb.st_mode))) {
		snprintf(pl->dir, sizeof pl->dir, "%s", dest);
		snprintf(pl->newname, sizeof pl->newname, "%s", pl->rb);
		if (mkdir(pl->dir, 0755) < 0 && errno != EEXIST)
			return verr_fail(e, 1, "ERR_LOCAL_FILE", NULL, "cannot create %s: %s", pl->dir,
					 strerror(errno));
	} else {
		char tmp[4200];
		snprintf(tmp, sizeof tmp, "%s", dest);
		char *sl = strrchr(tmp, '/');
		if (sl == tmp)
			snprintf(pl->dir, sizeof pl->dir, "/");
		else if (sl) {
			*sl = 0;
			snprintf(pl->dir, sizeof pl->dir, "%s", tmp);
		} else
			snprintf(pl->dir, sizeof pl->dir, ".");
		snprintf(pl->newname, sizeof pl->newname, "%s", sl ? sl + 1 : tmp);
	}
	if (!strcmp(pl->rb, ".") && strcmp(pl->newname, "."))
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_PATH", NULL,
				 "download the guest's / into a directory");
	if (!strcmp(pl->newname, "..") || (!strcmp(pl->newname, ".") && strcmp(pl->rb, ".")))
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_DEST", "name a file or directory with --dest",
				 "--dest cannot end in '%s'", pl->newname);
	return 0;
}

/* The request, and an answer that is a tar stream of at most max_bytes. */
static int download_request(struct hc *h, const struct target *t, const char *remote, uint64_t max_bytes,
			    struct verr *e)
{
	json_t *req = json_pack("{s:s, s:s}", "path", remote, "format", "tar");
	char *body = json_dumps(req, JSON_COMPACT);

	json_decref(req);
	if (!body || hc_send_head(h, t, "POST", "/files/read", "application/json", (long long)strlen(body), NULL) < 0 ||
	    send_all(h, body, strlen(body)) < 0) {
		free(body);
		return hc_fail(h, "download", e);
	}
	free(body);
	if (hc_response(h) < 0)
		return hc_fail(h, "download", e);
	if (h->status == 404) {
		free(hc_slurp(h, NULL));
		return verr_fail(e, 1, "ERR_REMOTE_NOT_FOUND", "check the path with 'vmsan exec ID -- ls -la DIR'",
				 "file not found on VM: %s", remote);
	}
	if (h->status != 200)
		return agent_error(h, "download", e);
	if (h->kind == BODY_LENGTH && h->left > max_bytes)
		return verr_fail(e, 1, "ERR_DOWNLOAD_LIMIT", "raise the limit with --max-bytes if you expect that much",
				 "download: the agent announces %llu bytes; the limit is %llu bytes",
				 (unsigned long long)h->left, (unsigned long long)max_bytes);
	return 0;
}

static ssize_t hc_tar_read(void *ctx, void *buf, size_t n)
{
	return hc_read(ctx, buf, n);
}

static volatile int dl_abort;

static void on_dl_signal(int sig)
{
	dl_abort = sig;
}

/* Why untar failed, as our error: the signal that stopped it, the
 * connection that broke, or what was wrong with the archive. */
static int untar_error(int x, struct hc *h, const char *err, struct verr *e)
{
	static const char *const codes[] = {
		[UNTAR_E_UNSAFE] = "ERR_UNSAFE_ARCHIVE", [UNTAR_E_FORMAT] = "ERR_AGENT_PROTOCOL",
		[UNTAR_E_LIMIT] = "ERR_DOWNLOAD_LIMIT",	 [UNTAR_E_SOURCE] = "ERR_AGENT_PROTOCOL",
		[UNTAR_E_EXISTS] = "ERR_DEST_EXISTS",	 [UNTAR_E_LOCAL] = "ERR_LOCAL_FILE"
	};
	const char *fix = x == UNTAR_E_UNSAFE	? "the guest sent an archive that tries to leave the destination; "
						  "nothing was written"
			  : x == UNTAR_E_LIMIT	? "the limits are in vmsan-agentctl(8); --max-bytes sets the one on "
						  "bytes; nothing was written"
			  : x == UNTAR_E_EXISTS ? "remove it, or name another --dest"
						: "nothing was written";

	if (x == UNTAR_E_SOURCE && hc_crashed(h) && !dl_abort) {
		size_t l = strlen(h->why);
		snprintf(h->why + l, sizeof h->why - l, "; nothing was written");
		return hc_fail(h, "download", e);
	}
	if (x == UNTAR_E_SOURCE && h->ecode && !dl_abort)
		return verr_fail(e, 1, h->ecode, fix, "download: %s (%s)", err, h->why);
	return verr_fail(e, dl_abort ? 128 + dl_abort : 1, dl_abort ? "ERR_INTERRUPTED" : codes[x], fix, "download: %s",
			 err);
}

/* The archive comes from the guest: untrusted.  untar builds it in a
 * hidden directory of its own and moves it into place only when it is
 * whole; a signal stops it and removes what was made. */
static int download_extract(struct hc *h, int rootfd, const struct place *pl, uint64_t max_bytes,
			    struct untar_stats *st, struct verr *e)
{
	struct sigaction sa = { .sa_handler = on_dl_signal }, old[3]; /* no SA_RESTART */
	static const int sigs[3] = { SIGINT, SIGTERM, SIGHUP };
	struct untar_opts uo = {
		.dirfd = rootfd, .name = pl->newname, .top = pl->rb, .max_bytes = max_bytes, .abort = &dl_abort
	};
	char err[900];
	int x;

	for (int i = 0; i < 3; i++)
		sigaction(sigs[i], &sa, &old[i]);
	h->abort = &dl_abort;
	x = untar(hc_tar_read, h, &uo, st, err, sizeof err);
	for (int i = 0; i < 3; i++)
		sigaction(sigs[i], &old[i], NULL);
	if (x != UNTAR_OK)
		return untar_error(x, h, err, e);
	return 0;
}

static void download_report(const char *remote, const struct place *pl, const struct untar_stats *st)
{
	char local[8500];

	snprintf(local, sizeof local, "%s/%s", pl->dir, pl->newname);
	if (json_out) {
		reply_ok(json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "remotePath", remote, "localPath", local,
				   "files", (json_int_t)st->files, "dirs", (json_int_t)st->dirs, "bytes",
				   (json_int_t)st->bytes, "symlinks", (json_int_t)st->symlinks, "skipped",
				   (json_int_t)st->skipped));
	} else {
		fprintf(stderr, "downloaded %s to %s (%llu file(s), %llu bytes)\n", remote, local,
			(unsigned long long)st->files, (unsigned long long)st->bytes);
		if (st->skipped)
			fprintf(stderr, "  %llu device node(s), FIFO(s) or socket(s) were not created\n",
				(unsigned long long)st->skipped);
	}
}

static int run_download(const struct target *t, const char *remote, const char *dest, uint64_t max_bytes,
			struct verr *e)
{
	struct untar_stats st;
	struct place pl = { 0 };
	struct hc *h;
	int rootfd, rc = -1;

	if (remote[0] != '/')
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_PATH", "give an absolute path in the guest",
				 "the remote path must be absolute, not '%s'", remote);
	if (place_find(&pl, remote, dest, e) < 0)
		return -1;
	rootfd = open(pl.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return verr_fail(e, 1, "ERR_LOCAL_FILE", "create the destination directory first", "cannot open %s: %s",
				 pl.dir, strerror(errno));
	h = hc_open(t, e);
	if (h)
		h->job = "transfer";
	if (h && download_request(h, t, remote, max_bytes, e) == 0 &&
	    download_extract(h, rootfd, &pl, max_bytes, &st, e) == 0) {
		download_report(remote, &pl, &st);
		rc = 0;
	}
	close(rootfd);
	hc_close(h);
	return rc;
}

static const struct option download_lo[] = { { "dest", required_argument, 0, 'd' },
					     { "max-bytes", required_argument, 0, 'M' },
					     { 0, 0, 0, 0 } };
const struct cmd_opts download_opts = { "d:", download_lo }; /* options anywhere, as upload */

/* download [--dest PATH] [--max-bytes N] REMOTE_PATH */
int cmd_download(const struct target *t, int ac, char **av, struct verr *e)
{
	uint64_t max_bytes = UNTAR_MAX_BYTES_DEFAULT;
	const char *dest = NULL;
	int c;

	while ((c = getopt_long(ac, av, download_opts.shortopts, download_opts.longopts, NULL)) != -1) {
		if (c == 'd') {
			dest = optarg;
		} else if (c == 'M') {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (end == optarg || *end || errno || v == 0 || optarg[0] == '-')
				return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_MAX_BYTES",
						 "give a number of bytes", "--max-bytes '%s' is not a positive number",
						 optarg);
			max_bytes = v;
		} else {
			return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "unknown option %s", av[optind - 1]);
		}
	}
	if (optind != ac - 1)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", "usage: vmsan download ID REMOTE_PATH [--dest PATH]",
				 "download takes one remote path");
	return run_download(t, av[optind], dest, max_bytes, e);
}
