/* vmsan-dns: the filtering DNS resolver of a VM with allowed domains.
 *
 * vmsan-net starts one in the VM's network namespace (never by hand: it is
 * not in the sudoers rule), as root, with its settings as one JSON object
 * on stdin and, when the VM has a DNS log, that log open on fd 3:
 *
 *   {"id", "uid", "gid", "upstreams":[IP...], "domains":[PATTERN...],
 *    "ttlMin":S, "ttlMax":S}
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
 * stdout gets one line, {"ok":true,"pid":SETTER} once both are ready (or
 * {"ok":false,...}), and is closed.  The setter exits when the resolver
 * does and kills the resolver when it goes (PR_SET_PDEATHSIG): killing
 * the setter's pid ends both.
 *
 * The control socket takes one JSON request per connection from root
 * only (SO_PEERCRED): {"domains":[...]} replaces the allow list (addresses
 * only the removed patterns justified leave the set at once: the set is
 * re-synced to what the remaining patterns justify), {"op":"stats"}
 * reports counters.  vmsan-net sends the list after every rules change
 * (the change replaced the set). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libmnl/libmnl.h>
#include <linux/capability.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/dnsmsg.h"
#include "lib/netplan.h"
#include "lib/nft.h"

#define CTL_NAME "vmsan-dns-ctl"
#define MAX_UPSTREAMS 3
#define MAX_PENDING 256
#define MAX_TCP_CLIENTS 16
#define MAX_TRACK NFT_ADDR_MAX  /* (address, pattern) pairs in the set */
#define TRACK_HASH (2 * MAX_TRACK)     /* buckets, a power of two */
#define MAX_ADDRS 64            /* addresses taken from one answer */
#define QUERY_MAX 4096
#define UPSTREAM_TIMEOUT_MS 1500
#define TCP_IDLE_MS 10000
#define LOG_MAX_BYTES (8 << 20)
#define MAX_RELAYS 128          /* --strict-domains connections at once */
#define RELAY_BUF (PEEK_MAX + 1024)     /* each way */
#define PEEK_MS 5000            /* for the ClientHello or request head */
#define CONNECT_MS 10000
#define RELAY_IDLE_MS (15 * 60 * 1000)
#define LOG_RATE 20             /* lines per second, */
#define LOG_BURST 100           /* with bursts of */

/* ---- setter <-> resolver ------------------------------------------------ */

struct set_req {
	uint32_t op;            /* enum nft_addr_op */
	uint32_t n;
	struct {
		uint32_t addr;
		uint32_t timeout_s;
	} el[MAX_TRACK];
};
#define SET_REQ_HDR offsetof(struct set_req, el)

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Addresses never put in the set: this host, its VMs, link-local (cloud
 * metadata, 169.254.169.254), nowhere. */
static bool addr_forbidden(uint32_t a)
{
	uint8_t top = (uint8_t)(a >> 24);
	unsigned pool_base = NET_POOL_BASE;

	return top == 0 || top == 127 || top >= 224 || (a & 0xfffe0000u) == pool_base ||
	       (a & 0xffff0000u) == 0xa9fe0000u ||     /* 169.254.0.0/16 */
	       (a & 0xfffffffcu) == 0xac100000u;       /* the VM's own link, 172.16.0.0/30 */
}

static int setter_apply(struct mnl_socket *nl, const struct set_req *rq, size_t n)
{
	static struct nft_addr_elem el[MAX_TRACK];
	struct verr e = {0};

	for (size_t i = 0; i < n; i++) {
		el[i].addr = rq->el[i].addr;
		el[i].timeout_ms = (uint64_t)rq->el[i].timeout_s * 1000;
	}
	if (nft_addr_set_update(nl, NET_TABLE, NET_DNS_SET, (enum nft_addr_op)rq->op, el, n, &e) == 0)
		return 0;
	if (rq->op != NFT_ADDR_REFRESH || !verr_take(&e, "ERR_NFT_NOENT"))
		return -1;
	/* One of them timed out meanwhile: one by one, adding what is gone. */
	for (size_t i = 0; i < n; i++) {
		struct verr e2 = {0};
		if (nft_addr_set_update(nl, NET_TABLE, NET_DNS_SET, NFT_ADDR_REFRESH, &el[i], 1, &e2) &&
		    (!verr_take(&e2, "ERR_NFT_NOENT") ||
		     nft_addr_set_update(nl, NET_TABLE, NET_DNS_SET, NFT_ADDR_ADD, &el[i], 1, &e2)))
			return -1;
	}
	return 0;
}

static void setter_loop(int sp, struct mnl_socket *nl)
{
	static struct set_req rq;

	for (;;) {
		ssize_t n = recv(sp, &rq, sizeof rq, 0);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return;                 /* the resolver is gone */
		}
		int32_t rc = -1;
		size_t k = (size_t)n >= SET_REQ_HDR ? rq.n : 0;
		if ((size_t)n >= SET_REQ_HDR && rq.op <= NFT_ADDR_SYNC && k <= MAX_TRACK &&
		    (size_t)n == SET_REQ_HDR + k * sizeof rq.el[0]) {
			rc = 0;
			for (size_t i = 0; i < k && !rc; i++)
				if (addr_forbidden(rq.el[i].addr) || (rq.op != NFT_ADDR_DEL &&
				    (rq.el[i].timeout_s < 1 || rq.el[i].timeout_s > 86400)))
					rc = -1;
			if (!rc)
				rc = setter_apply(nl, &rq, k);
		}
		if (send(sp, &rc, sizeof rc, 0) != sizeof rc)
			return;
	}
}

/* ---- privileges ----------------------------------------------------------- */

