/* The netlink side of nft.h (libnftnl over libmnl): sockets, batches that
 * the kernel applies whole or not at all, a checked ruleset applied,
 * tables looked up, deleted and walked, and set elements added, deleted
 * and listed.  The expressions of a rule are nftrule.c's. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <netinet/in.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include "nft-impl.h"

struct batch {
	char *buf;
	struct mnl_nlmsg_batch *b;
	uint32_t seq;
	uint32_t acks;	 /* messages that asked for an ack */
	uint16_t family; /* of the messages: NFPROTO_IPV4, or _IPV6 for the ip6 table */
};

static int batch_init(struct batch *bt)
{
	bt->buf = malloc(1 << 20);
	if (!bt->buf)
		return -1;
	bt->b = mnl_nlmsg_batch_start(bt->buf, 1 << 20);
	bt->seq = (uint32_t)time(NULL);
	bt->family = NFPROTO_IPV4;
	nftnl_batch_begin(mnl_nlmsg_batch_current(bt->b), bt->seq++);
	mnl_nlmsg_batch_next(bt->b);
	return 0;
}

static struct nlmsghdr *batch_msg(struct batch *bt, uint16_t type, uint16_t flags)
{
	bt->acks++;
	return nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(bt->b), type, bt->family, flags | NLM_F_ACK, bt->seq++);
}

static void batch_next(struct batch *bt)
{
	mnl_nlmsg_batch_next(bt->b);
}

static void batch_free(struct batch *bt)
{
	if (bt->b)
		mnl_nlmsg_batch_stop(bt->b);
	free(bt->buf);
}

struct mnl_socket *nft_socket(struct verr *e)
{
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	struct timeval tv = { .tv_sec = 10 };

	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		verr_sys(e, "ERR_NETLINK", NULL, "cannot open a netfilter netlink socket");
		if (nl)
			mnl_socket_close(nl);
		return NULL;
	}
	setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* A batch goes in one message, and netlink refuses one above the
	 * send buffer (wmem_default, 208 KiB here): room for the 1 MiB a
	 * batch can take (with CAP_NET_ADMIN; without, the default stays). */
	setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_SNDBUFFORCE, &(int){ 2 << 20 }, sizeof(int));
	return nl;
}

/* Closing a netfilter socket right after a commit waits for nf_tables to
 * free the committed transaction (its NETLINK_URELEASE handler flushes
 * that work, an RCU grace period: ~10 ms here).  The sockets of applied
 * batches are therefore left open for the process's exit to close, after
 * the helper has replied. */
static void nft_socket_done(struct mnl_socket *nl)
{
	static struct mnl_socket *kept[16];
	static size_t nkept;

	if (nkept < sizeof(kept) / sizeof(*kept))
		kept[nkept++] = nl;
	else
		mnl_socket_close(nl);
}

/* Sends the batch on nl (NULL: a socket of its own, kept open until the
 * process exits) and reads every ack; the kernel applies all or none. */
static int batch_send_on(struct mnl_socket *given, struct batch *bt, struct verr *e)
{
	struct mnl_socket *nl = given;
	char rbuf[32768];
	uint32_t pending = bt->acks;
	ssize_t n;
	int rc = 0, err = 0;

	nftnl_batch_end(mnl_nlmsg_batch_current(bt->b), bt->seq++);
	mnl_nlmsg_batch_next(bt->b);
	if (!nl)
		nl = nft_socket(e);
	if (!nl)
		return -1;
	if (mnl_socket_sendto(nl, mnl_nlmsg_batch_head(bt->b), mnl_nlmsg_batch_size(bt->b)) < 0) {
		verr_sys(e, "ERR_NETLINK", NULL, "cannot send nftables batch");
		if (!given)
			mnl_socket_close(nl);
		return -1;
	}
	while (pending > 0 && (n = mnl_socket_recvfrom(nl, rbuf, sizeof(rbuf))) > 0) {
		struct nlmsghdr *h = (struct nlmsghdr *)rbuf;
		int left = (int)n;

		while (mnl_nlmsg_ok(h, left)) {
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *me = mnl_nlmsg_get_payload(h);

				if (me->error && !err)
					err = -me->error;
				pending--;
			}
			h = mnl_nlmsg_next(h, &left);
		}
		if (err)
			break;
	}
	if (err) {
		/* The two answers callers act on get codes of their own. */
		errno = err;
		verr_sys(e,
			 err == EEXIST	 ? "ERR_NFT_EXISTS"
			 : err == ENOENT ? "ERR_NFT_NOENT"
					 : "ERR_NFT_APPLY",
			 NULL, "nftables rejected the batch (nothing was applied)");
		rc = -1;
	} else if (pending) {
		verr_sys(e, "ERR_NFT_APPLY", NULL, "no answer from nftables");
		rc = -1;
	}
	if (!given)
		nft_socket_done(nl);
	return rc;
}

