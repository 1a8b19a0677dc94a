/* vmsan-nftables: compile a VM's egress policy into the ruleset of its
 * network namespace (unprivileged; vmsan-net applies it as root).
 *
 * Semantics (the original's, enforced for real):
 *  - allow-all, deny-all, or custom with allowed and denied CIDRs; denied
 *    always wins; lists given with allow-all make it custom.
 *  - Every packet from the guest is checked, not only the first of a flow:
 *    a live policy change cuts established flows to newly denied addresses.
 *  - ICMP from the guest is dropped except what conntrack marks related
 *    (PMTU); UDP is dropped except DNS to the configured resolvers; DNS to
 *    anything else and DoT (853) are dropped; so is a spoofed source.
 *  - The guest reaches no host address (198.18.0.0/15, other VMs) and
 *    nothing in its own namespace; published ports and the agent port are
 *    DNATed in from the uplink whatever the policy, deny-all included.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/netplan.h"
#include "lib/nft.h"

#define MAX_CIDRS 256
#define MAX_PORTS 64
#define MAX_DNS 8

static bool want_nft;

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
	return (p >= 10053 && p <= 10307) || (p >= 10443 && p <= 10697) ||
	       (p >= 10080 && p <= 10334);
}

static json_t *op_compile(struct jr *r, struct verr *e)
{
	static const char *const policies[] = {"allow-all", "deny-all", "custom"};
	const char *policy = jr_string(r, "policy", JR_REQUIRED, NULL);
	json_t *allowed = list_of(r, "allowedCidrs", MAX_CIDRS, valid_cidr, e);
	json_t *denied = list_of(r, "deniedCidrs", MAX_CIDRS, valid_cidr, e);
	json_t *dns = list_of(r, "dnsResolvers", MAX_DNS, valid_ipv4, e);
	json_t *ports = jr_array(r, "publishedPorts", JR_OPTIONAL, MAX_PORTS);
	long long agent = 0;
	json_t *rules, *pub, *rs, *x, *fwd_back, *reply;
	const char *eff;
	size_t i, k;
	bool known = false;

	jr_int(r, "agentPort", JR_OPTIONAL, 1, 65535, &agent);
	if (jr_end(r))
		return NULL;
	for (i = 0; i < 3; i++)
		known = known || strcmp(policy, policies[i]) == 0;
	if (!known) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_POLICY", "use allow-all, deny-all or custom",
			 "policy: '%s' is not a policy", policy);
		return NULL;
	}
	if (!strcmp(policy, "deny-all") && (json_array_size(allowed) || json_array_size(denied))) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_POLICY_CONFLICT",
			 "drop the CIDR lists, or use custom",
			 "deny-all cannot be combined with allowed or denied CIDRs");
		return NULL;
	}
	eff = strcmp(policy, "deny-all") == 0 ? "deny-all" :
	      (json_array_size(allowed) || json_array_size(denied)) ? "custom" :
	      strcmp(policy, "custom") == 0 ? "custom" : "allow-all";

	pub = json_array();
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

	rules = json_array();
#define R(chain, verdict, ...) json_array_append_new(rules, rule(chain, verdict, json_pack(__VA_ARGS__)))
	/* Inbound: the agent (the host only: its forward chain lets nothing
	 * else into a VM) and published ports. */
	if (agent)
		json_array_append_new(rules, json_pack("{s:s, s:[{s:s},{s:s},{s:I}], s:{s:s, s:I}}",
			"chain", "prerouting", "match", "iif", NET_UPLINK, "proto", "tcp", "dport", agent,
			"verdict", "dnat", NET_GUEST_ADDR, "port", agent));
	if (json_array_size(pub))
		json_array_append_new(rules, json_pack("{s:s, s:[{s:s},{s:s}], s:{s:s, s:s}}",
			"chain", "prerouting", "match", "iif", NET_UPLINK, "proto", "tcp",
			"verdict", "dnat", NET_GUEST_ADDR, "port_map", NET_PUB_MAP));
	R("postrouting", "masquerade", "[{s:s},{s:s}]", "oif", NET_UPLINK, "saddr", NET_GUEST_CIDR);

	fwd_back = json_pack("{s:[ss]}", "ct_state", "established", "related");
	R("forward", "accept", "[{s:s},{s:s},o]", "iif", NET_UPLINK, "oif", NET_TAP, fwd_back);
	R("forward", "accept", "[{s:s},{s:s},{s:s}]", "iif", NET_UPLINK, "oif", NET_TAP, "ct_status", "dnat");
	R("forward", "drop", "[{s:s}]", "iif_not", NET_TAP);
	/* From the guest on: its answers to inbound connections, then policy. */
	R("forward", "accept", "[{s:s},{s:s}]", "ct_status", "dnat", "ct_dir", "reply");
	R("forward", "drop", "[{s:s}]", "saddr_not", NET_GUEST_CIDR);
	R("forward", "accept", "[{s:s},{s:[s]}]", "proto", "icmp", "ct_state", "related");
	R("forward", "drop", "[{s:s}]", "proto", "icmp");
	if (strcmp(eff, "deny-all"))
		json_array_foreach(dns, i, x) {
			R("forward", "accept", "[{s:s},{s:s},{s:i}]", "daddr", json_string_value(x), "proto", "udp", "dport", 53);
			R("forward", "accept", "[{s:s},{s:s},{s:i}]", "daddr", json_string_value(x), "proto", "tcp", "dport", 53);
		}
	R("forward", "drop", "[{s:s},{s:i}]", "proto", "tcp", "dport", 53);
	R("forward", "drop", "[{s:s},{s:i}]", "proto", "tcp", "dport", 853);
	R("forward", "drop", "[{s:s}]", "proto_not", "tcp");
	R("forward", "drop", "[{s:s}]", "daddr", NET_POOL);
	json_array_foreach(denied, i, x)
		R("forward", "drop", "[{s:s}]", "daddr", json_string_value(x));
	/* custom without an allow list allows what it does not deny (the
	 * original treats custom without lists as allow-all, and allow-all
	 * with a deny list becomes custom). */
	if (!strcmp(eff, "allow-all") || (!strcmp(eff, "custom") && !json_array_size(allowed)))
		json_array_append_new(rules, rule("forward", "accept", json_array()));
	else if (!strcmp(eff, "custom"))
		json_array_foreach(allowed, i, x)
			R("forward", "accept", "[{s:s}]", "daddr", json_string_value(x));
	/* The namespace itself answers nothing new. */
	R("input", "accept", "[{s:[ss]}]", "ct_state", "established", "related");
	R("input", "accept", "[{s:s}]", "iif", "lo");
