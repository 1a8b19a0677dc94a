/* What a root helper's caller could set on the process through sudo,
 * undone first thing (rootproc.c). */
#ifndef VMSAN_ROOTPROC_H
#define VMSAN_ROOTPROC_H

#include <signal.h>

#include "vmsan.h"

/* Every signal a caller can have sent (relayed by sudo) is held until exit;
 * SIGPIPE, SIGXFSZ and the terminal's stops are ignored.  The faults of
 * the helper itself and SIGCHLD keep their default. */
void rootproc_hold_signals(void);
/* In a child about to exec a program (a VMM, a resolver): the signals
 * held or ignored above back to normal. */
void rootproc_child_signals(void);
/* The same for posix_spawn: the signals to set to their default
 * (POSIX_SPAWN_SETSIGDEF), beside an empty mask. */
void rootproc_child_sigdefault(sigset_t *set);
/* The file size, CPU time, address space and data limits raised to
 * unlimited as far as this process may: NULL, or the name of the first
 * that stays lowered ("file size (ulimit -f)"), its resource in *res. */
const char *rootproc_unlimit(int *res);
/* umask 022, cwd /, the resource limits that could end or starve it (and
 * the VMM it starts) unlimited, at least 1024 descriptors and an 8 MiB
 * stack, no core dump, niceness 0, SCHED_OTHER, every CPU, best-effort
 * I/O.  -1 with e set (ERR_LIMITS) when a limit the caller lowered cannot
 * be raised (root without CAP_SYS_RESOURCE): nothing has been read or
 * made yet. */
int rootproc_reset(struct verr *e);
/* The work done in a child in a session of its own, which sudo does not
 * signal: sudo passes a SIGALRM its caller sends it on as its timeout
 * (SIGHUP, SIGTERM, then SIGKILL 2 s later) to the process it started and
 * that process's group, so a member could kill a root helper at a moment
 * of their choosing.  That process only waits, and exits with the
 * worker's status; if it is killed the worker still finishes, its reply
 * then unread.  Returns 0 in the worker (or, if no child can be made, in
 * the one process). */
int rootproc_detach(void);

#endif
