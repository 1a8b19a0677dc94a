/* A small, closed ruleset language between vmsan-nftables (which compiles
 * policies into it) and vmsan-net (which applies it as one netlink batch).
 *
 * vmsan-net runs as root and trusts nothing in it: every table, chain, set,
 * interface name, address and port is validated here, and each matcher maps
 * to a fixed sequence of nftables expressions.  There is no way to express
 * anything else.
 *
 *   {"family":"ip", "table":"vmsan...", "sets":[SET...],
 *    "chains":[{"name","type":"filter|nat","hook":"prerouting|input|
 *               forward|output|postrouting","priority":N,"policy":"accept|drop"}],
 *    "rules":[{"chain":NAME, "match":[MATCH...], "verdict":VERDICT}],
 *    "ip6":{"chains":[CHAIN...], "rules":[RULE...]}}
 *
 *   ip6    optional: a table of family ip6 with the same name, applied in
 *          the same batch (it drops the guest's IPv6): filter chains only,
 *          interface matchers only, accept or drop
 *
 *   SET    {"name", "key":"inet_service", "data":"ipv4_addr|inet_service",
 *           "elements":[[KEY, DATA]...]}          (a map; ports are integers)
 *        | {"name", "key":"ipv4_addr", "timeout":true}
 *                                  (addresses filled at run time, vmsan-dns)
 *   MATCH  {"iif":IF} {"oif":IF} {"iif_not":IF} {"oif_not":IF}
 *          {"iif_prefix":"vms"} {"oif_prefix":"vms"} {"oif_prefix_not":"vms"}
 *          {"saddr":CIDR} {"daddr":CIDR} {"saddr_not":CIDR} {"daddr_not":CIDR}
 *          {"proto":"tcp|udp|icmp"} {"proto_not":...}  {"dport":PORT}
 *          {"ct_state":["new","established","related","invalid"]}
 *          {"ct_status":"dnat"} {"ct_dir":"original|reply"} {"daddr_local":true}
 *          {"daddr_set":SET}                                 (ip daddr @SET)
 *   VERDICT "accept" | "drop" | "masquerade" | {"snat":IP}
 *          | {"dnat":IP, "port":PORT} | {"dnat_map":SET}        (addr by dport)
 *          | {"dnat":IP, "port_map":SET}                        (port by dport)
 *
 * Checked and rendered by nft.c and nftrule.c, applied by nftnl.c
 * (nft-impl.h says how they divide it).
 */
#ifndef VMSAN_NFT_H
#define VMSAN_NFT_H

#include "vmsan.h"

struct mnl_socket;
/* A bound NETLINK_NETFILTER socket with a 10 s receive timeout, or NULL
 * with e set. */
struct mnl_socket *nft_socket(struct verr *e);

/* Validates a ruleset completely (shape, names, values, references). */
int nft_ruleset_check(json_t *rs, struct verr *e);
/* Renders a (checked) ruleset as nft(8) syntax. Caller frees. */
char *nft_ruleset_render(json_t *rs);
/* Applies a (checked) ruleset in the current network namespace in one
 * batch: the table is created if absent, deleted and created again, so it
 * is replaced whole or not at all.  With keep_if_exists, an existing table
 * is left alone (the shared host table). */
int nft_ruleset_apply(json_t *rs, bool keep_if_exists, struct verr *e);
/* The same, and the elements set KEEP_SET of the table being replaced
 * holds (an ipv4_addr set with timeouts, in the new ruleset too) go into
 * the new one in the same transaction, each with the time it had left: a
 * live change drops nothing vmsan-dns allowed before it re-syncs. */
int nft_ruleset_apply_keeping(json_t *rs, bool keep_if_exists, const char *keep_set, struct verr *e);
/* Deletes table NAME (families ip and ip6) if it exists. */
int nft_table_delete(const char *name, struct verr *e);
/* 1 if table NAME exists, 0 if not, -1 on error. */
int nft_table_exists(const char *name, struct verr *e);
/* Calls fn for each element (port : address) of a port -> address map;
 * a missing table or map has none. */
int nft_map_walk(const char *table, const char *set, void (*fn)(unsigned port, const char *addr, void *arg), void *arg,
		 struct verr *e);
/* Calls fn with the name of each table of family ip. */
int nft_tables_walk(void (*fn)(const char *name, void *arg), void *arg, struct verr *e);
/* Adds or deletes one element port -> addr of an inet_service : ipv4_addr
 * map; deleting an absent element succeeds. */
int nft_map_port_addr(const char *table, const char *set, unsigned port, const char *addr, bool add, struct verr *e);

/* The elements of an ipv4_addr set with timeouts (vmsan-dns), in one batch
 * on nl (a socket the caller keeps: closing one after a commit waits an
 * RCU grace period):
 *   ADD      add; an element already there keeps its old timeout
 *   REFRESH  delete and add again (a new timeout); fails (ERR_NFT_NOENT)
 *            if one of them is not there
 *   DEL      delete; fails (ERR_NFT_NOENT) if one is not there
 *   SYNC     flush the set, then add these: the set is exactly them
 * At most NFT_ADDR_MAX elements (one batch of at most 1 MiB). */
#define NFT_ADDR_MAX 16384
enum nft_addr_op { NFT_ADDR_ADD, NFT_ADDR_REFRESH, NFT_ADDR_DEL, NFT_ADDR_SYNC };
struct nft_addr_elem {
	uint32_t addr; /* host order */
	uint64_t timeout_ms;
};
int nft_addr_set_update(struct mnl_socket *nl, const char *table, const char *set, enum nft_addr_op op,
			const struct nft_addr_elem *el, size_t n, struct verr *e);

#endif
