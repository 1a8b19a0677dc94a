/* vmsan-dns's parts: the core (vmsan-dns.c: the settings, what it binds
 * as root, the split into the setter and the resolver, each dropping what
 * it does not need) over one file a job:
 *
 *   config.c    the settings read and checked into R; an allow list
 *               from a JSON list of patterns
 *   sandbox.c   privileges dropped (the setter keeps CAP_NET_ADMIN, the
 *               resolver nothing) and the resolver's seccomp filter
 *   setter.c    the setter: the resolver's requests checked and applied
 *               to the nft set; the resolver's side of that channel
 *   loop.c      the resolver's poll loop: what each socket waits for,
 *               then who handles what came
 *   query.c     the guest's queries (UDP, TCP clients): allowed names
 *               forwarded, others answered at once; answers in order
 *   upstream.c  forwarding to the upstreams, retries, their answers
 *   track.c     the cache of (address, pattern) pairs the set holds, and
 *               the set kept to what it justifies
 *   relay.c     --strict-domains: a connection relayed when the name it
 *               gives brought its address into the set
 *   ctl.c       the control socket: a new allow list, counters
 *   log.c       the DNS log, rate-limited
 *
 * The resolver is one process, one thread: its state is the one R. */
#ifndef VMSAN_DNS_H
#define VMSAN_DNS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "lib/dnsmsg.h"
#include "lib/netplan.h"
#include "lib/nft.h"
#include "lib/vmsan.h"

#define CTL_NAME "vmsan-dns-ctl"
#define MAX_UPSTREAMS 3
#define MAX_PENDING 256
#define MAX_TCP_CLIENTS 16
#define MAX_TRACK NFT_ADDR_MAX	   /* (address, pattern) pairs in the set */
#define TRACK_HASH (2 * MAX_TRACK) /* buckets, a power of two */
#define MAX_ADDRS 64		   /* addresses taken from one answer */
#define QUERY_MAX 4096
#define UPSTREAM_TIMEOUT_MS 1500
#define TCP_IDLE_MS 10000
#define LOG_MAX_BYTES (8 << 20)
#define MAX_RELAYS 128		    /* --strict-domains connections at once */
#define RELAY_BUF (PEEK_MAX + 1024) /* each way */
#define PEEK_MS 5000		    /* for the ClientHello or request head */
#define CONNECT_MS 10000
#define RELAY_IDLE_MS (15 * 60 * 1000)
#define LOG_RATE 20   /* lines per second, */
#define LOG_BURST 100 /* with bursts of */

/* Every error of vmsan-dns is ERR_DNS, exit 1: vmsan-net reports its
 * message. */
#define DNS_FAIL(...) \
	verr_fail(e, VMSAN_EXIT_FAIL, "ERR_DNS", "vmsan-net starts vmsan-dns; see vmsan-dns(8)", __VA_ARGS__)

/* ---- setter <-> resolver: one request, one int32_t answer (0 or -1) ---- */

struct set_req {
	uint32_t op; /* enum nft_addr_op */
	uint32_t n;
	struct {
		uint32_t addr;
		uint32_t timeout_s;
	} el[MAX_TRACK];
};
#define SET_REQ_HDR offsetof(struct set_req, el)

/* ---- the resolver's state ---------------------------------------------- */

struct conn {	/* a TCP client */
	int fd; /* -1: free */
	uint32_t gen;
	uint8_t in[2 + QUERY_MAX];
	size_t inlen;
	uint8_t *out; /* an answer being written */
	size_t outlen, outoff;
	bool busy; /* a query of it is pending */
	int64_t idle_until;
};

struct pending {
	bool used;
	int fd; /* the upstream socket */
	bool tcp;
	int up, tries;
	uint16_t up_id;
	struct dns_q q; /* q.id: the client's id */
	long pat;
	int client; /* -1: UDP; else a conn */
	uint32_t client_gen;
	struct sockaddr_in from;
	uint64_t seq; /* UDP: order of arrival */
	bool done;    /* UDP: answered, the answer waits in held */
	uint8_t *held;
	size_t heldlen;
	uint8_t query[QUERY_MAX];
	size_t qlen;
	uint8_t *rbuf; /* TCP: the response, length first */
	size_t rlen, woff;
	int64_t deadline, started;
};

/* A guest's TCP connection to an allowed name's address under
 * --strict-domains: the name its first bytes give (TLS server_name, HTTP
 * Host) must be allowed and must have brought that address into the set,
 * or the connection is closed (HTTP: 403) before any byte goes out. */
