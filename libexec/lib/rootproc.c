/* rootproc.c: what a root helper's caller could set on the process before
 * sudo ran it, undone before the request is read.  sudo passes on the
 * caller's resource limits, umask (the stricter of the two), niceness and
 * scheduling class, and relays the signals the caller sends to it; the
 * caller chooses all of them.  Left alone, a file size limit kills the
 * helper (SIGXFSZ) at a write of the caller's choosing (between a slot
 * taken and the record that names it), a SIGUSR1 to the caller's sudo
 * ends it anywhere, and a umask of 0777 makes the shared directories it
 * creates unusable for every other user. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/sched.h>

#include "lib/rootproc.h"

/* ioprio_set(2): the best-effort class, its middle level (the default a
 * process has unless someone set another): no glibc wrapper, no header */
#define IOPRIO_WHO_PROCESS 1
#define IOPRIO_BEST_EFFORT_4 ((2 << 13) | 4)

/* Signals the helper keeps their default for: a fault of its own (these
 * come from the kernel, not from a caller: sudo relays none of them). */
static const int own_faults[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT };
/* Ignored rather than held: a write to a closed pipe or past a limit
 * fails with an error the code handles; the terminal's job control
 * must not stop a helper that holds a lock. */
static const int ignored[] = { SIGPIPE, SIGXFSZ, SIGTSTP, SIGTTIN, SIGTTOU };

void rootproc_hold_signals(void)
{
	sigset_t hold;

	/* every other signal, relayed or not (SIGUSR1, SIGALRM, the real-time
	 * ones all end a process by default): held until exit */
	sigfillset(&hold);
	for (size_t i = 0; i < sizeof own_faults / sizeof *own_faults; i++)
		sigdelset(&hold, own_faults[i]);
	sigdelset(&hold, SIGCHLD);
	sigprocmask(SIG_BLOCK, &hold, NULL);
	for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++)
		signal(ignored[i], SIG_IGN);
}

void rootproc_child_signals(void)
{
	sigset_t none;

	for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++)
		signal(ignored[i], SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

void rootproc_child_sigdefault(sigset_t *set)
{
	sigemptyset(set);
	for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++)
		sigaddset(set, ignored[i]);
}

/* The limits that, lowered, end or cut short a root helper's work (a
 * write past RLIMIT_FSIZE is SIGXFSZ or EFBIG, RLIMIT_CPU is SIGXCPU, a
 * mapping past AS or DATA fails) or the VMM's it starts: unlimited, or
 * refused.  The others (processes, locked memory, signals pending) have
 * finite defaults a root without CAP_SYS_RESOURCE cannot raise, and
 * root is exempt from or does not use them. */
static const struct {
	int res;
	const char *name;
} unlimited[] = {
	{ RLIMIT_FSIZE, "file size (ulimit -f)" },
	{ RLIMIT_CPU, "CPU time (ulimit -t)" },
	{ RLIMIT_AS, "address space (ulimit -v)" },
	{ RLIMIT_DATA, "data size (ulimit -d)" },
};

/* Resource res at least min (RLIM_INFINITY, the largest value, for
 * unlimited): the soft limit raised, the hard one too if it is below (which
 * needs CAP_SYS_RESOURCE); -1 if it stays below. */
static int raise_to(int res, rlim_t min)
{
	struct rlimit r;

	if (getrlimit(res, &r) != 0)
		return -1;
	if (r.rlim_cur >= min)
		return 0;
	if (r.rlim_max < min)
		r.rlim_max = min;
	r.rlim_cur = min;
	return setrlimit(res, &r);
}

/* Every CPU the system has online, not the one the caller pinned it to. */
static void all_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_CONF);
	cpu_set_t *set;
	size_t sz;

	if (n < 1 || n > 65536)
		return;
	set = CPU_ALLOC((int)n);
	if (!set)
		return;
	sz = CPU_ALLOC_SIZE((int)n);
	CPU_ZERO_S(sz, set);
	for (long i = 0; i < n; i++)
		CPU_SET_S((int)i, sz, set);
	sched_setaffinity(0, sz, set);
	CPU_FREE(set);
}

const char *rootproc_unlimit(int *res)
{
	for (size_t i = 0; i < sizeof unlimited / sizeof *unlimited; i++)
		if (raise_to(unlimited[i].res, RLIM_INFINITY)) {
			if (res)
				*res = unlimited[i].res;
			return unlimited[i].name;
		}
	return NULL;
}

int rootproc_reset(struct verr *e)
{
	struct sched_param sp = { 0 };
	struct rlimit core = { 0, 0 };

	umask(022);
	if (chdir("/") != 0)
		return verr_fail(e, VMSAN_EXIT_SYS, "ERR_SYSTEM", NULL, "cannot change to /: %s", strerror(errno));
	const char *lowered = rootproc_unlimit(NULL);

	if (lowered)
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_LIMITS",
				 "run vmsan without lowered limits (ulimit -a shows them)",
				 "its caller limited its %s: a root helper does not run so", lowered);
	if (raise_to(RLIMIT_NOFILE, 1024) || raise_to(RLIMIT_STACK, 8 << 20))
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_LIMITS", "run vmsan without lowered limits (ulimit -n, -s)",
				 "its caller limited its open files below 1024 or its stack below 8 MiB: a root "
				 "helper does not run so");
	setrlimit(RLIMIT_CORE, &core); /* a root helper's memory holds others' records */
	/* its own pace, not the caller's: a slow helper holds shared locks,
	 * and the KVM boot check it may run answers for every user */
	setpriority(PRIO_PROCESS, 0, 0);
	sched_setscheduler(0, SCHED_OTHER, &sp);
	all_cpus();
	syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_BEST_EFFORT_4);
	return 0;
}

int rootproc_detach(void)
{
	/* clone3 as a plain fork (nothing runs yet that fork's handlers
	 * would care for): a tracer counting a helper's clone calls, as
	 * tests/midkill.bats does, counts the worker's own from one */
	struct clone_args ca = { .exit_signal = SIGCHLD };
	pid_t pid = (pid_t)syscall(SYS_clone3, &ca, sizeof ca);
	int st;

	if (pid < 0)
		return 0; /* no second process: the work is done in this one */
	if (pid == 0) {
		setsid();
		return 0;
	}
	/* the process sudo knows of waits, and takes the worker's status */
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			_exit(VMSAN_EXIT_SYS);
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}
