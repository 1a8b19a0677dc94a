/* vmsan-fc's parts: the root core (vmsan-fc.c: requests, the caller, the
 * root records), QEMU (qemu.c, qmp.c), Firecracker (firecracker.c) and
 * the snapshot files (snapshot.c).  Everything here runs as root; every
 * path it uses comes from the root configuration (rootconf.h), from a
 * root record (record.c), or is opened with the caller's rights
 * (caller.h).  See vmsan-security(7). */
#ifndef VMSAN_FC_H
#define VMSAN_FC_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "lib/vmsan.h"
#include "lib/caller.h"
#include "lib/rootconf.h"
#include "lib/vmhome.h"

#define RAM_DIR "/dev/shm/vmsan"	     /* root's; the guests' RAM files, by id */
#define VMM_DIR "/run/vmsan/vmm"	     /* root's alone: a directory per VM */
#define KVM_BOOT_DIR "/run/vmsan/kvm"	     /* root's: whether a kernel boots under KVM (kvmboot.h) */
#define FC_API_SOCK "run/firecracker.socket" /* in the jail's root */
#define AGENT_PORT_DEFAULT 9119
/* a jail's paths: the configured base (< ROOTCONF_PATH_MAX), two names */
#define JAIL_PATH_MAX (3 * ROOTCONF_PATH_MAX)

/* The descriptors QEMU is started with, and its fd sets. */
enum { FD_TAP = 3, FD_VM_RW, FD_VM_RO, FD_IMAGE, FD_CONSOLE, FD_QMP, FD_COUNT };
enum { SET_VM = 1, SET_IMAGE, SET_CONSOLE };

/* A start (or plan) request, checked. */
struct vmcfg {
	const char *id, *vmm, *kernel, *vm_disk, *image_disk, *run_dir, *hostname, *accel;
	long long vcpus, mem_mib, agent_port, uid, gid;
	bool net;
	const char *netns, *tap, *mac, *guest_ip, *gateway;
	long long prefix;
	const char *dns[3];
	int ndns;
	const char *incoming; /* a snapshot's directory to restore */
	bool kvm;
	bool kvm_refused;  /* auto chose TCG: the kernel does not boot under this KVM */
	char kvm_why[512]; /* what the boot check saw */
	long long kvm_gid; /* /dev/kvm's group, given to the VMM; -1: none */
	const struct rootconf *conf;
	struct vmhome home; /* runDir, as its owner's state keeps it */
};

/* What root knows of a running VM: VMM_DIR/<id>/record.json, written by
 * start, read by every later operation (the request names only the id). */
struct vmmrec {
	char id[64];
	char vmm[16];		 /* qemu | firecracker */
	long long owner;	 /* the caller's uid (0: root) */
	long long uid, gid;	 /* the VMM's */
	long long pid, start;	 /* the VMM process, and its start time */
	char qmp[PATH_MAX];	 /* QEMU's QMP socket (in VMM_DIR/<id>) */
	char api[JAIL_PATH_MAX]; /* Firecracker's API socket (in its jail) */
	char ram[PATH_MAX];	 /* QEMU's guest RAM file */
	struct vmhome home;	 /* the VM's directory (runDir), as start found it */
};

/* record.c */
void vmm_dir_path(const char *id, char *out, size_t n);
/* VMM_DIR/<id> made afresh (what an earlier run left removed); its fd. */
int vmm_dir_make(const char *id, struct verr *e);
int vmm_lock(const char *id, struct verr *e);
/* KVM_BOOT_DIR made when missing, and checked to be root's. */
int kvm_boot_dir(struct verr *e);
int vmmrec_write(const struct vmmrec *r, struct verr *e);
/* 1 found, 0 none, -1 unreadable (e set). */
int vmmrec_read(const char *id, struct vmmrec *r, struct verr *e);
void vmmrec_remove(const char *id);
/* The recorded VMM still runs: the same pid, start time and uid. */
bool vmmrec_alive(const struct vmmrec *r);
/* sig to the recorded VMM through a pidfd checked after it was taken. */
int vmmrec_signal(const struct vmmrec *r, int sig);
/* The record of id, for who: its owner, or root.  0 with r filled, 1 when
 * there is none (r->pid 0), -1 with e set (ERR_NOT_OWNER). */
int vmmrec_for(const char *id, const struct caller *who, struct vmmrec *r, struct verr *e);
bool vmm_wait_gone(const struct vmmrec *r, double seconds);
void ram_path(const char *id, char *out, size_t n);
int ram_dir(struct verr *e);
void ram_remove(const char *id);

/* util */
double ms_since(const struct timespec *t0);
void kernel_cmdline(const struct vmcfg *c, char *out, size_t n);
void log_tail(const struct caller *who, int dirfd, const char *name, char *out, size_t n);
bool zombie(pid_t pid);
int unix_connect(const char *sock, int timeout);
void close_fds(int fds[FD_COUNT]);

/* qmp.c: a QMP client over QEMU's socket. */
int qmp_open(const char *sock, int timeout);
bool qmp_call(int fd, const char *cmd, const char *want);
bool qmp_do(int fd, const char *json, char *buf, size_t n);
bool qmp_send_fd(int fd, int pass, const char *name);
bool qmp_migration_done(int fd, double timeout_s, char *err, size_t n);
int qmp_command(const char *sock, const char *cmd);

/* qemu.c */
json_t *qemu_argv(const struct vmcfg *c);
json_t *qemu_start(const struct vmcfg *c, const struct caller *who, struct verr *e);
json_t *qemu_snapshot(const struct vmmrec *r, const struct caller *who, const char *disk, const char *dir, bool resume,
		      struct verr *e);

/* firecracker.c */
void fc_jail_path(const struct rootconf *conf, const char *id, char *out, size_t n);
json_t *fc_jailer_argv(const struct vmcfg *c);
json_t *fc_calls(const struct vmcfg *c);
/* PATCH /vm (pause, resume) or PUT /actions (stop) on a running VM. */
int fc_action(const struct vmmrec *r, const char *path, const char *body, char *fault, size_t fn);
json_t *fc_start(const struct vmcfg *c, const struct caller *who, struct verr *e);
json_t *fc_snapshot(const struct vmmrec *r, const struct caller *who, const struct rootconf *conf, const char *disk,
		    const char *dir, bool resume, struct verr *e);
void fc_jail_remove(const struct rootconf *conf, const char *id);

/* orphans.c: the caller's records (root: everyone's) whose VM's home is
 * gone or whose VMM is dead, collected unless dry. */
json_t *fc_orphans(const struct caller *who, bool dry, struct verr *e);

/* snapshot.c: the snapshot directory's files, made by the caller. */
struct snapfiles {
	const struct caller *who;
	int dirfd, fd[3]; /* state, memory, disk.ext4 */
	bool made[3];
};
int snap_open(struct snapfiles *s, const struct caller *who, const char *dir, struct verr *e);
/* Closes them; on failure removes what snap_open made, nothing else. */
void snap_close(struct snapfiles *s, bool ok);
long long allocated(int fd);

#endif