static int batch_send(struct batch *bt, struct verr *e)
{
	return batch_send_on(NULL, bt, e);
}

static void msg_table(struct batch *bt, const char *name, uint16_t type, uint16_t flags)
{
	struct nftnl_table *t = nftnl_table_alloc();

	nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
	nftnl_table_nlmsg_build_payload(batch_msg(bt, type, flags), t);
	batch_next(bt);
	nftnl_table_free(t);
}

static void put_u16_key(struct nftnl_set_elem *el, uint16_t attr, unsigned port)
{
	uint16_t p = htons((uint16_t)port);

	nftnl_set_elem_set(el, attr, &p, sizeof(p));
}

static void msg_sets(struct batch *bt, const char *table, json_t *sets)
{
	size_t i, k;
	json_t *s, *el;
	uint32_t id = 1;

	json_array_foreach(sets, i, s) {
		struct nftnl_set *set = nftnl_set_alloc();
		json_t *data = json_object_get(s, "data");
		bool addr = data && !strcmp(json_string_value(data), "ipv4_addr");
		json_t *elems = json_object_get(s, "elements");

		nftnl_set_set_str(set, NFTNL_SET_TABLE, table);
		nftnl_set_set_str(set, NFTNL_SET_NAME, json_string_value(json_object_get(s, "name")));
		nftnl_set_set_u32(set, NFTNL_SET_FAMILY, NFPROTO_IPV4);
		if (!data) {
			/* ipv4_addr, elements with timeouts (check_sets) */
			nftnl_set_set_u32(set, NFTNL_SET_KEY_TYPE, 7);
			nftnl_set_set_u32(set, NFTNL_SET_KEY_LEN, 4);
			nftnl_set_set_u32(set, NFTNL_SET_FLAGS, NFT_SET_TIMEOUT);
			nftnl_set_set_u32(set, NFTNL_SET_ID, id++);
			nftnl_set_nlmsg_build_payload(batch_msg(bt, NFT_MSG_NEWSET, NLM_F_CREATE), set);
			batch_next(bt);
			nftnl_set_free(set);
			continue;
		}
		nftnl_set_set_u32(set, NFTNL_SET_KEY_TYPE, 13); /* inet_service */
		nftnl_set_set_u32(set, NFTNL_SET_KEY_LEN, 2);
		nftnl_set_set_u32(set, NFTNL_SET_DATA_TYPE, addr ? 7 : 13);
		nftnl_set_set_u32(set, NFTNL_SET_DATA_LEN, addr ? 4 : 2);
		nftnl_set_set_u32(set, NFTNL_SET_FLAGS, NFT_SET_MAP);
		nftnl_set_set_u32(set, NFTNL_SET_ID, id++);
		nftnl_set_nlmsg_build_payload(batch_msg(bt, NFT_MSG_NEWSET, NLM_F_CREATE), set);
		batch_next(bt);
		if (json_array_size(elems)) {
			json_array_foreach(elems, k, el) {
				struct nftnl_set_elem *e = nftnl_set_elem_alloc();
				json_t *d = json_array_get(el, 1);

				put_u16_key(e, NFTNL_SET_ELEM_KEY, (unsigned)json_integer_value(json_array_get(el, 0)));
				if (addr) {
					unsigned a;
					uint32_t na;

					parse_ipv4(json_string_value(d), &a);
					na = htonl(a);
					nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, &na, 4);
				} else {
					put_u16_key(e, NFTNL_SET_ELEM_DATA, (unsigned)json_integer_value(d));
				}
				nftnl_set_elem_add(set, e);
			}
			nftnl_set_elems_nlmsg_build_payload(batch_msg(bt, NFT_MSG_NEWSETELEM, NLM_F_CREATE), set);
			batch_next(bt);
		}
		nftnl_set_free(set);
	}
}

