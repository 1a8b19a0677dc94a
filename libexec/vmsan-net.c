/* vmsan-net: a VM's network, as root.  One of the two helpers the sudoers
 * rule allows.
 *
 *   setup        slot, namespace vmsan-<id>, veth vmsh<slot> <-> vmsnet0,
 *                TAP vmstap0, addresses, routes, forwarding, shaping, the
 *                shared host table, the VM's ruleset, published ports, and
 *                with "dns" (allowed domains) the VM's resolver vmsan-dns
 *   apply-rules  replace the VM's ruleset atomically (live policy change),
 *                and start, update or stop its resolver
 *   teardown     remove all of it; idempotent
 *   verify       list every leftover for an id
 *   sweep        (root only) what no runtime record accounts for
 *   orphans      the caller's records (root: all) whose VM's directory
 *                is gone (torn down) or whose resolver died (listed)
 *
 * It trusts nothing in its request: the id is validated before it names
 * anything and acted on only for its owner, rulesets pass
 * nft_ruleset_check(), a user's published host ports must lie in root's
 * publish-ports range and be free on the host, and nftables work touches
 * only tables named vmsan.  It works in whatever network namespace it is started in (that
 * namespace is "the host"), and creates runtime state under /run/vmsan.
 * Everything a failed setup made is removed before it replies.
 *
 * This file is the root core: it reads and checks each request, knows who
 * asked, and acts on an id only for its owner (owned: the id's claim and
 * root's record).  The rest is in net/, one file a job (net/net.h lists
 * them), and is given only what was checked here.  vmsan-security(7)
 * lists every root operation and the test that attacks it.
 */
#define _GNU_SOURCE
#include "net/net.h"
#include "lib/claim.h"
#include "lib/rootconf.h"
#include "lib/rootproc.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

int orig_ns = -1;	     /* the namespace we started in: "the host" */
struct caller who;	     /* who asked (the sudo user, or root) */
static struct rootconf conf; /* root's settings: per-user limit, port range */

/* ---- the request's checks ----------------------------------------------- */

#define BAD_FIELD(...) verr_fail(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", NULL, __VA_ARGS__)

/* May the caller act on id?  Root may; anyone else only on what is
 * theirs: the id's claim (claim.h) and its network record both name
 * them, or neither exists.  1: yes, there is a record; 0: yes, none;
 * -1: ERR_NOT_OWNER.  v is filled from the record. */
static int owned(struct vmnet *v, struct verr *e)
{
	int had = record_read(v);

	if (claim_check(v->id, &who, e) < 0)
		return -1;
	if (had && !who.root && v->owner != (long)who.uid) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_NOT_OWNER", "act on your own VMs only",
			 "the network of %s is not yours (it belongs to another user)", v->id);
		return -1;
	}
	return had;
}

/* A VM's ruleset: valid, for the one table a VM namespace holds, and
 * with the IPv6 guard (which no caller may leave out or loosen: it is
 * added when absent, and anything else in its place is refused). */
static int check_vm_ruleset(json_t *ruleset, struct verr *e)
{
	json_t *guard = netplan_ip6_guard(NULL), *ip6;
	int rc = -1;

	if (nft_ruleset_check(ruleset, e))
		goto out;
	if (strcmp(json_string_value(json_object_get(ruleset, "table")), NET_TABLE)) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_RULESET", NULL, "ruleset.table must be '%s'", NET_TABLE);
		goto out;
	}
	ip6 = json_object_get(ruleset, "ip6");
	if (ip6 && !json_equal(ip6, guard)) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_RULESET", "give the ruleset of vmsan-nftables compile",
			 "ruleset.ip6: a VM's namespace drops all IPv6; it cannot be changed");
		goto out;
	}
	if (!ip6)
		json_object_set(ruleset, "ip6", guard);
	rc = 0;
out:
	json_decref(guard);
	return rc;
}

/* Published host ports: validated, and for a caller other than root
 * within root.conf's publish-ports (default 1024-65535). */
