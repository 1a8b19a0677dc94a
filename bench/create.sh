#!/bin/sh
# VMs for real (issue 6): vmsan create → agent ready, on QEMU here.
#  1. RUNS sequential creates (deny-all, base image), removed at the end:
#     the median of every step of create's own --json timing breakdown,
#     and the control plane (everything but the VMM's start and the guest's
#     boot) against the whole;
#  2. the VM's own disk (vmsan-rootfs vmdisk) against copying the image's
#     disk, for the base image and for a 1 GiB image: one cost whatever the
#     image, against a cost that grows with it;
#  3. 10 VMs created at once: wall time until all answer, against 10 in a
#     row; host memory per VM (QEMU's PSS and RSS, and MemAvailable's drop).
# vmsan runs in a throwaway "host" namespace with no route out, and the
# guests are deny-all: no packet leaves the machine.  Needs root, jq, bc.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/common
. "$top/bench/common"
runs=${BENCH_RUNS:-10}
H=vbench-create$$
work=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/vmsan-bench.XXXXXX")
[ "$(id -u)" = 0 ] || { echo "bench/create.sh: needs root" >&2; exit 1; }
VMSAN_DIR="$work/state"
VMSAN_DNS=192.0.2.53
export VMSAN_DIR VMSAN_DNS
vmsan() { nsenter --net="/run/netns/$H" "$top/bin/vmsan" "$@"; }

# The user path: an installed copy, a sudoers rule and a user in its group.
U=vmsb$$
UG=vmsbg$$
UPREFIX=/opt/vmsan-bench$$
USUDOERS=/etc/sudoers.d/vmsan-bench$$
as_user() {
	nsenter --net="/run/netns/$H" setpriv --reuid="$U" --regid="$U" --init-groups \
		env -i HOME="/home/$U" PATH=/usr/bin:/bin VMSAN_DNS=192.0.2.53 "$UPREFIX/bin/vmsan" "$@"
}

