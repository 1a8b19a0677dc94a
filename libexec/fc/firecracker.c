/* Firecracker under its jailer: the jail (made afresh by root under the
 * configured chroot base), the jailer's command line, the API calls in
 * the documented order, and the snapshot calls.
 *
 * The jail's root is root's; the VMM (the caller's uid, for a user) may
 * write in its run/ directory and in the files root made for it.  So what
 * root reads there it opens without following links and checks; the API
 * socket in run/ it connects to with the VMM's uid as its file system
 * identity, so a symlink planted there leads nowhere the caller could not
 * go. */
#define _GNU_SOURCE
#include "fc/fc.h"
#include "lib/rootproc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *exe_name(const struct rootconf *conf)
{
	return strrchr(conf->firecracker, '/') + 1;
}

/* chroot-base/<firecracker's name>/<id> (the jail's root is its root/). */
void fc_jail_path(const struct rootconf *conf, const char *id, char *out, size_t n)
{
	snprintf(out, n, "%s/%s/%s", conf->chroot_base, exe_name(conf), id);
}

/* The VMM's uid as a caller: for what root does inside its jail. */
static void vmm_identity(struct caller *v, long long uid, long long gid)
{
	memset(v, 0, sizeof *v);
	v->uid = (uid_t)uid;
	v->gid = (gid_t)gid;
	v->groups[0] = (gid_t)gid;
	v->ngroups = 1;
}

