/* The ruleset language of nft.h, its documents: a ruleset's sets, chains
 * and rules checked whole, and rendered as nft(8) text.  A rule's matchers
 * and verdict are nftrule.c's; applying a ruleset is nftnl.c's. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netfilter.h>

#include "nft-impl.h"

#define MAX_RULES 512
#define MAX_MATCH 12

static const char *const hooks[] = { "prerouting", "input", "forward", "output", "postrouting" };
static const int hooknums[] = { NF_INET_PRE_ROUTING, NF_INET_LOCAL_IN, NF_INET_FORWARD, NF_INET_LOCAL_OUT,
				NF_INET_POST_ROUTING };

int nft_index_of(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return (int)i;
	return -1;
}

int nft_hooknum(const char *hook)
{
	int i = INDEX_OF(hook, hooks);

	return i < 0 ? -1 : hooknums[i];
}

static bool good_name(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

json_t *nft_find_named(json_t *arr, const char *name)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v)
		if (json_is_string(json_object_get(v, "name")) &&
		    strcmp(json_string_value(json_object_get(v, "name")), name) == 0)
			return v;
	return NULL;
}

int nft_check_port(json_t *v, const char *where, struct verr *e)
{
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535)
		return BAD_RULESET("%s: expected a port 1-65535", where);
	return 0;
}

static int check_ipv4(json_t *v, const char *where, struct verr *e)
{
	unsigned a;

	if (!json_is_string(v) || parse_ipv4(json_string_value(v), &a) != 0)
		return BAD_RULESET("%s: expected an IPv4 address", where);
	return 0;
}

static int check_sets(json_t *sets, struct verr *e)
{
	size_t i, k;
	json_t *s, *el;

	json_array_foreach(sets, i, s) {
		struct jr r;
		char path[64];
		const char *name, *key, *data;
		json_t *elems;

		snprintf(path, sizeof(path), "ruleset.sets[%zu]", i);
		if (!json_is_object(s))
			return BAD_RULESET("%s: expected an object", path);
		jr_init(&r, s, path, e);
		name = jr_string(&r, "name", JR_REQUIRED, NULL);
		key = jr_string(&r, "key", JR_REQUIRED, NULL);
		if (key && !strcmp(key, "ipv4_addr")) {
			/* an address set whose elements time out, filled at run
			 * time (vmsan-dns): no elements here */
			bool timeout = false;

			jr_bool(&r, "timeout", JR_REQUIRED, &timeout);
			if (jr_end(&r))
				return -1;
			if (!good_name(name, 31))
				return BAD_RULESET("%s.name: '%s' is not a set name ([a-z0-9_], 1-31)", path, name);
			if (!timeout)
				return BAD_RULESET("%s.timeout: address sets are filled at run time and must time out",
						   path);
			continue;
		}
		data = jr_string(&r, "data", JR_REQUIRED, NULL);
		elems = jr_array(&r, "elements", JR_OPTIONAL, 1024);
		if (jr_end(&r))
			return -1;
		if (!good_name(name, 31))
			return BAD_RULESET("%s.name: '%s' is not a set name ([a-z0-9_], 1-31)", path, name);
		if (strcmp(key, "inet_service") != 0)
			return BAD_RULESET("%s.key: expected inet_service (a map) or ipv4_addr (a set)", path);
		if (strcmp(data, "ipv4_addr") != 0 && strcmp(data, "inet_service") != 0)
			return BAD_RULESET("%s.data: expected ipv4_addr or inet_service", path);
		json_array_foreach(elems, k, el) {
			char where[96];

			snprintf(where, sizeof(where), "%s.elements[%zu]", path, k);
			if (!json_is_array(el) || json_array_size(el) != 2)
				return BAD_RULESET("%s: expected [key, data]", where);
			if (nft_check_port(json_array_get(el, 0), where, e) ||
			    (strcmp(data, "ipv4_addr") == 0 ? check_ipv4(json_array_get(el, 1), where, e)
							    : nft_check_port(json_array_get(el, 1), where, e)))
				return -1;
		}
	}
	return 0;
}

