/* vmsan snapshot create|list|delete, and what create --snapshot restores. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vm/vm.h"

const char snapshot_usage[] = "usage: vmsan snapshot create ID [--resume|--no-resume] [--json]\n"
			      "       vmsan snapshot list|ls [--json]\n"
			      "       vmsan snapshot delete|rm SNAPSHOT... [--json]\n\n"
			      "create pauses a running VM, saves its device state, memory and disk into\n"
			      "$VMSAN_DIR/snapshots/ID-MILLISECONDS and resumes it (--no-resume leaves it\n"
			      "paused: vmsan resume).  vmsan create --snapshot SNAPSHOT restores one into a\n"
			      "new VM (its own id, namespace, policy and agent token, the clock set), as\n"
			      "many times as wanted.  QEMU VMs only, so far.\n";

/* $VMSAN_DIR/snapshots, made on demand (the user's alone), as a descriptor. */
int snapshots_dir(const struct state *st, bool create, struct verr *e)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%.4000s/snapshots", st->dir);
	if (create && mkdir(p, 0700) < 0 && errno != EEXIST) {
		verr_sys(e, "ERR_STATE_WRITE", NULL, "cannot create %s", p);
		return -1;
	}
	int fd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && (create || errno != ENOENT))
		verr_sys(e, "ERR_STATE", NULL, "cannot open %s", p);
	return fd;
}

long long du_at(int dfd, const char *name)
{
	long long sum = 0;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *de;
	struct stat sb;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' && fstatat(fd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
			sum += (long long)sb.st_blocks * 512;
	if (d)
		closedir(d);
	else if (fd >= 0)
		close(fd);
	return sum;
}

json_t *load_snapshot(int sfd, const char *sid, struct verr *e)
{
	char why[160], p[128];
	if (valid_snapshot_id(sid, why, sizeof why)) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_SNAPSHOT_ID",
			 "snapshot ids look like vm-1a2b3c4d-1764000000000", "invalid snapshot id '%s': %s", sid, why);
		return NULL;
	}
	snprintf(p, sizeof p, "%s/snapshot.json", sid);
	int fd = sfd < 0 ? -1 : openat(sfd, p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	json_t *meta = fd < 0 ? NULL : json_loadfd(fd, 0, NULL);
	if (fd >= 0)
		close(fd);
	if (!json_is_object(meta)) {
		json_decref(meta);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT_NOT_FOUND", "run 'vmsan snapshot list'",
			 "snapshot not found: %s", sid);
		return NULL;
	}
	return meta;
}

json_t *snapshot_meta(json_t *rec, const char *sid, const char *when, json_t *sizes)
{
	json_t *meta = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:O, s:O, s:I, s:O, s:O}", "id", sid, "vmId",
				 jstr(rec, "id"), "createdAt", when, "vmm", jstr(rec, "vmm"), "memSizeMib",
				 jint(rec, "memSizeMib", 256), "vcpuCount", jint(rec, "vcpuCount", 1), "kernel",
				 jstr(rec, "kernel"), "image", json_object_get(rec, "image"), "network",
				 json_object_get(rec, "network"), "diskSize", jint(rec, "diskSize", 0), "sizes", sizes,
				 "accel", json_object_get(rec, "accel") ?: json_null());
	if (jstr(rec, "runtime"))
		json_object_set_new(meta, "runtime", json_string(jstr(rec, "runtime")));
	/* where the token is on the disk: a restore writes its own there */
	json_object_set_new(meta, "tokenOffset", json_integer(jint(rec, "tokenOffset", 0)));
	return meta;
}

