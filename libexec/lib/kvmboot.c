/* A guest kernel booted once under KVM, to know whether it boots at all
 * (kvmboot.h says why).  The boot: QEMU's microvm machine, KVM, no disk,
 * no network, the serial console on a pipe; the kernel panics for want of
 * a root file system, and with panic=-1 and -no-reboot QEMU then exits 0.
 * "Kernel panic" on the console is the proof: the kernel ran to the end of
 * its own start, through the CPU setup, the MSRs and the FPU state that
 * fail under a KVM that cannot run it. */
#define _GNU_SOURCE
#include "lib/kvmboot.h"
#include "lib/caller.h"
#include "lib/rootproc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define CONSOLE_KEEP 4096 /* the console's last bytes, for the detail */
/* A check that timed out says "no" for this long only: a host busy at the
 * time (or made busy on purpose by one of its users) is not a KVM that
 * cannot boot the kernel, yet a KVM where guests hang must not cost every
 * start its 10 s either. */
#define KVM_TIMEOUT_KEEP_S 600

/* What the answer depends on: the host kernel (its KVM), QEMU's binary,
 * and the guest kernel's file. */
static int boot_key(const char *qemu, int kernel_fd, const char *accel, char *key, size_t n)
{
	struct utsname u;
	struct stat qs, ks;

	if (uname(&u) < 0 || stat(qemu, &qs) < 0 || fstat(kernel_fd, &ks) < 0)
		return -1;
	snprintf(key, n, "%s; host %s %s; qemu %s %llu:%llu %lld %lld.%09ld; kernel %llu:%llu %lld %lld.%09ld",
		 accel ? accel : "kvm", u.release, u.version, qemu, (unsigned long long)qs.st_dev,
		 (unsigned long long)qs.st_ino, (long long)qs.st_size, (long long)qs.st_mtim.tv_sec, qs.st_mtim.tv_nsec,
		 (unsigned long long)ks.st_dev, (unsigned long long)ks.st_ino, (long long)ks.st_size,
		 (long long)ks.st_mtim.tv_sec, ks.st_mtim.tv_nsec);
	return 0;
}

/* The cache file's name: FNV-1a of the key (the key itself is kept in the
 * file and compared, so a collision only costs a boot). */
static void key_name(const char *key, char *out, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	snprintf(out, n, "kvm-boot-%016llx.json", (unsigned long long)h);
}

static int cache_read(int dirfd, const char *name, const char *key, struct kvm_boot *b)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	json_t *j;
	int rc = -1;

	if (fd < 0)
		return -1;
	j = json_loadfd(fd, 0, NULL);
	close(fd);
	if (json_is_object(j) && json_is_string(json_object_get(j, "key")) &&
	    !strcmp(json_string_value(json_object_get(j, "key")), key) &&
	    json_is_boolean(json_object_get(j, "boots")) &&
	    (!json_is_true(json_object_get(j, "timedOut")) ||
	     (long long)time(NULL) - json_integer_value(json_object_get(j, "at")) < KVM_TIMEOUT_KEEP_S)) {
		b->boots = json_is_true(json_object_get(j, "boots"));
		b->ms = json_number_value(json_object_get(j, "ms"));
		snprintf(b->detail, sizeof b->detail, "%s",
			 json_string_value(json_object_get(j, "detail"))
				 ? json_string_value(json_object_get(j, "detail"))
				 : "");
		b->cached = true;
		rc = 0;
	}
	json_decref(j);
	return rc;
}

/* Written whole into a file with no name (O_TMPFILE), then linked into
 * place: killed at any point, nothing is left behind (a named temporary
 * file stayed for good).  An answer there already (one that timed out,
 * kept for a while only) is replaced: removed, then linked; a reader
 * in between finds none and boots once more.  Where the directory's file
 * system has no O_TMPFILE, the answer is not kept.  0 kept, -1 not
 * (the next check boots again). */
static int cache_write(int dirfd, const char *name, const char *key, const struct kvm_boot *b)
{
	char self[64];
	json_t *j = json_pack("{s:s, s:b, s:f, s:s, s:b, s:I}", "key", key, "boots", b->boots, "ms", b->ms, "detail",
			      b->detail, "timedOut", b->timed_out, "at", (json_int_t)time(NULL));
	int fd = openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644), rc = -1;

	/* linked through /proc (AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH,
	 * which vmsan-probe run by a user lacks) */
	snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
	if (fd >= 0 && j && json_dumpfd(j, fd, JSON_COMPACT) == 0 && fchmod(fd, 0644) == 0 && fsync(fd) == 0) {
		rc = linkat(AT_FDCWD, self, dirfd, name, AT_SYMLINK_FOLLOW);
		if (rc < 0 && errno == EEXIST && unlinkat(dirfd, name, 0) == 0)
			rc = linkat(AT_FDCWD, self, dirfd, name, AT_SYMLINK_FOLLOW);
	}
	if (fd >= 0)
		close(fd);
	json_decref(j);
	return rc;
}

