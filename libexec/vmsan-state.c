/* vmsan-state: the VM record store ($VMSAN_DIR/vms/<id>.json).
 *
 * Unprivileged.  Every write is atomic (temp file, fsync, rename, directory
 * fsync) and made under an flock on vms/<id>.lock, so concurrent creates
 * and updates cannot lose each other's changes.  Status is derived on read:
 * a record that says "running" whose process is gone reads as "error".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lib/vmsan.h"

static const char *const reserved_keys[] = { "id", "schemaVersion", "createdAt" };

/* A pid without its start time could later name someone else's process. */
static void stamp_pid(json_t *rec)
{
	json_t *pid = json_object_get(rec, "pid");

	if (json_is_integer(pid) && !json_object_get(rec, "pidStartTime")) {
		long long st = proc_start_time((long)json_integer_value(pid));

		json_object_set_new(rec, "pidStartTime", st >= 0 ? json_integer(st) : json_null());
	}
	if (json_is_null(pid))
		json_object_del(rec, "pidStartTime");
}

static json_t *with_record(json_t *rec)
{
	return json_pack("{s:o}", "record", rec);
}

/* For ops on one VM: no state directory yet means no such VM. */
static int open_for_vm(struct state *st, const char *id, struct verr *e)
{
	if (state_open(st, false, e) == 0)
		return 0;
	if (verr_take(e, "ERR_STATE_DIR_MISSING"))
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VM_NOT_FOUND", "run 'vmsan list' to see your VMs", "VM not found: %s",
			 id);
	return -1;
}

static json_t *op_dir(struct jr *r, struct verr *e)
{
	struct state st = { .vmsfd = -1 };
	bool create = false;
	json_t *reply = NULL;

	jr_bool(r, "create", JR_OPTIONAL, &create);
	if (jr_end(r))
		return NULL;
	if (state_open(&st, create, e) == 0)
		reply = json_pack("{s:s, s:s, s:b}", "dir", st.dir, "vms", st.vms, "exists", 1);
	else if (verr_take(e, "ERR_STATE_DIR_MISSING"))
		reply = json_pack("{s:s, s:s, s:b}", "dir", st.dir, "vms", st.vms, "exists", 0);
	state_release(&st);
	return reply;
}

static json_t *op_get(struct jr *r, struct verr *e)
{
	const char *id = jr_string(r, "id", JR_REQUIRED, valid_vm_id);
	struct state st = { .vmsfd = -1 };
	json_t *rec = NULL;

	if (jr_end(r) || open_for_vm(&st, id, e))
		goto out;
	rec = state_load(&st, id, e);
	if (rec)
		state_derive_status(rec);
out:
	state_release(&st);
	return rec ? with_record(rec) : NULL;
}

static bool is_reserved(const char *key)
{
	for (size_t i = 0; i < sizeof(reserved_keys) / sizeof(*reserved_keys); i++)
		if (strcmp(key, reserved_keys[i]) == 0)
			return true;
	return false;
}

/* Caller-supplied fields: an object, without the keys only we may set. */
static int check_fields(json_t *fields, const char *what, struct verr *e)
{
	const char *key;
	json_t *v;

	json_object_foreach(fields, key, v) {
		if (is_reserved(key)) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", NULL,
				 "request.%s.%s is set by vmsan-state and cannot be given", what, key);
			return -1;
		}
	}
	return 0;
}

static json_t *op_new(struct jr *r, struct verr *e)
{
	json_t *fields = jr_object(r, "record", JR_OPTIONAL);
	struct state st = { .vmsfd = -1 };
	json_t *rec = NULL;

	if (jr_end(r) || (fields && check_fields(fields, "record", e)) || state_open(&st, true, e))
		goto out;
	rec = state_new(&st, fields, e);
out:
	state_release(&st);
	return rec ? with_record(rec) : NULL;
}

static json_t *op_put(struct jr *r, struct verr *e)
{
	json_t *rec = jr_object(r, "record", JR_REQUIRED);
	struct state st = { .vmsfd = -1 };
	const char *id;
	char why[256];
	int lock = -1;
	json_t *reply = NULL;

	if (jr_end(r))
		return NULL;
	id = json_string_value(json_object_get(rec, "id"));
	if (!id || valid_vm_id(id, why, sizeof(why)) != 0) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", NULL, "request.record.id: %s",
			 id ? why : "missing or not a string");
		return NULL;
	}
	if (state_open(&st, true, e) || (lock = state_lock(&st, id, e)) < 0)
		goto out;
	rec = json_deep_copy(rec);
	stamp_pid(rec);
	if (state_store(&st, id, rec, false, e) == 0)
		reply = with_record(json_incref(rec));
	json_decref(rec);
out:
	if (lock >= 0)
		close(lock);
	state_release(&st);
	return reply;
}

/* Shallow merge under the VM's lock; "expectStatus" makes it a
 * compare-and-swap on the recorded status. */
