#!/bin/sh
# The privilege boundary's cost (issue 15): create's control plane before
# and after, as root and as a user in the vmsan group through the
# installed sudoers rule, side by side in one run.
#
#   bench/boundary.sh [BEFORE-COMMIT]     (default: the commit before the
#                                          boundary work, d8ec1cc)
#
# BEFORE is checked out into a scratch worktree and built; each version is
# installed into a prefix of its own with its own sudoers rule, and one
# user in both groups runs both.  Rounds alternate before/after so drift
# hits both alike.  vmsan runs in a throwaway host namespace with no route
# out; guests are deny-all.  Needs root, jq, a built tree and its kernel.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/common
. "$top/bench/common"
before=${1:-d8ec1cc}
runs=${BENCH_RUNS:-10}
[ "$(id -u)" = 0 ] || { echo "bench/boundary.sh: needs root" >&2; exit 1; }
work=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/vmsan-bench.XXXXXX")
H=vbench-bnd$$ U=vmsbb$$
old=$work/before
export VMSAN_DNS=192.0.2.53

# run V root|user ARGS...: version V's vmsan (a: before, b: after)
run() {
	v=$1 who=$2
	shift 2
	if [ "$who" = root ]; then
		VMSAN_DIR=$work/state-$v nsenter --net="/run/netns/$H" "$work/prefix-$v/bin/vmsan" "$@"
	else
		nsenter --net="/run/netns/$H" setpriv --reuid="$U" --regid="$U" --init-groups \
			env -i HOME="/home/$U" PATH=/usr/bin:/bin VMSAN_DNS=$VMSAN_DNS VMSAN_DIR="/home/$U/.vmsan-$v" \
			"$work/prefix-$v/bin/vmsan" "$@"
	fi
}
cleanup() {
	for v in a b; do
		for who in root user; do
			d=$work/state-$v
			[ $who = root ] || d=/home/$U/.vmsan-$v
			for f in "$d"/vms/vm-*.json; do
				[ -e "$f" ] || continue
				f=${f##*/}
				run $v "$who" rm -f "${f%.json}" >/dev/null 2>&1 || true
			done
		done
		[ ! -d "$work/prefix-$v" ] ||
			"$top/install.sh" --uninstall --prefix "$work/prefix-$v" --sudoers "/etc/sudoers.d/vmsan-bnd$v$$" \
				--group "vmsbg$v$$" >/dev/null 2>&1 || true
		groupdel "vmsbg$v$$" 2>/dev/null || true
		rm -f "/etc/sudoers.d/vmsan-bnd$v$$"
	done
	userdel -r "$U" 2>/dev/null || true
	git -C "$top" worktree remove --force "$old" 2>/dev/null || true
	ip netns del "$H" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "bench/boundary.sh: building $before" >&2
git -C "$top" worktree add -q --detach "$old" "$before"
mkdir -p "$old/share/vmsan/kernels"
cp "$top"/share/vmsan/kernels/vmlinux-* "$old/share/vmsan/kernels/"
make -s -C "$old" >/dev/null
chmod 755 "$work"
useradd -m "$U"
for v in a b; do
	src=$old
	[ $v = b ] && src=$top
	"$src/install.sh" --no-deps --no-demo --prefix "$work/prefix-$v" --sudoers "/etc/sudoers.d/vmsan-bnd$v$$" \
		--group "vmsbg$v$$" >/dev/null 2>&1
	usermod -aG "vmsbg$v$$" "$U"
done

bench_host_ns "$H"

for v in a b; do
	for who in root user; do
		run $v "$who" images pull --runtime base >/dev/null
		id=$(run $v "$who" create --json --network-policy deny-all | jq -r .vm.id)   # warm up
		run $v "$who" rm -f "$id" >/dev/null
		: >"$work/t-$v-$who"
	done
done
# Each VM is removed after its create, and the next create waits a second
# for the kernel to finish destroying the namespace (it holds RTNL while
# it does): running guests under TCG would eat the two cores the control
# plane is measured on.
i=0
while [ "$i" -lt "$runs" ]; do
	for who in root user; do
		for v in a b; do
			out=$(run $v "$who" create --json --network-policy deny-all)
			echo "$out" | jq -e .ok >/dev/null || { echo "create failed ($v, $who): $out" >&2; exit 1; }
			echo "$out" | jq -c .timing >>"$work/t-$v-$who"
			run $v "$who" rm -f "$(echo "$out" | jq -r .vm.id)" >/dev/null
			sleep 1
		done
	done
	i=$((i + 1))
done
med() { jq -s "map(.$3) | sort | .[length / 2 | floor]" "$work/t-$1-$2"; }
row() { # label field
	printf '| %s | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f |\n' "$1" \
		"$(med a root "$2")" "$(med b root "$2")" "$(echo "$(med b root "$2") / $(med a root "$2")" | bc -l)" \
		"$(med a user "$2")" "$(med b user "$2")" "$(echo "$(med b user "$2") / $(med a user "$2")" | bc -l)"
}
cat <<EOF
## The privilege boundary's cost: create's control plane before and after (issue 15)

- **Date:** $(date -u +%Y-%m-%d)
- **Machine:** $(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -m), $(nproc) vCPUs, $(awk '/MemTotal/ {printf "%d GiB", $2/1048576}' /proc/meminfo); QEMU microvm under TCG, guests 1 vCPU / 256 MiB, deny-all.
- **Method:** \`bench/boundary.sh\`: $before (before) and $(git -C "$top" rev-parse --short HEAD) (after), each installed into a prefix of its own with its own sudoers rule; $runs creates of each as root and as one user in both groups (vmsan-net and vmsan-fc under \`sudo -n\`), rounds alternating before/after; medians of create's own \`--json\` timing; each VM removed after its create, a second's pause before the next.

| median of $runs, ms | root before | root after | after/before | user before | user after | after/before |
|---|---|---|---|---|---|---|
$(row "network (vmsan-net setup)" networkMs)
$(row "VMM start (vmsan-fc start)" vmmStartMs)
$(row "of which QEMU's own start" vmmInitMs)
$(row "**control plane (all but QEMU's own start and the boot)**" controlPlaneMs)
$(row "total (to the agent answering)" totalMs)
EOF