struct relay {
	int c, u; /* guest side, upstream side; -1: none */
	bool http;
	int state;		/* RL_PEEK, RL_CONNECT, RL_PIPE */
	struct sockaddr_in dst; /* where the guest was going */
	uint8_t *cu, *uc;	/* bytes on their way: guest->upstream, back */
	size_t culen, cuoff, uclen, ucoff;
	bool c_eof, u_eof, c_shut, u_shut;
	int64_t deadline;
	/* HTTP: one request per connection, relayed with "Connection: close";
	 * what the guest sends after it never reaches the server */
	long long body; /* its body's bytes still to relay; -1: chunked */
	struct http_chunked ck;
	bool req_done, dropped;
};
enum { RL_PEEK, RL_CONNECT, RL_PIPE };

struct entry {
	uint32_t addr;
	int32_t next; /* the next entry in addr's bucket, or -1 */
	long pat;
	int64_t expires;
};

struct resolver {
	int udp, tcp, ctl, sp, log;
	int px[2]; /* --strict-domains listeners: TLS, HTTP; -1 */
	struct relay relay[MAX_RELAYS];
	struct sockaddr_in up[MAX_UPSTREAMS];
	int nup;
	uint32_t ttl_min, ttl_max;
	struct dns_allow *allow;
	struct conn conn[MAX_TCP_CLIENTS];
	struct pending pend[MAX_PENDING];
	struct entry track[MAX_TRACK];
	size_t ntrack;
	int32_t bucket[TRACK_HASH]; /* first entry, or -1 */
	uint32_t hash_key;
	struct set_req rq;
	/* counters */
	unsigned long long queries, allowed, denied, failed, log_suppressed;
	double log_tokens;
	int64_t log_at, purge_at;
	uint32_t gen;
	uint64_t seq;
};
extern struct resolver R; /* vmsan-dns.c */

static inline int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* config.c */
struct config {
	uid_t uid;
	gid_t gid;
	bool strict;
};
int config_read(struct config *c, struct verr *e);
/* Patterns from a JSON array, normalized; NULL with why set. */
struct dns_allow *allow_from(json_t *list, char *why, size_t n);

/* sandbox.c */
int drop_to(uid_t uid, gid_t gid, bool keep_net_admin);
int sandbox(void);

/* setter.c */
struct mnl_socket;
bool addr_forbidden(uint32_t a);
void setter_loop(int sp, struct mnl_socket *nl);
int setter_call(uint32_t op, size_t n);

/* loop.c */
void resolver_loop(void);

/* query.c */
void udp_queries(uint8_t *buf, size_t size); /* what the UDP socket has */
void tcp_accept(void);
/* An answer to a client (-1: UDP, from); own, the query's slot or NULL,
 * is freed. */
void client_reply(struct pending *own, int client, uint32_t gen, const struct sockaddr_in *from, const uint8_t *m,
		  size_t n);
/* The same, made here: q's question and rcode. */
void answer_rcode(struct pending *own, int client, uint32_t gen, const struct sockaddr_in *from, const uint8_t *query,
		  const struct dns_q *q, int rcode);
void tcp_client(struct conn *c, int idx, short rev);
void conn_close(struct conn *c);

/* upstream.c */
int upstream_send(struct pending *p);
/* The next upstream, or SERVFAIL when each was tried twice; at once. */
void upstream_retry(struct pending *p, const char *why);
void fail_pending(struct pending *p, const char *why);
void upstream_io(struct pending *p, short rev, uint8_t *buf, size_t size);

/* track.c */
void track_rehash(void);
void track_purge(int64_t now);
int allow_addrs(long pat, const struct dns_addr *a, size_t na);
int track_resync(void);
bool track_has(uint32_t addr, long pat);

/* relay.c */
void relay_accept(int which);
void relay_refuse(struct relay *x, const char *name, const char *why);
void relay_close(struct relay *x);
void relay_io(struct relay *x, bool upstream, short rev);
short relay_events(const struct relay *x, bool upstream);

/* ctl.c */
void ctl_accept(void);

/* log.c */
void log_line(const char *verdict, const struct dns_q *q, long pat, const struct dns_addr *a, size_t na,
	      const char *why);
void log_conn(const char *verdict, bool http, const char *name, const struct sockaddr_in *dst, const char *why);

#endif
