/* vmsan-fc: runs a VM's VMM.  Firecracker under its jailer where KVM and
 * Firecracker exist; QEMU's microvm machine elsewhere (KVM when present,
 * TCG otherwise).  Root (through the sudoers rule), except `plan`.
 *
 *   plan    what start would do, without doing it: the QEMU command line,
 *           or the jailer's command line and the Firecracker API calls in
 *           order with their bodies
 *   start   starts the VMM as an unprivileged uid in the VM's network
 *           namespace; replies with its pid and start time
 *   status  whether that VMM (pid and start time) still runs
 *   stop    waits up to timeoutSec for the VMM to end by itself (the guest
 *           was asked to power off: vmsan-init reboots, the VMM exits),
 *           after sending Firecracker's SendCtrlAltDel; then QMP quit or
 *           SIGKILL
 *   kill    SIGKILL, now
 *
 * Both VMMs get the same kernel and the same two disks: the VM's own
 * writable disk as /dev/vda (root=, vmsan-init is on it) and the image's
 * shared read-only disk as /dev/vdb.  See vmsan-fc(8). */
#define _GNU_SOURCE
#include "lib/vmsan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define QEMU_BIN "qemu-system-x86_64"
#define RAM_DIR "/dev/shm"
#define FC_API_SOCK "run/firecracker.socket"   /* in the jail's root */
/* The descriptors QEMU is started with, and its fd sets. */
enum { FD_TAP = 3, FD_VM_RW, FD_VM_RO, FD_IMAGE, FD_CONSOLE, FD_QMP, FD_COUNT };
enum { SET_VM = 1, SET_IMAGE, SET_CONSOLE };
#define AGENT_PORT_DEFAULT 9119

struct vmcfg {
	const char *id, *vmm, *kernel, *vm_disk, *image_disk, *run_dir, *hostname, *accel;
	long long vcpus, mem_mib, agent_port, uid, gid;
	/* network (optional) */
	bool net;
	const char *netns, *tap, *mac, *guest_ip, *gateway;
	long long prefix;
	const char *dns[3];
	int ndns;
	/* a snapshot to restore (QEMU): a directory with state and memory */
	const char *incoming;
	/* firecracker */
	const char *fc_bin, *jailer_bin, *chroot_base;
	/* resolved */
	bool kvm;
	long long kvm_gid;      /* /dev/kvm's group, given to the VMM; -1: none */
};

/* ---- validation -------------------------------------------------------- */

static int valid_abspath(const char *s, char *why, size_t n)
{
	if (s[0] != '/')
		return snprintf(why, n, "'%.80s' is not an absolute path", s), -1;
	if (strlen(s) >= PATH_MAX / 2)
		return snprintf(why, n, "path too long"), -1;
	if (strstr(s, "/../") || !strcmp(s + strlen(s) - (strlen(s) >= 3 ? 3 : 0), "/..") ||
	    strchr(s, ',') || strchr(s, '\n'))
		return snprintf(why, n, "'%.80s' contains '..', ',' or a newline", s), -1;
	return 0;
}

static int valid_vmm(const char *s, char *why, size_t n)
{
	if (strcmp(s, "qemu") && strcmp(s, "firecracker"))
		return snprintf(why, n, "vmm must be qemu or firecracker, not '%.40s'", s), -1;
	return 0;
}

static int valid_accel(const char *s, char *why, size_t n)
{
	if (strcmp(s, "auto") && strcmp(s, "kvm") && strcmp(s, "tcg"))
		return snprintf(why, n, "accel must be auto, kvm or tcg, not '%.40s'", s), -1;
	return 0;
}

static int valid_mac(const char *s, char *why, size_t n)
{
	unsigned b[6];
	char end;
	if (strlen(s) != 17 || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
				      &end) != 6)
		return snprintf(why, n, "'%.40s' is not a MAC address (aa:bb:cc:dd:ee:ff)", s), -1;
	if (b[0] & 1)
		return snprintf(why, n, "'%.40s' is a multicast MAC address", s), -1;
	return 0;
}

static int valid_netns(const char *s, char *why, size_t n)
{
	size_t len = strlen(s);
	if (!len || len > 64)
		return snprintf(why, n, "a namespace name has 1 to 64 characters"), -1;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return snprintf(why, n, "namespace '%.64s': lowercase letters, digits and '-' only", s), -1;
	return 0;
}

/* Whether the VMM's uid can open /dev/kvm: as its owner, as others, or
 * through the device's group (not root's), which the VMM then gets as a
 * supplementary group. */
static bool kvm_for(struct vmcfg *c)
{
	struct stat st;
	c->kvm_gid = -1;
	if (stat("/dev/kvm", &st) < 0 || !S_ISCHR(st.st_mode))
		return false;
	if ((st.st_mode & 06) == 06 || ((long long)st.st_uid == c->uid && (st.st_mode & 0600) == 0600))
		return true;
	if ((st.st_mode & 060) == 060 && st.st_gid != 0) {
		c->kvm_gid = (long long)st.st_gid;
		return true;
	}
	return false;
}

static int read_cfg(struct jr *r, struct vmcfg *c, struct verr *e)
{
	memset(c, 0, sizeof *c);
	c->id = jr_string(r, "id", JR_REQUIRED, valid_vm_id);
	c->vmm = jr_string(r, "vmm", JR_REQUIRED, valid_vmm);
	c->kernel = jr_string(r, "kernel", JR_REQUIRED, valid_abspath);
	c->vm_disk = jr_string(r, "vmDisk", JR_REQUIRED, valid_abspath);
	c->image_disk = jr_string(r, "imageDisk", JR_OPTIONAL, valid_abspath);
	c->run_dir = jr_string(r, "runDir", JR_REQUIRED, valid_abspath);
	c->hostname = jr_string(r, "hostname", JR_OPTIONAL, valid_vm_id);
	c->accel = jr_string(r, "accel", JR_OPTIONAL, valid_accel);
	c->incoming = jr_string(r, "incoming", JR_OPTIONAL, valid_abspath);
	c->vcpus = 1;
	c->mem_mib = 256;
	c->agent_port = AGENT_PORT_DEFAULT;
	jr_int(r, "vcpus", JR_OPTIONAL, 1, 32, &c->vcpus);
	jr_int(r, "memoryMib", JR_OPTIONAL, 64, 1 << 20, &c->mem_mib);
	jr_int(r, "agentPort", JR_OPTIONAL, 1, 65535, &c->agent_port);
	/* The VMM never runs as root: uid and gid 0 are refused. */
	jr_int(r, "uid", JR_REQUIRED, 1, 4294967294LL, &c->uid);
	jr_int(r, "gid", JR_REQUIRED, 1, 4294967294LL, &c->gid);
	json_t *net = jr_object(r, "network", JR_OPTIONAL);
	json_t *fc = jr_object(r, "firecracker", JR_OPTIONAL);
	if (verr_isset(e))
		return -1;
	if (net) {
		struct jr n;
		jr_init(&n, net, "request.network", e);
		c->net = true;
		c->netns = jr_string(&n, "netns", JR_OPTIONAL, valid_netns);
		c->tap = jr_string(&n, "tap", JR_REQUIRED, valid_ifname);
		c->mac = jr_string(&n, "mac", JR_REQUIRED, valid_mac);
		c->guest_ip = jr_string(&n, "guestIp", JR_REQUIRED, valid_ipv4);
		c->gateway = jr_string(&n, "gatewayIp", JR_REQUIRED, valid_ipv4);
		c->prefix = 30;
		jr_int(&n, "prefixLen", JR_OPTIONAL, 1, 32, &c->prefix);
		json_t *dns = jr_array(&n, "dns", JR_OPTIONAL, 3);
		if (jr_end(&n))
			return -1;
		size_t i;
		json_t *d;
		json_array_foreach(dns, i, d) {
			char why[160];
			if (!json_is_string(d) || valid_ipv4(json_string_value(d), why, sizeof why)) {
				verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "give IPv4 addresses",
					 "request.network.dns[%zu]: not an IPv4 address", i);
				return -1;
			}
			c->dns[c->ndns++] = json_string_value(d);
		}
	}
	if (fc) {
		struct jr f;
		jr_init(&f, fc, "request.firecracker", e);
		c->fc_bin = jr_string(&f, "binary", JR_REQUIRED, valid_abspath);
		c->jailer_bin = jr_string(&f, "jailer", JR_REQUIRED, valid_abspath);
		c->chroot_base = jr_string(&f, "chrootBase", JR_REQUIRED, valid_abspath);
		if (jr_end(&f))
			return -1;
	}
	if (!strcmp(c->vmm, "firecracker")) {
		if (!fc) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "add the firecracker object",
				 "request.firecracker (binary, jailer, chrootBase) is required for vmm firecracker");
			return -1;
		}
		if (c->vcpus != 1 && c->vcpus % 2) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "use 1 or an even number",
				 "Firecracker takes 1 or an even number of vCPUs, not %lld", c->vcpus);
			return -1;
		}
	}
	if (!c->hostname)
		c->hostname = c->id;
	if (!c->accel)
		c->accel = "auto";
	c->kvm = !strcmp(c->accel, "kvm") || (!strcmp(c->accel, "auto") && kvm_for(c));
	return 0;
}

/* ---- what both VMMs share ---------------------------------------------- */

static void kernel_cmdline(const struct vmcfg *c, char *out, size_t n)
{
	bool fc = !strcmp(c->vmm, "firecracker");
	size_t k = 0;
	/* reboot=k: Firecracker emulates the i8042 reset and exits on it; QEMU's
	 * microvm has no i8042, and reboot=t (triple fault) ends it at once
	 * with -no-reboot. */
	k += (size_t)snprintf(out + k, n - k,
			      "console=ttyS0 reboot=%s panic=-1 root=/dev/vda rw init=/vmsan/init%s",
			      fc ? "k" : "t", fc ? " pci=off i8042.noaux i8042.nomux i8042.dumbkbd" : "");
	/* Without KVM there is no kvmclock; TSC calibration against the PIT
	 * fails at random under TCG and can hang an ACPI kernel. */
	if (!fc && !c->kvm)
		k += (size_t)snprintf(out + k, n - k, " tsc_early_khz=2100000");
	k += (size_t)snprintf(out + k, n - k, " vmsan.lower=%s vmsan.hostname=%s vmsan.port=%lld",
			      c->image_disk ? "/dev/vdb" : "none", c->hostname, c->agent_port);
	if (c->net) {
		k += (size_t)snprintf(out + k, n - k, " vmsan.ip=%s/%lld vmsan.gw=%s", c->guest_ip, c->prefix,
				      c->gateway);
		for (int i = 0; i < c->ndns; i++)
			k += (size_t)snprintf(out + k, n - k, "%s%s", i ? "," : " vmsan.dns=", c->dns[i]);
	}
}

