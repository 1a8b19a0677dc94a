/* One rule of the ruleset language (nft.h): its matchers and its verdict,
 * each an entry of a table that gives its check, its nft(8) text and the
 * nftables expressions it is made of.  Nothing else can be expressed. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tuple_common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <net/if.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>

#include "nft-impl.h"

/* Interface names in rules: ours ("vms" prefix) or, in the host table, the
 * loopback; prefixes must be ours. */
static bool good_ifname(const char *s)
{
	char why[128];

	return s && (strcmp(s, "lo") == 0 || valid_ifname(s, why, sizeof(why)) == 0);
}

/* ---- nftables expressions ------------------------------------------- */

enum { REG1 = NFT_REG32_00, REG2 = NFT_REG32_01 };

static struct nftnl_expr *expr(const char *name)
{
	return nftnl_expr_alloc(name);
}

static void add_cmp(struct nftnl_rule *r, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *x = expr("cmp");

	nftnl_expr_set_u32(x, NFTNL_EXPR_CMP_SREG, REG1);
	nftnl_expr_set_u32(x, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(x, NFTNL_EXPR_CMP_DATA, data, len);
	nftnl_rule_add_expr(r, x);
}

static void add_meta(struct nftnl_rule *r, uint32_t key, uint32_t dreg)
{
	struct nftnl_expr *x = expr("meta");

	nftnl_expr_set_u32(x, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(x, NFTNL_EXPR_META_DREG, dreg);
	nftnl_rule_add_expr(r, x);
}

static void add_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len, uint32_t dreg)
{
	struct nftnl_expr *x = expr("payload");

	nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_OFFSET, off);
	nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_LEN, len);
	nftnl_expr_set_u32(x, NFTNL_EXPR_PAYLOAD_DREG, dreg);
	nftnl_rule_add_expr(r, x);
}

static void add_bitwise(struct nftnl_rule *r, uint32_t len, const void *mask)
{
	struct nftnl_expr *x = expr("bitwise");
	uint32_t zero = 0;

	nftnl_expr_set_u32(x, NFTNL_EXPR_BITWISE_SREG, REG1);
	nftnl_expr_set_u32(x, NFTNL_EXPR_BITWISE_DREG, REG1);
	nftnl_expr_set_u32(x, NFTNL_EXPR_BITWISE_LEN, len);
	nftnl_expr_set(x, NFTNL_EXPR_BITWISE_MASK, mask, len);
	nftnl_expr_set(x, NFTNL_EXPR_BITWISE_XOR, &zero, len);
	nftnl_rule_add_expr(r, x);
}

static void add_immediate_data(struct nftnl_rule *r, uint32_t dreg, const void *data, uint32_t len)
{
	struct nftnl_expr *x = expr("immediate");

	nftnl_expr_set_u32(x, NFTNL_EXPR_IMM_DREG, dreg);
	nftnl_expr_set(x, NFTNL_EXPR_IMM_DATA, data, len);
	nftnl_rule_add_expr(r, x);
}

