/* vmsan gc: what interrupted or crashed operations left. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vm/vm.h"

const char gc_usage[] = "usage: vmsan gc [--dry-run] [--json]\n\n"
			"Finds what interrupted or crashed operations left: records of creates\n"
			"that never finished, VMs whose VMM is gone, VM directories and tokens\n"
			"with no record; root's records of your VMs (all users' VMs, for root)\n"
			"whose VM directory is gone (its state removed: the VMM killed, the\n"
			"network torn down) or whose VMM is dead, and resolvers that died\n"
			"(started again); and, for root, the network's own leftovers (slots,\n"
			"links, namespaces and published ports no VM accounts for, whoever's\n"
			"they were).  Unfinished VMs are removed; crashed ones are stopped\n"
			"(network torn down, disk kept).  --dry-run only lists them.\n";

/* What is left over of VM id, or NULL when nothing is; *rec gets its
 * record (status derived) when it has one. */
static const char *leftover(struct state *st, const char *id, json_t **rec)
{
	struct verr le = { 0 };
	*rec = state_load(st, id, &le);
	if (!*rec)
		return verr_take(&le, "ERR_VM_NOT_FOUND") ? "files with no record" : NULL;
	state_derive_status(*rec);
	const char *status = jstr(*rec, "status"), *was = jstr(*rec, "recordedStatus");
	if (!strcmp(status, "error"))
		return was && !strcmp(was, "creating") ? "a create that did not finish" : "a VM whose VMM is gone";
	if (!strcmp(status, "stopped")) {
		char ns[128];
		json_t *vmm = json_object_get(*rec, "process");
		snprintf(ns, sizeof ns, "/run/netns/vmsan-%s", id);
		if (access(ns, F_OK) == 0 || (jint(vmm, "pid", 0) > 1 &&
					      proc_start_time((long)jint(vmm, "pid", 0)) == jint(vmm, "startTime", -1)))
			return "a stopped VM with a VMM or network left";
	}
	return NULL;
}

/* VMs: every id our state directory knows (records, VM dirs, tokens)
 * that leftover() finds something of, removed or stopped unless dry. */
static void gc_vms(struct state *st, bool dry, json_t *found)
{
	json_t *ids = json_object();
	DIR *d = opendir(st->vms);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char id[80], why[128];
		if (strlen(de->d_name) >= sizeof id)
			continue;
		memcpy(id, de->d_name, strlen(de->d_name) + 1);
		char *dot = strchr(id, '.');
		if (dot)
			*dot = 0;
		if (!valid_vm_id(id, why, sizeof why) && !strncmp(id, "vm-", 3))
			json_object_set_new(ids, id, json_true());
	}
	if (d)
		closedir(d);
	const char *id;
	json_t *v;
	json_object_foreach(ids, id, v) {
		json_t *rec = NULL;
		const char *what = leftover(st, id, &rec);
		bool remove = !rec || !strcmp(jstr(rec, "recordedStatus") ?: "", "creating");
		if (what && !dry) {
			/* decided again under the lock: an operation that held it may
			 * have changed everything */
			struct verr le = { 0 };
			int lock = state_lock(st, id, &le);
			json_decref(rec);
			rec = NULL;
			if ((what = leftover(st, id, &rec))) {
				remove = !rec || !strcmp(jstr(rec, "recordedStatus") ?: "", "creating");
				if (remove)
					remove_all(st, id, rec);
				else
					stop_vm(st, id, rec, 0, &le);
			}
			if (lock >= 0)
				close(lock);
		}
		if (what)
			json_array_append_new(found, json_pack("{s:s, s:s, s:s}", "id", id, "found", what, "action",
							       remove ? "remove" : "stop"));
		json_decref(rec);
	}
	json_decref(ids);
}

/* Snapshots a killed `snapshot create` left half made (hidden
 * .<snapshot>.<pid>.tmp directories whose process is gone). */
static void gc_snapshots(struct state *st, bool dry, json_t *found)
{
	struct dirent *de;
	int sfd = snapshots_dir(st, false, &(struct verr){ 0 });
	DIR *sd = sfd < 0 ? NULL : fdopendir(dup(sfd));
	while (sd && (de = readdir(sd))) {
		if (!tmp_abandoned(de->d_name, ".tmp"))
			continue;
		json_array_append_new(found, json_pack("{s:n, s:o, s:s}", "id", "found",
						       json_sprintf("unfinished snapshot %s", de->d_name), "action",
						       "remove"));
		if (!dry)
			rm_tree_at(sfd, de->d_name);
	}
	if (sd)
		closedir(sd);
	if (sfd >= 0)
		close(sfd);
}

/* A VM of ours whose resolver died: its rules applied again, which
 * starts a new one (vmsan-net's dns_follow).  0 done, -1 not ours or not
 * running here (only listed). */