static int drop_to(uid_t uid, gid_t gid, bool keep_net_admin)
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
static int sandbox(void)
{
	static const int calls[] = {
		SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(close), SCMP_SYS(poll), SCMP_SYS(ppoll),
		SCMP_SYS(recvfrom), SCMP_SYS(sendto), SCMP_SYS(recvmsg), SCMP_SYS(sendmsg),
		SCMP_SYS(connect), SCMP_SYS(accept4), SCMP_SYS(accept), SCMP_SYS(shutdown),
		SCMP_SYS(getsockopt), SCMP_SYS(setsockopt), SCMP_SYS(fcntl), SCMP_SYS(clock_gettime),
		SCMP_SYS(gettimeofday), SCMP_SYS(getrandom), SCMP_SYS(brk), SCMP_SYS(mmap),
		SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise), SCMP_SYS(exit),
		SCMP_SYS(exit_group), SCMP_SYS(rt_sigreturn), SCMP_SYS(ftruncate), SCMP_SYS(lseek),
		SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(getpid), SCMP_SYS(gettid),
		SCMP_SYS(futex), SCMP_SYS(rt_sigprocmask), SCMP_SYS(restart_syscall),
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

/* ---- the resolver --------------------------------------------------------- */

struct conn {                   /* a TCP client */
	int fd;                 /* -1: free */
	uint32_t gen;
	uint8_t in[2 + QUERY_MAX];
	size_t inlen;
	uint8_t *out;           /* an answer being written */
	size_t outlen, outoff;
	bool busy;              /* a query of it is pending */
	int64_t idle_until;
};

struct pending {
	bool used;
	int fd;                 /* the upstream socket */
	bool tcp;
	int up, tries;
	uint16_t up_id;
	struct dns_q q;         /* q.id: the client's id */
	long pat;
	int client;             /* -1: UDP; else a conn */
	uint32_t client_gen;
	struct sockaddr_in from;
	uint64_t seq;           /* UDP: order of arrival */
	bool done;              /* UDP: answered, the answer waits in held */
	uint8_t *held;
	size_t heldlen;
	uint8_t query[QUERY_MAX];
	size_t qlen;
	uint8_t *rbuf;          /* TCP: the response, length first */
	size_t rlen, woff;
	int64_t deadline, started;
};

/* A guest's TCP connection to an allowed name's address under
 * --strict-domains: the name its first bytes give (TLS server_name, HTTP
 * Host) must be allowed and must have brought that address into the set,
 * or the connection is closed (HTTP: 403) before any byte goes out. */
struct relay {
	int c, u;               /* guest side, upstream side; -1: none */
	bool http;
	int state;              /* RL_PEEK, RL_CONNECT, RL_PIPE */
	struct sockaddr_in dst; /* where the guest was going */
	uint8_t *cu, *uc;       /* bytes on their way: guest->upstream, back */
	size_t culen, cuoff, uclen, ucoff;
	bool c_eof, u_eof, c_shut, u_shut;
	int64_t deadline;
	/* HTTP: one request per connection, relayed with "Connection: close";
	 * what the guest sends after it never reaches the server */
	long long body;         /* its body's bytes still to relay; -1: chunked */
	struct http_chunked ck;
	bool req_done, dropped;
};
enum { RL_PEEK, RL_CONNECT, RL_PIPE };

struct entry {
	uint32_t addr;
	int32_t next;           /* the next entry in addr's bucket, or -1 */
	long pat;
	int64_t expires;
};

static struct {
	int udp, tcp, ctl, sp, log;
	int px[2];              /* --strict-domains listeners: TLS, HTTP; -1 */
	struct relay relay[MAX_RELAYS];
	struct sockaddr_in up[MAX_UPSTREAMS];
	int nup;
	uint32_t ttl_min, ttl_max;
	struct dns_allow *allow;
	struct conn conn[MAX_TCP_CLIENTS];
	struct pending pend[MAX_PENDING];
	struct entry track[MAX_TRACK];
	size_t ntrack;
	int32_t bucket[TRACK_HASH];     /* first entry, or -1 */
	uint32_t hash_key;
	struct set_req rq;
	/* counters */
	unsigned long long queries, allowed, denied, failed, log_suppressed;
	double log_tokens;
	int64_t log_at, purge_at;
	uint32_t gen;
	uint64_t seq;
} R;

/* The log's rate limit: a token per line. */
static bool log_take(int64_t now)
{
	if (R.log < 0)
		return false;
	R.log_tokens += (double)(now - R.log_at) * LOG_RATE / 1000.0;
	if (R.log_tokens > LOG_BURST)
		R.log_tokens = LOG_BURST;
	R.log_at = now;
	if (R.log_tokens < 1) {
		R.log_suppressed++;
		return false;
	}
	R.log_tokens -= 1;
	return true;
}

static void log_put(const char *line, size_t o)
{
	struct stat sb;

	R.log_suppressed = 0;
	if (fstat(R.log, &sb) == 0 && sb.st_size > LOG_MAX_BYTES) {
		/* bounded: start again, saying so */
		if (ftruncate(R.log, 0) == 0)
			(void)!write(R.log, "{\"truncated\":true}\n", 19);
	}
	(void)!write(R.log, line, o);
}

#define LOG_LINE 1024
#define P(...) (o += (size_t)snprintf(line + o, o < LOG_LINE ? LOG_LINE - o : 0, __VA_ARGS__))

/* A log line's start, {"time":..,"verdict":..; 0 when the rate limit
 * drops it. */
static size_t log_begin(char line[LOG_LINE], const char *verdict)
{
	struct timespec ts;
	struct tm tm;
	size_t o = 0;

	if (!log_take(now_ms()))
		return 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	P("{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"verdict\":\"%s\"", tm.tm_year + 1900,
	  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, verdict);
	return o;
}

/* Its end (the reason, what the rate limit dropped before), written. */
static void log_end(char line[LOG_LINE], size_t o, const char *why)
{
	if (why)
		P(",\"reason\":\"%s\"", why);
	if (R.log_suppressed)
		P(",\"suppressedBefore\":%llu", R.log_suppressed);
	P("}\n");
	if (o < LOG_LINE)       /* names are at most 253 printable bytes: always */
		log_put(line, o);
}

static void log_line(const char *verdict, const struct dns_q *q, long pat, const struct dns_addr *a, size_t na,
		     const char *why)
{
	char line[LOG_LINE];
	size_t o = log_begin(line, verdict);

	if (!o)
		return;
	P(",\"name\":\"%s\",\"type\":%u", q->name, q->type);
	if (pat >= 0)
		P(",\"pattern\":\"%s\"", dns_allow_pattern(R.allow, pat));
	if (na) {
		P(",\"addresses\":[");
		for (size_t i = 0; i < na; i++)
			P("%s\"%u.%u.%u.%u\"", i ? "," : "", a[i].addr >> 24, a[i].addr >> 16 & 255,
			  a[i].addr >> 8 & 255, a[i].addr & 255);
		P("],\"ttl\":%u", a[0].ttl);
	}
	log_end(line, o, why);
}

/* A --strict-domains connection's verdict: name (may be ""), where to. */
static void log_conn(const char *verdict, bool http, const char *name, const struct sockaddr_in *dst,
		     const char *why)
{
	char line[LOG_LINE];
	size_t o = log_begin(line, verdict);
	uint32_t a = ntohl(dst->sin_addr.s_addr);

	if (!o)
		return;
	P(",\"conn\":\"%s\",\"name\":\"%s\",\"address\":\"%u.%u.%u.%u\",\"port\":%u", http ? "http" : "tls",
	  name, a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255, (unsigned)ntohs(dst->sin_port));
	log_end(line, o, why);
}
#undef P

/* The setter's answer to one request of n elements. */
static int setter_call(uint32_t op, size_t n)
{
	int32_t rc = -1;

	R.rq.op = op;
	R.rq.n = (uint32_t)n;
	if (send(R.sp, &R.rq, SET_REQ_HDR + n * sizeof R.rq.el[0], 0) < 0 ||
	    recv(R.sp, &rc, sizeof rc, 0) != sizeof rc)
		return -1;
	return rc;
}

/* Entries by address: a chained hash, keyed at random (the upstreams
 * choose the addresses), rebuilt whenever entries move. */
static uint32_t bucket_of(uint32_t addr)
{
	uint32_t h = (addr ^ R.hash_key) * 0x9e3779b1u;

	h ^= h >> 15;
	return (h * 0x85ebca6bu) & (TRACK_HASH - 1);
}

static void track_link(size_t i)
{
	uint32_t b = bucket_of(R.track[i].addr);

	R.track[i].next = R.bucket[b];
	R.bucket[b] = (int32_t)i;
}

static void track_rehash(void)
{
	memset(R.bucket, 0xff, sizeof R.bucket);
	for (size_t i = 0; i < R.ntrack; i++)
		track_link(i);
}

static void purge(int64_t now)
{
	size_t k = 0;

	for (size_t i = 0; i < R.ntrack; i++)
		if (R.track[i].expires > now)
			R.track[k++] = R.track[i];
	if (k != R.ntrack) {
		R.ntrack = k;
		track_rehash();
	}
}

static uint32_t clamp_ttl(uint32_t ttl)
{
	return ttl < R.ttl_min ? R.ttl_min : ttl > R.ttl_max ? R.ttl_max : ttl;
}

/* The answer's addresses into the set (and the tracking) before it goes
 * out: -1 if they could not be. */
static int allow_addrs(long pat, const struct dns_addr *a, size_t na)
{
	int64_t now = now_ms();
	size_t nadd = 0, nref = 0;
	uint32_t add[MAX_ADDRS][2], ref[MAX_ADDRS][2];

	if (now >= R.purge_at || R.ntrack + na > MAX_TRACK) {
		purge(now);
		R.purge_at = now + 5000;
	}
	for (size_t i = 0; i < na; i++) {
		/* the guest may hear it, but it never reaches the set (the
		 * setter would refuse the whole batch) */
		if (addr_forbidden(a[i].addr))
			continue;
		uint32_t t = clamp_ttl(a[i].ttl);
		int64_t exp = now + (int64_t)t * 1000, have = 0;
		struct entry *mine = NULL;
		for (int32_t k = R.bucket[bucket_of(a[i].addr)]; k >= 0; k = R.track[k].next)
			if (R.track[k].addr == a[i].addr && R.track[k].expires > now) {
				if (R.track[k].expires > have)
					have = R.track[k].expires;
				if (R.track[k].pat == pat)
					mine = &R.track[k];
			}
		/* in the set until "have"; a new timeout only if it is later,
		 * and not for an element about to time out (its delete could
		 * miss it): then it is added again */
		if (!have || have < now + 1000) {
			add[nadd][0] = a[i].addr;
			add[nadd++][1] = t;
		} else if (exp > have + 1000) {
			ref[nref][0] = a[i].addr;
			ref[nref++][1] = t;
		}
		if (mine) {
			if (exp > mine->expires)
				mine->expires = exp;
		} else if (R.ntrack < MAX_TRACK) {
			R.track[R.ntrack] = (struct entry){ a[i].addr, -1, pat, exp };
			track_link(R.ntrack++);
		} else {
			return -1;              /* full: nothing is allowed beyond it */
		}
	}
	for (int pass = 0; pass < 2; pass++) {
		size_t n = pass ? nref : nadd;
		uint32_t (*l)[2] = pass ? ref : add;
		for (size_t i = 0; i < n; i++) {
			R.rq.el[i].addr = l[i][0];
			R.rq.el[i].timeout_s = l[i][1];
		}
		if (n && setter_call(pass ? NFT_ADDR_REFRESH : NFT_ADDR_ADD, n))
			return -1;
	}
	return 0;
}

/* The set made exactly what the tracking justifies (after a list change,
 * and after vmsan-net replaced the ruleset). */
static int resync(void)
{
	int64_t now = now_ms();
	size_t n = 0;

	purge(now);
	/* each address once, at its latest expiry: from the entry of it that
	 * comes first in the table */
	for (size_t i = 0; i < R.ntrack; i++) {
		uint32_t addr = R.track[i].addr;
		int64_t until = R.track[i].expires;
		bool first = true;
		for (int32_t k = R.bucket[bucket_of(addr)]; k >= 0 && first; k = R.track[k].next)
			if (R.track[k].addr == addr) {
				if ((size_t)k < i)
					first = false;
				else if (R.track[k].expires > until)
					until = R.track[k].expires;
			}
		if (first) {
			R.rq.el[n].addr = addr;
			R.rq.el[n++].timeout_s = (uint32_t)((until - now + 999) / 1000);
		}
	}
	return setter_call(NFT_ADDR_SYNC, n);
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->out);
	c->out = NULL;
	c->fd = -1;
	c->busy = false;
	c->inlen = c->outlen = c->outoff = 0;
}

