/* vmsan-fc: runs a VM's VMM.  Firecracker under its jailer where KVM and
 * Firecracker exist; QEMU's microvm machine elsewhere (KVM when present,
 * TCG otherwise).  Root (through the sudoers rule), except `plan`.
 *
 *   plan      what start would do, without doing it
 *   start     the VMM as an unprivileged uid in the VM's network namespace
 *   status    whether the VM's VMM still runs
 *   stop      waits up to timeoutSec for the VMM to end by itself (the
 *             guest was asked to power off), after Firecracker's
 *             SendCtrlAltDel; then QMP quit, then SIGKILL
 *   kill      SIGKILL, now
 *   cleanup   what start made that outlives the VMM (jail, RAM file, root's
 *             record) removed, and the id given up (vmsan rm)
 *   snapshot, pause, resume
 *   orphans   root's records whose VM directory is gone (the VMM killed,
 *             all of it removed) or whose VMM is dead (its RAM file and
 *             record removed): the caller's, root's all (vmsan gc)
 *
 * This file is the root core: it reads the request, knows who asked, and
 * finds everything else in root's own places.  The programs it runs and
 * where jails go come from the root configuration (lib/rootconf.c); a VM
 * id is its caller's (lib/claim.c); every later operation finds the VMM
 * through root's record of it (fc/record.c) and acts for its owner only;
 * the caller's files are opened with the caller's rights (lib/caller.c).
 * The VMMs themselves: fc/qemu.c, fc/firecracker.c.  vmsan-security(7)
 * lists every root operation and the test that attacks it. */
#define _GNU_SOURCE
#include "fc/fc.h"
#include "lib/kvmboot.h"
#include "lib/claim.h"
#include "lib/rootproc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- validation -------------------------------------------------------- */
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
	if (strlen(s) != 17 ||
	    sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &end) != 6)
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

/* A start or plan request: every field checked; program paths from conf. */
static int read_cfg(struct jr *r, struct vmcfg *c, const struct rootconf *conf, struct verr *e)
{
	memset(c, 0, sizeof *c);
	c->conf = conf;
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
	if (!strcmp(c->vmm, "firecracker") && c->vcpus != 1 && c->vcpus % 2) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "use 1 or an even number",
			 "Firecracker takes 1 or an even number of vCPUs, not %lld", c->vcpus);
		return -1;
	}
	if (!c->hostname)
		c->hostname = c->id;
	if (!c->accel)
		c->accel = "auto";
	/* --accel kvm gets the device's group as auto does */
	bool usable = kvm_for(c);
	c->kvm = !strcmp(c->accel, "kvm") || (!strcmp(c->accel, "auto") && usable);
	return 0;
}

/* KVM only where this kernel boots under it (kvmboot.h): auto falls back
 * to TCG, --accel kvm is refused with what was seen. */
static int kvm_apply(struct vmcfg *c, const struct kvm_boot *b, struct verr *e)
{
	if (b->boots)
		return 0;
	if (!strcmp(c->accel, "kvm")) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_KVM", "use --accel tcg, or auto (which falls back to TCG)",
			 "this guest kernel does not boot under KVM here: %s", b->detail);
		return -1;
	}
	c->kvm = false;
	c->kvm_refused = true;
	snprintf(c->kvm_why, sizeof c->kvm_why, "%s", b->detail);
	return 0;
}

/* The answer is root's, in KVM_BOOT_DIR (-1: not there); the kernel is
 * read as the caller. */
