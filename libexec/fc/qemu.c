/* QEMU's microvm machine: its command line, its start as the VMM's uid in
 * the VM's namespace with every file handed over as a descriptor, and its
 * snapshot (device state over QMP, RAM file and disk copied). */
#define _GNU_SOURCE
#include "fc/fc.h"
#include "lib/rootproc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* An argument, or one formatted, appended to QEMU's command line a. */
static void arg(json_t *a, const char *s)
{
	json_array_append_new(a, json_string(s));
}

static void argf(json_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void argf(json_t *a, const char *fmt, ...)
{
	char buf[PATH_MAX + 256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	arg(a, buf);
}

static void add_fd(json_t *a, int fd, int set, const char *opaque)
{
	arg(a, "-add-fd");
	argf(a, "fd=%d,set=%d,opaque=%s", fd, set, opaque);
}

/* A virtio disk on the descriptors of fd set `set`, never locked (the
 * descriptors were opened for QEMU, who cannot open the files). */
static void add_disk(json_t *a, const char *id, int set, const char *opts)
{
	arg(a, "-drive");
	argf(a, "id=%s,file=/dev/fdset/%d,format=raw,if=none,%s,file.locking=off", id, set, opts);
	arg(a, "-device");
	argf(a, "virtio-blk-device,drive=%s", id);
}

/* The devices on QEMU's command line: disks, the TAP, the snapshot's way
 * in, and QMP. */
static void argv_devices(json_t *a, const struct vmcfg *c)
{
	/* The block layer probes read-only before it opens read-write: the
	 * set holds a descriptor of each access mode. */
	add_fd(a, FD_VM_RW, SET_VM, "vm-rw");
	add_fd(a, FD_VM_RO, SET_VM, "vm-ro");
	add_disk(a, "vm", SET_VM, "discard=unmap");
	if (c->image_disk) {
		add_fd(a, FD_IMAGE, SET_IMAGE, "image-ro");
		add_disk(a, "image", SET_IMAGE, "readonly=on");
	}
	if (c->net) {
		arg(a, "-netdev");
		argf(a, "tap,id=net0,fd=%d", FD_TAP);
		arg(a, "-device");
		argf(a, "virtio-net-device,netdev=net0,mac=%s", c->mac);
	}
	/* Entropy for the guest's kernel (its hw_random core feeds the
	 * RNG from virtio-rng): from QEMU's getrandom(), no file opened by
	 * name; at most 64 KiB a second, so a guest reading /dev/hwrng in a
	 * loop costs the host little (Firecracker's /entropy, which vmsan-fc
	 * also asks for, takes a rate limiter for the same reason). */
	arg(a, "-object");
	arg(a, "rng-builtin,id=rng0");
	arg(a, "-device");
	arg(a, "virtio-rng-device,rng=rng0,max-bytes=65536,period=1000");
	if (c->incoming) {
		/* the state arrives over QMP (migrate-incoming fd:) */
		arg(a, "-incoming");
		arg(a, "defer");
	}
	arg(a, "-chardev");
	argf(a, "socket,id=qmp,fd=%d,server=on,wait=off", FD_QMP);
	arg(a, "-mon");
	arg(a, "chardev=qmp,mode=control");
}

json_t *qemu_argv(const struct vmcfg *c)
{
	char cmdline[2048], ram[128];
	json_t *a = json_array();

	arg(a, c->conf->qemu);
	arg(a, "-name");
	argf(a, "vmsan-%s,process=vmsan-%s", c->id, c->id);
	arg(a, "-machine");
	arg(a, "microvm,x-option-roms=off,rtc=on,acpi=off,memory-backend=ram");
	/* Guest RAM in a shared file vmsan-fc makes (in root's RAM_DIR, the
	 * VMM's): a snapshot saves only the device state into its stream
	 * (migration capability x-ignore-shared) and copies this file, as
	 * Firecracker splits a snapshot into state and memory. */
	ram_path(c->id, ram, sizeof ram);
	arg(a, "-object");
	argf(a, "memory-backend-file,id=ram,size=%lldM,mem-path=%s,share=on", c->mem_mib, ram);
	arg(a, "-accel");
	arg(a, c->kvm ? "kvm" : "tcg");
	arg(a, "-cpu");
	arg(a, c->kvm ? "host" : "max");
	arg(a, "-smp");
	argf(a, "%lld", c->vcpus);
	arg(a, "-m");
	argf(a, "%lld", c->mem_mib);
	arg(a, "-nodefaults");
	arg(a, "-no-user-config");
	arg(a, "-display");
	arg(a, "none");
	arg(a, "-no-reboot");
	arg(a, "-sandbox");
	arg(a, "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
	/* QEMU opens nothing by name but the kernel and its RAM file:
	 * vmsan-fc opens the disks, the console file and the QMP socket and
	 * passes descriptors. */
	arg(a, "-add-fd");
	argf(a, "fd=%d,set=%d,opaque=console", FD_CONSOLE, SET_CONSOLE);
	arg(a, "-serial");
	argf(a, "file:/dev/fdset/%d", SET_CONSOLE);
	arg(a, "-kernel");
	arg(a, c->kernel);
	arg(a, "-append");
	kernel_cmdline(c, cmdline, sizeof cmdline);
	arg(a, cmdline);
	argv_devices(a, c);
	/* No -daemonize: its fork is what -sandbox spawn=deny forbids.
	 * vmsan-fc detaches QEMU itself. */
	return a;
}

/* The caller's files QEMU is handed, opened as the caller; the QMP socket
 * bound in root's directory for the VM (dirfd_vmm). */
static int open_vmm_files(const struct vmcfg *c, const struct caller *who, int dirfd_vmm, int fds[FD_COUNT],
			  int *rundir, struct verr *e)
{
	for (int i = 0; i < FD_COUNT; i++)
		fds[i] = -1;
	*rundir = caller_open(who, AT_FDCWD, c->run_dir, O_RDONLY, 0, CALLER_DIR | CALLER_OWNED, "runDir", e);
	if (*rundir < 0)
		return -1;
	if ((fds[FD_VM_RW] =
		     caller_open(who, AT_FDCWD, c->vm_disk, O_RDWR, 0, CALLER_REG | CALLER_OWNED, "vmDisk", e)) < 0 ||
	    (fds[FD_VM_RO] =
		     caller_open(who, AT_FDCWD, c->vm_disk, O_RDONLY, 0, CALLER_REG | CALLER_OWNED, "vmDisk", e)) < 0 ||
	    (c->image_disk && (fds[FD_IMAGE] = caller_open(who, AT_FDCWD, c->image_disk, O_RDONLY, 0,
							   CALLER_REG | CALLER_OWNED, "imageDisk", e)) < 0))
		return -1;
	/* The kernel is QEMU's to open, as the VMM's uid: the caller's own for
	 * a user.  Checked here as the caller, for a clear error. */
	int k = caller_open(who, AT_FDCWD, c->kernel, O_RDONLY, 0, CALLER_REG, "kernel", e);
	if (k < 0)
		return -1;
	close(k);
	/* last: a start refused above makes no file */
	fds[FD_CONSOLE] = caller_open(who, *rundir, "console.log", O_WRONLY | O_APPEND | O_CREAT, 0600,
				      CALLER_REG | CALLER_OWNED, "console file", e);
	if (fds[FD_CONSOLE] < 0)
		return -1;
	char path[64];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(path, sizeof path, "/proc/self/fd/%d/qmp.sock", dirfd_vmm);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fds[FD_QMP] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	mode_t old = umask(077);
	int rc = fds[FD_QMP] < 0 ? -1 : bind(fds[FD_QMP], (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc < 0 || listen(fds[FD_QMP], 4) < 0) {
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot make the QMP socket of %s", c->id);
		return -1;
	}
	return 0;
}

/* The guest's RAM file, made here for the VMM's uid (QEMU opens it by
 * name: memory-backend-file takes no descriptor), sized, and with a
 * snapshot's memory copied in (holes stay holes). */
static int ram_make(const struct vmcfg *c, int memfd, struct verr *e)
{
	char p[128], name[96];
	int fd = -1, d = ram_dir(e);
	uint64_t size = (uint64_t)c->mem_mib << 20;

	if (d < 0)
		return -1;
	ram_path(c->id, p, sizeof p);
	snprintf(name, sizeof name, "%s.ram", c->id);
	unlinkat(d, name, 0); /* an earlier run's of this id: root's dir, our file */
	fd = openat(d, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	close(d);
	if (fd < 0 || fchown(fd, (uid_t)c->uid, (gid_t)c->gid) < 0 || ftruncate(fd, (off_t)size) < 0) {
		verr_sys(e, "ERR_RAM_FILE", "check /dev/shm's free space (df /dev/shm)", "cannot make %s", p);
		goto fail;
	}
	if (memfd >= 0) {
		struct stat ms;
		if (fstat(memfd, &ms) < 0 || (uint64_t)ms.st_size != size) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", "restore with the snapshot's memory size",
				 "the snapshot's memory is %lld MiB, not %lld", (long long)(ms.st_size >> 20),
				 c->mem_mib);
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
	ram_remove(c->id);
	return -1;
}

/* exec_vmm's steps, in the VMM's process: each 0, or -1 with why in msg. */

static int enter_netns(const struct vmcfg *c, char *msg, size_t n)
{
	char p[128];
	int fd;

	if (!c->netns)
		return 0;
	snprintf(p, sizeof p, "/run/netns/%s", c->netns);
	fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
		snprintf(msg, n, "cannot enter network namespace %s: %s", c->netns, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

/* TUNSETIFF would make a TAP that is not there: links are vmsan-net's to
 * make, so a missing one is an error.  /dev/net/tun is opened as root
 * (it may be root's alone), the TAP attached later (attach_tap) as the
 * VMM's uid. */
static int open_tun(const struct vmcfg *c, int *tfd, char *msg, size_t n)
{
	int fd, hi;

	if (!c->net)
		return 0;
	if (!if_nametoindex(c->tap)) {
		snprintf(msg, n, "cannot open TAP %s%s%s: no such interface (vmsan-net setup makes it)", c->tap,
			 c->netns ? " in " : "", c->netns ? c->netns : "");
		return -1;
	}
	if ((fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC)) < 0) {
		snprintf(msg, n, "cannot open /dev/net/tun: %s", strerror(errno));
		return -1;
	}
	/* clear of the numbers the descriptors below go to */
	hi = fcntl(fd, F_DUPFD_CLOEXEC, 64);
	if (hi < 0) {
		snprintf(msg, n, "descriptor: %s", strerror(errno));
		return -1;
	}
	close(fd);
	*tfd = hi;
	return 0;
}

/* Every descriptor out of the way first, then each onto its number
 * (dup2 leaves the copy open across exec). */
static int place_fds(int fds[FD_COUNT], char *msg, size_t n)
{
	for (int i = FD_TAP; i < FD_COUNT; i++) {
		if (fds[i] < 0)
			continue;
		int hi = fcntl(fds[i], F_DUPFD_CLOEXEC, 64);
		if (hi < 0) {
			snprintf(msg, n, "descriptor: %s", strerror(errno));
			return -1;
		}
		fds[i] = hi;
	}
	for (int i = FD_TAP; i < FD_COUNT; i++)
		if (fds[i] >= 0 && dup2(fds[i], i) < 0) {
			snprintf(msg, n, "descriptor %d: %s", i, strerror(errno));
			return -1;
		}
	return 0;
}

/* Down to the VMM's uid and gid (and /dev/kvm's group when it uses KVM). */
static int become_vmm(const struct vmcfg *c, char *msg, size_t n)
{
	if (become_uid(c->uid, c->gid, c->kvm ? c->kvm_gid : -1) < 0) {
		snprintf(msg, n, "cannot become uid %lld gid %lld: %s", c->uid, c->gid, strerror(errno));
		return -1;
	}
	return 0;
}

/* The TAP is attached as the VMM's uid, not as root: the kernel then
 * holds it to the TAP's owner (vmsan-net sets it to the VMM's uid), so no
 * caller can have its VMM take another VM's TAP. */
static int attach_tap(const struct vmcfg *c, int tfd, char *msg, size_t n)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };

	if (!c->net)
		return 0;
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", c->tap);
	if (ioctl(tfd, TUNSETIFF, &ifr) < 0) {
		snprintf(msg, n, "cannot open TAP %s%s%s: %s", c->tap, c->netns ? " in " : "", c->netns ? c->netns : "",
			 strerror(errno));
		return -1;
	}
	if (tfd != FD_TAP && (dup2(tfd, FD_TAP) < 0 || close(tfd) < 0)) {
		snprintf(msg, n, "descriptor %d: %s", FD_TAP, strerror(errno));
		return -1;
	}
	return 0;
}

/* QEMU run with nothing of ours but the descriptors it was told of;
 * returns only when it cannot be (why in msg). */
static void exec_qemu(json_t *argv, char *msg, size_t n)
{
	static char path_env[] = "PATH=/usr/bin:/bin";
	char *envp[] = { path_env, NULL };
	size_t argc = json_array_size(argv);
	char **av;
	int devnull;

	if (chdir("/") < 0) {
		snprintf(msg, n, "chdir /: %s", strerror(errno));
		return;
	}
	umask(077);
	av = calloc(argc + 1, sizeof *av);
	if (!av) {
		snprintf(msg, n, "out of memory");
		return;
	}
	for (size_t i = 0; i < argc; i++)
		av[i] = (char *)json_string_value(json_array_get(argv, i));
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
	}
	/* nothing of ours but the descriptors QEMU was told of */
	close_range(FD_COUNT, ~0U, CLOSE_RANGE_CLOEXEC);
	rootproc_child_signals();
	execve(av[0], av, envp);
	snprintf(msg, n, "cannot run %s: %s", av[0], strerror(errno));
}

/* The VMM's process: into the namespace, down to the uid, then exec with
 * the descriptors in place.  Messages go to errfd. */
static void exec_vmm(const struct vmcfg *c, json_t *argv, int fds[FD_COUNT], int errfd)
{
	char msg[256];
	int tfd = -1;

	if (enter_netns(c, msg, sizeof msg) == 0 && open_tun(c, &tfd, msg, sizeof msg) == 0 &&
	    place_fds(fds, msg, sizeof msg) == 0 && become_vmm(c, msg, sizeof msg) == 0 &&
	    attach_tap(c, tfd, msg, sizeof msg) == 0)
		exec_qemu(argv, msg, sizeof msg);
	(void)!write(errfd, msg, strlen(msg));
	_exit(127);
}

/* Started once QMP answers query-status with want: QEMU is in its main
 * loop with every device set up.  False if it is gone first. */
static bool qemu_up(const char *qmp, pid_t qpid, long long qstart, const char *want)
{
	for (int i = 0; i < 1000; i++) {
		int fd = qmp_open(qmp, 10);
		if (fd >= 0) {
			bool up = qmp_call(fd, "query-status", want);
			close(fd);
			if (up)
				return true;
		}
		if (proc_start_time(qpid) != qstart || zombie(qpid))
			return false;
		poll(NULL, 0, 10);
	}
	return false;
}

/* Restoring: the device state in (the guest's RAM is already in place,
 * x-ignore-shared on both sides), then the vCPUs on. */
static bool qemu_restore(const char *qmp, int statefd, char *err, size_t n)
{
	char buf[4096] = "";
	int qfd = qmp_open(qmp, 30);
	bool ok = qfd >= 0 &&
		  qmp_do(qfd,
			 "{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":"
			 "[{\"capability\":\"x-ignore-shared\",\"state\":true}]}}",
			 buf, sizeof buf) &&
		  qmp_send_fd(qfd, statefd, "vmsan-state") &&
		  qmp_do(qfd, "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"fd:vmsan-state\"}}", buf,
			 sizeof buf);
	if (!ok)
		snprintf(err, n, "QMP refused the incoming migration: %.300s", buf);
	else if (qmp_migration_done(qfd, 120, err, n))
		ok = qmp_do(qfd, "{\"execute\":\"cont\"}", buf, sizeof buf) &&
		     qmp_call(qfd, "query-status", "\"running\"");
	else
		ok = false;
	if (qfd >= 0)
		close(qfd);
	return ok;
}

/* A QEMU start: what each step made, for the steps after it and for
 * start_undo. */
struct qstart {
	const struct vmcfg *c;
	const struct caller *who;
	int fds[FD_COUNT], rundir, vdir, lfd, pe[2], pp[2], pg[2], statefd, memfd;
	bool ram;
	pid_t qpid;
	json_t *argv;
	struct vmmrec rec;
	struct timespec t0;
};

static void start_init(struct qstart *s, const struct vmcfg *c, const struct caller *who)
{
	memset(s, 0, sizeof *s);
	s->c = c;
	s->who = who;
	for (int i = 0; i < FD_COUNT; i++)
		s->fds[i] = -1;
	s->rundir = s->vdir = s->lfd = s->statefd = s->memfd = -1;
	s->pe[0] = s->pe[1] = s->pp[0] = s->pp[1] = s->pg[0] = s->pg[1] = -1;
	s->qpid = -1;
	snprintf(s->rec.id, sizeof s->rec.id, "%s", c->id);
	snprintf(s->rec.vmm, sizeof s->rec.vmm, "qemu");
	s->rec.owner = who->uid;
	s->rec.uid = c->uid;
	s->rec.gid = c->gid;
	s->rec.home = c->home;
	vmm_dir_path(c->id, s->rec.qmp, sizeof s->rec.qmp);
	strncat(s->rec.qmp, "/qmp.sock", sizeof s->rec.qmp - strlen(s->rec.qmp) - 1);
	ram_path(c->id, s->rec.ram, sizeof s->rec.ram);
}

/* Root's directory for the VM, the files QEMU is handed, its log; and a
 * snapshot's files to restore, the caller's: its memory goes into the new
 * RAM file, its state to QEMU over QMP. */
static int start_open(struct qstart *s, struct verr *e)
{
	const struct vmcfg *c = s->c;
	char sp[PATH_MAX + 16];

	if ((s->vdir = vmm_dir_make(c->id, e)) < 0 || open_vmm_files(c, s->who, s->vdir, s->fds, &s->rundir, e) < 0)
		return -1;
	/* QEMU's own messages go to vmm.log. */
	s->lfd = caller_open(s->who, s->rundir, "vmm.log", O_WRONLY | O_APPEND | O_CREAT, 0600,
			     CALLER_REG | CALLER_OWNED, "VMM log", e);
	if (s->lfd < 0)
		return -1;
	if (!c->incoming)
		return 0;
	snprintf(sp, sizeof sp, "%s/state", c->incoming);
	if ((s->statefd = caller_open(s->who, AT_FDCWD, sp, O_RDONLY, 0, CALLER_REG | CALLER_OWNED, "snapshot state",
				      e)) < 0)
		return -1;
	snprintf(sp, sizeof sp, "%s/memory", c->incoming);
	if ((s->memfd = caller_open(s->who, AT_FDCWD, sp, O_RDONLY, 0, CALLER_REG | CALLER_OWNED, "snapshot memory",
				    e)) < 0)
		return -1;
	return 0;
}

static int start_ram(struct qstart *s, struct verr *e)
{
	if (ram_make(s->c, s->memfd, e) < 0)
		return -1;
	s->ram = true;
	return 0;
}

/* The VMM's process waits at the gate until root's record names it: if
 * vmsan-fc dies before (killed between its fork and its record), the gate
 * reads end of file and the process goes without running QEMU, instead of
 * a VMM nothing names (nothing would stop it, nor free its memory). */
static void wait_gate(int gate[2])
{
	char go = 0;

	close(gate[1]);
	while (read(gate[0], &go, 1) < 0 && errno == EINTR)
		;
	if (go != 'g')
		_exit(0);
	close(gate[0]);
}

/* QEMU started, detached: an intermediate process starts a session, forks
 * QEMU and exits, so QEMU belongs to no one's session and init reaps it.
 * Root's record names the VMM before it runs (wait_gate) and before
 * anything else can fail. */
static int start_qemu(struct qstart *s, struct verr *e)
{
	pid_t mid;

	if (pipe2(s->pe, O_CLOEXEC) < 0 || pipe2(s->pp, O_CLOEXEC) < 0 || pipe2(s->pg, O_CLOEXEC) < 0) {
		verr_sys(e, "ERR_SYSTEM", NULL, "pipe");
		return -1;
	}
	s->argv = qemu_argv(s->c);
	clock_gettime(CLOCK_MONOTONIC, &s->t0);
	mid = fork();
	if (mid == 0) {
		setsid();
		pid_t q = fork();
		if (q == 0) {
			wait_gate(s->pg);
			dup2(s->lfd, 2);
			exec_vmm(s->c, s->argv, s->fds, s->pe[1]);
		}
		(void)!write(s->pp[1], &q, sizeof q);
		_exit(q < 0);
	}
	close(s->pe[1]);
	close(s->pp[1]);
	close(s->pg[0]);
	s->pe[1] = s->pp[1] = s->pg[0] = -1;
	/* QEMU has its copies: ours of the listening QMP socket would keep it
	 * answering connections nobody serves if QEMU died. */
	close_fds(s->fds);
	if (mid < 0 || read(s->pp[0], &s->qpid, sizeof s->qpid) != (ssize_t)sizeof s->qpid || s->qpid <= 0) {
		if (mid > 0)
			waitpid(mid, NULL, 0);
		verr_sys(e, "ERR_SYSTEM", NULL, "fork");
		return -1;
	}
	waitpid(mid, NULL, 0);
	s->rec.pid = s->qpid;
	s->rec.start = proc_start_time(s->qpid);
	if (vmmrec_write(&s->rec, e) < 0)
		return -1; /* the gate closes unopened (start_close): no QEMU */
	if (write(s->pg[1], "g", 1) != 1) {
		verr_sys(e, "ERR_SYSTEM", NULL, "cannot start the VMM of %s", s->c->id);
		return -1;
	}
	return 0;
}

/* QEMU up (QMP answers) with no word from its start on the error pipe;
 * then a snapshot's state restored into it. */
static int start_up(struct qstart *s, struct verr *e)
{
	const struct vmcfg *c = s->c;
	char msg[512] = "";
	bool up = qemu_up(s->rec.qmp, s->qpid, s->rec.start, c->incoming ? "\"inmigrate\"" : "\"running\"");
	ssize_t mn;

	fcntl(s->pe[0], F_SETFL, fcntl(s->pe[0], F_GETFL) | O_NONBLOCK);
	mn = read(s->pe[0], msg, sizeof msg - 1);
	if (mn > 0) {
		msg[mn] = 0;
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_VMM_START", "see vmsan doctor", "%s", msg);
	}
	if (!up) {
		log_tail(s->who, s->rundir, "vmm.log", msg, sizeof msg);
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_VMM_START", "see the VM's vmm.log", "QEMU did not start: %s",
				 msg);
	}
	if (c->incoming) {
		char err[512] = "";
		if (!qemu_restore(s->rec.qmp, s->statefd, err, sizeof err))
			return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT_RESTORE", "see the VM's vmm.log",
					 "restoring %s: %s", c->incoming, err[0] ? err : "QEMU did not resume");
	}
	return 0;
}

static void start_close(struct qstart *s)
{
	int fds[] = { s->vdir,	s->statefd, s->memfd, s->rundir, s->lfd,  s->pe[0],
		      s->pe[1], s->pp[0],   s->pp[1], s->pg[0],	 s->pg[1] };
	for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	close_fds(s->fds);
}

/* A failed start undone: QEMU killed, its RAM file and root's directory
 * for the VM removed (errno kept for the caller). */
static void start_undo(struct qstart *s)
{
	int keep = errno;
	if (s->qpid > 0 && s->rec.start >= 0)
		vmmrec_signal(&s->rec, SIGKILL);
	close_fds(s->fds);
	if (s->ram)
		ram_remove(s->c->id);
	if (s->vdir >= 0) {
		close(s->vdir);
		s->vdir = -1;
		vmmrec_remove(s->c->id);
	}
	start_close(s);
	json_decref(s->argv);
	errno = keep;
}

/* Each step takes what the ones before it made; on a failure start_undo
 * takes back all of it. */
json_t *qemu_start(const struct vmcfg *c, const struct caller *who, struct verr *e)
{
	char console[PATH_MAX];
	struct qstart s;
	json_t *reply;

	start_init(&s, c, who);
	if (start_open(&s, e) < 0 || start_ram(&s, e) < 0 || start_qemu(&s, e) < 0 || start_up(&s, e) < 0) {
		start_undo(&s);
		return NULL;
	}
	snprintf(console, sizeof console, "%s/console.log", c->run_dir);
	reply = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s, s:f, s:o}", "vmm", "qemu", "accel",
			  c->kvm ? "kvm" : "tcg", "pid", (json_int_t)s.qpid, "startTime", (json_int_t)s.rec.start,
			  "uid", (json_int_t)c->uid, "gid", (json_int_t)c->gid, "console", console, "qmpSocket",
			  s.rec.qmp, "startMs", ms_since(&s.t0), "argv", s.argv);
	if (c->kvm_refused)
		json_object_set_new(reply, "kvmRefused", json_string(c->kvm_why));
	start_close(&s);
	return reply;
}

