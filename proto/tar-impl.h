/* What tar.c (reader, extractor) and tar-write.c share, not part of the
 * interface in tar.h. */
#ifndef VMSAN_TAR_IMPL_H
#define VMSAN_TAR_IMPL_H

#define BLK 512
#define NAME_MAX_LEN 4096
/* File data moves in pieces this big: 256 KiB, like the connection
 * buffer, so that a large file costs few read and write calls. */
#define XBUF (1 << 18)

#endif
