/* The host's shared table: the same for every VM; VMs only add and remove
 * elements of its published-port map, so per-packet cost and setup cost do
 * not grow with the number of VMs. */
#include <stdarg.h>
#include <stdio.h>

#include "netplan.h"
#include "policy.h"

static json_t *chain(const char *name, const char *type, const char *hook, int prio, const char *policy)
{
	json_t *c = json_pack("{s:s, s:s, s:s, s:i}", "name", name, "type", type, "hook", hook, "priority", prio);

	if (policy)
		json_object_set_new(c, "policy", json_string(policy));
	return c;
}

/* rule(chain, verdict, match...) with a NULL-terminated list of matchers. */
static json_t *rule(const char *chain_name, json_t *verdict, ...)
{
	json_t *m = json_array(), *x;
	va_list ap;

	va_start(ap, verdict);
	while ((x = va_arg(ap, json_t *)))
		json_array_append_new(m, x);
	va_end(ap);
	return json_pack("{s:s, s:o, s:o}", "chain", chain_name, "match", m, "verdict", verdict);
}

#define END ((json_t *)NULL) /* a typed sentinel for the variadic list */
#define M(k, v) json_pack("{s:s}", k, v)
#define V(s) json_string(s)

json_t *netplan_host_ruleset(void)
{
	json_t *ct_back = json_pack("{s:[ss]}", "ct_state", "established", "related");
	json_t *ct_back2 = json_deep_copy(ct_back);

	return json_pack(
		"{s:s, s:s, s:[{s:s, s:s, s:s}], s:[o,o,o,o,o], s:[o,o,o,o,o,o,o,o,o,o,o]}", "family", "ip", "table",
		NET_TABLE, "sets", "name", NET_PUB_MAP, "key", "inet_service", "data", "ipv4_addr", "chains",
		chain("prerouting", "nat", "prerouting", -100, NULL), chain("output", "nat", "output", -100, NULL),
		chain("postrouting", "nat", "postrouting", 100, NULL), chain("input", "filter", "input", -10, "accept"),
		chain("forward", "filter", "forward", -10, "accept"), "rules",
		/* Published ports: any local address, from outside and from the host. */
		rule("prerouting", json_pack("{s:s}", "dnat_map", NET_PUB_MAP), json_pack("{s:b}", "daddr_local", 1),
		     M("proto", "tcp"), END),
		rule("output", json_pack("{s:s}", "dnat_map", NET_PUB_MAP), json_pack("{s:b}", "daddr_local", 1),
		     M("proto", "tcp"), END),
		/* VM traffic leaves through whatever route the host has. */
		rule("postrouting", V("masquerade"), M("saddr", NET_POOL), M("oif_prefix_not", "vms"), END),
		/* 127.0.0.1:P from the host, DNATed above, leaves through vmsh<N>
		 * (route_localnet is on there) with the host end's address as
		 * its source, which the VM's namespace can answer. */
		rule("postrouting", V("masquerade"), M("saddr", "127.0.0.0/8"), M("oif_prefix", "vms"), END),
		/* Guests reach no host address or port, only answer the host. */
		rule("input", V("accept"), M("iif_prefix", "vms"), ct_back, END),
		rule("input", V("drop"), M("iif_prefix", "vms"), END),
		/* VMs never reach each other. */
		rule("forward", V("drop"), M("iif_prefix", "vms"), M("oif_prefix", "vms"), END),
		/* Into a VM: replies, and published ports we DNATed; nothing else,
		 * so only the host itself reaches an agent. */
		rule("forward", V("accept"), M("oif_prefix", "vms"), ct_back2, END),
		rule("forward", V("accept"), M("oif_prefix", "vms"), M("ct_status", "dnat"), END),
		rule("forward", V("drop"), M("oif_prefix", "vms"), END),
		rule("forward", V("accept"), M("iif_prefix", "vms"), END));
}

json_t *netplan_ip6_guard(const char *tap)
{
	if (!tap)
		return json_pack("{s:[o,o,o], s:[]}", "chains", chain("input", "filter", "input", 0, "drop"),
				 chain("forward", "filter", "forward", 0, "drop"),
				 chain("output", "filter", "output", 0, "drop"), "rules");
	return json_pack("{s:[o,o], s:[o,o,o]}", "chains", chain("input", "filter", "input", 0, "accept"),
			 chain("forward", "filter", "forward", 0, "accept"), "rules",
			 rule("input", V("drop"), M("iif", tap), END), rule("forward", V("drop"), M("iif", tap), END),
			 rule("forward", V("drop"), M("oif", tap), END));
}

void netplan_slot_addrs(unsigned slot, char host[16], char ns[16])
{
	unsigned base = NET_POOL_BASE + slot * 4;

	snprintf(host, 16, "%u.%u.%u.%u", base >> 24, (base >> 16) & 255, (base >> 8) & 255, (base & 255) + 1);
	snprintf(ns, 16, "%u.%u.%u.%u", base >> 24, (base >> 16) & 255, (base >> 8) & 255, (base & 255) + 2);
}

void netplan_host_target(const char *id, unsigned slot, struct policy_target *t, char table[32], char tap[16],
			 char host[16], char guest[16])
{
	snprintf(table, 32, "vmsan_%s", id);
	for (char *c = table; *c; c++)
		if (*c == '-')
			*c = '_'; /* nft names here are [a-z0-9_] */
	snprintf(tap, 16, NET_HOST_TAP_PREFIX "%u", slot);
	netplan_slot_addrs(slot, host, guest);
	t->table = table;
	t->tap = tap;
	t->uplink = NULL;
	t->guest = guest;
}
