/* What setup makes: the host side (veth end vmsh<slot>), the namespace
 * side (uplink, TAP, addresses, route, forwarding, shaping, the VM's
 * ruleset), the shared host table, the --no-netns TAP, and the check that
 * a published port takes no service of the host. */
#define _GNU_SOURCE
#include "net/net.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>

int host_side(struct vmnet *v, struct verr *e)
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

int ns_side(struct vmnet *v, long owner, long long mbit, json_t *ruleset, struct verr *e)
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
	    add_default_route(sk, NET_UPLINK, v->host_addr, e) || make_tap(NET_TAP, owner, e) || tap_mac(NET_TAP, e) ||
	    no_ipv6(NET_TAP, e) || add_addr(sk, NET_TAP, NET_TAP_ADDR, NET_LINK_PREFIXLEN, e) ||
	    link_up(sk, NET_TAP, e))
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

int host_table(struct verr *e)
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
			.h = { .nlmsg_len = sizeof req,
			       .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			       .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
			       .nlmsg_seq = (uint32_t)f + 1 },
			.r = { .sdiag_family = (uint8_t)families[f],
			       .sdiag_protocol = IPPROTO_TCP,
			       .idiag_states = 1u << TCP_LISTEN },
		};
		bool done = false;

		if (send(fd, &req, sizeof req, 0) != (ssize_t)sizeof req)
			goto fail;
		while (!done) {
			ssize_t n = recv(fd, buf, sizeof buf, 0);

			if (n <= 0)
				goto fail;
			for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
			     h = NLMSG_NEXT(h, n)) {
				if (h->nlmsg_seq != req.h.nlmsg_seq)
					continue;
				if (h->nlmsg_type == NLMSG_DONE) {
					done = true;
					break;
				}
				if (h->nlmsg_type == NLMSG_ERROR) {
					const struct nlmsgerr *ne = NLMSG_DATA(h);

					/* no IPv6 in this kernel: no IPv6 listeners */
					if (families[f] == AF_INET6 &&
					    (ne->error == -ENOENT || ne->error == -EAFNOSUPPORT)) {
						done = true;
						break;
					}
					errno = -ne->error;
					goto fail;
				}
				if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
				    h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
					unsigned port =
						ntohs(((const struct inet_diag_msg *)NLMSG_DATA(h))->id.idiag_sport);

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
int ports_free(json_t *ports, struct verr *e)
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
				 "connections into the VM)",
				 n);
			return -1;
		}
	}
	return 0;
}

/* --no-netns: TAP vmst<slot> in the host's namespace with the slot's .1,
 * owned by the VMM's uid (a TAP without an owner would be anyone's to
 * attach to here), and route_localnet for the host's 127.0.0.1. */
int host_tap(struct vmnet *v, long owner, struct verr *e)
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