static void pending_free(struct pending *p)
{
	if (p->fd >= 0)
		close(p->fd);
	free(p->rbuf);
	free(p->held);
	p->rbuf = p->held = NULL;
	p->fd = -1;
	p->done = false;
	p->used = false;
}

/* The oldest open or waiting UDP query from this client with this id. */
static struct pending *oldest(const struct sockaddr_in *from, uint16_t id)
{
	struct pending *o = NULL;

	for (size_t i = 0; i < MAX_PENDING; i++) {
		struct pending *p = &R.pend[i];
		if (p->used && p->client < 0 && p->q.id == id && p->from.sin_port == from->sin_port &&
		    p->from.sin_addr.s_addr == from->sin_addr.s_addr && (!o || p->seq < o->seq))
			o = p;
	}
	return o;
}

static struct pending *pending_slot(void)
{
	for (size_t i = 0; i < MAX_PENDING; i++)
		if (!R.pend[i].used) {
			struct pending *p = &R.pend[i];
			memset(p, 0, offsetof(struct pending, query));
			p->used = true;
			p->fd = -1;
			return p;
		}
	return NULL;
}

/*
 * A UDP answer, in the order the queries came. Resolvers such as
 * BusyBox's send A and AAAA under one id and take the answers in order,
 * so an answer made at once (AAAA, NXDOMAIN) must not overtake the
 * forwarded one asked before it: it waits in a slot of its own until
 * the earlier queries with its (client, id) are answered. own: the
 * query's pending slot, or NULL for an answer made without one; freed.
 */
static void udp_answer(struct pending *own, const struct sockaddr_in *from, uint16_t id, const uint8_t *m,
		       size_t n)
{
	struct pending *first = oldest(from, id);

	if (first && first != own) {
		struct pending *h = own ? own : pending_slot();
		uint8_t *copy = malloc(n);
		if (h && copy) {
			if (!own) {
				h->client = -1;
				h->from = *from;
				h->q.id = id;
				h->seq = ++R.seq;
			}
			if (h->fd >= 0)
				close(h->fd);
			h->fd = -1;
			memcpy(copy, m, n);
			h->held = copy;
			h->heldlen = n;
			h->done = true;
			return;
		}
		free(copy);             /* no room to wait: out of order it goes */
		if (h && !own)
			pending_free(h);
	}
	(void)!sendto(R.udp, m, n, MSG_DONTWAIT, (const struct sockaddr *)from, sizeof *from);
	if (!first)
		return;         /* nothing of this (client, id) was open: none waits */
	if (own)
		pending_free(own);
	while ((first = oldest(from, id)) && first->done) {
		(void)!sendto(R.udp, first->held, first->heldlen, MSG_DONTWAIT, (const struct sockaddr *)from,
			      sizeof *from);
		pending_free(first);
	}
}

/* An answer to a client: UDP in order, TCP queued with its length; own
 * (the query's pending slot, or NULL) is freed. */
static void reply(struct pending *own, int client, uint32_t gen, const struct sockaddr_in *from, const uint8_t *m,
		  size_t n)
{
	if (client < 0) {
		udp_answer(own, from, (uint16_t)(m[0] << 8 | m[1]), m, n);
		return;
	}
	struct conn *c = &R.conn[client];
	if (c->fd >= 0 && c->gen == gen) {     /* else the client left */
		c->busy = false;
		free(c->out);
		c->out = malloc(n + 2);
		if (!c->out) {
			conn_close(c);
		} else {
			c->out[0] = (uint8_t)(n >> 8);
			c->out[1] = (uint8_t)n;
			memcpy(c->out + 2, m, n);
			c->outlen = n + 2;
			c->outoff = 0;
			c->idle_until = now_ms() + TCP_IDLE_MS;
		}
	}
	/* last: m may be own's (a TCP upstream's answer is in own->rbuf) */
	if (own)
		pending_free(own);
}