static void msg_chains(struct batch *bt, const char *table, json_t *chains)
{
	size_t i;
	json_t *c;

	json_array_foreach(chains, i, c) {
		struct nftnl_chain *ch = nftnl_chain_alloc();
		const char *pol = json_string_value(json_object_get(c, "policy"));

		nftnl_chain_set_str(ch, NFTNL_CHAIN_TABLE, table);
		nftnl_chain_set_str(ch, NFTNL_CHAIN_NAME, json_string_value(json_object_get(c, "name")));
		nftnl_chain_set_str(ch, NFTNL_CHAIN_TYPE, json_string_value(json_object_get(c, "type")));
		nftnl_chain_set_u32(ch, NFTNL_CHAIN_HOOKNUM,
				    (uint32_t)nft_hooknum(json_string_value(json_object_get(c, "hook"))));
		nftnl_chain_set_s32(ch, NFTNL_CHAIN_PRIO, (int32_t)json_integer_value(json_object_get(c, "priority")));
		if (pol)
			nftnl_chain_set_u32(ch, NFTNL_CHAIN_POLICY, strcmp(pol, "drop") ? NF_ACCEPT : NF_DROP);
		nftnl_chain_nlmsg_build_payload(batch_msg(bt, NFT_MSG_NEWCHAIN, NLM_F_CREATE), ch);
		batch_next(bt);
		nftnl_chain_free(ch);
	}
}

static void msg_rules(struct batch *bt, const char *table, json_t *rules)
{
	size_t i;
	json_t *r;

	json_array_foreach(rules, i, r) {
		struct nftnl_rule *rule = nftnl_rule_alloc();

		nftnl_rule_set_str(rule, NFTNL_RULE_TABLE, table);
		nftnl_rule_set_str(rule, NFTNL_RULE_CHAIN, json_string_value(json_object_get(r, "chain")));
		nftnl_rule_set_u32(rule, NFTNL_RULE_FAMILY, bt->family);
		nft_rule_emit(rule, r);
		nftnl_rule_nlmsg_build_payload(batch_msg(bt, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND), rule);
		batch_next(bt);
		nftnl_rule_free(rule);
	}
}

static int table_exists(const char *name, uint16_t family, struct verr *e)
{
	struct mnl_socket *nl = nft_socket(e);
	char buf[8192];
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;
	ssize_t n;
	int rc = -1;

	if (!nl)
		goto out;
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, family, NLM_F_ACK, 1);
	nftnl_table_nlmsg_build_payload(nlh, t);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0 || (n = mnl_socket_recvfrom(nl, buf, sizeof(buf))) <= 0) {
		verr_sys(e, "ERR_NETLINK", NULL, "cannot query nftables");
		goto out;
	}
	nlh = (struct nlmsghdr *)buf;
	if (nlh->nlmsg_type == NLMSG_ERROR) {
		int err = -((struct nlmsgerr *)mnl_nlmsg_get_payload(nlh))->error;

		if (err == ENOENT) {
			rc = 0;
		} else {
			errno = err;
			verr_sys(e, "ERR_NETLINK", NULL, "cannot query table %s", name);
		}
	} else {
		rc = 1;
	}
out:
	if (nl)
		mnl_socket_close(nl);
	nftnl_table_free(t);
	return rc;
}

int nft_table_exists(const char *name, struct verr *e)
{
	return table_exists(name, NFPROTO_IPV4, e);
}

static void msg_addr_elems(struct batch *bt, const char *table, const char *set, uint16_t type,
			   const struct nft_addr_elem *el, size_t n);
static int addr_set_read(const char *table, const char *set, struct nft_addr_elem **el, size_t *n, struct verr *e);

int nft_ruleset_apply(json_t *rs, bool keep_if_exists, struct verr *e)
{
	return nft_ruleset_apply_keeping(rs, keep_if_exists, NULL, e);
}

