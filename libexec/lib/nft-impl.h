/* The ruleset language of nft.h, inside: what its three files share.
 *
 *   nft.c      rulesets: their sets, chains and rules checked whole, and
 *              rendered as nft(8) text
 *   nftrule.c  one rule: the matcher table and the verdict table, each
 *              entry's check, nft(8) text and nftables expressions
 *   nftnl.c    netlink (libnftnl, libmnl): sockets, batches, a ruleset
 *              applied, tables looked up, deleted and walked, set elements
 *
 * Not for the helpers: they include nft.h. */
#ifndef VMSAN_NFT_IMPL_H
#define VMSAN_NFT_IMPL_H

#include "nft.h"

/* Every refusal of a ruleset is ERR_RULESET, exit 100. */
#define BAD_RULESET(...) verr_fail(e, VMSAN_EXIT_USAGE, "ERR_RULESET", NULL, __VA_ARGS__)

/* nft.c */
/* s's index in list, or -1. */
int nft_index_of(const char *s, const char *const *list, size_t n);
#define INDEX_OF(s, list) nft_index_of(s, list, sizeof(list) / sizeof(*list))
/* The hook's NF_INET_* number, or -1 if hook names none. */
int nft_hooknum(const char *hook);
/* The object of arr whose "name" is name, or NULL. */
json_t *nft_find_named(json_t *arr, const char *name);
int nft_check_port(json_t *v, const char *where, struct verr *e);

/* nft(8) text, grown as it is written (s NULL if memory ran out). */
struct nft_buf {
	char *s;
	size_t len, cap;
};
void nft_put(struct nft_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* nftrule.c */
/* The matches of rule WHERE in order, then its verdict in its chain; with
 * no chain, an ip6 rule (interface matchers only, its verdict the
 * caller's). */
int nft_rule_check(json_t *match, json_t *verdict, json_t *chain, json_t *sets, const char *where, struct verr *e);
/* A checked rule's matches and verdict, as nft(8) text or as the
 * expressions of r. */
void nft_rule_render(struct nft_buf *b, json_t *rule);
struct nftnl_rule;
void nft_rule_emit(struct nftnl_rule *r, json_t *rule);

#endif
