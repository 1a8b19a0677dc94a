/* Teardown: everything a record says was made, removed (idempotent, and
 * what a failed setup made too); and verify's list of what is left of an
 * id. */
#define _GNU_SOURCE
#include "net/net.h"

#include <fcntl.h>
#include <unistd.h>

#include <netlink/netlink.h>

void teardown(struct vmnet *v)
{
	struct verr ignore = { 0 };
	bool had_ns;
	size_t i;
	json_t *p;
	char path[160];

	json_array_foreach(v->ports, i, p)
		nft_map_port_addr(NET_TABLE, NET_PUB_MAP, (unsigned)json_integer_value(p), NULL, false, &ignore);
	/* the resolver, so that the namespace goes with the VMM */
	dns_stop(v);
	if (v->host_mode) {
		/* --no-netns: the VM's table and its TAP, from the host. */
		if (v->slot >= 0) {
			nft_table_delete(v->table, &ignore);
			delete_link(v->host_if);
		}
		record_path(path, sizeof(path), v->id);
		unlink(path); /* before the slot, as below */
		if (v->slot >= 0)
			slot_free(v->slot);
		return;
	}
	/* Deleting the namespace takes the TAP, the uplink, its veth peer on
	 * the host, the qdiscs and the VM's table with it. */
	had_ns = netns_exists(v);
	if (had_ns) {
		/* what runs there that no record names: a resolver started by a
		 * setup killed before its record said so, a VMM likewise */
		netns_kill_all(v->nspath, false, NULL);
		netns_delete(v);
	}
	/* When the namespace existed, its destruction (asynchronous, in the
	 * kernel) takes the veth pair with it; deleting the host end here
	 * would only wait for the same RCU grace periods.  Without it (a
	 * half-made setup), delete a host end that is there. */
	if (v->slot >= 0 && !had_ns)
		delete_link(v->host_if);
	/* The record goes before the slot: a teardown killed between the two
	 * leaves a slot no record names (the sweep frees it), never a record
	 * naming a slot that another VM may take, which a second teardown
	 * would free, and its link delete, from under that VM. */
	record_path(path, sizeof(path), v->id);
	unlink(path);
	if (v->slot >= 0)
		slot_free(v->slot);
}

json_t *leftovers(const char *id, struct verr *e)
{
	struct vmnet v;
	json_t *left = json_array();
	struct nl_sock *sk;
	char path[160];

	vmnet_init(&v, id);
	record_path(path, sizeof(path), id);
	if (record_read(&v))
		json_array_append_new(left, json_sprintf("runtime record %s", path));
	if (netns_exists(&v))
		json_array_append_new(left, json_sprintf("network namespace %s", v.netns));
	if (dns_alive(&v))
		json_array_append_new(
			left, json_sprintf("resolver process %lld", json_integer_value(json_object_get(v.dns, "pid"))));
	json_decref(v.dns);
	sk = rt_sock(e);
	if (sk && v.slot >= 0 && link_index(sk, v.host_if))
		json_array_append_new(left, json_sprintf("interface %s", v.host_if));
	if (v.host_mode && v.slot >= 0 && nft_table_exists(v.table, &(struct verr){ 0 }) == 1)
		json_array_append_new(left, json_sprintf("table %s", v.table));
	if (sk)
		nl_socket_free(sk);
	if (v.slot >= 0) {
		unsigned char byte = 0;
		int fd = open(SLOT_MAP, O_RDONLY | O_CLOEXEC);

		if (fd >= 0 && pread(fd, &byte, 1, v.slot / 8) == 1 && (byte & (1 << (v.slot % 8))))
			json_array_append_new(left, json_sprintf("slot %ld", v.slot));
		if (fd >= 0)
			close(fd);
	}
	json_decref(v.ports);
	return left;
}
