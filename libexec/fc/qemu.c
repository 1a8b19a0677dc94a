/* QEMU's microvm machine: its command line, its start as the VMM's uid in
 * the VM's namespace with every file handed over as a descriptor, and its
 * snapshot (device state over QMP, RAM file and disk copied). */
#define _GNU_SOURCE
#include "fc/fc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
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

json_t *qemu_argv(const struct vmcfg *c)
{
	char buf[PATH_MAX + 256], cmdline[2048], ram[128];
	json_t *a = json_array();
#define ADD(s) json_array_append_new(a, json_string(s))
#define ADDF(...) (snprintf(buf, sizeof buf, __VA_ARGS__), ADD(buf))
	ADD(c->conf->qemu);
	ADD("-name");
	ADDF("vmsan-%s,process=vmsan-%s", c->id, c->id);
	ADD("-machine");
	ADD("microvm,x-option-roms=off,rtc=on,acpi=off,memory-backend=ram");
	/* Guest RAM in a shared file vmsan-fc makes (in root's RAM_DIR, the
	 * VMM's): a snapshot saves only the device state into its stream
	 * (migration capability x-ignore-shared) and copies this file, as
	 * Firecracker splits a snapshot into state and memory. */
	ram_path(c->id, ram, sizeof ram);
	ADD("-object");
	ADDF("memory-backend-file,id=ram,size=%lldM,mem-path=%s,share=on", c->mem_mib, ram);
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
	/* QEMU opens nothing by name but the kernel and its RAM file:
	 * vmsan-fc opens the disks, the console file and the QMP socket and
	 * passes descriptors. */
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
	if ((fds[FD_VM_RW] = caller_open(who, AT_FDCWD, c->vm_disk, O_RDWR, 0, CALLER_REG | CALLER_OWNED, "vmDisk",
					 e)) < 0 ||
	    (fds[FD_VM_RO] = caller_open(who, AT_FDCWD, c->vm_disk, O_RDONLY, 0, CALLER_REG | CALLER_OWNED, "vmDisk",
					 e)) < 0 ||
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
	unlinkat(d, name, 0);   /* an earlier run's of this id: root's dir, our file */
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
	ram_remove(c->id);
	return -1;
}

/* The VMM's process: into the namespace, down to the uid, then exec with
 * the descriptors in place.  Messages go to errfd. */
static void exec_vmm(const struct vmcfg *c, json_t *argv, int fds[FD_COUNT], int errfd)
{
	char msg[256];
	if (c->netns) {
		char p[128];
		snprintf(p, sizeof p, "/run/netns/%s", c->netns);
		int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
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
	if (setgroups(c->kvm && c->kvm_gid >= 0 ? 2 : 1, groups) < 0 || setresgid(g, g, g) < 0 ||
	    setresuid((uid_t)c->uid, (uid_t)c->uid, (uid_t)c->uid) < 0) {
		snprintf(msg, sizeof msg, "cannot become uid %lld gid %lld: %s", c->uid, c->gid, strerror(errno));
		goto fail;
	}
	/* The TAP is attached as the VMM's uid, not as root: the kernel then
	 * holds it to the TAP's owner (vmsan-net sets it to the VMM's uid),
	 * so no caller can have its VMM take another VM's TAP. */
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
	if (!av) {
		snprintf(msg, sizeof msg, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n; i++)
		av[i] = (char *)json_string_value(json_array_get(argv, i));
	static char path_env[] = "PATH=/usr/bin:/bin";
	char *envp[] = { path_env, NULL };
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
	}
	/* nothing of ours but the descriptors QEMU was told of */
	close_range(FD_COUNT, ~0U, CLOSE_RANGE_CLOEXEC);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(av[0], av, envp);
	snprintf(msg, sizeof msg, "cannot run %s: %s", av[0], strerror(errno));
fail:
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
		  qmp_do(qfd, "{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":"
			      "[{\"capability\":\"x-ignore-shared\",\"state\":true}]}}", buf, sizeof buf) &&
		  qmp_send_fd(qfd, statefd, "vmsan-state") &&
		  qmp_do(qfd, "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"fd:vmsan-state\"}}", buf,
			 sizeof buf);
	if (!ok)
		snprintf(err, n, "QMP refused the incoming migration: %.300s", buf);
	else if (qmp_migration_done(qfd, 120, err, n))
		ok = qmp_do(qfd, "{\"execute\":\"cont\"}", buf, sizeof buf) && qmp_call(qfd, "query-status", "\"running\"");
	else
		ok = false;
	if (qfd >= 0)
		close(qfd);
	return ok;
}

json_t *qemu_start(const struct vmcfg *c, const struct caller *who, struct verr *e)
{
	int fds[FD_COUNT], rundir = -1, vdir = -1, lfd = -1, pe[2] = { -1, -1 }, pp[2] = { -1, -1 };
	int statefd = -1, memfd = -1;
	bool ram = false;
	pid_t qpid = -1;
	json_t *argv = NULL;
	struct vmmrec rec = { 0 };
	char console[PATH_MAX];

	for (int i = 0; i < FD_COUNT; i++)
		fds[i] = -1;
	snprintf(rec.id, sizeof rec.id, "%s", c->id);
	snprintf(rec.vmm, sizeof rec.vmm, "qemu");
	rec.owner = who->uid;
	rec.uid = c->uid;
	rec.gid = c->gid;
	vmm_dir_path(c->id, rec.qmp, sizeof rec.qmp);
	strncat(rec.qmp, "/qmp.sock", sizeof rec.qmp - strlen(rec.qmp) - 1);
	ram_path(c->id, rec.ram, sizeof rec.ram);
	if ((vdir = vmm_dir_make(c->id, e)) < 0 || open_vmm_files(c, who, vdir, fds, &rundir, e) < 0)
		goto fail;
	/* QEMU's own messages go to vmm.log. */
	lfd = caller_open(who, rundir, "vmm.log", O_WRONLY | O_APPEND | O_CREAT, 0600, CALLER_REG | CALLER_OWNED,
			  "VMM log", e);
	if (lfd < 0)
		goto fail;
	/* A snapshot to restore: its files are the caller's; its memory goes
	 * into the new RAM file, its state to QEMU over QMP. */
	if (c->incoming) {
		char sp[PATH_MAX + 16];
		snprintf(sp, sizeof sp, "%s/state", c->incoming);
		if ((statefd = caller_open(who, AT_FDCWD, sp, O_RDONLY, 0, CALLER_REG | CALLER_OWNED, "snapshot state",
					   e)) < 0)
			goto fail;
		snprintf(sp, sizeof sp, "%s/memory", c->incoming);
		if ((memfd = caller_open(who, AT_FDCWD, sp, O_RDONLY, 0, CALLER_REG | CALLER_OWNED, "snapshot memory",
					 e)) < 0)
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
	/* Root's record names the VMM before anything else can fail. */
	rec.pid = qpid;
	rec.start = proc_start_time(qpid);
	if (vmmrec_write(&rec, e) < 0)
		goto fail;
	bool up = qemu_up(rec.qmp, qpid, rec.start, c->incoming ? "\"inmigrate\"" : "\"running\"");
	char msg[512] = "";
	fcntl(pe[0], F_SETFL, fcntl(pe[0], F_GETFL) | O_NONBLOCK);
	ssize_t mn = read(pe[0], msg, sizeof msg - 1);
	if (mn > 0) {
		msg[mn] = 0;
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VMM_START", "see vmsan doctor", "%s", msg);
		goto fail;
	}
	if (!up) {
		log_tail(who, rundir, "vmm.log", msg, sizeof msg);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VMM_START", "see the VM's vmm.log", "QEMU did not start: %s", msg);
		goto fail;
	}
	if (c->incoming) {
		char err[512] = "";
		if (!qemu_restore(rec.qmp, statefd, err, sizeof err)) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT_RESTORE", "see the VM's vmm.log", "restoring %s: %s",
				 c->incoming, err[0] ? err : "QEMU did not resume");
			goto fail;
		}
	}
	double ms = ms_since(&t0);
	snprintf(console, sizeof console, "%s/console.log", c->run_dir);
	close(vdir);
	close(rundir);
	close(lfd);
	close(pe[0]);
	close(pp[0]);
	if (statefd >= 0)
		close(statefd);
	if (memfd >= 0)
		close(memfd);
	return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s, s:f, s:o}", "vmm", "qemu", "accel",
			 c->kvm ? "kvm" : "tcg", "pid", (json_int_t)qpid, "startTime", (json_int_t)rec.start, "uid",
			 (json_int_t)c->uid, "gid", (json_int_t)c->gid, "console", console, "qmpSocket", rec.qmp,
			 "startMs", ms, "argv", argv);
fail:
	{
		int keep = errno;
		if (qpid > 0 && rec.start >= 0)
			vmmrec_signal(&rec, SIGKILL);
		close_fds(fds);
		if (ram)
			ram_remove(c->id);
		if (vdir >= 0) {
			close(vdir);
			vmmrec_remove(c->id);
		}
		int more[] = { statefd, memfd, rundir, lfd, pe[0], pe[1], pp[0], pp[1] };
		for (size_t i = 0; i < sizeof more / sizeof *more; i++)
			if (more[i] >= 0)
				close(more[i]);
		json_decref(argv);
		errno = keep;
	}
	return NULL;
}

/* The VM paused, its device state streamed over QMP into dir/state (fd:,
 * the guest's RAM left out: x-ignore-shared), its RAM file and its disk
 * copied (holes stay holes) into dir/memory and dir/disk.ext4, then
 * resumed unless asked not to.  A VM that was running is resumed on
 * failure too. */
json_t *qemu_snapshot(const struct vmmrec *r, const struct caller *who, const char *disk, const char *dir,
		      bool resume, struct verr *e)
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
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", "see the VM's vmm.log", "QMP of %s does not answer", r->id);
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
