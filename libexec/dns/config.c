/* The settings, one JSON object on stdin from vmsan-net:
 *
 *   {"id", "uid", "gid", "upstreams":[IP...], "domains":[PATTERN...],
 *    "ttlMin":S, "ttlMax":S, "strict":BOOL}
 *
 * read strictly and checked whole into R (upstreams, TTL bounds, the allow
 * list) and c (who to become, strict).  Any error is ERR_DNS. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#include "dns/dns.h"

struct dns_allow *allow_from(json_t *list, char *why, size_t n)
{
	size_t k = json_array_size(list), i;
	char(*norm)[DNS_NAME_MAX] = calloc(k ? k : 1, DNS_NAME_MAX);
	const char **ptrs = calloc(k ? k : 1, sizeof *ptrs);
	struct dns_allow *a = NULL;
	json_t *x;

	if (!norm || !ptrs) {
		snprintf(why, n, "out of memory");
		goto out;
	}
	json_array_foreach(list, i, x) {
		char w[200];
		if (!json_is_string(x) || normalize_domain(json_string_value(x), norm[i], DNS_NAME_MAX, w, sizeof w)) {
			snprintf(why, n, "domains[%zu]: %s", i, json_is_string(x) ? w : "expected a string");
			goto out;
		}
		ptrs[i] = norm[i];
	}
	a = dns_allow_new(ptrs, k);
	if (!a)
		snprintf(why, n, "out of memory");
out:
	free(norm);
	free(ptrs);
	return a;
}

/* The upstreams, port 53 each. */
static int upstreams(json_t *ups, struct verr *e)
{
	size_t i;
	json_t *x;

	json_array_foreach(ups, i, x) {
		unsigned a;
		if (!json_is_string(x) || parse_ipv4(json_string_value(x), &a))
			return DNS_FAIL("upstreams[%zu]: not an IPv4 address", i);
		R.up[R.nup].sin_family = AF_INET;
		R.up[R.nup].sin_port = htons(53);
		R.up[R.nup++].sin_addr.s_addr = htonl(a);
	}
	return 0;
}

int config_read(struct config *c, struct verr *e)
{
	struct verr re = { 0 }; /* the reader's own error, reported as ERR_DNS */
	long long uid = 0, gid = 0, ttl_min = NET_DNS_TTL_MIN, ttl_max = NET_DNS_TTL_MAX;
	json_t *cfg = request_read(0, &re), *ups, *doms;
	struct jr r;
	char why[256];
	int rc = -1;

	if (!cfg)
		return DNS_FAIL("%s", re.message);
	jr_init(&r, cfg, "request", &re);
	jr_string(&r, "id", JR_REQUIRED, valid_vm_id);
	jr_int(&r, "uid", JR_REQUIRED, 1, 4294967294LL, &uid);
	jr_int(&r, "gid", JR_REQUIRED, 1, 4294967294LL, &gid);
	ups = jr_array(&r, "upstreams", JR_REQUIRED, MAX_UPSTREAMS);
	doms = jr_array(&r, "domains", JR_REQUIRED, NET_DNS_DOMAINS_MAX);
	jr_int(&r, "ttlMin", JR_OPTIONAL, 1, 86400, &ttl_min);
	jr_int(&r, "ttlMax", JR_OPTIONAL, 1, 86400, &ttl_max);
	c->strict = false;
	jr_bool(&r, "strict", JR_OPTIONAL, &c->strict);
	if (jr_end(&r)) {
		DNS_FAIL("%s", re.message);
		goto out;
	}
	if (ttl_min > ttl_max || !json_array_size(ups)) {
		DNS_FAIL("ttlMin above ttlMax, or no upstream");
		goto out;
	}
	R.ttl_min = (uint32_t)ttl_min;
	R.ttl_max = (uint32_t)ttl_max;
	if (upstreams(ups, e))
		goto out;
	R.allow = allow_from(doms, why, sizeof why);
	if (!R.allow) {
		DNS_FAIL("%s", why);
		goto out;
	}
	c->uid = (uid_t)uid;
	c->gid = (gid_t)gid;
	rc = 0;
out:
	json_decref(cfg);
	return rc;
}
