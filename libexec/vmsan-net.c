/* vmsan-net: a VM's network, as root.  One of the two helpers the sudoers
 * rule allows.
 *
 *   setup        slot, namespace vmsan-<id>, veth vmsh<slot> <-> vmsnet0,
 *                TAP vmstap0, addresses, routes, forwarding, shaping, the
 *                shared host table, the VM's ruleset, published ports, and
 *                with "dns" (allowed domains) the VM's resolver vmsan-dns
 *   apply-rules  replace the VM's ruleset atomically (live policy change),
 *                and start, update or stop its resolver
 *   teardown     remove all of it; idempotent
 *   verify       list every leftover for an id
 *
 * It trusts nothing in its request: the id is validated before it names
 * anything, rulesets pass nft_ruleset_check(), published host ports below
 * 1024 need a root caller, and nftables work touches only tables named
 * vmsan.  It works in whatever network namespace it is started in (that
 * namespace is "the host"), and creates runtime state under /run/vmsan.
 * Everything a failed setup made is removed before it replies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/fsuid.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <linux/if.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <net/if_arp.h>
#include <linux/if_tun.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/tbf.h>
#include <netlink/route/route.h>

#include "lib/caller.h"
#include "lib/claim.h"
#include "lib/netplan.h"
#include "lib/nft.h"
#include "lib/policy.h"
#include "lib/rootconf.h"

#define RUN_DIR "/run/vmsan"
#define NET_DIR RUN_DIR "/net"
#define NETNS_DIR "/run/netns"
#define SLOT_MAP RUN_DIR "/slots"
#define HOST_LOCK RUN_DIR "/host.lock"

struct vmnet {
	char id[64];
	char netns[80];          /* vmsan-<id> */
	char nspath[128];        /* /run/netns/vmsan-<id> */
	long slot;               /* -1: none */
	char host_if[IFNAMSIZ];
	char host_addr[16], ns_addr[16];
	json_t *ports;           /* host ports published, [P...] */
	bool host_mode;          /* --no-netns: TAP vmst<slot> and table vmsan_<id> on the host */
	char table[32];          /* host mode: the VM's table */
	json_t *dns;             /* its resolver: {pid, start, resolver, resolverStart, upstreams, ttlMin,
				  * ttlMax, strict}, or NULL */
	long owner;              /* the uid it was set up for (0: root) */
};

static int orig_ns = -1;     /* the namespace we started in: "the host" */
static struct caller who;    /* who asked (the sudo user, or root) */
static struct rootconf conf; /* root's settings: per-user limit, port range */

#define LOCK_WAIT_MS 10000   /* the longest a lock is waited for */

/* ---- small utilities ---------------------------------------------------- */

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int enter_ns(const char *path, struct verr *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
		verr_sys(e, "ERR_NETNS", NULL, "cannot enter network namespace %s", path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void leave_ns(void)
{
	if (setns(orig_ns, CLONE_NEWNET) != 0)
		abort();        /* continuing in the wrong namespace is worse */
}

static struct nl_sock *rt_sock(struct verr *e)
{
	struct nl_sock *sk = nl_socket_alloc();

	if (!sk || nl_connect(sk, NETLINK_ROUTE) != 0) {
		verr_set(e, VMSAN_EXIT_SYS, "ERR_NETLINK", NULL, "cannot open a route netlink socket");
		if (sk)
			nl_socket_free(sk);
		return NULL;
	}
	return sk;
}

static int nlerr(struct verr *e, int err, const char *what, const char *name)
{
	verr_set(e, VMSAN_EXIT_SYS, "ERR_NETLINK", NULL, "cannot %s %s: %s", what, name,
		 nl_geterror(err));
	return -1;
}

static int link_index(struct nl_sock *sk, const char *name)
{
	struct rtnl_link *l = NULL;
	int idx = 0;

	if (rtnl_link_get_kernel(sk, 0, name, &l) == 0) {
		idx = rtnl_link_get_ifindex(l);
		rtnl_link_put(l);
	}
	return idx;
}

static int link_up(struct nl_sock *sk, const char *name, struct verr *e)
{
	struct rtnl_link *l = NULL, *change = rtnl_link_alloc();
	int err = rtnl_link_get_kernel(sk, 0, name, &l);

	if (err == 0) {
		rtnl_link_set_flags(change, IFF_UP);
		err = rtnl_link_change(sk, l, change, 0);
	}
	rtnl_link_put(change);
	if (l)
		rtnl_link_put(l);
	return err ? nlerr(e, err, "bring up", name) : 0;
}

static int add_addr(struct nl_sock *sk, const char *ifname, const char *addr, int plen,
		    struct verr *e)
{
	struct rtnl_addr *a = rtnl_addr_alloc();
	struct nl_addr *local = NULL;
	char cidr[32];
	int err;

	snprintf(cidr, sizeof(cidr), "%s/%d", addr, plen);
	err = nl_addr_parse(cidr, AF_INET, &local);
	if (!err) {
		rtnl_addr_set_ifindex(a, link_index(sk, ifname));
		rtnl_addr_set_local(a, local);
		err = rtnl_addr_add(sk, a, 0);
	}
	if (local)
		nl_addr_put(local);
	rtnl_addr_put(a);
	return err ? nlerr(e, err, "add address to", ifname) : 0;
}

static int add_default_route(struct nl_sock *sk, const char *ifname, const char *gw,
			     struct verr *e)
{
	struct rtnl_route *rt = rtnl_route_alloc();
	struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
	struct nl_addr *dst = NULL, *via = NULL;
	int err = nl_addr_parse("0.0.0.0/0", AF_INET, &dst);

	if (!err)
		err = nl_addr_parse(gw, AF_INET, &via);
	if (!err) {
		rtnl_route_set_family(rt, AF_INET);
		rtnl_route_set_dst(rt, dst);
		rtnl_route_nh_set_ifindex(nh, link_index(sk, ifname));
		rtnl_route_nh_set_gateway(nh, via);
		rtnl_route_add_nexthop(rt, nh);
		nh = NULL;
		err = rtnl_route_add(sk, rt, NLM_F_CREATE | NLM_F_EXCL);
	}
	if (nh)
		rtnl_route_nh_free(nh);
	if (dst)
		nl_addr_put(dst);
	if (via)
		nl_addr_put(via);
	rtnl_route_put(rt);
	return err ? nlerr(e, err, "add default route via", gw) : 0;
}

/* Token bucket on an interface's egress: rate in bytes/s. */
static int shape(struct nl_sock *sk, const char *ifname, long long mbit, struct verr *e)
{
	struct rtnl_qdisc *q = rtnl_qdisc_alloc();
	int rate = (int)(mbit * 1000000 / 8), burst = rate / 100 > 32768 ? rate / 100 : 32768;
	int err;

	rtnl_tc_set_ifindex(TC_CAST(q), link_index(sk, ifname));
	rtnl_tc_set_parent(TC_CAST(q), TC_H_ROOT);
	err = rtnl_tc_set_kind(TC_CAST(q), "tbf");
	if (!err) {
		rtnl_qdisc_tbf_set_rate(q, rate, burst, 0);
		err = rtnl_qdisc_tbf_set_limit_by_latency(q, 50000);   /* 50 ms, in microseconds */
	}
	if (!err)
		err = rtnl_qdisc_add(sk, q, NLM_F_CREATE | NLM_F_REPLACE);
	rtnl_qdisc_put(q);
	return err ? nlerr(e, err, "shape", ifname) : 0;
}

/* ---- runtime records and slots ----------------------------------------- */

static void vmnet_init(struct vmnet *v, const char *id)
{
	memset(v, 0, sizeof(*v));
	snprintf(v->id, sizeof(v->id), "%s", id);
	snprintf(v->netns, sizeof(v->netns), "vmsan-%s", id);
	snprintf(v->nspath, sizeof(v->nspath), NETNS_DIR "/%s", v->netns);
	v->slot = -1;
	v->owner = (long)who.uid;
}

static void vmnet_set_slot(struct vmnet *v, long slot)
{
	v->slot = slot;
	if (v->host_mode) {
		struct policy_target t;

		netplan_host_target(v->id, (unsigned)slot, &t, v->table, v->host_if, v->host_addr, v->ns_addr);
	} else {
		snprintf(v->host_if, sizeof(v->host_if), NET_HOST_PREFIX "%ld", slot);
		netplan_slot_addrs((unsigned)slot, v->host_addr, v->ns_addr);
	}
}

static int ensure_dirs(struct verr *e)
{
	if ((mkdir(RUN_DIR, 0755) && errno != EEXIST) || (mkdir(NET_DIR, 0700) && errno != EEXIST)) {
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot create " NET_DIR);
		return -1;
	}
	return 0;
}

/* The lock, waited for LOCK_WAIT_MS at most: a holder stopped by its
 * caller (SIGSTOP through sudo) makes the others fail with ERR_BUSY
 * instead of hanging every user's VMs.  Holders keep it for a few
 * system calls (slot bitmap and record; the host table's creation). */
static int lock_file(const char *path, struct verr *e)
{
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0) {
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot open %s", path);
		return -1;
	}
	for (int waited = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; waited += 5) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			verr_sys(e, "ERR_RUNTIME", NULL, "cannot lock %s", path);
			close(fd);
			return -1;
		}
		if (waited >= LOCK_WAIT_MS) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_BUSY", "try again; if it persists, look for a stopped vmsan-net",
				 "%s has been held for %d s by another vmsan-net", path, LOCK_WAIT_MS / 1000);
			close(fd);
			return -1;
		}
		usleep(5000);
	}
	return fd;
}