json_t *fc_jailer_argv(const struct vmcfg *c)
{
	char buf[PATH_MAX + 64];
	json_t *a = json_array();
#define ADD(s) json_array_append_new(a, json_string(s))
#define ADDF(...) (snprintf(buf, sizeof buf, __VA_ARGS__), ADD(buf))
	ADD(c->conf->jailer);
	ADD("--id");
	ADD(c->id);
	ADD("--exec-file");
	ADD(c->conf->firecracker);
	ADD("--uid");
	ADDF("%lld", c->uid);
	ADD("--gid");
	ADDF("%lld", c->gid);
	ADD("--chroot-base-dir");
	ADD(c->conf->chroot_base);
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
json_t *fc_calls(const struct vmcfg *c)
{
	char cmdline[2048];
	kernel_cmdline(c, cmdline, sizeof cmdline);
	json_t *a = json_array();
	json_array_append_new(
		a, call("PUT", "/logger",
			json_pack("{s:s, s:s, s:b}", "log_path", "firecracker.log", "level", "Info", "show_level", 1)));
	if (c->incoming) {
		/* A snapshot restores into a fresh Firecracker: nothing else is
		 * configured first; its files are in the jail (start copies
		 * them there), the drives and the TAP under the names they had. */
		json_array_append_new(
			a, call("PUT", "/snapshot/load",
				json_pack("{s:s, s:{s:s, s:s}, s:b}", "snapshot_path", "snapshot.state", "mem_backend",
					  "backend_type", "File", "backend_path", "snapshot.mem", "resume_vm", 1)));
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
		json_array_append_new(a,
				      call("PUT", "/drives/image",
					   json_pack("{s:s, s:s, s:b, s:b, s:s, s:s}", "drive_id", "image",
						     "path_on_host", "image.ext4", "is_root_device", 0, "is_read_only",
						     1, "cache_type", "Unsafe", "io_engine", "Sync")));
	json_array_append_new(a,
			      call("PUT", "/machine-config",
				   json_pack("{s:I, s:I, s:b, s:b}", "vcpu_count", (json_int_t)c->vcpus, "mem_size_mib",
					     (json_int_t)c->mem_mib, "smt", 0, "track_dirty_pages", 0)));
	if (c->net)
		json_array_append_new(a, call("PUT", "/network-interfaces/eth0",
					      json_pack("{s:s, s:s, s:s}", "iface_id", "eth0", "host_dev_name", c->tap,
							"guest_mac", c->mac)));
	json_array_append_new(a, call("PUT", "/entropy", json_object()));
	json_array_append_new(a, call("PUT", "/actions", json_pack("{s:s}", "action_type", "InstanceStart")));
	return a;
}

/* One request on Firecracker's API socket, connected to as the VMM's uid;
 * the HTTP status (fault message in fault), or -1 when it does not
 * answer.  The answer is the VMM's, so the caller's: read into a fixed
 * buffer, only its status line and fault_message looked at. */
static int fc_http_as(const struct caller *vmm, const char *sock, const char *method, const char *path,
		      const char *body, char *fault, size_t fn)
{
	/* The socket's directory (run/, the VMM's) opened by root without
	 * following a link, so the VMM's uid need not reach the jail base; the
	 * socket itself then looked up and connected to as the VMM's uid. */
	char dir[JAIL_PATH_MAX], via[96];
	const char *slash = strrchr(sock, '/');
	if (!slash || (size_t)(slash - sock) >= sizeof dir)
		return -1;
	snprintf(dir, sizeof dir, "%.*s", (int)(slash - sock), sock);
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	snprintf(via, sizeof via, "/proc/self/fd/%d/%.40s", dfd, slash + 1);
	int fd = -1;
	if (caller_fs_begin(vmm) == 0) {
		fd = unix_connect(via, 10);
		caller_fs_end();
	}
	close(dfd);
	if (fd < 0)
		return -1;
	/* Nothing is said to a server that is not the VMM's uid: a socket of
	 * another's planted in the jail gets a connection and no byte. */
	struct ucred peer;
	socklen_t pl = sizeof peer;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &pl) != 0 || peer.uid != vmm->uid) {
		close(fd);
		snprintf(fault, fn, "the API socket is not served by the VMM's uid");
		return -1;
	}
	char head[512], resp[4096];
	size_t bl = body ? strlen(body) : 0;
	int hn = snprintf(head, sizeof head,
			  "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
			  "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			  method, path, bl);
	int status = -1;
	fault[0] = 0;
	if (write(fd, head, (size_t)hn) == hn && (!bl || write(fd, body, bl) == (ssize_t)bl)) {
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
				size_t want = cl ? (size_t)strtoul(cl + 15, NULL, 10) : 0;
				if (want > sizeof resp || got >= (size_t)(end + 4 - resp) + want)
					break;
			}
		}
		resp[got] = 0;
		if (got > 12 && !strncmp(resp, "HTTP/1.1 ", 9))
			status = atoi(resp + 9);
		/* The fault's text, not its JSON: quoted again in our reply, the
		 * body's \" would come out as \\\". */
		const char *bd = strstr(resp, "\r\n\r\n");
		json_t *doc = bd ? json_loads(bd + 4, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
		const char *fm = json_string_value(json_object_get(doc, "fault_message"));
		snprintf(fault, fn, "%.300s", fm ? fm : "");
		json_decref(doc);
		/* one line of ASCII: a UTF-8 character cut at 300 would be no string */
		for (char *p = fault; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				*p = '?';
	}
	close(fd);
	return status;
}

/* A root directory at dfd/name (made if absent): fd, or -1 with e set. */
static int root_subdir(int dfd, const char *name, bool fresh, struct verr *e)
{
	struct stat st;
	int fd;

	if (fresh && rm_tree_at(dfd, name) != 0) {
		verr_sys(e, "ERR_JAIL", NULL, "cannot remove the old jail %s", name);
		return -1;
	}
	if (mkdirat(dfd, name, 0755) != 0 && (fresh || errno != EEXIST)) {
		verr_sys(e, "ERR_JAIL", NULL, "cannot create %s in the jail base", name);
		return -1;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_uid != 0 || (st.st_mode & 022)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_JAIL", "remove it; vmsan-fc makes it again",
			 "%s in the jail base is not root's directory", name);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* The jail's root, chroot-base/<exe>/<id>/root, every directory made by
 * root now (an earlier run's jail of this id removed first: the id is the
 * caller's, claimed).  On failure the id's directory, made here, is
 * removed again; chroot-base and <exe> are every VM's and stay. */
static int jail_make(const struct vmcfg *c, struct verr *e)
{
	struct stat st;
	int base, x = -1, idfd = -1, rfd = -1;

	if (mkdir(c->conf->chroot_base, 0755) != 0 && errno != EEXIST) {
		verr_sys(e, "ERR_JAIL", "create it, or set chroot-base in " ROOTCONF_PATH, "cannot create %s",
			 c->conf->chroot_base);
		return -1;
	}
	base = open(c->conf->chroot_base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (base < 0 || fstat(base, &st) != 0 || st.st_uid != 0 || (st.st_mode & 022)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_ROOT_CONFIG", "chroot-base must be root's and not writable by others",
			 "the jail base %s is not root's directory", c->conf->chroot_base);
		goto out;
	}
	if ((x = root_subdir(base, exe_name(c->conf), false, e)) < 0)
		goto out;
	if ((idfd = root_subdir(x, c->id, true, e)) < 0 || (rfd = root_subdir(idfd, "root", false, e)) < 0)
		rm_tree_at(x, c->id); /* the id's jail: this call's, or an old one it could not replace */
out:
	if (base >= 0)
		close(base);
	if (x >= 0)
		close(x);
	if (idfd >= 0)
		close(idfd);
	return rfd;
}

void fc_jail_remove(const struct rootconf *conf, const char *id)
{
	char p[JAIL_PATH_MAX];
	int x;

	snprintf(p, sizeof p, "%s/%s", conf->chroot_base, exe_name(conf));
	x = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (x >= 0) {
		rm_tree_at(x, id);
		close(x);
	}
}

/* Links the file open as fd into the jail root (rootfd) as name: the very
 * file that was checked, whatever its path now names. */
static int jail_link(int fd, int rootfd, const char *name, struct verr *e)
{
	char from[64];
	snprintf(from, sizeof from, "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, from, rootfd, name, AT_SYMLINK_FOLLOW) < 0) {
		if (errno == EXDEV)
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_JAIL",
				 "put the jail base (chroot-base) on the file system of VMSAN_DIR",
				 "cannot hard-link %s into the jail: another file system", name);
		else
			verr_sys(e, "ERR_JAIL", NULL, "cannot link %s into the jail", name);
		return -1;
	}
	return 0;
}

/* A file of the jail's root (root's directory: the VMM may write only in
 * run/), made new by root for the VMM's uid. */
static int jail_create(int rfd, const char *name, const struct caller *vmm, struct verr *e)
{
	unlinkat(rfd, name, 0);
	int fd = openat(rfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || fchown(fd, vmm->uid, vmm->gid) < 0) {
		verr_sys(e, "ERR_JAIL", NULL, "cannot make %s in the jail", name);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* A file Firecracker wrote into one jail_create made: still a regular file
 * of the VMM's uid (its content is the VMM's to choose, and is only
 * copied). */
static int jail_read(int rfd, const char *name, const struct caller *vmm, struct verr *e)
{
	struct stat st;
	int fd = openat(rfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != vmm->uid) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", NULL, "the jail's %s is not the file made for Firecracker",
			 name);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* A copy of the file open as fd in the jail root, the VMM's: for the
 * kernel, which the caller need only be able to read (a hard link would
 * hand the caller a name for a file that is not theirs, set-uid binaries
 * included, that outlives the jail). */
static int jail_copy(int fd, int rfd, const char *name, const struct caller *vmm, struct verr *e)
{
	struct stat st;
	int out = jail_create(rfd, name, vmm, e);
	if (out < 0)
		return -1;
	int rc = fstat(fd, &st) < 0 ? -1
				    : copy_sparse(fd, out, (uint64_t)st.st_size, "copying the kernel into the jail", e);
	if (rc < 0 && !verr_isset(e))
		verr_sys(e, "ERR_JAIL", NULL, "cannot copy %s into the jail", name);
	close(out);
	return rc;
}

/* A snapshot's state and memory, copied into the jail as Firecracker's
 * uid's (copies, not links: linking the snapshot's own files would hand
 * them to that uid). */
static int jail_snapshot(const struct vmcfg *c, const struct caller *who, const struct caller *vmm, int rfd,
			 struct verr *e)
{
	static const char *const from[] = { "state", "memory" }, *const to[] = { "snapshot.state", "snapshot.mem" };
	for (int i = 0; i < 2; i++) {
		char p[PATH_MAX + 16];
		struct stat st;
		snprintf(p, sizeof p, "%s/%s", c->incoming, from[i]);
		int in = caller_open(who, AT_FDCWD, p, O_RDONLY, 0, CALLER_REG | CALLER_OWNED, "snapshot file", e);
		if (in < 0)
			return -1;
		int out = jail_create(rfd, to[i], vmm, e);
		int rc = out < 0 || fstat(in, &st) < 0
				 ? -1
				 : copy_sparse(in, out, (uint64_t)st.st_size, "copying the snapshot into the jail", e);
		close(in);
		if (out >= 0)
			close(out);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* Firecracker's pid, from the pid file the jailer wrote in the jail (the
 * VMM's to rewrite: read as its uid, and believed only for a process of
 * that uid). */
static pid_t jail_pid(const struct caller *vmm, int rfd, const char *exe)
{
	char name[PATH_MAX], buf[32] = "";
	struct stat st;
	char proc[48];
	snprintf(name, sizeof name, "%s.pid", exe);
	struct verr ignore = { 0 };
	int pf = caller_open(vmm, rfd, name, O_RDONLY, 0, CALLER_REG, "pid file", &ignore);
	if (pf < 0)
		return -1;
	ssize_t r = read(pf, buf, sizeof buf - 1);
	close(pf);
	buf[r > 0 ? r : 0] = 0;
	long pid = strtol(buf, NULL, 10);
	if (pid <= 1 || pid > INT_MAX)
		return -1;
	snprintf(proc, sizeof proc, "/proc/%ld", pid);
	if (stat(proc, &st) != 0 || st.st_uid != vmm->uid)
		return -1;
	return (pid_t)pid;
}

/* A Firecracker start: what each step made, for the steps after it and
 * for start_undo. */
struct fcstart {
	const struct vmcfg *c;
	const struct caller *who;
	struct caller vmm;
	int fds[FD_COUNT], rundir, kfd, rfd, vdir, lfd;
	char root[JAIL_PATH_MAX - 32];
	struct vmmrec rec;
	pid_t fpid;
	bool jailed;
	json_t *jargv, *calls;
	struct timespec t0;
};

static void start_init(struct fcstart *s, const struct vmcfg *c, const struct caller *who)
{
	char jail[JAIL_PATH_MAX - 64];

	memset(s, 0, sizeof *s);
	s->c = c;
	s->who = who;
	for (int i = 0; i < FD_COUNT; i++)
		s->fds[i] = -1;
	s->rundir = s->kfd = s->rfd = s->vdir = s->lfd = -1;
	s->fpid = -1;
	vmm_identity(&s->vmm, c->uid, c->gid);
	fc_jail_path(c->conf, c->id, jail, sizeof jail);
	snprintf(s->root, sizeof s->root, "%s/root", jail);
	snprintf(s->rec.id, sizeof s->rec.id, "%s", c->id);
	snprintf(s->rec.vmm, sizeof s->rec.vmm, "firecracker");
	snprintf(s->rec.api, sizeof s->rec.api, "%s/" FC_API_SOCK, s->root);
	s->rec.owner = who->uid;
	s->rec.uid = c->uid;
	s->rec.gid = c->gid;
	s->rec.home = c->home;
}

/* Root's directory for the VM, and the caller's files, opened as the
 * caller. */
static int start_open(struct fcstart *s, struct verr *e)
{
	const struct vmcfg *c = s->c;
	const struct caller *who = s->who;

	if ((s->vdir = vmm_dir_make(c->id, e)) < 0 ||
	    (s->rundir = caller_open(who, AT_FDCWD, c->run_dir, O_RDONLY, 0, CALLER_DIR | CALLER_OWNED, "runDir", e)) <
		    0 ||
	    (s->fds[FD_VM_RW] =
		     caller_open(who, AT_FDCWD, c->vm_disk, O_RDWR, 0, CALLER_REG | CALLER_OWNED, "vmDisk", e)) < 0 ||
	    (c->image_disk && (s->fds[FD_IMAGE] = caller_open(who, AT_FDCWD, c->image_disk, O_RDONLY, 0,
							      CALLER_REG | CALLER_OWNED, "imageDisk", e)) < 0) ||
	    (s->kfd = caller_open(who, AT_FDCWD, c->kernel, O_RDONLY, 0, CALLER_REG, "kernel", e)) < 0)
		return -1;
	return 0;
}

/* The jail root, with a copy of the kernel and the disks hard-linked in
 * (and a snapshot's files copied): the jailer chroots Firecracker there
 * as uid:gid, which must be able to use them (the VM disk is handed to
 * that uid when root owns it).  Then the VMM's log, the caller's. */
static int start_jail(struct fcstart *s, struct verr *e)
{
	const struct vmcfg *c = s->c;

	if ((s->rfd = jail_make(c, e)) < 0)
		return -1;
	s->jailed = true;
	if (jail_copy(s->kfd, s->rfd, "vmlinux", &s->vmm, e) < 0 ||
	    jail_link(s->fds[FD_VM_RW], s->rfd, "vm.ext4", e) < 0 ||
	    (c->image_disk && jail_link(s->fds[FD_IMAGE], s->rfd, "image.ext4", e) < 0) ||
	    (c->incoming && jail_snapshot(c, s->who, &s->vmm, s->rfd, e) < 0))
		return -1;
	if (s->who->root && fchown(s->fds[FD_VM_RW], (uid_t)c->uid, (gid_t)c->gid) < 0) {
		verr_sys(e, "ERR_JAIL", NULL, "cannot give the VM disk to uid %lld", c->uid);
		return -1;
	}
	s->lfd = caller_open(s->who, s->rundir, "vmm.log", O_WRONLY | O_APPEND | O_CREAT, 0600,
			     CALLER_REG | CALLER_OWNED, "VMM log", e);
	return s->lfd < 0 ? -1 : 0;
}

/* av run with nothing on stdin and stdout, stderr to logfd, no signal
 * blocked, and waited for: 0 with its wait status in *st, or an errno. */
static int spawn_wait(const char **av, int logfd, int *st)
{
	static char path_env[] = "PATH=/usr/bin:/bin";
	char *envp[] = { path_env, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t sa;
	sigset_t none, dfl;
	pid_t pid;
	int rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, logfd, 2);
	sigemptyset(&none);
	rootproc_child_sigdefault(&dfl);
	posix_spawnattr_init(&sa);
	posix_spawnattr_setsigmask(&sa, &none);
	posix_spawnattr_setsigdefault(&sa, &dfl);
	posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = av ? posix_spawn(&pid, av[0], &fa, &sa, (char *const *)av, envp) : ENOMEM;
	posix_spawnattr_destroy(&sa);
	posix_spawn_file_actions_destroy(&fa);
	if (rc == 0)
		while (waitpid(pid, st, 0) < 0 && errno == EINTR)
			;
	return rc;
}

/* The jailer, run to its end (--daemonize: it leaves Firecracker
 * behind). */
static int start_jailer(struct fcstart *s, struct verr *e)
{
	const char **av;
	size_t n;
	int rc, st = 0;

	s->jargv = fc_jailer_argv(s->c);
	n = json_array_size(s->jargv);
	av = calloc(n + 1, sizeof *av);
	for (size_t i = 0; av && i < n; i++)
		av[i] = json_string_value(json_array_get(s->jargv, i));
	clock_gettime(CLOCK_MONOTONIC, &s->t0);
	rc = spawn_wait(av, s->lfd, &st);
	free(av);
	if (rc || !WIFEXITED(st) || WEXITSTATUS(st)) {
		char msg[512];
		log_tail(s->who, s->rundir, "vmm.log", msg, sizeof msg);
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_VMM_START", "see the VM's vmm.log", "the jailer failed: %s",
				 rc ? strerror(rc) : msg);
	}
	return 0;
}

/* Firecracker, named by the pid file the jailer left and up once its API
 * socket is there; root's record then names it. */
static int start_record(struct fcstart *s, struct verr *e)
{
	for (int i = 0; i < 500; i++) {
		struct stat ss;
		s->fpid = jail_pid(&s->vmm, s->rfd, exe_name(s->c->conf));
		if (s->fpid > 1 && fstatat(s->rfd, FC_API_SOCK, &ss, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(ss.st_mode))
			break;
		poll(NULL, 0, 10);
	}
	s->rec.pid = s->fpid;
	s->rec.start = s->fpid > 1 ? proc_start_time(s->fpid) : -1;
	if (s->fpid <= 1 || s->rec.start < 0)
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_VMM_START", "see the VM's vmm.log",
				 "Firecracker did not come up (no pid file or API socket in %s)", s->root);
	return vmmrec_write(&s->rec, e) < 0 ? -1 : 0;
}

/* The API calls, in order; the first refusal ends it. */
static int start_api(struct fcstart *s, struct verr *e)
{
	char fault[512] = "";
	json_t *cl;
	size_t i;

	s->calls = fc_calls(s->c);
	json_array_foreach(s->calls, i, cl) {
		char *body = json_dumps(json_object_get(cl, "body"), JSON_COMPACT);
		const char *m = json_string_value(json_object_get(cl, "method")),
			   *p = json_string_value(json_object_get(cl, "path"));
		int code = fc_http_as(&s->vmm, s->rec.api, m, p, body, fault, sizeof fault);
		free(body);
		if (code < 200 || code > 299)
			return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_VMM_START", "see the VM's vmm.log",
					 "Firecracker refused %s %s (HTTP %d): %s", m, p, code,
					 fault[0] ? fault : "no answer");
	}
	return 0;
}

static void start_close(struct fcstart *s)
{
	int fds[] = { s->vdir, s->rundir, s->kfd, s->rfd, s->lfd };
	for (size_t k = 0; k < sizeof fds / sizeof *fds; k++)
		if (fds[k] >= 0)
			close(fds[k]);
	close_fds(s->fds);
}

/* A failed start undone: Firecracker killed, the jail and root's
 * directory for the VM removed. */
static void start_undo(struct fcstart *s)
{
	if (s->fpid > 1 && s->rec.start >= 0)
		vmmrec_signal(&s->rec, SIGKILL);
	if (s->jailed)
		fc_jail_remove(s->c->conf, s->c->id);
	if (s->vdir >= 0) {
		close(s->vdir);
		s->vdir = -1;
		vmmrec_remove(s->c->id);
	}
	start_close(s);
	json_decref(s->calls);
	json_decref(s->jargv);
}

/* Each step takes what the ones before it made; on a failure start_undo
 * takes back all of it. */
json_t *fc_start(const struct vmcfg *c, const struct caller *who, struct verr *e)
{
	struct fcstart s;
	json_t *reply;

	if (!rootconf_trusted_program(c->conf->jailer, "jailer", e) ||
	    !rootconf_trusted_program(c->conf->firecracker, "firecracker", e))
		return NULL;
	start_init(&s, c, who);
	if (start_open(&s, e) < 0 || start_jail(&s, e) < 0 || start_jailer(&s, e) < 0 || start_record(&s, e) < 0 ||
	    start_api(&s, e) < 0) {
		start_undo(&s);
		return NULL;
	}
	reply = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s, s:f, s:o, s:o}", "vmm", "firecracker", "accel",
			  "kvm", "pid", (json_int_t)s.fpid, "startTime", (json_int_t)s.rec.start, "uid",
			  (json_int_t)c->uid, "gid", (json_int_t)c->gid, "chroot", s.root, "apiSocket", s.rec.api,
			  "startMs", ms_since(&s.t0), "jailer", s.jargv, "api", s.calls);
	start_close(&s);
	return reply;
}

