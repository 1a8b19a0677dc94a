/* The root helpers' configuration: where the VMM programs live, where
 * Firecracker's jails go, and what a user may ask for.  It comes from a
 * file root owns (ROOTCONF_PATH) and nowhere else: not the request, not
 * the caller's environment, not PATH.  See vmsan-security(7). */
#ifndef VMSAN_ROOTCONF_H
#define VMSAN_ROOTCONF_H

#include <limits.h>
#include <stdbool.h>

#include "vmsan.h"

#ifndef ROOTCONF_PATH
#define ROOTCONF_PATH "/etc/vmsan/root.conf"
#endif

#define ROOTCONF_PATH_MAX 1024

struct rootconf {
	char path[PATH_MAX]; /* the file read, or "" for the defaults */
	/* programs and directories: absolute, shorter than ROOTCONF_PATH_MAX */
	char qemu[ROOTCONF_PATH_MAX];	     /* qemu = /usr/bin/qemu-system-x86_64 */
	char firecracker[ROOTCONF_PATH_MAX]; /* firecracker = /usr/bin/firecracker */
	char jailer[ROOTCONF_PATH_MAX];	     /* jailer = /usr/bin/jailer */
	char chroot_base[ROOTCONF_PATH_MAX]; /* chroot-base = /srv/jailer */
	long max_vms_per_user;		     /* max-vms-per-user = 64 (root: no limit) */
	unsigned port_min, port_max;	     /* publish-ports = 1024-65535 (root: any) */
};

/* Loads ROOTCONF_PATH (absent: the defaults).  The file and every
 * directory above it must be root's and not writable by others (a sticky
 * directory excepted), as a sudoers file's would.  Only real root, not
 * acting for a sudo user, may name another file in VMSAN_ROOT_CONFIG
 * (the tests do).  Unknown settings and bad values are errors naming the
 * line. */
int rootconf_load(struct rootconf *c, struct verr *e);

/* Whether path is a file root could run safely: absolute, a regular file
 * owned by root and not writable by group or others, in directories that
 * are root's and not writable by others (sticky excepted).  Sets e with
 * what names the setting. */
bool rootconf_trusted_program(const char *path, const char *what, struct verr *e);

#endif