int nft_ruleset_apply_keeping(json_t *rs, bool keep_if_exists, const char *keep_set, struct verr *e)
{
	const char *table = json_string_value(json_object_get(rs, "table"));
	struct nft_addr_elem *kept = NULL;
	struct batch bt = { 0 };
	size_t nkept = 0;
	int rc;

	if (keep_if_exists) {
		rc = nft_table_exists(table, e);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
	}
	if (keep_set && addr_set_read(table, keep_set, &kept, &nkept, e))
		return -1;
	if (batch_init(&bt) != 0) {
		free(kept);
		verr_sys(e, "ERR_NOMEM", NULL, "cannot allocate a batch");
		return -1;
	}
	/* add + delete + add: replaces the table whether or not it existed,
	 * in the same transaction as its new contents. */
	msg_table(&bt, table, NFT_MSG_NEWTABLE, NLM_F_CREATE);
	msg_table(&bt, table, NFT_MSG_DELTABLE, 0);
	msg_table(&bt, table, NFT_MSG_NEWTABLE, NLM_F_CREATE);
	msg_sets(&bt, table, json_object_get(rs, "sets"));
	if (nkept)
		msg_addr_elems(&bt, table, keep_set, NFT_MSG_NEWSETELEM, kept, nkept);
	free(kept);
	msg_chains(&bt, table, json_object_get(rs, "chains"));
	msg_rules(&bt, table, json_object_get(rs, "rules"));
	if (json_object_get(rs, "ip6")) {
		/* its IPv6 companion, in the same transaction */
		bt.family = NFPROTO_IPV6;
		msg_table(&bt, table, NFT_MSG_NEWTABLE, NLM_F_CREATE);
		msg_table(&bt, table, NFT_MSG_DELTABLE, 0);
		msg_table(&bt, table, NFT_MSG_NEWTABLE, NLM_F_CREATE);
		msg_chains(&bt, table, json_object_get(json_object_get(rs, "ip6"), "chains"));
		msg_rules(&bt, table, json_object_get(json_object_get(rs, "ip6"), "rules"));
	}
	rc = batch_send(&bt, e);
	batch_free(&bt);
	return rc;
}

int nft_table_delete(const char *name, struct verr *e)
{
	struct batch bt = { 0 };
	int v4 = table_exists(name, NFPROTO_IPV4, e), v6 = v4 < 0 ? -1 : table_exists(name, NFPROTO_IPV6, e);
	int rc;

	if (v4 < 0 || v6 < 0)
		return -1;
	if (!v4 && !v6)
		return 0;
	if (batch_init(&bt) != 0) {
		verr_sys(e, "ERR_NOMEM", NULL, "cannot allocate a batch");
		return -1;
	}
	if (v4)
		msg_table(&bt, name, NFT_MSG_DELTABLE, 0);
	if (v6) {
		bt.family = NFPROTO_IPV6;
		msg_table(&bt, name, NFT_MSG_DELTABLE, 0);
	}
	rc = batch_send(&bt, e);
	batch_free(&bt);
	return rc;
}

int nft_map_port_addr(const char *table, const char *set, unsigned port, const char *addr, bool add, struct verr *e)
{
	struct batch bt = { 0 };
	struct nftnl_set *s = nftnl_set_alloc();
	struct nftnl_set_elem *el = nftnl_set_elem_alloc();
	unsigned a = 0;
	uint32_t na;
	int rc;

	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, set);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_IPV4);
	put_u16_key(el, NFTNL_SET_ELEM_KEY, port);
	if (add) {
		parse_ipv4(addr, &a);
		na = htonl(a);
		nftnl_set_elem_set(el, NFTNL_SET_ELEM_DATA, &na, 4);
	}
	nftnl_set_elem_add(s, el);
	if (batch_init(&bt) != 0) {
		nftnl_set_free(s);
		verr_sys(e, "ERR_NOMEM", NULL, "cannot allocate a batch");
		return -1;
	}
	nftnl_set_elems_nlmsg_build_payload(
		batch_msg(&bt, add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, add ? NLM_F_CREATE | NLM_F_EXCL : 0), s);
	batch_next(&bt);
	rc = batch_send(&bt, e);
	batch_free(&bt);
	nftnl_set_free(s);
	if (rc != 0 && !add && verr_take(e, "ERR_NFT_NOENT"))
		rc = 0; /* already gone */
	return rc;
}

/* Dump callback: one message of set elements, each handed to each(). */
struct elems_walk {
	void (*each)(struct nftnl_set_elem *el, void *arg);
	void *arg;
};

static int elems_cb(const struct nlmsghdr *nlh, void *data)
{
	struct elems_walk *w = data;
	struct nftnl_set *s = nftnl_set_alloc();
	struct nftnl_set_elems_iter *it;
	struct nftnl_set_elem *el;

	if (!s)
		return MNL_CB_ERROR;
	if (nftnl_set_elems_nlmsg_parse(nlh, s) < 0) {
		nftnl_set_free(s);
		return MNL_CB_ERROR;
	}
	it = nftnl_set_elems_iter_create(s);
	while (it && (el = nftnl_set_elems_iter_next(it)))
		w->each(el, w->arg);
	nftnl_set_elems_iter_destroy(it);
	nftnl_set_free(s);
	return MNL_CB_OK;
}

