/* vmsan-dns: the filtering DNS resolver of a VM with allowed domains.
 *
 * vmsan-net starts one in the VM's network namespace (never by hand: it is
 * not in the sudoers rule), as root, with its settings as one JSON object
 * on stdin and, when the VM has a DNS log, that log open on fd 3:
 *
 *   {"id", "uid", "gid", "upstreams":[IP...], "domains":[PATTERN...],
 *    "ttlMin":S, "ttlMax":S, "strict":BOOL}
 *
 * It binds 172.16.0.1:53 (UDP and TCP; the VM's ruleset DNATs every DNS
 * packet of the guest there) and the abstract control socket
 * "vmsan-dns-ctl" of the namespace, then splits in two processes:
 *
 *   setter    uid/gid "uid"/"gid", no capability but CAP_NET_ADMIN (the
 *             bounding set too), no_new_privs, not dumpable.  It reads
 *             fixed-size requests from the resolver over a socketpair
 *             (add, refresh, delete, sync addresses; each address and
 *             timeout checked) and applies them to the set
 *             vmsan/dns_allow of this namespace.  That set is all it can
 *             touch through its requests.
 *   resolver  the same uid/gid, no capability at all, no_new_privs, a
 *             seccomp filter of the calls it makes; it parses everything
 *             that comes from the guest and the upstreams.  Names that the
 *             allow list admits are forwarded to the upstreams (UDP, or
 *             TCP for a TCP client); their A records (the chain from the
 *             name asked through CNAMEs) go into the set, with the TTL
 *             clamped to [ttlMin, ttlMax] as timeout, before the answer
 *             is sent; TTLs above ttlMax are lowered in the answer.  Other
 *             names get NXDOMAIN, AAAA questions an empty answer (guests
 *             have no IPv6 route).  With "strict" it also listens on
 *             172.16.0.1:10443 and :10080, where the ruleset DNATs the
 *             guest's TCP to the set's addresses on 443 and 80, and relays
 *             a connection only when its TLS server_name or HTTP Host is
 *             an allowed name that brought that address into the set.
 *
 * A compromised resolver can ask the setter to allow addresses: what it
 * could do anyway by answering.  It cannot change rules, other sets or
 * other namespaces.
 *
 * stdout gets one line, {"ok":true,"pid":SETTER,"resolver":PID} once both
 * are ready (or {"ok":false,...}), and is closed.  The setter exits when the resolver
 * does and kills the resolver when it goes (PR_SET_PDEATHSIG): killing
 * the setter's pid ends both.
 *
 * The control socket takes one JSON request per connection from root
 * only (SO_PEERCRED): {"domains":[...]} replaces the allow list (addresses
 * only the removed patterns justified leave the set at once: the set is
 * re-synced to what the remaining patterns justify), {"op":"stats"}
 * reports counters.  vmsan-net sends the list after every rules change
 * (the change replaced the set).
 *
 * This file is the core: the settings, everything bound as root, and the
 * split, where each process drops what it does not need before it touches
 * anything from the guest.  The rest is in dns/, one file a job (dns/dns.h
 * lists them). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dns/dns.h"

struct resolver R;

#ifndef VMSAN_VERSION
#define VMSAN_VERSION "0.0.0"
#endif
#define USAGE                                                                                        \
	"usage: vmsan-dns < settings.json   (started by vmsan-net, in a VM's network namespace)\n"   \
	"\n"                                                                                         \
	"The filtering DNS resolver of a VM with allowed domains.  Settings:\n"                      \
	"  {\"id\":ID, \"uid\":N, \"gid\":N, \"upstreams\":[IP...], \"domains\":[NAME|*.ZONE...],\n" \
	"   \"ttlMin\":S, \"ttlMax\":S, \"strict\":BOOL}\n"                                          \
	"It answers on 172.16.0.1:53 (UDP, TCP): allowed names are forwarded to the\n"               \
	"upstreams and their A records added to the set dns_allow before the answer;\n"              \
	"others get NXDOMAIN.  strict: on :10443 and :10080 it relays the guest's TCP\n"             \
	"to the set's addresses (443, 80) whose TLS server_name or HTTP Host is an\n"                \
	"allowed name that resolved to that address.\n"                                              \
	"Control: abstract unix socket vmsan-dns-ctl, root only:\n"                                  \
	"  {\"domains\":[...]}   replace the list (removed names' addresses leave at once)\n"        \
	"  {\"op\":\"stats\"}      counters\n"                                                       \
	"See vmsan-dns(8).\n"

/* The flags every helper answers; any other argument is refused: it is
 * started by vmsan-net only, with none. */
