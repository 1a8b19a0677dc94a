#!/bin/sh
# Snapshots (issue 7), on QEMU here: for 256 MiB and 1 GiB guests (base
# image, deny-all), RUNS rounds each of
#  - a cold create (to the agent answering),
#  - snapshot create (the VM paused, state + memory + disk saved, resumed),
#  - a restore: create --snapshot to the agent answering with its new token;
# medians, the restore against the cold create, and the snapshot's size on
# disk.  vmsan runs in a throwaway host namespace with no route out.  Needs
# root, jq.  Prints Markdown.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
runs=${BENCH_RUNS:-5}
H=vbench-snap$$
work=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/vmsan-bench.XXXXXX")
[ "$(id -u)" = 0 ] || { echo "bench/snapshot.sh: needs root" >&2; exit 1; }
VMSAN_DIR="$work/state"
VMSAN_DNS=192.0.2.53
export VMSAN_DIR VMSAN_DNS
# shellcheck source=bench/common
. "$top/bench/common"
vmsan() { nsenter --net="/run/netns/$H" "$top/bin/vmsan" "$@"; }
cleanup() { bench_rm_all; ip netns del "$H" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
ip netns add "$H"
ip -n "$H" link set lo up
"$top/bin/vmsan" images pull --runtime base >/dev/null
ms() { s=$(date +%s%N); "$@" >"$work/out"; e=$(date +%s%N); echo "($e - $s) / 1000000" | bc -l; }
med() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
fmt() { printf '%.0f' "$1"; }

echo "| guest | cold create, ms | snapshot create, ms (paused) | restore to agent ready, ms | cold / restore | snapshot on disk |"
echo "|---|---|---|---|---|---|"
for mem in 256 1024; do
	: >"$work/cold"; : >"$work/snap"; : >"$work/paused"; : >"$work/rest"
	i=0
	while [ "$i" -lt "$runs" ]; do
		ms vmsan create --json --network-policy deny-all --memory "$mem" >>"$work/cold"
		id=$(jq -r .vm.id "$work/out")
		# a guest that has touched some memory: 64 MiB written in tmpfs
		vmsan exec "$id" -- sh -c 'dd if=/dev/urandom of=/dev/shm/fill bs=1M count=64 2>/dev/null'
		ms vmsan snapshot create "$id" --json >>"$work/snap"
		jq -r .sizes.pausedMs "$work/out" >>"$work/paused"
		sid=$(jq -r .snapshotId "$work/out")
		du=$(du -sm "$VMSAN_DIR/snapshots/$sid" | cut -f1)
		ms vmsan create --json --snapshot "$sid" >>"$work/rest"
		bench_rm_all
		vmsan snapshot rm "$sid" >/dev/null
		i=$((i + 1))
	done
	c=$(med <"$work/cold"); s=$(med <"$work/snap"); p=$(med <"$work/paused"); r=$(med <"$work/rest")
	printf '| %d MiB | %s | %s (%s) | %s | %.1fx | %s MiB |\n' "$mem" "$(fmt "$c")" "$(fmt "$s")" "$(fmt "$p")" \
		"$(fmt "$r")" "$(echo "$c / $r" | bc -l)" "$du"
done
