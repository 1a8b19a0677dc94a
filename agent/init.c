/* vmsan-init: PID 1 in every vmsan guest.
 *
 * A static binary with no dependency on the image.  The kernel mounts the
 * VM's own small writable disk as / and runs /vmsan/init from it.  That
 * disk holds (written by the host, see vmsan-init(8)):
 *
 *   /vmsan/init           this program
 *   /vmsan/vmsan-agent    the guest agent
 *   /vmsan/agent.token    the agent's bearer token (0600)
 *   /vmsan/agent.env      the image's environment, KEY=VALUE lines
 *   /upper, /work         the overlay's upper and work directories
 *
 * init then:
 *  1. mounts devtmpfs, opens /dev/console for its stdio, mounts /proc;
 *  2. reads its settings from the kernel command line (vmsan.*);
 *  3. mounts the image disk read-only and an overlay of it under the VM
 *     disk's /upper, and moves into that overlay as / (the VM disk itself
 *     stays out of reach of everything in the guest);
 *  4. mounts /proc, /sys, /dev, /dev/pts, /dev/shm, /run, /tmp (and
 *     cgroup2 when the kernel has it), sets the hostname, brings up lo and
 *     the VM's interface with its address and default route (ioctls: no
 *     netlink library, no ip(8) in the image needed), and writes
 *     /etc/resolv.conf;
 *  5. copies the agent and its token to /run/vmsan (a tmpfs only root can
 *     read) and starts it, restarting it with a back-off if it dies;
 *  6. reaps every orphan;
 *  7. on SIGTERM, SIGINT (ctrl-alt-del), SIGUSR1 or SIGUSR2 (busybox's
 *     halt and poweroff) or a fatal error: SIGTERM to every process, up to
 *     vmsan.stop_timeout seconds for them to go, SIGKILL, sync, unmount,
 *     and reboot(2), which makes the VMM exit (QEMU with -no-reboot,
 *     Firecracker always).
 *
 * Command line (all optional):
 *   vmsan.lower=DEV       image disk, mounted read-only (default /dev/vdb;
 *                         "none": the VM disk alone is the root)
 *   vmsan.lowerfs=TYPE    its file system (default ext4)
 *   vmsan.hostname=NAME   vmsan.iface=IF (default eth0)
 *   vmsan.ip=A.B.C.D/N    vmsan.gw=A.B.C.D   vmsan.mtu=N
 *   vmsan.dns=A.B.C.D[,A.B.C.D...]   (up to 3)
 *   vmsan.port=N          agent port (default 9119)
 *   vmsan.stop_timeout=S  seconds between SIGTERM and SIGKILL (default 5)
 *   vmsan.off=reboot|poweroff   how to end (default reboot; see above)
 *
 * For tests, `vmsan-init --root DIR --cmdline TEXT` runs as PID 1 of a
 * new PID and mount namespace with DIR standing for the VM disk. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef VMSAN_VERSION
#define VMSAN_VERSION "dev"
#endif

#define NEWROOT "/vmsan/root"
#define LOWER "/vmsan/lower"
#define RUNDIR "/run/vmsan"

struct config {
	char lower[128], lowerfs[16];
	char hostname[65], iface[IFNAMSIZ];
	struct in_addr ip, gw;
	int prefix; /* -1: no address to set */
	int mtu;
	char dns[3][16];
	int ndns;
	int port;
	int stop_timeout;
	bool poweroff;
};

static struct config cfg = {
	.lower = "/dev/vdb",
	.lowerfs = "ext4",
	.iface = "eth0",
	.prefix = -1,
	.port = 9119,
	.stop_timeout = 5,
};
static bool test_mode;
static int vmdisk_fd = -1;    /* the VM disk's root, for the read-only remount at the end */
static dev_t test_lower_rdev; /* test mode: the host's node for vmsan.lower */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	char out[540];
	int m = snprintf(out, sizeof out, "vmsan-init: %.*s", n, line);
	(void)!write(2, out, (size_t)(m < (int)sizeof out ? m : (int)sizeof out - 1));
}

