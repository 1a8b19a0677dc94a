/* The network plan every VM shares.
 *
 * Inside each VM's namespace everything is the same: the TAP vmstap0 is
 * 172.16.0.1/30, the guest 172.16.0.2, the uplink veth vmsnet0.  Only the
 * uplink's address differs: slot N owns 198.18.0.0/15's Nth /30, host end
 * .1 (interface vmsh<N>), namespace end .2.  The namespace masquerades the
 * guest behind its uplink address and DNATs the agent port and published
 * ports to the guest, so a snapshot restores into any slot, and 32768
 * slots fit.
 */
#ifndef VMSAN_NETPLAN_H
#define VMSAN_NETPLAN_H

#include "vmsan.h"

#define NET_TAP "vmstap0"
#define NET_UPLINK "vmsnet0"
#define NET_HOST_PREFIX "vmsh"
#define NET_HOST_TAP_PREFIX "vmst" /* --no-netns: the TAP, in the host's namespace */
#define NET_HOST_ID_MAX 25	   /* --no-netns: "vmsan_" + the id names its table (31 at most) */
#define NET_TAP_ADDR "172.16.0.1"
#define NET_GUEST_ADDR "172.16.0.2"
#define NET_GUEST_CIDR "172.16.0.2/32"
#define NET_GUEST_MAC "06:00:ac:10:00:02" /* locally administered */
#define NET_LINK_PREFIXLEN 30
#define NET_POOL "198.18.0.0/15"
#define NET_POOL_BASE 0xc6120000u	/* 198.18.0.0 */
#define NET_LINK_LOCAL "169.254.0.0/16" /* cloud metadata: dropped unless allowed by name */
#define NET_SLOTS 32768
#define NET_TABLE "vmsan"
#define NET_VMM_UID_BASE 1879048192u /* root's VMMs: uid and gid base + slot */
#define NET_PUB_MAP "pub"
#define NET_DNS_SET "dns_allow"				/* addresses vmsan-dns allowed, with timeouts */
#define NET_DNS_PORT_TLS 10443				/* --strict-domains: vmsan-dns checks the guest's 443 */
#define NET_DNS_PORT_HTTP 10080				/* and 80 to the set's addresses here */
#define NET_DNS_UID_BASE (NET_VMM_UID_BASE + NET_SLOTS) /* vmsan-dns: uid and gid base + slot */
/* Allowed domains: the most a VM may list, and the bounds of the TTL an
 * address stays in the set for (dns-ttl-min, dns-ttl-max) by default. */
#define NET_DNS_DOMAINS_MAX 16384
#define NET_DNS_TTL_MIN 30
#define NET_DNS_TTL_MAX 3600

/* The shared table of the namespace vmsan-net runs in ("the host"). */
json_t *netplan_host_ruleset(void);
/* The "ip6" part of a VM's ruleset (nft.h): no IPv6 reaches or leaves the
 * guest.  tap NULL: in the VM's namespace, every chain's policy drop (the
 * namespace has no IPv6 at all); else on the host, what comes from or goes
 * to that TAP is dropped.  vmsan-net also disables IPv6 on every VM link:
 * this is the second lock. */
json_t *netplan_ip6_guard(const char *tap);
/* Host-side addresses of a slot, dotted. */
void netplan_slot_addrs(unsigned slot, char host[16], char ns[16]);

/* --no-netns: the VM's TAP is vmst<slot> in the host's namespace, with the
 * slot's .1; the guest is the slot's .2; its table is vmsan_<id> (dashes as underscores). */
struct policy_target;
void netplan_host_target(const char *id, unsigned slot, struct policy_target *t, char table[32], char tap[16],
			 char host[16], char guest[16]);

#endif
