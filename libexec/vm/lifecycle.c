/* vmsan start, stop, rm: a VM's own disk booted again, powered off,
 * removed. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

#include "vm/vm.h"

const char start_usage[] = "usage: vmsan start ID [--json] [--verbose]\n\n"
			   "Starts a stopped VM on the same disk: a new network namespace (the same\n"
			   "policy), the VMM, and waits for the agent.  --timeout is armed again.\n";
const char stop_usage[] = "usage: vmsan stop ID... [--grace SECONDS] [--json]\n\n"
			  "Asks the guest to power off (processes stopped, disks synced), waits up to\n"
			  "--grace seconds (default 10) for the VMM to end, then ends it; tears the\n"
			  "network down.  The disk stays: vmsan start boots it again.\n";
const char rm_usage[] = "usage: vmsan rm ID... [-f|--force] [--json]\n\n"
			"Removes stopped VMs: disk, logs, token, record.  --force also removes a\n"
			"running, creating or broken VM (its VMM killed, its network torn down).\n";
static int do_start(const char *id)
{
	struct verr e = { 0 };
	struct state st;
	int lock = -1;
	struct boot b = { 0 };
	double t0 = now_ms();
	json_t *rec = open_vm(&st, id, &lock, &e);
	if (!rec)
		goto fail;
	if (strcmp(jstr(rec, "status"), "stopped")) {
		verr_set(&e, VMSAN_EXIT_FAIL, "ERR_VM_STATE",
			 !strcmp(jstr(rec, "status"), "running") ? "it is running already"
								 : "stop it first (vmsan stop), or vmsan rm -f",
			 "%s is %s, not stopped", id, jstr(rec, "status"));
		goto fail;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (boot_vm(&st, id, rec, &b, &e) < 0) {
		json_t *cur = state_load(&st, id, &(struct verr){ 0 });
		take_down(id, cur);
		json_decref(cur);
		json_t *down = json_pack("{s:s, s:n}", "status", "stopped", "process");
		store(&st, id, down, NULL, &(struct verr){ 0 });
		goto fail;
	}
	long long to = jint(rec, "timeoutSec", 0);
	if (to && arm_timer(&st, id, to, &e) < 0)
		goto fail;
	json_t *upd = json_pack("{s:s, s:I, s:I, s:s}", "status", "running", "pid", jint(b.vmm, "pid", 0),
				"pidStartTime", jint(b.vmm, "startTime", 0), "pidRole", "vmm");
	int rc = store(&st, id, upd, NULL, &e);
	if (rc < 0)
		goto fail;
	if (json_mode)
		printf("{\"ok\":true,\"id\":\"%s\",\"status\":\"running\",\"timing\":{\"networkMs\":%.1f,"
		       "\"vmmStartMs\":%.1f,\"bootMs\":%.1f,\"totalMs\":%.1f}}\n",
		       id, b.t_net, b.t_vmm, b.t_boot, now_ms() - t0);
	else
		printf("%s running\n", id);
	json_decref(rec);
	json_decref(b.net);
	json_decref(b.vmm);
	close(lock);
	state_release(&st);
	return 0;
fail:
	json_decref(rec);
	json_decref(b.net);
	json_decref(b.vmm);
	if (lock >= 0)
		close(lock);
	return report(&e);
}

static int do_stop(const char *id, long long grace)
{
	struct verr e = { 0 };
	struct state st;
	int lock = -1;
	json_t *rec = open_vm(&st, id, &lock, &e);
	if (!rec)
		return report(&e);
	char was[16];
	snprintf(was, sizeof was, "%s", jstr(rec, "status"));
	int rc = 0;
	if (!strcmp(was, "stopped")) {
		/* idempotent */
	} else if (!strcmp(was, "creating")) {
		verr_set(&e, VMSAN_EXIT_FAIL, "ERR_VM_STATE", "wait for create to finish, or vmsan rm -f",
			 "%s is being created", id);
		rc = -1;
	} else {
		rc = stop_vm(&st, id, rec, grace, &e);
	}
	json_decref(rec);
	close(lock);
	state_release(&st);
	if (rc < 0)
		return report(&e);
	if (json_mode)
		printf("{\"ok\":true,\"id\":\"%s\",\"status\":\"stopped\",\"was\":\"%s\"}\n", id, was);
	else
		printf("%s stopped\n", id);
	return 0;
}

