/* vmsan run: create, one command through the agent, (--rm) remove. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vm/vm.h"

extern char **environ;

const char run_usage[] = "usage: vmsan run [--rm] [create options] [RUNTIME|IMAGE] -- CMD [ARG...]\n\n"
			 "Creates a VM (a runtime name or any image reference), runs CMD in it\n"
			 "through its agent and exits with CMD's status; --rm removes the VM after.\n"
			 "Its create starts from a template as vmsan create does (--cold: it boots).\n";

/* create's arguments from run's argv[i..dash): --rm taken out (*rm), and
 * the word that names the image or runtime as --from-image or --runtime.
 * Read as create reads them: an option takes the next word as its value
 * unless written --opt=value or one of create's flags (create_flag), and
 * a word that is no option's value names the image.  0, or the exit
 * status of the error reported (a second such word). */
static int create_args(int argc, char **argv, int i, int dash, bool *rm, const char ***out, int *cn)
{
	const char **cargv = calloc((size_t)argc + 4, sizeof *cargv);
	const char *what = NULL;
	struct verr e = { 0 };
	if (!cargv)
		return verr_sys(&e, "ERR_NOMEM", NULL, "cannot start vmsan run"), report(&e);
	*cn = 0;
	for (int k = i; k < dash; k++) {
		const char *w = argv[k];
		if (!strcmp(w, "--rm")) {
			*rm = true;
		} else if (w[0] != '-') {
			if (what) {
				free(cargv);
				return usage_error("vmsan run takes one image or runtime: '%s' and '%s' given", what,
						   w);
			}
			what = w;
		} else {
			cargv[(*cn)++] = w;
			if (!create_flag(w) && !strchr(w, '=') && k + 1 < dash)
				cargv[(*cn)++] = argv[++k];
		}
	}
	if (what) {
		static const char *const rts[] = { "base", "node22", "node24", "python3.13" };
		bool rt = false;
		for (size_t k = 0; k < 4; k++)
			rt = rt || !strcmp(what, rts[k]);
		cargv[(*cn)++] = rt ? "--runtime" : "--from-image";
		cargv[(*cn)++] = what;
	}
	*out = cargv;
	return 0;
}

/* CMD (argv after dash) in VM id through vmsan-agentctl: its exit status. */
static int run_in(const char *id, bool js, int argc, char **argv, int dash)
{
	char ctl[PATH_MAX + 32];
	snprintf(ctl, sizeof ctl, "%s/vmsan-agentctl", libexec);
	const char **xargv = calloc((size_t)(argc - dash) + 8, sizeof *xargv);
	int xn = 0;
	xargv[xn++] = ctl;
	if (js)
		xargv[xn++] = "--json";
	xargv[xn++] = "--vm";
	xargv[xn++] = id;
	xargv[xn++] = "exec";
	xargv[xn++] = "--";
	for (int k = dash + 1; k < argc; k++)
		xargv[xn++] = argv[k];
	pid_t pid;
	int st = 0;
	signal(SIGINT, SIG_IGN); /* the command gets it, through agentctl */
	if (posix_spawn(&pid, ctl, NULL, NULL, (char *const *)xargv, environ) == 0)
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	else
		st = 127 << 8;
	free(xargv);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* vmsan run [--rm] [create options] [IMAGE|RUNTIME] -- CMD [ARG...] */
int cmd_run(int argc, char **argv)
{
	const int i = 1;
	bool rm = false;
	int dash = -1, cn;
	for (int k = i; k < argc; k++)
		if (!strcmp(argv[k], "--")) {
			dash = k;
			break;
		}
	if (dash < 0 || dash == argc - 1)
		return usage_error("vmsan run needs a command after '--'");
	const char **cargv;
	int bad = create_args(argc, argv, i, dash, &rm, &cargv, &cn);
	if (bad)
		return bad;
	bool js = json_mode;
	json_mode = false;
	json_t *rec = NULL;
	char id[80];
	cmd = "run";
	int rc = do_create(cn, (char **)cargv, 0, &rec, id);
	free(cargv);
	json_mode = js;
	if (rc)
		return rc;
	json_decref(rec);
	/* the command, through vmsan-agentctl, whose exit status is ours */
	int code = run_in(id, js, argc, argv, dash);
	if (rm) {
		json_t *removed = json_array();
		bool j = json_mode;
		json_mode = false;
		do_rm(id, true, removed);
		json_mode = j;
		json_decref(removed);
	} else if (!js) {
		fprintf(stderr, "vmsan run: %s is still running (vmsan rm -f %s)\n", id, id);
	}
	return code;
}