static int record_write(const struct vmnet *v, struct verr *e);

/* A bitmap of NET_SLOTS bits under an flock, followed by a cursor: slots
 * are handed out next-fit, so a slot just freed is not handed out again
 * until the others have been.  A namespace's destruction is asynchronous
 * in the kernel and keeps its veth's host end vmsh<N> for tens of ms;
 * first-fit reused that slot at once and had to delete the link itself,
 * waiting out the same RCU grace periods (38 ms measured).  Two setups
 * never share a slot.  The runtime record is written before the lock is
 * let go, so under that lock a taken slot without a record is a leftover
 * (what sweep relies on). */
#define SLOT_CURSOR_OFF (NET_SLOTS / 8)
static long slot_take(struct vmnet *v, struct verr *e)
{
	unsigned char map[NET_SLOTS / 8];
	uint32_t cursor = 0;
	int fd = lock_file(SLOT_MAP, e);
	ssize_t n;
	long slot = -1;

	if (fd < 0)
		return -1;
	memset(map, 0, sizeof(map));
	n = pread(fd, map, sizeof(map), 0);
	if (n < 0) {
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot read " SLOT_MAP);
		goto out;
	}
	if (pread(fd, &cursor, sizeof cursor, SLOT_CURSOR_OFF) != (ssize_t)sizeof cursor || cursor >= NET_SLOTS)
		cursor = 0;
	for (long k = 0; k < NET_SLOTS && slot < 0; k++) {
		long c = ((long)cursor + k) % NET_SLOTS;

		if (!(map[c / 8] & (1 << (c % 8)))) {
			slot = c;
			map[c / 8] |= (unsigned char)(1 << (c % 8));
		}
	}
	if (slot < 0) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_NETWORK_SLOTS_EXHAUSTED",
			 "remove VMs you no longer need", "all %d network slots are in use", NET_SLOTS);
		goto out;
	}
	cursor = (uint32_t)((slot + 1) % NET_SLOTS);
	if (pwrite(fd, &map[slot / 8], 1, slot / 8) != 1 ||
	    pwrite(fd, &cursor, sizeof cursor, SLOT_CURSOR_OFF) != (ssize_t)sizeof cursor) {
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot write " SLOT_MAP);
		slot = -1;
	} else {
		vmnet_set_slot(v, slot);
		if (record_write(v, e) != 0) {
			map[slot / 8] &= (unsigned char)~(1 << (slot % 8));
			(void)!pwrite(fd, &map[slot / 8], 1, slot / 8);
			v->slot = slot = -1;
		}
	}
out:
	close(fd);
	return slot;
}

static void slot_free(long slot)
{
	struct verr e = {0};
	unsigned char byte = 0;
	int fd;

	if (slot < 0 || slot >= NET_SLOTS || (fd = lock_file(SLOT_MAP, &e)) < 0)
		return;
	if (pread(fd, &byte, 1, slot / 8) == 1) {
		byte &= (unsigned char)~(1 << (slot % 8));
		if (pwrite(fd, &byte, 1, slot / 8) != 1)
			fprintf(stderr, "vmsan-net: cannot free slot %ld\n", slot);
	}
	close(fd);
}

static int record_path(char *buf, size_t n, const char *id)
{
	return snprintf(buf, n, NET_DIR "/%s.json", id) < (int)n ? 0 : -1;
}

static int record_write(const struct vmnet *v, struct verr *e)
{
	char path[160], tmp[170];
	json_t *rec = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:o, s:b, s:I}", "id", v->id, "netns", v->netns,
				"slot", (int)v->slot, "hostIf", v->host_if, "hostAddr", v->host_addr,
				"nsAddr", v->ns_addr, "ports", v->ports ? json_incref(v->ports) : json_array(), "hostMode",
				v->host_mode, "owner", (json_int_t)v->owner);
	int rc;

	if (v->dns)
		json_object_set(rec, "dns", v->dns);
	record_path(path, sizeof(path), v->id);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	rc = json_dump_file(rec, tmp, JSON_COMPACT);
	json_decref(rec);
	if (rc != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot write %s", path);
		return -1;
	}
	return 0;
}

/* Fills v from the runtime record, if there is one (0: none).  The
 * record is root's (NET_DIR is 0700): what it says is trusted. */
static int record_read(struct vmnet *v)
{
	char path[160];
	json_t *rec, *slot;

	record_path(path, sizeof(path), v->id);
	rec = json_load_file(path, 0, NULL);
	if (!rec)
		return 0;
	v->host_mode = json_is_true(json_object_get(rec, "hostMode"));
	/* a record without an owner is root's */
	v->owner = json_is_integer(json_object_get(rec, "owner")) ? (long)json_integer_value(json_object_get(rec, "owner")) : 0;
	slot = json_object_get(rec, "slot");
	if (json_is_integer(slot) && json_integer_value(slot) >= 0 &&
	    json_integer_value(slot) < NET_SLOTS)
		vmnet_set_slot(v, (long)json_integer_value(slot));
	if (json_is_array(json_object_get(rec, "ports")))
		v->ports = json_incref(json_object_get(rec, "ports"));
	if (json_is_object(json_object_get(rec, "dns")))
		v->dns = json_incref(json_object_get(rec, "dns"));
	json_decref(rec);
	return 1;
}

/* May the caller act on id?  Root may; anyone else only on what is
 * theirs: the id's claim (claim.h) and its network record both name
 * them, or neither exists.  1: yes, there is a record; 0: yes, none;
 * -1: ERR_NOT_OWNER.  v is filled from the record. */
static int owned(struct vmnet *v, struct verr *e)
{
	int had = record_read(v);

	if (claim_check(v->id, &who, e) < 0)
		return -1;
	if (had && !who.root && v->owner != (long)who.uid) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_NOT_OWNER", "act on your own VMs only",
			 "the network of %s is not yours (it belongs to another user)", v->id);
		return -1;
	}
	return had;
}

/* ---- the namespace --------------------------------------------------- */

/* As iproute2 does: /run/netns is a shared mount, so a namespace bound
 * there is visible to every mount namespace that shares it. */
static int netns_dir(struct verr *e)
{
	if (mkdir(NETNS_DIR, 0755) && errno != EEXIST)
		goto fail;
	if (mount("", NETNS_DIR, "none", MS_SHARED | MS_REC, NULL) == 0)
		return 0;
	if (errno != EINVAL)
		goto fail;
	if (mount(NETNS_DIR, NETNS_DIR, "none", MS_BIND | MS_REC, NULL) == 0 &&
	    mount("", NETNS_DIR, "none", MS_SHARED | MS_REC, NULL) == 0)
		return 0;
fail:
	verr_sys(e, "ERR_NETNS", NULL, "cannot prepare " NETNS_DIR);
	return -1;
}

static int netns_create(struct vmnet *v, struct verr *e)
{
	int fd;

	if (netns_dir(e))
		return -1;
	fd = open(v->nspath, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
	if (fd < 0) {
		if (errno == EEXIST)
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_NETNS_EXISTS",
				 "run vmsan-net teardown for this id first",
				 "network namespace %s already exists", v->netns);
		else
			verr_sys(e, "ERR_NETNS", NULL, "cannot create %s", v->nspath);
		return -1;
	}
	close(fd);
	if (unshare(CLONE_NEWNET) != 0) {
		verr_sys(e, "ERR_NETNS", NULL, "cannot create a network namespace");
		unlink(v->nspath);
		return -1;
	}
	if (mount("/proc/self/ns/net", v->nspath, "none", MS_BIND, NULL) != 0) {
		verr_sys(e, "ERR_NETNS", NULL, "cannot bind %s", v->nspath);
		leave_ns();
		unlink(v->nspath);
		return -1;
	}
	leave_ns();
	return 0;
}

static int netns_exists(const struct vmnet *v)
{
	return access(v->nspath, F_OK) == 0;
}