static int kvm_cache_open(const struct vmcfg *c, const struct caller *who, int *dir, struct verr *e)
{
	int k = caller_open(who, AT_FDCWD, c->kernel, O_RDONLY, 0, CALLER_REG, "kernel", e);

	*dir = k < 0 ? -1 : open(KVM_BOOT_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return k;
}

/* start: the check runs unless its answer is kept, its QEMU as
 * KVM_CHECK_UID (not the caller's uid: the answer is every user's) with
 * /dev/kvm's group where that is how the VMM gets the device. */
static int kvm_boots(struct vmcfg *c, const struct caller *who, struct verr *e)
{
	struct kvm_boot_as as = { KVM_CHECK_UID, KVM_CHECK_GID, c->kvm_gid, NULL };
	struct kvm_boot b;
	struct verr de = { 0 }; /* no cache directory: the check runs, uncached */
	int k, dir, rc;

	kvm_boot_dir(&de);
	k = kvm_cache_open(c, who, &dir, e);
	if (k < 0)
		return -1;
	rc = kvm_boot_check(c->conf->qemu, k, &as, dir, &b);
	close(k);
	if (dir >= 0)
		close(dir);
	if (rc < 0)
		b.boots = false;
	return kvm_apply(c, &b, e);
}

/* ---- plan -------------------------------------------------------------- */

static json_t *plan(const struct vmcfg *c)
{
	char cmdline[2048], jail[JAIL_PATH_MAX - 64], chroot[JAIL_PATH_MAX - 32];
	kernel_cmdline(c, cmdline, sizeof cmdline);
	if (!strcmp(c->vmm, "qemu"))
		return json_pack("{s:s, s:s, s:s*, s:I, s:I, s:s, s:o}", "vmm", "qemu", "accel", c->kvm ? "kvm" : "tcg",
				 "netns", c->netns, "uid", (json_int_t)c->uid, "gid", (json_int_t)c->gid,
				 "kernelCmdline", cmdline, "argv", qemu_argv(c));
	fc_jail_path(c->conf, c->id, jail, sizeof jail);
	snprintf(chroot, sizeof chroot, "%s/root", jail);
	json_t *links = json_pack("[{s:s, s:s}, {s:s, s:s}]", "from", c->kernel, "to", "vmlinux", "from", c->vm_disk,
				  "to", "vm.ext4");
	if (c->image_disk)
		json_array_append_new(links, json_pack("{s:s, s:s}", "from", c->image_disk, "to", "image.ext4"));
	return json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:o}", "vmm", "firecracker", "accel", "kvm", "chroot", chroot,
			 "jail", links, "jailer", fc_jailer_argv(c), "kernelCmdline", cmdline, "api", fc_calls(c));
}

/* plan boots nothing: it says what start would do from the boot check's
 * kept answer, and "kvmBoot": {"checked": false} when there is none yet
 * (start will check before it uses KVM). */
static json_t *op_plan(struct jr *r, struct verr *e)
{
	struct rootconf conf;
	struct vmcfg c;
	struct caller who;
	struct kvm_boot b;
	json_t *check = NULL, *out;
	int k, dir, rc;

	if (rootconf_load(&conf, e) || read_cfg(r, &c, &conf, e) || jr_end(r))
		return NULL;
	if (!strcmp(c.vmm, "qemu") && c.kvm) {
		caller_get(&who);
		if ((k = kvm_cache_open(&c, &who, &dir, e)) < 0)
			return NULL;
		rc = kvm_boot_cached(conf.qemu, k, NULL, dir, &b);
		close(k);
		if (dir >= 0)
			close(dir);
		check = rc < 0 ? json_pack("{s:b}", "checked", 0)
			       : json_pack("{s:b, s:b, s:s}", "checked", 1, "boots", b.boots, "detail", b.detail);
		if (rc == 0 && kvm_apply(&c, &b, e) < 0) {
			json_decref(check);
			return NULL;
		}
	}
	out = plan(&c);
	if (check)
		json_object_set_new(out, "kvmBoot", check);
	if (c.kvm_refused)
		json_object_set_new(out, "kvmRefused", json_string(c.kvm_why));
	return out;
}

/* ---- start -------------------------------------------------------------- */