static void shutdown_now(int code) __attribute__((noreturn));

/* A step the guest cannot run without: say what and why, then stop the
 * VM (a panic would only loop or hang the VMM). */
static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fatal(const char *fmt, ...)
{
	char m[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof m, fmt, ap);
	va_end(ap);
	say("fatal: %s; stopping the VM", m);
	shutdown_now(1);
}

static int mkdir_p(const char *path, mode_t mode)
{
	char p[PATH_MAX];
	if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
		return -1;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	return mkdir(p, mode) < 0 && errno != EEXIST ? -1 : 0;
}

static int do_mount(const char *src, const char *dst, const char *type, unsigned long flags, const char *data,
		    bool required)
{
	if (mkdir_p(dst, 0755) < 0 && required)
		fatal("cannot create %s: %s", dst, strerror(errno));
	if (mount(src, dst, type, flags, data) == 0)
		return 0;
	if (required)
		fatal("cannot mount %s (%s) on %s: %s", src, type ? type : "bind", dst, strerror(errno));
	return -1;
}

/* ---- configuration ----------------------------------------------------- */

static bool parse_ipv4(const char *s, struct in_addr *a)
{
	return inet_pton(AF_INET, s, a) == 1;
}

static bool parse_int(const char *s, int lo, int hi, int *out)
{
	char *e;
	errno = 0;
	long v = strtol(s, &e, 10);
	if (errno || e == s || *e || v < lo || v > hi)
		return false;
	*out = (int)v;
	return true;
}

static bool valid_hostname(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > 63)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
			return false;
	return s[0] != '-' && s[0] != '.';
}

/* One vmsan.KEY=VALUE word.  A bad value is reported and ignored: the
 * guest still comes up with its agent, and the host's health check names
 * what is missing. */
static void set_option(const char *key, const char *val)
{
	int n;
	if (!strcmp(key, "lower")) {
		if (val[0] != '/' && strcmp(val, "none"))
			say("ignoring vmsan.lower=%s: not an absolute path or none", val);
		else
			snprintf(cfg.lower, sizeof cfg.lower, "%s", val);
	} else if (!strcmp(key, "lowerfs")) {
		snprintf(cfg.lowerfs, sizeof cfg.lowerfs, "%s", val);
	} else if (!strcmp(key, "hostname")) {
		if (valid_hostname(val))
			snprintf(cfg.hostname, sizeof cfg.hostname, "%s", val);
		else
			say("ignoring vmsan.hostname=%s: letters, digits, '-' and '.' only, up to 63", val);
	} else if (!strcmp(key, "iface")) {
		if (strlen(val) < IFNAMSIZ && !strchr(val, '/'))
			snprintf(cfg.iface, sizeof cfg.iface, "%s", val);
		else
			say("ignoring vmsan.iface=%s", val);
	} else if (!strcmp(key, "ip")) {
		char a[32];
		const char *sl = strchr(val, '/');
		if (!sl || (size_t)(sl - val) >= sizeof a || !parse_int(sl + 1, 1, 32, &n)) {
			say("ignoring vmsan.ip=%s: want A.B.C.D/PREFIX", val);
			return;
		}
		memcpy(a, val, (size_t)(sl - val));
		a[sl - val] = 0;
		if (!parse_ipv4(a, &cfg.ip)) {
			say("ignoring vmsan.ip=%s: not an IPv4 address", val);
			return;
		}
		cfg.prefix = n;
	} else if (!strcmp(key, "gw")) {
		if (!parse_ipv4(val, &cfg.gw))
			say("ignoring vmsan.gw=%s: not an IPv4 address", val);
	} else if (!strcmp(key, "mtu")) {
		if (!parse_int(val, 576, 65535, &cfg.mtu))
			say("ignoring vmsan.mtu=%s", val);
	} else if (!strcmp(key, "dns")) {
		char list[128];
		snprintf(list, sizeof list, "%s", val);
		cfg.ndns = 0;
		for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			struct in_addr a;
			if (!parse_ipv4(t, &a))
				say("ignoring resolver %s: not an IPv4 address", t);
			else if (cfg.ndns < 3)
				inet_ntop(AF_INET, &a, cfg.dns[cfg.ndns++], sizeof cfg.dns[0]);
		}
	} else if (!strcmp(key, "port")) {
		if (!parse_int(val, 1, 65535, &cfg.port))
			say("ignoring vmsan.port=%s", val);
	} else if (!strcmp(key, "stop_timeout")) {
		if (!parse_int(val, 0, 3600, &cfg.stop_timeout))
			say("ignoring vmsan.stop_timeout=%s", val);
	} else if (!strcmp(key, "off")) {
		if (!strcmp(val, "poweroff") || !strcmp(val, "reboot"))
			cfg.poweroff = !strcmp(val, "poweroff");
		else
			say("ignoring vmsan.off=%s: reboot or poweroff", val);
	} else {
		say("ignoring unknown option vmsan.%s", key);
	}
}

