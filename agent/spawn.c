/* Starting a command for POST /exec and envd's process.Start: a process
 * that shares the agent's memory until execve, and reports on a pipe why
 * it could not get there. */
#define _GNU_SOURCE
#include "spawn.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#define CLOSE_RANGE_CLOEXEC_FLAG 4

/* Runs in the new process, which shares the agent's memory until execve
 * (CLONE_VM | CLONE_VFORK, as posix_spawn does): no page tables are
 * copied and no copy-on-write faults follow in the agent, which is most
 * of what fork() from a threaded agent costs.  The spawning thread is
 * suspended meanwhile; other threads run on, so only syscalls and stack
 * memory here: no malloc, no locks, no stdio. */
static int child(void *arg)
{
	const struct child_args *a = arg;
	const struct user *u = a->u;
	const char *cwd = a->cwd, *path = a->path;
	int in = a->in, out = a->out, err = a->err, rep = a->rep;
	struct spawn_err se = { 0, 0 };
	/* Dispositions the agent set (SIGHUP's handler, SIGPIPE ignored)
	 * must not reach the command; all signals are still blocked here, so
	 * no handler can run in this shared address space first. */
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigaction(SIGHUP, &dfl, NULL);
	sigaction(SIGPIPE, &dfl, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0 || (a->ctty && ioctl(0, TIOCSCTTY, 0) < 0)) {
		se.stage = STAGE_FDS;
		goto fail;
	}
	/* Everything else the agent holds (sockets, other commands' pipes)
	 * is closed by execve; rep is already close-on-exec. */
	if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC_FLAG) < 0)
		for (int fd = 3; fd < 1024; fd++)
			if (fd != rep)
				close(fd);
	/* Raw syscalls: only this (single) thread's credentials change. */
	if (syscall(SYS_setgroups, u->ngroups, u->groups) < 0 || syscall(SYS_setgid, u->gid) < 0 ||
	    syscall(SYS_setuid, u->uid) < 0) {
		se.stage = STAGE_CREDS;
		goto fail;
	}
	/* A home that does not exist is not worth failing for (login(1)
	 * agrees); a directory the caller asked for is. */
	if (chdir(cwd) < 0 && (a->cwd_explicit || chdir("/") < 0)) {
		se.stage = STAGE_CHDIR;
		goto fail;
	}
	execve(path, a->argv, a->envp);
	se.stage = STAGE_EXEC;
fail:
	se.err = errno;
	(void)!write(rep, &se, sizeof se);
	_exit(127);
}

/* Start child() in a new process; returns its pid or -1 with errno. */
pid_t spawn(struct child_args *a)
{
	/* The child's stack lives on this thread's stack: this thread does
	 * not run again until the child has called execve or exited. */
	char stack[16384] __attribute__((aligned(16)));
	sigset_t all, mask;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &mask);
	pid_t pid = clone(child, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, a);
	int e = errno;
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
	errno = e;
	return pid;
}
