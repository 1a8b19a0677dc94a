/* The closed ruleset language of nft.h: check, render, apply. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tuple_common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <net/if.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include "nft.h"

#define MAX_RULES 512
#define MAX_MATCH 12

#define BAD(...) (verr_set(e, VMSAN_EXIT_USAGE, "ERR_RULESET", NULL, __VA_ARGS__), -1)

static const char *const hooks[] = {"prerouting", "input", "forward", "output", "postrouting"};
static const int hooknums[] = {NF_INET_PRE_ROUTING, NF_INET_LOCAL_IN, NF_INET_FORWARD,
			       NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING};

static int index_of(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return (int)i;
	return -1;
}
#define INDEX_OF(s, list) index_of(s, list, sizeof(list) / sizeof(*list))

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

/* Interface names in rules: ours ("vms" prefix) or, in the host table, the
 * loopback; prefixes must be ours. */
static bool good_ifname(const char *s)
{
	char why[128];

	return s && (strcmp(s, "lo") == 0 || valid_ifname(s, why, sizeof(why)) == 0);
}

static json_t *find_named(json_t *arr, const char *name)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v)
		if (json_is_string(json_object_get(v, "name")) &&
		    strcmp(json_string_value(json_object_get(v, "name")), name) == 0)
			return v;
	return NULL;
}

static int check_port(json_t *v, const char *where, struct verr *e)
{
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535)
		return BAD("%s: expected a port 1-65535", where);
	return 0;
}

static int check_ipv4(json_t *v, const char *where, struct verr *e)
{
	unsigned a;

	if (!json_is_string(v) || parse_ipv4(json_string_value(v), &a) != 0)
		return BAD("%s: expected an IPv4 address", where);
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
			return BAD("%s: expected an object", path);
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
				return BAD("%s.name: '%s' is not a set name ([a-z0-9_], 1-31)", path, name);
			if (!timeout)
				return BAD("%s.timeout: address sets are filled at run time and must time out", path);
			continue;
		}
		data = jr_string(&r, "data", JR_REQUIRED, NULL);
		elems = jr_array(&r, "elements", JR_OPTIONAL, 1024);
		if (jr_end(&r))
			return -1;
		if (!good_name(name, 31))
			return BAD("%s.name: '%s' is not a set name ([a-z0-9_], 1-31)", path, name);
		if (strcmp(key, "inet_service") != 0)
			return BAD("%s.key: expected inet_service (a map) or ipv4_addr (a set)", path);
		if (strcmp(data, "ipv4_addr") != 0 && strcmp(data, "inet_service") != 0)
			return BAD("%s.data: expected ipv4_addr or inet_service", path);
		json_array_foreach(elems, k, el) {
			char where[96];

			snprintf(where, sizeof(where), "%s.elements[%zu]", path, k);
			if (!json_is_array(el) || json_array_size(el) != 2)
				return BAD("%s: expected [key, data]", where);
			if (check_port(json_array_get(el, 0), where, e) ||
			    (strcmp(data, "ipv4_addr") == 0 ? check_ipv4(json_array_get(el, 1), where, e) :
			     check_port(json_array_get(el, 1), where, e)))
				return -1;
		}
	}
	return 0;
}

static int check_chains(json_t *chains, struct verr *e)
{
	static const char *const types[] = {"filter", "nat"};
	static const char *const policies[] = {"accept", "drop"};
	size_t i;
	json_t *c;

	json_array_foreach(chains, i, c) {
		struct jr r;
		char path[64];
		const char *name, *type, *hook, *policy;
		long long prio;

		snprintf(path, sizeof(path), "ruleset.chains[%zu]", i);
		if (!json_is_object(c))
			return BAD("%s: expected an object", path);
		jr_init(&r, c, path, e);
		name = jr_string(&r, "name", JR_REQUIRED, NULL);
		type = jr_string(&r, "type", JR_REQUIRED, NULL);
		hook = jr_string(&r, "hook", JR_REQUIRED, NULL);
		jr_int(&r, "priority", JR_REQUIRED, -400, 400, &prio);
		policy = jr_string(&r, "policy", JR_OPTIONAL, NULL);
		if (jr_end(&r))
			return -1;
		if (!good_name(name, 31))
			return BAD("%s.name: '%s' is not a chain name", path, name);
		if (INDEX_OF(type, types) < 0)
			return BAD("%s.type: expected filter or nat", path);
		if (INDEX_OF(hook, hooks) < 0)
			return BAD("%s.hook: '%s' is not a hook", path, hook);
		if (policy && INDEX_OF(policy, policies) < 0)
			return BAD("%s.policy: expected accept or drop", path);
		if (policy && strcmp(type, "nat") == 0 && strcmp(policy, "accept") != 0)
			return BAD("%s.policy: a nat chain cannot drop", path);
	}
	return 0;
}