int snapshot_files(int dirfd, const char *tmp, json_t *meta, const char *tok, struct verr *e)
{
	char mp[160];
	snprintf(mp, sizeof mp, "%s/snapshot.json", tmp);
	int mfd = openat(dirfd, mp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	snprintf(mp, sizeof mp, "%s/token", tmp);
	int tfd = openat(dirfd, mp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	bool ok = mfd >= 0 && tfd >= 0 && json_dumpfd(meta, mfd, JSON_INDENT(2) | JSON_SORT_KEYS) == 0 &&
		  write(tfd, tok, strlen(tok)) == (ssize_t)strlen(tok) && fsync(mfd) == 0 && fsync(tfd) == 0;
	if (mfd >= 0)
		close(mfd);
	if (tfd >= 0)
		close(tfd);
	if (!ok)
		verr_sys(e, "ERR_STATE_WRITE", "check free space on the state directory's file system",
			 "cannot write the snapshot");
	return ok ? 0 : -1;
}

json_t *save_vm(const char *id, json_t *rec, const char *path, bool resume, struct verr *e)
{
	json_t *sreq = vmm_ref(id);
	json_object_update_new(
		sreq, json_pack("{s:s, s:s, s:b}", "vmDisk", jstr(rec, "disk"), "dir", path, "resume", resume));
	return call("fc", "snapshot", sreq, true, e);
}

/* The snapshot's record and token into its directory tmp (in sfd), then
 * tmp renamed sid: a snapshot appears whole or not at all. */
static int write_snapshot(int sfd, const char *tmp, const char *sid, const char *when, json_t *rec, json_t *r,
			  const char *tok, struct verr *e)
{
	json_t *meta = snapshot_meta(rec, sid, when, r);
	int rc = snapshot_files(sfd, tmp, meta, tok, e);
	json_decref(meta);
	if (rc == 0 && renameat(sfd, tmp, sfd, sid) < 0) {
		verr_sys(e, "ERR_STATE_WRITE", "check free space on the state directory's file system",
			 "cannot write the snapshot");
		rc = -1;
	}
	return rc;
}

static int snapshot_create(const char *id, bool resume)
{
	struct verr e = { 0 };
	struct state st = { .vmsfd = -1 };
	int lock = -1, sfd = -1;
	char sid[96], tmp[128], path[PATH_MAX], when[32], tok[300];
	json_t *rec = open_running_vm(&st, id, &lock, &e), *r = NULL;
	if (!rec)
		goto fail;
	if (json_is_true(json_object_get(json_object_get(rec, "network"), "noNetns"))) {
		verr_set(&e, VMSAN_EXIT_FAIL, "ERR_NOT_SUPPORTED", "snapshot VMs that have a namespace of their own",
			 "%s runs without a namespace (--no-netns): its guest's address is its slot's, so a "
			 "snapshot of it could not restore anywhere else",
			 id);
		goto fail;
	}
	if ((sfd = snapshots_dir(&st, true, &e)) < 0 || read_token(&st, id, tok, sizeof tok) < 0) {
		if (!verr_isset(&e))
			verr_set(&e, VMSAN_EXIT_FAIL, "ERR_TOKEN", NULL, "%s has no agent token", id);
		goto fail;
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(sid, sizeof sid, "%s-%lld", id, (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
	/* made under a name list ignores, renamed when whole */
	snprintf(tmp, sizeof tmp, ".%s.%d.tmp", sid, (int)getpid());
	if (mkdirat(sfd, tmp, 0700) < 0) {
		verr_sys(&e, "ERR_STATE_WRITE", NULL, "cannot create a snapshot directory");
		goto fail;
	}
	snprintf(path, sizeof path, "%.3800s/snapshots/%s", st.dir, tmp);
	say("%s: pausing, saving state, memory and disk", id);
	r = save_vm(id, rec, path, resume, &e);
	if (!r)
		goto fail_tmp;
	utc_iso(now.tv_sec, when);
	int wrc = write_snapshot(sfd, tmp, sid, when, rec, r, tok, &e);
	explicit_bzero(tok, sizeof tok);
	if (wrc < 0)
		goto fail_tmp;
	fsync(sfd);
	if (!resume)
		store(&st, id, json_pack("{s:b}", "paused", 1), NULL, &(struct verr){ 0 });
	snprintf(path, sizeof path, "%.3800s/snapshots/%s", st.dir, sid);
	if (json_mode) {
		json_t *doc =
			json_pack("{s:b, s:s, s:s, s:s, s:s+, s:O, s:b}", "ok", 1, "snapshotId", sid, "vmId", id,
				  "snapshotPath", path, "memPath", path, "/memory", "sizes", r, "resumed", resume);
		json_dumpf(doc, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(doc);
	} else {
		printf("Snapshot created: %s (%s paused %.0f ms)\n", sid, id,
		       json_real_value(json_object_get(r, "pausedMs")));
	}
	json_decref(r);
	json_decref(rec);
	close(sfd);
	close(lock);
	state_release(&st);
	return 0;
fail_tmp:
	rm_tree_at(sfd, tmp);
fail:
	json_decref(r);
	json_decref(rec);
	if (sfd >= 0)
		close(sfd);
	if (lock >= 0)
		close(lock);
	state_release(&st);
	return report(&e);
}

static int snapshot_list(void)
{
	struct verr e = { 0 };
	struct state st;
	json_t *all = json_array();
	if (state_open(&st, false, &e) == 0) {
		int sfd = snapshots_dir(&st, false, &e);
		DIR *d = sfd < 0 ? NULL : fdopendir(dup(sfd));
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			struct verr ignore = { 0 };
			json_t *m = load_snapshot(sfd, de->d_name, &ignore);
			if (!m)
				continue;
			json_object_set_new(m, "diskUsageBytes", json_integer(du_at(sfd, de->d_name)));
			json_array_append_new(all, m);
		}
		if (d)
			closedir(d);
		if (sfd >= 0)
			close(sfd);
		state_release(&st);
	} else if (!verr_take(&e, "ERR_STATE_DIR_MISSING")) {
		json_decref(all);
		return report(&e);
	}
	size_t i;
	json_t *m;
	if (json_mode) {
		json_dumpf(all, stdout, JSON_COMPACT);
		putchar('\n');
	} else if (!json_array_size(all)) {
		printf("no snapshots\n");
	} else {
		printf("%-34s %-12s %-22s %8s %10s\n", "SNAPSHOT", "VM", "CREATED", "MEMORY", "DISK USE");
		json_array_foreach(all, i, m)
			printf("%-34s %-12s %-22s %6lldMi %8.1fMi\n", jstr(m, "id"), jstr(m, "vmId"),
			       jstr(m, "createdAt"), jint(m, "memSizeMib", 0),
			       (double)jint(m, "diskUsageBytes", 0) / 1048576.0);
	}
	json_decref(all);
	return 0;
}

static int snapshot_delete(json_t *ids)
{
	struct verr e = { 0 };
	struct state st;
	size_t i;
	json_t *v, *gone = json_array();
	int rc = 0, sfd = -1;
	if (state_open(&st, false, &e) == 0)
		sfd = snapshots_dir(&st, false, &e);
	verr_take(&e, "ERR_STATE_DIR_MISSING");
	json_array_foreach(ids, i, v) {
		const char *sid = json_string_value(v);
		json_t *m = load_snapshot(sfd, sid, &e);
		if (!m) {
			rc = report(&e);
			memset(&e, 0, sizeof e);
			continue;
		}
		json_decref(m);
		/* a restore holds it (shared lock) while it copies from it */
		int dfd = openat(sfd, sid, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0 || flock(dfd, LOCK_EX | LOCK_NB) < 0) {
			verr_set(&e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT_IN_USE", "try again once the restore is done",
				 "snapshot %s is being restored from", sid);
			rc = report(&e);
			memset(&e, 0, sizeof e);
			if (dfd >= 0)
				close(dfd);
			continue;
		}
		if (rm_tree_at(sfd, sid) < 0) {
			verr_sys(&e, "ERR_STATE_WRITE", NULL, "cannot remove all of snapshot %s", sid);
			rc = report(&e);
			memset(&e, 0, sizeof e);
		} else {
			json_array_append_new(gone, json_string(sid));
		}
		close(dfd);
	}
	if (sfd >= 0) {
		close(sfd);
		state_release(&st);
	}
	if (!rc)
		report_deleted(gone, "Snapshot");
	json_decref(gone);
	return rc;
}

int cmd_snapshot(int argc, char **argv)
{
	bool resume = true;
	const struct sub_flag flags[] = { { "--resume", &resume, true }, { "--no-resume", &resume, false }, { 0 } };
	const char *sub;
	json_t *args = json_array();
	int rc = sub_args(argc, argv, flags, &sub, args);
	if (rc) {
		json_decref(args);
		return rc;
	}
	if (sub_is(sub, "create", NULL))
		rc = json_array_size(args) == 1 ? snapshot_create(json_string_value(json_array_get(args, 0)), resume)
						: usage_error("snapshot create takes one VM id");
	else if (sub_is(sub, "list", "ls"))
		rc = json_array_size(args) ? usage_error("snapshot list takes no arguments") : snapshot_list();
	else if (sub_is(sub, "delete", "rm"))
		rc = json_array_size(args) ? snapshot_delete(args) : usage_error("give the snapshots to delete");
	else
		rc = usage_error(sub ? "no such snapshot command '%s' (create, list, delete)"
				     : "give a snapshot command%s",
				 sub ? sub : " (create, list, delete)");
	json_decref(args);
	return rc;
}

/* A restored VM's disk: the snapshot's, copied (holes stay holes), with a
 * fresh token written where the snapshot's was (what the guest reads if
 * it boots again) and in vms/<id>.token.  The record's update, or NULL. */
json_t *restore_disk(struct state *st, const char *id, json_t *snap, const char *snapdir, struct verr *e)
{
	char dir[PATH_MAX], path[PATH_MAX + 16], src[PATH_MAX + 16], tokp[PATH_MAX + 16], tok[65], old[300], name[96];
	unsigned char raw[32];
	int in = -1, out = -1, tf = -1;
	json_t *upd = NULL;
	long long off = jint(snap, "tokenOffset", 0);
	snprintf(dir, sizeof dir, "%.4000s/%s", st->vms, id);
	snprintf(path, sizeof path, "%s/disk.ext4", dir);
	snprintf(src, sizeof src, "%s/disk.ext4", snapdir);
	snprintf(tokp, sizeof tokp, "%s/token", snapdir);
	int of = open(tokp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t ol = of < 0 ? -1 : read(of, old, sizeof old - 1);
	if (of >= 0)
		close(of);
	if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw || ol != 64) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", NULL, "snapshot %s has no agent token", jstr(snap, "id"));
		return NULL;
	}
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(tok + 2 * i, 3, "%02x", raw[i]);
	struct stat sb;
	char held[64];
	/* the VM's directory: made here, or by create already (empty) */
	if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || (in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    fstat(in, &sb) < 0 || (out = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
		verr_sys(e, "ERR_STATE_WRITE", NULL, "cannot make %s's disk from the snapshot", id);
		goto out;
	}
	if (copy_sparse(in, out, (uint64_t)sb.st_size, "copying the snapshot's disk", e) < 0)
		goto out;
	if (off <= 0 || pread(out, held, 64, (off_t)off) != 64 || memcmp(held, old, 64) ||
	    pwrite(out, tok, 64, (off_t)off) != 64) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", "take the snapshot again",
			 "snapshot %s's disk does not hold its token where its record says", jstr(snap, "id"));
		goto out;
	}
	snprintf(name, sizeof name, "%s.token", id);
	if ((tf = openat(st->vmsfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0 ||
	    write(tf, tok, 64) != 64) {
		verr_sys(e, "ERR_STATE_WRITE", NULL, "cannot write %s's token", id);
		goto out;
	}
	upd = json_pack("{s:O, s:s, s:s, s:I, s:I, s:s}", "image", json_object_get(snap, "image"), "dir", dir, "disk",
			path, "diskSize", jint(snap, "diskSize", 0), "tokenOffset", off, "restoredFrom",
			jstr(snap, "id"));
	if (jstr(snap, "runtime"))
		json_object_set_new(upd, "runtime", json_string(jstr(snap, "runtime")));
out:
	explicit_bzero(old, sizeof old);
	explicit_bzero(tok, sizeof tok);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (tf >= 0)
		close(tf);
	return upd;
}

/* The restored guest: a token of its own (the snapshot's stops working),
 * the host's clock, its own name, through POST /restored with the
 * snapshot's token. */
int restore_token(struct state *st, const char *id, const char *snapdir, const char *agent_addr, struct verr *e)
{
	char oldtok[300], newtok[300], body[640], tp[PATH_MAX + 16], seed[129];
	unsigned char raw[64];
	snprintf(tp, sizeof tp, "%s/token", snapdir);
	int tf = open(tp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t tl = tf < 0 ? -1 : read(tf, oldtok, sizeof oldtok - 1);
	if (tf >= 0)
		close(tf);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int code = -1;
	/* the guest's generator is the snapshot's: the agent reseeds it */
	if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
		tl = -1;
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(seed + 2 * i, 3, "%02x", raw[i]);
	if (tl > 0 && read_token(st, id, newtok, sizeof newtok) == 0) {
		oldtok[tl] = 0;
		oldtok[strcspn(oldtok, "\r\n")] = 0;
		snprintf(body, sizeof body,
			 "{\"token\":\"%s\",\"seed\":\"%s\",\"sec\":%lld,\"nsec\":%ld,\"hostname\":\"%s\"}", newtok,
			 seed, (long long)now.tv_sec, now.tv_nsec, id);
		code = agent_http_body(agent_addr, AGENT_PORT, "POST", "/restored", oldtok, body, 2000, 5000);
	}
	explicit_bzero(oldtok, sizeof oldtok);
	explicit_bzero(newtok, sizeof newtok);
	explicit_bzero(body, sizeof body);
	explicit_bzero(raw, sizeof raw);
	explicit_bzero(seed, sizeof seed);
	if (code != 200) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT_RESTORE", "take the snapshot again with this vmsan",
			 "the restored guest's agent did not take its new token (HTTP %d)", code);
		return -1;
	}
	return 0;
}
