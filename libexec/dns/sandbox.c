/* What the two processes give up once everything is bound as root: both
 * run as the VM's resolver uid/gid, no_new_privs, not dumpable; the
 * setter keeps CAP_NET_ADMIN (the bounding set too) and nothing else, the
 * resolver keeps no capability and runs under a seccomp filter of the
 * calls it makes. */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dns/dns.h"

/* To uid/gid, no supplementary group, with CAP_NET_ADMIN alone or no
 * capability at all; -1 (errno set) if any step failed. */
int drop_to(uid_t uid, gid_t gid, bool keep_net_admin)
{
	if (keep_net_admin) {
		for (int c = 0; c <= CAP_LAST_CAP; c++)
			if (c != CAP_NET_ADMIN && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) && errno != EINVAL)
				return -1;
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0))
			return -1;
	}
	if (setgroups(0, NULL) || setresgid(gid, gid, gid) || setresuid(uid, uid, uid))
		return -1;
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { { 0, 0, 0 }, { 0, 0, 0 } };
	if (keep_net_admin)
		d[0].effective = d[0].permitted = 1u << CAP_NET_ADMIN;
	if (syscall(SYS_capset, &h, d))
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
		return -1;
	return 0;
}

/* The resolver's system calls; anything else kills it. */
int sandbox(void)
{
	static const int calls[] = {
		SCMP_SYS(read),		 SCMP_SYS(write),	 SCMP_SYS(close),	   SCMP_SYS(poll),
		SCMP_SYS(ppoll),	 SCMP_SYS(recvfrom),	 SCMP_SYS(sendto),	   SCMP_SYS(recvmsg),
		SCMP_SYS(sendmsg),	 SCMP_SYS(connect),	 SCMP_SYS(accept4),	   SCMP_SYS(accept),
		SCMP_SYS(shutdown),	 SCMP_SYS(getsockopt),	 SCMP_SYS(setsockopt),	   SCMP_SYS(fcntl),
		SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(getrandom),	   SCMP_SYS(brk),
		SCMP_SYS(mmap),		 SCMP_SYS(munmap),	 SCMP_SYS(mremap),	   SCMP_SYS(madvise),
		SCMP_SYS(exit),		 SCMP_SYS(exit_group),	 SCMP_SYS(rt_sigreturn),   SCMP_SYS(ftruncate),
		SCMP_SYS(lseek),	 SCMP_SYS(fstat),	 SCMP_SYS(newfstatat),	   SCMP_SYS(getpid),
		SCMP_SYS(gettid),	 SCMP_SYS(futex),	 SCMP_SYS(rt_sigprocmask), SCMP_SYS(restart_syscall),
	};
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int rc = f ? 0 : -1;

	for (size_t i = 0; !rc && i < sizeof calls / sizeof *calls; i++)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, calls[i], 0);
	/* sockets: IPv4 UDP and TCP to the upstreams, nothing else */
	if (!rc)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_INET));
	if (!rc)
		rc = seccomp_load(f);
	seccomp_release(f);
	return rc ? -1 : 0;
}