/* ---- rendering as nft(8) text --------------------------------------- */

struct buf {
	char *s;
	size_t len, cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
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

static void add_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len,
			uint32_t dreg)
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
static void add_lookup(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len, const char *set,
		       uint32_t dreg)
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
	json_t *sets;           /* the ruleset's (NULL in ip6) */
	const char *where;      /* "ruleset.rules[N].match[K]" or "...verdict" */
	const char *type, *hook;        /* of the rule's chain */
	bool have_l4;           /* a proto tcp or udp match came before */
};

enum { M_NEQ = 1, M_PREFIX = 2, M_IP6 = 4 };

/* One matcher {"key": value}: its check, its nft(8) text (text, then the
 * value) and its expressions; arg is its meta key, header offset or ct
 * key.  M_IP6: allowed in the ip6 table. */
struct matcher {
	const char *key;
	int (*check)(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e);
	void (*render)(const struct matcher *m, struct buf *b, json_t *v);
	void (*emit)(const struct matcher *m, struct nftnl_rule *r, json_t *v);
	const char *text;
	uint32_t arg;
	unsigned flags;
};

static const char *const ct_states[] = {"invalid", "established", "related", "new"};
static const uint32_t ct_state_bits[] = {NF_CT_STATE_INVALID_BIT, NF_CT_STATE_BIT(IP_CT_ESTABLISHED),
					 NF_CT_STATE_BIT(IP_CT_RELATED), NF_CT_STATE_BIT(IP_CT_NEW)};
static const char *const protos[] = {"tcp", "udp", "icmp"};

static int check_ifname(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	if (!good_ifname(json_string_value(v)))
		return BAD("%s.%s: not one of our interface names", c->where, m->key);
	return 0;
}

static int check_prefix(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	const char *s = json_string_value(v);

	if (!s || strcmp(s, "vms") != 0)
		return BAD("%s.%s: the only interface prefix is 'vms'", c->where, m->key);
	return 0;
}

static int check_cidr(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	const char *s = json_string_value(v);
	char why[160];

	if (!s || valid_cidr(s, why, sizeof(why)))
		return BAD("%s.%s: %s", c->where, m->key, s ? why : "expected a CIDR string");
	return 0;
}

static int check_proto(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	const char *s = json_string_value(v);

	if (INDEX_OF(s, protos) < 0)
		return BAD("%s.%s: expected tcp, udp or icmp", c->where, m->key);
	if (!(m->flags & M_NEQ) && strcmp(s, "icmp"))
		c->have_l4 = true;
	return 0;
}

static int check_dport(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	(void)m;
	if (!c->have_l4)
		return BAD("%s: dport needs a proto tcp or udp match before it", c->where);
	return check_port(v, c->where, e);
}

static int check_ct_state(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	json_t *st;
	size_t i;

	if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 4)
		return BAD("%s.%s: expected a list of states", c->where, m->key);
	json_array_foreach(v, i, st)
		if (INDEX_OF(json_string_value(st), ct_states) < 0)
			return BAD("%s.%s[%zu]: not a conntrack state", c->where, m->key, i);
	return 0;
}

static int check_ct_status(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	const char *s = json_string_value(v);

	if (!s || strcmp(s, "dnat"))
		return BAD("%s.%s: only 'dnat' is supported", c->where, m->key);
	return 0;
}