/* own: as for reply() */
static void answer_rcode(struct pending *own, int client, uint32_t gen, const struct sockaddr_in *from,
			 const uint8_t *query, const struct dns_q *q, int rcode)
{
	uint8_t out[DNS_HDR + DNS_NAME_MAX + 8];
	size_t n = dns_make_answer(out, sizeof out, query, q, rcode);

	if (n)
		reply(own, client, gen, from, out, n);
	else if (own)
		pending_free(own);
}

/* (Re)sends p's query to upstream p->up. */
static int upstream_send(struct pending *p)
{
	uint16_t id;

	if (p->fd >= 0)
		close(p->fd);
	free(p->rbuf);
	p->rbuf = NULL;
	p->rlen = p->woff = 0;
	p->fd = socket(AF_INET, (p->tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0)
		return -1;
	if (getrandom(&id, sizeof id, 0) != sizeof id)
		return -1;
	p->up_id = id;
	p->query[0] = (uint8_t)(id >> 8);
	p->query[1] = (uint8_t)id;
	if (connect(p->fd, (struct sockaddr *)&R.up[p->up], sizeof R.up[0]) < 0 && errno != EINPROGRESS)
		return -1;
	if (!p->tcp && send(p->fd, p->query, p->qlen, 0) != (ssize_t)p->qlen)
		return -1;
	p->deadline = now_ms() + UPSTREAM_TIMEOUT_MS;
	return 0;
}

static void fail_pending(struct pending *p, const char *why)
{
	R.failed++;
	log_line("error", &p->q, p->pat, NULL, 0, why);
	p->query[0] = (uint8_t)(p->q.id >> 8);
	p->query[1] = (uint8_t)p->q.id;
	if (p->client >= 0 && R.conn[p->client].gen == p->client_gen)
		R.conn[p->client].busy = false;
	answer_rcode(p, p->client, p->client_gen, &p->from, p->query, &p->q, DNS_SERVFAIL);
}

/* The next upstream, or SERVFAIL when each was tried twice. */
static void retry(struct pending *p, const char *why)
{
	if (++p->tries >= 2 * R.nup) {
		fail_pending(p, why);
		return;
	}
	p->up = (p->up + 1) % R.nup;
	if (upstream_send(p))
		fail_pending(p, "cannot reach an upstream resolver");
}

/* A response from upstream for p: addresses allowed, then the answer. */
static void response(struct pending *p, uint8_t *m, size_t n)
{
	struct dns_addr a[MAX_ADDRS];
	size_t na = 0;
	uint16_t id = (uint16_t)(m[0] << 8 | m[1]);

	if (n < DNS_HDR || id != p->up_id)
		return;                 /* not the answer (UDP: keep waiting) */
	struct dns_q q = p->q;
	int rc = dns_scan_response(m, n, &q, R.ttl_max, a, MAX_ADDRS, &na);
	if (rc < 0) {
		if (p->tcp)
			retry(p, "malformed response");
		return;
	}
	if (na && allow_addrs(p->pat, a, na)) {
		fail_pending(p, R.ntrack >= MAX_TRACK ? "allow set full" : "cannot update the allow set");
		return;
	}
	R.allowed++;
	log_line("allow", &p->q, p->pat, a, na, NULL);
	m[0] = (uint8_t)(p->q.id >> 8);
	m[1] = (uint8_t)p->q.id;
	reply(p, p->client, p->client_gen, &p->from, m, n);
}

/* A query from the guest (UDP: client -1). */
static void query(int client, const struct sockaddr_in *from, uint8_t *m, size_t n)
{
	struct dns_q q;
	uint32_t gen = client >= 0 ? R.conn[client].gen : 0;
	int rc = dns_parse_query(m, n, &q);

	R.queries++;
	if (rc < 0)
		return;
	if (rc) {
		q.name[0] = '\0';
		q.type = q.cls = 0;
		answer_rcode(NULL, client, gen, from, m, &q, rc);
		return;
	}
	long pat = dns_allow_match(R.allow, q.name);
	if (pat < 0) {
		R.denied++;
		log_line("deny", &q, -1, NULL, 0, NULL);
		answer_rcode(NULL, client, gen, from, m, &q, DNS_NXDOMAIN);
		return;
	}
	if (q.type == DNS_TYPE_AAAA) {
		answer_rcode(NULL, client, gen, from, m, &q, DNS_NOERROR);
		return;
	}
	if (n > QUERY_MAX) {
		answer_rcode(NULL, client, gen, from, m, &q, DNS_FORMERR);
		return;
	}
	struct pending *p = pending_slot();
	if (!p) {
		R.failed++;
		answer_rcode(NULL, client, gen, from, m, &q, DNS_SERVFAIL);
		return;
	}
	p->seq = ++R.seq;
	p->q = q;
	p->pat = pat;
	p->client = client;
	p->client_gen = gen;
	if (from)
		p->from = *from;
	p->tcp = client >= 0;
	memcpy(p->query, m, n);
	p->qlen = n;
	p->started = now_ms();
	p->up = (int)(R.queries % (unsigned)R.nup);
	if (client >= 0)
		R.conn[client].busy = true;
	if (upstream_send(p))
		retry(p, "cannot reach an upstream resolver");
}

/* TCP upstream progress: connect, write length + query, read the answer. */
static void tcp_upstream(struct pending *p, short rev)
{
	if (rev & (POLLERR | POLLHUP) && !(rev & POLLIN)) {
		retry(p, "upstream closed the connection");
		return;
	}
	if (p->woff < p->qlen + 2 && (rev & POLLOUT)) {
		uint8_t buf[2 + QUERY_MAX];
		buf[0] = (uint8_t)(p->qlen >> 8);
		buf[1] = (uint8_t)p->qlen;
		memcpy(buf + 2, p->query, p->qlen);
		ssize_t w = send(p->fd, buf + p->woff, p->qlen + 2 - p->woff, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno != EAGAIN)
				retry(p, "cannot send to the upstream");
			return;
		}
		p->woff += (size_t)w;
		return;
	}
	if (!(rev & POLLIN))
		return;
	if (!p->rbuf && !(p->rbuf = malloc(2 + 65535))) {
		fail_pending(p, "out of memory");
		return;
	}
	size_t want = p->rlen < 2 ? 2 : 2 + (size_t)(p->rbuf[0] << 8 | p->rbuf[1]);
	ssize_t r = recv(p->fd, p->rbuf + p->rlen, want - p->rlen, 0);
	if (r <= 0) {
		if (r < 0 && errno == EAGAIN)
			return;
		retry(p, "upstream closed the connection");
		return;
	}
	p->rlen += (size_t)r;
	if (p->rlen >= 2 && p->rlen == 2 + (size_t)(p->rbuf[0] << 8 | p->rbuf[1]))
		response(p, p->rbuf + 2, p->rlen - 2);
}