static void run_path(const struct vmcfg *c, const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", c->run_dir, name);
}

/* ---- QEMU -------------------------------------------------------------- */

static json_t *qemu_argv(const struct vmcfg *c)
{
	char buf[PATH_MAX + 256], cmdline[2048];
	json_t *a = json_array();
#define ADD(s) json_array_append_new(a, json_string(s))
#define ADDF(...) (snprintf(buf, sizeof buf, __VA_ARGS__), ADD(buf))
	ADD(QEMU_BIN);
	ADD("-name");
	ADDF("vmsan-%s,process=vmsan-%s", c->id, c->id);
	ADD("-machine");
	ADD("microvm,x-option-roms=off,rtc=on,acpi=off,memory-backend=ram");
	/* Guest RAM in a shared file vmsan-fc makes (/dev/shm, the VMM's):
	 * a snapshot saves only the device state into its stream (migration
	 * capability x-ignore-shared) and copies this file, as Firecracker
	 * splits a snapshot into state and memory. */
	ADD("-object");
	ADDF("memory-backend-file,id=ram,size=%lldM,mem-path=" RAM_DIR "/vmsan-%s.ram,share=on", c->mem_mib, c->id);
	ADD("-accel");
	ADD(c->kvm ? "kvm" : "tcg");
	ADD("-cpu");
	ADD(c->kvm ? "host" : "max");
	ADD("-smp");
	ADDF("%lld", c->vcpus);
	ADD("-m");
	ADDF("%lld", c->mem_mib);
	ADD("-nodefaults");
	ADD("-no-user-config");
	ADD("-display");
	ADD("none");
	ADD("-no-reboot");
	ADD("-sandbox");
	ADD("on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
	/* QEMU opens nothing by name but the kernel: vmsan-fc opens the
	 * disks, the console file and the QMP socket (checking they are the
	 * caller's) and passes descriptors, so the VMM's uid needs no access
	 * to any of the caller's files. */
	ADD("-add-fd");
	ADDF("fd=%d,set=%d,opaque=console", FD_CONSOLE, SET_CONSOLE);
	ADD("-serial");
	ADDF("file:/dev/fdset/%d", SET_CONSOLE);
	ADD("-kernel");
	ADD(c->kernel);
	ADD("-append");
	kernel_cmdline(c, cmdline, sizeof cmdline);
	ADD(cmdline);
	/* The block layer probes read-only before it opens read-write: the
	 * set holds a descriptor of each access mode. */
	ADD("-add-fd");
	ADDF("fd=%d,set=%d,opaque=vm-rw", FD_VM_RW, SET_VM);
	ADD("-add-fd");
	ADDF("fd=%d,set=%d,opaque=vm-ro", FD_VM_RO, SET_VM);
	ADD("-drive");
	ADDF("id=vm,file=/dev/fdset/%d,format=raw,if=none,discard=unmap,file.locking=off", SET_VM);
	ADD("-device");
	ADD("virtio-blk-device,drive=vm");
	if (c->image_disk) {
		ADD("-add-fd");
		ADDF("fd=%d,set=%d,opaque=image-ro", FD_IMAGE, SET_IMAGE);
		ADD("-drive");
		ADDF("id=image,file=/dev/fdset/%d,format=raw,if=none,readonly=on,file.locking=off", SET_IMAGE);
		ADD("-device");
		ADD("virtio-blk-device,drive=image");
	}
	if (c->net) {
		/* vmsan-fc opens the TAP (as root, in the namespace) and hands
		 * QEMU the descriptor: QEMU needs no access to /dev/net/tun. */
		ADD("-netdev");
		ADDF("tap,id=net0,fd=%d", FD_TAP);
		ADD("-device");
		ADDF("virtio-net-device,netdev=net0,mac=%s", c->mac);
	}
	if (c->incoming) {
		/* the state arrives over QMP (migrate-incoming fd:) */
		ADD("-incoming");
		ADD("defer");
	}
	ADD("-chardev");
	ADDF("socket,id=qmp,fd=%d,server=on,wait=off", FD_QMP);
	ADD("-mon");
	ADD("chardev=qmp,mode=control");
	/* No -daemonize: its fork is what -sandbox spawn=deny forbids.
	 * vmsan-fc detaches QEMU itself. */
#undef ADD
#undef ADDF
	return a;
}

/* ---- Firecracker ------------------------------------------------------- */

static void fc_chroot(const struct vmcfg *c, char *out, size_t n)
{
	const char *exe = strrchr(c->fc_bin, '/') + 1;
	snprintf(out, n, "%s/%s/%s/root", c->chroot_base, exe, c->id);
}

static json_t *fc_jailer_argv(const struct vmcfg *c)
{
	char buf[PATH_MAX + 64];
	json_t *a = json_array();
#define ADD(s) json_array_append_new(a, json_string(s))
#define ADDF(...) (snprintf(buf, sizeof buf, __VA_ARGS__), ADD(buf))
	ADD(c->jailer_bin);
	ADD("--id");
	ADD(c->id);
	ADD("--exec-file");
	ADD(c->fc_bin);
	ADD("--uid");
	ADDF("%lld", c->uid);
	ADD("--gid");
	ADDF("%lld", c->gid);
	ADD("--chroot-base-dir");
	ADD(c->chroot_base);
	if (c->netns) {
		ADD("--netns");
		ADDF("/run/netns/%s", c->netns);
	}
	ADD("--new-pid-ns");
	ADD("--cgroup-version");
	ADD("2");
	ADD("--cgroup");
	ADDF("cpu.max=%lld 100000", c->vcpus * 100000);
	ADD("--cgroup");
	/* the guest's memory plus what the VMM itself needs */
	ADDF("memory.max=%lld", (c->mem_mib + 64) * 1048576);
	ADD("--daemonize");
	ADD("--");
	ADD("--api-sock");
	ADD("/" FC_API_SOCK);
	/* Firecracker's own seccomp filters stay on: no --no-seccomp. */
#undef ADD
#undef ADDF
	return a;
}

static json_t *call(const char *method, const char *path, json_t *body)
{
	return json_pack("{s:s, s:s, s:o}", "method", method, "path", path, "body", body);
}

/* The API calls, in the order Firecracker's documentation gives; paths in
 * the bodies are inside the jail. */
static json_t *fc_calls(const struct vmcfg *c)
{
	char cmdline[2048];
	kernel_cmdline(c, cmdline, sizeof cmdline);
	json_t *a = json_array();
	json_array_append_new(a, call("PUT", "/logger",
				      json_pack("{s:s, s:s, s:b}", "log_path", "firecracker.log", "level", "Info",
						"show_level", 1)));
	if (c->incoming) {
		/* A snapshot restores into a fresh Firecracker: nothing else is
		 * configured first; its files are in the jail (start copies
		 * them there), the drives and the TAP under the names they had. */
		json_array_append_new(a, call("PUT", "/snapshot/load",
					      json_pack("{s:s, s:{s:s, s:s}, s:b}", "snapshot_path", "snapshot.state",
							"mem_backend", "backend_type", "File", "backend_path",
							"snapshot.mem", "resume_vm", 1)));
		return a;
	}
	json_array_append_new(a, call("PUT", "/serial", json_pack("{s:s}", "serial_out_path", "console.log")));
	json_array_append_new(a, call("PUT", "/boot-source",
				      json_pack("{s:s, s:s}", "kernel_image_path", "vmlinux", "boot_args", cmdline)));
	json_array_append_new(a, call("PUT", "/drives/vm",
				      json_pack("{s:s, s:s, s:b, s:b, s:s, s:s}", "drive_id", "vm", "path_on_host",
						"vm.ext4", "is_root_device", 1, "is_read_only", 0, "cache_type",
						"Unsafe", "io_engine", "Sync")));
	if (c->image_disk)
		json_array_append_new(a, call("PUT", "/drives/image",
					      json_pack("{s:s, s:s, s:b, s:b, s:s, s:s}", "drive_id", "image",
							"path_on_host", "image.ext4", "is_root_device", 0,
							"is_read_only", 1, "cache_type", "Unsafe", "io_engine",
							"Sync")));
	json_array_append_new(a, call("PUT", "/machine-config",
				      json_pack("{s:I, s:I, s:b, s:b}", "vcpu_count", (json_int_t)c->vcpus,
						"mem_size_mib", (json_int_t)c->mem_mib, "smt", 0,
						"track_dirty_pages", 0)));
	if (c->net)
		json_array_append_new(a, call("PUT", "/network-interfaces/eth0",
					      json_pack("{s:s, s:s, s:s}", "iface_id", "eth0", "host_dev_name",
							c->tap, "guest_mac", c->mac)));
	json_array_append_new(a, call("PUT", "/entropy", json_object()));
	json_array_append_new(a, call("PUT", "/actions", json_pack("{s:s}", "action_type", "InstanceStart")));
	return a;
}

/* ---- plan -------------------------------------------------------------- */

static json_t *plan(const struct vmcfg *c)
{
	char cmdline[2048];
	kernel_cmdline(c, cmdline, sizeof cmdline);
	if (!strcmp(c->vmm, "qemu"))
		return json_pack("{s:s, s:s, s:s*, s:I, s:I, s:s, s:o}", "vmm", "qemu", "accel",
				 c->kvm ? "kvm" : "tcg", "netns", c->netns, "uid", (json_int_t)c->uid, "gid",
				 (json_int_t)c->gid, "kernelCmdline", cmdline, "argv", qemu_argv(c));
	char chroot[PATH_MAX];
	fc_chroot(c, chroot, sizeof chroot);
	json_t *links = json_pack("[{s:s, s:s}, {s:s, s:s}]", "from", c->kernel, "to", "vmlinux", "from",
				  c->vm_disk, "to", "vm.ext4");
	if (c->image_disk)
		json_array_append_new(links, json_pack("{s:s, s:s}", "from", c->image_disk, "to", "image.ext4"));
	return json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:o}", "vmm", "firecracker", "accel", "kvm", "chroot",
			 chroot, "jail", links, "jailer", fc_jailer_argv(c), "kernelCmdline", cmdline, "api",
			 fc_calls(c));
}

