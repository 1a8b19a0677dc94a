/* Copying sparse files: only their data, holes stay holes. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmsan.h"

/* errno, after a read or write failed, as a verr: ERR_NO_SPACE (and its
 * fix) when a disk is full, else ERR_IO; -1. */
static int io_err(const char *what, struct verr *e)
{
	verr_sys(e, errno == ENOSPC || errno == EDQUOT ? "ERR_NO_SPACE" : "ERR_IO",
		 errno == ENOSPC || errno == EDQUOT ? "free some space" : NULL, "%s", what);
	return -1;
}

/* [pos, end) of in to the same offsets of out: copy_file_range, or read
 * and write where the kernel will not copy between these file systems. */
static int copy_range(int in, int out, off_t pos, off_t end, const char *what, struct verr *e)
{
	loff_t ri = pos, ro = pos;
	while (ri < end) {
		ssize_t n = copy_file_range(in, &ri, out, &ro, (size_t)(end - ri), 0);
		if (n > 0)
			continue;
		if (n == 0 || (errno != EXDEV && errno != EINVAL && errno != EOPNOTSUPP && errno != ENOSYS)) {
			if (n == 0)
				errno = EIO;
			return io_err(what, e);
		}
		char buf[65536];
		while (ri < end) {
			ssize_t r =
				pread(in, buf, (size_t)(end - ri) < sizeof buf ? (size_t)(end - ri) : sizeof buf, ri);
			if (r <= 0) {
				if (r == 0)
					errno = EIO;
				return io_err(what, e);
			}
			for (ssize_t w = 0; w < r;) {
				ssize_t k = pwrite(out, buf + w, (size_t)(r - w), ri + w);
				if (k <= 0)
					return io_err(what, e);
				w += k;
			}
			ri += r;
		}
	}
	return 0;
}

int copy_sparse(int in, int out, uint64_t size, const char *what, struct verr *e)
{
	if (ioctl(out, FICLONE, in) == 0)
		return 0;
	off_t pos = 0, end = (off_t)size;
	while (pos < end) {
		off_t data = lseek(in, pos, SEEK_DATA);
		if (data < 0)
			break; /* ENXIO: only a hole is left */
		off_t hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0 || hole > end)
			hole = end;
		if (copy_range(in, out, data, hole, what, e) < 0)
			return -1;
		pos = hole;
	}
	if (ftruncate(out, (off_t)size) < 0)
		return io_err(what, e);
	return 0;
}