#define VM_PAUSED "{\"state\":\"Paused\"}"
#define VM_RESUMED "{\"state\":\"Resumed\"}"
#define SNAPSHOT_FULL \
	"{\"snapshot_type\":\"Full\",\"snapshot_path\":\"snapshot.state\",\"mem_file_path\":\"snapshot.mem\"}"

/* The state and memory Firecracker wrote in the jail (read as its uid), and
 * the VM disk, into the caller's snapshot files. */
static int copy_out(int rfd, const struct caller *vmm, int vdfd, struct snapfiles *s, struct verr *e)
{
	static const char *const from[] = { "snapshot.state", "snapshot.mem" };

	for (int i = 0; i < 3; i++) {
		int in = i < 2 ? jail_read(rfd, from[i], vmm, e) : dup(vdfd), rc = -1;
		struct stat st;

		if (in >= 0 && fstat(in, &st) == 0)
			rc = copy_sparse(in, s->fd[i], (uint64_t)st.st_size, "copying the snapshot out of the jail", e);
		if (in >= 0)
			close(in);
		if (rc < 0 || fsync(s->fd[i]) < 0) {
			if (!verr_isset(e))
				verr_sys(e, "ERR_SNAPSHOT", NULL, "cannot copy %s", i < 2 ? from[i] : "the VM disk");
			return -1;
		}
	}
	return 0;
}