static void netns_delete(const struct vmnet *v)
{
	if (umount2(v->nspath, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
		fprintf(stderr, "vmsan-net: cannot unmount %s: %s\n", v->nspath, strerror(errno));
	unlink(v->nspath);
}

/* ---- setup ------------------------------------------------------------- */

/* The TAP's own MAC: the same in every VM, as the guest's addresses are,
 * so that a guest restored from a snapshot into another namespace finds
 * its gateway at the address its ARP cache holds. */
static int tap_mac(const char *name, struct verr *e)
{
	static const unsigned char mac[6] = { 0x06, 0x00, 0xac, 0x10, 0x00, 0x01 };
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
	memcpy(ifr.ifr_hwaddr.sa_data, mac, sizeof mac);
	if (fd < 0 || ioctl(fd, SIOCSIFHWADDR, &ifr) != 0) {
		verr_sys(e, "ERR_TAP", NULL, "cannot set the MAC address of %s", name);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int make_tap(const char *name, long owner, struct verr *e)
{
	struct ifreq ifr = {0};
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		verr_sys(e, "ERR_TAP", "check 'vmsan doctor' (tun)", "cannot open /dev/net/tun");
		return -1;
	}
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) != 0 || ioctl(fd, TUNSETPERSIST, 1) != 0 ||
	    (owner >= 0 && ioctl(fd, TUNSETOWNER, owner) != 0)) {
		verr_sys(e, "ERR_TAP", NULL, "cannot create TAP %s", name);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void delete_link(const char *name);

/* The host's own 127.0.0.1:P reaches published ports: a packet from a
 * loopback source may leave through a VM's host-side link (and only
 * those: the host table masquerades it; a VM's packets to 127/8 arriving
 * there meet the input chain's drop). */
static int route_localnet(const char *ifname, struct verr *e)
{
	char path[96];

	snprintf(path, sizeof path, "/proc/sys/net/ipv4/conf/%s/route_localnet", ifname);
	if (write_file(path, "1") != 0) {
		verr_sys(e, "ERR_SYSCTL", NULL, "cannot set %s", path);
		return -1;
	}
	return 0;
}

/* No IPv6 on a VM link: no address (not even link-local), no router
 * advertisement taken; set before the link goes up.  A kernel without
 * IPv6 has nothing to disable. */
static int no_ipv6(const char *ifname, struct verr *e)
{
	static const char *const knobs[][2] = { { "accept_ra", "0" }, { "disable_ipv6", "1" } };
	char path[96];

	if (access("/proc/sys/net/ipv6", F_OK) != 0 && errno == ENOENT)
		return 0;
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "/proc/sys/net/ipv6/conf/%s/%s", ifname, knobs[i][0]);
		if (write_file(path, knobs[i][1]) != 0) {
			verr_sys(e, "ERR_SYSCTL", NULL, "cannot set %s", path);
			return -1;
		}
	}
	return 0;
}

static int host_side(struct vmnet *v, struct verr *e)
{
	struct nl_sock *sk = rt_sock(e);
	struct rtnl_link *veth = NULL, *peer;
	int nsfd = -1, err, rc = -1;

	if (!sk)
		return -1;
	nsfd = open(v->nspath, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0) {
		verr_sys(e, "ERR_NETNS", NULL, "cannot open %s", v->nspath);
		goto out;
	}
	/* The peer is born inside the VM's namespace: its fixed name never
	 * meets another VM's. */
	veth = rtnl_link_veth_alloc();
	peer = rtnl_link_veth_get_peer(veth);
	/* The slot is ours (the bitmap says so): a vmsh<slot> still present
	 * belongs to a namespace the kernel is still destroying. */
	if (link_index(sk, v->host_if))
		delete_link(v->host_if);
	rtnl_link_set_name(veth, v->host_if);
	rtnl_link_set_name(peer, NET_UPLINK);
	rtnl_link_set_ns_fd(peer, nsfd);
	rtnl_link_put(peer);
	err = rtnl_link_add(sk, veth, NLM_F_CREATE | NLM_F_EXCL);
	if (err) {
		nlerr(e, err, "create veth", v->host_if);
		goto out;
	}
	if (no_ipv6(v->host_if, e))
		goto out;
	if (add_addr(sk, v->host_if, v->host_addr, NET_LINK_PREFIXLEN, e) || link_up(sk, v->host_if, e))
		goto out;
	if (route_localnet(v->host_if, e))
		goto out;
	/* Strict reverse path: from vmsh<N> only the slot's own address (a
	 * caller's ruleset that leaves the guest unmasqueraded, or spoofs
	 * another VM's address, gets nothing out). */
	{
		char path[96];

		snprintf(path, sizeof path, "/proc/sys/net/ipv4/conf/%s/rp_filter", v->host_if);
		if (write_file(path, "1") != 0) {
			verr_sys(e, "ERR_SYSCTL", NULL, "cannot set %s", path);
			goto out;
		}
	}
	rc = 0;
out:
	if (veth)
		rtnl_link_veth_release(veth);
	if (nsfd >= 0)
		close(nsfd);
	nl_socket_free(sk);
	return rc;
}

static int ns_side(struct vmnet *v, long owner, long long mbit, json_t *ruleset, struct verr *e)
{
	struct nl_sock *sk;
	int rc = -1;

	if (enter_ns(v->nspath, e))
		return -1;
	sk = rt_sock(e);
	if (!sk)
		goto out;
	/* No IPv6 in the namespace: every link there now and later (the
	 * defaults), and each of ours by name, before any goes up. */
	if (no_ipv6("all", e) || no_ipv6("default", e) || no_ipv6("lo", e) || no_ipv6(NET_UPLINK, e))
		goto out;
	if (link_up(sk, "lo", e) || link_up(sk, NET_UPLINK, e) ||
	    add_addr(sk, NET_UPLINK, v->ns_addr, NET_LINK_PREFIXLEN, e) ||
	    add_default_route(sk, NET_UPLINK, v->host_addr, e) ||
	    make_tap(NET_TAP, owner, e) || tap_mac(NET_TAP, e) || no_ipv6(NET_TAP, e) ||
	    add_addr(sk, NET_TAP, NET_TAP_ADDR, NET_LINK_PREFIXLEN, e) || link_up(sk, NET_TAP, e))
		goto out;
	if (write_file("/proc/sys/net/ipv4/ip_forward", "1") != 0) {
		verr_sys(e, "ERR_SYSCTL", NULL, "cannot enable forwarding in %s", v->netns);
		goto out;
	}
	/* Both directions: the TAP's egress is the guest's download, the
	 * uplink's egress its upload. */
	if (mbit && (shape(sk, NET_TAP, mbit, e) || shape(sk, NET_UPLINK, mbit, e)))
		goto out;
	if (nft_ruleset_apply(ruleset, false, e))
		goto out;
	rc = 0;
out:
	if (sk)
		nl_socket_free(sk);
	leave_ns();
	return rc;
}

static int host_table(struct verr *e)
{
	json_t *rs = netplan_host_ruleset();
	int lock, rc = -1;

	if (nft_ruleset_check(rs, e) == 0 && (lock = lock_file(HOST_LOCK, e)) >= 0) {
		rc = nft_ruleset_apply(rs, true, e);
		close(lock);
	}
	json_decref(rs);
	if (rc == 0 && write_file("/proc/sys/net/ipv4/ip_forward", "1") != 0) {
		verr_sys(e, "ERR_SYSCTL", NULL, "cannot enable IPv4 forwarding");
		rc = -1;
	}
	return rc;
}

/* Published host ports: validated, and for a caller other than root
 * within root.conf's publish-ports (default 1024-65535). */
static json_t *host_ports(json_t *ports, struct verr *e)
{
	json_t *out = json_array(), *p;
	size_t i, k;

	json_array_foreach(ports, i, p) {
		long long n = json_is_integer(p) ? json_integer_value(p) : 0;

		if (n < 1 || n > 65535) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", NULL,
				 "request.publishedPorts[%zu]: expected a port 1-65535", i);
			goto fail;
		}
		if (!who.root && (n < conf.port_min || n > conf.port_max)) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_PORT_RANGE", "publish a port in that range (root.conf's publish-ports)",
				 "request.publishedPorts[%zu]: port %lld: users may publish %u-%u only", i, n, conf.port_min,
				 conf.port_max);
			goto fail;
		}
		for (k = 0; k < json_array_size(out); k++)
			if (json_integer_value(json_array_get(out, k)) == n) {
				verr_set(e, VMSAN_EXIT_USAGE, "ERR_PORT_DUPLICATE", NULL,
					 "request.publishedPorts[%zu]: port %lld is listed twice", i, n);
				goto fail;
			}
		json_array_append_new(out, json_integer(n));
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

/* The TCP ports something listens on in the host's namespace, on any
 * address, IPv4 or IPv6, as the kernel's socket table has them
 * (NETLINK_SOCK_DIAG, what ss(8) reads): a bitmap of 65536.  Asking the
 * kernel which sockets listen is exact and changes nothing, where trying
 * to bind() each port would be fooled by SO_REUSEPORT and could itself
 * take the port from a service starting at that moment. */
