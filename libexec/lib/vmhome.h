/* A VM's home: the directory its user's state keeps it in (the VM's
 * directory, beside its record), as root's records remember it.  Root's
 * helpers note it at setup and start (opened as the caller: it must be
 * the caller's own directory) by path, device and inode, and look at it
 * again, as the record's owner, to tell a VM whose state is gone (its
 * directory removed, the user's home with it, or another one made in
 * its place) from one that still has an owner's record.  Noted by the
 * path the kernel knows it under, and only where nobody but the owner
 * and root can change what lies on that path; looked at one component
 * at a time, so that another user can never make it look gone.  What is found
 * there decides only whether the record's own VM is an orphan: the
 * record's owner is the only user a path of theirs can affect. */
#ifndef VMSAN_VMHOME_H
#define VMSAN_VMHOME_H

#include <limits.h>
#include <stdbool.h>

#include "caller.h"

struct vmhome {
	char path[PATH_MAX];
	long long dev, ino; /* path "" when none was noted */
};

/* dir opened as who: a directory of theirs; h filled (path "" where
 * another user could move something on its way).  what names the
 * request's field in errors.  0, or -1 with e set. */
int vmhome_take(const struct caller *who, const char *dir, const char *what, struct vmhome *h, struct verr *e);
/* {"path", "dev", "ino"}, or NULL when none was noted. */
json_t *vmhome_json(const struct vmhome *h);
/* h from a record's field (none: path ""). */
void vmhome_read(json_t *j, struct vmhome *h);
enum { VMHOME_THERE, VMHOME_GONE, VMHOME_UNKNOWN };
/* Looked at as uid owner (its groups from the password database), one
 * component at a time from /, following no symlink: VMHOME_GONE when a
 * component is missing, or not a directory, or the last one not the
 * noted directory, and every directory before it is root's or the
 * owner's, written by nobody else; VMHOME_UNKNOWN when none was noted,
 * a directory on the way is another's (or writable by another), or it
 * cannot be told (EACCES: a home they closed is not a home they
 * removed). */
int vmhome_state(const struct vmhome *h, long owner);

#endif
