/* The setter: the one process that keeps CAP_NET_ADMIN (and nothing
 * else).  It reads fixed-size requests from the resolver over a
 * socketpair, checks each address and timeout, and applies them to the
 * set vmsan/dns_allow of this namespace: all that its requests can touch.
 * setter_call is the resolver's side of that channel. */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/socket.h>

#include "dns/dns.h"

/* Addresses never put in the set: this host, its VMs, link-local (cloud
 * metadata, 169.254.169.254), nowhere. */
bool addr_forbidden(uint32_t a)
{
	uint8_t top = (uint8_t)(a >> 24);
	unsigned pool_base = NET_POOL_BASE;

	return top == 0 || top == 127 || top >= 224 || (a & 0xfffe0000u) == pool_base ||
	       (a & 0xffff0000u) == 0xa9fe0000u || /* 169.254.0.0/16 */
	       (a & 0xfffffffcu) == 0xac100000u;   /* the VM's own link, 172.16.0.0/30 */
}

static int setter_apply(struct mnl_socket *nl, const struct set_req *rq, size_t n)
{
	static struct nft_addr_elem el[MAX_TRACK];
	struct verr e = { 0 };

	for (size_t i = 0; i < n; i++) {
		el[i].addr = rq->el[i].addr;
		el[i].timeout_ms = (uint64_t)rq->el[i].timeout_s * 1000;
	}
	if (nft_addr_set_update(nl, NET_TABLE, NET_DNS_SET, (enum nft_addr_op)rq->op, el, n, &e) == 0)
		return 0;
	if (rq->op != NFT_ADDR_REFRESH || !verr_take(&e, "ERR_NFT_NOENT"))
		return -1;
	/* One of them timed out meanwhile: one by one, adding what is gone. */
	for (size_t i = 0; i < n; i++) {
		struct verr e2 = { 0 };
		if (nft_addr_set_update(nl, NET_TABLE, NET_DNS_SET, NFT_ADDR_REFRESH, &el[i], 1, &e2) &&
		    (!verr_take(&e2, "ERR_NFT_NOENT") ||
		     nft_addr_set_update(nl, NET_TABLE, NET_DNS_SET, NFT_ADDR_ADD, &el[i], 1, &e2)))
			return -1;
	}
	return 0;
}

/* A request of n bytes: whole, a known op, and every address one the set
 * may hold, every timeout (but a delete's) 1 s to a day. */
static bool setter_valid(const struct set_req *rq, size_t n)
{
	size_t k = rq->n;

	if (n < SET_REQ_HDR || rq->op > NFT_ADDR_SYNC || k > MAX_TRACK || n != SET_REQ_HDR + k * sizeof rq->el[0])
		return false;
	for (size_t i = 0; i < k; i++)
		if (addr_forbidden(rq->el[i].addr) ||
		    (rq->op != NFT_ADDR_DEL && (rq->el[i].timeout_s < 1 || rq->el[i].timeout_s > 86400)))
			return false;
	return true;
}

/* Until the resolver is gone: a request, its answer. */
void setter_loop(int sp, struct mnl_socket *nl)
{
	static struct set_req rq;

	for (;;) {
		ssize_t n = recv(sp, &rq, sizeof rq, 0);
		int32_t rc;

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return; /* the resolver is gone */
		}
		rc = setter_valid(&rq, (size_t)n) ? setter_apply(nl, &rq, rq.n) : -1;
		if (send(sp, &rc, sizeof rc, 0) != sizeof rc)
			return;
	}
}

/* The resolver's side: R.rq's first n elements as op; the setter's answer. */
int setter_call(uint32_t op, size_t n)
{
	int32_t rc = -1;

	R.rq.op = op;
	R.rq.n = (uint32_t)n;
	if (send(R.sp, &R.rq, SET_REQ_HDR + n * sizeof R.rq.el[0], 0) < 0 || recv(R.sp, &rc, sizeof rc, 0) != sizeof rc)
		return -1;
	return rc;
}