static void tcp_client(struct conn *c, int idx, short rev)
{
	if (rev & POLLOUT && c->out) {
		ssize_t w = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno != EAGAIN)
				conn_close(c);
			return;
		}
		c->outoff += (size_t)w;
		if (c->outoff == c->outlen) {
			free(c->out);
			c->out = NULL;
		}
	}
	if (!(rev & (POLLIN | POLLHUP | POLLERR)) || c->busy || c->out)
		return;
	ssize_t r = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, MSG_DONTWAIT);
	if (r <= 0) {
		if (r == 0 || errno != EAGAIN)
			conn_close(c);
		return;
	}
	c->inlen += (size_t)r;
	c->idle_until = now_ms() + TCP_IDLE_MS;
	if (c->inlen < 2)
		return;
	size_t len = (size_t)(c->in[0] << 8 | c->in[1]);
	if (len > QUERY_MAX || len < DNS_HDR) {
		conn_close(c);
		return;
	}
	if (c->inlen < 2 + len)
		return;
	uint8_t q[QUERY_MAX];
	memcpy(q, c->in + 2, len);
	memmove(c->in, c->in + 2 + len, c->inlen - 2 - len);
	c->inlen -= 2 + len;
	query(idx, NULL, q, len);
}


/* ---- --strict-domains: the name a connection gives ------------------------ */

/* Is addr in the set because of pattern pat (still)? */
static bool tracked(uint32_t addr, long pat)
{
	int64_t now = now_ms();

	for (int32_t k = R.bucket[bucket_of(addr)]; k >= 0; k = R.track[k].next)
		if (R.track[k].addr == addr && R.track[k].pat == pat && R.track[k].expires > now)
			return true;
	return false;
}

static void relay_close(struct relay *x)
{
	if (x->c >= 0)
		close(x->c);
	if (x->u >= 0)
		close(x->u);
	free(x->cu);
	free(x->uc);
	memset(x, 0, sizeof *x);
	x->c = x->u = -1;
}

static void relay_accept(int which)
{
	struct sockaddr_in dst;
	socklen_t dl = sizeof dst;
	int fd = accept4(R.px[which], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct relay *x = NULL;

	if (fd < 0)
		return;
	for (int i = 0; i < MAX_RELAYS && !x; i++)
		if (R.relay[i].c < 0)
			x = &R.relay[i];
	/* full, or not DNATed here (the ruleset sends only what is for
	 * the set's addresses): closed */
	if (!x || getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dl) || dst.sin_family != AF_INET ||
	    !(x->cu = malloc(RELAY_BUF + 64)) || !(x->uc = malloc(RELAY_BUF))) {
		if (x)
			relay_close(x);
		close(fd);
		return;
	}
	x->c = fd;
	x->u = -1;
	x->http = which == 1;
	x->state = RL_PEEK;
	x->dst = dst;
	x->deadline = now_ms() + PEEK_MS;
}