static void parse_cmdline(char *s)
{
	for (char *save = NULL, *w = strtok_r(s, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) {
		if (strncmp(w, "vmsan.", 6))
			continue;
		char *eq = strchr(w, '=');
		if (!eq) {
			say("ignoring %s: no value", w);
			continue;
		}
		*eq = 0;
		set_option(w + 6, eq + 1);
	}
}

static void read_cmdline(void)
{
	char buf[4096];
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n < 0) {
		say("cannot read /proc/cmdline: %s; using defaults", strerror(errno));
		return;
	}
	buf[n] = 0;
	parse_cmdline(buf);
}

/* ---- files ------------------------------------------------------------- */

static int copy_file(const char *from, const char *to, mode_t mode)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (out < 0) {
		close(in);
		return -1;
	}
	char buf[65536];
	ssize_t r;
	int rc = 0;
	while ((r = read(in, buf, sizeof buf)) > 0) {
		for (ssize_t off = 0; off < r;) {
			ssize_t w = write(out, buf + off, (size_t)(r - off));
			if (w < 0) {
				rc = -1;
				break;
			}
			off += w;
		}
		if (rc)
			break;
	}
	if (r < 0)
		rc = -1;
	if (fchmod(out, mode) < 0)
		rc = -1;
	if (close(out) < 0)
		rc = -1;
	close(in);
	return rc;
}

/* Replace PATH (a file or a dangling symlink such as systemd's
 * stub-resolv.conf link) with TEXT. */
static int write_file(const char *path, const char *text, mode_t mode)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s.vmsan-init", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -1;
	size_t n = strlen(text);
	int rc = write(fd, text, n) == (ssize_t)n ? 0 : -1;
	if (fchmod(fd, mode) < 0 || close(fd) < 0)
		rc = -1;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -1;
	if (rc)
		unlink(tmp);
	return rc;
}

/* ---- the root ---------------------------------------------------------- */

static void setup_console(void)
{
	if (test_mode) {
		/* Not the host's devtmpfs: that is the host's /dev itself.
		 * A tmpfs with the few nodes anything needs; stdio is the
		 * test's. */
		do_mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755", true);
		static const struct {
			const char *name;
			unsigned maj, min;
		} nodes[] = {
			{ "null", 1, 3 },   { "zero", 1, 5 },	 { "full", 1, 7 },
			{ "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
		};
		mode_t old = umask(0);
		for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
			char p[64];
			snprintf(p, sizeof p, "/dev/%s", nodes[i].name);
			if (mknod(p, S_IFCHR | 0666, makedev(nodes[i].maj, nodes[i].min)) < 0)
				say("mknod %s: %s", p, strerror(errno));
		}
		if (test_lower_rdev && !strncmp(cfg.lower, "/dev/", 5) && !strchr(cfg.lower + 5, '/') &&
		    mknod(cfg.lower, S_IFBLK | 0600, test_lower_rdev) < 0)
			say("mknod %s: %s", cfg.lower, strerror(errno));
		umask(old);
		return;
	}
	do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755", false);
	int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		for (int i = 0; i < 3; i++)
			dup2(fd, i); /* dup2 clears close-on-exec on 0..2 */
		if (fd > 2)
			close(fd);
	}
}