static int host_listeners(unsigned char map[65536 / 8], struct verr *e)
{
	static const int families[] = { AF_INET, AF_INET6 };
	struct timeval tv = { 5, 0 };
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG), rc = -1;
	static char buf[65536];

	if (fd < 0) {
		verr_sys(e, "ERR_NETLINK", NULL, "cannot open a sock_diag netlink socket");
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	memset(map, 0, 65536 / 8);
	for (size_t f = 0; f < 2; f++) {
		struct {
			struct nlmsghdr h;
			struct inet_diag_req_v2 r;
		} req = {
			.h = { .nlmsg_len = sizeof req, .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			       .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = (uint32_t)f + 1 },
			.r = { .sdiag_family = (uint8_t)families[f], .sdiag_protocol = IPPROTO_TCP,
			       .idiag_states = 1u << TCP_LISTEN },
		};
		bool done = false;

		if (send(fd, &req, sizeof req, 0) != (ssize_t)sizeof req)
			goto fail;
		while (!done) {
			ssize_t n = recv(fd, buf, sizeof buf, 0);

			if (n <= 0)
				goto fail;
			for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
				if (h->nlmsg_seq != req.h.nlmsg_seq)
					continue;
				if (h->nlmsg_type == NLMSG_DONE) {
					done = true;
					break;
				}
				if (h->nlmsg_type == NLMSG_ERROR) {
					const struct nlmsgerr *ne = NLMSG_DATA(h);

					/* no IPv6 in this kernel: no IPv6 listeners */
					if (families[f] == AF_INET6 && (ne->error == -ENOENT || ne->error == -EAFNOSUPPORT)) {
						done = true;
						break;
					}
					errno = -ne->error;
					goto fail;
				}
				if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY && h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
					unsigned port = ntohs(((const struct inet_diag_msg *)NLMSG_DATA(h))->id.idiag_sport);

					map[port / 8] |= (unsigned char)(1 << (port % 8));
				}
			}
		}
	}
	rc = 0;
fail:
	if (rc)
		verr_sys(e, "ERR_NETLINK", NULL, "cannot list the host's listening sockets");
	close(fd);
	return rc;
}

/* A published port must not take over a service of the host: refused
 * when something in the host's namespace already listens on it (the
 * host table DNATs it for every local address, 127.0.0.1 included). */
static int ports_free(json_t *ports, struct verr *e)
{
	static unsigned char map[65536 / 8];
	size_t i;
	json_t *p;

	if (!json_array_size(ports))
		return 0;
	if (host_listeners(map, e))
		return -1;
	json_array_foreach(ports, i, p) {
		unsigned n = (unsigned)json_integer_value(p);

		if (map[n / 8] & (1 << (n % 8))) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_PORT_IN_USE", "publish another host port",
				 "host port %u: a service of this host listens on it (publishing it would divert its "
				 "connections into the VM)", n);
			return -1;
		}
	}
	return 0;
}

/* A VM's ruleset: valid, for the one table a VM namespace holds, and
 * with the IPv6 guard (which no caller may leave out or loosen: it is
 * added when absent, and anything else in its place is refused). */
static int check_vm_ruleset(json_t *ruleset, struct verr *e)
{
	json_t *guard = netplan_ip6_guard(NULL), *ip6;
	int rc = -1;

	if (nft_ruleset_check(ruleset, e))
		goto out;
	if (strcmp(json_string_value(json_object_get(ruleset, "table")), NET_TABLE)) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_RULESET", NULL, "ruleset.table must be '%s'", NET_TABLE);
		goto out;
	}
	ip6 = json_object_get(ruleset, "ip6");
	if (ip6 && !json_equal(ip6, guard)) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_RULESET", "give the ruleset of vmsan-nftables compile",
			 "ruleset.ip6: a VM's namespace drops all IPv6; it cannot be changed");
		goto out;
	}
	if (!ip6)
		json_object_set(ruleset, "ip6", guard);
	rc = 0;
out:
	json_decref(guard);
	return rc;
}

static void teardown(struct vmnet *v);

/* --no-netns: the VM's rules for the host's namespace, compiled here from
 * the policy (never taken from the caller: they apply to the host) and
 * scoped to the VM's TAP.  Its published host ports go to *hports. */
static json_t *host_ruleset(const struct vmnet *v, json_t *policy, json_t **hports, struct verr *e)
{
	struct policy_target t;
	char table[32], tap[16], host[16], guest[16];
	struct jr pr;
	json_t *c, *x, *list;
	size_t i;

	netplan_host_target(v->id, v->slot >= 0 ? (unsigned)v->slot : 0, &t, table, tap, host, guest);
	jr_init(&pr, policy, "policy", e);
	c = policy_compile(&pr, &t, e);
	if (!c)
		return NULL;
	list = json_array();
	json_array_foreach(json_object_get(c, "publishedPorts"), i, x)
		json_array_append(list, json_array_get(x, 0));
	*hports = host_ports(list, e);
	json_decref(list);
	if (!*hports) {
		json_decref(c);
		return NULL;
	}
	x = json_incref(json_object_get(c, "ruleset"));
	json_decref(c);
	return x;
}

/* --no-netns: TAP vmst<slot> in the host's namespace with the slot's .1,
 * owned by the VMM's uid (a TAP without an owner would be anyone's to
 * attach to here), and route_localnet for the host's 127.0.0.1. */
static int host_tap(struct vmnet *v, long owner, struct verr *e)
{
	struct nl_sock *sk = rt_sock(e);
	int rc = -1;

	if (!sk)
		return -1;
	if (link_index(sk, v->host_if))
		delete_link(v->host_if);
	if (make_tap(v->host_if, owner, e) || no_ipv6(v->host_if, e) ||
	    add_addr(sk, v->host_if, v->host_addr, NET_LINK_PREFIXLEN, e) || link_up(sk, v->host_if, e))
		goto out;
	if (route_localnet(v->host_if, e))
		goto out;
	rc = 0;
out:
	nl_socket_free(sk);
	return rc;
}

/* ---- the resolver of allowed domains (vmsan-dns) ------------------------- */

#define DNS_CTL "vmsan-dns-ctl"

/* request.dns: {"domains":[...], "upstreams":[IP...], "ttlMin", "ttlMax",
 * "strict":BOOL, "log":PATH}; checked whole before anything is made.  The ruleset must
 * hold the set the resolver fills. */
static int dns_check(json_t *dns, json_t *ruleset, struct verr *e)
{
	struct jr r;
	json_t *doms, *ups, *x, *set;
	long long lo = 30, hi = 3600;
	size_t i;
	char why[200];

	jr_init(&r, dns, "request.dns", e);
	doms = jr_array(&r, "domains", JR_REQUIRED, 16384);
	ups = jr_array(&r, "upstreams", JR_REQUIRED, 3);
	jr_int(&r, "ttlMin", JR_OPTIONAL, 1, 86400, &lo);
	jr_int(&r, "ttlMax", JR_OPTIONAL, 1, 86400, &hi);
	bool strict = false;
	jr_bool(&r, "strict", JR_OPTIONAL, &strict);
	const char *log = jr_string(&r, "log", JR_OPTIONAL, NULL);
	if (jr_end(&r))
		return -1;
#define BADF(...) (verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", NULL, __VA_ARGS__), -1)
	if (!json_array_size(doms) || !json_array_size(ups))
		return BADF("request.dns: domains and upstreams may not be empty");
	json_array_foreach(doms, i, x)
		if (!json_is_string(x) || valid_domain(json_string_value(x), why, sizeof why))
			return BADF("request.dns.domains[%zu]: %s", i, json_is_string(x) ? why : "expected a string");
	json_array_foreach(ups, i, x)
		if (!json_is_string(x) || valid_ipv4(json_string_value(x), why, sizeof why))
			return BADF("request.dns.upstreams[%zu]: expected an IPv4 address", i);
	if (lo > hi)
		return BADF("request.dns: ttlMin %lld is above ttlMax %lld", lo, hi);
	if (log && (log[0] != '/' || strstr(log, "/../") || strlen(log) > 1024))
		return BADF("request.dns.log: expected an absolute path");
	set = NULL;
	json_array_foreach(json_object_get(ruleset, "sets"), i, x)
		if (!strcmp(json_string_value(json_object_get(x, "name")), NET_DNS_SET) &&
		    !strcmp(json_string_value(json_object_get(x, "key")), "ipv4_addr"))
			set = x;
	if (!set)
		return BADF("request.dns: the ruleset has no set %s (compile the policy with its allowedDomains)",
			    NET_DNS_SET);
#undef BADF
	return 0;
}

