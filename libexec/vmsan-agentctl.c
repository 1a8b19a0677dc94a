/* vmsan-agentctl: the host-side client of vmsan-agent.  Unprivileged.
 *
 *   vmsan-agentctl [TARGET] health | exec ... | kill ID | shell ... |
 *                  sessions | session-kill ID | upload ... | download ...
 *   TARGET: --vm ID (the VM record's agent address and its token file) or
 *           --agent HOST:PORT --token-file FILE
 *
 * Speaks HTTP/1.1 and WebSocket itself (proto/http.c, proto/ws.c) and
 * extracts downloads with untar.c (libarchive's reader, our openat2
 * writer), which lets nothing land outside the name asked for.  This file
 * is the core: the options, the command table, and where errors are
 * reported; each command is a file in agentctl/ (agentctl.h maps them).
 *
 * The guest is hostile: every byte the agent sends back is bounded here,
 * and what of it we print in our own messages is made printable first.
 *   response head        16 KiB (HTTP_HEAD_MAX), within VMSAN_AGENT_TIMEOUT
 *                        seconds (30) of the request being sent
 *   a small reply body   1 MiB (JSON answers, error bodies), same deadline
 *   an exec event line   1 MiB without a newline
 *   exec --json output   16 MiB each of stdout and stderr
 *   a WebSocket frame    128 KiB; a message 1 MiB
 *   a download           16 GiB (--max-bytes), 1,000,000 entries,
 *                        names 4096 bytes, 256 levels deep
 * Streams that may legitimately be slow (exec output, a download's body,
 * a shell) have no deadline: their sizes are what is bounded.
 * Exit status: the remote command's for exec and shell; 124 when an exec
 * timed out; 1 when the request failed; 100 for bad usage.
 */
#define _GNU_SOURCE
#include "agentctl/agentctl.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

bool json_out;

static const struct command {
	const char *name;
	int (*fn)(const struct target *t, int ac, char **av, struct verr *e);
} commands[] = {
	{ "health", cmd_health }, { "sessions", cmd_sessions }, { "shutdown", cmd_shutdown },
	{ "kill", cmd_kill },	  { "session-kill", cmd_kill }, { "exec", cmd_exec },
	{ "shell", cmd_shell },	  { "upload", cmd_upload },	{ "download", cmd_download },
};

/* --vm, --agent, --token-file, and whether the options ended the run. */
struct globals {
	const char *vm, *agent, *tokfile;
	int exit; /* >= 0: done (--help, --version, a bad option) */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vmsan-agentctl [--json] (--vm ID | --agent HOST:PORT --token-file FILE) COMMAND ...\n"
		"\n"
		"  health\n"
		"  shutdown             ask vmsan-init to stop the VM (processes stopped, disks synced)\n"
		"  exec [-i] [-t] [-e K=V]... [-w DIR] [-u USER | --sudo] [--timeout SECONDS] [--detach] [--] CMD [ARG...]\n"
		"  kill EXEC_ID [--signal SIG]\n"
		"  shell [--session ID] [--shell PATH] [-u USER]\n"
		"  sessions\n"
		"  session-kill SESSION_ID\n"
		"  upload [--dest DIR] [-u USER] [--preserve-owner] PATH...\n"
		"  download [--dest PATH] [--max-bytes N] REMOTE_PATH\n"
		"\n"
		"The host side of vmsan-agent.  exec exits with the remote command's status\n"
		"(124 when it timed out); shell with the shell's.  A token is never taken\n"
		"on the command line: it is read from the VM's token file or --token-file.\n");
}

/* The options before the command; the command's index in argv. */
static int global_options(int argc, char **argv, struct globals *g)
{
	int i = 1;

	g->exit = -1;
	for (; i < argc && argv[i][0] == '-' && g->exit < 0; i++) {
		if (!strcmp(argv[i], "--json"))
			json_out = true;
		else if (!strcmp(argv[i], "--vm") && i + 1 < argc)
			g->vm = argv[++i];
		else if (!strcmp(argv[i], "--agent") && i + 1 < argc)
			g->agent = argv[++i];
		else if (!strcmp(argv[i], "--token-file") && i + 1 < argc)
			g->tokfile = argv[++i];
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			g->exit = 0;
		} else if (!strcmp(argv[i], "--summary")) {
			puts("plumbing: talk to a VM's guest agent (exec, shell, files)");
			g->exit = 0;
		} else if (!strcmp(argv[i], "--complete")) {
			puts("health\nshutdown\nexec\nkill\nshell\nsessions\nsession-kill\nupload\ndownload\n"
			     "--vm\n--agent\n--token-file\n--json\n--help\n--summary\n--version");
			g->exit = 0;
		} else if (!strcmp(argv[i], "--version")) {
			printf("vmsan-agentctl %s\n", VMSAN_VERSION);
			g->exit = 0;
		} else {
			fprintf(stderr, "vmsan-agentctl: unknown option %s\n", argv[i]);
			usage(stderr);
			g->exit = VMSAN_EXIT_USAGE;
		}
	}
	if (g->exit < 0 && i >= argc) {
		usage(stderr);
		g->exit = VMSAN_EXIT_USAGE;
	}
	return i;
}

static int target_find(struct target *t, const struct globals *g, struct verr *e)
{
	if (g->vm)
		return target_from_vm(t, g->vm, e);
	if (g->agent && g->tokfile)
		return target_from_agent(t, g->agent, g->tokfile, e);
	return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", "see vmsan-agentctl --help",
			 "name the agent: --vm ID, or --agent HOST:PORT with --token-file FILE");
}

/* Every error ends here, once: with --json the error document on stdout,
 * else "vmsan CMD: message" and its fix on stderr. */
static int report(struct verr *e, const char *cmd)
{
	e->message[699] = 0; /* messages are cut there, as they always were */
	return json_out ? reply_error(e) : report_error(cmd, false, e);
}

int main(int argc, char **argv)
{
	struct globals g = { 0 };
	struct target t = { 0 };
	struct verr e = { 0 };
	const char *cmd, *cmdname;
	size_t k;
	int i, rc;

	vmsan_prog = "vmsan-agentctl";
	i = global_options(argc, argv, &g);
	if (g.exit >= 0)
		return g.exit;
	cmd = argv[i++];
	cmdname = strcmp(cmd, "shell") ? cmd : "connect"; /* what vmsan calls it */
	if (target_find(&t, &g, &e) < 0)
		return report(&e, cmdname);
	for (k = 0; k < sizeof commands / sizeof commands[0] && strcmp(commands[k].name, cmd); k++)
		;
	if (k == sizeof commands / sizeof commands[0]) {
		verr_set(&e, VMSAN_EXIT_USAGE, "ERR_USAGE", "see vmsan-agentctl --help", "unknown command '%s'", cmd);
		return report(&e, cmdname);
	}
	optind = 1;
	opterr = 0;
	/* av[0] is the command's name, for getopt */
	rc = commands[k].fn(&t, argc - i + 1, argv + i - 1, &e);
	return verr_isset(&e) ? report(&e, cmdname) : rc;
}
