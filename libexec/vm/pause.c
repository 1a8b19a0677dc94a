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
	const char *pid = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json_mode = true;
		else if (argv[i][0] == '-' || pid)
			return usage_error("usage: vmsan %s ID [--json]", cmd);
		else
			pid = argv[i];
	}
	return pid ? do_pause(pid, !strcmp(cmd, "pause")) : usage_error("give the VM's id");
}