static int check_chains(json_t *chains, struct verr *e)
{
	static const char *const types[] = { "filter", "nat" };
	static const char *const policies[] = { "accept", "drop" };
	size_t i;
	json_t *c;

	json_array_foreach(chains, i, c) {
		struct jr r;
		char path[64];
		const char *name, *type, *hook, *policy;
		long long prio;

		snprintf(path, sizeof(path), "ruleset.chains[%zu]", i);
		if (!json_is_object(c))
			return BAD_RULESET("%s: expected an object", path);
		jr_init(&r, c, path, e);
		name = jr_string(&r, "name", JR_REQUIRED, NULL);
		type = jr_string(&r, "type", JR_REQUIRED, NULL);
		hook = jr_string(&r, "hook", JR_REQUIRED, NULL);
		jr_int(&r, "priority", JR_REQUIRED, -400, 400, &prio);
		policy = jr_string(&r, "policy", JR_OPTIONAL, NULL);
		if (jr_end(&r))
			return -1;
		if (!good_name(name, 31))
			return BAD_RULESET("%s.name: '%s' is not a chain name", path, name);
		if (INDEX_OF(type, types) < 0)
			return BAD_RULESET("%s.type: expected filter or nat", path);
		if (nft_hooknum(hook) < 0)
			return BAD_RULESET("%s.hook: '%s' is not a hook", path, hook);
		if (policy && INDEX_OF(policy, policies) < 0)
			return BAD_RULESET("%s.policy: expected accept or drop", path);
		if (policy && strcmp(type, "nat") == 0 && strcmp(policy, "accept") != 0)
			return BAD_RULESET("%s.policy: a nat chain cannot drop", path);
	}
	return 0;
}

/* The IPv6 companion table: filter chains, rules that match interfaces
 * only and accept or drop (it exists to drop the guest's IPv6). */
static int check_ip6(json_t *ip6, struct verr *e)
{
	struct jr r;
	json_t *chains, *rules, *c, *rule;
	size_t i;

	if (!json_is_object(ip6))
		return BAD_RULESET("ruleset.ip6: expected an object");
	jr_init(&r, ip6, "ruleset.ip6", e);
	chains = jr_array(&r, "chains", JR_REQUIRED, 8);
	rules = jr_array(&r, "rules", JR_REQUIRED, 16);
	if (jr_end(&r) || check_chains(chains, e))
		return -1;
	json_array_foreach(chains, i, c)
		if (strcmp(json_string_value(json_object_get(c, "type")), "filter"))
			return BAD_RULESET("ruleset.ip6.chains[%zu].type: only filter chains", i);
	json_array_foreach(rules, i, rule) {
		char where[64];
		const char *cname, *v;
		json_t *match;

		snprintf(where, sizeof(where), "ruleset.ip6.rules[%zu]", i);
		if (!json_is_object(rule))
			return BAD_RULESET("%s: expected an object", where);
		jr_init(&r, rule, where, e);
		cname = jr_string(&r, "chain", JR_REQUIRED, NULL);
		match = jr_array(&r, "match", JR_OPTIONAL, MAX_MATCH);
		v = jr_string(&r, "verdict", JR_REQUIRED, NULL);
		if (jr_end(&r))
			return -1;
		if (!nft_find_named(chains, cname))
			return BAD_RULESET("%s.chain: no chain '%s'", where, cname);
		if (nft_rule_check(match, NULL, NULL, NULL, where, e))
			return -1;
		if (strcmp(v, "accept") && strcmp(v, "drop"))
			return BAD_RULESET("%s.verdict: accept or drop", where);
	}
	return 0;
}