static json_t *host_ports(json_t *ports, struct verr *e)
{
	json_t *out = json_array(), *p;
	size_t i, k;

	json_array_foreach(ports, i, p) {
		long long n = json_is_integer(p) ? json_integer_value(p) : 0;

		if (n < 1 || n > 65535) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", NULL,
				 "request.publishedPorts[%zu]: expected a port 1-65535", i);
			goto fail;
		}
		if (!who.root && (n < conf.port_min || n > conf.port_max)) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_PORT_RANGE",
				 "publish a port in that range (root.conf's publish-ports)",
				 "request.publishedPorts[%zu]: port %lld: users may publish %u-%u only", i, n,
				 conf.port_min, conf.port_max);
			goto fail;
		}
		for (k = 0; k < json_array_size(out); k++)
			if (json_integer_value(json_array_get(out, k)) == n) {
				verr_set(e, VMSAN_EXIT_USAGE, "ERR_PORT_DUPLICATE", NULL,
					 "request.publishedPorts[%zu]: port %lld is listed twice", i, n);
				goto fail;
			}
		json_array_append_new(out, json_integer(n));
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

/* --no-netns: the VM's rules for the host's namespace, compiled here from
 * the policy (never taken from the caller: they apply to the host) and
 * scoped to the VM's TAP.  Its published host ports go to *hports. */
static json_t *host_ruleset(const struct vmnet *v, json_t *policy, json_t **hports, struct verr *e)
{
	struct policy_target t;
	char table[32], tap[16], host[16], guest[16];
	struct jr pr;
	json_t *c, *x, *list;
	size_t i;

	netplan_host_target(v->id, v->slot >= 0 ? (unsigned)v->slot : 0, &t, table, tap, host, guest);
	jr_init(&pr, policy, "policy", e);
	c = policy_compile(&pr, &t, e);
	if (!c)
		return NULL;
	list = json_array();
	json_array_foreach(json_object_get(c, "publishedPorts"), i, x)
		json_array_append(list, json_array_get(x, 0));
	*hports = host_ports(list, e);
	json_decref(list);
	if (!*hports) {
		json_decref(c);
		return NULL;
	}
	x = json_incref(json_object_get(c, "ruleset"));
	json_decref(c);
	return x;
}

/* request.dns: {"domains":[...], "upstreams":[IP...], "ttlMin", "ttlMax",
 * "strict":BOOL, "log":PATH}; checked whole before anything is made.  The ruleset must
 * hold the set the resolver fills. */
static int dns_check(json_t *dns, json_t *ruleset, struct verr *e)
{
	struct jr r;
	json_t *doms, *ups, *x, *set;
	long long lo = NET_DNS_TTL_MIN, hi = NET_DNS_TTL_MAX;
	size_t i;
	char why[200];

	jr_init(&r, dns, "request.dns", e);
	doms = jr_array(&r, "domains", JR_REQUIRED, NET_DNS_DOMAINS_MAX);
	ups = jr_array(&r, "upstreams", JR_REQUIRED, 3);
	jr_int(&r, "ttlMin", JR_OPTIONAL, 1, 86400, &lo);
	jr_int(&r, "ttlMax", JR_OPTIONAL, 1, 86400, &hi);
	bool strict = false;
	jr_bool(&r, "strict", JR_OPTIONAL, &strict);
	const char *log = jr_string(&r, "log", JR_OPTIONAL, NULL);
	if (jr_end(&r))
		return -1;
	if (!json_array_size(doms) || !json_array_size(ups))
		return BAD_FIELD("request.dns: domains and upstreams may not be empty");
	json_array_foreach(doms, i, x)
		if (!json_is_string(x) || valid_domain(json_string_value(x), why, sizeof why))
			return BAD_FIELD("request.dns.domains[%zu]: %s", i,
					 json_is_string(x) ? why : "expected a string");
	json_array_foreach(ups, i, x)
		if (!json_is_string(x) || valid_ipv4(json_string_value(x), why, sizeof why))
			return BAD_FIELD("request.dns.upstreams[%zu]: expected an IPv4 address", i);
	if (lo > hi)
		return BAD_FIELD("request.dns: ttlMin %lld is above ttlMax %lld", lo, hi);
	if (log && (log[0] != '/' || strstr(log, "/../") || strlen(log) > 1024))
		return BAD_FIELD("request.dns.log: expected an absolute path");
	set = NULL;
	json_array_foreach(json_object_get(ruleset, "sets"), i, x)
		if (!strcmp(json_string_value(json_object_get(x, "name")), NET_DNS_SET) &&
		    !strcmp(json_string_value(json_object_get(x, "key")), "ipv4_addr"))
			set = x;
	if (!set)
		return BAD_FIELD("request.dns: the ruleset has no set %s (compile the policy with its allowedDomains)",
				 NET_DNS_SET);
	return 0;
}

