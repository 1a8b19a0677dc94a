/* Whether a guest kernel really boots under this host's KVM with this
 * QEMU.  That /dev/kvm opens and KVM_CREATE_VM succeeds promises nothing:
 * a host whose KVM is paravirtual (kvm_pvm: no VT-x or AMD-V beneath it,
 * only guest kernels built for PVM run) or a nested KVM that lacks an MSR
 * QEMU sets makes QEMU abort, or the guest hang, on every start.  So the
 * kernel is booted once, with no disk, to the panic it reaches for want
 * of a root file system, and the answer is kept in a cache directory,
 * keyed by the host's kernel, QEMU's binary and the guest kernel's file.
 * vmsan-fc asks before a start would use KVM (its cache is root's);
 * vmsan-probe kvm-boot is doctor's way to ask (the caller's cache). */
#ifndef VMSAN_KVMBOOT_H
#define VMSAN_KVMBOOT_H

#include <stdbool.h>

#define KVM_BOOT_SECS 10 /* a kernel that has not panicked by then does not boot */

/* Whom vmsan-fc's check runs as: the overflow ids, no member of the vmsan
 * group's.  The answer is kept for every user of the host, so the caller
 * whose start happens to run it must not be able to signal, trace or
 * starve its QEMU (as it could its own uid's): that would let one user
 * make KVM look broken, or working, for all. */
#define KVM_CHECK_UID 65534
#define KVM_CHECK_GID 65534

struct kvm_boot {
	bool boots;
	bool cached;	  /* the answer came from the cache */
	bool timed_out;	  /* no answer within KVM_BOOT_SECS: kept 10 minutes only */
	double ms;	  /* the boot's wall time (when it ran now) */
	char detail[512]; /* what was seen: the guest's last words, or QEMU's */
};

/* QEMU's process runs as uid:gid with the extra group kvm_gid (-1: none)
 * when uid is not -1, else as whoever calls. */
struct kvm_boot_as {
	long long uid, gid, kvm_gid;
	const char *accel; /* NULL: kvm; "tcg" checks the check itself */
};

/* Boot the kernel open at kernel_fd (opened with the rights of whoever
 * named it; QEMU reads it through the descriptor) under KVM with qemu (a
 * trusted path), as `as`; the cache in the directory open at cache_dirfd
 * (-1: none).  0 with b filled, -1 when the check itself could not run
 * (why in b->detail). */
int kvm_boot_check(const char *qemu, int kernel_fd, const struct kvm_boot_as *as, int cache_dirfd, struct kvm_boot *b);

/* Only the cached answer, booting nothing (for a question asked without
 * root, as vmsan-fc's plan is): 0 with b filled, -1 when none is kept. */
int kvm_boot_cached(const char *qemu, int kernel_fd, const char *accel, int cache_dirfd, struct kvm_boot *b);

#endif
