/* vmsan-agent: starting a command (spawn.c), for POST /exec and envd's
 * process.Start. */
#ifndef VMSAN_AGENT_SPAWN_H
#define VMSAN_AGENT_SPAWN_H

#include "agent.h"

/* What the child writes on rep when it fails before execve. */
struct spawn_err {
	int stage;
	int err;
};
enum { STAGE_EXEC = 1, STAGE_CHDIR, STAGE_CREDS, STAGE_FDS };

/* The command: who, where, what, and its descriptors. */
struct child_args {
	const struct user *u;
	const char *cwd, *path;
	bool cwd_explicit;
	bool ctty; /* stdin is a PTY's slave: make it the controlling terminal */
	char **argv, **envp;
	int in, out, err, rep;
};

/* Start the command in a new session as a->u, stdio on in/out/err; returns
 * its pid or -1 with errno.  A failure before execve is reported as a
 * struct spawn_err on rep (nothing is written when execve succeeds). */
pid_t spawn(struct child_args *a);

#endif
