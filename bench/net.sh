#!/bin/sh
# Network setup cost (issue 3), in a throwaway "host" namespace:
#  1. setup+teardown of one VM's network, median of RUNS, vmsan-net (one
#     process, one nftables batch per namespace) against the same namespace,
#     links, addresses, routes and the same rules done the original's way:
#     one ip/sysctl/nft process per step and per rule;
#  2. scale: SCALE VMs set up one after another (times of the 1st, the
#     100th..., the last), then torn down.
# Needs root.  Prints Markdown.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
net=$top/libexec/vmsan-net
nftc=$top/libexec/vmsan-nftables
runs=${BENCH_RUNS:-50}
scale=${BENCH_SCALE:-1000}
H=vbench$$
work=$(mktemp -d)
[ "$(id -u)" = 0 ] || { echo "bench/net.sh: needs root" >&2; exit 1; }

cleanup() {
	for f in /run/vmsan/net/vm-be*.json; do
		[ -e "$f" ] || continue
		id=${f##*/}
		printf '{"op":"teardown","id":"%s"}' "${id%.json}" | nsenter --net="/run/netns/$H" "$net" >/dev/null || true
	done
	ip netns del "$H" 2>/dev/null || true
	ip netns del vbench-seq 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
ip netns add "$H"
inh() { nsenter --net="/run/netns/$H" "$@"; }
inh ip link set lo up

now_us() { echo $(( $(date +%s%N) / 1000 )); }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

policy='{"policy":"custom","allowedCidrs":["10.0.0.0/8"],"deniedCidrs":["10.9.0.0/16"],"dnsResolvers":["192.0.2.53"],"agentPort":9119}'
echo "$policy" | "$nftc" compile | jq -c .ruleset >"$work/rs.json"
echo "$policy" | "$nftc" compile --format nft >"$work/rules.nft"
req() { printf '{"op":"setup","id":"%s","ruleset":%s}' "$1" "$(cat "$work/rs.json")"; }

# The same work as separate commands: what the original does per VM.
seq_setup() {
	ns=vbench-seq
	ip netns add "$ns"
	inh ip link add vmsh9 type veth peer name vmsnet0 netns "$ns"
	inh ip addr add 198.18.0.37/30 dev vmsh9
	inh ip link set vmsh9 up
	ip -n "$ns" link set lo up
	ip -n "$ns" link set vmsnet0 up
	ip -n "$ns" addr add 198.18.0.38/30 dev vmsnet0
	ip -n "$ns" route add default via 198.18.0.37
	ip -n "$ns" tuntap add dev vmstap0 mode tap vnet_hdr
	ip -n "$ns" addr add 172.16.0.1/30 dev vmstap0
	ip -n "$ns" link set vmstap0 up
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
	ip netns exec "$ns" nft add table ip vmsan
	# One process per chain and per rule, as the original's iptables calls.
	awk '/^\tchain /{c=$2} /^\t\ttype /{sub(/^\t\t/, ""); print "chain\t" c "\t" $0} /^\t\t[^t]/{sub(/^\t\t/, ""); print "rule\t" c "\t" $0}' \
		"$work/rules.nft" | while IFS="$(printf '\t')" read -r kind chain body; do
		if [ "$kind" = chain ]; then
			ip netns exec "$ns" nft "add chain ip vmsan $chain { $body }"
		else
			ip netns exec "$ns" nft "add rule ip vmsan $chain $body"
		fi
	done
}
seq_teardown() {
	ip netns del vbench-seq
}
nseq=$(awk '/^\t\t[^t]/' "$work/rules.nft" | wc -l)

: >"$work/ours"
: >"$work/seq"
i=0
while [ "$i" -lt "$runs" ]; do
	id=$(printf 'vm-be%06x' "$i")
	t0=$(now_us)
	req "$id" | inh "$net" >/dev/null
	printf '{"op":"teardown","id":"%s"}' "$id" | inh "$net" >/dev/null
	t1=$(now_us)
	seq_setup
	seq_teardown
	t2=$(now_us)
	echo $((t1 - t0)) >>"$work/ours"
	echo $((t2 - t1)) >>"$work/seq"
	i=$((i + 1))
done
ours=$(median <"$work/ours")
seqm=$(median <"$work/seq")
echo "| method | setup+teardown median ms (n=$runs) |"
echo "|---|---|"
printf '| vmsan-net: 2 processes, 1 nftables batch | %s |\n' "$(echo "scale=1; $ours / 1000" | bc)"
printf '| same work, one process per step and per rule (%d rules) | %s |\n' "$nseq" "$(echo "scale=1; $seqm / 1000" | bc)"
printf '| ratio | %sx |\n\n' "$(echo "scale=1; $seqm / $ours" | bc)"

# Scale: setup times as VMs accumulate.
: >"$work/scale"
i=0
while [ "$i" -lt "$scale" ]; do
	id=$(printf 'vm-be%06x' "$i")
	t0=$(now_us)
	req "$id" | inh "$net" >/dev/null
	t1=$(now_us)
	echo "$((i + 1)) $((t1 - t0))" >>"$work/scale"
	i=$((i + 1))
done
rules_host=$(inh nft list table ip vmsan | grep -c -E 'accept|drop|masquerade|dnat')
echo "| VMs present | setup ms (median of 10 around) |"
echo "|---|---|"
for n in 1 10 100 500 "$scale"; do
	[ "$n" -le "$scale" ] || continue
	lo=$((n - 5)); [ "$lo" -ge 1 ] || lo=1
	hi=$((lo + 9))
	m=$(awk -v lo="$lo" -v hi="$hi" '$1 >= lo && $1 <= hi { print $2 }' "$work/scale" | median)
	printf '| %d | %s |\n' "$n" "$(echo "scale=1; $m / 1000" | bc)"
done
t0=$(now_us)
i=0
while [ "$i" -lt "$scale" ]; do
	printf '{"op":"teardown","id":"vm-be%06x"}' "$i" | inh "$net" >/dev/null
	i=$((i + 1))
done
t1=$(now_us)
printf '\nHost table rules with %d VMs: %d (the same with 1). Teardown of all %d: %s s.\n' \
	"$scale" "$rules_host" "$scale" "$(echo "scale=1; ($t1 - $t0) / 1000000" | bc)"