/* The resolver's process (DNS_SETTER, the pid vmsan-dns answered with)
 * or its child (DNS_RESOLVER), when the record names it and it still
 * runs (same start time, not a zombie); else 0. */
enum { DNS_SETTER, DNS_RESOLVER };
static long dns_proc(const struct vmnet *v, int which)
{
	static const char *const keys[2][2] = { { "pid", "start" }, { "resolver", "resolverStart" } };
	long long pid = v->dns ? json_integer_value(json_object_get(v->dns, keys[which][0])) : 0;

	return pid > 0 && proc_start_time((long)pid) == json_integer_value(json_object_get(v->dns, keys[which][1])) ?
		       (long)pid : 0;
}

static bool dns_alive(const struct vmnet *v)
{
	return dns_proc(v, DNS_SETTER) > 0;
}

/* Ends the VM's resolver: its two processes killed and dead (zombies at
 * most: their sockets closed) before this returns, so that a new one can
 * bind the same ports at once.  The resolver dies with the setter
 * (PDEATHSIG), but not at once: it is killed and waited for too. */
static void dns_stop(struct vmnet *v)
{
	for (int k = DNS_SETTER; k <= DNS_RESOLVER; k++) {
		long pid = dns_proc(v, k);
		if (pid)
			kill((pid_t)pid, SIGKILL);
	}
	for (int i = 0; i < 400 && (dns_proc(v, DNS_SETTER) || dns_proc(v, DNS_RESOLVER)); i++)
		usleep(5000);
	json_decref(v->dns);
	v->dns = NULL;
}

/* The log, opened as the caller (caller_open: their fsuid, fsgid and
 * groups, no symlink, no FIFO or device: a regular file, or one they
 * create), so that naming a path never lets them make root write (or
 * create) anything they could not: -1 if none was asked for. */
static int dns_log_open(const char *path, struct verr *e)
{
	int fd;

	if (!path)
		return -1;
	fd = caller_open(&who, AT_FDCWD, path, O_WRONLY | O_APPEND | O_CREAT | O_NOCTTY, 0640, CALLER_REG,
			 "request.dns.log", e);
	if (fd < 0 && !verr_isset(e))
		verr_sys(e, "ERR_DNS_LOG", "check the VM's directory", "cannot open the DNS log %s", path);
	return fd;
}

/* vmsan-dns started in the VM's namespace; v->dns says which process. */
static int dns_start(struct vmnet *v, json_t *dns, struct verr *e)
{
	char self[PATH_MAX], line[1024];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 16);
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, logfd;
	long long lo = 30, hi = 3600;
	pid_t pid;
	size_t len = 0;
	json_t *cfg, *st = NULL;
	char *text;

	if (n <= 0 || !memchr(self, '/', (size_t)n)) {
		verr_sys(e, "ERR_DNS", NULL, "cannot find vmsan-dns");
		return -1;
	}
	self[n] = 0;
	strcpy(strrchr(self, '/') + 1, "vmsan-dns");
	if (json_is_integer(json_object_get(dns, "ttlMin")))
		lo = json_integer_value(json_object_get(dns, "ttlMin"));
	if (json_is_integer(json_object_get(dns, "ttlMax")))
		hi = json_integer_value(json_object_get(dns, "ttlMax"));
	logfd = dns_log_open(json_string_value(json_object_get(dns, "log")), e);
	if (logfd < 0 && verr_isset(e))
		return -1;
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) {
		verr_sys(e, "ERR_DNS", NULL, "cannot start vmsan-dns");
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		verr_sys(e, "ERR_DNS", NULL, "cannot start vmsan-dns");
		goto fail;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		struct verr ignore = {0};

		setsid();
		if (enter_ns(v->nspath, &ignore) || dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || null < 0 ||
		    dup2(null, 2) < 0 || (logfd >= 0 ? dup2(logfd, 3) : close(3) * 0) < 0)
			_exit(127);
		closefrom(4);
		signal(SIGPIPE, SIG_DFL);
		execl(self, "vmsan-dns", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	in[0] = out[1] = -1;
	cfg = json_pack("{s:s, s:I, s:I, s:O, s:O, s:I, s:I, s:b}", "id", v->id, "uid",
			(json_int_t)(NET_DNS_UID_BASE + (unsigned)v->slot), "gid",
			(json_int_t)(NET_DNS_UID_BASE + (unsigned)v->slot), "upstreams", json_object_get(dns, "upstreams"),
			"domains", json_object_get(dns, "domains"), "ttlMin", lo, "ttlMax", hi, "strict",
			json_is_true(json_object_get(dns, "strict")));
	text = json_dumps(cfg, JSON_COMPACT);
	json_decref(cfg);
	if (text) {
		size_t tl = strlen(text), off = 0;
		ssize_t w;

		while (off < tl && (w = write(in[1], text + off, tl - off)) > 0)
			off += (size_t)w;
		free(text);
	}
	close(in[1]);
	in[1] = -1;
	/* its one line, within 5 s */
	for (struct pollfd pf = { out[0], POLLIN, 0 }; len < sizeof line - 1 && poll(&pf, 1, 5000) == 1;) {
		ssize_t r = read(out[0], line + len, sizeof line - 1 - len);

		if (r <= 0)
			break;
		len += (size_t)r;
		if (memchr(line, '\n', len))
			break;
	}
	line[len] = 0;
	st = json_loads(line, JSON_DISABLE_EOF_CHECK, NULL);
	if (!json_is_true(json_object_get(st, "ok")) ||
	    json_integer_value(json_object_get(st, "pid")) != pid) {
		const char *m = json_string_value(json_object_get(json_object_get(st, "error"), "message"));

		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_DNS", NULL, "vmsan-dns did not start: %s",
			 m ? m : len ? line : "no answer");
		goto fail;
	}
	json_decref(v->dns);
	json_int_t res = json_integer_value(json_object_get(st, "resolver"));
	v->dns = json_pack("{s:I, s:I, s:I, s:I, s:O, s:I, s:I, s:b}", "pid", (json_int_t)pid, "start",
			   (json_int_t)proc_start_time(pid), "resolver", res, "resolverStart",
			   (json_int_t)(res > 0 ? proc_start_time((long)res) : 0), "upstreams",
			   json_object_get(dns, "upstreams"), "ttlMin", lo, "ttlMax", hi, "strict",
			   json_is_true(json_object_get(dns, "strict")));
	json_decref(st);
	close(out[0]);
	if (logfd >= 0)
		close(logfd);
	return 0;
fail:
	json_decref(st);
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	if (logfd >= 0)
		close(logfd);
	return -1;
}

/* The running resolver given a new list (it re-syncs the set, which a
 * rules change has just replaced); -1 if it did not take it. */
static int dns_update(struct vmnet *v, json_t *domains, struct verr *e)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(DNS_CTL));
	struct timeval tv = { 5, 0 };
	struct ucred cr;
	socklen_t cl = sizeof cr;
	json_t *rq = json_pack("{s:O}", "domains", domains), *rep = NULL;
	char *text = json_dumps(rq, JSON_COMPACT), buf[4096];
	size_t len = 0;
	int fd = -1, rc = -1;

	json_decref(rq);
	memcpy(un.sun_path + 1, DNS_CTL, strlen(DNS_CTL));
	if (!text || enter_ns(v->nspath, e))
		goto out_nons;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* the server must be the resolver (it listened before it split: the
	 * setter's pid, as root), not something else in the namespace that
	 * bound the name first */
	if (fd < 0 || connect(fd, (struct sockaddr *)&un, sl) ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) || cr.uid != 0 ||
	    cr.pid != (pid_t)json_integer_value(json_object_get(v->dns, "pid")))
		goto out;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	for (size_t off = 0, tl = strlen(text); off < tl;) {
		ssize_t w = send(fd, text + off, tl - off, MSG_NOSIGNAL);
		if (w <= 0)
			goto out;
		off += (size_t)w;
	}
	shutdown(fd, SHUT_WR);
	for (ssize_t r; len < sizeof buf - 1 && (r = read(fd, buf + len, sizeof buf - 1 - len)) > 0;)
		len += (size_t)r;
	buf[len] = 0;
	rep = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
	rc = json_is_true(json_object_get(rep, "ok")) ? 0 : -1;
out:
	leave_ns();
out_nons:
	if (fd >= 0)
		close(fd);
	if (rc && !verr_isset(e))
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_DNS", NULL, "the resolver of %s did not take the new list%s%s", v->id,
			 json_string_value(json_object_get(rep, "error")) ? ": " : "",
			 json_string_value(json_object_get(rep, "error")) ?: "");
	json_decref(rep);
	free(text);
	return rc;
}

