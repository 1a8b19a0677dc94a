#!/bin/sh
# Per-packet cost with 1 VM and with many (issue 3): TCP connections per
# second from a guest namespace, attached to VM 1's TAP, through the VM's
# rules, the host's shared table and a fake internet namespace, first with
# VM 1 alone, then with SCALE-1 more VMs' networks present.  Needs root and
# the test tools (make check builds them).  Prints Markdown.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
net=$top/libexec/vmsan-net
nftc=$top/libexec/vmsan-nftables
rate=$top/tests/tools/connect-rate
pump=$top/tests/tools/tap-pump
scale=${BENCH_SCALE:-1000}
secs=${BENCH_SECONDS:-3}
H=vpkh$$ I=vpki$$ G=vpkg$$
[ "$(id -u)" = 0 ] || { echo "bench/packet.sh: needs root" >&2; exit 1; }
if [ ! -x "$rate" ] || [ ! -x "$pump" ]; then
	echo "bench/packet.sh: run make check first (test tools)" >&2
	exit 1
fi
pids=''

inns() { n=$1; shift; nsenter --net="/run/netns/$n" "$@"; }
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for f in /run/vmsan/net/vm-bf*.json; do
		[ -e "$f" ] || continue
		id=${f##*/}
		printf '{"op":"teardown","id":"%s"}' "${id%.json}" | inns "$H" "$net" >/dev/null || true
	done
	for n in "$G" "$H" "$I"; do ip netns del "$n" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

ip netns add "$H"
ip netns add "$I"
ip netns add "$G"
ip link add "pk$$h" type veth peer name "pk$$i"
ip link set "pk$$h" netns "$H"
ip link set "pk$$i" netns "$I"
inns "$H" sh -c "ip link set lo up; ip link set pk$$h up; ip addr add 203.0.113.1/24 dev pk$$h;
	ip route add default via 203.0.113.254"
inns "$I" sh -c "ip link set lo up; ip link set pk$$i up; ip addr add 203.0.113.254/24 dev pk$$i;
	ip addr add 192.0.2.10/32 dev lo"
nsenter --net="/run/netns/$I" "$rate" -l 192.0.2.10 80 &
pids="$pids $!"

rs=$(echo '{"policy":"custom","allowedCidrs":["192.0.2.0/24"],"deniedCidrs":["192.0.2.128/25"],"dnsResolvers":["192.0.2.53"]}' |
	"$nftc" compile | jq -c .ruleset)
setup() { printf '{"op":"setup","id":"%s","ruleset":%s}' "$1" "$rs" | inns "$H" "$net" >/dev/null; }
setup vm-bf000000
ip link add "pk$$w" type veth peer name "pk$$e"
ip link set "pk$$w" netns "$G"
ip link set "pk$$e" netns "$G"
inns "$G" sh -c "ip link set lo up; ip link set pk$$w up; ip link set pk$$e up;
	ip addr add 172.16.0.2/30 dev pk$$e; ip route add default via 172.16.0.1"
"$pump" vmsan-vm-bf000000 vmstap0 "$G" "pk$$w" >/dev/null &
pids="$pids $!"
sleep 0.5
inns "$G" "$rate" 192.0.2.10 80 1 >/dev/null     # warm up (ARP, conntrack)

one=$(inns "$G" "$rate" 192.0.2.10 80 "$secs")
i=1
while [ "$i" -lt "$scale" ]; do
	setup "$(printf 'vm-bf%06x' "$i")"
	i=$((i + 1))
done
many=$(inns "$G" "$rate" 192.0.2.10 80 "$secs")
again=$(printf '{"op":"teardown","id":"vm-bf000001"}' | inns "$H" "$net" >/dev/null; inns "$G" "$rate" 192.0.2.10 80 "$secs")

echo "| VMs with networks set up | TCP connections/s from VM 1's guest ($secs s) |"
echo "|---|---|"
echo "| 1 | $one |"
echo "| $scale | $many |"
echo "| $((scale - 1)) (after one teardown) | $again |"
printf '\nratio %s VMs / 1 VM: %s\n' "$scale" "$(echo "scale=2; $many / $one" | bc)"