static int check_ct_dir(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	const char *s = json_string_value(v);

	if (!s || (strcmp(s, "original") && strcmp(s, "reply")))
		return BAD("%s.%s: expected original or reply", c->where, m->key);
	return 0;
}

static int check_true(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	if (!json_is_true(v))
		return BAD("%s.%s: expected true", c->where, m->key);
	return 0;
}

static int check_addr_set(const struct matcher *m, json_t *v, struct rule_ctx *c, struct verr *e)
{
	const char *s = json_string_value(v);
	json_t *set = s ? find_named(c->sets, s) : NULL;

	if (!set || strcmp(json_string_value(json_object_get(set, "key")), "ipv4_addr"))
		return BAD("%s.%s: no ipv4_addr set '%s'", c->where, m->key, s ? s : "");
	return 0;
}

/* text "iifname != ", then "NAME" or "PREFIX*" */
static void render_ifname(const struct matcher *m, struct buf *b, json_t *v)
{
	put(b, "%s\"%s%s\" ", m->text, json_string_value(v), m->flags & M_PREFIX ? "*" : "");
}

static void render_string(const struct matcher *m, struct buf *b, json_t *v)
{
	put(b, "%s%s ", m->text, json_string_value(v));
}

static void render_int(const struct matcher *m, struct buf *b, json_t *v)
{
	put(b, "%s%lld ", m->text, json_integer_value(v));
}

static void render_list(const struct matcher *m, struct buf *b, json_t *v)
{
	json_t *st;
	size_t i;

	put(b, "%s", m->text);
	json_array_foreach(v, i, st)
		put(b, "%s%s", i ? "," : "", json_string_value(st));
	put(b, " ");
}

static void render_text(const struct matcher *m, struct buf *b, json_t *v)
{
	(void)v;
	put(b, "%s", m->text);
}

/* A whole name compares all IFNAMSIZ bytes; a prefix only its own. */
static void emit_ifname(const struct matcher *m, struct nftnl_rule *r, json_t *v)
{
	const char *name = json_string_value(v);
	char buf[IFNAMSIZ] = {0};

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
	{"iif", IFNAME, "iifname ", NFT_META_IIFNAME, M_IP6},
	{"oif", IFNAME, "oifname ", NFT_META_OIFNAME, M_IP6},
	{"iif_not", IFNAME, "iifname != ", NFT_META_IIFNAME, M_IP6 | M_NEQ},
	{"oif_not", IFNAME, "oifname != ", NFT_META_OIFNAME, M_IP6 | M_NEQ},
	{"iif_prefix", PREFIX, "iifname ", NFT_META_IIFNAME, M_IP6 | M_PREFIX},
	{"oif_prefix", PREFIX, "oifname ", NFT_META_OIFNAME, M_IP6 | M_PREFIX},
	{"oif_prefix_not", PREFIX, "oifname != ", NFT_META_OIFNAME, M_IP6 | M_PREFIX | M_NEQ},
	{"saddr", CIDR, "ip saddr ", 12, 0},
	{"daddr", CIDR, "ip daddr ", 16, 0},
	{"saddr_not", CIDR, "ip saddr != ", 12, M_NEQ},
	{"daddr_not", CIDR, "ip daddr != ", 16, M_NEQ},
	{"proto", PROTO, "meta l4proto ", 0, 0},
	{"proto_not", PROTO, "meta l4proto != ", 0, M_NEQ},
	{"dport", check_dport, render_int, emit_dport, "th dport ", 0, 0},
	{"ct_state", check_ct_state, render_list, emit_ct_bits, "ct state ", NFT_CT_STATE, 0},
	{"ct_status", check_ct_status, render_string, emit_ct_bits, "ct status ", NFT_CT_STATUS, 0},
	{"ct_dir", check_ct_dir, render_string, emit_ct_dir, "ct direction ", NFT_CT_DIRECTION, 0},
	{"daddr_local", check_true, render_text, emit_daddr_local, "fib daddr type local ", 0, 0},
	{"daddr_set", check_addr_set, render_string, emit_addr_set, "ip daddr @", 16, 0},
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
		return BAD("%s: expected an object with one key", c->where);
	json_object_foreach(m, k, v) {
		mt = matcher_find(k);
		if (!mt)
			return BAD("%s: unknown matcher '%s'", c->where, k);
		if (mt->check(mt, v, c, e))
			return -1;
		if (ip6 && !(mt->flags & M_IP6))
			return BAD("%s: only interface matchers in ip6", c->where);
	}
	return 0;
}