static void add_verdict_code(struct nftnl_rule *r, uint32_t verdict)
{
	struct nftnl_expr *x = expr("immediate");

	nftnl_expr_set_u32(x, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(x, NFTNL_EXPR_IMM_VERDICT, verdict);
	nftnl_rule_add_expr(r, x);
}

static void add_ct(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *x = expr("ct");

	nftnl_expr_set_u32(x, NFTNL_EXPR_CT_KEY, key);
	nftnl_expr_set_u32(x, NFTNL_EXPR_CT_DREG, REG1);
	nftnl_rule_add_expr(r, x);
}

/* ip daddr @set (dreg 0) or th dport map @set (into dreg) */
static void add_lookup(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len, const char *set, uint32_t dreg)
{
	struct nftnl_expr *x = expr("lookup");

	add_payload(r, base, off, len, REG1);
	nftnl_expr_set_u32(x, NFTNL_EXPR_LOOKUP_SREG, REG1);
	if (dreg)
		nftnl_expr_set_u32(x, NFTNL_EXPR_LOOKUP_DREG, dreg);
	nftnl_expr_set_str(x, NFTNL_EXPR_LOOKUP_SET, set);
	nftnl_rule_add_expr(r, x);
}

static void add_nat(struct nftnl_rule *r, uint32_t type, int areg, int preg)
{
	struct nftnl_expr *x = expr("nat");

	nftnl_expr_set_u32(x, NFTNL_EXPR_NAT_TYPE, type);
	nftnl_expr_set_u32(x, NFTNL_EXPR_NAT_FAMILY, NFPROTO_IPV4);
	if (areg)
		nftnl_expr_set_u32(x, NFTNL_EXPR_NAT_REG_ADDR_MIN, (uint32_t)areg);
	if (preg)
		nftnl_expr_set_u32(x, NFTNL_EXPR_NAT_REG_PROTO_MIN, (uint32_t)preg);
	nftnl_rule_add_expr(r, x);
}

/* ---- matchers --------------------------------------------------------- */

/* What the check of a matcher or verdict sees of its rule. */
struct rule_ctx {
	json_t *sets;		 /* the ruleset's (NULL in ip6) */
	const char *where;	 /* "ruleset.rules[N].match[K]" or "...verdict" */
	const char *type, *hook; /* of the rule's chain */
	bool have_l4;		 /* a proto tcp or udp match came before */
};

enum { M_NEQ = 1, M_PREFIX = 2, M_IP6 = 4 };

/* One matcher {"key": value}: its check, its nft(8) text (text, then the
 * value) and its expressions; arg is its meta key, header offset or ct
 * key.  M_IP6: allowed in the ip6 table. */
struct matcher {
	const char *key;
	int (*check)(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e);
	void (*render)(const struct matcher *m, struct nft_buf *b, json_t *v);
	void (*emit)(const struct matcher *m, struct nftnl_rule *r, json_t *v);
	const char *text;
	uint32_t arg;
	unsigned flags;
};

static const char *const ct_states[] = { "invalid", "established", "related", "new" };
static const uint32_t ct_state_bits[] = { NF_CT_STATE_INVALID_BIT, NF_CT_STATE_BIT(IP_CT_ESTABLISHED),
					  NF_CT_STATE_BIT(IP_CT_RELATED), NF_CT_STATE_BIT(IP_CT_NEW) };
static const char *const protos[] = { "tcp", "udp", "icmp" };

static int check_ifname(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	if (!good_ifname(json_string_value(v)))
		return BAD_RULESET("%s.%s: not one of our interface names", c->where, m->key);
	return 0;
}

static int check_prefix(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	const char *s = json_string_value(v);

	if (!s || strcmp(s, "vms") != 0)
		return BAD_RULESET("%s.%s: the only interface prefix is 'vms'", c->where, m->key);
	return 0;
}

static int check_cidr(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	const char *s = json_string_value(v);
	char why[160];

	if (!s || valid_cidr(s, why, sizeof(why)))
		return BAD_RULESET("%s.%s: %s", c->where, m->key, s ? why : "expected a CIDR string");
	return 0;
}

static int check_proto(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	const char *s = json_string_value(v);

	if (INDEX_OF(s, protos) < 0)
		return BAD_RULESET("%s.%s: expected tcp, udp or icmp", c->where, m->key);
	if (!(m->flags & M_NEQ) && strcmp(s, "icmp"))
		c->have_l4 = true;
	return 0;
}

static int check_dport(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	(void)m;
	if (!c->have_l4)
		return BAD_RULESET("%s: dport needs a proto tcp or udp match before it", c->where);
	return nft_check_port(v, c->where, e);
}

static int check_ct_state(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	json_t *st;
	size_t i;

	if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 4)
		return BAD_RULESET("%s.%s: expected a list of states", c->where, m->key);
	json_array_foreach(v, i, st)
		if (INDEX_OF(json_string_value(st), ct_states) < 0)
			return BAD_RULESET("%s.%s[%zu]: not a conntrack state", c->where, m->key, i);
	return 0;
}

