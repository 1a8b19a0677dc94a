/* vmsan-net orphans: root's network records that nobody's state accounts
 * for any more.  A record whose VM directory (request.vmDir at setup:
 * path, device and inode) is gone for its owner (vmsan's state removed,
 * or the user's home) is torn down whole, and the id's claim given up
 * when vmsan-fc holds nothing of it either.  A record whose resolver has
 * died is listed (it holds the VM's allowed domains no more than root's
 * record does: its owner's vmsan gc starts it again by applying the VM's
 * rules).  A user sees only records naming them as owner; root all. */
#define _GNU_SOURCE
#include "net/net.h"
#include "lib/claim.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>

static void one(const char *id, bool dry, json_t *list)
{
	struct vmnet v;
	json_t *f = NULL;

	vmnet_init(&v, id);
	if (!record_read(&v) || (!who.root && v.owner != (long)who.uid))
		goto out;
	if (vmhome_state(&v.home, v.owner) == VMHOME_GONE) {
		f = json_pack("{s:s, s:I, s:o, s:s}", "id", id, "owner", (json_int_t)v.owner, "found",
			      json_sprintf("a network (%s) whose VM directory %s is gone",
					   v.host_mode ? v.table : v.netns, v.home.path),
			      "action", "remove");
		if (!dry) {
			teardown(&v);
			if (!claim_in_use(id))
				claim_release(id);
		}
	} else if (v.dns && !dns_alive(&v) && (v.host_mode || netns_exists(&v))) {
		f = json_pack("{s:s, s:I, s:o, s:s, s:b}", "id", id, "owner", (json_int_t)v.owner, "found",
			      json_sprintf("a resolver (pid %lld) that is dead",
					   (long long)json_integer_value(json_object_get(v.dns, "pid"))),
			      "action", "restart", "resolverDead", 1);
	}
	if (f)
		json_array_append_new(list, f);
out:
	json_decref(v.ports);
	json_decref(v.dns);
}

json_t *net_orphans(bool dry, struct verr *e)
{
	DIR *dir;
	struct dirent *d;
	json_t *list;

	if (ensure_dirs(e))
		return NULL;
	list = json_array();
	dir = opendir(NET_DIR);
	while (dir && (d = readdir(dir))) {
		size_t n = strlen(d->d_name);
		char id[64];

		if (n <= 5 || n - 5 >= sizeof id || strcmp(d->d_name + n - 5, ".json"))
			continue;
		memcpy(id, d->d_name, n - 5);
		id[n - 5] = 0;
		if (valid_vm_id(id, NULL, 0) == 0)
			one(id, dry, list);
	}
	if (dir)
		closedir(dir);
	return json_pack("{s:b, s:o}", "dryRun", dry, "found", list);
}