static void render_match(struct buf *b, json_t *m)
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
	void (*render)(struct buf *b, json_t *v);
	void (*emit)(struct nftnl_rule *r, json_t *v);
};

static int check_masquerade(json_t *v, struct rule_ctx *c, struct verr *e)
{
	(void)v;
	if (strcmp(c->type, "nat") || strcmp(c->hook, "postrouting"))
		return BAD("%s: masquerade belongs in a nat postrouting chain", c->where);
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
		return BAD("%s: snat belongs in postrouting", c->where);
	return 0;
}

static bool is_map(json_t *sets, json_t *name, const char *data)
{
	json_t *set = json_is_string(name) ? find_named(sets, json_string_value(name)) : NULL;

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
		return BAD("%s: dnat belongs in prerouting or output", c->where);
	if (!addr == !map)
		return BAD("%s: expected exactly one of dnat, dnat_map or snat", c->where);
	if ((map || pm) && !c->have_l4)
		return BAD("%s: a map by port needs a proto tcp or udp match", c->where);
	if (map && !is_map(c->sets, json_object_get(v, "dnat_map"), "ipv4_addr"))
		return BAD("%s.dnat_map: no inet_service : ipv4_addr map '%s'", c->where, map);
	if (pm && !is_map(c->sets, pm, "inet_service"))
		return BAD("%s.port_map: no inet_service : inet_service map", c->where);
	return 0;
}

static void render_word(struct buf *b, json_t *v)
{
	put(b, "%s", json_string_value(v));
}

static void render_snat(struct buf *b, json_t *v)
{
	put(b, "snat to %s", json_string_value(json_object_get(v, "snat")));
}

static void render_dnat_map(struct buf *b, json_t *v)
{
	put(b, "dnat to th dport map @%s", json_string_value(json_object_get(v, "dnat_map")));
}

static void render_dnat(struct buf *b, json_t *v)
{
	const char *a = json_string_value(json_object_get(v, "dnat"));
	json_t *p = json_object_get(v, "port"), *pm = json_object_get(v, "port_map");

	if (pm)
		put(b, "dnat to %s : th dport map @%s", a, json_string_value(pm));
	else if (p)
		put(b, "dnat to %s:%lld", a, json_integer_value(p));
	else
		put(b, "dnat to %s", a);
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
	{"accept", false, NULL, render_word, emit_accept},
	{"drop", false, NULL, render_word, emit_drop},
	{"masquerade", false, check_masquerade, render_word, emit_masquerade},
	{"snat", true, check_snat, render_snat, emit_snat},
	{"dnat_map", true, check_dnat, render_dnat_map, emit_dnat_map},
	{"dnat", true, check_dnat, render_dnat, emit_dnat},
};

static const struct verdict *verdict_find(json_t *v)
{
	const size_t n = sizeof(verdicts) / sizeof(*verdicts);

	for (size_t i = 0; i < n; i++)
		if (verdicts[i].object ? json_object_get(v, verdicts[i].key) != NULL :
		    json_is_string(v) && !strcmp(json_string_value(v), verdicts[i].key))
			return &verdicts[i];
	return json_is_object(v) ? &verdicts[n - 1] : NULL;
}

static int check_verdict(json_t *v, struct rule_ctx *c, struct verr *e)
{
	const struct verdict *vd;

	if (!json_is_string(v) && !json_is_object(v))
		return BAD("%s: expected a verdict", c->where);
	if (json_is_object(v) && strcmp(c->type, "nat"))
		return BAD("%s: nat verdicts belong in a nat chain", c->where);
	vd = verdict_find(v);
	if (!vd)
		return BAD("%s: unknown verdict '%s'", c->where, json_string_value(v));
	return vd->check ? vd->check(v, c, e) : 0;
}

