# What a VM can leave on the host, read from the system itself (not from
# vmsan): shared by the suites that fault VMs (chaos.bats, midkill.bats).
# Needs $H (the test host namespace) and $TEST_TMP.

# The uids root runs a slot's VMM and resolver as (lib/netplan.h).
VMM_UID_BASE=1879048192
DNS_UID_BASE=$((VMM_UID_BASE + 32768))

# vmm_pid ID: the VMM's pid (from the process table, not from vmsan)
vmm_pid() { pgrep -f "process=vmsan-$1" || true; }

# leftovers ID: what the real system still holds of VM ID, one per line
# (nothing when clean): namespace, root's records (and their temporary
# files), the id's claim, its RAM file, its VMM and resolver (in its
# namespace, or by the slot's uids once the namespace is gone), its host
# link and tables, mounts naming it.
leftovers() {
	local id=$1 slot f
	ip netns list | grep -q "^vmsan-$id\b" && echo "netns vmsan-$id"
	for f in "/run/vmsan/net/$id.json" "/run/vmsan/net/$id.json.tmp" "/run/vmsan/vmm/$id" \
		"/run/vmsan/ids/$id" /run/vmsan/ids/".$id".* "/dev/shm/vmsan/$id.ram"; do
		[ ! -e "$f" ] || echo "$f"
	done
	[ -z "$(vmm_pid "$id")" ] || echo "VMM $(vmm_pid "$id")"
	ip netns pids "vmsan-$id" 2>/dev/null | while read -r p; do
		echo "process $p ($(cat "/proc/$p/comm" 2>/dev/null))"
	done
	slot=$(cat "$TEST_TMP/slot.$id" 2>/dev/null || true)
	if [ -n "$slot" ]; then
		nsenter --net="/run/netns/$H" ip -o link show | grep -qE ": vms[ht]${slot}[:@]" && echo "link vmsh$slot"
		slot_taken "$slot" && echo "slot $slot"
		slot_procs "$slot"
	fi
	nsenter --net="/run/netns/$H" nft list tables | grep -q "vmsan_${id//-/_}" && echo "table vmsan_${id//-/_}"
	findmnt -rn | grep -q "$id" && echo "mount naming $id"
	return 0
}

# removed_left ID: leftovers of a VM that no longer exists (removed, or
# never made): its lock file in root's VMM directory too (a VM that exists
# keeps it with its claim).
removed_left() {
	leftovers "$1"
	[ ! -e "/run/vmsan/vmm/$1.lock" ] || echo "/run/vmsan/vmm/$1.lock"
}

# slot_procs N: processes running as slot N's VMM or resolver uid, and the
# resolver's parent (root's setter), wherever their namespace is.
slot_procs() {
	local p
	for p in $(pgrep -u "$((VMM_UID_BASE + $1)),$((DNS_UID_BASE + $1))"); do
		[ "$(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null)" != Z ] || continue
		echo "process $p ($(cat "/proc/$p/comm" 2>/dev/null), uid $(stat -c %u "/proc/$p" 2>/dev/null))"
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" != vmsan-dns ] ||
			echo "process $(awk '{ print $4 }' "/proc/$p/stat" 2>/dev/null) (its setter)"
	done
}

# slot_taken N: bit N of root's slot map is set.
slot_taken() {
	local n=$1 byte
	byte=$(od -An -tu1 -j $((n / 8)) -N1 /run/vmsan/slots 2>/dev/null | tr -d ' ')
	[ -n "$byte" ] && [ $(((byte >> (n % 8)) & 1)) = 1 ]
}

# slots_set: every slot root's map has taken, one a line.
slots_set() {
	od -An -v -tu1 -N4096 /run/vmsan/slots 2>/dev/null | tr -s ' ' '\n' | grep -v '^$' |
		awk '{ for (b = 0; b < 8; b++) if (int($1 / 2 ^ b) % 2) print (NR - 1) * 8 + b }'
}

# note_slot ID: remember the VM's slot (from root's record) for leftovers.
note_slot() { jq -r .slot "/run/vmsan/net/$1.json" >"$TEST_TMP/slot.$1"; }