static int restart_resolver(struct state *st, const char *id)
{
	struct verr e = { 0 };
	int lock;
	json_t *rec, *req, *r = NULL;

	if (!st || !(rec = state_load(st, id, &e)))
		return -1;
	json_decref(rec);
	if ((lock = state_lock(st, id, &e)) < 0)
		return -1;
	rec = state_load(st, id, &e);
	if (rec)
		state_derive_status(rec);
	if (rec && !strcmp(jstr(rec, "status"), "running") &&
	    (req = rules_request(id, jstr(rec, "dir"), json_object_get(rec, "network"), &e)))
		r = call("net", "apply-rules", req, true, &e);
	json_decref(rec);
	close(lock);
	json_decref(r);
	return r ? 0 : -1;
}

/* Root's records that nobody's state accounts for (vmsan-net's, then
 * vmsan-fc's orphans: each gives up the id when the other holds nothing
 * of it): ours only, through sudo; root's gc, everyone's.  The network of
 * a VM whose VMM was found dead goes too (vmsan-net checks it is ours). */
static void gc_orphans(struct state *st, bool dry, json_t *found)
{
	static const char *const helpers[] = { "net", "fc" };
	size_t i;
	json_t *v;

	for (int h = 0; h < 2; h++) {
		struct verr e = { 0 };
		json_t *r = call(helpers[h], "orphans", json_pack("{s:b}", "dryRun", dry), true, &e);

		if (!r) {
			fprintf(stderr, "vmsan gc: root's records (vmsan-%s) were not checked: %s\n", helpers[h],
				e.message);
			continue;
		}
		json_array_foreach(json_object_get(r, "found"), i, v) {
			const char *id = jstr(v, "id"), *action = jstr(v, "action");

			if (!dry && id && json_is_true(json_object_get(v, "resolverDead")) &&
			    restart_resolver(st, id) < 0)
				action = "leave (not a running VM of this state: vmsan network restarts it)";
			if (!dry && id && json_is_true(json_object_get(v, "vmmDead")))
				call_quiet("net", "teardown", json_pack("{s:s}", "id", id), true);
			json_array_append_new(found, json_pack("{s:s?, s:s, s:s}", "id", id, "found", jstr(v, "found"),
							       "action", action));
		}
		json_decref(r);
	}
}

/* The network's own leftovers, whoever's they were: what no runtime
 * record of vmsan-net accounts for (see vmsan-net(8), sweep). */
static void gc_network(bool dry, json_t *found)
{
	size_t i;
	json_t *v;
	struct verr ne = { 0 };
	json_t *sw;

	if (geteuid() != 0)
		return; /* root's job: it reads and removes every user's */
	sw = call("net", "sweep", json_pack("{s:b}", "dryRun", dry), true, &ne);
	if (sw) {
		json_array_foreach(json_object_get(sw, dry ? "found" : "removed"), i, v)
			json_array_append_new(found, json_pack("{s:n, s:s, s:s}", "id", "found", json_string_value(v),
							       "action", "remove"));
		json_decref(sw);
	} else {
		fprintf(stderr, "vmsan gc: the network's leftovers were not checked: %s\n", ne.message);
	}
}

static int do_gc(bool dry)
{
	struct verr e = { 0 };
	struct state st;
	size_t i;
	json_t *v, *found = json_array();
	bool have = state_open(&st, false, &e) == 0;

	/* Without a state dir (removed, or the home with it) there is
	 * nothing of ours to look at, but root's records of our VMs may
	 * still name it: they are orphans. */
	if (!have && !verr_take(&e, "ERR_STATE_DIR_MISSING")) {
		json_decref(found);
		return report(&e);
	}
	if (have) {
		gc_vms(&st, dry, found);
		gc_snapshots(&st, dry, found);
		gc_templates(&st, dry, found);
	}
	gc_orphans(have ? &st : NULL, dry, found);
	if (have)
		state_release(&st);
	gc_network(dry, found);
	if (json_mode) {
		json_t *doc = json_pack("{s:b, s:b, s:o}", "ok", 1, "dryRun", dry, "found", found);
		json_dumpf(doc, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(doc);
	} else {
		json_array_foreach(found, i, v)
			printf("%s%s %s (%s)\n", dry ? "would " : "", jstr(v, "action"), jstr(v, "id") ?: "host",
			       jstr(v, "found"));
		if (!json_array_size(found))
			printf("nothing to collect\n");
		json_decref(found);
	}
	return 0;
}

/* vmsan gc [--dry-run] [--json] */
int cmd_gc(int argc, char **argv)
{
	struct id_args a;
	int rc = parse_id_args(argc, argv, &a);
	if (!rc)
		rc = !json_array_size(a.ids) ? do_gc(a.dry) : usage_error("gc takes no VM ids");
	json_decref(a.ids);
	return rc;
}
