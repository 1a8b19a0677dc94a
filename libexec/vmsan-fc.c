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

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
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
	/* firecracker */
	const char *fc_bin, *jailer_bin, *chroot_base;
	/* resolved */
	bool kvm;
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
	c->kvm = !strcmp(c->accel, "kvm") || (!strcmp(c->accel, "auto") && access("/dev/kvm", R_OK | W_OK) == 0);
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
	char buf[PATH_MAX + 256], cmdline[2048], p[PATH_MAX];
	json_t *a = json_array();
#define ADD(s) json_array_append_new(a, json_string(s))
#define ADDF(...) (snprintf(buf, sizeof buf, __VA_ARGS__), ADD(buf))
	ADD(QEMU_BIN);
	ADD("-name");
	ADDF("vmsan-%s,process=vmsan-%s", c->id, c->id);
	ADD("-machine");
	ADD("microvm,x-option-roms=off,rtc=on,acpi=off");
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
	ADD("-serial");
	run_path(c, "console.log", p, sizeof p);
	ADDF("file:%s", p);
	ADD("-kernel");
	ADD(c->kernel);
	ADD("-append");
	kernel_cmdline(c, cmdline, sizeof cmdline);
	ADD(cmdline);
	ADD("-drive");
	ADDF("id=vm,file=%s,format=raw,if=none,discard=unmap", c->vm_disk);
	ADD("-device");
	ADD("virtio-blk-device,drive=vm");
	if (c->image_disk) {
		ADD("-drive");
		ADDF("id=image,file=%s,format=raw,if=none,readonly=on", c->image_disk);
		ADD("-device");
		ADD("virtio-blk-device,drive=image");
	}
	if (c->net) {
		/* vmsan-fc opens the TAP (as root, in the namespace) and hands
		 * QEMU the descriptor: QEMU needs no access to /dev/net/tun. */
		ADD("-netdev");
		ADD("tap,id=net0,fd=3");
		ADD("-device");
		ADDF("virtio-net-device,netdev=net0,mac=%s", c->mac);
	}
	ADD("-qmp");
	run_path(c, "qmp.sock", p, sizeof p);
	ADDF("unix:%s,server=on,wait=off", p);
	ADD("-pidfile");
	run_path(c, "vmm.pid", p, sizeof p);
	ADD(p);
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
	ADD("/run/firecracker.socket");
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

static int read_pidfile(const char *path, long *pid)
{
	char buf[32] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	char *end;
	long v = strtol(buf, &end, 10);
	if (v <= 0 || (*end && *end != '\n'))
		return -1;
	*pid = v;
	return 0;
}