/* Join the image (read-only) and the VM's upper directory with overlayfs
 * at NEWROOT, carry /dev and /proc over, and make it /. */
static void switch_root(void)
{
	if (!strcmp(cfg.lower, "none")) {
		/* The VM disk is the whole root: nothing to join. */
		do_mount("/", NEWROOT, NULL, MS_BIND, NULL, true);
	} else {
		do_mount(cfg.lower, LOWER, cfg.lowerfs, MS_RDONLY | MS_NODEV, NULL, true);
		if (mkdir_p("/upper", 0755) < 0 || mkdir_p("/work", 0700) < 0)
			fatal("cannot create /upper and /work on the VM disk: %s", strerror(errno));
		do_mount("overlay", NEWROOT, "overlay", 0, "lowerdir=" LOWER ",upperdir=/upper,workdir=/work", true);
	}
	/* The agent and its token, before the VM disk goes out of sight. */
	do_mount("tmpfs", NEWROOT "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=50%", true);
	if (mkdir_p(NEWROOT RUNDIR, 0700) < 0)
		fatal("cannot create %s: %s", RUNDIR, strerror(errno));
	if (copy_file("/vmsan/vmsan-agent", NEWROOT RUNDIR "/vmsan-agent", 0700) < 0)
		say("cannot copy the agent from /vmsan/vmsan-agent: %s", strerror(errno));
	if (copy_file("/vmsan/agent.token", NEWROOT RUNDIR "/agent.token", 0600) < 0)
		say("no agent token (/vmsan/agent.token: %s); the agent will refuse every request", strerror(errno));
	if (copy_file("/vmsan/agent.env", NEWROOT RUNDIR "/agent.env", 0600) < 0 && errno != ENOENT)
		say("cannot copy /vmsan/agent.env: %s", strerror(errno));

	/* Out of sight after the switch, but still to be remounted read-only
	 * at the end so that the next boot finds it clean. */
	vmdisk_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	do_mount("/dev", NEWROOT "/dev", NULL, MS_MOVE, NULL, true);
	if (chdir(NEWROOT) < 0)
		fatal("chdir %s: %s", NEWROOT, strerror(errno));
	if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
		fatal("cannot move the new root onto /: %s", strerror(errno));
	if (chroot(".") < 0 || chdir("/") < 0)
		fatal("chroot: %s", strerror(errno));
}

static void setup_mounts(void)
{
	do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, true);
	do_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, false);
	do_mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, false);
	do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,gid=5,mode=0620,ptmxmode=0666",
		 true);
	/* devtmpfs makes the device nodes, not these conventional links.
	 * Its /dev/ptmx node opens the devpts mounted beside it (Linux 4.7
	 * and later), so it stays where it is. */
	static const char *links[][2] = {
		{ "pts/ptmx", "/dev/ptmx" },	      { "/proc/self/fd", "/dev/fd" },
		{ "/proc/self/fd/0", "/dev/stdin" },  { "/proc/self/fd/1", "/dev/stdout" },
		{ "/proc/self/fd/2", "/dev/stderr" },
	};
	for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
		if (symlink(links[i][0], links[i][1]) < 0 && errno != EEXIST)
			say("cannot link %s: %s", links[i][1], strerror(errno));
	do_mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", false);
	do_mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", false);
}

/* ---- identity and network ---------------------------------------------- */