/* ---- setup: the request read, all of it checked, then each step made,
 * in order, undone together (teardown) if a later one fails ----------- */

struct setup {
	const char *id;
	bool host_mode;
	json_t *ruleset, *ports, *policy, *dns; /* the request's, borrowed */
	const char *vm_dir;
	long long mbit, owner;
	struct vmnet v;
	bool claimed; /* the id's claim was taken here */
};

static int setup_read(struct jr *r, struct setup *s)
{
	s->id = jr_string(r, "id", JR_REQUIRED, valid_vm_id);
	jr_bool(r, "hostMode", JR_OPTIONAL, &s->host_mode);
	/* In a namespace of its own a VM's ruleset may come from the caller
	 * (vmsan-nftables): it touches nothing else.  On the host it is
	 * compiled here from the policy, ports included. */
	s->ruleset = jr_object(r, "ruleset", s->host_mode ? JR_OPTIONAL : JR_REQUIRED);
	s->policy = jr_object(r, "policy", s->host_mode ? JR_REQUIRED : JR_OPTIONAL);
	s->ports = jr_array(r, "publishedPorts", JR_OPTIONAL, 64);
	jr_int(r, "bandwidthMbit", JR_OPTIONAL, 1, 100000, &s->mbit);
	jr_int(r, "tapOwner", JR_OPTIONAL, 0, INT_MAX, &s->owner);
	s->dns = jr_object(r, "dns", JR_OPTIONAL);
	s->vm_dir = jr_string(r, "vmDir", JR_OPTIONAL, NULL);
	return jr_end(r);
}

/* The request against itself and the caller: what goes with hostMode,
 * the ruleset, the resolver's settings, the TAP's owner. */
static int setup_check(const struct setup *s, struct verr *e)
{
	/* the VM's table on the host is named after the id, whole: a longer
	 * one would be cut, and two VMs would share (and replace, and
	 * delete) one table */
	if (s->host_mode && strlen(s->id) > NET_HOST_ID_MAX)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "give the VM a shorter id",
				 "request.id: a VM without a namespace needs an id of at most %d characters (its "
				 "nftables table is named after it)",
				 NET_HOST_ID_MAX);
	if (s->host_mode && s->dns)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD",
				 "allowed domains need the VM's own namespace", "request.dns: not with hostMode");
	if (s->host_mode && (s->ruleset || s->ports || s->mbit))
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD",
				 "give the policy (its published ports included)",
				 "request.%s: not with hostMode (the host's rules are compiled here from the policy%s)",
				 s->ruleset ? "ruleset"
				 : s->ports ? "publishedPorts"
					    : "bandwidthMbit",
				 s->mbit ? "; shaping both directions needs the VM's namespace" : "");
	if (!s->host_mode && s->policy)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "give the ruleset of vmsan-nftables compile",
				 "request.policy: only with hostMode");
	if (!s->host_mode && check_vm_ruleset(s->ruleset, e))
		return -1;
	if (s->dns && dns_check(s->dns, s->ruleset, e))
		return -1;
	/* The TAP is for the caller's own VMM: only root names another uid. */
	if (s->owner >= 0 && !who.root && s->owner != (long long)who.uid)
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_PERMISSION", "leave tapOwner out (it is yours)",
				 "request.tapOwner: %lld is not your uid", s->owner);
	return 0;
}

