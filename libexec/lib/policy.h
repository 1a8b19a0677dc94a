/* The policy compiler (policy.c): a VM's egress policy as a ruleset. */
#ifndef VMSAN_POLICY_H
#define VMSAN_POLICY_H

#include "vmsan.h"

/* Where the rules go. */
struct policy_target {
	const char *table;  /* NET_TABLE in a VM's namespace; "vmsan_<id>" on the host */
	const char *tap;    /* the guest's link */
	const char *uplink; /* the namespace's uplink; NULL: the host's namespace */
	const char *guest;  /* the guest's address */
};

/* Reads policy, allowedCidrs, deniedCidrs, dnsResolvers, allowedDomains,
 * strictDomains, publishedPorts and agentPort from r (and ends it);
 * replies {policy (effective), ruleset, publishedPorts [[host, guest]...]},
 * or NULL with e set. */
json_t *policy_compile(struct jr *r, const struct policy_target *t, struct verr *e);

#endif