#undef R

	rs = json_pack("{s:s, s:s, s:[], s:[{s:s,s:s,s:s,s:i}, {s:s,s:s,s:s,s:i}, {s:s,s:s,s:s,s:i,s:s}, {s:s,s:s,s:s,s:i,s:s}], s:o}",
		"family", "ip", "table", NET_TABLE, "sets",
		"chains",
		"name", "prerouting", "type", "nat", "hook", "prerouting", "priority", -100,
		"name", "postrouting", "type", "nat", "hook", "postrouting", "priority", 100,
		"name", "forward", "type", "filter", "hook", "forward", "priority", 0, "policy", "drop",
		"name", "input", "type", "filter", "hook", "input", "priority", 0, "policy", "drop",
		"rules", rules);
	if (json_array_size(pub))
		json_array_append_new(json_object_get(rs, "sets"),
			json_pack("{s:s, s:s, s:s, s:O}", "name", NET_PUB_MAP, "key", "inet_service",
				  "data", "inet_service", "elements", pub));
	/* What we emit must pass the same check vmsan-net applies. */
	if (nft_ruleset_check(rs, e) != 0) {
		json_decref(rs);
		goto fail;
	}
	reply = json_pack("{s:s, s:o, s:o}", "policy", eff, "ruleset", rs,
			  "publishedPorts", pub);
	return reply;
fail:
	json_decref(pub);
	return NULL;
}

static json_t *op_host(struct jr *r, struct verr *e)
{
	json_t *rs;

	if (jr_end(r))
		return NULL;
	rs = netplan_host_ruleset();
	if (nft_ruleset_check(rs, e) != 0) {
		json_decref(rs);
		return NULL;
	}
	return json_pack("{s:o}", "ruleset", rs);
}

/* --format nft: the ruleset as nft(8) text instead of the JSON reply. */
static int print_reply(json_t *reply)
{
	char *text;
	int rc = VMSAN_EXIT_OK;

	if (!want_nft)
		return reply_ok(reply);
	text = nft_ruleset_render(json_object_get(reply, "ruleset"));
	if (!text || fputs(text, stdout) == EOF || fflush(stdout) == EOF)
		rc = VMSAN_EXIT_SYS;
	free(text);
	json_decref(reply);
	return rc;
}

static const struct helper_op ops[] = {
	{"compile", op_compile},
	{"host", op_host},
};

static const struct helper helper = {
	.name = "vmsan-nftables",
	.summary = "plumbing: compile a VM's egress policy into an nftables ruleset",
	.usage =
	"usage: vmsan-nftables [compile|host] [--format nft] < policy.json\n"
	"\n"
	"Unprivileged policy compiler.  compile: the ruleset of a VM's network\n"
	"namespace, for vmsan-net apply-rules; host: the shared table of the host.\n"
	"\n"
	"  {\"op\":\"compile\", \"policy\":\"allow-all|deny-all|custom\",\n"
	"   \"allowedCidrs\":[CIDR...], \"deniedCidrs\":[CIDR...],\n"
	"   \"dnsResolvers\":[IP...], \"agentPort\":PORT,\n"
	"   \"publishedPorts\":[{\"hostPort\":P, \"guestPort\":P}...]}\n"
	"\n"
	"--format nft prints the ruleset as nft(8) text instead of JSON.\n"
	"Exit status: 0 ok, 1 failed, 100 bad request.  See vmsan-nftables(8).\n",
	.ops = ops,
	.nops = sizeof(ops) / sizeof(*ops),
	.print = print_reply,
};

int main(int argc, char **argv)
{
	char *args[8];
	int n = 0;

	/* --format nft is ours; everything else goes to the shared main. */
	for (int i = 0; i < argc && n < 7; i++) {
		if (strcmp(argv[i], "--format") == 0 && i + 1 < argc && strcmp(argv[i + 1], "nft") == 0) {
			want_nft = true;
			i++;
		} else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc && strcmp(argv[i + 1], "json") == 0) {
			i++;
		} else {
			args[n++] = argv[i];
		}
	}
	args[n] = NULL;
	return helper_main(&helper, n, args);
}
