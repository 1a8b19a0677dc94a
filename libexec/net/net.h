/* vmsan-net's parts: the root core (vmsan-net.c: requests, their checks,
 * the caller and ownership), the link primitives (link.c), the namespace
 * (netns.c), root's records and slots (record.c), what setup makes
 * (setup.c), the resolver's life cycle (dns.c), teardown and verify
 * (teardown.c) and sweep (sweep.c).  Everything here runs as root; what
 * it acts on is named by a checked id, a root record, or the network plan
 * (lib/netplan.h).  See vmsan-security(7). */
#ifndef VMSAN_NET_H
#define VMSAN_NET_H

#include <stdbool.h>
#include <linux/if.h>

#include "lib/vmsan.h"
#include "lib/caller.h"
#include "lib/netplan.h"
#include "lib/nft.h"
#include "lib/policy.h"
#include "lib/vmhome.h"

#define RUN_DIR "/run/vmsan"
#define NET_DIR RUN_DIR "/net"
#define NETNS_DIR "/run/netns"
#define SLOT_MAP RUN_DIR "/slots"
#define HOST_LOCK RUN_DIR "/host.lock"

struct vmnet {
	char id[64];
	char netns[80];	  /* vmsan-<id> */
	char nspath[128]; /* /run/netns/vmsan-<id> */
	long slot;	  /* -1: none */
	char host_if[IFNAMSIZ];
	char host_addr[16], ns_addr[16];
	json_t *ports;	    /* host ports published, [P...] */
	bool host_mode;	    /* --no-netns: TAP vmst<slot> and table vmsan_<id> on the host */
	char table[32];	    /* host mode: the VM's table */
	json_t *dns;	    /* its resolver: {pid, start, resolver, resolverStart, upstreams, ttlMin,
				  * ttlMax, strict}, or NULL */
	long owner;	    /* the uid it was set up for (0: root) */
	struct vmhome home; /* the VM's directory (request.vmDir), if given */
};

/* vmsan-net.c, set once in main */
extern int orig_ns;	  /* the namespace we started in: "the host" */
extern struct caller who; /* who asked (the sudo user, or root) */

/* link.c */
struct nl_sock;
int write_file(const char *path, const char *text);
struct nl_sock *rt_sock(struct verr *e);
int nlerr(struct verr *e, int err, const char *what, const char *name);
int link_index(struct nl_sock *sk, const char *name);
int link_up(struct nl_sock *sk, const char *name, struct verr *e);
void delete_link(const char *name);
int add_addr(struct nl_sock *sk, const char *ifname, const char *addr, int plen, struct verr *e);
int add_default_route(struct nl_sock *sk, const char *ifname, const char *gw, struct verr *e);
int shape(struct nl_sock *sk, const char *ifname, long long mbit, struct verr *e);
int tap_mac(const char *name, struct verr *e);
int make_tap(const char *name, long owner, struct verr *e);
int route_localnet(const char *ifname, struct verr *e);
int no_ipv6(const char *ifname, struct verr *e);

/* netns.c */
int enter_ns(const char *path, struct verr *e);
/* Back to orig_ns; aborts if it cannot. */
void leave_ns(void);
int netns_create(struct vmnet *v, struct verr *e);
int netns_exists(const struct vmnet *v);
void netns_delete(const struct vmnet *v);
void netns_kill_all(const char *nspath, bool dry, json_t *found);

/* record.c */
void vmnet_init(struct vmnet *v, const char *id);
int ensure_dirs(struct verr *e);
int lock_file(const char *path, struct verr *e);
long slot_take(struct vmnet *v, struct verr *e);
void slot_free(long slot);
int record_path(char *buf, size_t n, const char *id);
int record_write(const struct vmnet *v, struct verr *e);
int record_read(struct vmnet *v);
void record_tmp_remove(const char *id);

/* setup.c */
int host_side(struct vmnet *v, struct verr *e);
int ns_side(struct vmnet *v, long owner, long long mbit, json_t *ruleset, struct verr *e);
int host_table(struct verr *e);
int host_tap(struct vmnet *v, long owner, struct verr *e);
int ports_free(json_t *ports, struct verr *e);

/* dns.c */
bool dns_alive(const struct vmnet *v);
void dns_stop(struct vmnet *v);
int dns_start(struct vmnet *v, json_t *dns, struct verr *e);
bool dns_stays(struct vmnet *v, json_t *dns);
int dns_follow(struct vmnet *v, json_t *dns, struct verr *e);

/* teardown.c */
void teardown(struct vmnet *v);
json_t *leftovers(const char *id, struct verr *e);

/* sweep.c */
json_t *sweep_run(bool dry, struct verr *e);

/* orphans.c: the caller's records (root: everyone's) whose VM's home is
 * gone (torn down unless dry), or whose resolver died (listed). */
json_t *net_orphans(bool dry, struct verr *e);

#endif