/* The VMM's process: into the namespace, down to the uid, then exec. */
static void exec_vmm(const struct vmcfg *c, json_t *argv, int errfd)
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
	if (c->net) {
		/* TUNSETIFF would make a TAP that is not there: links are
		 * vmsan-net's to make, so a missing one is an error. */
		if (!if_nametoindex(c->tap)) {
			snprintf(msg, sizeof msg, "cannot open TAP %s%s%s: no such interface (vmsan-net setup makes it)",
				 c->tap, c->netns ? " in " : "", c->netns ? c->netns : "");
			goto fail;
		}
		int tfd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
		struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
		snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", c->tap);
		if (tfd < 0 || ioctl(tfd, TUNSETIFF, &ifr) < 0) {
			snprintf(msg, sizeof msg, "cannot open TAP %s%s%s: %s", c->tap, c->netns ? " in " : "",
				 c->netns ? c->netns : "", strerror(errno));
			goto fail;
		}
		/* fd 3, open across exec (dup2 onto itself would keep CLOEXEC) */
		if (tfd == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(tfd, 3) < 0) {
			snprintf(msg, sizeof msg, "TAP descriptor: %s", strerror(errno));
			goto fail;
		}
		if (tfd != 3)
			close(tfd);
	}
	gid_t g = (gid_t)c->gid;
	if (setgroups(1, &g) < 0 || setresgid(g, g, g) < 0 || setresuid((uid_t)c->uid, (uid_t)c->uid,
									(uid_t)c->uid) < 0) {
		snprintf(msg, sizeof msg, "cannot become uid %lld gid %lld: %s", c->uid, c->gid, strerror(errno));
		goto fail;
	}
	if (chdir(c->run_dir) < 0) {
		snprintf(msg, sizeof msg, "cannot enter %s as uid %lld: %s", c->run_dir, c->uid, strerror(errno));
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
static int qmp_open(const char *sock, int timeout)
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
	static const char caps[] = "{\"execute\":\"qmp_capabilities\"}\n";
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || !qmp_expect(fd, "\"QMP\"") ||
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

static json_t *start_qemu(const struct vmcfg *c, struct verr *e)
{
	char pidfile[PATH_MAX], log[PATH_MAX];
	run_path(c, "vmm.pid", pidfile, sizeof pidfile);
	run_path(c, "vmm.log", log, sizeof log);
	struct stat st;
	if (stat(c->run_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_RUN_DIR", "create it, owned by the VMM's uid",
			 "runDir %s is not a directory", c->run_dir);
		return NULL;
	}
	if (read_pidfile(pidfile, &(long){ 0 }) == 0 && unlink(pidfile) < 0) {
		verr_sys(e, "ERR_RUN_DIR", NULL, "cannot remove the old %s", pidfile);
		return NULL;
	}
	json_t *argv = qemu_argv(c);
	int pe[2];
	if (pipe2(pe, O_CLOEXEC) < 0) {
		json_decref(argv);
		verr_sys(e, "ERR_SYSTEM", NULL, "pipe");
		return NULL;
	}
	/* QEMU's own messages (before and after it daemonizes) go to vmm.log. */
	int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lfd >= 0 && fchown(lfd, (uid_t)c->uid, (gid_t)c->gid) < 0) {
		close(lfd);
		lfd = -1;
	}
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* Detach: an intermediate process starts a session, forks QEMU and
	 * exits, so QEMU belongs to no one's session and init reaps it. */
	int pp[2];
	if (pipe2(pp, O_CLOEXEC) < 0) {
		close(pe[0]);
		close(pe[1]);
		json_decref(argv);
		verr_sys(e, "ERR_SYSTEM", NULL, "pipe");
		return NULL;
	}
	pid_t mid = fork();
	if (mid == 0) {
		setsid();
		pid_t q = fork();
		if (q == 0) {
			close(pe[0]);
			close(pp[0]);
			close(pp[1]);
			if (lfd >= 0)
				dup2(lfd, 2);
			exec_vmm(c, argv, pe[1]);
		}
		(void)!write(pp[1], &q, sizeof q);
		_exit(q < 0);
	}
	close(pe[1]);
	close(pp[1]);
	if (lfd >= 0)
		close(lfd);
	pid_t qpid = -1;
	if (mid < 0 || read(pp[0], &qpid, sizeof qpid) != (ssize_t)sizeof qpid || qpid <= 0) {
		close(pp[0]);
		close(pe[0]);
		if (mid > 0)
			waitpid(mid, NULL, 0);
		json_decref(argv);
		verr_sys(e, "ERR_SYSTEM", NULL, "fork");
		return NULL;
	}
	close(pp[0]);
	waitpid(mid, NULL, 0);
	long long qstart = proc_start_time(qpid);
	/* Started once its QMP socket accepts a connection; failed if it is
	 * gone first (exec_vmm's message, or QEMU's last log line). */
	char qmp[PATH_MAX];
	run_path(c, "qmp.sock", qmp, sizeof qmp);
	bool up = false;
	for (int i = 0; i < 1000 && !up; i++) {
		/* The socket exists before QEMU is done: it answers commands
		 * only once its main loop runs, every device set up. */
		int fd = qmp_open(qmp, 10);
		if (fd >= 0) {
			up = qmp_call(fd, "query-status", "\"running\"");
			close(fd);
		}
		if (!up) {
			if (proc_start_time(qpid) != qstart)   /* gone (or not ours) */
				break;
			char statpath[64];
			snprintf(statpath, sizeof statpath, "/proc/%d/stat", (int)qpid);
			FILE *f = fopen(statpath, "re");
			char state = 0;
			if (f) {
				if (fscanf(f, "%*d %*s %c", &state) != 1)
					state = 0;
				fclose(f);
			}
			if (state == 'Z')
				break;
			poll(NULL, 0, 10);
		}
	}
	char msg[256] = "";
	int fl = fcntl(pe[0], F_GETFL);
	fcntl(pe[0], F_SETFL, fl | O_NONBLOCK);
	ssize_t mn = read(pe[0], msg, sizeof msg - 1);
	close(pe[0]);
	if (mn > 0) {
		msg[mn] = 0;
		json_decref(argv);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VMM_START", "see vmsan doctor", "%s", msg);
		return NULL;
	}
	long vmm_pid = 0;
	if (!up || read_pidfile(pidfile, &vmm_pid) < 0 || vmm_pid != qpid) {
		if (up)
			kill(qpid, SIGKILL);
		char tail[512] = "";
		int fd = open(log, O_RDONLY | O_CLOEXEC);
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
		json_decref(argv);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VMM_START", "see the VM's vmm.log", "QEMU did not start: %s",
			 last[0] ? last : "no message");
		return NULL;
	}
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	char console[PATH_MAX];
	run_path(c, "console.log", console, sizeof console);
	return json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:f, s:o}", "vmm", "qemu", "accel",
			 c->kvm ? "kvm" : "tcg", "pid", (json_int_t)vmm_pid, "startTime",
			 (json_int_t)proc_start_time(vmm_pid), "console", console, "qmpSocket", qmp, "log", log,
			 "startMs", ms, "argv", argv);
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
	if (!strcmp(c.vmm, "firecracker")) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_NOT_IMPLEMENTED", "use vmm qemu",
			 "starting Firecracker is not built yet (vmsan-fc plan shows what it will do)");
		return NULL;
	}
	return start_qemu(&c, e);
}