int do_rm(const char *id, bool force, json_t *removed)
{
	struct verr e = { 0 };
	struct state st;
	int lock = -1;
	json_t *rec = open_vm(&st, id, &lock, &e);
	if (!rec)
		return report(&e);
	const char *status = jstr(rec, "status");
	if (strcmp(status, "stopped") && !force) {
		verr_set(&e, VMSAN_EXIT_FAIL, "ERR_VM_STATE", "stop it first (vmsan stop), or use rm -f", "%s is %s",
			 id, status);
		json_decref(rec);
		close(lock);
		state_release(&st);
		return report(&e);
	}
	remove_all(&st, id, rec);
	json_decref(rec);
	close(lock);
	state_release(&st);
	json_array_append_new(removed, json_string(id));
	return 0;
}

/* ID... with the flags of the command run (cmd): -f|--force (rm), --dry-run
 * (gc), --grace SECONDS (stop); --json, --verbose.  0, or the exit status
 * of the usage error reported. */
int parse_id_args(int argc, char **argv, struct id_args *a)
{
	static const char *const stop_valued[] = { "--grace", NULL };
	struct args it = ARGS_INIT(argc, argv, !strcmp(cmd, "stop") ? stop_valued : NULL);
	const char *s, *v;
	int r;
	a->force = a->dry = false;
	a->grace = 10;
	a->ids = json_array();
	while ((r = args_next(&it, &s, &v)) > 0) {
		if (!s)
			json_array_append_new(a->ids, json_string(v));
		else if (!strcmp(s, "--json"))
			json_mode = true;
		else if (!strcmp(s, "--verbose"))
			verbose = true;
		else if ((!strcmp(s, "-f") || !strcmp(s, "--force")) && (!strcmp(cmd, "rm") || !strcmp(cmd, "remove")))
			a->force = true;
		else if (!strcmp(s, "--dry-run") && !strcmp(cmd, "gc"))
			a->dry = true;
		else if (!strcmp(s, "--grace") && !strcmp(cmd, "stop")) {
			struct verr e = { 0 };
			if (num_opt("--grace", v, 0, 3600, &a->grace, &e))
				return report(&e);
		} else
			return usage_error("unknown option %s", s);
	}
	return r < 0 ? VMSAN_EXIT_USAGE : 0;
}

/* parse_id_args, and at least one id: 0, or the exit status. */
static int id_args(int argc, char **argv, struct id_args *a)
{
	int rc = parse_id_args(argc, argv, a);
	if (!rc && !json_array_size(a->ids))
		rc = usage_error("no VM id given");
	if (rc) {
		json_decref(a->ids);
		a->ids = NULL;
	}
	return rc;
}

static int start_ids(const struct id_args *a)
{
	if (json_array_size(a->ids) != 1)
		return usage_error("start takes one VM id");
	return do_start(json_string_value(json_array_get(a->ids, 0)));
}

/* stop (removed NULL) or rm each id in turn, all of them whatever one
 * did: the first failure's exit status, or 0. */
static int each_id(const struct id_args *a, json_t *removed)
{
	int rc = 0;
	size_t i;
	json_t *v;
	json_array_foreach(a->ids, i, v) {
		int r = removed ? do_rm(json_string_value(v), a->force, removed)
				: do_stop(json_string_value(v), a->grace);
		rc = rc ? rc : r;
	}
	return rc;
}

static int stop_ids(const struct id_args *a)
{
	return each_id(a, NULL);
}

static int rm_ids(const struct id_args *a)
{
	json_t *removed = json_array(), *v;
	bool js = json_mode;
	size_t i;
	int rc = each_id(a, removed);
	if (js && !rc) {
		json_t *doc = json_pack("{s:b, s:o}", "ok", 1, "removed", removed);
		json_dumpf(doc, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(doc);
	} else {
		if (!js)
			json_array_foreach(removed, i, v)
				printf("%s removed\n", json_string_value(v));
		json_decref(removed);
	}
	return rc;
}

/* The command's ids (at least one) given to fn: its exit status. */
static int with_ids(int argc, char **argv, int (*fn)(const struct id_args *))
{
	struct id_args a;
	int rc = id_args(argc, argv, &a);
	if (rc)
		return rc;
	rc = fn(&a);
	json_decref(a.ids);
	return rc;
}

int cmd_start(int argc, char **argv)
{
	return with_ids(argc, argv, start_ids);
}

int cmd_stop(int argc, char **argv)
{
	return with_ids(argc, argv, stop_ids);
}

int cmd_rm(int argc, char **argv)
{
	return with_ids(argc, argv, rm_ids);
}
