/* The policy compiler: a VM's egress policy as an nftables ruleset, for
 * its network namespace (vmsan-nftables, unprivileged) or, with
 * --no-netns, for the host's namespace scoped to its TAP (vmsan-net
 * compiles that one itself: rules applied to the host must not come from
 * the caller).
 *
 * Semantics (the original's, enforced for real):
 *  - allow-all, deny-all, or custom with allowed and denied CIDRs; denied
 *    always wins; lists given with allow-all make it custom.
 *  - Every packet from the guest is checked, not only the first of a flow:
 *    a live policy change cuts established flows to newly denied addresses.
 *  - ICMP from the guest is dropped except what conntrack marks related
 *    (PMTU); UDP is dropped except DNS to the configured resolvers; DNS to
 *    anything else and DoT (853) are dropped; so is a spoofed source.
 *  - No IPv6: the ruleset's ip6 table (netplan_ip6_guard) drops all of
 *    it in a VM's namespace, and what comes from or goes to the TAP on
 *    the host.
 *  - Link-local 169.254.0.0/16 (cloud metadata) is dropped, denied or
 *    not, unless an allowed CIDR inside it names it (after the denied
 *    CIDRs: denied still wins); allow-all and 0.0.0.0/0 do not reach it.
 *  - The guest reaches no host address (198.18.0.0/15, other VMs) and
 *    nothing in its own namespace; published ports and the agent port are
 *    DNATed in from the uplink whatever the policy, deny-all included.
 *  - Allowed domains (a VM namespace only): every DNS packet from the guest,
 *    to whatever address, is DNATed to vmsan-dns on the TAP's address
 *    (which answers only for allowed names and puts their A records in the
 *    set NET_DNS_SET with their TTL as timeout before answering); no DNS
 *    is forwarded at all; the set's addresses are allowed after the denied
 *    CIDRs (denied still wins) beside the allowed CIDRs.
 *  - strictDomains: the set's addresses are not reached directly; TCP to
 *    them on 443 and 80 is DNATed to vmsan-dns (NET_DNS_PORT_TLS and _HTTP on the
 *    TAP's address), which lets a connection through only if its TLS
 *    server_name or HTTP Host is an allowed name that resolved to that
 *    address; any other port to them is dropped.  Denied and allowed
 *    CIDRs are left out of that DNAT (accept in the nat chain: no
 *    translation), so denied still wins and allowed CIDRs stay open.
 */
#include <stdio.h>
#include <string.h>

#include "netplan.h"
#include "nft.h"
#include "policy.h"

#define MAX_CIDRS 256
#define MAX_PORTS 64
#define MAX_DNS 8
#define MAX_DOMAINS NET_DNS_DOMAINS_MAX

static json_t *rule(const char *chain, const char *verdict, json_t *match)
{
	return json_pack("{s:s, s:o, s:s}", "chain", chain, "match", match, "verdict", verdict);
}

static json_t *list_of(struct jr *r, const char *key, size_t max, validator_fn v, struct verr *e)
{
	json_t *a = jr_array(r, key, JR_OPTIONAL, max), *x;
	size_t i;
	char why[200];

	json_array_foreach(a, i, x) {
		if (!json_is_string(x) || v(json_string_value(x), why, sizeof(why))) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_POLICY", NULL, "%s[%zu]: %s", key, i,
				 json_is_string(x) ? why : "expected a string");
			return NULL;
		}
	}
	return a;
}

static bool is_reserved(long long p)
{
	/* The original's per-slot proxy ranges, kept reserved for the DNS,
	 * SNI and HTTP proxies of the domain-allowlist work. */
	return (p >= 10053 && p <= 10307) || (p >= 10443 && p <= 10697) || (p >= 10080 && p <= 10334);
}

/* A CIDR inside 169.254.0.0/16: it names link-local addresses itself. */
static bool link_local(const char *cidr)
{
	unsigned a = 0, p = 0;
	char why[8];

	return parse_cidr(cidr, &a, &p, why, sizeof why) == 0 && p >= 16 && (a & 0xffff0000u) == 0xa9fe0000u;
}

/* The matchers of a rule, scoped to the guest's TAP on the host. */
static json_t *scoped(const struct policy_target *t, json_t *match)
{
	if (!t->uplink)
		json_array_insert_new(match, 0, json_pack("{s:s}", "iif", t->tap));
	return match;
}