/* The published host ports into v.ports, each free on the host: on the
 * host those of the policy, compiled here (slot 0 stands in). */
static int setup_ports(struct setup *s, struct verr *e)
{
	if (s->host_mode) {
		json_t *rs = host_ruleset(&s->v, s->policy, &s->v.ports, e);

		if (!rs)
			return -1;
		json_decref(rs);
	} else {
		s->v.ports = host_ports(s->ports, e);
	}
	return !s->v.ports || ports_free(s->v.ports, e) ? -1 : 0;
}

/* Nothing is set up for the id yet (and the caller may set it up). */
static int setup_fresh(const struct setup *s, struct verr *e)
{
	char path[160];
	struct vmnet old;
	int mine;

	vmnet_init(&old, s->id);
	mine = owned(&old, e);
	json_decref(old.ports);
	json_decref(old.dns);
	if (mine < 0)
		return -1;
	record_path(path, sizeof(path), s->id);
	if (mine || access(path, F_OK) == 0 || netns_exists(&s->v))
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_NETNS_EXISTS", "run vmsan-net teardown for this id first",
				 "the network of %s is already set up", s->id);
	return 0;
}

/* The links, the namespace and its rules; on the host the TAP and the
 * VM's table. */
static int setup_links(struct setup *s, struct verr *e)
{
	struct vmnet *v = &s->v;
	json_t *rs, *hp = NULL;
	int rc;

	/* The TAP belongs to the VMM's uid, as vmsan create picks it (the
	 * sudo caller's, else root's per-slot one), in a namespace as on the
	 * host: the kernel then lets no other uid's VMM attach to it, so a
	 * caller who names another VM's namespace to vmsan-fc gets EPERM. */
	if (s->owner < 0)
		s->owner = !who.root ? (long long)who.uid : (long long)NET_VMM_UID_BASE + v->slot;
	if (!s->host_mode)
		return host_table(e) || netns_create(v, e) || host_side(v, e) ||
				       ns_side(v, s->owner, s->mbit, s->ruleset, e)
			       ? -1
			       : 0;
	rs = host_ruleset(v, s->policy, &hp, e);
	json_decref(hp);
	rc = !rs || host_table(e) || host_tap(v, (long)s->owner, e) || nft_ruleset_apply(rs, false, e) ? -1 : 0;
	json_decref(rs);
	return rc;
}

/* The ports wanted into the host table's map, one at a time, and into
 * v->ports (the record's list, empty until then) only once published and
 * recorded after each: teardown removes the record's ports by number, so
 * the record must never name one this VM did not publish (another VM's,
 * refused as ERR_PORT_CONFLICT, or taken by one while a setup killed half
 * way had it listed).  Killed between an element and its record, we leave
 * an element no record names, which the sweep removes. */
static int setup_publish(struct vmnet *v, json_t *want, struct verr *e)
{
	size_t i;
	json_t *p;

	json_array_foreach(want, i, p) {
		if (nft_map_port_addr(NET_TABLE, NET_PUB_MAP, (unsigned)json_integer_value(p), v->ns_addr, true, e)) {
			if (verr_take(e, "ERR_NFT_EXISTS"))
				verr_set(e, VMSAN_EXIT_FAIL, "ERR_PORT_CONFLICT", "publish another host port",
					 "host port %lld is already published by another VM", json_integer_value(p));
			return -1;
		}
		json_array_append(v->ports, p);
		if (record_write(v, e))
			return -1;
	}
	return 0;
}

