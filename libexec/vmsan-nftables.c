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
 *  - allowedDomains: every DNS packet of the guest is DNATed to vmsan-dns
 *    (172.16.0.1:53), none is forwarded, and the set dns_allow it fills
 *    is accepted after the CIDR lists (denied still wins).
 *  - The guest reaches no host address (198.18.0.0/15, other VMs) and
 *    nothing in its own namespace; published ports and the agent port are
 *    DNATed in from the uplink whatever the policy, deny-all included.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/netplan.h"
#include "lib/nft.h"
#include "lib/policy.h"

static bool want_nft;

/* compile: for a VM's namespace, or with "hostMode" {"id", "slot"} the
 * ruleset vmsan-net builds for the host's namespace (for reading it). */
static json_t *op_compile(struct jr *r, struct verr *e)
{
	json_t *hm = jr_object(r, "hostMode", JR_OPTIONAL);
	struct policy_target t = { NET_TABLE, NET_TAP, NET_UPLINK, NET_GUEST_ADDR };
	char table[32], tap[16], host[16], guest[16];

	if (hm) {
		struct jr h;
		const char *id;
		long long slot = -1;

		jr_init(&h, hm, "hostMode", e);
		id = jr_string(&h, "id", JR_REQUIRED, valid_vm_id);
		jr_int(&h, "slot", JR_REQUIRED, 0, NET_SLOTS - 1, &slot);
		if (jr_end(&h))
			return NULL;
		if (strlen(id) > NET_HOST_ID_MAX) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "give the VM a shorter id",
				 "hostMode.id: at most %d characters (the table is named after it)", NET_HOST_ID_MAX);
			return NULL;
		}
		netplan_host_target(id, (unsigned)slot, &t, table, tap, host, guest);
	}
	return policy_compile(r, &t, e);
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
	{ "compile", op_compile },
	{ "host", op_host },
};

static const struct helper helper = {
	.name = "vmsan-nftables",
	.summary = "plumbing: compile a VM's egress policy into an nftables ruleset",
	.usage = "usage: vmsan-nftables [compile|host] [--format nft] < policy.json\n"
		 "\n"
		 "Unprivileged policy compiler.  compile: the ruleset of a VM's network\n"
		 "namespace, for vmsan-net apply-rules; host: the shared table of the host.\n"
		 "\n"
		 "  {\"op\":\"compile\", \"policy\":\"allow-all|deny-all|custom\",\n"
		 "   \"allowedCidrs\":[CIDR...], \"deniedCidrs\":[CIDR...],\n"
		 "   \"allowedDomains\":[NAME|*.ZONE...] (DNS through vmsan-dns, set dns_allow),\n"
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