static void relay_refuse(struct relay *x, const char *name, const char *why)
{
	static const char forbidden[] =
		"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 60\r\n\r\n"
		"vmsan: this host is not in the VM's allowed domains (strict)\n";

	R.denied++;
	log_conn("deny", x->http, name, &x->dst, why);
	if (x->http)
		(void)!send(x->c, forbidden, sizeof forbidden - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	relay_close(x);
}

/* The last n bytes in x->cu are the guest's, after the head: those of the
 * first request's body stay, the rest go; -1 if the body is malformed. */
static int http_body_take(struct relay *x, size_t n)
{
	size_t keep = n;

	if (x->req_done) {
		keep = 0;
	} else if (x->body >= 0) {
		keep = (unsigned long long)x->body < n ? (size_t)x->body : n;
		x->body -= (long long)keep;
		x->req_done = x->body == 0;
	} else {
		long k = http_chunked_feed(&x->ck, x->cu + x->culen, n);

		if (k < 0)
			return -1;
		keep = (size_t)k;
		x->req_done = x->ck.done;
	}
	if (keep < n && !x->dropped) {
		x->dropped = true;
		log_conn("deny", true, "", &x->dst, "more than one request on a connection (not relayed)");
	}
	x->culen += keep;
	return 0;
}

/* HTTP: the bytes of the first request that are in (x->cu), of those
 * read, the rest dropped; its head rewritten with "Connection: close".
 * -1 if its framing is ambiguous. */
static int http_first_only(struct relay *x)
{
	static uint8_t head[RELAY_BUF + 64];
	size_t h, nh, rest;
	long long body;

	if (http_request_frame(x->cu, x->culen, &h, &body))
		return -1;
	nh = http_close_head(x->cu, h, head);
	rest = x->culen - h;
	memmove(x->cu + nh, x->cu + h, rest);
	memcpy(x->cu, head, nh);
	x->culen = nh;
	x->body = body;
	memset(&x->ck, 0, sizeof x->ck);
	return http_body_take(x, rest);
}

/* The first bytes: once they name a host, allowed or refused. */
static void relay_peek(struct relay *x)
{
	char name[DNS_NAME_MAX];
	ssize_t r = recv(x->c, x->cu + x->culen, RELAY_BUF - x->culen, MSG_DONTWAIT);

	if (r < 0 && errno == EAGAIN)
		return;
	if (r <= 0) {
		relay_close(x);         /* gone before naming anything */
		return;
	}
	x->culen += (size_t)r;
	int rc = x->http ? http_host(x->cu, x->culen, name) : tls_sni(x->cu, x->culen, name);
	if (rc == 0 && x->culen < RELAY_BUF)
		return;
	if (rc != 1) {
		relay_refuse(x, "", x->http ? "no Host header" : "no TLS server_name");
		return;
	}
	long pat = dns_allow_match(R.allow, name);
	if (pat < 0) {
		relay_refuse(x, name, "name not allowed");
		return;
	}
	if (!tracked(ntohl(x->dst.sin_addr.s_addr), pat)) {
		relay_refuse(x, name, "the address is not one the name resolved to");
		return;
	}
	if (x->http && http_first_only(x)) {
		relay_refuse(x, name, "ambiguous request framing");
		return;
	}
	x->u = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (x->u < 0 || (connect(x->u, (struct sockaddr *)&x->dst, sizeof x->dst) && errno != EINPROGRESS)) {
		log_conn("error", x->http, name, &x->dst, "cannot connect");
		relay_close(x);
		return;
	}
	R.allowed++;
	log_conn("allow", x->http, name, &x->dst, NULL);
	x->state = RL_CONNECT;
	x->deadline = now_ms() + CONNECT_MS;
}

/* Moves what one side sent to the other; false when the relay is done. */
static bool pipe_in(int from, uint8_t *buf, size_t *len, size_t *off, bool *eof)
{
	if (*off == *len)
		*off = *len = 0;
	else if (*off && *len >= RELAY_BUF) {
		memmove(buf, buf + *off, *len - *off);
		*len -= *off;
		*off = 0;
	}
	if (*len >= RELAY_BUF)
		return true;
	ssize_t r = recv(from, buf + *len, RELAY_BUF - *len, MSG_DONTWAIT);
	if (r < 0)
		return errno == EAGAIN;
	if (r == 0)
		*eof = true;
	*len += (size_t)r;
	return true;
}

static bool pipe_out(int to, uint8_t *buf, size_t len, size_t *off)
{
	if (*off == len)
		return true;
	ssize_t w = send(to, buf + *off, len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w < 0)
		return errno == EAGAIN;
	*off += (size_t)w;
	return true;
}

/* The guest's side of an HTTP relay: the first request's bytes are
 * relayed, whatever follows it is read and dropped. */
static bool http_in(struct relay *x)
{
	static uint8_t drop[4096];
	size_t before;

	if (x->req_done) {
		ssize_t r = recv(x->c, drop, sizeof drop, MSG_DONTWAIT);

		if (r < 0)
			return errno == EAGAIN;
		if (r == 0)
			x->c_eof = true;
		else if (!x->dropped) {
			x->dropped = true;
			log_conn("deny", true, "", &x->dst, "more than one request on a connection (not relayed)");
		}
		return true;
	}
	if (x->cuoff == x->culen)
		x->cuoff = x->culen = 0;
	else if (x->cuoff && x->culen >= RELAY_BUF) {
		memmove(x->cu, x->cu + x->cuoff, x->culen - x->cuoff);
		x->culen -= x->cuoff;
		x->cuoff = 0;
	}
	if (x->culen >= RELAY_BUF)
		return true;
	before = x->culen;
	ssize_t r = recv(x->c, x->cu + before, RELAY_BUF - before, MSG_DONTWAIT);
	if (r < 0)
		return errno == EAGAIN;
	if (r == 0) {
		x->c_eof = true;
		return true;
	}
	return http_body_take(x, (size_t)r) == 0;
}

/* Room to read into (pipe_in moves what is left to the front). */
static bool room(size_t len, size_t off)
{
	return len - off < RELAY_BUF;
}

static void relay_io(struct relay *x, bool upstream, short rev)
{
	bool ok = true;

	if (x->state == RL_PEEK) {
		if (!upstream)
			relay_peek(x);
		return;
	}
	if (x->state == RL_CONNECT) {
		int err = 0;
		socklen_t el = sizeof err;
		if (!upstream || !(rev & (POLLOUT | POLLERR | POLLHUP)))
			return;
		if (getsockopt(x->u, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
			relay_close(x);
			return;
		}
		x->state = RL_PIPE;
	}
	if (rev & (POLLIN | POLLHUP | POLLERR))
		ok = upstream ? pipe_in(x->u, x->uc, &x->uclen, &x->ucoff, &x->u_eof) :
		     x->http  ? http_in(x) : pipe_in(x->c, x->cu, &x->culen, &x->cuoff, &x->c_eof);
	ok = ok && pipe_out(x->u, x->cu, x->culen, &x->cuoff) && pipe_out(x->c, x->uc, x->uclen, &x->ucoff);
	if (!ok) {
		relay_close(x);
		return;
	}
	/* a side that ended, once its bytes are through: end it on the other */
	if (x->c_eof && x->cuoff == x->culen && !x->u_shut) {
		shutdown(x->u, SHUT_WR);
		x->u_shut = true;
	}
	if (x->u_eof && x->ucoff == x->uclen && !x->c_shut) {
		shutdown(x->c, SHUT_WR);
		x->c_shut = true;
	}
	/* HTTP: the one response relayed whole, the connection ends */
	if ((x->c_shut && x->u_shut) || (x->http && x->req_done && x->c_shut)) {
		relay_close(x);
		return;
	}
	x->deadline = now_ms() + RELAY_IDLE_MS;
}

/* What a relay waits for on each side. */
static short relay_events(const struct relay *x, bool upstream)
{
	if (x->state == RL_PEEK)
		return upstream ? 0 : POLLIN;
	if (x->state == RL_CONNECT)
		return upstream ? POLLOUT : 0;
	if (upstream)
		return (short)((x->u_eof || !room(x->uclen, x->ucoff) ? 0 : POLLIN) | (x->cuoff < x->culen ? POLLOUT : 0));
	if (x->http && x->req_done)     /* what follows the request: read and dropped */
		return (short)((x->c_eof ? 0 : POLLIN) | (x->ucoff < x->uclen ? POLLOUT : 0));
	return (short)((x->c_eof || !room(x->culen, x->cuoff) ? 0 : POLLIN) | (x->ucoff < x->uclen ? POLLOUT : 0));
}

/* ---- control ------------------------------------------------------------ */

static void ctl_reply(int fd, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	if (s) {
		(void)!write(fd, s, strlen(s));
		(void)!write(fd, "\n", 1);
		free(s);
	}
	json_decref(j);
}

static json_t *stats(void)
{
	size_t pending = 0;

	for (size_t i = 0; i < MAX_PENDING; i++)
		pending += R.pend[i].used;
	purge(now_ms());
	return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "ok", 1, "domains",
			 (json_int_t)dns_allow_count(R.allow), "tracked", (json_int_t)R.ntrack, "pending",
			 (json_int_t)pending, "queries", (json_int_t)R.queries, "allowed", (json_int_t)R.allowed,
			 "denied", (json_int_t)R.denied, "failed", (json_int_t)R.failed);
}

/* Patterns from a JSON array, normalized; NULL with why set. */
static struct dns_allow *allow_from(json_t *list, char *why, size_t n)
{
	size_t k = json_array_size(list), i;
	char (*norm)[DNS_NAME_MAX] = calloc(k ? k : 1, DNS_NAME_MAX);
	const char **ptrs = calloc(k ? k : 1, sizeof *ptrs);
	struct dns_allow *a = NULL;
	json_t *x;

	if (!norm || !ptrs) {
		snprintf(why, n, "out of memory");
		goto out;
	}
	json_array_foreach(list, i, x) {
		char w[200];
		if (!json_is_string(x) || normalize_domain(json_string_value(x), norm[i], DNS_NAME_MAX, w, sizeof w)) {
			snprintf(why, n, "domains[%zu]: %s", i, json_is_string(x) ? w : "expected a string");
			goto out;
		}
		ptrs[i] = norm[i];
	}
	a = dns_allow_new(ptrs, k);
	if (!a)
		snprintf(why, n, "out of memory");
out:
	free(norm);
	free(ptrs);
	return a;
}

static void ctl_accept(void)
{
	int fd = accept4(R.ctl, NULL, NULL, SOCK_CLOEXEC);
	struct ucred cr;
	socklen_t cl = sizeof cr;
	struct timeval tv = { 2, 0 };
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) || cr.uid != 0)
		goto out;               /* root (vmsan-net) only */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	for (;;) {
		if (len + 4096 > cap) {
			if (cap >= (8u << 20))
				goto out;
			char *nb = realloc(buf, cap = cap ? cap * 2 : 65536);
			if (!nb)
				goto out;
			buf = nb;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0)
			goto out;
		if (r == 0)
			break;
		len += (size_t)r;
	}
	json_error_t je;
	json_t *rq = json_loadb(buf, len, 0, &je), *list;
	char why[256];
	if (!rq) {
		ctl_reply(fd, json_pack("{s:b, s:s}", "ok", 0, "error", "not JSON"));
	} else if (json_is_string(json_object_get(rq, "op")) &&
		   !strcmp(json_string_value(json_object_get(rq, "op")), "stats")) {
		ctl_reply(fd, stats());
	} else if (!json_is_array(list = json_object_get(rq, "domains"))) {
		ctl_reply(fd, json_pack("{s:b, s:s}", "ok", 0, "error", "expected {\"domains\":[...]} or {\"op\":\"stats\"}"));
	} else {
		struct dns_allow *a = allow_from(list, why, sizeof why);
		if (!a) {
			ctl_reply(fd, json_pack("{s:b, s:s}", "ok", 0, "error", why));
		} else {
			/* the tracking follows the patterns by their text; what
			 * only dropped patterns justified goes */
			size_t k = 0, before = R.ntrack;
			for (size_t i = 0; i < R.ntrack; i++) {
				long np = dns_allow_find(a, dns_allow_pattern(R.allow, R.track[i].pat));
				if (np >= 0) {
					R.track[k] = R.track[i];
					R.track[k++].pat = np;
				}
			}
			R.ntrack = k;
			track_rehash();
			/* pending queries of dropped patterns: their answers go
			 * nowhere near the set */
			for (size_t i = 0; i < MAX_PENDING; i++)
				if (R.pend[i].used && !R.pend[i].done) {
					long np = dns_allow_find(a, dns_allow_pattern(R.allow, R.pend[i].pat));
					if (np < 0)
						fail_pending(&R.pend[i], "domain removed");
					else
						R.pend[i].pat = np;
				}
			dns_allow_free(R.allow);
			R.allow = a;
			int rc = resync();
			ctl_reply(fd, json_pack("{s:b, s:I, s:I, s:I}", "ok", rc == 0, "domains",
						(json_int_t)dns_allow_count(a), "tracked", (json_int_t)R.ntrack,
						"dropped", (json_int_t)(before - R.ntrack)));
		}
	}
	json_decref(rq);