static bool need_root(struct verr *e)
{
	if (geteuid() == 0)
		return true;
	verr_set(e, VMSAN_EXIT_FAIL, "ERR_PERMISSION", "run it through vmsan (sudo), or as root", "%s needs root",
		 vmsan_prog);
	return false;
}

static json_t *op_start(struct jr *r, struct verr *e)
{
	struct rootconf conf;
	struct vmcfg c;
	struct caller who;
	struct vmmrec old;
	char ns[80];

	if (!need_root(e) || rootconf_load(&conf, e) || read_cfg(r, &c, &conf, e) || jr_end(r))
		return NULL;
	caller_get(&who);
	/* A user's VMM runs as that user: sudo must not make it anyone else;
	 * and in that VM's own namespace, which vmsan-net made for them. */
	if (!who.root && ((uid_t)c.uid != who.uid || (gid_t)c.gid != who.gid)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_PERMISSION", "give your own uid and gid",
			 "the VMM of uid %u runs as %u:%u, not %lld:%lld", (unsigned)who.uid, (unsigned)who.uid,
			 (unsigned)who.gid, c.uid, c.gid);
		return NULL;
	}
	snprintf(ns, sizeof ns, "vmsan-%s", c.id);
	if (!who.root && c.netns && strcmp(c.netns, ns)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_PERMISSION", "give the namespace vmsan-net made for this VM",
			 "the VMM of %s runs in namespace %s, not %s", c.id, ns, c.netns);
		return NULL;
	}
	if (!strcmp(c.vmm, "qemu") && !rootconf_trusted_program(conf.qemu, "qemu", e))
		return NULL;
	/* /dev/kvm's group is the VMM's only if it is the caller's */
	if (!who.root && c.kvm_gid >= 0) {
		bool member = false;
		for (int i = 0; i < who.ngroups; i++)
			member = member || who.groups[i] == (gid_t)c.kvm_gid;
		if (!member) {
			c.kvm_gid = -1;
			if (!strcmp(c.accel, "kvm")) {
				verr_set(e, VMSAN_EXIT_FAIL, "ERR_PERMISSION",
					 "join /dev/kvm's group, or use --accel tcg",
					 "you cannot open /dev/kvm: it is for its group, and you are not in it");
				return NULL;
			}
			c.kvm = false;
		}
	}
	/* Firecracker has no other accelerator, and its jailer makes a
	 * /dev/kvm node in the jail owned by the VMM's uid (the caller's,
	 * who could keep a link to it): only for a caller who may open
	 * /dev/kvm already */
	if (!who.root && !strcmp(c.vmm, "firecracker") && !c.kvm) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_PERMISSION", "join /dev/kvm's group, or use --vmm qemu --accel tcg",
			 "Firecracker needs /dev/kvm, and you may not open it");
		return NULL;
	}
	if (!strcmp(c.vmm, "qemu") && c.kvm && kvm_boots(&c, &who, e) < 0)
		return NULL;
	/* Another's id is refused before anything of the caller's is opened;
	 * where the VM's state keeps it is noted for gc (fc/orphans.c), in
	 * the claim too. */
	if (claim_available(c.id, &who, e) < 0 || vmhome_take(&who, c.run_dir, "runDir", &c.home, e))
		return NULL;
	if (claim_take(c.id, &who, conf.max_vms_per_user, &c.home, e) < 0 || vmm_lock(c.id, e) < 0)
		return NULL;
	if (vmmrec_for(c.id, &who, &old, e) < 0)
		return NULL;
	if (old.pid > 1 && vmmrec_alive(&old)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VM_RUNNING", "stop it first", "the VMM of %s runs already (pid %lld)",
			 c.id, old.pid);
		return NULL;
	}
	return !strcmp(c.vmm, "firecracker") ? fc_start(&c, &who, e) : qemu_start(&c, &who, e);
}

/* ---- operations on a running VM: found by id in root's record ------------ */

/* The VM a request names (its id read, the rest of the request to be
 * checked by the caller before own_vmm). */