/* The guest's own traffic, after the caller's first rules: answers to
 * inbound connections, then the policy.  m() gives each rule's matchers
 * their scope (nothing in a VM's namespace, iifname TAP on the host). */
static void egress(json_t *rules, const struct policy_target *t, const char *eff, json_t *dns, json_t *allowed,
		   json_t *denied, bool domains, bool strict)
{
	char guest_cidr[24];
	size_t i;
	json_t *x;

	snprintf(guest_cidr, sizeof guest_cidr, "%s/32", t->guest);
#define R(verdict, ...) json_array_append_new(rules, rule("forward", verdict, scoped(t, json_pack(__VA_ARGS__))))
	R("accept", "[{s:s},{s:s}]", "ct_status", "dnat", "ct_dir", "reply");
	R("drop", "[{s:s}]", "saddr_not", guest_cidr);
	R("accept", "[{s:s},{s:[s]}]", "proto", "icmp", "ct_state", "related");
	R("drop", "[{s:s}]", "proto", "icmp");
	if (strcmp(eff, "deny-all") && !domains)
		json_array_foreach(dns, i, x) {
			R("accept", "[{s:s},{s:s},{s:i}]", "daddr", json_string_value(x), "proto", "udp", "dport", 53);
			R("accept", "[{s:s},{s:s},{s:i}]", "daddr", json_string_value(x), "proto", "tcp", "dport", 53);
		}
	R("drop", "[{s:s},{s:i}]", "proto", "tcp", "dport", 53);
	R("drop", "[{s:s},{s:i}]", "proto", "tcp", "dport", 853);
	R("drop", "[{s:s}]", "proto_not", "tcp");
	R("drop", "[{s:s}]", "daddr", NET_POOL);
	json_array_foreach(denied, i, x)
		R("drop", "[{s:s}]", "daddr", json_string_value(x));
	/* Link-local (cloud metadata at 169.254.169.254) only where an
	 * allowed CIDR inside it names it: allow-all, a custom list without
	 * one, 0.0.0.0/0 or the set of allowed domains never reach it. */
	json_array_foreach(allowed, i, x)
		if (link_local(json_string_value(x)))
			R("accept", "[{s:s}]", "daddr", json_string_value(x));
	R("drop", "[{s:s}]", "daddr", NET_LINK_LOCAL);
	/* custom without an allow list allows what it does not deny (the
	 * original treats custom without lists as allow-all, and allow-all
	 * with a deny list becomes custom). */
	if (!strcmp(eff, "allow-all") || (!strcmp(eff, "custom") && !json_array_size(allowed) && !domains)) {
		R("accept", "[]");
	} else if (!strcmp(eff, "custom")) {
		json_array_foreach(allowed, i, x)
			if (!link_local(json_string_value(x)))
				R("accept", "[{s:s}]", "daddr", json_string_value(x));
		if (domains && !strict)
			R("accept", "[{s:s}]", "daddr_set", NET_DNS_SET);
	}
	/* On the host the chain's policy is accept (it sees every forwarded
	 * packet): what the guest sent that nothing above allowed ends here. */
	if (!t->uplink)
		R("drop", "[]");
#undef R
}

/* In the VM's own namespace: the agent and published ports DNATed in from
 * the uplink, the guest masqueraded out of it; chains whose policy is drop. */
