/* vmsan network: a running VM's egress policy, changed live. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vm/vm.h"

const char network_usage[] = "usage: vmsan network ID --network-policy allow-all|deny-all|custom\n"
			     "                     [--allowed-cidr CIDR,...] [--denied-cidr CIDR,...]\n"
			     "                     [--allowed-domain NAME|*.NAME,...] [--strict-domains] [--json]\n\n"
			     "Replaces a running VM's egress policy in one nftables batch: the new\n"
			     "rules apply to every packet at once, established flows included.  The\n"
			     "lists given replace the old ones (none given: none); addresses that only\n"
			     "a removed domain allowed are unreachable at once.  DNS resolvers and\n"
			     "published ports stay as they are.  Nothing changes when anything is\n"
			     "invalid.\n";

/* What vmsan network was given. */
struct net_args {
	const char *id, *policy;
	json_t *allowed, *denied, *domains;
	bool strict;
};

/* 0, or the exit status of the usage error reported. */
static int network_args(int argc, char **argv, struct net_args *n)
{
	static const char *const valued[] = { "--network-policy", "--allowed-cidr", "--denied-cidr", "--allowed-domain",
					      NULL };
	struct args it = ARGS_INIT(argc, argv, valued);
	const char *a, *v;
	int r;
	while ((r = args_next(&it, &a, &v)) > 0) {
		if (!a) {
			if (n->id)
				return usage_error("network takes one VM id");
			n->id = v;
		} else if (!strcmp(a, "--json"))
			json_mode = true;
		else if (!strcmp(a, "--strict-domains"))
			n->strict = true;
		else if (!strcmp(a, "--network-policy"))
			n->policy = v;
		else if (!strcmp(a, "--allowed-cidr"))
			csv_append(n->allowed, v);
		else if (!strcmp(a, "--denied-cidr"))
			csv_append(n->denied, v);
		else if (!strcmp(a, "--allowed-domain"))
			csv_append(n->domains, v);
		else
			return usage_error("unknown option %s", a);
	}
	if (r < 0)
		return VMSAN_EXIT_USAGE;
	if (!n->id || !n->policy)
		return usage_error(!n->id ? "give the VM's id" : "--network-policy is required");
	return 0;
}

/* The record's new network section: the old one with the policy and its
 * lists replaced; NULL with e set. */
static json_t *new_network(const struct state *st, json_t *old, struct net_args *n, struct verr *e)
{
	json_t *nw = json_deep_copy(old);
	if (!strcmp(n->policy, "allow-all") &&
	    (json_array_size(n->allowed) || json_array_size(n->denied) || json_array_size(n->domains)))
		n->policy = "custom"; /* as create records it */
	json_object_set_new(nw, "policy", json_string(n->policy));
	json_object_set(nw, "allowedCidrs", n->allowed);
	json_object_set(nw, "deniedCidrs", n->denied);
	json_object_del(nw, "strictDomains");
	if (json_array_size(n->domains)) {
		json_object_set(nw, "allowedDomains", n->domains);
		if (n->strict)
			json_object_set_new(nw, "strictDomains", json_true());
		if (set_dns_ttls(st, nw, e) < 0) {
			json_decref(nw);
			return NULL;
		}
	} else {
		json_object_del(nw, "allowedDomains");
	}
	return nw;
}

static void print_network(const struct net_args *n, json_t *old)
{
	if (json_mode) {
		json_t *doc =
			json_pack("{s:b, s:s, s:s, s:s, s:O, s:O, s:b, s:[]}", "ok", 1, "vmId", n->id, "previousPolicy",
				  jstr(old, "policy"), "newPolicy", n->policy, "allowedCidrs", n->allowed,
				  "deniedCidrs", n->denied, "strictDomains", n->strict, "allowedDomains");
		json_array_extend(json_object_get(doc, "allowedDomains"), n->domains);
		json_dumpf(doc, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(doc);
	} else {
		printf("Network policy updated for %s: %s -> %s\n", n->id, jstr(old, "policy"), n->policy);
	}
}

int cmd_network(int argc, char **argv)
{
	struct verr e = { 0 };
	struct net_args n = { .allowed = json_array(), .denied = json_array(), .domains = json_array() };
	json_t *rec = NULL, *compiled = NULL, *nw = NULL;
	struct state st = { .vmsfd = -1 };
	int lock = -1, rc;
	if ((rc = network_args(argc, argv, &n)))
		goto out;
	if (normalize_domains(n.domains, &e) < 0 || strict_needs_domains(n.strict, n.domains, &e) < 0)
		goto fail;
	rec = open_running_vm(&st, n.id, &lock, &e);
	if (!rec)
		goto fail;
	json_t *old = json_object_get(rec, "network");
	if (!(nw = new_network(&st, old, &n, &e)))
		goto fail;
	/* Compiled first (here, by lib/policy.c: what vmsan-nftables runs; with
	 * --no-netns the policy goes raw to vmsan-net, which compiles it before
	 * it applies anything): a bad CIDR or policy name changes nothing. */
	if (!(compiled = rules_request(n.id, jstr(rec, "dir"), nw, &e)))
		goto fail;
	json_t *ap = call("net", "apply-rules", json_incref(compiled), true, &e);
	if (!ap)
		goto fail;
	json_decref(ap);
	if (store(&st, n.id, json_pack("{s:O}", "network", nw), NULL, &e) < 0) {
		/* The record still names the old policy: put its rules back. */
		json_t *back = rules_request(n.id, jstr(rec, "dir"), old, &(struct verr){ 0 });
		if (back)
			json_decref(call("net", "apply-rules", back, true, &(struct verr){ 0 }));
		goto fail;
	}
	print_network(&n, old);
	rc = 0;
	goto out;
fail:
	rc = report(&e);
out:
	if (lock >= 0)
		close(lock);
	if (st.vmsfd >= 0)
		state_release(&st);
	json_decref(rec);
	json_decref(nw);
	json_decref(compiled);
	json_decref(n.allowed);
	json_decref(n.denied);
	json_decref(n.domains);
	return rc;
}