static json_t *setup_reply(const struct vmnet *v)
{
	json_t *reply;

	if (v->host_mode)
		/* No namespace: the guest is the slot's .2 behind vmst<slot>,
		 * and the host reaches its agent there. */
		reply = json_pack("{s:n, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:O, s:b, s:s}", "netns", "slot",
				  (int)v->slot, "hostIf", v->host_if, "hostAddr", v->host_addr, "agentAddr", v->ns_addr,
				  "tap", v->host_if, "guestIp", v->ns_addr, "gatewayIp", v->host_addr, "mac",
				  NET_GUEST_MAC, "prefixLen", NET_LINK_PREFIXLEN, "publishedPorts", v->ports,
				  "hostMode", 1, "table", v->table);
	else
		reply = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:O}", "netns", v->netns, "slot",
				  (int)v->slot, "hostIf", v->host_if, "hostAddr", v->host_addr, "agentAddr", v->ns_addr,
				  "tap", NET_TAP, "guestIp", NET_GUEST_ADDR, "gatewayIp", NET_TAP_ADDR, "mac",
				  NET_GUEST_MAC, "prefixLen", NET_LINK_PREFIXLEN, "publishedPorts", v->ports);
	if (v->dns)
		json_object_set_new(reply, "dnsPid", json_integer(json_integer_value(json_object_get(v->dns, "pid"))));
	return reply;
}

/* ---- the operations ----------------------------------------------------- */

static json_t *op_setup(struct jr *r, struct verr *e)
{
	struct setup s = { .owner = -1 };
	json_t *reply = NULL, *want = NULL;

	if (setup_read(r, &s) || setup_check(&s, e))
		return NULL;
	vmnet_init(&s.v, s.id);
	s.v.host_mode = s.host_mode;
	/* Where the VM's state keeps it, noted for gc (net/orphans.c). */
	if (s.vm_dir && vmhome_take(&who, s.vm_dir, "request.vmDir", &s.v.home, e))
		return NULL;
	if (setup_ports(&s, e) || ensure_dirs(e) || setup_fresh(&s, e))
		goto out;
	/* the record lists a port only once it is published (setup_publish) */
	want = s.v.ports;
	s.v.ports = json_array();
	/* The id is the caller's (a claim shared with vmsan-fc), within
	 * their limit of VMs; a claim made here goes again if setup fails. */
	s.claimed = claim_owner(s.id) < 0;
	if (claim_take(s.id, &who, conf.max_vms_per_user, &s.v.home, e)) {
		s.claimed = false;
		goto out;
	}
	if (slot_take(&s.v, e) < 0)
		goto out;
	/* From here on, the record says what to undo.  The resolver last: it
	 * is the one thing here that runs on. */
	if (setup_links(&s, e) || setup_publish(&s.v, want, e) ||
	    (s.dns && (dns_start(&s.v, s.dns, e) || record_write(&s.v, e)))) {
		teardown(&s.v);
		goto out;
	}
	reply = setup_reply(&s.v);
out:
	if (!reply && s.claimed)
		claim_release(s.id);
	json_decref(s.v.ports);
	json_decref(want);
	json_decref(s.v.dns);
	return reply;
}

static json_t *op_teardown(struct jr *r, struct verr *e)
{
	const char *id = jr_string(r, "id", JR_REQUIRED, valid_vm_id);
	struct vmnet v;
	int had;

	if (jr_end(r))
		return NULL;
	vmnet_init(&v, id);
	had = owned(&v, e);
	if (had < 0) {
		json_decref(v.ports);
		json_decref(v.dns);
		return NULL;
	}
	/* Without a record, what is named for the id (a namespace a failed
	 * setup left) is removed for root only: it is nobody's to claim. */
	if (!had && who.root)
		had = netns_exists(&v);
	if (had)
		teardown(&v);
	/* a setup killed before its first record was in place left this */
	record_tmp_remove(id);
	json_decref(v.ports);
	json_decref(v.dns);
	return json_pack("{s:s, s:b}", "id", id, "removed", had);
}

