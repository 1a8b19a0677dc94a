/* vmsan network: a running VM's egress policy, changed live. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vm/vm.h"

const char network_usage[] =
	"usage: vmsan network ID --network-policy allow-all|deny-all|custom\n"
	"                     [--allowed-cidr CIDR,...] [--denied-cidr CIDR,...]\n"
	"                     [--allowed-domain NAME|*.NAME,...] [--strict-domains] [--json]\n\n"
	"Replaces a running VM's egress policy in one nftables batch: the new\n"
	"rules apply to every packet at once, established flows included.  The\n"
	"lists given replace the old ones (none given: none); addresses that only\n"
	"a removed domain allowed are unreachable at once.  DNS resolvers and\n"
	"published ports stay as they are.  Nothing changes when anything is\n"
	"invalid.\n";

int cmd_network(int argc, char **argv)
{
	struct verr e = { 0 };
	const char *id = NULL, *policy = NULL;
	json_t *allowed = json_array(), *denied = json_array(), *domains = json_array();
	json_t *rec = NULL, *compiled = NULL, *nw = NULL;
	struct state st = { .vmsfd = -1 };
	int lock = -1, rc;
	bool strict = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--json")) {
			json_mode = true;
			continue;
		}
		if (!strcmp(a, "--strict-domains")) {
			strict = true;
			continue;
		}
		if (a[0] != '-') {
			if (id) {
				rc = usage_error("network takes one VM id");
				goto out;
			}
			id = a;
			continue;
		}
		if (!v) {
			rc = usage_error("unknown option or missing value: %s", a);
			goto out;
		}
		i++;
		if (!strcmp(a, "--network-policy"))
			policy = v;
		else if (!strcmp(a, "--allowed-cidr"))
			csv_append(allowed, v);
		else if (!strcmp(a, "--denied-cidr"))
			csv_append(denied, v);
		else if (!strcmp(a, "--allowed-domain"))
			csv_append(domains, v);
		else {
			rc = usage_error("unknown option %s", a);
			goto out;
		}
	}
	if (!id || !policy) {
		rc = usage_error(!id ? "give the VM's id" : "--network-policy is required");
		goto out;
	}
	if (normalize_domains(domains, &e) < 0)
		goto fail;
	if (strict_needs_domains(strict, domains, &e) < 0)
		goto fail;
	rec = open_running_vm(&st, id, &lock, &e);
	if (!rec)
		goto fail;
	json_t *old = json_object_get(rec, "network");
	nw = json_deep_copy(old);
	if (!strcmp(policy, "allow-all") &&
	    (json_array_size(allowed) || json_array_size(denied) || json_array_size(domains)))
		policy = "custom";      /* as create records it */
	json_object_set_new(nw, "policy", json_string(policy));
	json_object_set(nw, "allowedCidrs", allowed);
	json_object_set(nw, "deniedCidrs", denied);
	json_object_del(nw, "strictDomains");
	if (json_array_size(domains)) {
		json_object_set(nw, "allowedDomains", domains);
		if (strict)
			json_object_set_new(nw, "strictDomains", json_true());
		if (set_dns_ttls(&st, nw, &e) < 0)
			goto fail;
	} else {
		json_object_del(nw, "allowedDomains");
	}
	/* Compiled first (by vmsan-nftables, or with --no-netns by vmsan-net
	 * before it applies anything): a bad CIDR or policy name changes
	 * nothing. */
	if (!(compiled = rules_request(id, jstr(rec, "dir"), nw, &e)))
		goto fail;
	json_t *ap = call("net", "apply-rules", json_incref(compiled), true, &e);
	if (!ap)
		goto fail;
	json_decref(ap);
	if (store(&st, id, json_pack("{s:O}", "network", nw), NULL, &e) < 0) {
		/* The record still names the old policy: put its rules back. */
		json_t *back = rules_request(id, jstr(rec, "dir"), old, &(struct verr){ 0 });
		if (back)
			json_decref(call("net", "apply-rules", back, true, &(struct verr){ 0 }));
		goto fail;
	}
	if (json_mode) {
		json_t *doc = json_pack("{s:b, s:s, s:s, s:s, s:O, s:O, s:b, s:[]}", "ok", 1, "vmId", id,
					"previousPolicy", jstr(old, "policy"), "newPolicy", policy, "allowedCidrs", allowed,
					"deniedCidrs", denied, "strictDomains", strict, "allowedDomains");
		json_array_extend(json_object_get(doc, "allowedDomains"), domains);
		json_dumpf(doc, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(doc);
	} else {
		printf("Network policy updated for %s: %s -> %s\n", id, jstr(old, "policy"), policy);
	}
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
	json_decref(allowed);
	json_decref(denied);
	json_decref(domains);
	return rc;
}
