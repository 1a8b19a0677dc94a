/* vmsan-fc orphans: root's VMM records that nobody's state accounts for
 * any more.  A record is an orphan when the VM's directory it was started
 * from (runDir, noted at start as path, device and inode) is gone for its
 * owner (vmsan's state removed, the user's home with it), or when its VMM
 * is dead (killed, crashed, the host "rebooted").  The first is killed and
 * everything start made goes, the id too when vmsan-net holds nothing of
 * it; of the second only what lived as long as the VMM (its RAM file and
 * root's record): the VM itself is still its owner's, to start or remove.
 * A user sees and collects only records naming them as owner; root sees
 * all, and also RAM files and lock files no record names.  A stopped
 * VM's claim goes when its home is gone (stopped_claims).  An id another
 * operation holds (its lock) is left for the next run. */
#define _GNU_SOURCE
#include "fc/fc.h"
#include "lib/claim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* The id's lock if nobody holds it (-1: busy, or no lock to be had);
 * *made: the lock file was made here. */
static int try_lock(const char *id, bool *made)
{
	char p[160];
	int fd;

	snprintf(p, sizeof p, VMM_DIR "/%s.lock", id);
	*made = access(p, F_OK) != 0;
	fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void unlock(const char *id, int fd, bool remove)
{
	char p[160];

	if (remove) {
		snprintf(p, sizeof p, VMM_DIR "/%s.lock", id);
		unlink(p);
	}
	close(fd);
}

static void found(json_t *list, const char *id, long long owner, const char *action, json_t *what)
{
	json_t *f = json_pack("{s:s?, s:o, s:s}", "id", id, "found", what, "action", action);

	if (owner >= 0)
		json_object_set_new(f, "owner", json_integer(owner));
	json_array_append_new(list, f);
}

/* Root's: a VMM directory with no record in it, under the id's lock (a
 * start makes the directory before its record, holding that lock): what
 * a removal killed after the record (vmmrec_remove) left. */
static void unrecorded_dir(const char *id, bool dry, json_t *list)
{
	char p[160];
	bool made;
	int lock;

	snprintf(p, sizeof p, VMM_DIR "/%s/record.json", id);
	if ((lock = try_lock(id, &made)) < 0)
		return;
	if (access(p, F_OK) != 0 && errno == ENOENT) {
		found(list, id, -1, "remove", json_sprintf(VMM_DIR "/%s with no VMM record", id));
		if (!dry)
			vmmrec_remove(id);
	}
	unlock(id, lock, made);
}

/* One record, under its id's lock: found in list, collected unless dry.
 * The claim goes with a VM whose home is gone once no root record of
 * it is left. */
static void one(const struct rootconf *conf, const char *id, const struct caller *who, bool dry, json_t *list)
{
	struct vmmrec rec;
	bool made;
	int lock, home, got;
	struct verr ignore = { 0 };

	got = vmmrec_read(id, &rec, &ignore);
	if (got == 0 && who->root)
		unrecorded_dir(id, dry, list);
	if (got <= 0 || (!who->root && rec.owner != (long long)who->uid))
		return;
	if ((lock = try_lock(id, &made)) < 0)
		return;
	/* again, under the lock: the operation before it may have changed it */
	if (vmmrec_read(id, &rec, &ignore) <= 0) {
		unlock(id, lock, made);
		return;
	}
	home = vmhome_state(&rec.home, (long)rec.owner);
	if (home == VMHOME_GONE) {
		found(list, id, rec.owner, "remove",
		      json_sprintf("a VMM whose VM directory %s is gone", rec.home.path));
		if (!dry) {
			if (vmmrec_signal(&rec, SIGKILL) == 0)
				vmm_wait_gone(&rec, 5);
			ram_remove(id);
			fc_jail_remove(conf, id);
			vmmrec_remove(id);
			if (!claim_in_use(id))
				claim_release(id);
		}
		unlock(id, lock, !dry);
		return;
	}
	if (!vmmrec_alive(&rec)) {
		found(list, id, rec.owner, "collect",
		      json_sprintf("a VMM record whose VMM (pid %lld) is dead", rec.pid));
		json_object_set_new(json_array_get(list, json_array_size(list) - 1), "vmmDead", json_true());
		if (!dry) {
			ram_remove(id);
			fc_jail_remove(conf, id);
			vmmrec_remove(id);
		}
	}
	unlock(id, lock, false);
}

/* Root's: RAM files (<id>.ram) and lock files (<id>.lock) of ids with no
 * VMM record, each under the id's lock (a start makes its RAM file
 * before its record, holding that lock). */
static void unrecorded(const char *dir, const char *suffix, bool dry, json_t *list)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		char id[64], p[160];
		size_t n = strlen(de->d_name), sl = strlen(suffix);
		bool made;
		int lock;

		if (n <= sl || n - sl >= sizeof id || strcmp(de->d_name + n - sl, suffix))
			continue;
		memcpy(id, de->d_name, n - sl);
		id[n - sl] = 0;
		snprintf(p, sizeof p, VMM_DIR "/%s/record.json", id);
		if (valid_vm_id(id, NULL, 0) || access(p, F_OK) == 0)
			continue;
		/* a lock file stays while its id is claimed (cleanup removes it) */
		if (!strcmp(suffix, ".lock") && claim_owner(id) >= 0)
			continue;
		if ((lock = try_lock(id, &made)) < 0)
			continue;
		if (access(p, F_OK) != 0) {
			found(list, NULL, -1, "remove", json_sprintf("%s/%s with no VMM record", dir, de->d_name));
			if (!dry && !strcmp(suffix, ".ram"))
				ram_remove(id);
		}
		unlock(id, lock, made || (!dry && !strcmp(suffix, ".lock")));
	}
	if (d)
		closedir(d);
}

