/* put.c: files that come from no layer into an image, through e4_put:
 * text (the base image's /etc, the VM disk's token and environment) and
 * host files (busybox, the guest binaries). */
#define _GNU_SOURCE
#include "rootfs/rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A string as an e4_read_fn source. */
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

/* A descriptor as an e4_read_fn source. */
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

int put_text(struct e4 *w, const char *path, mode_t mode, const char *text, struct verr *e)
{
	struct membuf m = { text, strlen(text), false };
	struct e4_entry ent = {
		.path = path, .mode = S_IFREG | mode, .size = m.len, .read = mem_read, .read_ctx = &m, .mtime = 0
	};
	return e4_put(w, &ent, e);
}

int put_fd(struct e4 *w, const char *path, mode_t mode, int fd, const char *src, struct verr *e)
{
	struct stat sb;
	struct filebuf *fb = malloc(sizeof(*fb));
	int rc = -1;
	if (!fb || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
		verr_sys(e, "ERR_IO", NULL, "reading %s", src);
	else {
		fb->fd = fd;
		fb->off = 0;
		struct e4_entry ent = { .path = path,
					.mode = S_IFREG | mode,
					.size = (uint64_t)sb.st_size,
					.read = file_read,
					.read_ctx = fb,
					.mtime = sb.st_mtime };
		rc = e4_put(w, &ent, e);
	}
	free(fb);
	return rc;
}

int put_file(struct e4 *w, const char *path, mode_t mode, const char *src, struct verr *e)
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