static json_t *op_plan(struct jr *r, struct verr *e)
{
	struct vmcfg c;
	if (read_cfg(r, &c, e) || jr_end(r))
		return NULL;
	return plan(&c);
}

/* ---- start (QEMU) ------------------------------------------------------ */

/* Who asked: root, or the user root acts for under sudo. */
struct caller {
	uid_t uid;
	gid_t gid;
	bool root;
};

static void get_caller(struct caller *who)
{
	long u, g;
	caller_ids(&u, &g);
	who->uid = (uid_t)u;
	who->gid = (gid_t)g;
	who->root = who->uid == 0;
}

/* Opens path for the caller: a regular file (or directory, for dirs) that
 * is theirs, never through a symlink in the last component. */
static int open_owned(const struct caller *who, const char *what, const char *path, int flags,
		      bool dir, struct verr *e)
{
	int fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
	struct stat st;
	if (fd < 0) {
		verr_sys(e, "ERR_FILE", NULL, "cannot open %s %s", what, path);
		return -1;
	}
	if (fstat(fd, &st) < 0 || (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) {
		close(fd);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_FILE", NULL, "%s %s is not a %s", what, path,
			 dir ? "directory" : "regular file");
		return -1;
	}
	if (!who->root && st.st_uid != who->uid) {
		close(fd);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_PERMISSION", "use your own files",
			 "%s %s belongs to uid %u, not to you (uid %u)", what, path, (unsigned)st.st_uid,
			 (unsigned)who->uid);
		return -1;
	}
	return fd;
}

/* A file in the run directory, created for the caller. */
static int run_file(const struct caller *who, int dirfd, const char *name, int flags, struct verr *e)
{
	int fd = openat(dirfd, name, flags | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || fchown(fd, who->uid, who->gid) < 0) {
		verr_sys(e, "ERR_RUN_DIR", NULL, "cannot create %s in the run directory", name);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* What QEMU is handed, opened by us: fds[FD_x], -1 where unused. */
static int open_vmm_files(const struct vmcfg *c, const struct caller *who, int fds[FD_COUNT], int *dirfd,
			  struct verr *e)
{
	for (int i = 0; i < FD_COUNT; i++)
		fds[i] = -1;
	*dirfd = open_owned(who, "runDir", c->run_dir, O_RDONLY, true, e);
	if (*dirfd < 0)
		return -1;
	if ((fds[FD_VM_RW] = open_owned(who, "vmDisk", c->vm_disk, O_RDWR, false, e)) < 0 ||
	    (fds[FD_VM_RO] = open_owned(who, "vmDisk", c->vm_disk, O_RDONLY, false, e)) < 0 ||
	    (c->image_disk && (fds[FD_IMAGE] = open_owned(who, "imageDisk", c->image_disk, O_RDONLY, false, e)) < 0) ||
	    (fds[FD_CONSOLE] = run_file(who, *dirfd, "console.log", O_WRONLY | O_APPEND, e)) < 0)
		return -1;
	/* The QMP socket: bound by us (root's, owner-only: QMP is ours, not the
	 * caller's), listened on by QEMU. */
	char path[64];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(path, sizeof path, "/proc/self/fd/%d/qmp.sock", *dirfd);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	unlinkat(*dirfd, "qmp.sock", 0);
	fds[FD_QMP] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	mode_t old = umask(077);
	int rc = fds[FD_QMP] < 0 ? -1 : bind(fds[FD_QMP], (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc < 0 || listen(fds[FD_QMP], 4) < 0) {
		verr_sys(e, "ERR_RUN_DIR", NULL, "cannot make the QMP socket in %s", c->run_dir);
		return -1;
	}
	return 0;
}

/* ---- guest RAM (QEMU) ------------------------------------------------------ */

static void ram_path(const char *id, char *out, size_t n)
{
	snprintf(out, n, RAM_DIR "/vmsan-%s.ram", id);
}

/* Removes the RAM file of a VM whose VMM is gone: the caller's own only
 * (root's: any). */
static void ram_remove(const char *id, const struct caller *who)
{
	char p[96];
	struct stat st;
	ram_path(id, p, sizeof p);
	if (lstat(p, &st) == 0 && (who->root || st.st_uid == who->uid))
		unlink(p);
}

/* The guest's RAM file, made here for the VMM's uid (QEMU opens it by
 * name: memory-backend-file takes no descriptor), sized, and with a
 * snapshot's memory copied in (holes stay holes).  A file of that name
 * left by an earlier run of this VM is replaced; anyone else's is an
 * error. */
static int ram_make(const struct vmcfg *c, int memfd, struct verr *e)
{
	char p[96];
	struct stat st;
	ram_path(c->id, p, sizeof p);
	if (lstat(p, &st) == 0) {
		if (!S_ISREG(st.st_mode) || (st.st_uid != (uid_t)c->uid && st.st_uid != 0)) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_RAM_FILE", "remove it, or pick another VM id",
				 "%s exists and is not this VM's", p);
			return -1;
		}
		unlink(p);
	}
	int fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	uint64_t size = (uint64_t)c->mem_mib << 20;
	if (fd < 0 || fchown(fd, (uid_t)c->uid, (gid_t)c->gid) < 0 || ftruncate(fd, (off_t)size) < 0) {
		verr_sys(e, "ERR_RAM_FILE", "check " RAM_DIR "'s free space (df " RAM_DIR ")", "cannot make %s", p);
		goto fail;
	}
	if (memfd >= 0) {
		struct stat ms;
		if (fstat(memfd, &ms) < 0 || (uint64_t)ms.st_size != size) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", "restore with the snapshot's memory size",
				 "the snapshot's memory is %lld MiB, not %lld", (long long)(ms.st_size >> 20), c->mem_mib);
			goto fail;
		}
		if (copy_sparse(memfd, fd, size, "copying the snapshot's memory", e) < 0)
			goto fail;
	}
	close(fd);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(p);
	return -1;
}

static void close_fds(int fds[FD_COUNT])
{
	for (int i = 0; i < FD_COUNT; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* The VMM's process: into the namespace, down to the uid, then exec with
 * the descriptors in place. */
static void exec_vmm(const struct vmcfg *c, json_t *argv, int fds[FD_COUNT], int errfd)
{
	char msg[256];
	if (c->netns) {
		char p[128];
		snprintf(p, sizeof p, "/run/netns/%s", c->netns);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
			snprintf(msg, sizeof msg, "cannot enter network namespace %s: %s", c->netns, strerror(errno));
			goto fail;
		}
		close(fd);
	}
	/* TUNSETIFF would make a TAP that is not there: links are
	 * vmsan-net's to make, so a missing one is an error.  /dev/net/tun
	 * is opened as root (it may be root's alone), the TAP attached below
	 * as the VMM's uid. */
	int tfd = -1;
	if (c->net) {
		if (!if_nametoindex(c->tap)) {
			snprintf(msg, sizeof msg, "cannot open TAP %s%s%s: no such interface (vmsan-net setup makes it)",
				 c->tap, c->netns ? " in " : "", c->netns ? c->netns : "");
			goto fail;
		}
		if ((tfd = open("/dev/net/tun", O_RDWR | O_CLOEXEC)) < 0) {
			snprintf(msg, sizeof msg, "cannot open /dev/net/tun: %s", strerror(errno));
			goto fail;
		}
		/* clear of the numbers the descriptors below go to */
		int hi = fcntl(tfd, F_DUPFD_CLOEXEC, 64);
		if (hi < 0) {
			snprintf(msg, sizeof msg, "descriptor: %s", strerror(errno));
			goto fail;
		}
		close(tfd);
		tfd = hi;
	}
	/* Every descriptor out of the way first, then each onto its number
	 * (dup2 leaves the copy open across exec). */
	for (int i = FD_TAP; i < FD_COUNT; i++) {
		if (fds[i] < 0)
			continue;
		int hi = fcntl(fds[i], F_DUPFD_CLOEXEC, 64);
		if (hi < 0) {
			snprintf(msg, sizeof msg, "descriptor: %s", strerror(errno));
			goto fail;
		}
		fds[i] = hi;
	}
	for (int i = FD_TAP; i < FD_COUNT; i++)
		if (fds[i] >= 0 && dup2(fds[i], i) < 0) {
			snprintf(msg, sizeof msg, "descriptor %d: %s", i, strerror(errno));
			goto fail;
		}
	gid_t g = (gid_t)c->gid, groups[2] = { (gid_t)c->gid, (gid_t)c->kvm_gid };
	if (setgroups(c->kvm && c->kvm_gid >= 0 ? 2 : 1, groups) < 0 || setresgid(g, g, g) < 0 || setresuid((uid_t)c->uid, (uid_t)c->uid,
									(uid_t)c->uid) < 0) {
		snprintf(msg, sizeof msg, "cannot become uid %lld gid %lld: %s", c->uid, c->gid, strerror(errno));
		goto fail;
	}
	/* The TAP is attached as the VMM's uid, not as root: the kernel then
	 * holds it to the TAP's owner (vmsan-net sets it where a TAP is in
	 * the host's namespace, --no-netns), so no caller can have its VMM
	 * take another VM's TAP. */
	if (c->net) {
		struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
		snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", c->tap);
		if (ioctl(tfd, TUNSETIFF, &ifr) < 0) {
			snprintf(msg, sizeof msg, "cannot open TAP %s%s%s: %s", c->tap, c->netns ? " in " : "",
				 c->netns ? c->netns : "", strerror(errno));
			goto fail;
		}
		if (tfd != FD_TAP && (dup2(tfd, FD_TAP) < 0 || close(tfd) < 0)) {
			snprintf(msg, sizeof msg, "descriptor %d: %s", FD_TAP, strerror(errno));
			goto fail;
		}
	}
	if (chdir("/") < 0) {
		snprintf(msg, sizeof msg, "chdir /: %s", strerror(errno));
		goto fail;
	}
	umask(077);
	size_t n = json_array_size(argv);
	char **av = calloc(n + 1, sizeof *av);
	for (size_t i = 0; av && i < n; i++)
		av[i] = (char *)json_string_value(json_array_get(argv, i));
	static char path_env[] = "PATH=/usr/local/bin:/usr/bin:/bin";
	char *envp[] = { path_env, NULL };
	int devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
	}
	execvpe(av ? av[0] : QEMU_BIN, av, envp);
	snprintf(msg, sizeof msg, "cannot run %s: %s", QEMU_BIN, strerror(errno));
fail:
	(void)!write(errfd, msg, strlen(msg));
	_exit(127);
}