static void setup_hostname(void)
{
	if (!cfg.hostname[0])
		return;
	if (sethostname(cfg.hostname, strlen(cfg.hostname)) < 0)
		say("sethostname: %s", strerror(errno));
	char text[80];
	snprintf(text, sizeof text, "%s\n", cfg.hostname);
	if (write_file("/etc/hostname", text, 0644) < 0)
		say("cannot write /etc/hostname: %s", strerror(errno));
	/* Resolving our own name must not go to the network. */
	struct stat st;
	if (stat("/etc/hosts", &st) < 0) {
		char hosts[200];
		snprintf(hosts, sizeof hosts, "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t%s\n", cfg.hostname);
		if (write_file("/etc/hosts", hosts, 0644) < 0)
			say("cannot write /etc/hosts: %s", strerror(errno));
	}
}

static int if_up(int s, const char *name, int mtu)
{
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
	if (mtu > 0) {
		ifr.ifr_mtu = mtu;
		if (ioctl(s, SIOCSIFMTU, &ifr) < 0)
			say("cannot set the MTU of %s to %d: %s", name, mtu, strerror(errno));
	}
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	return ioctl(s, SIOCSIFFLAGS, &ifr);
}

static void set_sin(struct sockaddr *sa, struct in_addr a)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr = a };
	memcpy(sa, &sin, sizeof sin);
}

static void setup_network(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		say("socket: %s; no network", strerror(errno));
		return;
	}
	if (if_up(s, "lo", 0) < 0)
		say("cannot bring lo up: %s", strerror(errno));
	if (cfg.prefix >= 0) {
		struct ifreq ifr = { 0 };
		snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", cfg.iface);
		set_sin(&ifr.ifr_addr, cfg.ip);
		int ok = ioctl(s, SIOCSIFADDR, &ifr);
		struct in_addr mask = { htonl(cfg.prefix ? ~0U << (32 - cfg.prefix) : 0) };
		set_sin(&ifr.ifr_netmask, mask);
		if (ok == 0)
			ok = ioctl(s, SIOCSIFNETMASK, &ifr);
		if (ok == 0)
			ok = if_up(s, cfg.iface, cfg.mtu);
		if (ok < 0)
			say("cannot configure %s: %s", cfg.iface, strerror(errno));
		else if (cfg.gw.s_addr) {
			struct rtentry rt = { 0 };
			struct in_addr any = { 0 };
			set_sin(&rt.rt_dst, any);
			set_sin(&rt.rt_genmask, any);
			set_sin(&rt.rt_gateway, cfg.gw);
			rt.rt_flags = RTF_UP | RTF_GATEWAY;
			rt.rt_dev = cfg.iface;
			if (ioctl(s, SIOCADDRT, &rt) < 0 && errno != EEXIST)
				say("cannot add the default route via %s: %s", inet_ntoa(cfg.gw), strerror(errno));
		}
	}
	close(s);
	if (cfg.ndns) {
		char text[200] = "";
		size_t n = 0;
		for (int i = 0; i < cfg.ndns; i++)
			n += (size_t)snprintf(text + n, sizeof text - n, "nameserver %s\n", cfg.dns[i]);
		/* /etc/resolv.conf may be a link into /run (systemd-resolved,
		 * resolvconf): replace the link, not its absent target. */
		unlink("/etc/resolv.conf");
		if (mkdir_p("/etc", 0755) < 0 || write_file("/etc/resolv.conf", text, 0644) < 0)
			say("cannot write /etc/resolv.conf: %s", strerror(errno));
	}
}

/* ---- the agent --------------------------------------------------------- */

static pid_t agent_pid = -1;
static struct timespec agent_started;
static int agent_backoff_ms = 100;