static json_t *op_update(struct jr *r, struct verr *e)
{
	const char *id = jr_string(r, "id", JR_REQUIRED, valid_vm_id);
	json_t *set = jr_object(r, "set", JR_OPTIONAL);
	json_t *unset = jr_array(r, "unset", JR_OPTIONAL, 64);
	const char *expect = jr_string(r, "expectStatus", JR_OPTIONAL, NULL);
	struct state st = { .vmsfd = -1 };
	json_t *rec = NULL, *reply = NULL, *v;
	const char *cur;
	size_t i;
	int lock = -1;

	if (jr_end(r) || (set && check_fields(set, "set", e)))
		return NULL;
	json_array_foreach(unset, i, v) {
		if (!json_is_string(v) || is_reserved(json_string_value(v))) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", NULL,
				 "request.unset[%zu]: expected the name of a field vmsan-state does not own", i);
			return NULL;
		}
	}
	if (open_for_vm(&st, id, e) || (lock = state_lock(&st, id, e)) < 0)
		goto out;
	rec = state_load(&st, id, e);
	if (!rec)
		goto out;
	cur = json_string_value(json_object_get(rec, "status"));
	if (expect && strcmp(cur, expect) != 0) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VM_STATUS", NULL, "VM %s is %s, not %s", id, cur, expect);
		goto out;
	}
	if (set)
		json_object_update(rec, set);
	json_array_foreach(unset, i, v)
		json_object_del(rec, json_string_value(v));
	if (set && json_object_get(set, "pid"))
		json_object_del(rec, "pidStartTime");
	stamp_pid(rec);
	if (state_store(&st, id, rec, false, e) == 0) {
		state_derive_status(rec);
		reply = with_record(json_incref(rec));
	}
out:
	json_decref(rec);
	if (lock >= 0)
		close(lock);
	state_release(&st);
	return reply;
}

static json_t *op_delete(struct jr *r, struct verr *e)
{
	const char *id = jr_string(r, "id", JR_REQUIRED, valid_vm_id);
	struct state st = { .vmsfd = -1 };
	json_t *reply = NULL;
	char name[80];
	int lock = -1;
	bool existed;

	if (jr_end(r))
		return NULL;
	if (state_open(&st, false, e)) {
		if (verr_take(e, "ERR_STATE_DIR_MISSING"))
			return json_pack("{s:s, s:b}", "id", id, "deleted", 0);
		goto out;
	}
	if ((lock = state_lock(&st, id, e)) < 0)
		goto out;
	snprintf(name, sizeof(name), "%s.json", id);
	existed = faccessat(st.vmsfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	if (state_remove(&st, id, e) == 0)
		reply = json_pack("{s:s, s:b}", "id", id, "deleted", existed);
out:
	if (lock >= 0)
		close(lock);
	state_release(&st);
	return reply;
}

static json_t *op_list(struct jr *r, struct verr *e)
{
	json_t *ids = jr_array(r, "ids", JR_OPTIONAL, 4096);
	struct state st = { .vmsfd = -1 };
	json_t *vms = NULL, *errors = NULL;

	if (jr_end(r) || state_list(&st, ids, &vms, &errors, e) != 0)
		return NULL;
	return json_pack("{s:o, s:o, s:s}", "vms", vms, "errors", errors, "dir", st.vms);
}

static const struct helper_op ops[] = {
	{ "dir", op_dir },	 { "new", op_new },	  { "get", op_get },   { "put", op_put },
	{ "update", op_update }, { "delete", op_delete }, { "list", op_list },
};

static const struct helper helper = {
	.name = "vmsan-state",
	.summary = "plumbing: read and write VM records (JSON request on stdin)",
	.usage = "usage: vmsan-state [OP] [--verbose] < request.json\n"
		 "\n"
		 "The VM record store under $VMSAN_DIR/vms.  One JSON request on stdin,\n"
		 "one JSON reply on stdout.  The op is the request's \"op\" or OP.\n"
		 "\n"
		 "  {\"op\":\"dir\", \"create\":BOOL}           where the state lives\n"
		 "  {\"op\":\"new\", \"record\":{...}}          new VM id and record\n"
		 "  {\"op\":\"get\", \"id\":ID}                 one record, status derived\n"
		 "  {\"op\":\"put\", \"record\":{\"id\":ID,...}}  replace a whole record\n"
		 "  {\"op\":\"update\", \"id\":ID, \"set\":{...}, \"unset\":[...],\n"
		 "   \"expectStatus\":S}                     merge fields under the VM's lock\n"
		 "  {\"op\":\"delete\", \"id\":ID}              remove (idempotent)\n"
		 "  {\"op\":\"list\", \"ids\":[ID...]}           records, newest first, plus errors\n"
		 "\n"
		 "Exit status: 0 ok, 1 refused or failed, 100 bad request, 111 system error.\n"
		 "See vmsan-state(8).\n",
	.ops = ops,
	.nops = sizeof(ops) / sizeof(*ops),
};

int main(int argc, char **argv)
{
	return helper_main(&helper, argc, argv);
}