/* Read until a line containing want, or the connection ends. */
static bool qmp_expect(int fd, const char *want)
{
	char buf[8192];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
		if (n <= 0)
			return false;
		len += (size_t)n;
		buf[len] = 0;
		if (strstr(buf, want))
			return true;
		if (len == sizeof buf - 1)
			len = 0;
	}
}

/* A connection to QEMU's QMP socket, past the greeting and the
 * capabilities negotiation, with replies awaited up to timeout seconds;
 * -1 if any step fails. */
/* A connected stream socket to sock, reads timing out after timeout
 * seconds; -1 if it cannot connect. */
static int unix_connect(const char *sock, int timeout)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(sock) >= sizeof sa.sun_path)
		return -1;
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct timeval tv = { .tv_sec = timeout };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int qmp_open(const char *sock, int timeout)
{
	int fd = unix_connect(sock, timeout);
	if (fd < 0)
		return -1;
	static const char caps[] = "{\"execute\":\"qmp_capabilities\"}\n";
	if (!qmp_expect(fd, "\"QMP\"") ||
	    write(fd, caps, sizeof caps - 1) != (ssize_t)sizeof caps - 1 || !qmp_expect(fd, "\"return\"")) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Send one command; true when the reply contains want. */
static bool qmp_call(int fd, const char *cmd, const char *want)
{
	char req[128];
	int n = snprintf(req, sizeof req, "{\"execute\":\"%s\"}\n", cmd);
	return write(fd, req, (size_t)n) == n && qmp_expect(fd, want);
}

/* One reply (a "return" or an "error" line; events are skipped) into buf. */
static bool qmp_reply(int fd, char *buf, size_t n)
{
	size_t len = 0;
	for (;;) {
		char *nl;
		while ((nl = memchr(buf, '\n', len))) {
			*nl = 0;
			if (strstr(buf, "\"return\"") || strstr(buf, "\"error\""))
				return strstr(buf, "\"return\"") != NULL;
			memmove(buf, nl + 1, len - (size_t)(nl + 1 - buf));
			len -= (size_t)(nl + 1 - buf);
		}
		if (len == n - 1)
			len = 0;
		ssize_t r = read(fd, buf + len, n - 1 - len);
		if (r <= 0)
			return false;
		len += (size_t)r;
		buf[len] = 0;
	}
}

/* A command given as JSON; true when it returned (its reply in buf). */
static bool qmp_do(int fd, const char *json, char *buf, size_t n)
{
	size_t l = strlen(json);
	return write(fd, json, l) == (ssize_t)l && write(fd, "\n", 1) == 1 && qmp_reply(fd, buf, n);
}

/* Hands QEMU a descriptor under a name (getfd, SCM_RIGHTS), for fd: URIs:
 * QEMU opens no file of ours and cannot run a command (-sandbox). */
static bool qmp_send_fd(int fd, int pass, const char *name)
{
	char cmd[128], buf[4096];
	int n = snprintf(cmd, sizeof cmd, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"%s\"}}\n", name);
	struct iovec iov = { .iov_base = cmd, .iov_len = (size_t)n };
	union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &pass, sizeof(int));
	return sendmsg(fd, &m, 0) == n && qmp_reply(fd, buf, sizeof buf);
}

/* Polls query-migrate until the migration ends; true when it completed
 * (QEMU's error, if any, in err). */
static bool qmp_migration_done(int fd, double timeout_s, char *err, size_t n)
{
	char buf[8192];
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (!qmp_do(fd, "{\"execute\":\"query-migrate\"}", buf, sizeof buf)) {
			snprintf(err, n, "QMP query-migrate failed: %.200s", buf);
			return false;
		}
		if (strstr(buf, "\"status\": \"completed\"") || strstr(buf, "\"status\":\"completed\""))
			return true;
		if (strstr(buf, "\"failed\"") || strstr(buf, "\"cancelled\"")) {
			char *d = strstr(buf, "\"error-desc\"");
			snprintf(err, n, "migration failed%s%.200s", d ? ": " : "", d ? d : "");
			return false;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 > timeout_s) {
			snprintf(err, n, "migration did not end within %.0f s", timeout_s);
			return false;
		}
		poll(NULL, 0, 2);
	}
}

/* vmm.pid in the run directory; a VMM we cannot name there is killed. */
static int write_vmm_pid(const struct caller *who, int dirfd, pid_t pid, struct verr *e)
{
	int pf = run_file(who, dirfd, "vmm.pid", O_WRONLY | O_TRUNC, e);
	if (pf < 0) {
		kill(pid, SIGKILL);
		return -1;
	}
	dprintf(pf, "%d\n", (int)pid);
	close(pf);
	return 0;
}

/* The last line of a log file, for an error message. */
static void log_tail(int dirfd, const char *name, char *out, size_t n)
{
	char tail[512] = "";
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		off_t end = lseek(fd, 0, SEEK_END);
		lseek(fd, end > (off_t)sizeof tail - 1 ? end - (off_t)sizeof tail + 1 : 0, SEEK_SET);
		ssize_t tn = read(fd, tail, sizeof tail - 1);
		tail[tn > 0 ? tn : 0] = 0;
		close(fd);
	}
	char *nl = tail[0] ? strrchr(tail, '\n') : NULL;
	if (nl && !nl[1])
		*nl = 0;
	const char *last = strrchr(tail, '\n') ? strrchr(tail, '\n') + 1 : tail;
	snprintf(out, n, "%s", last[0] ? last : "no message");
}

static bool zombie(pid_t pid)
{
	char statpath[64], buf[512];
	snprintf(statpath, sizeof statpath, "/proc/%d/stat", (int)pid);
	int fd = open(statpath, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	const char *p = strrchr(buf, ')');
	return !p || p[1] != ' ' || p[2] == 'Z';
}

static json_t *start_qemu(const struct vmcfg *c, const struct caller *who, struct verr *e)
{
	int fds[FD_COUNT], dirfd = -1, lfd = -1, pe[2] = { -1, -1 }, pp[2] = { -1, -1 };
	int statefd = -1, memfd = -1;
	bool ram = false;
	pid_t qpid = -1;
	json_t *argv = NULL;
	char qmp[PATH_MAX], log[PATH_MAX];
	run_path(c, "qmp.sock", qmp, sizeof qmp);
	run_path(c, "vmm.log", log, sizeof log);
	if (open_vmm_files(c, who, fds, &dirfd, e) < 0)
		goto fail;
	/* QEMU's own messages go to vmm.log. */
	if ((lfd = run_file(who, dirfd, "vmm.log", O_WRONLY | O_APPEND, e)) < 0)
		goto fail;
	unlinkat(dirfd, "vmm.pid", 0);
	/* A snapshot to restore: its files are the caller's; its memory goes
	 * into the new RAM file, its state to QEMU over QMP. */
	if (c->incoming) {
		char sp[PATH_MAX + 16];
		snprintf(sp, sizeof sp, "%s/state", c->incoming);
		if ((statefd = open_owned(who, "snapshot state", sp, O_RDONLY, false, e)) < 0)
			goto fail;
		snprintf(sp, sizeof sp, "%s/memory", c->incoming);
		if ((memfd = open_owned(who, "snapshot memory", sp, O_RDONLY, false, e)) < 0)
			goto fail;
	}
	if (ram_make(c, memfd, e) < 0)
		goto fail;
	ram = true;
	if (pipe2(pe, O_CLOEXEC) < 0 || pipe2(pp, O_CLOEXEC) < 0) {
		verr_sys(e, "ERR_SYSTEM", NULL, "pipe");
		goto fail;
	}
	argv = qemu_argv(c);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* Detach: an intermediate process starts a session, forks QEMU and
	 * exits, so QEMU belongs to no one's session and init reaps it. */
	pid_t mid = fork();
	if (mid == 0) {
		setsid();
		pid_t q = fork();
		if (q == 0) {
			dup2(lfd, 2);
			exec_vmm(c, argv, fds, pe[1]);
		}
		(void)!write(pp[1], &q, sizeof q);
		_exit(q < 0);
	}
	close(pe[1]);
	close(pp[1]);
	pe[1] = pp[1] = -1;
	/* QEMU has its copies: ours of the listening QMP socket would keep it
	 * answering connections nobody serves if QEMU died. */
	close_fds(fds);
	if (mid < 0 || read(pp[0], &qpid, sizeof qpid) != (ssize_t)sizeof qpid || qpid <= 0) {
		if (mid > 0)
			waitpid(mid, NULL, 0);
		verr_sys(e, "ERR_SYSTEM", NULL, "fork");
		goto fail;
	}
	waitpid(mid, NULL, 0);
	long long qstart = proc_start_time(qpid);
	/* Started once QMP answers query-status with "running": QEMU is in
	 * its main loop with every device set up.  Failed if it is gone
	 * first (exec_vmm's message, or QEMU's last log line). */
	bool up = false;
	for (int i = 0; i < 1000 && !up; i++) {
		int fd = qmp_open(qmp, 10);
		if (fd >= 0) {
			up = qmp_call(fd, "query-status", c->incoming ? "\"inmigrate\"" : "\"running\"");
			close(fd);
		}
		if (!up) {
			if (proc_start_time(qpid) != qstart || zombie(qpid))
				break;
			poll(NULL, 0, 10);
		}
	}
	char msg[512] = "";
	fcntl(pe[0], F_SETFL, fcntl(pe[0], F_GETFL) | O_NONBLOCK);
	ssize_t mn = read(pe[0], msg, sizeof msg - 1);
	if (mn > 0) {
		msg[mn] = 0;
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VMM_START", "see vmsan doctor", "%s", msg);
		goto fail;
	}
	if (!up) {
		kill(qpid, SIGKILL);
		log_tail(dirfd, "vmm.log", msg, sizeof msg);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VMM_START", "see the VM's vmm.log", "QEMU did not start: %s", msg);
		goto fail;
	}
	/* Restoring: the device state in (the guest's RAM is already in
	 * place, x-ignore-shared on both sides), then the vCPUs on. */
	if (c->incoming) {
		char err[512] = "", buf[4096];
		int qfd = qmp_open(qmp, 30);
		bool ok = qfd >= 0 &&
			  qmp_do(qfd, "{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":"
				      "[{\"capability\":\"x-ignore-shared\",\"state\":true}]}}", buf, sizeof buf) &&
			  qmp_send_fd(qfd, statefd, "vmsan-state") &&
			  qmp_do(qfd, "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"fd:vmsan-state\"}}",
				 buf, sizeof buf);
		if (!ok)
			snprintf(err, sizeof err, "QMP refused the incoming migration: %.300s", buf);
		else if (qmp_migration_done(qfd, 120, err, sizeof err))
			ok = qmp_do(qfd, "{\"execute\":\"cont\"}", buf, sizeof buf) &&
			     qmp_call(qfd, "query-status", "\"running\"");
		else
			ok = false;
		if (qfd >= 0)
			close(qfd);
		if (!ok) {
			kill(qpid, SIGKILL);
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT_RESTORE", "see the VM's vmm.log",
				 "restoring %s: %s", c->incoming, err[0] ? err : "QEMU did not resume");
			goto fail;
		}
	}
	/* QEMU writes no pid file (it may open nothing): we do. */
	if (write_vmm_pid(who, dirfd, qpid, e) < 0)
		goto fail;
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	char console[PATH_MAX];
	run_path(c, "console.log", console, sizeof console);
	close(dirfd);
	close(lfd);
	close(pe[0]);
	close(pp[0]);
	if (statefd >= 0)
		close(statefd);
	if (memfd >= 0)
		close(memfd);
	return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s, s:s, s:f, s:o}", "vmm", "qemu", "accel",
			 c->kvm ? "kvm" : "tcg", "pid", (json_int_t)qpid, "startTime", (json_int_t)qstart,
			 "uid", (json_int_t)c->uid, "gid", (json_int_t)c->gid, "console", console, "qmpSocket",
			 qmp, "log", log, "startMs", ms, "argv", argv);