/* After the rules changed: the resolver as request.dns (NULL: none) says. */
static int dns_follow(struct vmnet *v, json_t *dns, struct verr *e)
{
	if (!dns) {
		dns_stop(v);
		return 0;
	}
	if (dns_alive(v) && json_equal(json_object_get(v->dns, "upstreams"), json_object_get(dns, "upstreams")) &&
	    json_integer_value(json_object_get(v->dns, "ttlMin")) ==
		    (json_object_get(dns, "ttlMin") ? json_integer_value(json_object_get(dns, "ttlMin")) : 30) &&
	    json_integer_value(json_object_get(v->dns, "ttlMax")) ==
		    (json_object_get(dns, "ttlMax") ? json_integer_value(json_object_get(dns, "ttlMax")) : 3600) &&
	    json_is_true(json_object_get(v->dns, "strict")) == json_is_true(json_object_get(dns, "strict"))) {
		struct verr ignore = {0};

		if (dns_update(v, json_object_get(dns, "domains"), &ignore) == 0)
			return 0;
	}
	/* none yet, other settings, or it did not answer: a new one */
	dns_stop(v);
	return dns_start(v, dns, e);
}

static json_t *op_setup(struct jr *r, struct verr *e)
{
	const char *id = jr_string(r, "id", JR_REQUIRED, valid_vm_id);
	bool host_mode = false;
	json_t *ruleset, *ports, *policy = NULL, *dns;
	long long mbit = 0, owner = -1;
	long slot;
	struct vmnet v;
	size_t i;
	json_t *p, *reply = NULL;
	bool claimed = false;

	jr_bool(r, "hostMode", JR_OPTIONAL, &host_mode);
	/* In a namespace of its own a VM's ruleset may come from the caller
	 * (vmsan-nftables): it touches nothing else.  On the host it is
	 * compiled here from the policy, ports included. */
	ruleset = jr_object(r, "ruleset", host_mode ? JR_OPTIONAL : JR_REQUIRED);
	policy = jr_object(r, "policy", host_mode ? JR_REQUIRED : JR_OPTIONAL);
	ports = jr_array(r, "publishedPorts", JR_OPTIONAL, 64);
	jr_int(r, "bandwidthMbit", JR_OPTIONAL, 1, 100000, &mbit);
	jr_int(r, "tapOwner", JR_OPTIONAL, 0, INT_MAX, &owner);
	dns = jr_object(r, "dns", JR_OPTIONAL);
	if (jr_end(r))
		return NULL;
	if (host_mode && dns) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "allowed domains need the VM's own namespace",
			 "request.dns: not with hostMode");
		return NULL;
	}
	if (host_mode && (ruleset || ports || mbit)) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "give the policy (its published ports included)",
			 "request.%s: not with hostMode (the host's rules are compiled here from the policy%s)",
			 ruleset ? "ruleset" : ports ? "publishedPorts" : "bandwidthMbit",
			 mbit ? "; shaping both directions needs the VM's namespace" : "");
		return NULL;
	}
	if (!host_mode && policy) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "give the ruleset of vmsan-nftables compile",
			 "request.policy: only with hostMode");
		return NULL;
	}
	if (!host_mode && check_vm_ruleset(ruleset, e))
		return NULL;
	if (dns && dns_check(dns, ruleset, e))
		return NULL;
	/* The TAP is for the caller's own VMM: only root names another uid. */
	if (owner >= 0 && !who.root && owner != (long long)who.uid) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_PERMISSION", "leave tapOwner out (it is yours)",
			 "request.tapOwner: %lld is not your uid", owner);
		return NULL;
	}
	vmnet_init(&v, id);
	v.host_mode = host_mode;
	if (host_mode) {
		/* checked before anything is made (slot 0 stands in) */
		json_t *rs = host_ruleset(&v, policy, &v.ports, e);

		if (!rs)
			goto fail_early;
		json_decref(rs);
	} else {
		v.ports = host_ports(ports, e);
	}
	if (!v.ports || ports_free(v.ports, e) || ensure_dirs(e))
		goto fail_early;
	{
		char path[160];
		struct vmnet old;
		int mine;

		vmnet_init(&old, id);
		mine = owned(&old, e);
		json_decref(old.ports);
		json_decref(old.dns);
		if (mine < 0)
			goto fail_early;
		record_path(path, sizeof(path), id);
		if (mine || access(path, F_OK) == 0 || netns_exists(&v)) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_NETNS_EXISTS", "run vmsan-net teardown for this id first",
				 "the network of %s is already set up", id);
			goto fail_early;
		}
	}
	/* The id is the caller's (a claim shared with vmsan-fc), within
	 * their limit of VMs; a claim made here goes again if setup fails. */
	claimed = claim_owner(id) < 0;
	if (claim_take(id, &who, conf.max_vms_per_user, e)) {
		claimed = false;
		goto fail_early;
	}
	slot = slot_take(&v, e);
	if (slot < 0)
		goto fail_early;
	/* From here on, the record says what to undo.  The TAP belongs to
	 * the VMM's uid, as vmsan create picks it (the sudo caller's, else
	 * root's per-slot one), in a namespace as on the host: the kernel
	 * then lets no other uid's VMM attach to it, so a caller who names
	 * another VM's namespace to vmsan-fc gets EPERM. */
	if (owner < 0)
		owner = !who.root ? (long long)who.uid : (long long)NET_VMM_UID_BASE + slot;
	if (host_mode) {
		json_t *rs, *hp = NULL;

		rs = host_ruleset(&v, policy, &hp, e);
		json_decref(hp);
		if (!rs || host_table(e) || host_tap(&v, (long)owner, e) || nft_ruleset_apply(rs, false, e)) {
			json_decref(rs);
			goto fail;
		}
		json_decref(rs);
	} else if (host_table(e) || netns_create(&v, e) || host_side(&v, e) ||
		   ns_side(&v, owner, mbit, ruleset, e)) {
		goto fail;
	}
	json_array_foreach(v.ports, i, p) {
		if (nft_map_port_addr(NET_TABLE, NET_PUB_MAP, (unsigned)json_integer_value(p),
				      v.ns_addr, true, e)) {
			if (verr_take(e, "ERR_NFT_EXISTS"))
				verr_set(e, VMSAN_EXIT_FAIL, "ERR_PORT_CONFLICT", "publish another host port",
					 "host port %lld is already published by another VM",
					 json_integer_value(p));
			/* Only ports this VM owns may be removed on the way out. */
			while (json_array_size(v.ports) > i)
				json_array_remove(v.ports, i);
			record_write(&v, &(struct verr){0});
			goto fail;
		}
	}
	/* The resolver last: it is the one thing here that runs on. */
	if (dns && (dns_start(&v, dns, e) || record_write(&v, e)))
		goto fail;
	if (host_mode)
		/* No namespace: the guest is the slot's .2 behind vmst<slot>,
		 * and the host reaches its agent there. */
		reply = json_pack("{s:n, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:O, s:b, s:s}",
				  "netns", "slot", (int)v.slot, "hostIf", v.host_if, "hostAddr", v.host_addr,
				  "agentAddr", v.ns_addr, "tap", v.host_if, "guestIp", v.ns_addr, "gatewayIp",
				  v.host_addr, "mac", NET_GUEST_MAC, "prefixLen", NET_LINK_PREFIXLEN, "publishedPorts",
				  v.ports, "hostMode", 1, "table", v.table);
	else
		reply = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:O}",
				  "netns", v.netns, "slot", (int)v.slot, "hostIf", v.host_if,
				  "hostAddr", v.host_addr, "agentAddr", v.ns_addr, "tap", NET_TAP,
				  "guestIp", NET_GUEST_ADDR, "gatewayIp", NET_TAP_ADDR, "mac", NET_GUEST_MAC,
				  "prefixLen", NET_LINK_PREFIXLEN, "publishedPorts", v.ports);
	if (v.dns)
		json_object_set_new(reply, "dnsPid", json_integer(json_integer_value(json_object_get(v.dns, "pid"))));
	json_decref(v.ports);
	json_decref(v.dns);
	return reply;
fail:
	teardown(&v);
fail_early:
	if (claimed)
		claim_release(id);
	json_decref(v.ports);
	json_decref(v.dns);
	return NULL;
}

/* ---- teardown and verify ------------------------------------------------ */

static void delete_link(const char *name)
{
	struct verr ignore = {0};
	struct nl_sock *sk = rt_sock(&ignore);
	struct rtnl_link *l = NULL;

	if (sk && rtnl_link_get_kernel(sk, 0, name, &l) == 0) {
		rtnl_link_delete(sk, l);
		rtnl_link_put(l);
	}
	if (sk)
		nl_socket_free(sk);
}

