/* The life-cycle porcelain's core: the command table, dispatched on the
 * name it runs as (vmsan-create, vmsan-start, ...); vm.h maps the files. */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vm/vm.h"

/* Each command: its name (vmsan-NAME runs it), what vmsan help says, and
 * the words vmsan's completion offers. */
static const struct command {
	const char *name, *summary, *usage, *complete;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "create", "create a VM and wait until its agent answers", create_usage,
	  "--runtime --from-image --vcpus --memory --disk-size --network-policy --allowed-cidr "
	  "--denied-cidr --allowed-domain --strict-domains --dns --publish-port --bandwidth --no-netns --snapshot "
	  "--timeout --vmm --accel --kernel --pull --cold --project "
	  "--json --verbose",
	  cmd_create },
	{ "start", "start a stopped VM on the same disk", start_usage, "--json --verbose", cmd_start },
	{ "stop", "power a VM off (its disk stays) and tear its network down", stop_usage, "--grace --json", cmd_stop },
	{ "rm", "remove VMs (-f: even running ones)", rm_usage, "-f --force --json", cmd_rm },
	{ "remove", "remove VMs (same as rm)", rm_usage, "-f --force --json", cmd_rm },
	{ "run", "create a VM, run one command in it, and (--rm) remove it", run_usage, "--rm --json --verbose",
	  cmd_run },
	{ "gc", "remove what interrupted creates and crashed VMs left", gc_usage, "--dry-run --json", cmd_gc },
	{ "network", "change a running VM's egress policy, live", network_usage,
	  "--network-policy --allowed-cidr --denied-cidr --allowed-domain --strict-domains --json", cmd_network },
	{ "snapshot", "save a running VM (create), list and delete snapshots", snapshot_usage,
	  "create list ls delete rm --resume --no-resume --json", cmd_snapshot },
	{ "template", "list and delete the templates create starts VMs from", template_usage,
	  "list ls delete rm --all --json", cmd_template },
	{ "pause", "stop a running VM's vCPUs", pause_usage, "--json", cmd_pause },
	{ "resume", "start a paused VM's vCPUs again", pause_usage, "--json", cmd_pause },
};

/* Where the helpers are: $VMSAN_LIBEXECDIR, else beside this binary. */
static void find_libexec(void)
{
	const char *le = getenv("VMSAN_LIBEXECDIR");
	if (le && *le) {
		snprintf(libexec, PATH_MAX, "%s", le);
		return;
	}
	ssize_t n = readlink("/proc/self/exe", libexec, PATH_MAX - 1);
	libexec[n > 0 ? n : 0] = 0;
	char *s = strrchr(libexec, '/');
	if (s)
		*s = 0;
}

/* --help, --summary or --complete anywhere before "--": answered, 1. */
static int answer_meta(const struct command *c, int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(c->usage, stdout);
			return 1;
		}
		if (!strcmp(argv[i], "--summary")) {
			puts(c->summary);
			return 1;
		}
		if (!strcmp(argv[i], "--complete")) {
			for (const char *p = c->complete; *p; p++)
				putchar(*p == ' ' ? '\n' : *p);
			putchar('\n');
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	if (!strncmp(base, "vmsan-", 6))
		base += 6;
	cmd = base;
	vmsan_prog = "vmsan";
	call_init();
	json_mode = getenv("VMSAN_JSON") && !strcmp(getenv("VMSAN_JSON"), "1");
	verbose = getenv("VMSAN_VERBOSE") && !strcmp(getenv("VMSAN_VERBOSE"), "1");
	find_libexec();
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
		if (strcmp(commands[i].name, cmd))
			continue;
		if (answer_meta(&commands[i], argc, argv))
			return 0;
		return commands[i].run(argc, argv);
	}
	fprintf(stderr,
		"vmsan-create: run me as vmsan-create, -start, -stop, -rm, -run, -gc, -network, -snapshot, -template, -pause or -resume\n");
	return VMSAN_EXIT_USAGE;
}