fail:
	close_fds(fds);
	int keep = errno;
	if (ram)
		ram_remove(c->id, who);
	if (statefd >= 0)
		close(statefd);
	if (memfd >= 0)
		close(memfd);
	if (dirfd >= 0) {
		unlinkat(dirfd, "qmp.sock", 0);
		close(dirfd);
	}
	for (int i = 0; i < 2; i++) {
		if (pe[i] >= 0)
			close(pe[i]);
		if (pp[i] >= 0)
			close(pp[i]);
	}
	if (lfd >= 0)
		close(lfd);
	json_decref(argv);
	errno = keep;
	return NULL;
}

/* ---- start (Firecracker) ----------------------------------------------- */

/* One request on Firecracker's API socket; the HTTP status (fault message
 * in fault), or -1 when the socket does not answer. */
static int fc_http(const char *sock, const char *method, const char *path, const char *body, char *fault,
		   size_t fn)
{
	int fd = unix_connect(sock, 10);
	if (fd < 0)
		return -1;
	char head[512], resp[4096];
	size_t bl = body ? strlen(body) : 0;
	int hn = snprintf(head, sizeof head,
			  "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
			  "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", method, path, bl);
	int status = -1;
	if (write(fd, head, (size_t)hn) == hn &&
	    (!bl || write(fd, body, bl) == (ssize_t)bl)) {
		size_t got = 0;
		while (got < sizeof resp - 1) {
			ssize_t r = read(fd, resp + got, sizeof resp - 1 - got);
			if (r <= 0)
				break;
			got += (size_t)r;
			resp[got] = 0;
			char *end = strstr(resp, "\r\n\r\n");
			if (end) {
				const char *cl = strcasestr(resp, "content-length:");
				size_t want = cl ? (size_t)atol(cl + 15) : 0;
				if (got >= (size_t)(end + 4 - resp) + want)
					break;
			}
		}
		resp[got] = 0;
		if (got > 12 && !strncmp(resp, "HTTP/1.1 ", 9))
			status = atoi(resp + 9);
		const char *fm = strstr(resp, "\"fault_message\"");
		snprintf(fault, fn, "%s", fm ? fm : "");
	}
	close(fd);
	return status;
}

/* The jail root chrootBase/<binary name>/<id>/root, made and opened one
 * directory at a time below the caller's chrootBase, never through a
 * symlink (the caller owns the directories on the way). */
static int jail_root(const struct vmcfg *c, const struct caller *who, struct verr *e)
{
	int fd = open_owned(who, "chrootBase", c->chroot_base, O_RDONLY, true, e);
	const char *parts[] = { strrchr(c->fc_bin, '/') + 1, c->id, "root" };
	for (size_t i = 0; fd >= 0 && i < 3; i++) {
		if (!strcmp(parts[i], ".") || !strcmp(parts[i], "..") ||
		    (mkdirat(fd, parts[i], 0755) < 0 && errno != EEXIST)) {
			verr_sys(e, "ERR_JAIL", NULL, "cannot create %s in the jail of %s", parts[i], c->id);
			close(fd);
			return -1;
		}
		int next = openat(fd, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = next;
		if (fd < 0)
			verr_sys(e, "ERR_JAIL", NULL, "cannot open %s in the jail of %s", parts[i], c->id);
	}
	return fd;
}

/* Links the file open as fd into the jail root (rootfd) as name: the very
 * file that was checked, whatever its path now names. */
static int jail_link(int fd, int rootfd, const char *name, struct verr *e)
{
	char from[64];
	snprintf(from, sizeof from, "/proc/self/fd/%d", fd);
	unlinkat(rootfd, name, 0);
	if (linkat(AT_FDCWD, from, rootfd, name, AT_SYMLINK_FOLLOW) < 0) {
		if (errno == EXDEV)
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_JAIL", "put the jail base on the file system of VMSAN_DIR",
				 "cannot hard-link %s into the jail: another file system", name);
		else
			verr_sys(e, "ERR_JAIL", NULL, "cannot link %s into the jail", name);
		return -1;
	}
	return 0;
}

/* A snapshot's state and memory, copied into the jail for Firecracker's
 * uid (copies, not links: handing the snapshot's own files to that uid
 * would change their owner). */