/* Sends a dump request and runs cb on every message until it ends; a
 * missing object (ENOENT) is an empty answer. */
static int dump(struct mnl_socket *nl, const struct nlmsghdr *nlh, mnl_cb_t cb, void *data, const char *what,
		struct verr *e)
{
	char buf[32768];
	uint32_t seq = nlh->nlmsg_seq, portid = mnl_socket_get_portid(nl);
	ssize_t n;

	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		verr_sys(e, "ERR_NETLINK", NULL, "cannot query nftables");
		return -1;
	}
	while ((n = mnl_socket_recvfrom(nl, buf, sizeof buf)) > 0) {
		int r = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);

		if (r == MNL_CB_STOP)
			return 0;
		if (r < 0) {
			if (errno == ENOENT)
				return 0;
			break;
		}
	}
	verr_sys(e, "ERR_NETLINK", NULL, "cannot list %s", what);
	return -1;
}

/* each() for every element of set SET of TABLE (a missing table or set
 * has none). */
static int elems_walk(const char *table, const char *set, void (*each)(struct nftnl_set_elem *el, void *arg), void *arg,
		      const char *what, struct verr *e)
{
	struct mnl_socket *nl = nft_socket(e);
	struct nftnl_set *s = nftnl_set_alloc();
	struct elems_walk w = { each, arg };
	char buf[8192];
	struct nlmsghdr *nlh;
	int rc = -1;

	if (nl && s) {
		nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
		nftnl_set_set_str(s, NFTNL_SET_NAME, set);
		nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, NFPROTO_IPV4, NLM_F_DUMP | NLM_F_ACK, 1);
		nftnl_set_elems_nlmsg_build_payload(nlh, s);
		rc = dump(nl, nlh, elems_cb, &w, what, e);
	} else if (nl) {
		verr_sys(e, "ERR_NOMEM", NULL, "cannot list %s", what);
	}
	if (nl)
		mnl_socket_close(nl);
	nftnl_set_free(s);
	return rc;
}

/* A port -> address map's element, to the caller's fn. */
struct map_walk {
	void (*fn)(unsigned port, const char *addr, void *arg);
	void *arg;
};

static void map_elem(struct nftnl_set_elem *el, void *arg)
{
	struct map_walk *w = arg;
	uint32_t klen = 0, dlen = 0;
	const uint16_t *key = nftnl_set_elem_get(el, NFTNL_SET_ELEM_KEY, &klen);
	const uint32_t *val = nftnl_set_elem_get(el, NFTNL_SET_ELEM_DATA, &dlen);
	char addr[16];
	uint32_t a;

	if (!key || klen < 2 || !val || dlen != 4)
		return;
	a = ntohl(*val);
	snprintf(addr, sizeof addr, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
	w->fn(ntohs(*key), addr, w->arg);
}

int nft_map_walk(const char *table, const char *set, void (*fn)(unsigned port, const char *addr, void *arg), void *arg,
		 struct verr *e)
{
	struct map_walk w = { fn, arg };

	return elems_walk(table, set, map_elem, &w, "the published ports", e);
}

/* An ipv4_addr set's element with the time it has left (none: on its way
 * out, left out), up to NFT_ADDR_MAX. */
struct addr_read {
	struct nft_addr_elem *el;
	size_t n;
};

static void addr_elem(struct nftnl_set_elem *el, void *arg)
{
	struct addr_read *r = arg;
	uint32_t klen = 0;
	const uint32_t *key = nftnl_set_elem_get(el, NFTNL_SET_ELEM_KEY, &klen);
	uint64_t left = nftnl_set_elem_get_u64(el, NFTNL_SET_ELEM_EXPIRATION);

	if (key && klen == 4 && left > 0 && r->n < NFT_ADDR_MAX)
		r->el[r->n++] = (struct nft_addr_elem){ ntohl(*key), left };
}

/* The elements set SET of TABLE holds now (a missing table or set holds
 * none): *el is the caller's to free. */
static int addr_set_read(const char *table, const char *set, struct nft_addr_elem **el, size_t *n, struct verr *e)
{
	struct addr_read r = { calloc(NFT_ADDR_MAX, sizeof *r.el), 0 };

	if (!r.el) {
		verr_sys(e, "ERR_NOMEM", NULL, "cannot read the resolver's set");
		return -1;
	}
	if (elems_walk(table, set, addr_elem, &r, "the resolver's set", e)) {
		free(r.el);
		return -1;
	}
	*el = r.el;
	*n = r.n;
	return 0;
}

struct table_walk {
	void (*fn)(const char *name, void *arg);
	void *arg;
};

static int tables_cb(const struct nlmsghdr *nlh, void *data)
{
	struct table_walk *w = data;
	struct nftnl_table *t = nftnl_table_alloc();

	if (!t)
		return MNL_CB_ERROR;
	if (nftnl_table_nlmsg_parse(nlh, t) == 0 && nftnl_table_get_u32(t, NFTNL_TABLE_FAMILY) == NFPROTO_IPV4 &&
	    nftnl_table_get_str(t, NFTNL_TABLE_NAME))
		w->fn(nftnl_table_get_str(t, NFTNL_TABLE_NAME), w->arg);
	nftnl_table_free(t);
	return MNL_CB_OK;
}

int nft_tables_walk(void (*fn)(const char *name, void *arg), void *arg, struct verr *e)
{
	struct mnl_socket *nl = nft_socket(e);
	struct table_walk w = { fn, arg };
	char buf[8192];
	int rc;

	if (!nl)
		return -1;
	rc = dump(nl, nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, NFPROTO_IPV4, NLM_F_DUMP | NLM_F_ACK, 1), tables_cb,
		  &w, "nftables tables", e);
	mnl_socket_close(nl);
	return rc;
}