int nft_ruleset_check(json_t *rs, struct verr *e)
{
	struct jr r;
	const char *table, *family;
	json_t *sets, *chains, *rules, *rule, *ip6;
	size_t i;

	if (!json_is_object(rs))
		return BAD_RULESET("ruleset: expected an object");
	jr_init(&r, rs, "ruleset", e);
	family = jr_string(&r, "family", JR_REQUIRED, NULL);
	table = jr_string(&r, "table", JR_REQUIRED, NULL);
	sets = jr_array(&r, "sets", JR_OPTIONAL, 16);
	chains = jr_array(&r, "chains", JR_REQUIRED, 16);
	rules = jr_array(&r, "rules", JR_REQUIRED, MAX_RULES);
	ip6 = jr_any(&r, "ip6", JR_OPTIONAL);
	if (jr_end(&r))
		return -1;
	if (strcmp(family, "ip"))
		return BAD_RULESET("ruleset.family: only 'ip' is supported");
	if (!good_name(table, 31) || strncmp(table, "vmsan", 5))
		return BAD_RULESET("ruleset.table: '%s' is not ours (names start with 'vmsan')", table);
	if (check_sets(sets, e) || check_chains(chains, e) || (ip6 && check_ip6(ip6, e)))
		return -1;
	json_array_foreach(rules, i, rule) {
		char where[64];
		const char *cname;
		json_t *chain, *match;

		snprintf(where, sizeof(where), "ruleset.rules[%zu]", i);
		if (!json_is_object(rule))
			return BAD_RULESET("%s: expected an object", where);
		jr_init(&r, rule, where, e);
		cname = jr_string(&r, "chain", JR_REQUIRED, NULL);
		match = jr_array(&r, "match", JR_OPTIONAL, MAX_MATCH);
		jr_any(&r, "verdict", JR_REQUIRED);
		if (jr_end(&r))
			return -1;
		chain = nft_find_named(chains, cname);
		if (!chain)
			return BAD_RULESET("%s.chain: no chain '%s'", where, cname);
		if (nft_rule_check(match, json_object_get(rule, "verdict"), chain, sets, where, e))
			return -1;
	}
	return 0;
}

/* ---- rendering as nft(8) text --------------------------------------- */

void nft_put(struct nft_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (b->s && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		b->cap = (b->cap + (size_t)n + 1) * 2;
		b->s = realloc(b->s, b->cap);
		if (!b->s)
			return;
	}
}

static void render_chains(struct nft_buf *b, json_t *chains, json_t *rules)
{
	json_t *c, *r;
	size_t i, k;

	json_array_foreach(chains, i, c) {
		const char *name = json_string_value(json_object_get(c, "name"));
		const char *pol = json_string_value(json_object_get(c, "policy"));

		nft_put(b, "\tchain %s {\n\t\ttype %s hook %s priority %lld;%s%s%s\n", name,
			json_string_value(json_object_get(c, "type")), json_string_value(json_object_get(c, "hook")),
			json_integer_value(json_object_get(c, "priority")), pol ? " policy " : "", pol ? pol : "",
			pol ? ";" : "");
		json_array_foreach(rules, k, r) {
			if (strcmp(json_string_value(json_object_get(r, "chain")), name))
				continue;
			nft_put(b, "\t\t");
			nft_rule_render(b, r);
			nft_put(b, "\n");
		}
		nft_put(b, "\t}\n");
	}
}

char *nft_ruleset_render(json_t *rs)
{
	struct nft_buf b = { 0 };
	json_t *s, *el, *ip6 = json_object_get(rs, "ip6");
	size_t i, k;

	nft_put(&b, "table %s %s {\n", json_string_value(json_object_get(rs, "family")),
		json_string_value(json_object_get(rs, "table")));
	json_array_foreach(json_object_get(rs, "sets"), i, s) {
		if (!json_object_get(s, "data")) {
			nft_put(&b, "\tset %s {\n\t\ttype ipv4_addr\n\t\tflags timeout\n\t}\n",
				json_string_value(json_object_get(s, "name")));
			continue;
		}
		nft_put(&b, "\tmap %s {\n\t\ttype %s : %s\n", json_string_value(json_object_get(s, "name")),
			json_string_value(json_object_get(s, "key")), json_string_value(json_object_get(s, "data")));
		if (json_array_size(json_object_get(s, "elements"))) {
			nft_put(&b, "\t\telements = { ");
			json_array_foreach(json_object_get(s, "elements"), k, el) {
				json_t *d = json_array_get(el, 1);

				nft_put(&b, "%s%lld : ", k ? ", " : "", json_integer_value(json_array_get(el, 0)));
				if (json_is_string(d))
					nft_put(&b, "%s", json_string_value(d));
				else
					nft_put(&b, "%lld", json_integer_value(d));
			}
			nft_put(&b, " }\n");
		}
		nft_put(&b, "\t}\n");
	}
	render_chains(&b, json_object_get(rs, "chains"), json_object_get(rs, "rules"));
	nft_put(&b, "}\n");
	if (ip6) {
		nft_put(&b, "table ip6 %s {\n", json_string_value(json_object_get(rs, "table")));
		render_chains(&b, json_object_get(ip6, "chains"), json_object_get(ip6, "rules"));
		nft_put(&b, "}\n");
	}
	return b.s;
}