static int jail_snapshot(const struct vmcfg *c, const struct caller *who, int rfd, struct verr *e)
{
	static const char *const from[] = { "state", "memory" }, *const to[] = { "snapshot.state", "snapshot.mem" };
	for (int i = 0; i < 2; i++) {
		char p[PATH_MAX + 16];
		struct stat st;
		snprintf(p, sizeof p, "%s/%s", c->incoming, from[i]);
		int in = open_owned(who, "snapshot file", p, O_RDONLY, false, e), out = -1;
		if (in < 0)
			return -1;
		unlinkat(rfd, to[i], 0);
		out = openat(rfd, to[i], O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		int rc = out < 0 || fchown(out, (uid_t)c->uid, (gid_t)c->gid) < 0 || fstat(in, &st) < 0 ? -1 : 0;
		if (rc < 0)
			verr_sys(e, "ERR_JAIL", NULL, "cannot put %s into the jail", to[i]);
		else
			rc = copy_sparse(in, out, (uint64_t)st.st_size, "copying the snapshot into the jail", e);
		close(in);
		if (out >= 0)
			close(out);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static json_t *start_firecracker(const struct vmcfg *c, const struct caller *who, struct verr *e)
{
	int fds[FD_COUNT], dirfd = -1, kfd = -1, rc;
	char root[PATH_MAX], sock[PATH_MAX + 32], pidf[PATH_MAX + 32], fault[512] = "";
	json_t *calls = NULL, *jail = NULL;
	pid_t fpid = -1;
	for (int i = 0; i < FD_COUNT; i++)
		fds[i] = -1;
	if (access(c->jailer_bin, X_OK) < 0 || access(c->fc_bin, X_OK) < 0) {
		verr_sys(e, "ERR_MISSING_TOOL", "install Firecracker and its jailer, or use vmm qemu",
			 "cannot run %s", access(c->jailer_bin, X_OK) < 0 ? c->jailer_bin : c->fc_bin);
		return NULL;
	}
	if ((dirfd = open_owned(who, "runDir", c->run_dir, O_RDONLY, true, e)) < 0 ||
	    (fds[FD_VM_RW] = open_owned(who, "vmDisk", c->vm_disk, O_RDWR, false, e)) < 0 ||
	    (c->image_disk && (fds[FD_IMAGE] = open_owned(who, "imageDisk", c->image_disk, O_RDONLY, false, e)) < 0))
		goto fail;
	kfd = open(c->kernel, O_RDONLY | O_CLOEXEC);
	if (kfd < 0) {
		verr_sys(e, "ERR_FILE", NULL, "cannot open kernel %s", c->kernel);
		goto fail;
	}
	/* The jail root, with the kernel and disks hard-linked in: the jailer
	 * chroots Firecracker there as uid:gid, which must be able to use
	 * them (the VM disk is handed to that uid when root owns it). */
	fc_chroot(c, root, sizeof root);
	int rfd = jail_root(c, who, e);
	if (rfd < 0)
		goto fail;
	/* a previous Firecracker's pid file and API socket (a stop, then a
	 * start; or a restore) would be taken for the new one's */
	{
		char pidname[PATH_MAX];
		snprintf(pidname, sizeof pidname, "%s.pid", strrchr(c->fc_bin, '/') + 1);
		unlinkat(rfd, pidname, 0);
		int run = openat(rfd, "run", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (run >= 0) {
			unlinkat(run, "firecracker.socket", 0);
			close(run);
		}
	}
	rc = jail_link(kfd, rfd, "vmlinux", e) < 0 || jail_link(fds[FD_VM_RW], rfd, "vm.ext4", e) < 0 ||
	     (c->image_disk && jail_link(fds[FD_IMAGE], rfd, "image.ext4", e) < 0) ||
	     (c->incoming && jail_snapshot(c, who, rfd, e) < 0);
	close(rfd);
	if (rc)
		goto fail;
	if (who->root && fchown(fds[FD_VM_RW], (uid_t)c->uid, (gid_t)c->gid) < 0) {
		verr_sys(e, "ERR_JAIL", NULL, "cannot give the VM disk to uid %lld", c->uid);
		goto fail;
	}
	int lfd = run_file(who, dirfd, "vmm.log", O_WRONLY | O_APPEND, e);
	if (lfd < 0)
		goto fail;
	jail = fc_jailer_argv(c);
	size_t n = json_array_size(jail);
	const char **av = calloc(n + 1, sizeof *av);
	for (size_t i = 0; av && i < n; i++)
		av[i] = json_string_value(json_array_get(jail, i));
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, lfd, 2);
	pid_t jp;
	static char path_env[] = "PATH=/usr/local/bin:/usr/bin:/bin";
	char *envp[] = { path_env, NULL };
	rc = av ? posix_spawn(&jp, av[0], &fa, NULL, (char *const *)av, envp) : ENOMEM;
	posix_spawn_file_actions_destroy(&fa);
	free(av);
	close(lfd);
	int st = 0;
	if (rc == 0)
		while (waitpid(jp, &st, 0) < 0 && errno == EINTR)
			;
	if (rc || !WIFEXITED(st) || WEXITSTATUS(st)) {
		char msg[512];
		log_tail(dirfd, "vmm.log", msg, sizeof msg);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VMM_START", "see the VM's vmm.log", "the jailer failed: %s",
			 rc ? strerror(rc) : msg);
		goto fail;
	}
	/* --daemonize: the jailer has left; its pid file names Firecracker. */
	snprintf(pidf, sizeof pidf, "%s/%s.pid", root, strrchr(c->fc_bin, '/') + 1);
	snprintf(sock, sizeof sock, "%s/" FC_API_SOCK, root);
	for (int i = 0; i < 500; i++) {
		char buf[32] = "";
		int pf = open(pidf, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (pf >= 0) {
			ssize_t r = read(pf, buf, sizeof buf - 1);
			close(pf);
			buf[r > 0 ? r : 0] = 0;
			fpid = (pid_t)atoi(buf);
		}
		struct stat ss;
		if (fpid > 1 && stat(sock, &ss) == 0 && S_ISSOCK(ss.st_mode))
			break;
		poll(NULL, 0, 10);
	}
	if (fpid <= 1 || proc_start_time(fpid) < 0) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VMM_START", "see the VM's vmm.log",
			 "Firecracker did not come up (no pid file or API socket in %s)", root);
		goto fail;
	}
	long long fstart = proc_start_time(fpid);
	/* The API calls, in order; the first refusal ends it. */
	calls = fc_calls(c);
	size_t i;
	json_t *call;
	json_array_foreach(calls, i, call) {
		char *body = json_dumps(json_object_get(call, "body"), JSON_COMPACT);
		int code = fc_http(sock, json_string_value(json_object_get(call, "method")),
				   json_string_value(json_object_get(call, "path")), body, fault, sizeof fault);
		free(body);
		if (code < 200 || code > 299) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_VMM_START", "see the VM's vmm.log",
				 "Firecracker refused %s %s (HTTP %d): %s", json_string_value(json_object_get(call, "method")),
				 json_string_value(json_object_get(call, "path")), code, fault[0] ? fault : "no answer");
			kill(fpid, SIGKILL);
			goto fail;
		}
	}
	if (write_vmm_pid(who, dirfd, fpid, e) < 0)
		goto fail;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	close(dirfd);
	close(kfd);
	close_fds(fds);
	return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s, s:f, s:o, s:o}", "vmm", "firecracker", "accel",
			 "kvm", "pid", (json_int_t)fpid, "startTime", fstart, "uid", (json_int_t)c->uid, "gid",
			 (json_int_t)c->gid, "chroot", root, "apiSocket", sock, "startMs", ms, "jailer", jail, "api",
			 calls);
fail:
	if (dirfd >= 0)
		close(dirfd);
	if (kfd >= 0)
		close(kfd);
	close_fds(fds);
	json_decref(calls);
	json_decref(jail);
	return NULL;
}

static json_t *op_start(struct jr *r, struct verr *e)
{
	struct vmcfg c;
	if (read_cfg(r, &c, e) || jr_end(r))
		return NULL;
	if (geteuid() != 0) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_PERMISSION", "run it through vmsan (sudo), or as root",
			 "vmsan-fc start needs root");
		return NULL;
	}
	struct caller who;
	get_caller(&who);
	/* A user's VMM runs as that user: sudo must not make it anyone else. */
	if (!who.root && ((uid_t)c.uid != who.uid || (gid_t)c.gid != who.gid)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_PERMISSION", "give your own uid and gid",
			 "the VMM of uid %u runs as %u:%u, not %lld:%lld", (unsigned)who.uid, (unsigned)who.uid,
			 (unsigned)who.gid, c.uid, c.gid);
		return NULL;
	}
	if (!strcmp(c.vmm, "firecracker"))
		return start_firecracker(&c, &who, e);
	return start_qemu(&c, &who, e);
}

/* ---- status, stop, kill ------------------------------------------------ */

struct proc { long long pid, start; const char *id; };

static int read_proc(struct jr *r, struct proc *p)
{
	p->id = jr_string(r, "id", JR_REQUIRED, valid_vm_id);
	jr_int(r, "pid", JR_REQUIRED, 2, INT_MAX, &p->pid);
	jr_int(r, "startTime", JR_REQUIRED, 0, LLONG_MAX, &p->start);
	return verr_isset(r->e) ? -1 : 0;
}

/* The same process, not a later one with a recycled pid. */
static bool alive(const struct proc *p)
{
	return proc_start_time((long)p->pid) == p->start;
}

/* Root signals only what is this VM's VMM, and for a user only their own:
 * its argv names vmsan-<id> (QEMU's -name; the jailer's --id) and it runs
 * as the caller (any uid but 0 for root).  Sets e when it is not. */
static bool our_vmm(const struct proc *p, const struct caller *who, struct verr *e)
{
	char path[64], buf[8192], qemu_name[160];
	snprintf(path, sizeof path, "/proc/%lld/cmdline", p->pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (fd >= 0)
		close(fd);
	struct stat st;
	snprintf(path, sizeof path, "/proc/%lld", p->pid);
	if (n <= 0 || stat(path, &st) < 0)
		return false;   /* gone: nothing to signal */
	buf[n] = 0;
	snprintf(qemu_name, sizeof qemu_name, "vmsan-%s,process=vmsan-%s", p->id, p->id);
	bool named = false;
	for (char *a = buf, *prev = NULL; a < buf + n; prev = a, a += strlen(a) + 1)
		if ((prev && !strcmp(prev, "-name") && !strcmp(a, qemu_name)) ||
		    (prev && !strcmp(prev, "--id") && !strcmp(a, p->id)))
			named = true;
	if (!named || st.st_uid == 0 || (!who->root && st.st_uid != who->uid)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_NOT_VMM", "give the pid and start time vmsan-fc start replied",
			 "process %lld is not the VMM of %s%s", p->pid, p->id,
			 named && !who->root ? " that you own" : "");
		return false;
	}
	return true;
}

/* our_vmm for an operation that needs the VMM running: a VMM that is gone
 * is ERR_VM_NOT_RUNNING. */
static bool running_vmm(const struct proc *p, const struct caller *who, struct verr *e)
{
	if (our_vmm(p, who, e))
		return true;
	if (!verr_isset(e))
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VM_NOT_RUNNING", "start it first", "%s is not running", p->id);
	return false;
}

static bool wait_gone(const struct proc *p, double seconds)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (!alive(p))
			return true;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 >= seconds)
			return false;
		poll(NULL, 0, 20);
	}
}

static json_t *op_status(struct jr *r, struct verr *e)
{
	struct proc p;
	if (read_proc(r, &p) || jr_end(r))
		return NULL;
	(void)e;
	return json_pack("{s:I, s:b}", "pid", (json_int_t)p.pid, "running", alive(&p));
}

/* One QMP command on a fresh connection; best effort. */
static int qmp_command(const char *sock, const char *cmd)
{
	int fd = qmp_open(sock, 2);
	if (fd < 0)
		return -1;
	int rc = qmp_call(fd, cmd, "\"return\"") ? 0 : -1;
	close(fd);
	return rc;
}

static json_t *op_stop(struct jr *r, struct verr *e)
{
	struct proc p;
	long long timeout = 10;
	read_proc(r, &p);
	const char *vmm = jr_string(r, "vmm", JR_REQUIRED, valid_vmm);
	const char *qmp = jr_string(r, "qmpSocket", JR_OPTIONAL, valid_abspath);
	const char *api = jr_string(r, "apiSocket", JR_OPTIONAL, valid_abspath);
	jr_int(r, "timeoutSec", JR_OPTIONAL, 0, 3600, &timeout);
	if (jr_end(r))
		return NULL;
	const char *how = "exited";
	bool fc = !strcmp(vmm, "firecracker");
	struct caller who;
	get_caller(&who);
	if (!alive(&p))
		how = "not running";
	else if (!our_vmm(&p, &who, e))
		return NULL;
	else if (fc && api && (fc_http(api, "PUT", "/actions", "{\"action_type\":\"SendCtrlAltDel\"}",
				       (char[256]){ 0 }, 256) / 100 == 2) && wait_gone(&p, (double)timeout)) {
		/* Firecracker's ctrl-alt-del: vmsan-init powers off, the VMM exits */
		how = "ctrl-alt-del";
	} else if (fc || !wait_gone(&p, (double)timeout)) {
		/* The guest did not power off in time: ask QEMU to quit, then
		 * kill it. */
		how = "quit";
		if (fc || !qmp || qmp_command(qmp, "quit") < 0 || !wait_gone(&p, 3)) {
			how = "killed";
			kill((pid_t)p.pid, SIGKILL);
			wait_gone(&p, 5);
		}
	}
	bool running = alive(&p);
	if (!running)
		ram_remove(p.id, &who);   /* the guest's RAM went with it */
	return json_pack("{s:I, s:s, s:b}", "pid", (json_int_t)p.pid, "how", how, "running", running);
}