/* What the caller could have set to make QEMU fail or crawl, and that a
 * process it started inherits through sudo: resource limits, niceness,
 * scheduling class, cgroup (a user's delegated one may be throttled).
 * Undone as far as this process may (root without CAP_SYS_RESOURCE, as in
 * some containers, cannot raise a hard limit).  -1, with what was left,
 * when a limit that can make QEMU fail stays lowered: the check is then
 * no answer, and nothing is kept. */
static int undo_caller_limits(char *why, size_t n)
{
	static const int more[] = { RLIMIT_NPROC, RLIMIT_MEMLOCK }; /* as far as it may */
	struct rlimit r = { RLIM_INFINITY, RLIM_INFINITY };
	struct sched_param sp = { 0 };
	int res = 0;
	const char *lowered = rootproc_unlimit(&res);

	if (lowered) {
		getrlimit(res, &r);
		snprintf(why, n, "the check ran with its %s limited to %llu by its caller: no answer", lowered,
			 (unsigned long long)r.rlim_cur);
		return -1;
	}
	for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
		setrlimit(more[i], &r);
	r.rlim_cur = r.rlim_max = 1024;
	setrlimit(RLIMIT_NOFILE, &r);
	r.rlim_cur = r.rlim_max = 8 << 20;
	setrlimit(RLIMIT_STACK, &r);
	setpriority(PRIO_PROCESS, 0, 0);
	sched_setscheduler(0, SCHED_OTHER, &sp);
	if (geteuid() == 0) {
		int fd = open("/sys/fs/cgroup/cgroup.procs", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			(void)!write(fd, "0\n", 2);
			close(fd);
		}
	}
	return 0;
}

/* In the child: QEMU as `as`, the kernel on fd 3, the console on out. */
__attribute__((noreturn)) static void boot_child(const char *qemu, int kernel_fd, const struct kvm_boot_as *as, int out)
{
	static char path_env[] = "PATH=/usr/bin:/bin";
	char *envp[] = { path_env, NULL };
	bool tcg = as->accel && !strcmp(as->accel, "tcg");
	const char *argv[] = { qemu,
			       "-machine",
			       "microvm,x-option-roms=off,rtc=on,acpi=off",
			       "-accel",
			       tcg ? "tcg" : "kvm",
			       "-cpu",
			       tcg ? "max" : "host",
			       "-m",
			       "128",
			       "-smp",
			       "1",
			       "-nodefaults",
			       "-no-user-config",
			       "-display",
			       "none",
			       "-no-reboot",
			       "-sandbox",
			       "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
			       "-serial",
			       "stdio",
			       "-kernel",
			       "/proc/self/fd/3",
			       "-append",
			       "console=ttyS0 reboot=t panic=-1 root=/dev/vda",
			       NULL };
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

	rootproc_child_signals();
	if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0 ||
	    (kernel_fd == 3 ? fcntl(3, F_SETFD, 0) : dup2(kernel_fd, 3)) < 0)
		_exit(126);
	closefrom(4);
	char why[160];
	if (undo_caller_limits(why, sizeof why) < 0) {
		dprintf(2, "%s\n", why);
		_exit(125);
	}
	if (as->uid >= 0 && become_uid(as->uid, as->gid, as->kvm_gid) < 0)
		_exit(126);
	if (chdir("/") < 0)
		_exit(126);
	/* the device, as QEMU will open it: no access is no answer */
	int kvm = tcg ? open("/dev/null", O_RDONLY | O_CLOEXEC) : open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		dprintf(2, "cannot open /dev/kvm as uid %u: %s\n", (unsigned)getuid(), strerror(errno));
		_exit(125);
	}
	close(kvm);
	execve(qemu, (char *const *)argv, envp);
	_exit(127);
}

/* The last line of what QEMU and the guest said, made printable. */
static void last_words(const char *buf, size_t len, char *out, size_t n)
{
	size_t end = len, start;

	while (end && (buf[end - 1] == '\n' || buf[end - 1] == '\r' || buf[end - 1] == ' '))
		end--;
	start = end;
	while (start && buf[start - 1] != '\n')
		start--;
	if (end - start > n / 2)
		start = end - n / 2;
	size_t o = 0;
	for (size_t i = start; i < end && o + 1 < n; i++)
		out[o++] = (buf[i] >= 0x20 && buf[i] < 0x7f) ? buf[i] : '?';
	out[o] = 0;
}