static void render_verdict(struct buf *b, json_t *v)
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

/* ---- rulesets --------------------------------------------------------- */

/* The matches of rule WHERE in order, then its verdict in its chain; with
 * no chain, an ip6 rule (interface matchers only, its verdict the caller's). */
static int check_rule(json_t *match, json_t *verdict, json_t *chain, json_t *sets, const char *where,
		      struct verr *e)
{
	struct rule_ctx c = {.sets = sets};
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

/* The IPv6 companion table: filter chains, rules that match interfaces
 * only and accept or drop (it exists to drop the guest's IPv6). */
static int check_ip6(json_t *ip6, struct verr *e)
{
	struct jr r;
	json_t *chains, *rules, *c, *rule;
	size_t i;

	if (!json_is_object(ip6))
		return BAD("ruleset.ip6: expected an object");
	jr_init(&r, ip6, "ruleset.ip6", e);
	chains = jr_array(&r, "chains", JR_REQUIRED, 8);
	rules = jr_array(&r, "rules", JR_REQUIRED, 16);
	if (jr_end(&r) || check_chains(chains, e))
		return -1;
	json_array_foreach(chains, i, c)
		if (strcmp(json_string_value(json_object_get(c, "type")), "filter"))
			return BAD("ruleset.ip6.chains[%zu].type: only filter chains", i);
	json_array_foreach(rules, i, rule) {
		char where[64];
		const char *cname, *v;
		json_t *match;

		snprintf(where, sizeof(where), "ruleset.ip6.rules[%zu]", i);
		if (!json_is_object(rule))
			return BAD("%s: expected an object", where);
		jr_init(&r, rule, where, e);
		cname = jr_string(&r, "chain", JR_REQUIRED, NULL);
		match = jr_array(&r, "match", JR_OPTIONAL, MAX_MATCH);
		v = jr_string(&r, "verdict", JR_REQUIRED, NULL);
		if (jr_end(&r))
			return -1;
		if (!find_named(chains, cname))
			return BAD("%s.chain: no chain '%s'", where, cname);
		if (check_rule(match, NULL, NULL, NULL, where, e))
			return -1;
		if (strcmp(v, "accept") && strcmp(v, "drop"))
			return BAD("%s.verdict: accept or drop", where);
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
		return BAD("ruleset: expected an object");
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
		return BAD("ruleset.family: only 'ip' is supported");
	if (!good_name(table, 31) || strncmp(table, "vmsan", 5))
		return BAD("ruleset.table: '%s' is not ours (names start with 'vmsan')", table);
	if (check_sets(sets, e) || check_chains(chains, e) || (ip6 && check_ip6(ip6, e)))
		return -1;
	json_array_foreach(rules, i, rule) {
		char where[64];
		const char *cname;
		json_t *chain, *match;

		snprintf(where, sizeof(where), "ruleset.rules[%zu]", i);
		if (!json_is_object(rule))
			return BAD("%s: expected an object", where);
		jr_init(&r, rule, where, e);
		cname = jr_string(&r, "chain", JR_REQUIRED, NULL);
		match = jr_array(&r, "match", JR_OPTIONAL, MAX_MATCH);
		jr_any(&r, "verdict", JR_REQUIRED);
		if (jr_end(&r))
			return -1;
		chain = find_named(chains, cname);
		if (!chain)
			return BAD("%s.chain: no chain '%s'", where, cname);
		if (check_rule(match, json_object_get(rule, "verdict"), chain, sets, where, e))
			return -1;
	}
	return 0;
}

static void render_chains(struct buf *b, json_t *chains, json_t *rules)
{
	json_t *c, *r;
	size_t i, k;

	json_array_foreach(chains, i, c) {
		const char *name = json_string_value(json_object_get(c, "name"));
		const char *pol = json_string_value(json_object_get(c, "policy"));

		put(b, "\tchain %s {\n\t\ttype %s hook %s priority %lld;%s%s%s\n", name,
		    json_string_value(json_object_get(c, "type")),
		    json_string_value(json_object_get(c, "hook")),
		    json_integer_value(json_object_get(c, "priority")),
		    pol ? " policy " : "", pol ? pol : "", pol ? ";" : "");
		json_array_foreach(rules, k, r) {
			json_t *m;
			size_t j;

			if (strcmp(json_string_value(json_object_get(r, "chain")), name))
				continue;
			put(b, "\t\t");
			json_array_foreach(json_object_get(r, "match"), j, m)
				render_match(b, m);
			render_verdict(b, json_object_get(r, "verdict"));
			put(b, "\n");
		}
		put(b, "\t}\n");
	}
}

char *nft_ruleset_render(json_t *rs)
{
	struct buf b = {0};
	json_t *s, *el, *ip6 = json_object_get(rs, "ip6");
	size_t i, k;

	put(&b, "table %s %s {\n", json_string_value(json_object_get(rs, "family")),
	    json_string_value(json_object_get(rs, "table")));
	json_array_foreach(json_object_get(rs, "sets"), i, s) {
		if (!json_object_get(s, "data")) {
			put(&b, "\tset %s {\n\t\ttype ipv4_addr\n\t\tflags timeout\n\t}\n",
			    json_string_value(json_object_get(s, "name")));
			continue;
		}
		put(&b, "\tmap %s {\n\t\ttype %s : %s\n", json_string_value(json_object_get(s, "name")),
		    json_string_value(json_object_get(s, "key")),
		    json_string_value(json_object_get(s, "data")));
		if (json_array_size(json_object_get(s, "elements"))) {
			put(&b, "\t\telements = { ");
			json_array_foreach(json_object_get(s, "elements"), k, el) {
				json_t *d = json_array_get(el, 1);

				put(&b, "%s%lld : ", k ? ", " : "", json_integer_value(json_array_get(el, 0)));
				if (json_is_string(d))
					put(&b, "%s", json_string_value(d));
				else
					put(&b, "%lld", json_integer_value(d));
			}
			put(&b, " }\n");
		}
		put(&b, "\t}\n");
	}
	render_chains(&b, json_object_get(rs, "chains"), json_object_get(rs, "rules"));
	put(&b, "}\n");
	if (ip6) {
		put(&b, "table ip6 %s {\n", json_string_value(json_object_get(rs, "table")));
		render_chains(&b, json_object_get(ip6, "chains"), json_object_get(ip6, "rules"));
		put(&b, "}\n");
	}
	return b.s;
}

struct batch {
	char *buf;
	struct mnl_nlmsg_batch *b;
	uint32_t seq;
	uint32_t acks;          /* messages that asked for an ack */
	uint16_t family;        /* of the messages: NFPROTO_IPV4, or _IPV6 for the ip6 table */
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
	return nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(bt->b), type, bt->family,
				     flags | NLM_F_ACK, bt->seq++);
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
	struct timeval tv = {.tv_sec = 10};

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
		verr_sys(e, err == EEXIST ? "ERR_NFT_EXISTS" : err == ENOENT ? "ERR_NFT_NOENT" :
			 "ERR_NFT_APPLY", NULL, "nftables rejected the batch (nothing was applied)");
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
		nftnl_set_set_u32(set, NFTNL_SET_KEY_TYPE, 13);   /* inet_service */
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
				    (uint32_t)hooknums[INDEX_OF(json_string_value(json_object_get(c, "hook")), hooks)]);
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
	size_t i, k;
	json_t *r, *m;

