/* Sweep: what vmsan-net made that no runtime record accounts for (a
 * record lost, a crash between steps), found under the slot lock and,
 * unless a dry run, removed.  Root only (the core checks it). */
#define _GNU_SOURCE
#include "net/net.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netlink/netlink.h>
#include <netlink/route/link.h>

struct sweep {
	bool dry;
	json_t *owned;	/* id -> true, nsAddr -> id, from the records */
	json_t *slots;	/* vmsh<N> -> id, the slots the records hold */
	json_t *stale;	/* [{port, addr}] map elements no record owns */
	json_t *tables; /* [name] VM tables no record owns */
	json_t *found;	/* what is (dry: would be) removed, in words */
};

/* vmsan_<id> (dashes as underscores): the table of a --no-netns VM. */
static void sweep_table(const char *name, void *arg)
{
	struct sweep *sw = arg;
	char id[64];
	size_t n = strlen(name);

	if (strncmp(name, "vmsan_", 6) || n - 6 >= sizeof id)
		return;
	memcpy(id, name + 6, n - 5);
	for (char *c = id; *c; c++)
		if (*c == '_')
			*c = '-';
	if (valid_vm_id(id, NULL, 0) == 0 && !json_object_get(sw->owned, id))
		json_array_append_new(sw->tables, json_string(name));
}

static void sweep_elem(unsigned port, const char *addr, void *arg)
{
	struct sweep *sw = arg;

	if (!json_object_get(sw->owned, addr))
		json_array_append_new(sw->stale, json_pack("{s:i, s:s}", "port", (int)port, "addr", addr));
}

/* <id>.json.tmp with no <id>.json: a setup killed before its first record
 * was renamed into place.  An id's first record is written under the slot
 * lock (slot_take), which sweep holds; later ones only while the record
 * exists. */
static void sweep_tmp(struct sweep *sw, const char *name, size_t idlen)
{
	char id[64], path[160];

	memcpy(id, name, idlen);
	id[idlen] = 0;
	record_path(path, sizeof path, id);
	if (valid_vm_id(id, NULL, 0) != 0 || access(path, F_OK) == 0)
		return;
	json_array_append_new(sw->found, json_sprintf("temporary record " NET_DIR "/%s", name));
	if (!sw->dry)
		record_tmp_remove(id);
}

/* The records: which ids, slots and addresses are someone's. */
static void sweep_records(struct sweep *sw)
{
	struct dirent *d;
	DIR *dir = opendir(NET_DIR);

	if (!dir)
		return;
	while ((d = readdir(dir))) {
		size_t n = strlen(d->d_name);
		char id[64];
		struct vmnet v;

		if (n > 9 && n - 9 < sizeof id && !strcmp(d->d_name + n - 9, ".json.tmp")) {
			sweep_tmp(sw, d->d_name, n - 9);
			continue;
		}
		if (n <= 5 || n - 5 >= sizeof id || strcmp(d->d_name + n - 5, ".json"))
			continue;
		memcpy(id, d->d_name, n - 5);
		id[n - 5] = 0;
		if (valid_vm_id(id, NULL, 0) != 0)
			continue;
		vmnet_init(&v, id);
		/* Keys: the id (its namespace is owned), and with a slot the
		 * slot's address and host link. */
		json_object_set_new(sw->owned, id, json_true());
		if (record_read(&v) && v.slot >= 0) {
			json_object_set_new(sw->owned, v.ns_addr, json_string(id));
			json_object_set_new(sw->slots, v.host_if, json_string(id));
		}
		json_decref(v.ports);
		json_decref(v.dns);
	}
	closedir(dir);
}

/* Taken slots nobody's record names: freed in the map (lock, read into
 * map). */
static int sweep_slots(struct sweep *sw, int lock, unsigned char *map, struct verr *e)
{
	for (long s = 0; s < NET_SLOTS; s++) {
		char ifn[IFNAMSIZ];

		if (!(map[s / 8] & (1 << (s % 8))))
			continue;
		snprintf(ifn, sizeof ifn, NET_HOST_PREFIX "%ld", s);
		if (json_object_get(sw->slots, ifn))
			continue;
		json_array_append_new(sw->found, json_sprintf("slot %ld", s));
		if (!sw->dry) {
			map[s / 8] &= (unsigned char)~(1 << (s % 8));
			if (pwrite(lock, &map[s / 8], 1, s / 8) != 1) {
				verr_sys(e, "ERR_RUNTIME", NULL, "cannot write " SLOT_MAP);
				return -1;
			}
		}
	}
	return 0;
}

/* vmsh<N> and vmst<N> links of slots no record holds. */
static int sweep_links(struct sweep *sw, struct verr *e)
{
	struct nl_sock *sk = rt_sock(e);
	struct nl_cache *links = NULL;

	if (!sk)
		return -1;
	if (rtnl_link_alloc_cache(sk, AF_UNSPEC, &links) == 0) {
		for (struct nl_object *o = nl_cache_get_first(links); o; o = nl_cache_get_next(o)) {
			const char *name = rtnl_link_get_name((struct rtnl_link *)o);
			char *end;

			if (!name || (strncmp(name, NET_HOST_PREFIX, 4) && strncmp(name, NET_HOST_TAP_PREFIX, 4)) ||
			    !name[4] || strtol(name + 4, &end, 10) < 0 || *end || json_object_get(sw->slots, name))
				continue;
			json_array_append_new(sw->found, json_sprintf("interface %s", name));
			if (!sw->dry)
				rtnl_link_delete(sk, (struct rtnl_link *)o);
		}
		nl_cache_free(links);
	}
	nl_socket_free(sk);
	return 0;
}

