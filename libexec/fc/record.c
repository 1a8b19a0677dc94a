/* Root's records of the VMMs it started: VMM_DIR/<id>/record.json, in a
 * directory only root can enter, beside QEMU's QMP socket.  Every
 * operation after start finds its VMM here, by id, and acts only for the
 * record's owner (or root): the request never names a pid, a socket or a
 * file root would use. */
#define _GNU_SOURCE
#include "fc/fc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/pidfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void vmm_dir_path(const char *id, char *out, size_t n)
{
	snprintf(out, n, VMM_DIR "/%s", id);
}

static int root_dir(const char *path, mode_t mode, struct verr *e)
{
	struct stat st;

	if (mkdir(path, mode) != 0 && errno != EEXIST) {
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot create %s", path);
		return -1;
	}
	if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_RUNTIME", "remove it; vmsan-fc makes it again",
			 "%s is not root's directory", path);
		return -1;
	}
	return 0;
}

int vmm_dir_make(const char *id, struct verr *e)
{
	char p[128];
	int base, fd;

	if (root_dir("/run/vmsan", 0755, e) || root_dir(VMM_DIR, 0700, e))
		return -1;
	base = open(VMM_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (base < 0) {
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot open " VMM_DIR);
		return -1;
	}
	rm_tree_at(base, id);
	if (mkdirat(base, id, 0700) != 0 ||
	    (fd = openat(base, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		vmm_dir_path(id, p, sizeof p);
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot create %s", p);
		close(base);
		return -1;
	}
	close(base);
	return fd;
}

int kvm_boot_dir(struct verr *e)
{
	return root_dir("/run/vmsan", 0755, e) || root_dir(KVM_BOOT_DIR, 0755, e) ? -1 : 0;
}

/* One operation on an id at a time: an flock on VMM_DIR/<id>.lock, held
 * until exit (the descriptor is never closed).  Only the id's owner gets
 * this far, so only the owner can keep another operation waiting. */
int vmm_lock(const char *id, struct verr *e)
{
	char p[128];
	int fd;

	if (root_dir("/run/vmsan", 0755, e) || root_dir(VMM_DIR, 0700, e))
		return -1;
	snprintf(p, sizeof p, VMM_DIR "/%s.lock", id);
	fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) != 0) {
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot lock %s", p);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return 0;
}

int vmmrec_write(const struct vmmrec *r, struct verr *e)
{
	char p[160], tmp[170];
	json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:s}", "id", r->id, "vmm", r->vmm, "owner",
			      (json_int_t)r->owner, "uid", (json_int_t)r->uid, "gid", (json_int_t)r->gid, "pid",
			      (json_int_t)r->pid, "startTime", (json_int_t)r->start, "qmpSocket", r->qmp, "apiSocket",
			      r->api, "ram", r->ram);
	int rc;

	if (j && r->home.path[0])
		json_object_set_new(j, "vmDir", vmhome_json(&r->home));
	snprintf(p, sizeof p, VMM_DIR "/%s/record.json", r->id);
	snprintf(tmp, sizeof tmp, "%s.tmp", p);
	rc = j ? json_dump_file(j, tmp, JSON_COMPACT) : -1;
	json_decref(j);
	if (rc != 0 || rename(tmp, p) != 0) {
		unlink(tmp);
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot write %s", p);
		return -1;
	}
	return 0;
}

static void copy_str(json_t *j, const char *k, char *out, size_t n)
{
	const char *s = json_string_value(json_object_get(j, k));

	snprintf(out, n, "%s", s ? s : "");
}

int vmmrec_read(const char *id, struct vmmrec *r, struct verr *e)
{
	char p[160];
	json_t *j;
	json_error_t je;

	memset(r, 0, sizeof *r);
	snprintf(p, sizeof p, VMM_DIR "/%s/record.json", id);
	j = json_load_file(p, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		if (access(p, F_OK) != 0)
			return 0;
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_RUNTIME", "vmsan gc removes it", "%s: %s", p, je.text);
		return -1;
	}
	snprintf(r->id, sizeof r->id, "%s", id);
	copy_str(j, "vmm", r->vmm, sizeof r->vmm);
	copy_str(j, "qmpSocket", r->qmp, sizeof r->qmp);
	copy_str(j, "apiSocket", r->api, sizeof r->api);
	copy_str(j, "ram", r->ram, sizeof r->ram);
	r->owner = json_integer_value(json_object_get(j, "owner"));
	r->uid = json_integer_value(json_object_get(j, "uid"));
	r->gid = json_integer_value(json_object_get(j, "gid"));
	r->pid = json_integer_value(json_object_get(j, "pid"));
	r->start = json_integer_value(json_object_get(j, "startTime"));
	vmhome_read(json_object_get(j, "vmDir"), &r->home);
	json_decref(j);
	return 1;
}