static int check_ct_status(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	const char *s = json_string_value(v);

	if (!s || strcmp(s, "dnat"))
		return BAD_RULESET("%s.%s: only 'dnat' is supported", c->where, m->key);
	return 0;
}

static int check_ct_dir(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	const char *s = json_string_value(v);

	if (!s || (strcmp(s, "original") && strcmp(s, "reply")))
		return BAD_RULESET("%s.%s: expected original or reply", c->where, m->key);
	return 0;
}

static int check_true(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	if (!json_is_true(v))
		return BAD_RULESET("%s.%s: expected true", c->where, m->key);
	return 0;
}

static int check_addr_set(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	const char *s = json_string_value(v);
	json_t *set = s ? nft_find_named(c->sets, s) : NULL;

	if (!set || strcmp(json_string_value(json_object_get(set, "key")), "ipv4_addr"))
		return BAD_RULESET("%s.%s: no ipv4_addr set '%s'", c->where, m->key, s ? s : "");
	return 0;
}

/* text "iifname != ", then "NAME" or "PREFIX*" */
static void render_ifname(const struct matcher *m, struct nft_buf *b, json_t *v)
{
	nft_put(b, "%s\"%s%s\" ", m->text, json_string_value(v), m->flags & M_PREFIX ? "*" : "");
}

static void render_string(const struct matcher *m, struct nft_buf *b, json_t *v)
{
	nft_put(b, "%s%s ", m->text, json_string_value(v));
}

static void render_int(const struct matcher *m, struct nft_buf *b, json_t *v)
{
	nft_put(b, "%s%lld ", m->text, json_integer_value(v));
}

static void render_list(const struct matcher *m, struct nft_buf *b, json_t *v)
{
	json_t *st;
	size_t i;

	nft_put(b, "%s", m->text);
	json_array_foreach(v, i, st)
		nft_put(b, "%s%s", i ? "," : "", json_string_value(st));
	nft_put(b, " ");
}

static void render_text(const struct matcher *m, struct nft_buf *b, json_t *v)
{
	(void)v;
	nft_put(b, "%s", m->text);
}

/* A whole name compares all IFNAMSIZ bytes; a prefix only its own. */
static void emit_ifname(const struct matcher *m, struct nftnl_rule *r, json_t *v)
{
	const char *name = json_string_value(v);
	char buf[IFNAMSIZ] = { 0 };

	memcpy(buf, name, strlen(name));
	add_meta(r, m->arg, REG1);
	add_cmp(r, m->flags & M_NEQ ? NFT_CMP_NEQ : NFT_CMP_EQ, buf,
		(uint32_t)(m->flags & M_PREFIX ? strlen(name) : IFNAMSIZ));
}

static void emit_cidr(const struct matcher *m, struct nftnl_rule *r, json_t *v)
{
	unsigned a = 0, p = 32;
	char why[8];
	uint32_t net, mask;

	parse_cidr(json_string_value(v), &a, &p, why, sizeof(why));
	net = htonl(a);
	mask = htonl(p ? 0xffffffffu << (32 - p) : 0);
	add_payload(r, NFT_PAYLOAD_NETWORK_HEADER, m->arg, 4, REG1);
	if (p < 32)
		add_bitwise(r, 4, &mask);
	add_cmp(r, m->flags & M_NEQ ? NFT_CMP_NEQ : NFT_CMP_EQ, &net, 4);
}

