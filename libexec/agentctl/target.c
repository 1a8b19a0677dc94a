/* Which agent to talk to: a VM's (its record's address, its token file)
 * or one named by address with a token file.  A token is never taken on
 * the command line. */
#define _GNU_SOURCE
#include "agentctl/agentctl.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The first line of a token file (16+ characters); -1 when there is none. */
static int read_token(int dirfd, const char *path, char *out, size_t n)
{
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	ssize_t r = read(fd, out, n - 1);
	close(fd);
	if (r <= 0)
		return -1;
	while (r && (out[r - 1] == '\n' || out[r - 1] == '\r'))
		r--;
	out[r] = 0;
	return r >= 16 ? 0 : -1;
}

/* The record says where the agent is, once the VM runs. */
static int target_from_record(struct target *t, struct state *st, const char *id, json_t *rec, struct verr *e)
{
	const char *status = json_string_value(json_object_get(rec, "status"));
	json_t *agent = json_object_get(rec, "agent");
	const char *addr = json_string_value(json_object_get(agent, "addr"));
	json_int_t port = json_integer_value(json_object_get(agent, "port"));
	char tokname[96];

	snprintf(tokname, sizeof tokname, "%s.token", id);
	if (!status || strcmp(status, "running"))
		return verr_fail(e, 1, "ERR_VM_NOT_RUNNING", "start it with 'vmsan start'", "VM %s is %s, not running",
				 id, status ? status : "in an unknown state");
	if (!addr || port < 1 || port > 65535)
		return verr_fail(e, 1, "ERR_VM_NO_AGENT", "recreate the VM", "VM %s has no agent address in its record",
				 id);
	if (read_token(st->vmsfd, tokname, t->token, sizeof t->token) < 0)
		return verr_fail(e, 1, "ERR_VM_NO_AGENT_TOKEN", "recreate the VM",
				 "cannot read the agent token of %s (%s/%s)", id, st->vms, tokname);
	snprintf(t->host, sizeof t->host, "%s", addr);
	snprintf(t->port, sizeof t->port, "%d", (int)port);
	snprintf(t->vm, sizeof t->vm, "%s", id);
	t->vmm_pid = json_integer_value(json_object_get(rec, "pid"));
	t->vmm_start = json_integer_value(json_object_get(rec, "pidStartTime"));
	return 0;
}

bool target_vmm_gone(const struct target *t)
{
	return t->vmm_pid > 1 && proc_start_time((long)t->vmm_pid) != t->vmm_start;
}

int target_from_vm(struct target *t, const char *id, struct verr *e)
{
	struct state st;
	char why[128];
	json_t *rec;
	int rc;

	if (valid_vm_id(id, why, sizeof why) != 0)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_VM_ID", "VM ids look like vm-1a2b3c4d",
				 "invalid VM id '%s': %s", id, why);
	if (state_open(&st, false, e) != 0) {
		if (verr_take(e, "ERR_STATE_DIR_MISSING"))
			return verr_fail(e, 1, "ERR_VM_NOT_FOUND", "run 'vmsan list' to see your VMs",
					 "VM not found: %s", id);
		return -1;
	}
	rec = state_load(&st, id, e);
	if (!rec) {
		state_release(&st);
		return -1;
	}
	state_derive_status(rec);
	rc = target_from_record(t, &st, id, rec, e);
	json_decref(rec);
	state_release(&st);
	return rc;
}

int target_from_agent(struct target *t, const char *agent, const char *tokfile, struct verr *e)
{
	const char *colon = strrchr(agent, ':');

	if (!colon || colon == agent || strlen(colon + 1) >= sizeof t->port ||
	    (size_t)(colon - agent) >= sizeof t->host)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_AGENT", NULL, "--agent wants HOST:PORT");
	snprintf(t->host, sizeof t->host, "%.*s", (int)(colon - agent), agent);
	snprintf(t->port, sizeof t->port, "%s", colon + 1);
	if (read_token(AT_FDCWD, tokfile, t->token, sizeof t->token) < 0)
		return verr_fail(e, 1, "ERR_TOKEN", "the file must hold the agent's token (16+ characters)",
				 "cannot read a token from %s", tokfile);
	return 0;
}