	json_array_foreach(rules, i, r) {
		struct nftnl_rule *rule = nftnl_rule_alloc();

		nftnl_rule_set_str(rule, NFTNL_RULE_TABLE, table);
		nftnl_rule_set_str(rule, NFTNL_RULE_CHAIN, json_string_value(json_object_get(r, "chain")));
		nftnl_rule_set_u32(rule, NFTNL_RULE_FAMILY, bt->family);
		json_array_foreach(json_object_get(r, "match"), k, m)
			emit_match(rule, m);
		emit_verdict(rule, json_object_get(r, "verdict"));
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
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0 ||
	    (n = mnl_socket_recvfrom(nl, buf, sizeof(buf))) <= 0) {
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

int nft_ruleset_apply(json_t *rs, bool keep_if_exists, struct verr *e)
{
	const char *table = json_string_value(json_object_get(rs, "table"));
	struct batch bt = {0};
	int rc;

	if (keep_if_exists) {
		rc = nft_table_exists(table, e);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
	}
	if (batch_init(&bt) != 0) {
		verr_sys(e, "ERR_NOMEM", NULL, "cannot allocate a batch");
		return -1;
	}
	/* add + delete + add: replaces the table whether or not it existed,
	 * in the same transaction as its new contents. */
	msg_table(&bt, table, NFT_MSG_NEWTABLE, NLM_F_CREATE);
	msg_table(&bt, table, NFT_MSG_DELTABLE, 0);
	msg_table(&bt, table, NFT_MSG_NEWTABLE, NLM_F_CREATE);
	msg_sets(&bt, table, json_object_get(rs, "sets"));
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
	struct batch bt = {0};
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

int nft_map_port_addr(const char *table, const char *set, unsigned port, const char *addr,
		      bool add, struct verr *e)
{
	struct batch bt = {0};
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
		batch_msg(&bt, add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM,
			  add ? NLM_F_CREATE | NLM_F_EXCL : 0), s);
	batch_next(&bt);
	rc = batch_send(&bt, e);
	batch_free(&bt);
	nftnl_set_free(s);
	if (rc != 0 && !add && verr_take(e, "ERR_NFT_NOENT"))
		rc = 0;         /* already gone */
	return rc;
}

/* Dump callback: one message of set elements, each handed to the caller. */
struct map_walk {
	void (*fn)(unsigned port, const char *addr, void *arg);
	void *arg;
};

static int map_elems_cb(const struct nlmsghdr *nlh, void *data)
{
	struct map_walk *w = data;
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
	while (it && (el = nftnl_set_elems_iter_next(it))) {
		uint32_t klen = 0, dlen = 0;
		const uint16_t *key = nftnl_set_elem_get(el, NFTNL_SET_ELEM_KEY, &klen);
		const uint32_t *val = nftnl_set_elem_get(el, NFTNL_SET_ELEM_DATA, &dlen);
		char addr[16];
		uint32_t a;

		if (!key || klen < 2 || !val || dlen != 4)
			continue;
		a = ntohl(*val);
		snprintf(addr, sizeof addr, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
		w->fn(ntohs(*key), addr, w->arg);
	}
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

int nft_map_walk(const char *table, const char *set,
		 void (*fn)(unsigned port, const char *addr, void *arg), void *arg, struct verr *e)
{
	struct mnl_socket *nl = nft_socket(e);
	struct nftnl_set *s = nftnl_set_alloc();
	struct map_walk w = { fn, arg };
	char buf[8192];
	struct nlmsghdr *nlh;
	int rc = -1;

	if (nl && s) {
		nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
		nftnl_set_set_str(s, NFTNL_SET_NAME, set);
		nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, NFPROTO_IPV4, NLM_F_DUMP | NLM_F_ACK, 1);
		nftnl_set_elems_nlmsg_build_payload(nlh, s);
		rc = dump(nl, nlh, map_elems_cb, &w, "the published ports", e);
	}
	if (nl)
		mnl_socket_close(nl);
	nftnl_set_free(s);
	return rc;
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
	if (nftnl_table_nlmsg_parse(nlh, t) == 0 &&
	    nftnl_table_get_u32(t, NFTNL_TABLE_FAMILY) == NFPROTO_IPV4 &&
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

/* One message of elements of an ipv4_addr set: keys, and timeouts unless
 * deleting. */
/* The elements go in a nest whose length is 16 bits: at most 64 KiB, some
 * 2300 elements, per message; a message per ADDR_CHUNK, in one batch. */
#define ADDR_CHUNK 1024

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
		msg_addr_chunk(bt, table, set, type, NULL, 0);  /* SYNC's flush */
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
	struct batch bt = {0};
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