/* The elements go in a nest whose length is 16 bits: at most 64 KiB, some
 * 2300 elements, per message; a message per ADDR_CHUNK, in one batch. */
#define ADDR_CHUNK 1024

/* One message of elements of an ipv4_addr set: keys, and timeouts unless
 * deleting. */
static void msg_addr_chunk(struct batch *bt, const char *table, const char *set, uint16_t type,
			   const struct nft_addr_elem *el, size_t n)
{
	struct nftnl_set *s = nftnl_set_alloc();

	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, set);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_IPV4);
	for (size_t i = 0; i < n; i++) {
		struct nftnl_set_elem *x = nftnl_set_elem_alloc();
		uint32_t a = htonl(el[i].addr);

		nftnl_set_elem_set(x, NFTNL_SET_ELEM_KEY, &a, 4);
		if (type == NFT_MSG_NEWSETELEM)
			nftnl_set_elem_set_u64(x, NFTNL_SET_ELEM_TIMEOUT, el[i].timeout_ms);
		nftnl_set_elem_add(s, x);
	}
	nftnl_set_elems_nlmsg_build_payload(batch_msg(bt, type, type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0), s);
	batch_next(bt);
	nftnl_set_free(s);
}

static void msg_addr_elems(struct batch *bt, const char *table, const char *set, uint16_t type,
			   const struct nft_addr_elem *el, size_t n)
{
	if (!el || !n) {
		msg_addr_chunk(bt, table, set, type, NULL, 0); /* SYNC's flush */
		return;
	}
	for (size_t off = 0, k; off < n; off += k) {
		k = n - off < ADDR_CHUNK ? n - off : ADDR_CHUNK;
		msg_addr_chunk(bt, table, set, type, el + off, k);
	}
}

int nft_addr_set_update(struct mnl_socket *nl, const char *table, const char *set, enum nft_addr_op op,
			const struct nft_addr_elem *el, size_t n, struct verr *e)
{
	struct batch bt = { 0 };
	int rc;

	/* an element is at most 28 bytes (list nest, key nest and value,
	 * timeout): REFRESH of NFT_ADDR_MAX, a delete and an add, fits the
	 * batch's 1 MiB */
	if (n > NFT_ADDR_MAX) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_NFT", NULL, "%zu set elements at once: at most %d", n, NFT_ADDR_MAX);
		return -1;
	}
	if (batch_init(&bt) != 0) {
		verr_sys(e, "ERR_NOMEM", NULL, "cannot allocate a batch");
		return -1;
	}
	if (op == NFT_ADDR_SYNC)
		/* no elements: flush the whole set */
		msg_addr_elems(&bt, table, set, NFT_MSG_DELSETELEM, NULL, 0);
	if ((op == NFT_ADDR_REFRESH || op == NFT_ADDR_DEL) && n)
		msg_addr_elems(&bt, table, set, NFT_MSG_DELSETELEM, el, n);
	if (op != NFT_ADDR_DEL && n)
		msg_addr_elems(&bt, table, set, NFT_MSG_NEWSETELEM, el, n);
	rc = batch_send_on(nl, &bt, e);
	batch_free(&bt);
	return rc;
}