/* ---- status, stop, kill ------------------------------------------------ */

struct proc { long long pid, start; };

static int read_proc(struct jr *r, struct proc *p)
{
	jr_int(r, "pid", JR_REQUIRED, 2, INT_MAX, &p->pid);
	jr_int(r, "startTime", JR_REQUIRED, 0, LLONG_MAX, &p->start);
	return verr_isset(r->e) ? -1 : 0;
}

/* The same process, not a later one with a recycled pid. */
static bool alive(const struct proc *p)
{
	return proc_start_time((long)p->pid) == p->start;
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
	jr_int(r, "timeoutSec", JR_OPTIONAL, 0, 3600, &timeout);
	if (jr_end(r))
		return NULL;
	const char *how = "exited";
	if (!strcmp(vmm, "firecracker")) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_NOT_IMPLEMENTED", "use kill",
			 "stopping Firecracker (SendCtrlAltDel) is not built yet");
		return NULL;
	}
	if (!alive(&p))
		how = "not running";
	else if (!wait_gone(&p, (double)timeout)) {
		/* The guest did not power off in time: ask QEMU to quit, then
		 * kill it. */
		how = "quit";
		if (!qmp || qmp_command(qmp, "quit") < 0 || !wait_gone(&p, 3)) {
			how = "killed";
			kill((pid_t)p.pid, SIGKILL);
			wait_gone(&p, 5);
		}
	}
	return json_pack("{s:I, s:s, s:b}", "pid", (json_int_t)p.pid, "how", how, "running", alive(&p));
}

static json_t *op_kill(struct jr *r, struct verr *e)
{
	struct proc p;
	if (read_proc(r, &p) || jr_end(r))
		return NULL;
	bool was = alive(&p);
	if (was && kill((pid_t)p.pid, SIGKILL) < 0 && errno != ESRCH) {
		verr_sys(e, "ERR_SYSTEM", NULL, "kill %lld", p.pid);
		return NULL;
	}
	bool gone = wait_gone(&p, 5);
	return json_pack("{s:I, s:b, s:b}", "pid", (json_int_t)p.pid, "wasRunning", was, "running", !gone);
}

static const struct helper_op ops[] = {
	{ "plan", op_plan },
	{ "start", op_start },
	{ "status", op_status },
	{ "stop", op_stop },
	{ "kill", op_kill },
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
	"  {\"op\":\"status\"|\"kill\", \"pid\":N, \"startTime\":T}\n"
	"  {\"op\":\"stop\", \"vmm\":V, \"pid\":N, \"startTime\":T, \"qmpSocket\":PATH, \"timeoutSec\":S}\n"
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