static const char *req_id(struct jr *r)
{
	return jr_string(r, "id", JR_REQUIRED, valid_vm_id);
}

/* After the whole request is checked: root's record of id for the
 * caller, ERR_NOT_OWNER for another user's id.  rec->pid is 0 when no
 * VMM is recorded. */
static int own_vmm(const char *id, struct vmmrec *rec, struct caller *who, struct verr *e)
{
	caller_get(who);
	if (claim_check(id, who, e) < 0 || vmm_lock(id, e) < 0)
		return -1;
	return vmmrec_for(id, who, rec, e) < 0 ? -1 : 0;
}

static bool running(const struct vmmrec *rec, const char *id, struct verr *e)
{
	if (rec->pid > 1 && vmmrec_alive(rec))
		return true;
	verr_set(e, VMSAN_EXIT_FAIL, "ERR_VM_NOT_RUNNING", "start it first", "%s is not running", id);
	return false;
}

/* The VMM is gone: what lived only as long as it goes too. */
static void gone(const struct vmmrec *rec)
{
	if (!strcmp(rec->vmm, "qemu"))
		ram_remove(rec->id);
	vmmrec_remove(rec->id);
}

static json_t *op_status(struct jr *r, struct verr *e)
{
	struct vmmrec rec;
	struct caller who;
	const char *id = req_id(r);
	if (jr_end(r) || !need_root(e) || own_vmm(id, &rec, &who, e))
		return NULL;
	return json_pack("{s:s, s:I, s:b}", "id", id, "pid", (json_int_t)rec.pid, "running",
			 rec.pid > 1 && vmmrec_alive(&rec));
}

static json_t *op_stop(struct jr *r, struct verr *e)
{
	struct vmmrec rec;
	struct caller who;
	long long timeout = 10;
	char fault[256];
	const char *id = req_id(r);
	jr_int(r, "timeoutSec", JR_OPTIONAL, 0, 3600, &timeout);
	if (jr_end(r) || !need_root(e) || own_vmm(id, &rec, &who, e))
		return NULL;
	const char *how = "exited";
	bool fc = !strcmp(rec.vmm, "firecracker");
	if (rec.pid <= 1 || !vmmrec_alive(&rec))
		how = "not running";
	else if (fc &&
		 fc_action(&rec, "/actions", "{\"action_type\":\"SendCtrlAltDel\"}", fault, sizeof fault) / 100 == 2 &&
		 vmm_wait_gone(&rec, (double)timeout))
		how = "ctrl-alt-del"; /* vmsan-init powers off, the VMM exits */
	else if (fc || !vmm_wait_gone(&rec, (double)timeout)) {
		/* The guest did not power off in time: ask QEMU to quit, then
		 * kill it. */
		how = "quit";
		if (fc || qmp_command(rec.qmp, "quit") < 0 || !vmm_wait_gone(&rec, 3)) {
			how = "killed";
			vmmrec_signal(&rec, SIGKILL);
			vmm_wait_gone(&rec, 5);
		}
	}
	bool still = rec.pid > 1 && vmmrec_alive(&rec);
	if (!still && rec.pid > 1)
		gone(&rec);
	return json_pack("{s:s, s:I, s:s, s:b}", "id", id, "pid", (json_int_t)rec.pid, "how", how, "running", still);
}

static json_t *op_kill(struct jr *r, struct verr *e)
{
	struct vmmrec rec;
	struct caller who;
	const char *id = req_id(r);
	if (jr_end(r) || !need_root(e) || own_vmm(id, &rec, &who, e))
		return NULL;
	bool was = rec.pid > 1 && vmmrec_signal(&rec, SIGKILL) == 0;
	bool left = was && !vmm_wait_gone(&rec, 5);
	if (!left && rec.pid > 1)
		gone(&rec);
	return json_pack("{s:I, s:b, s:b}", "pid", (json_int_t)rec.pid, "wasRunning", was, "running", left);
}