static json_t *op_verify(struct jr *r, struct verr *e)
{
	const char *id = jr_string(r, "id", JR_REQUIRED, valid_vm_id);
	json_t *left;

	struct vmnet v;
	int mine;

	if (jr_end(r))
		return NULL;
	vmnet_init(&v, id);
	mine = owned(&v, e);
	json_decref(v.ports);
	json_decref(v.dns);
	if (mine < 0)
		return NULL;
	left = leftovers(id, e);
	return json_pack("{s:s, s:b, s:o}", "id", id, "clean", json_array_size(left) == 0, "leftovers", left);
}

/* apply-rules for a VM without a namespace: the host's rules, compiled here
 * from the policy (published ports as they were set up). */
static json_t *apply_host_rules(struct vmnet *v, json_t *policy, json_t *ruleset, json_t *dns, struct verr *e)
{
	json_t *rs = NULL, *hp = NULL;
	bool same;
	int rc;

	json_decref(v->dns);
	if (dns) {
		json_decref(v->ports);
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "allowed domains need the VM's own namespace",
			 "request.dns: %s has no namespace of its own", v->id);
		return NULL;
	}
	if (!policy || ruleset)
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "give the policy",
			 "%s has no namespace of its own: its rules are compiled here from request.policy", v->id);
	else
		rs = host_ruleset(v, policy, &hp, e);
	/* Published ports are set at setup; a policy change keeps them. */
	same = rs && json_equal(hp, v->ports);
	json_decref(hp);
	json_decref(v->ports);
	if (!rs)
		return NULL;
	if (!same) {
		json_decref(rs);
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "keep the VM's published ports",
			 "request.policy.publishedPorts: they cannot change on a running VM");
		return NULL;
	}
	rc = nft_ruleset_apply(rs, false, e);
	json_decref(rs);
	return rc ? NULL : json_pack("{s:s, s:b}", "id", v->id, "applied", 1);
}

static json_t *op_apply_rules(struct jr *r, struct verr *e)
{
	const char *id = jr_string(r, "id", JR_REQUIRED, valid_vm_id);
	json_t *ruleset = jr_object(r, "ruleset", JR_OPTIONAL);
	json_t *policy = jr_object(r, "policy", JR_OPTIONAL);
	json_t *dns = jr_object(r, "dns", JR_OPTIONAL);
	struct vmnet v;
	int rc;

	if (jr_end(r))
		return NULL;
	vmnet_init(&v, id);
	rc = owned(&v, e);
	if (rc < 0) {
		json_decref(v.ports);
		json_decref(v.dns);
		return NULL;
	}
	if (rc && v.host_mode)
		return apply_host_rules(&v, policy, ruleset, dns, e);
	json_decref(v.ports);
	v.ports = NULL;
	json_t *reply = NULL;
	if (!ruleset || policy) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_REQUEST_FIELD", "give the ruleset of vmsan-nftables compile",
			 "request.ruleset is required (request.policy only for a VM without a namespace)");
		goto out;
	}
	if (check_vm_ruleset(ruleset, e) || (dns && dns_check(dns, ruleset, e)))
		goto out;
	if (!netns_exists(&v) || v.slot < 0) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VM_NOT_RUNNING", "set the network up first",
			 "%s has no network namespace", id);
		goto out;
	}
	if (enter_ns(v.nspath, e))
		goto out;
	/* A resolver that stays keeps what it allowed through the rules'
	 * replacement (until it has re-synced the set to its new list, a
	 * new connection to those addresses would be dropped); a new one
	 * starts from an empty set; without domains the set goes. */
	rc = nft_ruleset_apply_keeping(ruleset, false, dns_stays(&v, dns) ? NET_DNS_SET : NULL, e);
	leave_ns();
	if (rc || dns_follow(&v, dns, e) || record_write(&v, e))
		goto out;
	reply = json_pack("{s:s, s:b}", "id", id, "applied", 1);
	if (v.dns)
		json_object_set_new(reply, "dnsPid", json_integer(json_integer_value(json_object_get(v.dns, "pid"))));