/* PATCH /vm Paused, PUT /snapshot/create into its jail, the files copied
 * out to dir (state, memory) with the disk, the jail's copies removed,
 * PATCH /vm Resumed unless asked not to. */
json_t *fc_snapshot(const struct vmmrec *r, const struct caller *who, const struct rootconf *conf, const char *disk,
		    const char *dir, bool resume, struct verr *e)
{
	char jail[JAIL_PATH_MAX - 64], root[JAIL_PATH_MAX - 32], fault[512] = "";
	struct snapfiles s;
	struct caller vmm;
	int rfd = -1, vdfd = -1, code;
	bool paused = false;
	json_t *reply = NULL;
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	vmm_identity(&vmm, r->uid, r->gid);
	fc_jail_path(conf, r->id, jail, sizeof jail);
	snprintf(root, sizeof root, "%s/root", jail);
	if (snap_open(&s, who, dir, e) < 0)
		return NULL;
	if ((vdfd = caller_open(who, AT_FDCWD, disk, O_RDONLY, 0, CALLER_REG | CALLER_OWNED, "vmDisk", e)) < 0)
		goto out;
	if ((rfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		verr_sys(e, "ERR_SNAPSHOT", NULL, "cannot open the jail of %s", r->id);
		goto out;
	}
	if ((code = fc_http_as(&vmm, r->api, "PATCH", "/vm", VM_PAUSED, fault, sizeof fault)) / 100 != 2) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", NULL, "Firecracker would not pause (HTTP %d): %s", code,
			 fault);
		goto out;
	}
	paused = true;
	/* The files Firecracker writes, made here for its uid. */
	for (int i = 0; i < 2; i++) {
		int fd = jail_create(rfd, i ? "snapshot.mem" : "snapshot.state", &vmm, e);
		if (fd < 0)
			goto out;
		close(fd);
	}
	if ((code = fc_http_as(&vmm, r->api, "PUT", "/snapshot/create", SNAPSHOT_FULL, fault, sizeof fault)) / 100 !=
	    2) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", NULL, "Firecracker refused the snapshot (HTTP %d): %s",
			 code, fault);
		goto out;
	}
	if (copy_out(rfd, &vmm, vdfd, &s, e) != 0)
		goto out;
	reply = json_pack("{s:s, s:I, s:I, s:I, s:b, s:f}", "id", r->id, "stateBytes",
			  (json_int_t)lseek(s.fd[0], 0, SEEK_END), "memoryBytes", (json_int_t)allocated(s.fd[1]),
			  "diskBytes", (json_int_t)allocated(s.fd[2]), "resumed", resume, "ms", ms_since(&t0));
out:
	if (rfd >= 0) {
		unlinkat(rfd, "snapshot.state", 0);
		unlinkat(rfd, "snapshot.mem", 0);
		close(rfd);
	}
	if (paused && (resume || !reply) &&
	    fc_http_as(&vmm, r->api, "PATCH", "/vm", VM_RESUMED, fault, sizeof fault) / 100 != 2 && reply) {
		json_decref(reply);
		reply = NULL;
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", NULL,
			 "the snapshot was taken but Firecracker would not resume: %s", fault);
	}
	snap_close(&s, reply != NULL);
	if (vdfd >= 0)
		close(vdfd);
	return reply;
}

/* PATCH /vm for pause and resume, and SendCtrlAltDel for stop, as the
 * VMM's uid. */
int fc_action(const struct vmmrec *r, const char *body_path, const char *body, char *fault, size_t fn)
{
	struct caller vmm;
	vmm_identity(&vmm, r->uid, r->gid);
	return fc_http_as(&vmm, r->api, !strcmp(body_path, "/vm") ? "PATCH" : "PUT", body_path, body, fault, fn);
}
