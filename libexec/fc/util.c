/* What both VMMs share: the kernel command line, and small utilities. */
#define _GNU_SOURCE
#include "fc/fc.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

double ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

void kernel_cmdline(const struct vmcfg *c, char *out, size_t n)
{
	bool fc = !strcmp(c->vmm, "firecracker");
	size_t k = 0;

	/* reboot=k: Firecracker emulates the i8042 reset and exits on it; QEMU's
	 * microvm has no i8042, and reboot=t (triple fault) ends it at once
	 * with -no-reboot. */
	k += (size_t)snprintf(out + k, n - k, "console=ttyS0 reboot=%s panic=-1 root=/dev/vda rw init=/vmsan/init%s",
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

/* The last line of a log file in the caller's run directory (dirfd),
 * opened with the caller's rights, for an error message; control
 * characters shown as '?'. */
void log_tail(const struct caller *who, int dirfd, const char *name, char *out, size_t n)
{
	char tail[512] = "";
	struct verr ignore = { 0 };
	int fd = caller_open(who, dirfd, name, O_RDONLY, 0, CALLER_REG | CALLER_OWNED, "log", &ignore);

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
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

bool zombie(pid_t pid)
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

/* A connected stream socket to sock (a path root chose), reads timing
 * out after timeout seconds; -1 if it cannot connect. */
int unix_connect(const char *sock, int timeout)
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
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

void close_fds(int fds[FD_COUNT])
{
	for (int i = 0; i < FD_COUNT; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}