/* Claims no record of root's accounts for (a stopped VM's: its VMM and
 * its network are gone) whose VM home, noted in the claim, is gone for
 * its owner: the VM can no longer be started or removed, and its claim
 * would count against its owner's limit until the host restarts.  A
 * claim with no home noted (made by an older vmsan) is left alone. */
static void stopped_claims(const struct caller *who, bool dry, json_t *list)
{
	DIR *d = opendir(CLAIM_DIR);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		struct vmhome home;
		char id[64];
		long owner;
		bool made;
		int lock;

		if (strlen(de->d_name) >= sizeof id || de->d_name[0] == '.' || valid_vm_id(de->d_name, NULL, 0))
			continue;
		memcpy(id, de->d_name, strlen(de->d_name) + 1);
		owner = claim_owner(id);
		if (claim_in_use(id) || owner < 0 || (!who->root && owner != (long)who->uid))
			continue;
		claim_home(id, &home);
		if (!home.path[0] || (lock = try_lock(id, &made)) < 0)
			continue;
		/* again, under the lock: a start may have made a record since */
		if (!claim_in_use(id) && vmhome_state(&home, owner) == VMHOME_GONE) {
			found(list, id, owner, "remove",
			      json_sprintf("the claim of a stopped VM whose directory %s is gone", home.path));
			if (!dry)
				claim_release(id);
			unlock(id, lock, !dry || made);
		} else {
			unlock(id, lock, made);
		}
	}
	if (d)
		closedir(d);
}

json_t *fc_orphans(const struct caller *who, bool dry, struct verr *e)
{
	struct rootconf conf;
	json_t *list;
	DIR *d;
	struct dirent *de;

	if (rootconf_load(&conf, e))
		return NULL;
	list = json_array();
	d = opendir(VMM_DIR);
	while (d && (de = readdir(d))) {
		char id[64];

		if (strlen(de->d_name) >= sizeof id || strchr(de->d_name, '.') || valid_vm_id(de->d_name, NULL, 0))
			continue;
		memcpy(id, de->d_name, strlen(de->d_name) + 1);
		one(&conf, id, who, dry, list);
	}
	if (d)
		closedir(d);
	stopped_claims(who, dry, list);
	if (who->root) {
		unrecorded(RAM_DIR, ".ram", dry, list);
		unrecorded(VMM_DIR, ".lock", dry, list);
	}
	return json_pack("{s:b, s:o}", "dryRun", dry, "found", list);
}