static double since_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* The boot itself: b filled, or -1 when QEMU could not be run. */
static int boot(const char *qemu, int kernel_fd, const struct kvm_boot_as *as, struct kvm_boot *b)
{
	char con[CONSOLE_KEEP], last[256];
	size_t len = 0;
	int p[2], st = 0;
	bool timed_out = false;
	struct timespec t0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(b->detail, sizeof b->detail, "cannot make a pipe: %s", strerror(errno));
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	if (pid == 0)
		boot_child(qemu, kernel_fd, as, p[1]);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		snprintf(b->detail, sizeof b->detail, "cannot fork: %s", strerror(errno));
		return -1;
	}
	for (;;) {
		double left = KVM_BOOT_SECS * 1e3 - since_ms(&t0);
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		char chunk[1024];
		ssize_t r;

		if (left <= 0) {
			timed_out = true;
			break;
		}
		if (poll(&pf, 1, (int)left + 1) <= 0)
			continue;
		r = read(p[0], chunk, sizeof chunk);
		if (r <= 0)
			break;
		/* keep the last CONSOLE_KEEP bytes (a chunk is smaller) */
		if (len + (size_t)r > sizeof con) {
			size_t drop = len + (size_t)r - sizeof con;
			memmove(con, con + drop, len - drop);
			len -= drop;
		}
		memcpy(con + len, chunk, (size_t)r);
		len += (size_t)r;
	}
	if (timed_out)
		kill(pid, SIGKILL);
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	b->ms = since_ms(&t0);
	b->cached = false;
	b->timed_out = timed_out;
	b->boots = !timed_out && memmem(con, len, "Kernel panic", 12) != NULL;
	last_words(con, len, last, sizeof last);
	if (b->boots)
		snprintf(b->detail, sizeof b->detail, "the guest kernel booted under %s in %.0f ms",
			 as->accel ? as->accel : "KVM", b->ms);
	else if (WIFEXITED(st) && WEXITSTATUS(st) == 125)
		snprintf(b->detail, sizeof b->detail, "%s", last);
	else if (WIFEXITED(st) && WEXITSTATUS(st) >= 126)
		snprintf(b->detail, sizeof b->detail, "cannot run %s", qemu);
	else
		snprintf(b->detail, sizeof b->detail, "%s%s%s%s",
			 timed_out ? "the guest did not reach its first panic within " : "QEMU stopped: ",
			 timed_out ? "10 s" : "", timed_out ? (*last ? "; last words: " : " ") : "",
			 *last ? last : "(no output)");
	if (!b->boots && !(WIFEXITED(st) && WEXITSTATUS(st) >= 125) && access("/sys/module/kvm_pvm", F_OK) == 0) {
		size_t l = strlen(b->detail);
		snprintf(b->detail + l, sizeof b->detail - l,
			 " (this host's KVM is PVM, which runs only guest kernels built for PVM)");
	}
	return WIFEXITED(st) && WEXITSTATUS(st) >= 125 ? -1 : 0;
}

int kvm_boot_cached(const char *qemu, int kernel_fd, const char *accel, int cache_dirfd, struct kvm_boot *b)
{
	char key[1024], name[64];

	memset(b, 0, sizeof *b);
	if (cache_dirfd < 0 || boot_key(qemu, kernel_fd, accel, key, sizeof key) < 0)
		return -1;
	key_name(key, name, sizeof name);
	return cache_read(cache_dirfd, name, key, b);
}

int kvm_boot_check(const char *qemu, int kernel_fd, const struct kvm_boot_as *as, int cache_dirfd, struct kvm_boot *b)
{
	char key[1024], name[64];
	int rc;

	memset(b, 0, sizeof *b);
	if (boot_key(qemu, kernel_fd, as->accel, key, sizeof key) < 0) {
		snprintf(b->detail, sizeof b->detail, "cannot stat QEMU or the kernel: %s", strerror(errno));
		return -1;
	}
	key_name(key, name, sizeof name);
	if (cache_dirfd >= 0 && cache_read(cache_dirfd, name, key, b) == 0)
		return 0;
	rc = boot(qemu, kernel_fd, as, b);
	if (rc == 0 && cache_dirfd >= 0)
		cache_write(cache_dirfd, name, key, b);
	return rc;
}
