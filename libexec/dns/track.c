/* The cache of what the set holds and why: (address, pattern) pairs with
 * their expiry, so that an answer only adds or refreshes what it must, a
 * --strict-domains connection can be checked against the name that
 * brought its address in, and the set can be made again from what the
 * remaining patterns justify. */
#define _GNU_SOURCE
#include <string.h>

#include "dns/dns.h"

/* Entries by address: a chained hash, keyed at random (the upstreams
 * choose the addresses), rebuilt whenever entries move. */
static uint32_t bucket_of(uint32_t addr)
{
	uint32_t h = (addr ^ R.hash_key) * 0x9e3779b1u;

	h ^= h >> 15;
	return (h * 0x85ebca6bu) & (TRACK_HASH - 1);
}

static void track_link(size_t i)
{
	uint32_t b = bucket_of(R.track[i].addr);

	R.track[i].next = R.bucket[b];
	R.bucket[b] = (int32_t)i;
}

void track_rehash(void)
{
	memset(R.bucket, 0xff, sizeof R.bucket);
	for (size_t i = 0; i < R.ntrack; i++)
		track_link(i);
}

void track_purge(int64_t now)
{
	size_t k = 0;

	for (size_t i = 0; i < R.ntrack; i++)
		if (R.track[i].expires > now)
			R.track[k++] = R.track[i];
	if (k != R.ntrack) {
		R.ntrack = k;
		track_rehash();
	}
}

static uint32_t clamp_ttl(uint32_t ttl)
{
	return ttl < R.ttl_min ? R.ttl_min : ttl > R.ttl_max ? R.ttl_max : ttl;
}

/* The answer's addresses into the set (and the tracking) before it goes
 * out: -1 if they could not be. */
int allow_addrs(long pat, const struct dns_addr *a, size_t na)
{
	int64_t now = now_ms();
	size_t nadd = 0, nref = 0;
	uint32_t add[MAX_ADDRS][2], ref[MAX_ADDRS][2];

	if (now >= R.purge_at || R.ntrack + na > MAX_TRACK) {
		track_purge(now);
		R.purge_at = now + 5000;
	}
	for (size_t i = 0; i < na; i++) {
		/* the guest may hear it, but it never reaches the set (the
		 * setter would refuse the whole batch) */
		if (addr_forbidden(a[i].addr))
			continue;
		uint32_t t = clamp_ttl(a[i].ttl);
		int64_t exp = now + (int64_t)t * 1000, have = 0;
		struct entry *mine = NULL;
		for (int32_t k = R.bucket[bucket_of(a[i].addr)]; k >= 0; k = R.track[k].next)
			if (R.track[k].addr == a[i].addr && R.track[k].expires > now) {
				if (R.track[k].expires > have)
					have = R.track[k].expires;
				if (R.track[k].pat == pat)
					mine = &R.track[k];
			}
		/* in the set until "have"; a new timeout only if it is later,
		 * and not for an element about to time out (its delete could
		 * miss it): then it is added again */
		if (!have || have < now + 1000) {
			add[nadd][0] = a[i].addr;
			add[nadd++][1] = t;
		} else if (exp > have + 1000) {
			ref[nref][0] = a[i].addr;
			ref[nref++][1] = t;
		}
		if (mine) {
			if (exp > mine->expires)
				mine->expires = exp;
		} else if (R.ntrack < MAX_TRACK) {
			R.track[R.ntrack] = (struct entry){ a[i].addr, -1, pat, exp };
			track_link(R.ntrack++);
		} else {
			return -1; /* full: nothing is allowed beyond it */
		}
	}
	for (int pass = 0; pass < 2; pass++) {
		size_t n = pass ? nref : nadd;
		uint32_t(*l)[2] = pass ? ref : add;
		for (size_t i = 0; i < n; i++) {
			R.rq.el[i].addr = l[i][0];
			R.rq.el[i].timeout_s = l[i][1];
		}
		if (n && setter_call(pass ? NFT_ADDR_REFRESH : NFT_ADDR_ADD, n))
			return -1;
	}
	return 0;
}

/* The set made exactly what the tracking justifies (after a list change,
 * and after vmsan-net replaced the ruleset). */
int track_resync(void)
{
	int64_t now = now_ms();
	size_t n = 0;

	track_purge(now);
	/* each address once, at its latest expiry: from the entry of it that
	 * comes first in the table */
	for (size_t i = 0; i < R.ntrack; i++) {
		uint32_t addr = R.track[i].addr;
		int64_t until = R.track[i].expires;
		bool first = true;
		for (int32_t k = R.bucket[bucket_of(addr)]; k >= 0 && first; k = R.track[k].next)
			if (R.track[k].addr == addr) {
				if ((size_t)k < i)
					first = false;
				else if (R.track[k].expires > until)
					until = R.track[k].expires;
			}
		if (first) {
			R.rq.el[n].addr = addr;
			R.rq.el[n++].timeout_s = (uint32_t)((until - now + 999) / 1000);
		}
	}
	return setter_call(NFT_ADDR_SYNC, n);
}

/* Is addr in the set because of pattern pat (still)? */
bool track_has(uint32_t addr, long pat)
{
	int64_t now = now_ms();

	for (int32_t k = R.bucket[bucket_of(addr)]; k >= 0; k = R.track[k].next)
		if (R.track[k].addr == addr && R.track[k].pat == pat && R.track[k].expires > now)
			return true;
	return false;
}