static double since(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static void start_agent(const sigset_t *orig)
{
	char port[16];
	snprintf(port, sizeof port, "%d", cfg.port);
	clock_gettime(CLOCK_MONOTONIC, &agent_started);
	pid_t pid = fork();
	if (pid < 0) {
		say("cannot start the agent: fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, orig, NULL);
		setsid();
		const char *argv[] = { "vmsan-agent",
				       "--port",
				       port,
				       "--token-file",
				       RUNDIR "/agent.token",
				       "--env-file",
				       RUNDIR "/agent.env",
				       "--init-shutdown",
				       NULL };
		const char *envp[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				       "HOME=/root", NULL };
		/* execve does not write to them: the casts only drop const */
		execve(RUNDIR "/vmsan-agent", (char *const *)argv, (char *const *)envp);
		say("cannot run %s/vmsan-agent: %s", RUNDIR, strerror(errno));
		_exit(127);
	}
	agent_pid = pid;
}

/* ---- stopping ---------------------------------------------------------- */

static void reap_all(void)
{
	int st;
	pid_t p;
	while ((p = waitpid(-1, &st, WNOHANG)) > 0)
		if (p == agent_pid)
			agent_pid = -1;
}

/* Wait up to SECONDS for every other process to be gone. */
static bool wait_all_gone(double seconds)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p < 0 && errno == ECHILD)
			return true;
		if (p > 0)
			continue;
		if (since(&t0) >= seconds)
			return false;
		poll(NULL, 0, 10);
	}
}

