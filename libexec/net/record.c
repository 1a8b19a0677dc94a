/* Root's runtime records (NET_DIR/<id>.json) and the slot bitmap
 * (SLOT_MAP), under bounded flocks.  A slot is a VM's link names and
 * addresses; its record says what teardown has to undo and whose it is. */
#define _GNU_SOURCE
#include "net/net.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_WAIT_MS 10000 /* the longest a lock is waited for */

void vmnet_init(struct vmnet *v, const char *id)
{
	memset(v, 0, sizeof(*v));
	snprintf(v->id, sizeof(v->id), "%s", id);
	snprintf(v->netns, sizeof(v->netns), "vmsan-%s", id);
	snprintf(v->nspath, sizeof(v->nspath), NETNS_DIR "/%s", v->netns);
	v->slot = -1;
	v->owner = (long)who.uid;
}

static void vmnet_set_slot(struct vmnet *v, long slot)
{
	v->slot = slot;
	if (v->host_mode) {
		struct policy_target t;

		netplan_host_target(v->id, (unsigned)slot, &t, v->table, v->host_if, v->host_addr, v->ns_addr);
	} else {
		snprintf(v->host_if, sizeof(v->host_if), NET_HOST_PREFIX "%ld", slot);
		netplan_slot_addrs((unsigned)slot, v->host_addr, v->ns_addr);
	}
}

int ensure_dirs(struct verr *e)
{
	if ((mkdir(RUN_DIR, 0755) && errno != EEXIST) || (mkdir(NET_DIR, 0700) && errno != EEXIST)) {
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot create " NET_DIR);
		return -1;
	}
	return 0;
}

/* The lock, waited for LOCK_WAIT_MS at most: a holder stopped by its
 * caller (SIGSTOP through sudo) makes the others fail with ERR_BUSY
 * instead of hanging every user's VMs.  Holders keep it for a few
 * system calls (slot bitmap and record; the host table's creation). */
int lock_file(const char *path, struct verr *e)
{
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0) {
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot open %s", path);
		return -1;
	}
	for (int waited = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; waited += 5) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			verr_sys(e, "ERR_RUNTIME", NULL, "cannot lock %s", path);
			close(fd);
			return -1;
		}
		if (waited >= LOCK_WAIT_MS) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_BUSY",
				 "try again; if it persists, look for a stopped vmsan-net",
				 "%s has been held for %d s by another vmsan-net", path, LOCK_WAIT_MS / 1000);
			close(fd);
			return -1;
		}
		usleep(5000);
	}
	return fd;
}

/* A bitmap of NET_SLOTS bits under an flock, followed by a cursor: slots
 * are handed out next-fit, so a slot just freed is not handed out again
 * until the others have been.  A namespace's destruction is asynchronous
 * in the kernel and keeps its veth's host end vmsh<N> for tens of ms;
 * first-fit reused that slot at once and had to delete the link itself,
 * waiting out the same RCU grace periods (38 ms measured).  Two setups
 * never share a slot.  The runtime record is written before the lock is
 * let go, so under that lock a taken slot without a record is a leftover
 * (what sweep relies on). */
#define SLOT_CURSOR_OFF (NET_SLOTS / 8)
long slot_take(struct vmnet *v, struct verr *e)
{
	unsigned char map[NET_SLOTS / 8];
	uint32_t cursor = 0;
	int fd = lock_file(SLOT_MAP, e);
	ssize_t n;
	long slot = -1;

	if (fd < 0)
		return -1;
	memset(map, 0, sizeof(map));
	n = pread(fd, map, sizeof(map), 0);
	if (n < 0) {
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot read " SLOT_MAP);
		goto out;
	}
	if (pread(fd, &cursor, sizeof cursor, SLOT_CURSOR_OFF) != (ssize_t)sizeof cursor || cursor >= NET_SLOTS)
		cursor = 0;
	for (long k = 0; k < NET_SLOTS && slot < 0; k++) {
		long c = ((long)cursor + k) % NET_SLOTS;

		if (!(map[c / 8] & (1 << (c % 8)))) {
			slot = c;
			map[c / 8] |= (unsigned char)(1 << (c % 8));
		}
	}
	if (slot < 0) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_NETWORK_SLOTS_EXHAUSTED", "remove VMs you no longer need",
			 "all %d network slots are in use", NET_SLOTS);
		goto out;
	}
	cursor = (uint32_t)((slot + 1) % NET_SLOTS);
	if (pwrite(fd, &map[slot / 8], 1, slot / 8) != 1 ||
	    pwrite(fd, &cursor, sizeof cursor, SLOT_CURSOR_OFF) != (ssize_t)sizeof cursor) {
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot write " SLOT_MAP);
		slot = -1;
	} else {
		vmnet_set_slot(v, slot);
		if (record_write(v, e) != 0) {
			map[slot / 8] &= (unsigned char)~(1 << (slot % 8));
			(void)!pwrite(fd, &map[slot / 8], 1, slot / 8);
			v->slot = slot = -1;
		}
	}
