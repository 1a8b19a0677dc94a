#!/bin/sh
# Upload and download through a real guest (issue 19): vmsan upload and
# vmsan download against raw TCP over the same link, the host's side of a
# published port into the guest, with tests/tools/tcp-copy (256 KiB reads
# and writes, as socat -b 262144; busybox's nc in the guest moves 4 KiB at
# a time) at both ends.  One VM (deny-all, base image, MEM MiB, 1 vCPU,
# TCG),
#  1. SMALL_MB into and out of the guest's tmpfs (/dev/shm): the protocol
#     and the emulated CPU, no disk, ROUNDS rounds;
#  2. BIG_MB into and out of the guest's disk (/root: the overlay's upper
#     layer on the VM's ext4 disk, a file on the host), more than the
#     guest holds in memory, BIG_ROUNDS rounds.
# A round: raw upload, raw download of what it wrote, then vmsan upload and
# vmsan download of what that wrote; each download is compared with the
# source (so each upload is checked too).  Every destination, host or
# guest, is removed right before the transfer that writes it (see
# bench/agent.sh: memory freed long before costs the hypervisor here).
# An upload is timed until the guest has closed the file (vmsan: the
# agent's answer; raw: the guest's end closing the connection after its
# last write), a download until the host has.  vmsan runs in a throwaway
# host namespace with no route out; no packet leaves the machine.  Needs
# root, jq, bc.  Prints Markdown.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/common
. "$top/bench/common"
small_mb=${BENCH_SMALL_MB:-64}
big_mb=${BENCH_BIG_MB:-1024}
rounds=${BENCH_ROUNDS:-5}
big_rounds=${BENCH_BIG_ROUNDS:-3}
mem=${BENCH_MEM:-256}
H=vbench-xfer$$
work=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/vmsan-bench.XXXXXX")
[ "$(id -u)" = 0 ] || { echo "bench/transfer.sh: needs root" >&2; exit 1; }
[ -x "$top/tests/tools/tcp-copy" ] || { echo "bench/transfer.sh: make tests/tools/tcp-copy first" >&2; exit 1; }
VMSAN_DIR="$work/state"
VMSAN_DNS=192.0.2.53
export VMSAN_DIR VMSAN_DNS
vmsan() { nsenter --net="/run/netns/$H" "$top/bin/vmsan" "$@"; }
copy() { nsenter --net="/run/netns/$H" "$top/tests/tools/tcp-copy" "$@"; }
cleanup() {
	[ -z "${id:-}" ] || vmsan rm -f "$id" >/dev/null 2>&1 || true
	ip netns del "$H" 2>/dev/null || true
	umount "$work/t" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

bench_host_ns "$H"
vmsan images pull --runtime base >/dev/null
vmsan create --json --accel tcg --network-policy deny-all --memory "$mem" --publish-port 9300,9301 >"$work/vm.json"
id=$(jq -r .vm.id "$work/vm.json")
vmsan exec "$id" -- mkdir -p /root/bin
vmsan upload "$id" "$top/tests/tools/tcp-copy" --dest /root/bin 2>/dev/null
# the host's side lives in a tmpfs: the host's disk is not measured
mkdir "$work/t"
mount -t tmpfs -o size=$((big_mb * 2 + 64))m vbench "$work/t"

now() { date +%s%N; }
el() { echo "scale=3; ($2 - $1) / 1000000000" | bc; }
corrupt() { echo "bench/transfer.sh: a transfer arrived corrupted" >&2; kill "$$"; }
best() { printf '%s\n' "$@" | sort -n | head -n 1; }
# guest: the one destination file there is, removed
gclear() { vmsan exec "$id" -- rm -f "$1/f"; }
hclear() { rm -rf "$work/t/d"; }
raw_up() { # DIR
	gclear "$1"
	vmsan exec "$id" --detach -- /root/bin/tcp-copy recv-listen 9300 "$1/f" >/dev/null
	sleep 1
	s=$(now)
	copy send 127.0.0.1 9300 "$work/t/f"
	el "$s" "$(now)"
}
raw_down() { # DIR
	hclear
	vmsan exec "$id" --detach -- /root/bin/tcp-copy send-listen 9301 "$1/f" >/dev/null
	sleep 1
	s=$(now)
	copy recv 127.0.0.1 9301 "$work/t/d"
	el "$s" "$(now)"
	cmp -s "$work/t/f" "$work/t/d" || corrupt
}
up() { # DIR
	gclear "$1"
	s=$(now)
	vmsan upload "$id" "$work/t/f" --dest "$1" 2>/dev/null
	el "$s" "$(now)"
}
down() { # DIR
	hclear
	mkdir "$work/t/d"
	s=$(now)
	vmsan download "$id" "$1/f" --dest "$work/t/d/" >/dev/null 2>&1
	el "$s" "$(now)"
	cmp -s "$work/t/f" "$work/t/d/f" || corrupt
}
mbps() { echo "scale=0; $1 / $2" | bc; }
pct() { echo "scale=0; 100 * $2 / $1" | bc; }
# series SIZE_MB DIR ROUNDS: one table and its runs
series() {
	rm -f "$work/t/f"
	head -c $(($1 * 1048576)) /dev/urandom >"$work/t/f"
	l_ru='' l_rd='' l_up='' l_dn=''
	i=0
	while [ "$i" -lt "$3" ]; do
		l_ru="$l_ru $(raw_up "$2")"
		l_rd="$l_rd $(raw_down "$2")"
		l_up="$l_up $(up "$2")"
		l_dn="$l_dn $(down "$2")"
		i=$((i + 1))
	done
	gclear "$2"
	hclear
	# shellcheck disable=SC2086 # the lists are words
	ru=$(best $l_ru)
	# shellcheck disable=SC2086
	rd=$(best $l_rd)
	# shellcheck disable=SC2086
	u=$(best $l_up)
	# shellcheck disable=SC2086
	d=$(best $l_dn)
	cat <<MD
| $1 MiB, guest's $2 ($4) | s | MiB/s | of raw TCP, same way |
|---|---|---|---|
| raw TCP into the guest (tcp-copy) | $ru | $(mbps "$1" "$ru") | 100% |
| vmsan upload | $u | $(mbps "$1" "$u") | **$(pct "$u" "$ru")%** |
| raw TCP out of the guest (tcp-copy) | $rd | $(mbps "$1" "$rd") | 100% |
| vmsan download | $d | $(mbps "$1" "$d") | **$(pct "$d" "$rd")%** |

Fastest of $3 rounds; every run, s: raw up$l_ru; upload$l_up; raw down$l_rd;
download$l_dn.

MD
}

cat <<MD
## Upload and download through a real guest (bench/transfer.sh)

$(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r); $(jq -r .vm.vmm "$work/vm.json")
($(jq -r .vm.accelUsed "$work/vm.json")), guest $mem MiB, 1 vCPU, deny-all; raw TCP through a published
port, vmsan through the agent's address: the same veth and TAP.

MD
series "$small_mb" /dev/shm "$rounds" tmpfs
series "$big_mb" /root "$big_rounds" "ext4 disk"