static void emit_proto(const struct matcher *m, struct nftnl_rule *r, json_t *v)
{
	const char *s = json_string_value(v);
	uint8_t p = !strcmp(s, "tcp") ? IPPROTO_TCP : !strcmp(s, "udp") ? IPPROTO_UDP : IPPROTO_ICMP;

	add_meta(r, NFT_META_L4PROTO, REG1);
	add_cmp(r, m->flags & M_NEQ ? NFT_CMP_NEQ : NFT_CMP_EQ, &p, 1);
}

static void emit_dport(const struct matcher *m, struct nftnl_rule *r, json_t *v)
{
	uint16_t port = htons((uint16_t)json_integer_value(v));

	(void)m;
	add_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, REG1);
	add_cmp(r, NFT_CMP_EQ, &port, 2);
}

/* ct state (any of the listed states) or ct status dnat: a bit test */
static void emit_ct_bits(const struct matcher *m, struct nftnl_rule *r, json_t *v)
{
	uint32_t mask = 0, zero = 0;
	json_t *st;
	size_t i;

	add_ct(r, m->arg);
	if (m->arg == NFT_CT_STATUS) {
		mask = IPS_DST_NAT;
	} else {
		json_array_foreach(v, i, st) {
			int k = INDEX_OF(json_string_value(st), ct_states);

			mask |= k < 0 ? NF_CT_STATE_BIT(IP_CT_NEW) : ct_state_bits[k];
		}
	}
	add_bitwise(r, 4, &mask);
	add_cmp(r, NFT_CMP_NEQ, &zero, 4);
}

static void emit_ct_dir(const struct matcher *m, struct nftnl_rule *r, json_t *v)
{
	uint8_t dir = strcmp(json_string_value(v), "reply") ? IP_CT_DIR_ORIGINAL : IP_CT_DIR_REPLY;

	add_ct(r, m->arg);
	add_cmp(r, NFT_CMP_EQ, &dir, 1);
}