out:
	close(fd);
	return slot;
}

void slot_free(long slot)
{
	struct verr e = { 0 };
	unsigned char byte = 0;
	int fd;

	if (slot < 0 || slot >= NET_SLOTS || (fd = lock_file(SLOT_MAP, &e)) < 0)
		return;
	if (pread(fd, &byte, 1, slot / 8) == 1) {
		byte &= (unsigned char)~(1 << (slot % 8));
		if (pwrite(fd, &byte, 1, slot / 8) != 1)
			fprintf(stderr, "vmsan-net: cannot free slot %ld\n", slot);
	}
	close(fd);
}

int record_path(char *buf, size_t n, const char *id)
{
	return snprintf(buf, n, NET_DIR "/%s.json", id) < (int)n ? 0 : -1;
}

/* The temporary file record_write renames into place: a vmsan-net killed
 * between writing and renaming leaves it (teardown and sweep remove it). */
void record_tmp_remove(const char *id)
{
	char path[170];

	if (snprintf(path, sizeof path, NET_DIR "/%s.json.tmp", id) < (int)sizeof path)
		unlink(path);
}

int record_write(const struct vmnet *v, struct verr *e)
{
	char path[160], tmp[170];
	json_t *rec = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:o, s:b, s:I}", "id", v->id, "netns", v->netns, "slot",
				(int)v->slot, "hostIf", v->host_if, "hostAddr", v->host_addr, "nsAddr", v->ns_addr,
				"ports", v->ports ? json_incref(v->ports) : json_array(), "hostMode", v->host_mode,
				"owner", (json_int_t)v->owner);
	int rc;

	if (v->dns)
		json_object_set(rec, "dns", v->dns);
	if (v->home.path[0])
		json_object_set_new(rec, "vmDir", vmhome_json(&v->home));
	record_path(path, sizeof(path), v->id);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	rc = json_dump_file(rec, tmp, JSON_COMPACT);
	json_decref(rec);
	if (rc != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot write %s", path);
		return -1;
	}
	return 0;
}

/* Fills v from the runtime record, if there is one (0: none).  The
 * record is root's (NET_DIR is 0700): what it says is trusted. */
int record_read(struct vmnet *v)
{
	char path[160];
	json_t *rec, *slot;

	record_path(path, sizeof(path), v->id);
	rec = json_load_file(path, 0, NULL);
	if (!rec)
		return 0;
	v->host_mode = json_is_true(json_object_get(rec, "hostMode"));
	/* a record without an owner is root's */
	v->owner = json_is_integer(json_object_get(rec, "owner"))
			   ? (long)json_integer_value(json_object_get(rec, "owner"))
			   : 0;
	slot = json_object_get(rec, "slot");
	if (json_is_integer(slot) && json_integer_value(slot) >= 0 && json_integer_value(slot) < NET_SLOTS)
		vmnet_set_slot(v, (long)json_integer_value(slot));
	if (json_is_array(json_object_get(rec, "ports")))
		v->ports = json_incref(json_object_get(rec, "ports"));
	if (json_is_object(json_object_get(rec, "dns")))
		v->dns = json_incref(json_object_get(rec, "dns"));
	vmhome_read(json_object_get(rec, "vmDir"), &v->home);
	json_decref(rec);
	return 1;
}
