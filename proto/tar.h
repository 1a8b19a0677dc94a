/* Tar streams for file transfer: a pull reader (ustar, POSIX pax, GNU
 * long names), an extractor that cannot write outside its target
 * directory, and a pax writer.  Used by vmsan-agent (upload, download)
 * and by vmsan-agentctl (the host side of both, where the tar comes from
 * an untrusted guest). */
#ifndef VMSAN_TAR_H
#define VMSAN_TAR_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>

typedef ssize_t (*tar_read_fn)(void *ctx, void *buf, size_t n); /* 0 = EOF, <0 error */
/* A source that lends up to n of its bytes where they lie, in *p (valid
 * until its next call), so a file's data is written without a copy; the
 * same results as tar_read_fn's. */
typedef ssize_t (*tar_peek_fn)(void *ctx, const void **p, size_t n);
typedef int (*tar_write_fn)(void *ctx, const void *buf, size_t n); /* 0 ok, <0 error */

enum tar_err { TAR_OK = 0, TAR_E_FORMAT, TAR_E_ESCAPE, TAR_E_LIMIT, TAR_E_IO, TAR_E_SOURCE };

struct tar_entry {
	char *path; /* as stored (malloc'd by the reader) */
	char *link; /* link target for symlinks and hard links */
	char type;  /* '0' file, '1' hard link, '2' symlink, '5' dir, others */
	unsigned mode;
	long long uid, gid;
	uint64_t size;
	int64_t mtime;
};

struct tar_reader {
	tar_read_fn rd;
	tar_peek_fn peek; /* optional, for file data */
	void *ctx;
	uint64_t left, pad; /* of the current entry's data */
	uint64_t consumed;  /* bytes read from the source */
	struct tar_entry e;
	char err[256];
	int errkind;
};

void tar_reader_init(struct tar_reader *t, tar_read_fn rd, void *ctx);
/* 1: *e describes the next entry; 0: end of archive; -1: t->err set. */
int tar_next(struct tar_reader *t, struct tar_entry **e);
/* Read the current entry's data; 0 at its end. */
ssize_t tar_data(struct tar_reader *t, void *buf, size_t n);
/* The same, in place when the source lends its bytes (t->peek): *p is
 * where they are, the source's buffer or else buf. */
ssize_t tar_data_at(struct tar_reader *t, const void **p, void *buf, size_t n);
void tar_reader_free(struct tar_reader *t);

struct tar_extract_opts {
	int rootfd;			/* O_DIRECTORY fd of the target */
	bool preserve_owner;		/* chown to the archive's uid/gid */
	long long chown_uid, chown_gid; /* else chown to these when >= 0 */
	bool strip_special_bits;	/* drop setuid/setgid/sticky (host side) */
	uint64_t max_bytes;		/* file data; 0 = no limit */
	uint64_t max_entries;		/* 0 = no limit */
	bool devices;			/* create device nodes and fifos (else skip) */
	/* When set, every entry must be top_from or under it, and is
	 * written as top_to instead (download under another name). */
	const char *top_from, *top_to;
};

struct tar_stats {
	uint64_t files, dirs, symlinks, hardlinks, skipped, bytes;
};

/* Extract everything; returns TAR_OK or a TAR_E_* with err filled. */
int tar_extract(struct tar_reader *t, const struct tar_extract_opts *o, struct tar_stats *st, char *err, size_t errlen);

/* Split and check an archive path: no "..", no empty result for non-root
 * entries.  Writes the cleaned relative path ("" for the root itself). */
int tar_clean_path(const char *in, char *out, size_t outlen);
/* rel opened beneath dirfd one component at a time, none followed (where
 * openat2 is missing): flags for the last, O_PATH directories before it. */
int tar_walk_nofollow(int dirfd, const char *rel, int flags);
/* The next component of the path at *p (slashes skipped; *p moves past
 * it): its start, its length in *len; NULL at the end.  Inline: the host's
 * untar.c (over libarchive) walks names the same way, without this file. */
static inline const char *tar_path_next(const char **p, size_t *len)
{
	const char *s;

	while (**p == '/')
		(*p)++;
	if (!**p)
		return NULL;
	s = *p;
	while (**p && **p != '/')
		(*p)++;
	*len = (size_t)(*p - s);
	return s;
}

/* Write the file, directory or symlink `name` in dirfd (symlinks inside
 * a directory are stored, not followed; the top entry is followed when
 * follow_top) under archive name arcname, then the end-of-archive
 * blocks when finish. */
int tar_write_path(int dirfd, const char *name, const char *arcname, bool follow_top, tar_write_fn wr, void *ctx,
		   struct tar_stats *st, char *err, size_t errlen);
int tar_write_end(tar_write_fn wr, void *ctx);

#endif