/* What start made that outlives the VMM, gone, and the id given up: the
 * VMM killed if it still runs, its RAM file, Firecracker's jail, root's
 * record.  Idempotent; the caller's own ids only. */
static json_t *op_cleanup(struct jr *r, struct verr *e)
{
	struct vmmrec rec;
	struct caller who;
	struct rootconf conf;
	char ram[128], jail[JAIL_PATH_MAX - 64];
	const char *id = req_id(r);
	if (jr_end(r) || !need_root(e) || rootconf_load(&conf, e) || own_vmm(id, &rec, &who, e))
		return NULL;
	long owner = claim_owner(id);
	bool had = rec.pid > 1;
	if (owner < 0 && !had && !who.root)
		return json_pack("{s:s, s:b}", "id", id, "removed", 0); /* nothing of theirs */
	if (had && vmmrec_signal(&rec, SIGKILL) == 0)
		vmm_wait_gone(&rec, 5);
	ram_path(id, ram, sizeof ram);
	fc_jail_path(&conf, id, jail, sizeof jail);
	had = had || access(ram, F_OK) == 0 || access(jail, F_OK) == 0;
	ram_remove(id);
	fc_jail_remove(&conf, id);
	vmmrec_remove(id);
	char lock[160];
	snprintf(lock, sizeof lock, VMM_DIR "/%s.lock", id);
	unlink(lock);
	/* vmsan-net's record still there (its teardown failed, or was
	 * killed, or not run yet): the id stays claimed until it goes too
	 * (vmsan-net orphans, once the VM's directory is gone, or its
	 * teardown); a claim given up before would also let its owner make
	 * networks past the limit on VMs (setup, cleanup, again) */
	if (!claim_in_use(id))
		claim_release(id);
	return json_pack("{s:s, s:b}", "id", id, "removed", had);
}

static json_t *op_snapshot(struct jr *r, struct verr *e)
{
	struct vmmrec rec;
	struct caller who;
	struct rootconf conf;
	bool resume = true;
	const char *id = req_id(r);
	const char *disk = jr_string(r, "vmDisk", JR_REQUIRED, valid_abspath);
	const char *dir = jr_string(r, "dir", JR_REQUIRED, valid_abspath);
	jr_bool(r, "resume", JR_OPTIONAL, &resume);
	if (jr_end(r) || !need_root(e) || rootconf_load(&conf, e) || own_vmm(id, &rec, &who, e) ||
	    !running(&rec, id, e))
		return NULL;
	if (!strcmp(rec.vmm, "firecracker"))
		return fc_snapshot(&rec, &who, &conf, disk, dir, resume, e);
	return qemu_snapshot(&rec, &who, disk, dir, resume, e);
}

/* pause (QMP stop, Firecracker's PATCH /vm Paused) and resume (cont,
 * Resumed) of a running VM's vCPUs. */
static json_t *vcpus(struct jr *r, bool pause, struct verr *e)
{
	struct vmmrec rec;
	struct caller who;
	char fault[512] = "";
	const char *id = req_id(r);
	if (jr_end(r) || !need_root(e) || own_vmm(id, &rec, &who, e) || !running(&rec, id, e))
		return NULL;
	if (!strcmp(rec.vmm, "firecracker")) {
		int code = fc_action(&rec, "/vm", pause ? "{\"state\":\"Paused\"}" : "{\"state\":\"Resumed\"}", fault,
				     sizeof fault);
		if (code / 100 != 2) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_VMM", NULL, "Firecracker refused PATCH /vm (HTTP %d): %s",
				 code, fault);
			return NULL;
		}
	} else if (qmp_command(rec.qmp, pause ? "stop" : "cont") < 0) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_QMP", "see the VM's vmm.log", "QEMU refused %s",
			 pause ? "stop" : "cont");
		return NULL;
	}
	return json_pack("{s:s, s:b}", "id", id, "paused", pause);
}