static json_t *in_namespace(const struct policy_target *t, const char *eff, json_t *dns, json_t *allowed,
			    json_t *denied, bool domains, bool strict, long long agent, json_t *pub, json_t *rules)
{
	char guest_cidr[24];

	snprintf(guest_cidr, sizeof guest_cidr, "%s/32", t->guest);
#define R(chain, verdict, ...) json_array_append_new(rules, rule(chain, verdict, json_pack(__VA_ARGS__)))
	/* Inbound: the agent (the host only: its forward chain lets nothing
	 * else into a VM) and published ports. */
	if (agent)
		json_array_append_new(rules, json_pack("{s:s, s:[{s:s},{s:s},{s:I}], s:{s:s, s:I}}", "chain",
						       "prerouting", "match", "iif", t->uplink, "proto", "tcp", "dport",
						       agent, "verdict", "dnat", t->guest, "port", agent));
	if (json_array_size(pub))
		json_array_append_new(rules, json_pack("{s:s, s:[{s:s},{s:s}], s:{s:s, s:s}}", "chain", "prerouting",
						       "match", "iif", t->uplink, "proto", "tcp", "verdict", "dnat",
						       t->guest, "port_map", NET_PUB_MAP));
	R("postrouting", "masquerade", "[{s:s},{s:s}]", "oif", t->uplink, "saddr", guest_cidr);
	/* Allowed domains: the guest's DNS, to any address, goes to vmsan-dns
	 * on the TAP's address (the answers still come from the address the
	 * guest asked). */
	if (domains)
		for (int p = 0; p < 2; p++)
			json_array_append_new(rules, json_pack("{s:s, s:[{s:s},{s:s},{s:i}], s:{s:s, s:i}}", "chain",
							       "prerouting", "match", "iif", t->tap, "proto",
							       p ? "tcp" : "udp", "dport", 53, "verdict", "dnat",
							       NET_TAP_ADDR, "port", 53));
	if (strict) {
		size_t i;
		json_t *x;
		json_array_foreach(denied, i, x)
			R("prerouting", "accept", "[{s:s},{s:s}]", "iif", t->tap, "daddr", json_string_value(x));
		json_array_foreach(allowed, i, x)
			R("prerouting", "accept", "[{s:s},{s:s}]", "iif", t->tap, "daddr", json_string_value(x));
		for (int p = 0; p < 2; p++)
			json_array_append_new(rules, json_pack("{s:s, s:[{s:s},{s:s},{s:s},{s:i}], s:{s:s, s:i}}",
							       "chain", "prerouting", "match", "iif", t->tap,
							       "daddr_set", NET_DNS_SET, "proto", "tcp", "dport",
							       p ? 80 : 443, "verdict", "dnat", NET_TAP_ADDR, "port",
							       p ? NET_DNS_PORT_HTTP : NET_DNS_PORT_TLS));
	}

	R("forward", "accept", "[{s:s},{s:s},{s:[ss]}]", "iif", t->uplink, "oif", t->tap, "ct_state", "established",
	  "related");
	R("forward", "accept", "[{s:s},{s:s},{s:s}]", "iif", t->uplink, "oif", t->tap, "ct_status", "dnat");
	R("forward", "drop", "[{s:s}]", "iif_not", t->tap);
	/* From the guest on. */
	egress(rules, t, eff, dns, allowed, denied, domains, strict);
	/* The namespace itself answers nothing new but vmsan-dns. */
	R("input", "accept", "[{s:[ss]}]", "ct_state", "established", "related");
	R("input", "accept", "[{s:s}]", "iif", "lo");
	if (domains)
		for (int p = 0; p < 2; p++)
			R("input", "accept", "[{s:s},{s:s},{s:s},{s:i}]", "iif", t->tap, "daddr", NET_TAP_ADDR "/32",
			  "proto", p ? "tcp" : "udp", "dport", 53);
	if (strict)
		for (int p = 0; p < 2; p++)
			R("input", "accept", "[{s:s},{s:s},{s:s},{s:i},{s:s}]", "iif", t->tap, "daddr",
			  NET_TAP_ADDR "/32", "proto", "tcp", "dport", p ? NET_DNS_PORT_HTTP : NET_DNS_PORT_TLS,
			  "ct_status", "dnat");
#undef R
	return json_pack(
		"{s:s, s:s, s:[], s:[{s:s,s:s,s:s,s:i}, {s:s,s:s,s:s,s:i}, {s:s,s:s,s:s,s:i,s:s}, {s:s,s:s,s:s,s:i,s:s}], s:o, s:o}",
		"family", "ip", "table", t->table, "sets", "chains", "name", "prerouting", "type", "nat", "hook",
		"prerouting", "priority", -100, "name", "postrouting", "type", "nat", "hook", "postrouting", "priority",
		100, "name", "forward", "type", "filter", "hook", "forward", "priority", 0, "policy", "drop", "name",
		"input", "type", "filter", "hook", "input", "priority", 0, "policy", "drop", "rules", rules, "ip6",
		netplan_ip6_guard(NULL));
}