out:
	free(buf);
	close(fd);
}

static void resolver_loop(void)
{
	static struct pollfd pfd[6 + MAX_TCP_CLIENTS + MAX_PENDING + 2 * MAX_RELAYS];
	/* -1.. -6 fixed, 0.. conn, 1000.. pending, 2000 + 2 relay + side */
	static int who[6 + MAX_TCP_CLIENTS + MAX_PENDING + 2 * MAX_RELAYS];
	static uint8_t buf[65536];

	for (;;) {
		size_t n = 0;
		int64_t now = now_ms(), wait = 5000;

		pfd[n] = (struct pollfd){ R.udp, POLLIN, 0 }, who[n++] = -1;
		pfd[n] = (struct pollfd){ R.tcp, POLLIN, 0 }, who[n++] = -2;
		pfd[n] = (struct pollfd){ R.ctl, POLLIN, 0 }, who[n++] = -3;
		pfd[n] = (struct pollfd){ R.sp, POLLIN, 0 }, who[n++] = -4;      /* only its end */
		for (int k = 0; k < 2; k++)
			if (R.px[k] >= 0)
				pfd[n] = (struct pollfd){ R.px[k], POLLIN, 0 }, who[n++] = -5 - k;
		for (int i = 0; i < MAX_RELAYS; i++) {
			struct relay *x = &R.relay[i];
			if (x->c < 0)
				continue;
			if (now >= x->deadline) {
				if (x->state == RL_PEEK)
					relay_refuse(x, "", "no name in time");
				else
					relay_close(x);
				continue;
			}
			for (int side = 0; side < 2; side++) {
				short ev = relay_events(x, side);
				/* nothing awaited: not polled (a hung-up socket would
				 * report POLLHUP all the same) */
				pfd[n] = (struct pollfd){ ev ? (side ? x->u : x->c) : -1, ev, 0 };
				who[n++] = 2000 + 2 * i + side;
			}
			if (x->deadline - now < wait)
				wait = x->deadline - now;
		}
		for (int i = 0; i < MAX_TCP_CLIENTS; i++) {
			struct conn *c = &R.conn[i];
			if (c->fd < 0)
				continue;
			if (now >= c->idle_until && !c->busy) {
				conn_close(c);
				continue;
			}
			pfd[n] = (struct pollfd){ c->fd, (short)((c->out ? POLLOUT : 0) | (c->busy || c->out ? 0 : POLLIN)), 0 };
			who[n++] = i;
			if (c->idle_until - now < wait)
				wait = c->idle_until - now;
		}
		for (int i = 0; i < MAX_PENDING; i++) {
			struct pending *p = &R.pend[i];
			if (!p->used || p->done)
				continue;
			if (now >= p->deadline) {
				retry(p, "upstream timed out");
				if (!p->used)
					continue;
			}
			pfd[n] = (struct pollfd){ p->fd, (short)(POLLIN | (p->tcp && p->woff < p->qlen + 2 ? POLLOUT : 0)), 0 };
			who[n++] = 1000 + i;
			if (p->deadline - now < wait)
				wait = p->deadline - now;
		}
		if (poll(pfd, n, (int)(wait < 0 ? 0 : wait)) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		for (size_t i = 0; i < n; i++) {
			short rev = pfd[i].revents;
			if (!rev)
				continue;
			if (who[i] == -1) {
				struct sockaddr_in from;
				socklen_t fl = sizeof from;
				/* a burst at a time, then the others get their turn */
				for (int k = 0; k < 64; k++) {
					ssize_t r = recvfrom(R.udp, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
					if (r < 0)
						break;
					query(-1, &from, buf, (size_t)r);
				}
			} else if (who[i] == -2) {
				int fd = accept4(R.tcp, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
				int k;
				for (k = 0; fd >= 0 && k < MAX_TCP_CLIENTS && R.conn[k].fd >= 0; k++)
					;
				if (fd >= 0 && k == MAX_TCP_CLIENTS) {
					close(fd);      /* full: the client retries */
				} else if (fd >= 0) {
					R.conn[k].fd = fd;
					R.conn[k].gen = ++R.gen;
					R.conn[k].idle_until = now_ms() + TCP_IDLE_MS;
				}
			} else if (who[i] == -3) {
				ctl_accept();
			} else if (who[i] == -4) {
				return;         /* the setter is gone: so are we */
			} else if (who[i] <= -5) {
				relay_accept(-5 - who[i]);
			} else if (who[i] < 1000) {
				tcp_client(&R.conn[who[i]], who[i], rev);
			} else if (who[i] < 1000 + MAX_PENDING) {
				struct pending *p = &R.pend[who[i] - 1000];
				if (!p->used || p->fd != pfd[i].fd)
					continue;
				if (p->tcp) {
					tcp_upstream(p, rev);
				} else {
					ssize_t r = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT);
					if (r > 0)
						response(p, buf, (size_t)r);
					else if (r < 0 && errno != EAGAIN)
						retry(p, "upstream refused");
				}
			} else if (who[i] >= 2000) {
				struct relay *x = &R.relay[(who[i] - 2000) / 2];
				int side = (who[i] - 2000) % 2;
				if (x->c >= 0 && pfd[i].fd == (side ? x->u : x->c))
					relay_io(x, side, rev);
			}
		}
	}
}

/* ---- start ---------------------------------------------------------------- */

#ifndef VMSAN_VERSION
#define VMSAN_VERSION "0.0.0"
#endif
#define USAGE \
	"usage: vmsan-dns < settings.json   (started by vmsan-net, in a VM's network namespace)\n" \
	"\n" \
	"The filtering DNS resolver of a VM with allowed domains.  Settings:\n" \
	"  {\"id\":ID, \"uid\":N, \"gid\":N, \"upstreams\":[IP...], \"domains\":[NAME|*.ZONE...],\n" \
	"   \"ttlMin\":S, \"ttlMax\":S, \"strict\":BOOL}\n" \
	"It answers on 172.16.0.1:53 (UDP, TCP): allowed names are forwarded to the\n" \
	"upstreams and their A records added to the set dns_allow before the answer;\n" \
	"others get NXDOMAIN.  strict: on :10443 and :10080 it relays the guest's TCP\n" \
	"to the set's addresses (443, 80) whose TLS server_name or HTTP Host is an\n" \
	"allowed name that resolved to that address.\n" \
	"Control: abstract unix socket vmsan-dns-ctl, root only:\n" \
	"  {\"domains\":[...]}   replace the list (removed names' addresses leave at once)\n" \
	"  {\"op\":\"stats\"}      counters\n" \
	"See vmsan-dns(8).\n"

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	struct verr e = { 0 };
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	verr_set(&e, VMSAN_EXIT_FAIL, "ERR_DNS", "vmsan-net starts vmsan-dns; see vmsan-dns(8)", "%s", msg);
	return reply_error(&e);
}

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

int main(int argc, char **argv)
{
	struct verr e = {0};
	json_t *cfg, *ups, *doms, *x;
	long long uid = 0, gid = 0, ttl_min = NET_DNS_TTL_MIN, ttl_max = NET_DNS_TTL_MAX;
	size_t i;
	char why[256];
	struct jr r;

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
	if (argc > 1) {
		fprintf(stderr, "vmsan-dns: unexpected argument '%s': it is started by vmsan-net only; see vmsan-dns(8)\n",
			argv[1]);
		return 100;
	}
	signal(SIGPIPE, SIG_IGN);
	cfg = request_read(0, &e);
	if (!cfg)
		return fail("%s", e.message);
	jr_init(&r, cfg, "request", &e);
	jr_string(&r, "id", JR_REQUIRED, valid_vm_id);
	jr_int(&r, "uid", JR_REQUIRED, 1, 4294967294LL, &uid);
	jr_int(&r, "gid", JR_REQUIRED, 1, 4294967294LL, &gid);
	ups = jr_array(&r, "upstreams", JR_REQUIRED, MAX_UPSTREAMS);
	doms = jr_array(&r, "domains", JR_REQUIRED, NET_DNS_DOMAINS_MAX);
	jr_int(&r, "ttlMin", JR_OPTIONAL, 1, 86400, &ttl_min);
	jr_int(&r, "ttlMax", JR_OPTIONAL, 1, 86400, &ttl_max);
	bool strict = false;
	jr_bool(&r, "strict", JR_OPTIONAL, &strict);
	if (jr_end(&r))
		return fail("%s", e.message);
	if (ttl_min > ttl_max || !json_array_size(ups))
		return fail("ttlMin above ttlMax, or no upstream");
	R.ttl_min = (uint32_t)ttl_min;
	R.ttl_max = (uint32_t)ttl_max;
	json_array_foreach(ups, i, x) {
		unsigned a;
		if (!json_is_string(x) || parse_ipv4(json_string_value(x), &a))
			return fail("upstreams[%zu]: not an IPv4 address", i);
		R.up[R.nup].sin_family = AF_INET;
		R.up[R.nup].sin_port = htons(53);
		R.up[R.nup++].sin_addr.s_addr = htonl(a);
	}
	R.allow = allow_from(doms, why, sizeof why);
	if (!R.allow)
		return fail("%s", why);
	R.log = fcntl(3, F_GETFD) >= 0 ? 3 : -1;
	R.log_tokens = LOG_BURST;
	R.log_at = now_ms();
	if (getrandom(&R.hash_key, sizeof R.hash_key, 0) != sizeof R.hash_key)
		return fail("getrandom: %s", strerror(errno));
	track_rehash();
	for (i = 0; i < MAX_TCP_CLIENTS; i++)
		R.conn[i].fd = -1;
	for (i = 0; i < MAX_PENDING; i++)
		R.pend[i].fd = -1;

	R.px[0] = R.px[1] = -1;
	for (i = 0; i < MAX_RELAYS; i++)
		R.relay[i].c = R.relay[i].u = -1;
	if (strict) {
		R.px[0] = bind_in(SOCK_STREAM, NET_TAP_ADDR, NET_DNS_PORT_TLS);
		R.px[1] = bind_in(SOCK_STREAM, NET_TAP_ADDR, NET_DNS_PORT_HTTP);
		if (R.px[0] < 0 || R.px[1] < 0)
			return fail("cannot listen on " NET_TAP_ADDR ":%d and :%d: %s", NET_DNS_PORT_TLS, NET_DNS_PORT_HTTP,
				    strerror(errno));
	}
	R.udp = bind_in(SOCK_DGRAM, NET_TAP_ADDR, 53);
	R.tcp = bind_in(SOCK_STREAM, NET_TAP_ADDR, 53);
	if (R.udp < 0 || R.tcp < 0)
		return fail("cannot listen on " NET_TAP_ADDR ":53: %s", strerror(errno));
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	memcpy(un.sun_path + 1, CTL_NAME, strlen(CTL_NAME));
	R.ctl = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (R.ctl < 0 || bind(R.ctl, (struct sockaddr *)&un, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
							       strlen(CTL_NAME))) || listen(R.ctl, 4))
		return fail("cannot bind the control socket: %s", strerror(errno));
	struct mnl_socket *nl = nft_socket(&e);
	if (!nl)
		return fail("%s", e.message);
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp))
		return fail("socketpair: %s", strerror(errno));
	/* the set request is 32 KiB: room for a few */
	int sz = 1 << 20;
	setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	setsockopt(sp[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	fflush(stdout);
	pid_t setter = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return fail("fork: %s", strerror(errno));
	if (pid == 0) {
		/* the resolver */
		close(sp[0]);
		mnl_socket_close(nl);
		R.sp = sp[1];
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) || getppid() != setter)
			_exit(1);
		struct rlimit fl = { 1024, 1024 };
		setrlimit(RLIMIT_NOFILE, &fl);
		/* gmtime_r reads the time zone file the first time: now, not
		 * inside the sandbox (which has no open) */
		time_t t0 = time(NULL);
		struct tm tm0;
		tzset();
		gmtime_r(&t0, &tm0);
		if (drop_to((uid_t)uid, (gid_t)gid, false) || sandbox())
			_exit(1);
		char ok = 1;
		if (send(R.sp, &ok, 1, 0) != 1)
			_exit(1);
		resolver_loop();
		/* straight to the kernel: _exit's wrappers (a sanitizer's leak
		 * check at exit) would make calls the filter does not allow */
		syscall(SYS_exit_group, 0);
	}
	/* the setter */
	close(sp[1]);
	close(R.udp);
	close(R.tcp);
	close(R.ctl);
	for (int k = 0; k < 2; k++)
		if (R.px[k] >= 0)
			close(R.px[k]);
	if (R.log >= 0)
		close(R.log);
	if (drop_to((uid_t)uid, (gid_t)gid, true))
		return fail("cannot drop privileges: %s", strerror(errno));
	char ok = 0;
	struct timeval tv = { 5, 0 };
	setsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (recv(sp[0], &ok, 1, 0) != 1 || ok != 1) {
		kill(pid, SIGKILL);
		return fail("the resolver did not start");
	}
	tv.tv_sec = 0;
	setsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	printf("{\"ok\":true,\"pid\":%ld,\"resolver\":%ld}\n", (long)setter, (long)pid);
	fflush(stdout);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		close(null);
	}
	json_decref(cfg);
	dns_allow_free(R.allow);
	setter_loop(sp[0], nl);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return 0;
}