static int flags(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "--summary")) {
		puts("plumbing (started by vmsan-net): a VM's filtering DNS resolver for allowed domains");
		return 0;
	}
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(USAGE, stdout);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "--complete")) {
		puts("--help\n--summary\n--version");
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("vmsan-dns %s\n", VMSAN_VERSION);
		return 0;
	}
	fprintf(stderr, "vmsan-dns: unexpected argument '%s': it is started by vmsan-net only; see vmsan-dns(8)\n",
		argv[1]);
	return 100;
}

/* R before any socket: the log (fd 3 when vmsan-net gave one), the
 * tracking's random key, every slot free. */
static int resolver_init(struct verr *e)
{
	R.log = fcntl(3, F_GETFD) >= 0 ? 3 : -1;
	R.log_tokens = LOG_BURST;
	R.log_at = now_ms();
	if (getrandom(&R.hash_key, sizeof R.hash_key, 0) != sizeof R.hash_key)
		return DNS_FAIL("getrandom: %s", strerror(errno));
	track_rehash();
	for (size_t i = 0; i < MAX_TCP_CLIENTS; i++)
		R.conn[i].fd = -1;
	for (size_t i = 0; i < MAX_PENDING; i++)
		R.pend[i].fd = -1;
	R.px[0] = R.px[1] = -1;
	for (size_t i = 0; i < MAX_RELAYS; i++)
		R.relay[i].c = R.relay[i].u = -1;
	return 0;
}

/* A socket bound to addr:port (listening, for TCP); -1 with errno set. */
static int bind_in(int type, const char *addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, fd = socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	inet_pton(AF_INET, addr, &sa.sin_addr);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof sa) || (type == SOCK_STREAM && listen(fd, 16))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* What only root may bind: 172.16.0.1:53 (UDP, TCP), with strict :10443
 * and :10080, and the abstract control socket of the namespace. */
static int listen_all(bool strict, struct verr *e)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	socklen_t ul = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(CTL_NAME));

	if (strict) {
		R.px[0] = bind_in(SOCK_STREAM, NET_TAP_ADDR, NET_DNS_PORT_TLS);
		R.px[1] = bind_in(SOCK_STREAM, NET_TAP_ADDR, NET_DNS_PORT_HTTP);
		if (R.px[0] < 0 || R.px[1] < 0)
			return DNS_FAIL("cannot listen on " NET_TAP_ADDR ":%d and :%d: %s", NET_DNS_PORT_TLS,
					NET_DNS_PORT_HTTP, strerror(errno));
	}
	R.udp = bind_in(SOCK_DGRAM, NET_TAP_ADDR, 53);
	R.tcp = bind_in(SOCK_STREAM, NET_TAP_ADDR, 53);
	if (R.udp < 0 || R.tcp < 0)
		return DNS_FAIL("cannot listen on " NET_TAP_ADDR ":53: %s", strerror(errno));
	memcpy(un.sun_path + 1, CTL_NAME, strlen(CTL_NAME));
	R.ctl = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (R.ctl < 0 || bind(R.ctl, (struct sockaddr *)&un, ul) || listen(R.ctl, 4))
		return DNS_FAIL("cannot bind the control socket: %s", strerror(errno));
	return 0;
}

/* The setter's netfilter socket, opened while we are root. */
static struct mnl_socket *nft_open(struct verr *e)
{
	struct verr ne = { 0 };
	struct mnl_socket *nl = nft_socket(&ne);

	if (!nl)
		DNS_FAIL("%s", ne.message);
	return nl;
}

/* The setter <-> resolver channel; room for a few set requests (32 KiB
 * each) in flight. */