static void teardown(struct vmnet *v)
{
	struct verr ignore = {0};
	bool had_ns;
	size_t i;
	json_t *p;
	char path[160];

	json_array_foreach(v->ports, i, p)
		nft_map_port_addr(NET_TABLE, NET_PUB_MAP, (unsigned)json_integer_value(p),
				  NULL, false, &ignore);
	/* the resolver, so that the namespace goes with the VMM */
	dns_stop(v);
	if (v->host_mode) {
		/* --no-netns: the VM's table and its TAP, from the host. */
		if (v->slot >= 0) {
			nft_table_delete(v->table, &ignore);
			delete_link(v->host_if);
			slot_free(v->slot);
		}
		record_path(path, sizeof(path), v->id);
		unlink(path);
		return;
	}
	/* Deleting the namespace takes the TAP, the uplink, its veth peer on
	 * the host, the qdiscs and the VM's table with it. */
	had_ns = netns_exists(v);
	if (had_ns)
		netns_delete(v);
	/* When the namespace existed, its destruction (asynchronous, in the
	 * kernel) takes the veth pair with it; deleting the host end here
	 * would only wait for the same RCU grace periods.  Without it (a
	 * half-made setup), delete a host end that is there. */
	if (v->slot >= 0) {
		if (!had_ns)
			delete_link(v->host_if);
		slot_free(v->slot);
	}
	record_path(path, sizeof(path), v->id);
	unlink(path);
}

static json_t *op_teardown(struct jr *r, struct verr *e)
{
	const char *id = jr_string(r, "id", JR_REQUIRED, valid_vm_id);
	struct vmnet v;
	int had;

	if (jr_end(r))
		return NULL;
	vmnet_init(&v, id);
	had = owned(&v, e);
	if (had < 0) {
		json_decref(v.ports);
		json_decref(v.dns);
		return NULL;
	}
	/* Without a record, what is named for the id (a namespace a failed
	 * setup left) is removed for root only: it is nobody's to claim. */
	if (!had && who.root)
		had = netns_exists(&v);
	if (had)
		teardown(&v);
	json_decref(v.ports);
	json_decref(v.dns);
	return json_pack("{s:s, s:b}", "id", id, "removed", had);
}

static json_t *leftovers(const char *id, struct verr *e)
{
	struct vmnet v;
	json_t *left = json_array();
	struct nl_sock *sk;
	char path[160];

	vmnet_init(&v, id);
	record_path(path, sizeof(path), id);
	if (record_read(&v))
		json_array_append_new(left, json_sprintf("runtime record %s", path));
	if (netns_exists(&v))
		json_array_append_new(left, json_sprintf("network namespace %s", v.netns));
	if (dns_alive(&v))
		json_array_append_new(left, json_sprintf("resolver process %lld",
							 json_integer_value(json_object_get(v.dns, "pid"))));
	json_decref(v.dns);
	sk = rt_sock(e);
	if (sk && v.slot >= 0 && link_index(sk, v.host_if))
		json_array_append_new(left, json_sprintf("interface %s", v.host_if));
	if (v.host_mode && v.slot >= 0 && nft_table_exists(v.table, &(struct verr){0}) == 1)
		json_array_append_new(left, json_sprintf("table %s", v.table));
	if (sk)
		nl_socket_free(sk);
	if (v.slot >= 0) {
		unsigned char byte = 0;
		int fd = open(SLOT_MAP, O_RDONLY | O_CLOEXEC);

		if (fd >= 0 && pread(fd, &byte, 1, v.slot / 8) == 1 && (byte & (1 << (v.slot % 8))))
			json_array_append_new(left, json_sprintf("slot %ld", v.slot));
		if (fd >= 0)
			close(fd);
	}
	json_decref(v.ports);
	return left;
}

static json_t *op_verify(struct jr *r, struct verr *e)
{
	const char *id = jr_string(r, "id", JR_REQUIRED, valid_vm_id);
	json_t *left;

	struct vmnet v;
	int mine;

	if (jr_end(r))
		return NULL;
	vmnet_init(&v, id);
	mine = owned(&v, e);
	json_decref(v.ports);
	json_decref(v.dns);
	if (mine < 0)
		return NULL;
	left = leftovers(id, e);
	return json_pack("{s:s, s:b, s:o}", "id", id, "clean", json_array_size(left) == 0,
			 "leftovers", left);
}

static json_t *op_apply_rules(struct jr *r, struct verr *e)
{
	const char *id = jr_string(r, "id", JR_REQUIRED, valid_vm_id);
	json_t *ruleset = jr_object(r, "ruleset", JR_OPTIONAL);
	json_t *policy = jr_object(r, "policy", JR_OPTIONAL);
	json_t *dns = jr_object(r, "dns", JR_OPTIONAL);
	struct vmnet v;
	int rc;

	if (jr_end(r))
		return NULL;
	vmnet_init(&v, id);
	rc = owned(&v, e);
	if (rc < 0) {
		json_decref(v.ports);
		json_decref(v.dns);
		return NULL;
	}
	if (rc && v.host_mode) {
		json_decref(v.dns);
		if (dns) {
			json_decref(v.ports);
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "allowed domains need the VM's own namespace",
				 "request.dns: %s has no namespace of its own", id);
			return NULL;
		}
		json_t *rs = NULL, *hp = NULL;
		bool same;

		if (!policy || ruleset) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "give the policy",
				 "%s has no namespace of its own: its rules are compiled here from request.policy", id);
		} else {
			rs = host_ruleset(&v, policy, &hp, e);
		}
		/* Published ports are set at setup; a policy change keeps them. */
		same = rs && json_equal(hp, v.ports);
		json_decref(hp);
		json_decref(v.ports);
		if (!rs)
			return NULL;
		if (!same) {
			json_decref(rs);
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "keep the VM's published ports",
				 "request.policy.publishedPorts: they cannot change on a running VM");
			return NULL;
		}
		rc = nft_ruleset_apply(rs, false, e);
		json_decref(rs);
		return rc ? NULL : json_pack("{s:s, s:b}", "id", id, "applied", 1);
	}
	json_decref(v.ports);
	v.ports = NULL;
	json_t *reply = NULL;
	if (!ruleset || policy) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "give the ruleset of vmsan-nftables compile",
			 "request.ruleset is required (request.policy only for a VM without a namespace)");
		goto out;
	}
	if (check_vm_ruleset(ruleset, e) || (dns && dns_check(dns, ruleset, e)))
		goto out;
	if (!netns_exists(&v) || v.slot < 0) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VM_NOT_RUNNING", "set the network up first",
			 "%s has no network namespace", id);
		goto out;
	}
	if (enter_ns(v.nspath, e))
		goto out;
	rc = nft_ruleset_apply(ruleset, false, e);
	leave_ns();
	/* The new rules hold a new, empty set: the resolver (re)fills it
	 * with what its list still justifies, or goes with the list. */
	if (rc || dns_follow(&v, dns, e) || record_write(&v, e))
		goto out;
	reply = json_pack("{s:s, s:b}", "id", id, "applied", 1);
	if (v.dns)
		json_object_set_new(reply, "dnsPid", json_integer(json_integer_value(json_object_get(v.dns, "pid"))));
out:
	json_decref(v.dns);
	return reply;
}

/* ---- sweep: what no runtime record accounts for ------------------------ */

/* Every process whose network namespace is the one bound at nspath:
 * listed, and killed unless dry. */
static void kill_in_ns(const char *nspath, bool dry, json_t *found)
{
	struct stat ns, st;
	DIR *proc;
	struct dirent *d;

	if (stat(nspath, &ns) || !(proc = opendir("/proc")))
		return;
	while ((d = readdir(proc))) {
		char path[64], comm[32] = "";
		char *end;
		long pid = strtol(d->d_name, &end, 10);
		FILE *f;

		if (pid <= 1 || *end || pid == (long)getpid())
			continue;
		snprintf(path, sizeof path, "/proc/%ld/ns/net", pid);
		if (stat(path, &st) || st.st_ino != ns.st_ino || st.st_dev != ns.st_dev)
			continue;
		snprintf(path, sizeof path, "/proc/%ld/comm", pid);
		if ((f = fopen(path, "re"))) {
			if (fgets(comm, sizeof comm, f))
				comm[strcspn(comm, "\n")] = 0;
			fclose(f);
		}
		json_array_append_new(found, json_sprintf("process %ld (%s) in it", pid, comm));
		if (!dry)
			kill((pid_t)pid, SIGKILL);
	}
	closedir(proc);
}

struct sweep {
	json_t *owned;       /* nsAddr -> id, from the records */
	json_t *stale;       /* [{port, addr}] map elements no record owns */
	json_t *tables;      /* [name] VM tables no record owns */
};

/* vmsan_<id> (dashes as underscores): the table of a --no-netns VM. */
static void sweep_table(const char *name, void *arg)
{
	struct sweep *sw = arg;
	char id[64];
	size_t n = strlen(name);

	if (strncmp(name, "vmsan_", 6) || n - 6 >= sizeof id)
		return;
	memcpy(id, name + 6, n - 5);
	for (char *c = id; *c; c++)
		if (*c == '_')
			*c = '-';
	if (valid_vm_id(id, NULL, 0) == 0 && !json_object_get(sw->owned, id))
		json_array_append_new(sw->tables, json_string(name));
}

