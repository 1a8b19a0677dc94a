/* The VM's network namespace: made and bound at /run/netns/vmsan-<id> (as
 * iproute2 names them), entered and left, removed.  "The host" is the
 * namespace vmsan-net started in (orig_ns). */
#define _GNU_SOURCE
#include "net/net.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int enter_ns(const char *path, struct verr *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
		verr_sys(e, "ERR_NETNS", NULL, "cannot enter network namespace %s", path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

void leave_ns(void)
{
	if (setns(orig_ns, CLONE_NEWNET) != 0)
		abort(); /* continuing in the wrong namespace is worse */
}

/* As iproute2 does: /run/netns is a shared mount, so a namespace bound
 * there is visible to every mount namespace that shares it. */
static int netns_dir(struct verr *e)
{
	if (mkdir(NETNS_DIR, 0755) && errno != EEXIST)
		goto fail;
	if (mount("", NETNS_DIR, "none", MS_SHARED | MS_REC, NULL) == 0)
		return 0;
	if (errno != EINVAL)
		goto fail;
	if (mount(NETNS_DIR, NETNS_DIR, "none", MS_BIND | MS_REC, NULL) == 0 &&
	    mount("", NETNS_DIR, "none", MS_SHARED | MS_REC, NULL) == 0)
		return 0;
fail:
	verr_sys(e, "ERR_NETNS", NULL, "cannot prepare " NETNS_DIR);
	return -1;
}

int netns_create(struct vmnet *v, struct verr *e)
{
	int fd;

	if (netns_dir(e))
		return -1;
	fd = open(v->nspath, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
	if (fd < 0) {
		if (errno == EEXIST)
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_NETNS_EXISTS", "run vmsan-net teardown for this id first",
				 "network namespace %s already exists", v->netns);
		else
			verr_sys(e, "ERR_NETNS", NULL, "cannot create %s", v->nspath);
		return -1;
	}
	close(fd);
	if (unshare(CLONE_NEWNET) != 0) {
		verr_sys(e, "ERR_NETNS", NULL, "cannot create a network namespace");
		unlink(v->nspath);
		return -1;
	}
	if (mount("/proc/self/ns/net", v->nspath, "none", MS_BIND, NULL) != 0) {
		verr_sys(e, "ERR_NETNS", NULL, "cannot bind %s", v->nspath);
		leave_ns();
		unlink(v->nspath);
		return -1;
	}
	leave_ns();
	return 0;
}

int netns_exists(const struct vmnet *v)
{
	return access(v->nspath, F_OK) == 0;
}

/* Every process whose network namespace is the one bound at nspath:
 * listed in found (if given), and killed unless dry.  In a VM's namespace
 * only the VM's own run (its VMM, its resolver): whatever runs there keeps
 * the namespace alive after its name is gone. */
void netns_kill_all(const char *nspath, bool dry, json_t *found)
{
	struct stat ns, st;
	DIR *proc;
	struct dirent *d;

	if (stat(nspath, &ns) || !(proc = opendir("/proc")))
		return;
	while ((d = readdir(proc))) {
		char path[64], comm[32] = "";
		char *end;
		long pid = strtol(d->d_name, &end, 10);
		FILE *f;

		int pfd;

		if (pid <= 1 || *end || pid == (long)getpid())
			continue;
		/* the process taken before it is looked at: a pid reused after
		 * the look is not the one signalled */
		pfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
		if (pfd < 0)
			continue;
		snprintf(path, sizeof path, "/proc/%ld/ns/net", pid);
		if (stat(path, &st) || st.st_ino != ns.st_ino || st.st_dev != ns.st_dev) {
			close(pfd);
			continue;
		}
		snprintf(path, sizeof path, "/proc/%ld/comm", pid);
		if ((f = fopen(path, "re"))) {
			if (fgets(comm, sizeof comm, f))
				comm[strcspn(comm, "\n")] = 0;
			fclose(f);
		}
		if (found)
			json_array_append_new(found, json_sprintf("process %ld (%s) in it", pid, comm));
		if (!dry)
			syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
		close(pfd);
	}
	closedir(proc);
}

void netns_delete(const struct vmnet *v)
{
	if (umount2(v->nspath, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
		fprintf(stderr, "vmsan-net: cannot unmount %s: %s\n", v->nspath, strerror(errno));
	unlink(v->nspath);
}