static int channel(int sp[2], struct verr *e)
{
	int sz = 1 << 20;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp))
		return DNS_FAIL("socketpair: %s", strerror(errno));
	setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	setsockopt(sp[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	return 0;
}

/* The child: dies with the setter, drops every capability, enters the
 * seccomp filter, says so on sp, and resolves until the setter goes.  It
 * never returns (a failure before it is ready: the setter reports it). */
static void __attribute__((noreturn)) run_resolver(int sp, pid_t setter, const struct config *c)
{
	struct rlimit fl = { 1024, 1024 };
	time_t t0 = time(NULL);
	struct tm tm0;
	char ok = 1;

	R.sp = sp;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) || getppid() != setter)
		_exit(1);
	setrlimit(RLIMIT_NOFILE, &fl);
	/* gmtime_r reads the time zone file the first time: now, not inside
	 * the sandbox (which has no open) */
	tzset();
	gmtime_r(&t0, &tm0);
	if (drop_to(c->uid, c->gid, false) || sandbox())
		_exit(1);
	if (send(R.sp, &ok, 1, 0) != 1)
		_exit(1);
	resolver_loop();
	/* straight to the kernel: _exit's wrappers (a sanitizer's leak check
	 * at exit) would make calls the filter does not allow */
	syscall(SYS_exit_group, 0);
	__builtin_unreachable();
}

/* The parent: closes what is the resolver's, keeps CAP_NET_ADMIN alone,
 * and once the resolver is ready writes the one line on stdout, leaves
 * stdio and serves the resolver's set requests until it goes. */
static int run_setter(int sp, struct mnl_socket *nl, pid_t pid, const struct config *c, struct verr *e)
{
	struct timeval tv = { 5, 0 };
	char ok = 0;
	int null;

	close(R.udp);
	close(R.tcp);
	close(R.ctl);
	for (int k = 0; k < 2; k++)
		if (R.px[k] >= 0)
			close(R.px[k]);
	if (R.log >= 0)
		close(R.log);
	if (drop_to(c->uid, c->gid, true))
		return DNS_FAIL("cannot drop privileges: %s", strerror(errno));
	setsockopt(sp, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (recv(sp, &ok, 1, 0) != 1 || ok != 1) {
		kill(pid, SIGKILL);
		return DNS_FAIL("the resolver did not start");
	}
	tv.tv_sec = 0;
	setsockopt(sp, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	/* A new resolver has allowed nothing yet: the set is emptied of what
	 * a replaced one left (vmsan-net keeps the set through a rules
	 * change, for the resolver that stays) before it is said ready. */
	if (nft_addr_set_update(nl, NET_TABLE, NET_DNS_SET, NFT_ADDR_SYNC, NULL, 0, e)) {
		kill(pid, SIGKILL);
		return -1;
	}
	printf("{\"ok\":true,\"pid\":%ld,\"resolver\":%ld}\n", (long)getpid(), (long)pid);
	fflush(stdout);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		close(null);
	}
	dns_allow_free(R.allow);
	setter_loop(sp, nl);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return 0;
}

int main(int argc, char **argv)
{
	struct verr err = { 0 }, *e = &err;
	struct mnl_socket *nl = NULL;
	struct config c;
	pid_t self, pid;
	int sp[2];

	vmsan_prog = "vmsan-dns"; /* in libvmsan's own messages */
	if (argc > 1)
		return flags(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	/* as root: the settings, then everything that needs root opened */
	if (config_read(&c, e) || resolver_init(e) || listen_all(c.strict, e) || !(nl = nft_open(e)) || channel(sp, e))
		return reply_error(e);
	fflush(stdout);
	self = getpid();
	pid = fork();
	if (pid < 0) {
		DNS_FAIL("fork: %s", strerror(errno));
		return reply_error(e);
	}
	if (pid == 0) {
		close(sp[0]);
		mnl_socket_close(nl);
		run_resolver(sp[1], self, &c);
	}
	close(sp[1]);
	if (run_setter(sp[0], nl, pid, &c, e))
		return reply_error(e);
	return 0;
}
