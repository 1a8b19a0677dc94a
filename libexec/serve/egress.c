/* E2B's network settings as vmsan's egress policy.
 *
 * E2B allows everything unless denyOut says otherwise, and allowOut wins
 * over denyOut; vmsan's custom policy lets denied CIDRs win.  The two
 * agree on what E2B's documentation shows: denyOut ["0.0.0.0/0"] with an
 * allowOut list (addresses, CIDRs, domain names) is vmsan's allow list,
 * and a denyOut list alone is vmsan's deny list.  An allowOut that would
 * punch a hole in a narrower denyOut has no vmsan equivalent: refused. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "serve/serve.h"

#define LIST_MAX 64

enum { ALLOW_CIDR, ALLOW_DOMAIN, DENY_CIDR };

static bool append(char *list, size_t cap, const char *s)
{
	size_t used = strlen(list);

	return (size_t)snprintf(list + used, cap - used, "%s%s", used ? "," : "", s) < cap - used;
}

static const char *read_list(json_t *net, const char *key, struct egress *o, bool allow, bool *deny_all)
{
	json_t *list = json_object_get(net, key), *x;
	size_t i;
	char why[128];

	if (!list || json_is_null(list))
		return NULL;
	if (!json_is_array(list) || json_array_size(list) > LIST_MAX)
		return allow ? "network.allowOut: expected at most 64 addresses, CIDRs or domain names"
			     : "network.denyOut: expected at most 64 addresses or CIDRs";
	json_array_foreach(list, i, x) {
		const char *s = json_string_value(x);
		bool cidr = s && (!valid_cidr(s, why, sizeof why) || !valid_ipv4(s, why, sizeof why));
		int to = cidr ? (allow ? ALLOW_CIDR : DENY_CIDR) : ALLOW_DOMAIN;
		if (!s || (!cidr && (!allow || valid_domain(s, why, sizeof why))))
			return allow ? "network.allowOut: expected addresses, CIDRs or domain names"
				     : "network.denyOut: expected addresses or CIDRs";
		if (!allow && !strcmp(s, "0.0.0.0/0")) {
			*deny_all = true;
			continue;
		}
		if (!append(o->lists[to], sizeof o->lists[to], s))
			return "network: the lists are too long";
	}
	return NULL;
}

const char *egress_args(json_t *net, json_t *inet, struct egress *o)
{
	static const char *const known[] = { "allowOut", "denyOut", "allowPublicTraffic", NULL };
	static const char *const flags[] = { "--allowed-cidr", "--allowed-domain", "--denied-cidr" };
	bool deny_all = json_is_false(inet);
	const char *why, *k;
	json_t *v;

	memset(o, 0, sizeof *o);
	if (inet && !json_is_null(inet) && !json_is_boolean(inet))
		return "allow_internet_access: expected a boolean";
	if (net && !json_is_null(net)) {
		if (!json_is_object(net))
			return "network: expected an object";
		json_object_foreach(net, k, v) {
			size_t i;
			for (i = 0; known[i] && strcmp(known[i], k); i++)
				;
			if (!known[i] && !json_is_null(v))
				return "network: only allowOut, denyOut and allowPublicTraffic are supported";
		}
		if ((why = read_list(net, "denyOut", o, false, &deny_all)) ||
		    (why = read_list(net, "allowOut", o, true, &deny_all)))
			return why;
	}
	bool allows = o->lists[ALLOW_CIDR][0] || o->lists[ALLOW_DOMAIN][0];
	if (allows && !deny_all)
		return "network.allowOut: supported with denyOut [\"0.0.0.0/0\"] (an allow list); an allowOut "
		       "inside a narrower denyOut has no vmsan equivalent";
	o->args[o->n++] = "--network-policy";
	o->args[o->n++] = deny_all && !allows ? "deny-all" : o->lists[DENY_CIDR][0] || allows ? "custom" : "allow-all";
	for (int l = 0; l < 3; l++)
		if (o->lists[l][0]) {
			o->args[o->n++] = flags[l];
			o->args[o->n++] = o->lists[l];
		}
	return NULL;
}
