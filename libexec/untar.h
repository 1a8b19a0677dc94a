/* untar: extract a tar stream that comes from a guest (vmsan download)
 * without letting it write anywhere but the one name the user asked for.
 *
 * The archive is read by libarchive (tar only, no filters); every entry is
 * created by this code beneath a fresh hidden directory of its own, each
 * path resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS), so no link the archive made (or any other) is
 * ever crossed.  Only when the whole archive is in does the result move to
 * its name (rename(2): a symlink there is replaced, never followed); on
 * any failure the hidden directory is removed and nothing is left.
 * Used by vmsan-agentctl and tests/fuzz/fuzz-untar.c. */
#ifndef VMSAN_UNTAR_H
#define VMSAN_UNTAR_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>

typedef ssize_t (*untar_read_fn)(void *ctx, void *buf, size_t n); /* 0 = EOF, <0 error */

enum untar_err {
	UNTAR_OK = 0,
	UNTAR_E_UNSAFE, /* the archive tried to leave its place: refused */
	UNTAR_E_FORMAT, /* not a tar archive we accept */
	UNTAR_E_LIMIT,	/* over a limit below */
	UNTAR_E_SOURCE, /* the stream failed or was cut short */
	UNTAR_E_EXISTS, /* the destination is in the way */
	UNTAR_E_LOCAL,	/* a local system call failed */
};

/* Limits on what a guest can make us write (defaults in untar.c). */
#define UNTAR_MAX_BYTES_DEFAULT (16ULL << 30) /* archive bytes received: 16 GiB */
#define UNTAR_MAX_ENTRIES_DEFAULT 1000000ULL
#define UNTAR_NAME_MAX 4096 /* a path or link target, bytes */
#define UNTAR_DEPTH_MAX 256 /* path components */

struct untar_opts {
	int dirfd;	      /* the directory the result goes in */
	const char *name;     /* its name there; "." = into dirfd itself */
	const char *top;      /* every entry is top or under it; "." = any */
	uint64_t max_bytes;   /* 0 = UNTAR_MAX_BYTES_DEFAULT */
	uint64_t max_entries; /* 0 = UNTAR_MAX_ENTRIES_DEFAULT */
	volatile int *abort;  /* when non-NULL and set, stop (a signal) */
};

struct untar_stats {
	uint64_t files, dirs, symlinks, hardlinks, skipped, bytes;
};

/* Returns UNTAR_OK or an UNTAR_E_* with err filled (guest bytes in it are
 * made printable). */
int untar(untar_read_fn rd, void *ctx, const struct untar_opts *o, struct untar_stats *st, char *err, size_t errlen);

/* Copy at most max bytes of s (len bytes) into out as printable text:
 * C0 and C1 controls, DEL and bytes that are not UTF-8 become \xNN; "..."
 * marks a cut.  For guest strings in our own messages. */
void untar_printable(char *out, size_t outlen, const char *s, size_t len, size_t max);

#endif