/* The VM paused, its device state streamed over QMP into dir/state (fd:,
 * the guest's RAM left out: x-ignore-shared), its RAM file and its disk
 * copied (holes stay holes) into dir/memory and dir/disk.ext4, then
 * resumed unless asked not to.  A VM that was running is resumed on
 * failure too. */
json_t *qemu_snapshot(const struct vmmrec *r, const struct caller *who, const char *disk, const char *dir, bool resume,
		      struct verr *e)
{
	struct snapfiles s;
	int ramfd = -1, vdfd = -1, qfd = -1;
	bool paused = false;
	json_t *reply = NULL;
	char buf[8192], err[512] = "";
	struct timespec t0, t1;
	struct stat rs;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (snap_open(&s, who, dir, e) < 0)
		return NULL;
	if ((vdfd = caller_open(who, AT_FDCWD, disk, O_RDONLY, 0, CALLER_REG | CALLER_OWNED, "vmDisk", e)) < 0)
		goto out;
	/* the RAM file: root's record names it; it is the VMM's uid's */
	if ((ramfd = open(r->ram, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0 || fstat(ramfd, &rs) < 0 ||
	    !S_ISREG(rs.st_mode) || (long long)rs.st_uid != r->uid) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", "restart the VM (vmsan stop, vmsan start)",
			 "%s has no RAM file of its VMM's (%s)", r->id, r->ram);
		goto out;
	}
	if ((qfd = qmp_open(r->qmp, 30)) < 0) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", "see the VM's vmm.log", "QMP of %s does not answer",
			 r->id);
		goto out;
	}
	if (!qmp_do(qfd, "{\"execute\":\"stop\"}", buf, sizeof buf)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", NULL, "QEMU would not pause: %.200s", buf);
		goto out;
	}
	paused = true;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!qmp_do(qfd,
		    "{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":"
		    "[{\"capability\":\"x-ignore-shared\",\"state\":true}]}}",
		    buf, sizeof buf) ||
	    !qmp_send_fd(qfd, s.fd[0], "vmsan-state") ||
	    !qmp_do(qfd, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"fd:vmsan-state\"}}", buf, sizeof buf)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", NULL, "QEMU refused to save the VM: %.200s", buf);
		goto out;
	}
	if (!qmp_migration_done(qfd, 300, err, sizeof err)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", "see the VM's vmm.log", "saving the VM: %s", err);
		goto out;
	}
	if (copy_sparse(ramfd, s.fd[1], (uint64_t)rs.st_size, "copying the guest's memory", e) < 0 ||
	    copy_sparse(vdfd, s.fd[2], (uint64_t)lseek(vdfd, 0, SEEK_END), "copying the VM's disk", e) < 0 ||
	    fsync(s.fd[0]) < 0 || fsync(s.fd[1]) < 0 || fsync(s.fd[2]) < 0) {
		if (!verr_isset(e))
			verr_sys(e, "ERR_IO", NULL, "writing the snapshot");
		goto out;
	}
	reply = json_pack("{s:s, s:I, s:I, s:I, s:b, s:f, s:f}", "id", r->id, "stateBytes",
			  (json_int_t)lseek(s.fd[0], 0, SEEK_END), "memoryBytes", (json_int_t)allocated(s.fd[1]),
			  "diskBytes", (json_int_t)allocated(s.fd[2]), "resumed", resume, "pausedMs", ms_since(&t1),
			  "ms", ms_since(&t0));
out:
	if (paused && (resume || !reply) && !qmp_do(qfd, "{\"execute\":\"cont\"}", buf, sizeof buf) && reply) {
		json_decref(reply);
		reply = NULL;
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", "see the VM's vmm.log",
			 "the snapshot was taken but QEMU would not resume: %.200s", buf);
	}
	snap_close(&s, reply != NULL);
	int fds[] = { qfd, ramfd, vdfd };
	for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return reply;
}
