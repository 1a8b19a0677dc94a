/* The kernel's link primitives: links (veth ends, TAPs), addresses,
 * routes, shaping, and per-link sysctls, over route netlink and ioctls.
 * No decisions here: what is made where is setup.c's. */
#define _GNU_SOURCE
#include "net/net.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <net/if_arp.h>
#include <linux/if_tun.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/tbf.h>
#include <netlink/route/route.h>

int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

struct nl_sock *rt_sock(struct verr *e)
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

int nlerr(struct verr *e, int err, const char *what, const char *name)
{
	verr_set(e, VMSAN_EXIT_SYS, "ERR_NETLINK", NULL, "cannot %s %s: %s", what, name, nl_geterror(err));
	return -1;
}

int link_index(struct nl_sock *sk, const char *name)
{
	struct rtnl_link *l = NULL;
	int idx = 0;

	if (rtnl_link_get_kernel(sk, 0, name, &l) == 0) {
		idx = rtnl_link_get_ifindex(l);
		rtnl_link_put(l);
	}
	return idx;
}

int link_up(struct nl_sock *sk, const char *name, struct verr *e)
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

void delete_link(const char *name)
{
	struct verr ignore = { 0 };
	struct nl_sock *sk = rt_sock(&ignore);
	struct rtnl_link *l = NULL;

	if (sk && rtnl_link_get_kernel(sk, 0, name, &l) == 0) {
		rtnl_link_delete(sk, l);
		rtnl_link_put(l);
	}
	if (sk)
		nl_socket_free(sk);
}

int add_addr(struct nl_sock *sk, const char *ifname, const char *addr, int plen, struct verr *e)
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

int add_default_route(struct nl_sock *sk, const char *ifname, const char *gw, struct verr *e)
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
int shape(struct nl_sock *sk, const char *ifname, long long mbit, struct verr *e)
{
	struct rtnl_qdisc *q = rtnl_qdisc_alloc();
	int rate = (int)(mbit * 1000000 / 8), burst = rate / 100 > 32768 ? rate / 100 : 32768;
	int err;

	rtnl_tc_set_ifindex(TC_CAST(q), link_index(sk, ifname));
	rtnl_tc_set_parent(TC_CAST(q), TC_H_ROOT);
	err = rtnl_tc_set_kind(TC_CAST(q), "tbf");
	if (!err) {
		rtnl_qdisc_tbf_set_rate(q, rate, burst, 0);
		err = rtnl_qdisc_tbf_set_limit_by_latency(q, 50000); /* 50 ms, in microseconds */
	}
	if (!err)
		err = rtnl_qdisc_add(sk, q, NLM_F_CREATE | NLM_F_REPLACE);
	rtnl_qdisc_put(q);
	return err ? nlerr(e, err, "shape", ifname) : 0;
}

/* The TAP's own MAC: the same in every VM, as the guest's addresses are,
 * so that a guest restored from a snapshot into another namespace finds
 * its gateway at the address its ARP cache holds. */
int tap_mac(const char *name, struct verr *e)
{
	static const unsigned char mac[6] = { 0x06, 0x00, 0xac, 0x10, 0x00, 0x01 };
	struct ifreq ifr = { 0 };
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

int make_tap(const char *name, long owner, struct verr *e)
{
	struct ifreq ifr = { 0 };
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

/* The host's own 127.0.0.1:P reaches published ports: a packet from a
 * loopback source may leave through a VM's host-side link (and only
 * those: the host table masquerades it; a VM's packets to 127/8 arriving
 * there meet the input chain's drop). */
int route_localnet(const char *ifname, struct verr *e)
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
int no_ipv6(const char *ifname, struct verr *e)
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