static void sweep_elem(unsigned port, const char *addr, void *arg)
{
	struct sweep *sw = arg;

	if (!json_object_get(sw->owned, addr))
		json_array_append_new(sw->stale, json_pack("{s:i, s:s}", "port", (int)port, "addr", addr));
}

/* Under the slot lock (setup writes its record before letting it go, and
 * teardown removes the record last), anything of ours that no runtime
 * record names is a leftover: a VM id's record lost, or a crash between
 * steps.  Found: taken slots without a record (their vmsh<N> link too),
 * vmsh<N> links of slots no record holds, vmsan-vm-* namespaces without a
 * record, and published-port elements pointing at no recorded VM. */
static json_t *op_sweep(struct jr *r, struct verr *e)
{
	bool dry = false;
	unsigned char map[NET_SLOTS / 8];
	struct sweep sw = { json_object(), json_array(), json_array() };
	json_t *found = json_array(), *slots = json_object(), *reply = NULL, *x;
	struct nl_sock *sk = NULL;
	struct nl_cache *links = NULL;
	struct dirent *d;
	DIR *dir;
	int lock;
	size_t i;

	jr_bool(r, "dryRun", JR_OPTIONAL, &dry);
	if (jr_end(r))
		goto out_nolock;
	/* It reads and removes every user's leftovers: root's job. */
	if (!who.root) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_PERMISSION", "ask root to run vmsan gc",
			 "sweep is for root only");
		goto out_nolock;
	}
	if (ensure_dirs(e) || (lock = lock_file(SLOT_MAP, e)) < 0)
		goto out_nolock;
	memset(map, 0, sizeof map);
	if (pread(lock, map, sizeof map, 0) < 0) {
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot read " SLOT_MAP);
		goto out;
	}
	/* The records: which slots and addresses are someone's. */
	if ((dir = opendir(NET_DIR))) {
		while ((d = readdir(dir))) {
			size_t n = strlen(d->d_name);
			char id[64];
			struct vmnet v;

			if (n <= 5 || n - 5 >= sizeof id || strcmp(d->d_name + n - 5, ".json"))
				continue;
			memcpy(id, d->d_name, n - 5);
			id[n - 5] = 0;
			if (valid_vm_id(id, NULL, 0) != 0)
				continue;
			vmnet_init(&v, id);
			/* Keys: the id (its namespace is owned), and with a slot the
			 * slot's address and host link. */
			json_object_set_new(sw.owned, id, json_true());
			if (record_read(&v) && v.slot >= 0) {
				json_object_set_new(sw.owned, v.ns_addr, json_string(id));
				json_object_set_new(slots, v.host_if, json_string(id));
			}
			json_decref(v.ports);
			json_decref(v.dns);
		}
		closedir(dir);
	}
	/* Taken slots nobody's record names. */
	for (long s = 0; s < NET_SLOTS; s++) {
		char ifn[IFNAMSIZ];

		if (!(map[s / 8] & (1 << (s % 8))))
			continue;
		snprintf(ifn, sizeof ifn, NET_HOST_PREFIX "%ld", s);
		if (json_object_get(slots, ifn))
			continue;
		json_array_append_new(found, json_sprintf("slot %ld", s));
		if (!dry) {
			map[s / 8] &= (unsigned char)~(1 << (s % 8));
			if (pwrite(lock, &map[s / 8], 1, s / 8) != 1) {
				verr_sys(e, "ERR_RUNTIME", NULL, "cannot write " SLOT_MAP);
				goto out;
			}
		}
	}
	/* vmsh<N> links of slots no record holds. */
	sk = rt_sock(e);
	if (!sk)
		goto out;
	if (rtnl_link_alloc_cache(sk, AF_UNSPEC, &links) == 0) {
		for (struct nl_object *o = nl_cache_get_first(links); o; o = nl_cache_get_next(o)) {
			const char *name = rtnl_link_get_name((struct rtnl_link *)o);
			char *end;

			if (!name || (strncmp(name, NET_HOST_PREFIX, 4) && strncmp(name, NET_HOST_TAP_PREFIX, 4)) ||
			    !name[4] || strtol(name + 4, &end, 10) < 0 || *end || json_object_get(slots, name))
				continue;
			json_array_append_new(found, json_sprintf("interface %s", name));
			if (!dry)
				rtnl_link_delete(sk, (struct rtnl_link *)o);
		}
		nl_cache_free(links);
	}
	/* Namespaces named for a VM that has no record. */
	if ((dir = opendir(NETNS_DIR))) {
		while ((d = readdir(dir))) {
			const char *id = d->d_name + 6;
			struct vmnet v;

			if (strncmp(d->d_name, "vmsan-", 6) || valid_vm_id(id, NULL, 0) != 0 ||
			    json_object_get(sw.owned, id))
				continue;
			vmnet_init(&v, id);
			json_array_append_new(found, json_sprintf("network namespace %s", v.netns));
			/* what still runs in it (a resolver, a VMM) keeps it alive */
			kill_in_ns(v.nspath, dry, found);
			if (!dry)
				netns_delete(&v);
		}
		closedir(dir);
	}
	/* --no-netns tables (vmsan_<id>) of VMs that have no record. */
	if (nft_tables_walk(sweep_table, &sw, e) != 0)
		goto out;
	json_array_foreach(sw.tables, i, x) {
		json_array_append_new(found, json_sprintf("table %s", json_string_value(x)));
		if (!dry && nft_table_delete(json_string_value(x), e) != 0)
			goto out;
	}
	/* Published ports pointing at no recorded VM. */
	if (nft_map_walk(NET_TABLE, NET_PUB_MAP, sweep_elem, &sw, e) != 0)
		goto out;
	json_array_foreach(sw.stale, i, x) {
		json_array_append_new(found, json_sprintf("published port %lld -> %s",
							   json_integer_value(json_object_get(x, "port")),
							   json_string_value(json_object_get(x, "addr"))));
		if (!dry && nft_map_port_addr(NET_TABLE, NET_PUB_MAP,
					      (unsigned)json_integer_value(json_object_get(x, "port")), NULL,
					      false, e) != 0)
			goto out;
	}
	reply = json_pack("{s:b, s:O}", "dryRun", dry, dry ? "found" : "removed", found);
out:
	close(lock);
out_nolock:
	if (sk)
		nl_socket_free(sk);
	json_decref(found);
	json_decref(slots);
	json_decref(sw.owned);
	json_decref(sw.stale);
	json_decref(sw.tables);
	return reply;
}

static const struct helper_op ops[] = {
	{"setup", op_setup},
	{"teardown", op_teardown},
	{"apply-rules", op_apply_rules},
	{"verify", op_verify},
	{"sweep", op_sweep},
};

static const struct helper helper = {
	.name = "vmsan-net",
	.summary = "plumbing (root): a VM's network namespace, links, rules",
	.usage =
	"usage: vmsan-net OP [--verbose] < request.json\n"
	"\n"
	"  {\"op\":\"setup\", \"id\":ID, \"ruleset\":RULESET, \"publishedPorts\":[P...],\n"
	"   \"bandwidthMbit\":N, \"tapOwner\":UID}\n"
	"  {\"op\":\"apply-rules\", \"id\":ID, \"ruleset\":RULESET}\n"
	"  {\"op\":\"teardown\", \"id\":ID}            idempotent\n"
	"  {\"op\":\"verify\", \"id\":ID}              leftovers, if any\n"
	"\n"
	"RULESET is the \"ruleset\" of vmsan-nftables compile.  Runs as root (through\n"
	"the sudoers rule install.sh writes).  See vmsan-net(8).\n",
	.ops = ops,
	.nops = sizeof(ops) / sizeof(*ops),
};

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (argv[i][0] == '-')
			return helper_main(&helper, argc, argv);     /* --help etc. */
	if (geteuid() != 0) {
		struct verr e = {0};

		vmsan_prog = helper.name;
		verr_set(&e, VMSAN_EXIT_FAIL, "ERR_PERMISSION", "run it through vmsan (sudo), or as root",
			 "vmsan-net needs root");
		return reply_error(&e);
	}
	orig_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (orig_ns < 0)
		return VMSAN_EXIT_SYS;
	/* A terminal's ^Z must not stop us holding a lock (SIGSTOP still
	 * can: lock_file bounds what that costs the others). */
	signal(SIGTSTP, SIG_IGN);
	signal(SIGTTIN, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);
	caller_get(&who);
	{
		struct verr e = {0};

		if (rootconf_load(&conf, &e)) {
			vmsan_prog = helper.name;
			return reply_error(&e);
		}
	}
	return helper_main(&helper, argc, argv);
}