static json_t *op_kill(struct jr *r, struct verr *e)
{
	struct proc p;
	if (read_proc(r, &p) || jr_end(r))
		return NULL;
	struct caller who;
	get_caller(&who);
	bool was = alive(&p);
	if (was && !our_vmm(&p, &who, e))
		return NULL;
	if (was && kill((pid_t)p.pid, SIGKILL) < 0 && errno != ESRCH) {
		verr_sys(e, "ERR_SYSTEM", NULL, "kill %lld", p.pid);
		return NULL;
	}
	bool gone = wait_gone(&p, 5);
	if (gone)
		ram_remove(p.id, &who);
	return json_pack("{s:I, s:b, s:b}", "pid", (json_int_t)p.pid, "wasRunning", was, "running", !gone);
}

/* The "firecracker" object of a request that names a running VM's jail:
 * binary and chrootBase into c (jailer allowed, unused); 0, or -1 with e
 * set. */
static int read_fc_jail(json_t *fc, struct vmcfg *c, struct verr *e)
{
	struct jr f;
	jr_init(&f, fc, "request.firecracker", e);
	c->fc_bin = jr_string(&f, "binary", JR_REQUIRED, valid_abspath);
	c->chroot_base = jr_string(&f, "chrootBase", JR_REQUIRED, valid_abspath);
	jr_string(&f, "jailer", JR_OPTIONAL, valid_abspath);
	return jr_end(&f) ? -1 : 0;
}

/* ---- cleanup ------------------------------------------------------------- */

/* Removes a Firecracker VM's jail (chrootBase/<binary name>/<id>), which
 * start made as root; the base must be the caller's.  Idempotent. */
static json_t *op_cleanup(struct jr *r, struct verr *e)
{
	const char *id = jr_string(r, "id", JR_REQUIRED, valid_vm_id);
	json_t *fc = jr_object(r, "firecracker", JR_OPTIONAL);
	if (jr_end(r))
		return NULL;
	struct caller who;
	get_caller(&who);
	/* QEMU's: the guest's RAM file, should a VMM have gone without us
	 * (create killed before the pid file was written). */
	char rp[96];
	ram_path(id, rp, sizeof rp);
	bool had = access(rp, F_OK) == 0;
	ram_remove(id, &who);
	if (!fc)
		return json_pack("{s:s, s:b}", "id", id, "removed", had);
	struct vmcfg c = { .id = id };
	if (read_fc_jail(fc, &c, e) < 0)
		return NULL;
	const char *bin = c.fc_bin, *base = c.chroot_base;
	int bfd = open_owned(&who, "chrootBase", base, O_RDONLY, true, e);
	if (bfd < 0) {
		if (verr_take(e, "ERR_FILE") && errno == ENOENT)
			return json_pack("{s:s, s:b}", "id", id, "removed", 0);
		if (!verr_isset(e))
			verr_sys(e, "ERR_FILE", NULL, "cannot open chrootBase %s", base);
		return NULL;
	}
	const char *exe = strrchr(bin, '/') + 1;
	int xfd = openat(bfd, exe, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (xfd >= 0) {
		had = faccessat(xfd, id, F_OK, AT_SYMLINK_NOFOLLOW) == 0 || had;
		rm_tree_at(xfd, id);
		close(xfd);
	}
	close(bfd);
	return json_pack("{s:s, s:b}", "id", id, "removed", had);
}

/* ---- snapshot (QEMU) ------------------------------------------------------ */

/* A file of the snapshot directory, new, for the caller. */
static int snap_file(const struct caller *who, int dirfd, const char *name, struct verr *e)
{
	int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || fchown(fd, who->uid, who->gid) < 0) {
		verr_sys(e, "ERR_SNAPSHOT", "give an empty directory of yours", "cannot create %s in the snapshot directory",
			 name);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static long long allocated(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? (long long)st.st_blocks * 512 : -1;
}

/* The VM paused, its device state streamed over QMP into dir/state (fd:,
 * the guest's RAM left out: x-ignore-shared), its RAM file and its disk
 * copied (holes stay holes) into dir/memory and dir/disk.ext4, then
 * resumed unless asked not to.  A VM that was running is resumed on
 * failure too. */
static json_t *snapshot_firecracker(const struct proc *p, const struct caller *who, json_t *fc, const char *disk,
				    const char *dir, bool resume, struct verr *e);

static json_t *op_snapshot(struct jr *r, struct verr *e)
{
	struct proc p;
	bool resume = true;
	read_proc(r, &p);
	const char *vmm = jr_string(r, "vmm", JR_OPTIONAL, valid_vmm);
	const char *qmp = jr_string(r, "qmpSocket", vmm && !strcmp(vmm, "firecracker") ? JR_OPTIONAL : JR_REQUIRED,
				    valid_abspath);
	json_t *fc = jr_object(r, "firecracker", JR_OPTIONAL);
	const char *disk = jr_string(r, "vmDisk", JR_REQUIRED, valid_abspath);
	const char *dir = jr_string(r, "dir", JR_REQUIRED, valid_abspath);
	jr_bool(r, "resume", JR_OPTIONAL, &resume);
	if (jr_end(r))
		return NULL;
	struct caller who;
	get_caller(&who);
	if (vmm && !strcmp(vmm, "firecracker")) {
		if (!fc) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "add the firecracker object",
				 "request.firecracker (binary, chrootBase) is required for vmm firecracker");
			return NULL;
		}
		return snapshot_firecracker(&p, &who, fc, disk, dir, resume, e);
	}
	if (!running_vmm(&p, &who, e))
		return NULL;
	int dirfd = -1, statefd = -1, memfd = -1, diskfd = -1, ramfd = -1, vdfd = -1, qfd = -1;
	bool paused = false;
	json_t *reply = NULL;
	char buf[8192], err[512] = "", rp[96];
	struct timespec t0, t1, t2;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((dirfd = open_owned(&who, "dir", dir, O_RDONLY, true, e)) < 0 ||
	    (vdfd = open_owned(&who, "vmDisk", disk, O_RDONLY, false, e)) < 0)
		goto out;
	/* the RAM file: the VMM's (root's VMMs run as a uid of their own) */
	ram_path(p.id, rp, sizeof rp);
	struct stat rs, ps;
	char proc[48];
	snprintf(proc, sizeof proc, "/proc/%lld", p.pid);
	if ((ramfd = open(rp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 || fstat(ramfd, &rs) < 0 ||
	    stat(proc, &ps) < 0 || rs.st_uid != ps.st_uid) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", "restart the VM (vmsan stop, vmsan start)",
			 "%s has no RAM file of its VMM's (%s): was it started before snapshots existed?", p.id, rp);
		goto out;
	}
	if ((statefd = snap_file(&who, dirfd, "state", e)) < 0 || (memfd = snap_file(&who, dirfd, "memory", e)) < 0 ||
	    (diskfd = snap_file(&who, dirfd, "disk.ext4", e)) < 0)
		goto out;
	if ((qfd = qmp_open(qmp, 30)) < 0) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", "see the VM's vmm.log", "QMP does not answer on %s", qmp);
		goto out;
	}
	if (!qmp_do(qfd, "{\"execute\":\"stop\"}", buf, sizeof buf)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", NULL, "QEMU would not pause: %.200s", buf);
		goto out;
	}
	paused = true;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!qmp_do(qfd, "{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":"
			 "[{\"capability\":\"x-ignore-shared\",\"state\":true}]}}", buf, sizeof buf) ||
	    !qmp_send_fd(qfd, statefd, "vmsan-state") ||
	    !qmp_do(qfd, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"fd:vmsan-state\"}}", buf, sizeof buf)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", NULL, "QEMU refused to save the VM: %.200s", buf);
		goto out;
	}
	if (!qmp_migration_done(qfd, 300, err, sizeof err)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", "see the VM's vmm.log", "saving the VM: %s", err);
		goto out;
	}
	if (copy_sparse(ramfd, memfd, (uint64_t)rs.st_size, "copying the guest's memory", e) < 0 ||
	    copy_sparse(vdfd, diskfd, (uint64_t)lseek(vdfd, 0, SEEK_END), "copying the VM's disk", e) < 0 ||
	    fsync(statefd) < 0 || fsync(memfd) < 0 || fsync(diskfd) < 0) {
		if (!verr_isset(e))
			verr_sys(e, "ERR_IO", NULL, "writing the snapshot");
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t2);
	reply = json_pack("{s:s, s:I, s:I, s:I, s:b, s:f, s:f}", "id", p.id, "stateBytes",
			  (json_int_t)lseek(statefd, 0, SEEK_END), "memoryBytes", (json_int_t)allocated(memfd),
			  "diskBytes", (json_int_t)allocated(diskfd), "resumed", resume,
			  "pausedMs", (double)(t2.tv_sec - t1.tv_sec) * 1e3 + (double)(t2.tv_nsec - t1.tv_nsec) / 1e6,
			  "ms", (double)(t2.tv_sec - t0.tv_sec) * 1e3 + (double)(t2.tv_nsec - t0.tv_nsec) / 1e6);
out:
	if (paused && (resume || !reply) && !qmp_do(qfd, "{\"execute\":\"cont\"}", buf, sizeof buf) && reply) {
		json_decref(reply);
		reply = NULL;
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", "see the VM's vmm.log",
			 "the snapshot was taken but QEMU would not resume: %.200s", buf);
	}
	if (!reply && dirfd >= 0) {
		/* no partial snapshot: what we made goes */
		unlinkat(dirfd, "state", 0);
		unlinkat(dirfd, "memory", 0);
		unlinkat(dirfd, "disk.ext4", 0);
	}
	int fds[] = { qfd, dirfd, statefd, memfd, diskfd, ramfd, vdfd };
	for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return reply;
}

