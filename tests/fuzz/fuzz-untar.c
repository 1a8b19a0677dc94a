/* libFuzzer target: a download's extraction (libexec/untar.c: libarchive's
 * tar reader and our writer) on arbitrary bytes, into a fresh directory
 * each run.  Beside the destination lies a sentinel; whatever the bytes,
 * it must keep its content, nothing but the asked-for name may appear
 * beside it, and no hidden directory may be left.  Build: make fuzz. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../libexec/untar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct src {
	const uint8_t *p;
	size_t n, off;
};

static ssize_t rd(void *ctx, void *buf, size_t n)
{
	struct src *s = ctx;
	size_t k = s->n - s->off < n ? s->n - s->off : n;
	if (k > 700)
		k = 700; /* short reads, as from a socket */
	memcpy(buf, s->p + s->off, k);
	s->off += k;
	return (ssize_t)k;
}

static char base[64];

static void rm_rf(int dfd, const char *name);

static void rm_base(void)
{
	int fd = open("/", O_RDONLY | O_DIRECTORY);
	rm_rf(fd, base + 1);
	close(fd);
}

static void rm_rf(int dfd, const char *name)
{
	struct stat sb;
	if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if (S_ISDIR(sb.st_mode)) {
		fchmodat(dfd, name, 0700, 0);
		int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		struct dirent *de;
		while (d && (de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				rm_rf(fd, de->d_name);
		if (d)
			closedir(d);
		unlinkat(dfd, name, AT_REMOVEDIR);
	} else
		unlinkat(dfd, name, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!base[0]) {
		snprintf(base, sizeof base, "/tmp/fuzz-untar.XXXXXX");
		if (!mkdtemp(base))
			abort();
		atexit(rm_base);
	}
	int bfd = open(base, O_RDONLY | O_DIRECTORY);
	if (bfd < 0)
		abort();
	/* base/dest is where the download goes, base/.bashrc the sentinel */
	mkdirat(bfd, "dest", 0755);
	int sfd = openat(bfd, "dest/.bashrc", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (sfd < 0 || write(sfd, "sentinel", 8) != 8)
		abort();
	close(sfd);
	int dfd = openat(bfd, "dest", O_RDONLY | O_DIRECTORY);
	struct src s = { data, size, 0 };
	struct untar_stats st;
	char err[600];
	/* "x" is what the fuzzer's archives name; top and name differ so that
	 * a renaming slip shows */
	struct untar_opts o = { .dirfd = dfd, .name = "got", .top = "x", .max_bytes = 1 << 20, .max_entries = 200 };
	int r = untar(rd, &s, &o, &st, err, sizeof err);
	/* the promises */
	char buf[16] = "";
	sfd = openat(dfd, ".bashrc", O_RDONLY | O_NOFOLLOW);
	if (sfd < 0 || read(sfd, buf, sizeof buf) != 8 || memcmp(buf, "sentinel", 8))
		abort();
	close(sfd);
	DIR *d = fdopendir(dup(dfd));
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, ".bashrc") &&
		    (r != UNTAR_OK || strcmp(de->d_name, "got")))
			abort(); /* a stray name, or a leftover after a failure */
	if (d)
		closedir(d);
	DIR *b = fdopendir(dup(bfd));
	while (b && (de = readdir(b)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "dest"))
			abort(); /* something beside the destination */
	if (b)
		closedir(b);
	close(dfd);
	rm_rf(bfd, "dest");
	close(bfd);
	return 0;
}