cleanup() {
	for f in "$VMSAN_DIR"/vms/vm-*.json; do
		[ -e "$f" ] || continue
		f=${f##*/}
		vmsan rm -f "${f%.json}" >/dev/null 2>&1 || true
	done
	if [ -d "/home/$U/.vmsan/vms" ]; then
		for f in "/home/$U/.vmsan/vms"/vm-*.json; do
			[ -e "$f" ] || continue
			f=${f##*/}
			as_user rm -f "${f%.json}" >/dev/null 2>&1 || true
		done
	fi
	if [ -d "$UPREFIX" ]; then
		"$top/install.sh" --uninstall --prefix "$UPREFIX" --sudoers "$USUDOERS" --group "$UG" >/dev/null 2>&1 || true
		userdel -r "$U" 2>/dev/null || true
		groupdel "$UG" 2>/dev/null || true
		rm -rf "$UPREFIX" "$USUDOERS"
	fi
	ip netns del "$H" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

bench_host_ns "$H"
"$top/bin/vmsan" images pull --runtime base >/dev/null
# one create to warm the caches
id=$(vmsan create --json --network-policy deny-all | jq -r .vm.id)
vmsan rm -f "$id" >/dev/null

# 1. sequential creates, kept until all are made: a VM removed just before
# leaves the kernel destroying its namespace in the background (holding
# RTNL), which the next create's network step would wait for.
: >"$work/timings"
i=0
while [ "$i" -lt "$runs" ]; do
	out=$(vmsan create --json --network-policy deny-all)
	echo "$out" | jq -c .timing >>"$work/timings"
	i=$((i + 1))
done
for f in "$VMSAN_DIR"/vms/vm-*.json; do f=${f##*/}; vmsan rm -f "${f%.json}" >/dev/null; done
med() { jq -s "map(.$1) | sort | .[length / 2 | floor]" "$work/timings"; }
fmt() { printf '%.1f' "$1"; }

# 1b. the same as a user in the vmsan group: vmsan-net and vmsan-fc run
# through sudo (a sudo start costs about 5 ms here), the VMM as the user.
"$top/install.sh" --no-deps --no-demo --prefix "$UPREFIX" --sudoers "$USUDOERS" --group "$UG" >/dev/null 2>&1
useradd -m -G "$UG" "$U"
uid=$(as_user create --json --network-policy deny-all | jq -r .vm.id)
as_user rm -f "$uid" >/dev/null
: >"$work/utimings"
i=0
while [ "$i" -lt "$runs" ]; do
	as_user create --json --network-policy deny-all | jq -c .timing >>"$work/utimings"
	i=$((i + 1))
done
for f in "/home/$U/.vmsan/vms"/vm-*.json; do f=${f##*/}; as_user rm -f "${f%.json}" >/dev/null; done
umed() { jq -s "map(.$1) | sort | .[length / 2 | floor]" "$work/utimings"; }

# 2. the VM's disk against a copy of the image's
big=$work/big
mkdir -p "$big"
head -c 1073741824 /dev/urandom >"$big/data"
mke2fs -q -t ext4 -d "$big" "$work/big.ext4" 1200M >/dev/null
rm -f "$big/data"
base_img=$(find "$VMSAN_DIR"/images -name rootfs.ext4 | head -1)
ms() { s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo "($e - $s) / 1000000" | bc -l; }
vmdisk() {
	echo "{\"id\":\"vm-b0000000\",\"guestDir\":\"$top/libexec/guest\"}" | "$top/libexec/vmsan-rootfs" vmdisk
}
best() { # best of 5: CMD...
	b=999999
	for _ in 1 2 3 4 5; do
		t=$("$@")
		b=$(echo "if ($t < $b) $t else $b" | bc -l)
		rm -rf "$VMSAN_DIR/vms/vm-b0000000" "$VMSAN_DIR/vms/vm-b0000000.token" "$work/copy.ext4"
		sync
	done
	fmt "$b"
}
d_vm=$(best ms vmdisk)
d_cp_base=$(best ms cp --sparse=always "$base_img" "$work/copy.ext4")
d_cp_big=$(best ms cp --sparse=always "$work/big.ext4" "$work/copy.ext4")
base_mib=$(du -m "$base_img" | cut -f1)
big_mib=$(du -m "$work/big.ext4" | cut -f1)
rm -f "$work/big.ext4"

# 3. ten at once, then ten in a row
avail() { awk '/^MemAvailable/ {print $2}' /proc/meminfo; }
sync
echo 3 >/proc/sys/vm/drop_caches
m0=$(avail)
s=$(date +%s%N)
for n in 1 2 3 4 5 6 7 8 9 10; do
	vmsan create --json --network-policy deny-all >"$work/par$n" 2>&1 &
done
wait
e=$(date +%s%N)
par_s=$(echo "($e - $s) / 1000000000" | bc -l)
ok=0
for n in 1 2 3 4 5 6 7 8 9 10; do jq -e .ok "$work/par$n" >/dev/null 2>&1 && ok=$((ok + 1)); done
sleep 2
m1=$(avail)
pss=0 rss=0
for p in $(pgrep -f 'process=vmsan-vm-'); do
	pss=$((pss + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup")))
	rss=$((rss + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status")))
done
nq=$(pgrep -fc 'process=vmsan-vm-' || true)
for f in "$VMSAN_DIR"/vms/vm-*.json; do f=${f##*/}; vmsan rm -f "${f%.json}" >/dev/null; done
s=$(date +%s%N)
for n in 1 2 3 4 5 6 7 8 9 10; do
	vmsan create --json --network-policy deny-all >"$work/seq$n"
done
e=$(date +%s%N)
seq_s=$(echo "($e - $s) / 1000000000" | bc -l)

accel=$(jq -r '.vm.accelUsed' "$work/seq1")
cat <<EOF
## VMs for real: create → agent ready (issue 6)

- **Date:** $(date -u +%Y-%m-%d)
- **Machine:** $(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -m), $(nproc) vCPUs, $(awk '/MemTotal/ {printf "%d GiB", $2/1048576}' /proc/meminfo); VMM: QEMU microvm, accel $accel, guests 1 vCPU / 256 MiB.
- **Method:** \`bench/create.sh\` (root): vmsan in a throwaway host namespace, deny-all guests from the base image; $runs creates in a row after one to warm up (kept running, removed at the end); medians of create's own \`--json\` timing. The same again as a user in the vmsan group, through an installed copy and its sudoers rule (vmsan-net and vmsan-fc under \`sudo -n\`).

| create step (median of $runs) | root, ms | a user through sudo, ms |
|---|---|---|
| record (state_new, in-process) | $(fmt "$(med recordMs)") | $(fmt "$(umed recordMs)") |
| image (vmsan-rootfs pull, cached; beside the network) | $(fmt "$(med imageMs)") | $(fmt "$(umed imageMs)") |
| VM disk and token (vmsan-rootfs vmdisk, made beside policy and network: what it added after them) | $(fmt "$(med diskMs)") | $(fmt "$(umed diskMs)") |
| policy (the compiler of vmsan-nftables, in-process) | $(fmt "$(med policyMs)") | $(fmt "$(umed policyMs)") |
| network (vmsan-net setup) | $(fmt "$(med networkMs)") | $(fmt "$(umed networkMs)") |
| VMM start (vmsan-fc start: QEMU up, QMP answers) | $(fmt "$(med vmmStartMs)") | $(fmt "$(umed vmmStartMs)") |
| of which QEMU's own start (fork to QMP answering) | $(fmt "$(med vmmInitMs)") | $(fmt "$(umed vmmInitMs)") |
| guest boot to agent /health | $(fmt "$(med bootMs)") | $(fmt "$(umed bootMs)") |
| finish (record running) | $(fmt "$(med finishMs)") | $(fmt "$(umed finishMs)") |
| **total** | **$(fmt "$(med totalMs)")** | **$(fmt "$(umed totalMs)")** |
| **control plane (all but QEMU's own start and the boot)** | **$(fmt "$(med controlPlaneMs)")** | **$(fmt "$(umed controlPlaneMs)")** |

| the VM's own disk (best of 5) | ms |
|---|---|
| vmsan-rootfs vmdisk (10 GiB sparse ext4, init, agent, token) | $d_vm |
| cp --sparse of the base image's disk ($base_mib MiB used) | $d_cp_base |
| cp --sparse of a 1 GiB image's disk ($big_mib MiB used) | $d_cp_big |

| 10 VMs | s |
|---|---|
| created at once, until all 10 answer ($ok of 10 ok) | $(fmt "$par_s") |
| created one after another | $(fmt "$seq_s") |

- Host memory with 10 VMs running ($nq QEMU processes): PSS $((pss / nq / 1024)) MiB per VM, RSS $((rss / nq / 1024)) MiB per VM; MemAvailable fell by $(((m0 - m1) / 1024 / 10)) MiB per VM.
EOF
