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

/* Each command, and its options when the VM id may be among them
 * (--vm-operand: what vmsan exec, connect, upload and download use). */
static const struct command {
	const char *name;
	int (*fn)(const struct target *t, int ac, char **av, struct verr *e);
	const struct cmd_opts *opts;
} commands[] = {
	{ "health", cmd_health, NULL },
	{ "sessions", cmd_sessions, NULL },
	{ "shutdown", cmd_shutdown, NULL },
	{ "kill", cmd_kill, NULL },
	{ "session-kill", cmd_kill, NULL },
	{ "exec", cmd_exec, &exec_opts },
	{ "shell", cmd_shell, &shell_opts },
	{ "upload", cmd_upload, &upload_opts },
	{ "download", cmd_download, &download_opts },
};

/* --vm, --vm-operand, --agent, --token-file, and whether the options
 * ended the run. */
struct globals {
	const char *vm, *agent, *tokfile;
	bool vm_operand;
	int exit; /* >= 0: done (--help, --version, a bad option) */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vmsan-agentctl [--json] (--vm ID | --vm-operand | --agent HOST:PORT --token-file FILE)\n"
		"                      COMMAND ...\n"
		"\n"
		"  health\n"
		"  shutdown             ask vmsan-init to stop the VM (processes stopped, disks synced)\n"
		"  exec [-i] [-t] [-e K=V]... [-w DIR] [-u USER | --sudo] [--timeout SECONDS] [--detach] [--] CMD [ARG...]\n"
		"  kill EXEC_ID [--signal SIG]\n"
		"  shell [--session ID] [--shell PATH] [-u USER]\n"
		"  sessions\n"
		"  session-kill SESSION_ID (no --signal: it is hung up, then killed)\n"
		"  upload [--dest DIR] [-u USER] [--preserve-owner] PATH...\n"
		"  download [--dest PATH] [--max-bytes N] REMOTE_PATH\n"
		"\n"
		"--vm-operand: the VM id is the command's first operand (exec, shell, upload,\n"
		"download), its options before it or after it.\n"
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
		else if (!strcmp(argv[i], "--vm-operand"))
			g->vm_operand = true;
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
			     "--vm\n--vm-operand\n--agent\n--token-file\n--json\n--help\n--summary\n--version");
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

/* The VM id of vmsan CMD [OPTIONS] ID [OPTIONS] ...: the command's first
 * operand, found with the command's own option table (which options take
 * a value) and taken out of av; "--" ends the options before it.  An
 * unknown option before it is a usage error, named, as the command's
 * parser would say after it.  NULL with e set. */
static const char *take_vm_operand(const struct command *c, const char *name, int *ac, char **av, struct verr *e)
{
	char plus[32], fix[64];
	const char *so = c->opts->shortopts;
	int ch;

	snprintf(plus, sizeof plus, "+%s", so + (so[0] == '+'));
	snprintf(fix, sizeof fix, "see 'vmsan %s --help'", name);
	optind = 0; /* glibc: start afresh, this table's ordering */
	opterr = 0;
	while ((ch = getopt_long(*ac, av, plus, c->opts->longopts, NULL)) != -1) {
		if (ch != '?')
			continue;
		/* getopt says: optopt 0, a long option it does not know (the
		 * word before optind); a long one's val, its value missing or
		 * given to one that takes none (its name, or getopt's prefix of
		 * it); a letter, unknown or its value missing (optind may still
		 * be on the word before: name the letter). */
		const char *w = av[optind - 1];
		size_t wl = strcspn(w, "=");
		const struct option *lo = NULL;
		for (const struct option *o = c->opts->longopts; optopt && o->name && !lo; o++)
			if (o->val == optopt && !strncmp(w, "--", 2) && wl - 2 <= strlen(o->name) &&
			    !strncmp(w + 2, o->name, wl - 2))
				lo = o;
		if (lo)
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_USAGE", fix, "--%s %s", lo->name,
				 lo->has_arg ? "needs a value" : "takes no value");
		else if (!optopt)
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_USAGE", fix, "unknown option %s", w);
		else
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_USAGE", fix,
				 optopt != ':' && strchr(so, optopt) ? "-%c needs a value" : "unknown option -%c",
				 optopt);
		return NULL;
	}
	if (optind >= *ac)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", fix, "no VM id given"), NULL;
	const char *id = av[optind];
	/* av[*ac] is NULL: it moves down with the rest */
	memmove(av + optind, av + optind + 1, (size_t)(*ac - optind) * sizeof *av);
	(*ac)--;
	return id;
}

/* --vm, --vm-operand and --agent are three ways of naming the agent: one
 * at a time (the first would win, and the id or address given with the
 * other be ignored); --token-file is --agent's. */
static int target_named_once(const struct globals *g, struct verr *e)
{
	const char *given[3];
	int n = 0;

	if (g->vm)
		given[n++] = "--vm";
	if (g->vm_operand)
		given[n++] = "--vm-operand";
	if (g->agent)
		given[n++] = "--agent";
	if (n > 1)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", "give one of them",
				 "%s and %s%s%s each name the agent", given[0], given[1], n > 2 ? " and " : "",
				 n > 2 ? given[2] : "");
	if (g->tokfile && !g->agent)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", "drop --token-file: the VM's own token is read",
				 "--token-file goes with --agent");
	return 0;
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
	verr_cut(e, 699); /* messages are cut there, as they always were */
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
	for (k = 0; k < sizeof commands / sizeof commands[0] && strcmp(commands[k].name, cmd); k++)
		;
	if (k == sizeof commands / sizeof commands[0]) {
		verr_set(&e, VMSAN_EXIT_USAGE, "ERR_USAGE", "see vmsan-agentctl --help", "unknown command '%s'", cmd);
		return report(&e, cmdname);
	}
	/* av[0] is the command's name, for getopt */
	int ac = argc - i + 1;
	char **av = argv + i - 1;
	if (target_named_once(&g, &e) < 0)
		return report(&e, cmdname);
	if (g.vm_operand) {
		if (!commands[k].opts)
			verr_set(&e, VMSAN_EXIT_USAGE, "ERR_USAGE", "see vmsan-agentctl --help",
				 "%s takes no VM id among its arguments: use --vm ID", cmd);
		else
			g.vm = take_vm_operand(&commands[k], cmdname, &ac, av, &e);
		if (!g.vm)
			return report(&e, cmdname);
	}
	if (target_find(&t, &g, &e) < 0)
		return report(&e, cmdname);
	optind = 0; /* glibc: start afresh, with the command's ordering */
	opterr = 0;
	rc = commands[k].fn(&t, ac, av, &e);
	return verr_isset(&e) ? report(&e, cmdname) : rc;
}