static json_t *op_pause(struct jr *r, struct verr *e)
{
	return vcpus(r, true, e);
}

static json_t *op_resume(struct jr *r, struct verr *e)
{
	return vcpus(r, false, e);
}

/* Root's records nobody's state accounts for (fc/orphans.c): the
 * caller's own, root's all. */
static json_t *op_orphans(struct jr *r, struct verr *e)
{
	struct caller who;
	bool dry = false;

	jr_bool(r, "dryRun", JR_OPTIONAL, &dry);
	if (jr_end(r) || !need_root(e))
		return NULL;
	caller_get(&who);
	return fc_orphans(&who, dry, e);
}

static const struct helper_op ops[] = {
	{ "orphans", op_orphans }, { "plan", op_plan },	    { "start", op_start },     { "status", op_status },
	{ "stop", op_stop },	   { "kill", op_kill },	    { "cleanup", op_cleanup }, { "snapshot", op_snapshot },
	{ "pause", op_pause },	   { "resume", op_resume },
};

static const struct helper helper = {
	.name = "vmsan-fc",
	.summary = "plumbing (root): run a VM's VMM (Firecracker under its jailer, or QEMU microvm)",
	.usage = "usage: vmsan-fc OP [--verbose] < request.json\n"
		 "\n"
		 "  {\"op\":\"plan\"|\"start\", \"id\":ID, \"vmm\":\"qemu\"|\"firecracker\", \"kernel\":PATH,\n"
		 "   \"vmDisk\":PATH, \"imageDisk\":PATH, \"runDir\":PATH, \"uid\":N, \"gid\":N,\n"
		 "   \"vcpus\":N, \"memoryMib\":N, \"accel\":\"auto\"|\"kvm\"|\"tcg\", \"agentPort\":N,\n"
		 "   \"network\":{\"netns\",\"tap\",\"mac\",\"guestIp\",\"gatewayIp\",\"prefixLen\",\"dns\":[...]},\n"
		 "   \"incoming\":DIR}                  start with incoming restores a snapshot\n"
		 "  {\"op\":\"status\"|\"kill\"|\"pause\"|\"resume\"|\"cleanup\", \"id\":ID}\n"
		 "  {\"op\":\"stop\", \"id\":ID, \"timeoutSec\":S}\n"
		 "  {\"op\":\"snapshot\", \"id\":ID, \"vmDisk\":PATH, \"dir\":PATH, \"resume\":BOOL}\n"
		 "  {\"op\":\"orphans\", \"dryRun\":BOOL}   records whose VM directory is gone or VMM dead\n"
		 "\n"
		 "The programs (QEMU, Firecracker, the jailer) and the jail base come from\n" ROOTCONF_PATH
		 " (root's), never from the request.  A running VM is\n"
		 "found by its id in root's own record, for its owner only.  plan needs no\n"
		 "privileges; the rest run as root (the sudoers rule install.sh writes), the\n"
		 "VMM itself as uid:gid, never root.  See vmsan-fc(8), vmsan-security(7).\n",
	.ops = ops,
	.nops = sizeof(ops) / sizeof(*ops),
};

int main(int argc, char **argv)
{
	struct verr e = { 0 };

	/* A caller must not stop or interrupt root's work half done (through
	 * the terminal, or signals sudo relays): every signal that would is
	 * held until exit; a VMM or jailer started gets them back. */
	rootproc_hold_signals();
	/* as root, nothing runs under the limits, umask or pace the caller
	 * chose (plan, run unprivileged, needs no more) */
	if (geteuid() == 0 && !helper_answers_only(argc, argv)) {
		if (rootproc_reset(&e)) {
			vmsan_prog = helper.name;
			return reply_error(&e);
		}
		rootproc_detach();
	}
	return helper_main(&helper, argc, argv);
}