void vmmrec_remove(const char *id)
{
	int base = open(VMM_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), dir;
	/* the lock file stays: a waiter holds its inode (cleanup removes it).
	 * The record goes first: killed after it, what is left is a
	 * directory with no record, which root's gc removes (fc/orphans.c). */
	if (base >= 0) {
		dir = openat(base, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dir >= 0) {
			unlinkat(dir, "record.json", 0);
			close(dir);
		}
		rm_tree_at(base, id);
		close(base);
	}
}

bool vmmrec_alive(const struct vmmrec *r)
{
	char p[48];
	struct stat st;

	if (r->pid <= 1 || proc_start_time((long)r->pid) != r->start)
		return false;
	snprintf(p, sizeof p, "/proc/%lld", r->pid);
	return stat(p, &st) == 0 && (long long)st.st_uid == r->uid && !zombie((pid_t)r->pid);
}

/* A signal to the recorded VMM, through a pidfd taken before the process
 * is checked: the check then holds for the very process signalled, however
 * long anything before it took (a pid recycled in between is never hit).
 * 0 sent; -1 when it is not the recorded VMM (gone, or another process). */
int vmmrec_signal(const struct vmmrec *r, int sig)
{
	int fd, rc;

	if (r->pid <= 1)
		return -1;
	fd = pidfd_open((pid_t)r->pid, 0);
	if (fd < 0)
		return -1;
	rc = vmmrec_alive(r) ? pidfd_send_signal(fd, sig, NULL, 0) : -1;
	close(fd);
	return rc;
}

int vmmrec_for(const char *id, const struct caller *who, struct vmmrec *r, struct verr *e)
{
	int rc = vmmrec_read(id, r, e);

	if (rc < 0)
		return -1;
	if (rc == 0)
		return 1;
	if (!who->root && r->owner != (long long)who->uid) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_NOT_OWNER", "act on your own VMs only", "the VMM of %s is not yours",
			 id);
		return -1;
	}
	return 0;
}

bool vmm_wait_gone(const struct vmmrec *r, double seconds)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (vmmrec_alive(r)) {
		if (ms_since(&t0) >= seconds * 1e3)
			return false;
		poll(NULL, 0, 20);
	}
	return true;
}

void ram_path(const char *id, char *out, size_t n)
{
	snprintf(out, n, RAM_DIR "/%s.ram", id);
}

/* RAM_DIR, root's: others may pass through it (QEMU opens its file by
 * name) but make nothing in it.  Anyone may have made /dev/shm/vmsan
 * before root did (it is a sticky directory for all): such a squatter's
 * file or link is moved aside, never followed.  Its fd, or -1 with e set
 * (e may be NULL: then only an existing good directory is opened). */
int ram_dir(struct verr *e)
{
	struct stat st;
	int shm, fd = -1;

	shm = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (shm < 0) {
		if (e)
			verr_sys(e, "ERR_RAM_FILE", NULL, "cannot open /dev/shm");
		return -1;
	}
	for (int tries = 0; tries < 3 && fd < 0; tries++) {
		fd = openat(shm, "vmsan", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 && fstat(fd, &st) == 0 && st.st_uid == 0 && !(st.st_mode & 022))
			break;
		if (fd >= 0)
			close(fd);
		fd = -1;
		if (!e)
			break;
		if (fstatat(shm, "vmsan", &st, AT_SYMLINK_NOFOLLOW) == 0) {
			char aside[64];
			snprintf(aside, sizeof aside, "vmsan.not-root.%ld", (long)getpid());
			if (renameat(shm, "vmsan", shm, aside) != 0)
				break;
			fprintf(stderr, "vmsan-fc: /dev/shm/vmsan was not root's: moved aside to /dev/shm/%s\n", aside);
		}
		if (mkdirat(shm, "vmsan", 0711) != 0 && errno != EEXIST)
			break;
	}
	close(shm);
	if (fd < 0 && e)
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_RAM_FILE", "remove /dev/shm/vmsan; vmsan-fc makes it again",
			 RAM_DIR " is not root's directory and cannot be made so");
	return fd;
}

void ram_remove(const char *id)
{
	char name[96];
	int d = ram_dir(NULL);

	if (d < 0)
		return;
	snprintf(name, sizeof name, "%s.ram", id);
	unlinkat(d, name, 0);
	close(d);
}