/* In the host's namespace (--no-netns): every rule scoped to the VM's TAP,
 * chains whose policy is accept (they see all of the host's traffic).  The
 * host's shared table already masquerades the guest, keeps it off the
 * host and other VMs and lets into it only replies and DNATed
 * connections (its TAP is named vms*, as every VM link).  Published ports
 * are DNATed here, before the shared table (priority -150 < -100: the
 * first DNAT of a connection is the only one), so that HOST:GUEST maps;
 * the agent needs no DNAT: the host reaches the guest's address itself. */
static json_t *on_host(const struct policy_target *t, const char *eff, json_t *dns, json_t *allowed, json_t *denied,
		       json_t *pub, json_t *rules)
{
	json_t *chains = json_array();

	if (json_array_size(pub)) {
		const char *hooks[] = { "prerouting", "output" };

		for (int h = 0; h < 2; h++) {
			json_array_append_new(chains, json_pack("{s:s,s:s,s:s,s:i}", "name", hooks[h], "type", "nat",
								"hook", hooks[h], "priority", -150));
			json_array_append_new(rules, json_pack("{s:s, s:[{s:b},{s:s}], s:{s:s, s:s}}", "chain",
							       hooks[h], "match", "daddr_local", 1, "proto", "tcp",
							       "verdict", "dnat", t->guest, "port_map", NET_PUB_MAP));
		}
	}
	json_array_append_new(chains, json_pack("{s:s,s:s,s:s,s:i,s:s}", "name", "forward", "type", "filter", "hook",
						"forward", "priority", 0, "policy", "accept"));
	egress(rules, t, eff, dns, allowed, denied, false, false);
	return json_pack("{s:s, s:s, s:[], s:o, s:o, s:o}", "family", "ip", "table", t->table, "sets", "chains", chains,
			 "rules", rules, "ip6", netplan_ip6_guard(t->tap));
}

/* What a policy request says. */
struct policy_req {
	const char *policy;
	json_t *allowed, *denied, *dns, *domains, *ports;
	long long agent;
	bool strict;
};

/* Every field read (and r ended); the lists' items checked. */
static int read_req(struct jr *r, struct policy_req *q, struct verr *e)
{
	q->policy = jr_string(r, "policy", JR_REQUIRED, NULL);
	q->allowed = list_of(r, "allowedCidrs", MAX_CIDRS, valid_cidr, e);
	q->denied = list_of(r, "deniedCidrs", MAX_CIDRS, valid_cidr, e);
	q->dns = list_of(r, "dnsResolvers", MAX_DNS, valid_ipv4, e);
	q->domains = list_of(r, "allowedDomains", MAX_DOMAINS, valid_domain, e);
	q->ports = jr_array(r, "publishedPorts", JR_OPTIONAL, MAX_PORTS);
	q->agent = 0;
	q->strict = false;
	jr_int(r, "agentPort", JR_OPTIONAL, 1, 65535, &q->agent);
	jr_bool(r, "strictDomains", JR_OPTIONAL, &q->strict);
	return jr_end(r);
}

/* The fields against each other and against the target. */
static int check_req(const struct policy_req *q, const struct policy_target *t, struct verr *e)
{
	static const char *const policies[] = { "allow-all", "deny-all", "custom" };
	size_t ndomains = json_array_size(q->domains);
	bool known = false;

	for (size_t i = 0; i < 3; i++)
		known = known || strcmp(q->policy, policies[i]) == 0;
	if (!known)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_POLICY", "use allow-all, deny-all or custom",
				 "policy: '%s' is not a policy", q->policy);
	if (!strcmp(q->policy, "deny-all") && (json_array_size(q->allowed) || json_array_size(q->denied) || ndomains))
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_POLICY_CONFLICT", "drop the lists, or use custom",
				 "deny-all cannot be combined with allowed or denied CIDRs or allowed domains");
	if (ndomains && !t->uplink)
		return verr_fail(
			e, VMSAN_EXIT_USAGE, "ERR_POLICY_CONFLICT", "drop --no-netns, or use --allowed-cidr",
			"allowed domains need the VM's own network namespace (their resolver and set live there)");
	if (q->strict && !ndomains)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_POLICY", "give the allowed domains, or drop strictDomains",
				 "strictDomains checks connections to allowed domains: there are none");
	if (ndomains && !json_array_size(q->dns))
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_POLICY", "give the upstream resolvers (dnsResolvers)",
				 "allowed domains need at least one upstream resolver");
	return 0;
}