/* Namespaces named for a VM that has no record, with what runs in them. */
static void sweep_netns(struct sweep *sw)
{
	struct dirent *d;
	DIR *dir = opendir(NETNS_DIR);

	if (!dir)
		return;
	while ((d = readdir(dir))) {
		const char *id = d->d_name + 6;
		struct vmnet v;

		if (strncmp(d->d_name, "vmsan-", 6) || valid_vm_id(id, NULL, 0) != 0 || json_object_get(sw->owned, id))
			continue;
		vmnet_init(&v, id);
		json_array_append_new(sw->found, json_sprintf("network namespace %s", v.netns));
		/* what still runs in it (a resolver, a VMM) keeps it alive */
		netns_kill_all(v.nspath, sw->dry, sw->found);
		if (!sw->dry)
			netns_delete(&v);
	}
	closedir(dir);
}

/* Resolvers (vmsan-dns runs as NET_DNS_UID_BASE + its slot) of slots no
 * record holds: a setup killed between starting one and recording it
 * (before teardown killed what runs in the namespace), whose namespace is
 * gone, is found by nothing else, and would run until the host restarts. */
static void sweep_resolvers(struct sweep *sw)
{
	DIR *dir = opendir("/proc");
	struct dirent *d;

	while (dir && (d = readdir(dir))) {
		char *end, ifn[IFNAMSIZ], path[64];
		long pid = strtol(d->d_name, &end, 10);
		struct stat st;

		snprintf(path, sizeof path, "/proc/%.20s", d->d_name);
		if (*end || pid <= 1 || stat(path, &st) != 0 || st.st_uid < NET_DNS_UID_BASE ||
		    st.st_uid >= NET_DNS_UID_BASE + NET_SLOTS)
			continue;
		snprintf(ifn, sizeof ifn, NET_HOST_PREFIX "%u", (unsigned)(st.st_uid - NET_DNS_UID_BASE));
		/* one that has ended waits for init to reap it (its parent gone):
		 * nothing to kill (proc_start_time: -1 for a zombie or none) */
		if (json_object_get(sw->slots, ifn) || proc_start_time(pid) < 0)
			continue;
		json_array_append_new(sw->found, json_sprintf("resolver process %ld of slot %u, which no record holds",
							      pid, (unsigned)(st.st_uid - NET_DNS_UID_BASE)));
		if (!sw->dry)
			kill((pid_t)pid, SIGKILL);
	}
	if (dir)
		closedir(dir);
}

/* --no-netns tables (vmsan_<id>) of VMs that have no record. */
static int sweep_tables(struct sweep *sw, struct verr *e)
{
	size_t i;
	json_t *x;

	if (nft_tables_walk(sweep_table, sw, e) != 0)
		return -1;
	json_array_foreach(sw->tables, i, x) {
		json_array_append_new(sw->found, json_sprintf("table %s", json_string_value(x)));
		if (!sw->dry && nft_table_delete(json_string_value(x), e) != 0)
			return -1;
	}
	return 0;
}

/* Published ports pointing at no recorded VM. */
static int sweep_ports(struct sweep *sw, struct verr *e)
{
	size_t i;
	json_t *x;

	if (nft_map_walk(NET_TABLE, NET_PUB_MAP, sweep_elem, sw, e) != 0)
		return -1;
	json_array_foreach(sw->stale, i, x) {
		json_int_t port = json_integer_value(json_object_get(x, "port"));

		json_array_append_new(sw->found, json_sprintf("published port %lld -> %s", (long long)port,
							      json_string_value(json_object_get(x, "addr"))));
		if (!sw->dry && nft_map_port_addr(NET_TABLE, NET_PUB_MAP, (unsigned)port, NULL, false, e) != 0)
			return -1;
	}
	return 0;
}

/* Under the slot lock (setup writes its record before letting it go, and
 * teardown removes the record last), anything of ours that no runtime
 * record names is a leftover: a VM id's record lost, or a crash between
 * steps.  Found: taken slots without a record (their vmsh<N> link too),
 * vmsh<N> links of slots no record holds, vmsan-vm-* namespaces without a
 * record, resolvers of slots no record holds, published-port elements
 * pointing at no recorded VM, and temporary records with no record. */
json_t *sweep_run(bool dry, struct verr *e)
{
	unsigned char map[NET_SLOTS / 8];
	struct sweep sw = { dry, json_object(), json_object(), json_array(), json_array(), json_array() };
	json_t *reply = NULL;
	int lock;

	if (ensure_dirs(e) || (lock = lock_file(SLOT_MAP, e)) < 0)
		goto out_nolock;
	memset(map, 0, sizeof map);
	if (pread(lock, map, sizeof map, 0) < 0) {
		verr_sys(e, "ERR_RUNTIME", NULL, "cannot read " SLOT_MAP);
		goto out;
	}
	sweep_records(&sw);
	if (sweep_slots(&sw, lock, map, e) || sweep_links(&sw, e))
		goto out;
	sweep_netns(&sw);
	sweep_resolvers(&sw);
	if (sweep_tables(&sw, e) || sweep_ports(&sw, e))
		goto out;
	reply = json_pack("{s:b, s:O}", "dryRun", dry, dry ? "found" : "removed", sw.found);
out:
	close(lock);
out_nolock:
	json_decref(sw.owned);
	json_decref(sw.slots);
	json_decref(sw.stale);
	json_decref(sw.tables);
	json_decref(sw.found);
	return reply;
}