static void shutdown_now(int code)
{
	say("stopping: SIGTERM to every process, %d s before SIGKILL", cfg.stop_timeout);
	kill(-1, SIGTERM);
	kill(-1, SIGCONT);
	if (!wait_all_gone(cfg.stop_timeout)) {
		say("processes left after %d s: SIGKILL", cfg.stop_timeout);
		kill(-1, SIGKILL);
		wait_all_gone(2);
	}
	sync();
	/* Best effort: the upper directory's file system is what matters,
	 * and sync has written it; read-only remounts settle the rest. */
	static const char *mps[] = { "/tmp", "/dev/shm", "/dev/pts", "/sys/fs/cgroup", "/sys" };
	for (size_t i = 0; i < sizeof mps / sizeof mps[0]; i++)
		umount2(mps[i], MNT_DETACH);
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0 && errno != EINVAL)
		say("remount / read-only: %s", strerror(errno));
	if (vmdisk_fd >= 0) {
		char p[64];
		snprintf(p, sizeof p, "/proc/self/fd/%d", vmdisk_fd);
		if (mount(NULL, p, NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
			say("remount the VM disk read-only: %s", strerror(errno));
	}
	sync();
	say("%s (exit %d)", cfg.poweroff ? "power off" : "reboot", code);
	reboot(cfg.poweroff ? RB_POWER_OFF : RB_AUTOBOOT);
	/* In a PID namespace (tests) reboot() ends the namespace instead;
	 * elsewhere it does not return unless refused. */
	say("reboot: %s", strerror(errno));
	if (test_mode)
		_exit(code);
	for (;;)
		pause();
}

/* ---- main -------------------------------------------------------------- */

static void usage(FILE *f)
{
	fputs("usage: vmsan-init                     (as PID 1, started by the kernel)\n"
	      "       vmsan-init --root DIR --cmdline TEXT   (tests: PID 1 of a new PID namespace)\n"
	      "       vmsan-init --version | --help\n"
	      "See vmsan-init(8).\n",
	      f);
}

/* The command line: -1 to go on (root and cmdline set for tests), else
 * the exit status. */
static int parse_args(int argc, char **argv, const char **root, const char **cmdline)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--root") && i + 1 < argc)
			*root = argv[++i];
		else if (!strcmp(argv[i], "--cmdline") && i + 1 < argc)
			*cmdline = argv[++i];
		else if (!strcmp(argv[i], "--version")) {
			printf("vmsan-init %s\n", VMSAN_VERSION);
			return 0;
		} else if (!strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (getpid() == 1 && argv[i][0] != '-') {
			/* the kernel passes unknown words of its command line
			 * (single, emergency...); they mean nothing here */
		} else {
			fprintf(stderr, "vmsan-init: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 100;
		}
	}
	return -1;
}

/* Tests: the command line from --cmdline, and DIR made our root as the
 * VM disk would be.  0, or the exit status. */
static int enter_test_root(const char *root, const char *cmdline)
{
	struct stat st;
	char *c;

	if (!cmdline) {
		fprintf(stderr, "vmsan-init: --root needs --cmdline\n");
		return 100;
	}
	c = strdup(cmdline);
	if (c)
		parse_cmdline(c);
	free(c);
	if (strcmp(cfg.lower, "none") && stat(cfg.lower, &st) == 0 && S_ISBLK(st.st_mode))
		test_lower_rdev = st.st_rdev;
	/* DIR stands for the VM disk: make it a mount of its own and
	 * our root, as the kernel would have. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount(root, root, NULL, MS_BIND | MS_REC, NULL) < 0 || chdir(root) < 0 ||
	    mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0) {
		fprintf(stderr, "vmsan-init: cannot make %s the root: %s\n", root, strerror(errno));
		return 1;
	}
	return 0;
}

/* PID 1's life: reap, restart the agent when it exits (backing off when
 * it keeps failing), and stop on a signal that asks for it. */
static void supervise(const sigset_t *all, const sigset_t *orig) __attribute__((noreturn));
static void supervise(const sigset_t *all, const sigset_t *orig)
{
	struct timespec restart_at = { 0 };
	bool restart_pending = false;
	for (;;) {
		struct timespec tmo = { .tv_sec = 1 };
		if (restart_pending) {
			tmo.tv_sec = agent_backoff_ms / 1000;
			tmo.tv_nsec = (agent_backoff_ms % 1000) * 1000000L;
		}
		siginfo_t si;
		int sig = sigtimedwait(all, &si, &tmo);
		if (sig == SIGCHLD || sig < 0) {
			pid_t before = agent_pid;
			reap_all();
			if (before > 0 && agent_pid < 0) {
				/* Ran long enough: start again soon; else back off. */
				double ran = since(&agent_started);
				agent_backoff_ms = ran > 10			  ? 100
						   : agent_backoff_ms * 2 > 30000 ? 30000
										  : agent_backoff_ms * 2;
				say("the agent exited after %.1f s; restarting in %d ms", ran, agent_backoff_ms);
				restart_pending = true;
				clock_gettime(CLOCK_MONOTONIC, &restart_at);
			}
			if (restart_pending && since(&restart_at) * 1000 >= agent_backoff_ms) {
				restart_pending = false;
				start_agent(orig);
			}
			continue;
		}
		switch (sig) {
		case SIGTERM:
		case SIGINT:
		case SIGUSR1:
		case SIGUSR2:
		case SIGPWR: say("%s received", strsignal(sig)); shutdown_now(0);
		default: break; /* SIGHUP and the rest: nothing to do */
		}
	}
}

int main(int argc, char **argv)
{
	const char *root = NULL, *cmdline = NULL;
	sigset_t all, orig;
	int rc;

	if ((rc = parse_args(argc, argv, &root, &cmdline)) >= 0)
		return rc;
	if (getpid() != 1) {
		fprintf(stderr, "vmsan-init: must run as PID 1 (the kernel's init=, or a new PID "
				"namespace with --root for tests)\n");
		return 100;
	}
	test_mode = root != NULL;
	if (test_mode && (rc = enter_test_root(root, cmdline)) != 0)
		return rc;

	/* Every signal is taken synchronously in supervise(). */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &orig);
	if (!test_mode)
		reboot(RB_DISABLE_CAD); /* ctrl-alt-del becomes SIGINT to us */
	umask(022);
	setup_console();
	say("vmsan-init %s", VMSAN_VERSION);
	if (!test_mode) {
		do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, true);
		read_cmdline();
		umount2("/proc", MNT_DETACH);
	}

	switch_root();
	setup_mounts();
	setup_hostname();
	setup_network();
	start_agent(&orig);
	say("ready: agent on port %d", cfg.port);
	supervise(&all, &orig);
}