/* The policy in effect: lists given with allow-all make it custom. */
static const char *effective(const struct policy_req *q)
{
	if (strcmp(q->policy, "deny-all") == 0)
		return "deny-all";
	if (json_array_size(q->allowed) || json_array_size(q->denied) || json_array_size(q->domains))
		return "custom";
	return strcmp(q->policy, "custom") == 0 ? "custom" : "allow-all";
}

/* The published ports as [[host, guest]...]: each an object, its host
 * port not reserved (nor the agent's) and not published twice. */
static json_t *published(json_t *ports, long long agent, struct verr *e)
{
	json_t *pub = json_array(), *x;
	size_t i, k;

	json_array_foreach(ports, i, x) {
		struct jr pr;
		long long host = 0, guest = 0;
		char path[48];

		snprintf(path, sizeof(path), "publishedPorts[%zu]", i);
		if (!json_is_object(x)) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_POLICY", NULL, "%s: expected an object", path);
			goto fail;
		}
		jr_init(&pr, x, path, e);
		jr_int(&pr, "hostPort", JR_REQUIRED, 1, 65535, &host);
		jr_int(&pr, "guestPort", JR_OPTIONAL, 1, 65535, &guest);
		if (jr_end(&pr))
			goto fail;
		if (!guest)
			guest = host;
		if (is_reserved(host) || host == agent) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_PORT_RESERVED",
				 "pick a port outside 10053-10307, 10080-10334 and 10443-10697",
				 "%s.hostPort: %lld is reserved for vmsan", path, host);
			goto fail;
		}
		for (k = 0; k < json_array_size(pub); k++)
			if (json_integer_value(json_array_get(json_array_get(pub, k), 0)) == host) {
				verr_set(e, VMSAN_EXIT_USAGE, "ERR_PORT_DUPLICATE", NULL,
					 "%s.hostPort: %lld is published twice", path, host);
				goto fail;
			}
		json_array_append_new(pub, json_pack("[I, I]", host, guest));
	}
	return pub;
fail:
	json_decref(pub);
	return NULL;
}

/* The ruleset for t, with the set of allowed domains' addresses and the
 * map of published ports; checked as vmsan-net checks it, or NULL. */
static json_t *ruleset(const struct policy_req *q, const struct policy_target *t, const char *eff, json_t *pub,
		       struct verr *e)
{
	json_t *rules = json_array(), *rs;
	bool domains = json_array_size(q->domains) > 0;

	rs = t->uplink ? in_namespace(t, eff, q->dns, q->allowed, q->denied, domains, q->strict, q->agent, pub, rules)
		       : on_host(t, eff, q->dns, q->allowed, q->denied, pub, rules);
	if (domains)
		json_array_append_new(json_object_get(rs, "sets"), json_pack("{s:s, s:s, s:b}", "name", NET_DNS_SET,
									     "key", "ipv4_addr", "timeout", 1));
	if (json_array_size(pub))
		json_array_append_new(json_object_get(rs, "sets"),
				      json_pack("{s:s, s:s, s:s, s:O}", "name", NET_PUB_MAP, "key", "inet_service",
						"data", "inet_service", "elements", pub));
	/* What we emit must pass the same check vmsan-net applies. */
	if (nft_ruleset_check(rs, e) != 0) {
		json_decref(rs);
		return NULL;
	}
	return rs;
}

json_t *policy_compile(struct jr *r, const struct policy_target *t, struct verr *e)
{
	struct policy_req q;
	const char *eff;
	json_t *pub, *rs;

	if (read_req(r, &q, e) || check_req(&q, t, e) || !(pub = published(q.ports, q.agent, e)))
		return NULL;
	eff = effective(&q);
	rs = ruleset(&q, t, eff, pub, e);
	if (!rs) {
		json_decref(pub);
		return NULL;
	}
	return json_pack("{s:s, s:o, s:o}", "policy", eff, "ruleset", rs, "publishedPorts", pub);
}
