/* vmsan pause, resume: a running VM's vCPUs stopped, started again. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vm/vm.h"

const char pause_usage[] = "usage: vmsan pause ID [--json]\n       vmsan resume ID [--json]\n\n"
			   "Stops a running VM's vCPUs, or starts them again.\n";

static int do_pause(const char *id, bool pause)
{
	struct verr e = { 0 };
	struct state st = { .vmsfd = -1 };
	int lock = -1;
	json_t *rec = open_running_vm(&st, id, &lock, &e), *r = NULL;
	if (rec) {
		r = call("fc", pause ? "pause" : "resume", vmm_ref(id), true, &e);
		if (r)
			store(&st, id, json_pack("{s:b}", "paused", pause), NULL, &e);
	}
	json_decref(rec);
	if (lock >= 0)
		close(lock);
	state_release(&st);
	if (!r)
		return report(&e);
	json_decref(r);
	if (json_mode)
		printf("{\"ok\":true,\"id\":\"%s\",\"paused\":%s}\n", id, pause ? "true" : "false");
	else
		printf("%s %s\n", id, pause ? "paused" : "resumed");
	return 0;
}

/* vmsan pause|resume ID [--json] */
int cmd_pause(int argc, char **argv)
{
	const char *pid = NULL, *a, *v;
	struct args it = ARGS_INIT(argc, argv, NULL);
	int r;
	while ((r = args_next(&it, &a, &v)) > 0) {
		if (!a && pid)
			return usage_error("%s takes one VM id", cmd);
		else if (!a)
			pid = v;
		else if (!strcmp(a, "--json"))
			json_mode = true;
		else
			return usage_error("unknown option %s", a);
	}
	if (r < 0)
		return VMSAN_EXIT_USAGE;
	return pid ? do_pause(pid, !strcmp(cmd, "pause")) : usage_error("give the VM's id");
}