static void emit_daddr_local(const struct matcher *m, struct nftnl_rule *r, json_t *v)
{
	struct nftnl_expr *x = expr("fib");
	uint32_t local = RTN_LOCAL;

	(void)m, (void)v;
	nftnl_expr_set_u32(x, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
	nftnl_expr_set_u32(x, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
	nftnl_expr_set_u32(x, NFTNL_EXPR_FIB_DREG, REG1);
	nftnl_rule_add_expr(r, x);
	add_cmp(r, NFT_CMP_EQ, &local, 4);
}

static void emit_addr_set(const struct matcher *m, struct nftnl_rule *r, json_t *v)
{
	add_lookup(r, NFT_PAYLOAD_NETWORK_HEADER, m->arg, 4, json_string_value(v), 0);
}

#define IFNAME check_ifname, render_ifname, emit_ifname
#define PREFIX check_prefix, render_ifname, emit_ifname
#define CIDR check_cidr, render_string, emit_cidr
#define PROTO check_proto, render_string, emit_proto

static const struct matcher matchers[] = {
	{ "iif", IFNAME, "iifname ", NFT_META_IIFNAME, M_IP6 },
	{ "oif", IFNAME, "oifname ", NFT_META_OIFNAME, M_IP6 },
	{ "iif_not", IFNAME, "iifname != ", NFT_META_IIFNAME, M_IP6 | M_NEQ },
	{ "oif_not", IFNAME, "oifname != ", NFT_META_OIFNAME, M_IP6 | M_NEQ },
	{ "iif_prefix", PREFIX, "iifname ", NFT_META_IIFNAME, M_IP6 | M_PREFIX },
	{ "oif_prefix", PREFIX, "oifname ", NFT_META_OIFNAME, M_IP6 | M_PREFIX },
	{ "oif_prefix_not", PREFIX, "oifname != ", NFT_META_OIFNAME, M_IP6 | M_PREFIX | M_NEQ },
	{ "saddr", CIDR, "ip saddr ", 12, 0 },
	{ "daddr", CIDR, "ip daddr ", 16, 0 },
	{ "saddr_not", CIDR, "ip saddr != ", 12, M_NEQ },
	{ "daddr_not", CIDR, "ip daddr != ", 16, M_NEQ },
	{ "proto", PROTO, "meta l4proto ", 0, 0 },
	{ "proto_not", PROTO, "meta l4proto != ", 0, M_NEQ },
	{ "dport", check_dport, render_int, emit_dport, "th dport ", 0, 0 },
	{ "ct_state", check_ct_state, render_list, emit_ct_bits, "ct state ", NFT_CT_STATE, 0 },
	{ "ct_status", check_ct_status, render_string, emit_ct_bits, "ct status ", NFT_CT_STATUS, 0 },
	{ "ct_dir", check_ct_dir, render_string, emit_ct_dir, "ct direction ", NFT_CT_DIRECTION, 0 },
	{ "daddr_local", check_true, render_text, emit_daddr_local, "fib daddr type local ", 0, 0 },
	{ "daddr_set", check_addr_set, render_string, emit_addr_set, "ip daddr @", 16, 0 },
};

#undef IFNAME
#undef PREFIX
#undef CIDR
#undef PROTO

static const struct matcher *matcher_find(const char *key)
{
	for (size_t i = 0; i < sizeof(matchers) / sizeof(*matchers); i++)
		if (!strcmp(key, matchers[i].key))
			return &matchers[i];
	return NULL;
}

/* A match is an object with one key; ip6 takes interface matchers only. */
static int check_match(json_t *m, struct rule_ctx *c, bool ip6, struct verr *e)
{
	const struct matcher *mt;
	const char *k;
	json_t *v;

	if (!json_is_object(m) || json_object_size(m) != 1)
		return BAD_RULESET("%s: expected an object with one key", c->where);
	json_object_foreach(m, k, v) {
		mt = matcher_find(k);
		if (!mt)
			return BAD_RULESET("%s: unknown matcher '%s'", c->where, k);
		if (mt->check(mt, v, c, e))
			return -1;
		if (ip6 && !(mt->flags & M_IP6))
			return BAD_RULESET("%s: only interface matchers in ip6", c->where);
	}
	return 0;
}

static void render_match(struct nft_buf *b, json_t *m)
{
	const struct matcher *mt;
	const char *k;
	json_t *v;

	json_object_foreach(m, k, v)
		if ((mt = matcher_find(k)))
			mt->render(mt, b, v);
}

static void emit_match(struct nftnl_rule *r, json_t *m)
{
	const struct matcher *mt;
	const char *k;
	json_t *v;

	json_object_foreach(m, k, v)
		if ((mt = matcher_find(k)))
			mt->emit(mt, r, v);
}

/* ---- verdicts --------------------------------------------------------- */

/* "accept", "drop", "masquerade" (a string: key is the verdict) or an
 * object named by its first key of snat, dnat_map, dnat (key is that one;
 * an object with none is checked as dnat). */
struct verdict {
	const char *key;
	bool object;
	int (*check)(json_t *v, struct rule_ctx *c, struct verr *e);
	void (*render)(struct nft_buf *b, json_t *v);
	void (*emit)(struct nftnl_rule *r, json_t *v);
};

static int check_masquerade(json_t *v, struct rule_ctx *c, struct verr *e)
{
	(void)v;
	if (strcmp(c->type, "nat") || strcmp(c->hook, "postrouting"))
		return BAD_RULESET("%s: masquerade belongs in a nat postrouting chain", c->where);
	return 0;
}

static int check_snat(json_t *v, struct rule_ctx *c, struct verr *e)
{
	struct jr r;

	jr_init(&r, v, c->where, e);
	jr_string(&r, "snat", JR_OPTIONAL, valid_ipv4);
	if (jr_end(&r))
		return -1;
	if (strcmp(c->hook, "postrouting"))
		return BAD_RULESET("%s: snat belongs in postrouting", c->where);
	return 0;
}

static bool is_map(json_t *sets, json_t *name, const char *data)
{
	json_t *set = json_is_string(name) ? nft_find_named(sets, json_string_value(name)) : NULL;

	return set && json_object_get(set, "data") && !strcmp(json_string_value(json_object_get(set, "data")), data);
}

/* dnat to an address, with a port or a port map, or by an address map */
static int check_dnat(json_t *v, struct rule_ctx *c, struct verr *e)
{
	struct jr r;
	const char *addr, *map;
	long long port;
	json_t *pm;

	jr_init(&r, v, c->where, e);
	addr = jr_string(&r, "dnat", JR_OPTIONAL, valid_ipv4);
	map = jr_string(&r, "dnat_map", JR_OPTIONAL, NULL);
	jr_int(&r, "port", JR_OPTIONAL, 1, 65535, &port);
	pm = jr_any(&r, "port_map", JR_OPTIONAL);
	if (jr_end(&r))
		return -1;
	if (strcmp(c->hook, "prerouting") && strcmp(c->hook, "output"))
		return BAD_RULESET("%s: dnat belongs in prerouting or output", c->where);
	if (!addr == !map)
		return BAD_RULESET("%s: expected exactly one of dnat, dnat_map or snat", c->where);
	if ((map || pm) && !c->have_l4)
		return BAD_RULESET("%s: a map by port needs a proto tcp or udp match", c->where);
	if (map && !is_map(c->sets, json_object_get(v, "dnat_map"), "ipv4_addr"))
		return BAD_RULESET("%s.dnat_map: no inet_service : ipv4_addr map '%s'", c->where, map);
	if (pm && !is_map(c->sets, pm, "inet_service"))
		return BAD_RULESET("%s.port_map: no inet_service : inet_service map", c->where);
	return 0;
}

static void render_word(struct nft_buf *b, json_t *v)
{
	nft_put(b, "%s", json_string_value(v));
}

static void render_snat(struct nft_buf *b, json_t *v)
{
	nft_put(b, "snat to %s", json_string_value(json_object_get(v, "snat")));
}

static void render_dnat_map(struct nft_buf *b, json_t *v)
{
	nft_put(b, "dnat to th dport map @%s", json_string_value(json_object_get(v, "dnat_map")));
}

static void render_dnat(struct nft_buf *b, json_t *v)
{
	const char *a = json_string_value(json_object_get(v, "dnat"));
	json_t *p = json_object_get(v, "port"), *pm = json_object_get(v, "port_map");

	if (pm)
		nft_put(b, "dnat to %s : th dport map @%s", a, json_string_value(pm));
	else if (p)
		nft_put(b, "dnat to %s:%lld", a, json_integer_value(p));
	else
		nft_put(b, "dnat to %s", a);
}

static void emit_accept(struct nftnl_rule *r, json_t *v)
{
	(void)v;
	add_verdict_code(r, NF_ACCEPT);
}

static void emit_drop(struct nftnl_rule *r, json_t *v)
{
	(void)v;
	add_verdict_code(r, NF_DROP);
}

static void emit_masquerade(struct nftnl_rule *r, json_t *v)
{
	(void)v;
	nftnl_rule_add_expr(r, expr("masq"));
}

/* the address of key in v, in network order, into REG1 */
static void emit_addr(struct nftnl_rule *r, json_t *v, const char *key)
{
	unsigned a;
	uint32_t addr;

	parse_ipv4(json_string_value(json_object_get(v, key)), &a);
	addr = htonl(a);
	add_immediate_data(r, REG1, &addr, 4);
}

static void emit_snat(struct nftnl_rule *r, json_t *v)
{
	emit_addr(r, v, "snat");
	add_nat(r, NFT_NAT_SNAT, REG1, 0);
}

static void emit_dnat_map(struct nftnl_rule *r, json_t *v)
{
	add_lookup(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, json_string_value(json_object_get(v, "dnat_map")), REG1);
	add_nat(r, NFT_NAT_DNAT, REG1, 0);
}

static void emit_dnat(struct nftnl_rule *r, json_t *v)
{
	json_t *p = json_object_get(v, "port"), *pm = json_object_get(v, "port_map");

	if (pm)
		add_lookup(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, json_string_value(pm), REG2);
	emit_addr(r, v, "dnat");
	if (p && !pm) {
		uint16_t port = htons((uint16_t)json_integer_value(p));

		add_immediate_data(r, REG2, &port, 2);
	}
	add_nat(r, NFT_NAT_DNAT, REG1, p || pm ? REG2 : 0);
}

static const struct verdict verdicts[] = {
	{ "accept", false, NULL, render_word, emit_accept },
	{ "drop", false, NULL, render_word, emit_drop },
	{ "masquerade", false, check_masquerade, render_word, emit_masquerade },
	{ "snat", true, check_snat, render_snat, emit_snat },
	{ "dnat_map", true, check_dnat, render_dnat_map, emit_dnat_map },
	{ "dnat", true, check_dnat, render_dnat, emit_dnat },
};

static const struct verdict *verdict_find(json_t *v)
{
	const size_t n = sizeof(verdicts) / sizeof(*verdicts);

	for (size_t i = 0; i < n; i++)
		if (verdicts[i].object ? json_object_get(v, verdicts[i].key) != NULL
				       : json_is_string(v) && !strcmp(json_string_value(v), verdicts[i].key))
			return &verdicts[i];
	return json_is_object(v) ? &verdicts[n - 1] : NULL;
}

static int check_verdict(json_t *v, struct rule_ctx *c, struct verr *e)
{
	const struct verdict *vd;

	if (!json_is_string(v) && !json_is_object(v))
		return BAD_RULESET("%s: expected a verdict", c->where);
	if (json_is_object(v) && strcmp(c->type, "nat"))
		return BAD_RULESET("%s: nat verdicts belong in a nat chain", c->where);
	vd = verdict_find(v);
	if (!vd)
		return BAD_RULESET("%s: unknown verdict '%s'", c->where, json_string_value(v));
	return vd->check ? vd->check(v, c, e) : 0;
}

static void render_verdict(struct nft_buf *b, json_t *v)
{
	const struct verdict *vd = verdict_find(v);

	if (vd)
		vd->render(b, v);
}

static void emit_verdict(struct nftnl_rule *r, json_t *v)
{
	const struct verdict *vd = verdict_find(v);

	if (vd)
		vd->emit(r, v);
}

/* ---- rules ----------------------------------------------------------- */

int nft_rule_check(json_t *match, json_t *verdict, json_t *chain, json_t *sets, const char *where, struct verr *e)
{
	struct rule_ctx c = { .sets = sets };
	char w[96];
	json_t *m;
	size_t k;

	c.where = w;
	json_array_foreach(match, k, m) {
		snprintf(w, sizeof(w), "%s.match[%zu]", where, k);
		if (check_match(m, &c, !chain, e))
			return -1;
	}
	if (!chain)
		return 0;
	snprintf(w, sizeof(w), "%s.verdict", where);
	c.type = json_string_value(json_object_get(chain, "type"));
	c.hook = json_string_value(json_object_get(chain, "hook"));
	return check_verdict(verdict, &c, e);
}

void nft_rule_render(struct nft_buf *b, json_t *rule)
{
	json_t *m;
	size_t j;

	json_array_foreach(json_object_get(rule, "match"), j, m)
		render_match(b, m);
	render_verdict(b, json_object_get(rule, "verdict"));
}

void nft_rule_emit(struct nftnl_rule *r, json_t *rule)
{
	json_t *m;
	size_t k;

	json_array_foreach(json_object_get(rule, "match"), k, m)
		emit_match(r, m);
	emit_verdict(r, json_object_get(rule, "verdict"));
}