out:
	json_decref(v.dns);
	return reply;
}

/* Leftovers no runtime record accounts for, found and removed by
 * net/sweep.c. */
static json_t *op_sweep(struct jr *r, struct verr *e)
{
	bool dry = false;

	jr_bool(r, "dryRun", JR_OPTIONAL, &dry);
	if (jr_end(r))
		return NULL;
	/* It reads and removes every user's leftovers: root's job. */
	if (!who.root) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_PERMISSION", "ask root to run vmsan gc", "sweep is for root only");
		return NULL;
	}
	return sweep_run(dry, e);
}

/* The caller's records (root's: all) that nobody's state accounts for,
 * found and collected by net/orphans.c. */
static json_t *op_orphans(struct jr *r, struct verr *e)
{
	bool dry = false;

	jr_bool(r, "dryRun", JR_OPTIONAL, &dry);
	if (jr_end(r))
		return NULL;
	return net_orphans(dry, e);
}

static const struct helper_op ops[] = {
	{ "orphans", op_orphans },	   { "setup", op_setup },   { "teardown", op_teardown },
	{ "apply-rules", op_apply_rules }, { "verify", op_verify }, { "sweep", op_sweep },
};

static const struct helper helper = {
	.name = "vmsan-net",
	.summary = "plumbing (root): a VM's network namespace, links, rules",
	.usage = "usage: vmsan-net OP [--verbose] < request.json\n"
		 "\n"
		 "  {\"op\":\"setup\", \"id\":ID, \"ruleset\":RULESET, \"publishedPorts\":[P...],\n"
		 "   \"bandwidthMbit\":N, \"tapOwner\":UID, \"dns\":{...}, \"vmDir\":DIR}\n"
		 "  {\"op\":\"apply-rules\", \"id\":ID, \"ruleset\":RULESET}\n"
		 "  {\"op\":\"teardown\", \"id\":ID}            idempotent\n"
		 "  {\"op\":\"verify\", \"id\":ID}              leftovers, if any\n"
		 "  {\"op\":\"orphans\", \"dryRun\":BOOL}     records whose VM directory is gone\n"
		 "  {\"op\":\"sweep\", \"dryRun\":BOOL}       (root) what no record accounts for\n"
		 "\n"
		 "RULESET is the \"ruleset\" of vmsan-nftables compile.  Runs as root (through\n"
		 "the sudoers rule install.sh writes).  See vmsan-net(8).\n",
	.ops = ops,
	.nops = sizeof(ops) / sizeof(*ops),
};

int main(int argc, char **argv)
{
	struct verr e = { 0 };

	/* A caller must not stop or interrupt root's work half done (a setup
	 * ended between its record and the element it names leaves what a
	 * later teardown takes for its own): every signal sudo relays is
	 * held until exit, as vmsan-fc holds them (SIGSTOP still can stop
	 * us: lock_file bounds what that costs the others). */
	rootproc_hold_signals();
	/* --help and the like answer and run no op: no root needed.  Any
	 * other command line (an op, --verbose) runs only after all of what
	 * follows: an op must never see a caller or settings not set. */
	if (helper_answers_only(argc, argv))
		return helper_main(&helper, argc, argv);
	vmsan_prog = helper.name;
	if (geteuid() != 0) {
		verr_set(&e, VMSAN_EXIT_FAIL, "ERR_PERMISSION", "run it through vmsan (sudo), or as root",
			 "vmsan-net needs root");
		return reply_error(&e);
	}
	if (rootproc_reset(&e))
		return reply_error(&e);
	rootproc_detach();
	orig_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (orig_ns < 0)
		return VMSAN_EXIT_SYS;
	caller_get(&who);
	if (rootconf_load(&conf, &e))
		return reply_error(&e);
	return helper_main(&helper, argc, argv);
}