/* Firecracker: PATCH /vm Paused, PUT /snapshot/create into its jail,
 * the files copied out to dir (state, memory) with the disk, the jail's
 * copies removed, PATCH /vm Resumed unless asked not to. */
static json_t *snapshot_firecracker(const struct proc *p, const struct caller *who, json_t *fc, const char *disk,
				    const char *dir, bool resume, struct verr *e)
{
	struct vmcfg c = { .id = p->id };
	if (read_fc_jail(fc, &c, e) < 0)
		return NULL;
	if (!running_vmm(p, who, e))
		return NULL;
	char root[PATH_MAX], sock[PATH_MAX + 32], fault[512] = "";
	fc_chroot(&c, root, sizeof root);
	snprintf(sock, sizeof sock, "%s/" FC_API_SOCK, root);
	int dirfd = -1, rfd = -1, vdfd = -1, out[3] = { -1, -1, -1 }, code;
	bool paused = false;
	json_t *reply = NULL;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((dirfd = open_owned(who, "dir", dir, O_RDONLY, true, e)) < 0 ||
	    (vdfd = open_owned(who, "vmDisk", disk, O_RDONLY, false, e)) < 0)
		goto out;
	if ((rfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		verr_sys(e, "ERR_SNAPSHOT", NULL, "cannot open the jail %s", root);
		goto out;
	}
	if ((code = fc_http(sock, "PATCH", "/vm", "{\"state\":\"Paused\"}", fault, sizeof fault)) / 100 != 2) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", NULL, "Firecracker would not pause (HTTP %d): %s", code, fault);
		goto out;
	}
	paused = true;
	/* The files Firecracker writes, made here for its uid: the jail's
	 * root is root's. */
	struct stat ps;
	char proc[48];
	snprintf(proc, sizeof proc, "/proc/%lld", p->pid);
	if (stat(proc, &ps) < 0) {
		verr_sys(e, "ERR_SNAPSHOT", NULL, "Firecracker (pid %lld) is gone", p->pid);
		goto out;
	}
	for (int i = 0; i < 2; i++) {
		const char *n = i ? "snapshot.mem" : "snapshot.state";
		unlinkat(rfd, n, 0);
		int fd = openat(rfd, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 || fchown(fd, ps.st_uid, ps.st_gid) < 0) {
			verr_sys(e, "ERR_SNAPSHOT", NULL, "cannot make %s in the jail", n);
			if (fd >= 0)
				close(fd);
			goto out;
		}
		close(fd);
	}
	if ((code = fc_http(sock, "PUT", "/snapshot/create",
			    "{\"snapshot_type\":\"Full\",\"snapshot_path\":\"snapshot.state\",\"mem_file_path\":\"snapshot.mem\"}",
			    fault, sizeof fault)) / 100 != 2) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", NULL, "Firecracker refused the snapshot (HTTP %d): %s", code,
			 fault);
		goto out;
	}
	static const char *const from[] = { "snapshot.state", "snapshot.mem" }, *const to[] = { "state", "memory" };
	for (int i = 0; i < 3; i++) {
		if ((out[i] = snap_file(who, dirfd, i < 2 ? to[i] : "disk.ext4", e)) < 0)
			goto out;
		int in = i < 2 ? openat(rfd, from[i], O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : dup(vdfd);
		struct stat st;
		int rc = in < 0 || fstat(in, &st) < 0 ? -1 : copy_sparse(in, out[i], (uint64_t)st.st_size,
									 "copying the snapshot out of the jail", e);
		if (in >= 0)
			close(in);
		if (rc < 0 || fsync(out[i]) < 0) {
			if (!verr_isset(e))
				verr_sys(e, "ERR_SNAPSHOT", NULL, "cannot copy %s", i < 2 ? from[i] : "the VM disk");
			goto out;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	reply = json_pack("{s:s, s:I, s:I, s:I, s:b, s:f}", "id", p->id, "stateBytes",
			  (json_int_t)lseek(out[0], 0, SEEK_END), "memoryBytes", (json_int_t)allocated(out[1]),
			  "diskBytes", (json_int_t)allocated(out[2]), "resumed", resume, "ms",
			  (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
out:
	if (rfd >= 0) {
		unlinkat(rfd, "snapshot.state", 0);
		unlinkat(rfd, "snapshot.mem", 0);
		close(rfd);
	}
	if (paused && (resume || !reply) &&
	    fc_http(sock, "PATCH", "/vm", "{\"state\":\"Resumed\"}", fault, sizeof fault) / 100 != 2 && reply) {
		json_decref(reply);
		reply = NULL;
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", NULL, "the snapshot was taken but Firecracker would not resume: %s",
			 fault);
	}
	if (!reply && dirfd >= 0) {
		unlinkat(dirfd, "state", 0);
		unlinkat(dirfd, "memory", 0);
		unlinkat(dirfd, "disk.ext4", 0);
	}
	for (int i = 0; i < 3; i++)
		if (out[i] >= 0)
			close(out[i]);
	if (dirfd >= 0)
		close(dirfd);
	if (vdfd >= 0)
		close(vdfd);
	return reply;
}

/* pause (QMP stop, Firecracker's PATCH /vm Paused) and resume (cont,
 * Resumed) of a running VM's vCPUs. */
static json_t *vcpus(struct jr *r, const char *cmd, struct verr *e)
{
	struct proc p;
	read_proc(r, &p);
	const char *qmp = jr_string(r, "qmpSocket", JR_OPTIONAL, valid_abspath);
	json_t *fc = jr_object(r, "firecracker", JR_OPTIONAL);
	if (jr_end(r))
		return NULL;
	if (!qmp == !fc) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", NULL,
			 "give qmpSocket (QEMU) or firecracker {binary, chrootBase}");
		return NULL;
	}
	struct caller who;
	get_caller(&who);
	if (!running_vmm(&p, &who, e))
		return NULL;
	if (fc) {
		struct vmcfg c = { .id = p.id };
		if (read_fc_jail(fc, &c, e) < 0)
			return NULL;
		char root[PATH_MAX], sock[PATH_MAX + 32], fault[512] = "";
		fc_chroot(&c, root, sizeof root);
		snprintf(sock, sizeof sock, "%s/" FC_API_SOCK, root);
		int code = fc_http(sock, "PATCH", "/vm", strcmp(cmd, "stop") ? "{\"state\":\"Resumed\"}" : "{\"state\":\"Paused\"}",
				   fault, sizeof fault);
		if (code / 100 != 2) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_VMM", NULL, "Firecracker refused PATCH /vm (HTTP %d): %s", code, fault);
			return NULL;
		}
		return json_pack("{s:s, s:b}", "id", p.id, "paused", !strcmp(cmd, "stop"));
	}
	if (qmp_command(qmp, cmd) < 0) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_QMP", "see the VM's vmm.log", "QEMU refused %s", cmd);
		return NULL;
	}
	return json_pack("{s:s, s:b}", "id", p.id, "paused", !strcmp(cmd, "stop"));
}

static json_t *op_pause(struct jr *r, struct verr *e)
{
	return vcpus(r, "stop", e);
}

static json_t *op_resume(struct jr *r, struct verr *e)
{
	return vcpus(r, "cont", e);
}

static const struct helper_op ops[] = {
	{ "plan", op_plan },
	{ "start", op_start },
	{ "status", op_status },
	{ "stop", op_stop },
	{ "kill", op_kill },
	{ "cleanup", op_cleanup },
	{ "snapshot", op_snapshot },
	{ "pause", op_pause },
	{ "resume", op_resume },
};

static const struct helper helper = {
	.name = "vmsan-fc",
	.summary = "plumbing (root): run a VM's VMM (Firecracker under its jailer, or QEMU microvm)",
	.usage =
	"usage: vmsan-fc OP [--verbose] < request.json\n"
	"\n"
	"  {\"op\":\"plan\"|\"start\", \"id\":ID, \"vmm\":\"qemu\"|\"firecracker\", \"kernel\":PATH,\n"
	"   \"vmDisk\":PATH, \"imageDisk\":PATH, \"runDir\":PATH, \"uid\":N, \"gid\":N,\n"
	"   \"vcpus\":N, \"memoryMib\":N, \"accel\":\"auto\"|\"kvm\"|\"tcg\", \"agentPort\":N,\n"
	"   \"network\":{\"netns\",\"tap\",\"mac\",\"guestIp\",\"gatewayIp\",\"prefixLen\",\"dns\":[...]},\n"
	"   \"firecracker\":{\"binary\",\"jailer\",\"chrootBase\"}}\n"
	"  {\"op\":\"status\"|\"kill\", \"id\":ID, \"pid\":N, \"startTime\":T}\n"
	"  {\"op\":\"stop\", \"id\":ID, \"vmm\":V, \"pid\":N, \"startTime\":T, \"qmpSocket\":PATH,\n"
	"   \"timeoutSec\":S, \"apiSocket\":PATH}\n"
	"  {\"op\":\"cleanup\", \"id\":ID, \"firecracker\":{\"binary\",\"chrootBase\"}}   the jail, RAM file go\n"
	"  {\"op\":\"snapshot\", \"id\":ID, \"pid\":N, \"startTime\":T, \"qmpSocket\":PATH,\n"
	"   \"vmDisk\":PATH, \"dir\":PATH, \"resume\":BOOL}   state, memory, disk.ext4 into dir\n"
	"  {\"op\":\"pause\"|\"resume\", \"id\":ID, \"pid\":N, \"startTime\":T, \"qmpSocket\":PATH}\n"
	"  start with \"incoming\":DIR restores a snapshot (QEMU)\n"
	"\n"
	"plan needs no privileges; the rest run as root (the sudoers rule install.sh\n"
	"writes), and the VMM itself as uid:gid, never root.  See vmsan-fc(8).\n",
	.ops = ops,
	.nops = sizeof(ops) / sizeof(*ops),
};

int main(int argc, char **argv)
{
	return helper_main(&helper, argc, argv);
}
