/* VM ids claimed per uid (claim.h).  A claim is a file named by the id
 * holding the owner's uid (and, on a second line, the VM's home as JSON), written to a file with no name (O_TMPFILE) and
 * linked into place, so a claim is there whole or not at all and two claims of one
 * id cannot both win (link fails with EEXIST).  Counting a uid's claims
 * reads them all under an flock, which also orders two claims of one
 * user racing the limit. */
#define _GNU_SOURCE
#include "claim.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int claim_dir(struct verr *e)
{
	int fd;
	struct stat st;

	if ((mkdir("/run/vmsan", 0755) && errno != EEXIST) || (mkdir(CLAIM_DIR, 0700) && errno != EEXIST)) {
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot create " CLAIM_DIR);
		return -1;
	}
	fd = open(CLAIM_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_uid != 0 || (st.st_mode & 077)) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_RUNTIME", "remove it; vmsan makes it again",
			 CLAIM_DIR " is not root's alone");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static long read_owner(int dfd, const char *id)
{
	char buf[32];
	int fd = openat(dfd, id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n;
	char *end;
	long uid;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	uid = strtol(buf, &end, 10);
	return end != buf && (*end == '\n' || !*end) && uid >= 0 ? uid : -1;
}

long claim_owner(const char *id)
{
	int dfd = open(CLAIM_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	long uid;

	if (dfd < 0)
		return -1;
	uid = read_owner(dfd, id);
	close(dfd);
	return uid;
}

static long count_owned(int dfd, uid_t uid)
{
	int fd = dup(dfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	long n = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && read_owner(dfd, de->d_name) == (long)uid)
			n++;
	closedir(d);
	return n;
}

static int id_taken(const char *id, struct verr *e)
{
	return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_ID_TAKEN", "choose another id (or let vmsan make one)",
			 "the id %s is taken by another user", id);
}

int claim_available(const char *id, const struct caller *who, struct verr *e)
{
	long owner = claim_owner(id);

	return owner < 0 || owner == (long)who->uid || (who->root && owner == 0) ? 0 : id_taken(id, e);
}

int claim_check(const char *id, const struct caller *who, struct verr *e)
{
	long owner = claim_owner(id);

	if (owner < 0)
		return 0;
	if (who->root || owner == (long)who->uid)
		return 1;
	verr_set(e, VMSAN_EXIT_FAIL, "ERR_NOT_OWNER", "act on your own VMs only",
		 "%s is not yours (it belongs to another user)", id);
	return -1;
}

void claim_home(const char *id, struct vmhome *h)
{
	char buf[PATH_MAX + 200], *nl;
	int dfd = open(CLAIM_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int fd = dfd < 0 ? -1 : openat(dfd, id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	json_t *j = NULL;

	memset(h, 0, sizeof *h);
	if (n > 0) {
		buf[n] = 0;
		if ((nl = strchr(buf, '\n')) && nl[1] == '{')
			j = json_loads(nl + 1, JSON_DISABLE_EOF_CHECK, NULL);
		if (j)
			vmhome_read(j, h);
		json_decref(j);
	}
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
}

int claim_take(const char *id, const struct caller *who, long max_per_user, const struct vmhome *home, struct verr *e)
{
	int dfd = claim_dir(e), lk = -1, fd = -1, rc = -1;
	json_t *hj = home ? vmhome_json(home) : NULL;
	char *hs = hj ? json_dumps(hj, JSON_COMPACT) : NULL;
	char line[PATH_MAX + 200];
	long owner;

	if (dfd < 0)
		return -1;
	lk = openat(dfd, ".lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (lk < 0) {
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot lock " CLAIM_DIR);
		goto out;
	}
	/* every user's claims go through this lock: waited for 10 s at most */
	for (int i = 0; flock(lk, LOCK_EX | LOCK_NB) != 0; i++) {
		if (errno != EWOULDBLOCK || i >= 1000) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_BUSY", "try again",
				 "another operation holds the lock on VM ids (" CLAIM_DIR ")");
			goto out;
		}
		poll(NULL, 0, 10);
	}
	owner = read_owner(dfd, id);
	if (owner >= 0) {
		rc = owner == (long)who->uid || (who->root && owner == 0) ? 0 : id_taken(id, e);
		goto out;
	}
	if (!who->root && count_owned(dfd, who->uid) >= max_per_user) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VM_LIMIT",
			 "remove VMs you no longer need (vmsan rm), "
			 "or ask root to raise max-vms-per-user in "
			 "/etc/vmsan/root.conf",
			 "you have %ld VMs, the most a user may have", max_per_user);
		goto out;
	}
	/* A file with no name until it is whole: killed before the link, we
	 * leave nothing behind (a named temporary file stayed for good). */
	fd = openat(dfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	snprintf(line, sizeof line, "%u\n%s%s", (unsigned)who->uid, hs ? hs : "", hs ? "\n" : "");
	if (fd < 0 || write(fd, line, strlen(line)) != (ssize_t)strlen(line) || fsync(fd) != 0 ||
	    linkat(fd, "", dfd, id, AT_EMPTY_PATH) != 0) {
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot claim %s in " CLAIM_DIR, id);
	} else {
		rc = 0;
	}
out:
	if (fd >= 0)
		close(fd);
	if (lk >= 0)
		close(lk);
	close(dfd);
	json_decref(hj);
	free(hs);
	return rc;
}

void claim_release(const char *id)
{
	int dfd = open(CLAIM_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (dfd < 0)
		return;
	unlinkat(dfd, id, 0);
	close(dfd);
}

bool claim_in_use(const char *id)
{
	char p[160];

	snprintf(p, sizeof p, "/run/vmsan/vmm/%s/record.json", id);
	if (access(p, F_OK) == 0)
		return true;
	snprintf(p, sizeof p, "/run/vmsan/net/%s.json", id);
	return access(p, F_OK) == 0;
}
