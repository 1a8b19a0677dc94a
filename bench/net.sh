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
	for f in /run/vmsan/net/vm-be*.json /run/vmsan/net/vm-bf*.json; do
		[ -e "$f" ] || continue
		id=${f##*/}
		printf '{"op":"teardown","id":"%s"}' "${id%.json}" | nsenter --net="/run/netns/$H" "$net" >/dev/null || true
	done
	ip netns del "$H" 2>/dev/null || true
	for n in $(ip netns list | awk '/^vbench-seq/ { print $1 }'); do ip netns del "$n"; done
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
	# A name of its own each time, as ours gets a slot of its own: the
	# previous namespace may still be on its way out in the kernel.
	ns=vbench-seq$i
	hif=vmsh$((20000 + i))
	ip netns add "$ns"
	inh ip link add "$hif" type veth peer name vmsnet0 netns "$ns"
	inh ip addr add 198.18.0.37/30 dev "$hif"
	inh ip link set "$hif" up
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
	ip netns del "vbench-seq$i"
}
nseq=$(awk '/^\t\t[^t]/' "$work/rules.nft" | wc -l)

# 1. setup+teardown of one VM: ours timed by bench/helper-time.py (no
# nsenter, until the reply and until the exit), the sequence of commands
# by the clock around it.
ours=$(python3 "$top/bench/helper-time.py" "/run/netns/$H" "$net" "$work/rs.json" pairs "$runs")
: >"$work/seq"
i=0
while [ "$i" -lt "$runs" ]; do
	t1=$(now_us)
	seq_setup
	seq_teardown
	t2=$(now_us)
	echo $((t2 - t1)) >>"$work/seq"
	i=$((i + 1))
done
seqm=$(median <"$work/seq")
ms() { echo "$ours" | jq -r ".$1 * 10 | round / 10"; }
echo "| method (median of $runs) | setup | teardown | setup+teardown |"
echo "|---|---|---|---|"
printf '| vmsan-net, until the reply | %s | %s | **%s** |\n' "$(ms setupReply)" "$(ms teardownReply)" "$(ms pairReply)"
printf '| vmsan-net, until the process is gone | %s | %s | %s |\n' "$(ms setupExit)" "$(ms teardownExit)" "$(ms pairExit)"
printf '| same work, one process per step and per rule (%d rules) | | | %s |\n' "$nseq" "$(echo "scale=1; $seqm / 1000" | bc)"
printf '\nA live policy change (apply-rules: the VM'"'"'s whole ruleset replaced in one batch): %s ms until the reply, %s ms until exit.\n' \
	"$(ms applyReply)" "$(ms applyExit)"
printf '\nRatio, sequence of commands / vmsan-net: %sx until the reply, %sx until exit.\n\n' \
	"$(echo "scale=1; $seqm / 1000 / $(ms pairReply)" | bc)" "$(echo "scale=1; $seqm / 1000 / $(ms pairExit)" | bc)"

# 2. Scale: setup times (until the reply) as VMs accumulate, all kept.
python3 "$top/bench/helper-time.py" "/run/netns/$H" "$net" "$work/rs.json" scale "$scale" >"$work/scale.json" &
wait $!
rules_host=$(inh nft list table ip vmsan 2>/dev/null | grep -c -E 'accept|drop|masquerade|dnat' || true)
echo "| VMs present | setup ms (median of 10 around) |"
echo "|---|---|"
for n in 1 10 100 500 "$scale"; do
	[ "$n" -le "$scale" ] || continue
	lo=$((n - 5)); [ "$lo" -ge 1 ] || lo=1
	m=$(jq -r --argjson lo "$lo" '.setupReplyMs[$lo - 1:$lo + 9] | sort | .[length / 2 | floor] * 10 | round / 10' "$work/scale.json")
	printf '| %d | %s |\n' "$n" "$m"
done
printf '\nHost table rules: %d, whatever the number of VMs. Teardown of all %d: %s s.\n' \
	"$rules_host" "$scale" "$(jq -r '.teardownAllS * 10 | round / 10' "$work/scale.json")"
