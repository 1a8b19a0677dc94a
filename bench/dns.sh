#!/bin/bash
# Allowed domains (issue 8): the cost of vmsan-dns, on the test fixture of
# tests/net_helper.bash (a host namespace, a fake internet with dnsmasq on
# 192.0.2.55, guest namespaces attached to the VMs' TAPs).  Nothing leaves
# the machine.
#  1. latency of one A query (one at a time, QUERIES of them) from a guest:
#     through the resolver (an allowed name: forwarded, its address put in
#     the set; a refused name: answered on the spot) against the same query
#     from a VM without domains, straight to the same dnsmasq along the
#     same path (veth, NAT): p50 and p99;
#  2. sustained rate: queries for random allowed names at fixed rates for 2
#     s each, the highest rate answered at >= 99%;
#  3. memory: the resolver's and the setter's RSS with 1 and with 10000
#     allowed names, and the time setup (with the resolver) and a live list
#     change take with 10000.
# Needs root, dnsmasq, and tests/tools/{tap-pump,dns-load} (make check
# builds them).  Prints Markdown.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
TOP=$top LIBEXEC=$top/libexec
queries=${BENCH_DNS_QUERIES:-2000}
[ "$(id -u)" = 0 ] || { echo "bench/dns.sh: needs root" >&2; exit 1; }
BATS_FILE_TMPDIR=$(mktemp -d) BATS_TEST_TMPDIR=$(mktemp -d)
export TOP LIBEXEC BATS_FILE_TMPDIR BATS_TEST_TMPDIR
# shellcheck source=../tests/net_helper.bash
. "$top/tests/net_helper.bash"
load=$top/tests/tools/dns-load
UP=192.0.2.55

cleanup() {
	for n in 1 2 3; do vm_down "$n" >/dev/null 2>&1 || true; done
	net_fixture_down >/dev/null 2>&1 || true
	rm -rf "$BATS_FILE_TMPDIR" "$BATS_TEST_TMPDIR"
}
trap cleanup EXIT INT TERM
net_fixture_up
nsx "$I" ip addr add $UP/32 dev lo
nsd "$I" dnsmasq --no-resolv --no-hosts --no-daemon --bind-interfaces --listen-address=$UP \
	--pid-file= --user=root --local-ttl=300 --address=/wild.test/192.0.2.20 --address=/example.test/192.0.2.10 \
	--cache-size=0
sleep 0.3

dns_vm() { # N DOMAINS-JSON
	local req
	req=$(jq -cn --argjson d "$2" '{domains:$d, upstreams:["'$UP'"]}')
	VM_DNS=$req vm_up "$1" "$(jq -cn --argjson d "$2" \
		'{policy:"custom", allowedDomains:$d, dnsResolvers:["'$UP'"], agentPort:9119}')"
}
in_g() { local n=$1; shift; timeout 120 nsenter --net="/run/netns/vtg${NET_SFX}$n" "$@"; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

dns_vm 1 '["*.wild.test","example.test"]'
vm_up 2 '{"policy":"allow-all","dnsResolvers":["'$UP'"],"agentPort":9119}'

# warm both paths (ARP, conntrack, dnsmasq)
in_g 1 "$load" $UP 200 0 'w%u.wild.test' >/dev/null
in_g 2 "$load" $UP 200 0 'w%u.wild.test' >/dev/null

direct=$(in_g 2 "$load" $UP "$queries" 0 'd%u.wild.test')
allowed=$(in_g 1 "$load" $UP "$queries" 0 'a%u.wild.test')
refused=$(in_g 1 "$load" $UP "$queries" 0 'r%u.nowhere.test')
j() { jq -r ".$2" <<<"$1"; }

echo "## Allowed domains: vmsan-dns (bench/dns.sh)"
echo
echo "Latency of one A query from a guest, $queries queries one after another (microseconds):"
echo
echo "| path | p50 | p99 | answered |"
echo "|---|---:|---:|---:|"
echo "| straight to dnsmasq (VM without domains, same veth/NAT path) | $(j "$direct" p50us) | $(j "$direct" p99us) | $(j "$direct" answered) |"
echo "| through vmsan-dns, allowed name (forwarded, address put in the set) | $(j "$allowed" p50us) | $(j "$allowed" p99us) | $(j "$allowed" answered) |"
echo "| through vmsan-dns, refused name (NXDOMAIN on the spot) | $(j "$refused" p50us) | $(j "$refused" p99us) | $(j "$refused" answered) |"
echo
echo "Added by the resolver: p50 +$(( $(j "$allowed" p50us) - $(j "$direct" p50us) )) us, p99 +$(( $(j "$allowed" p99us) - $(j "$direct" p99us) )) us."
echo

echo "Sustained rate, random allowed names, 2 s at each rate:"
echo
echo "| offered q/s | answered | p50 us | p99 us |"
echo "|---:|---:|---:|---:|"
best=0
for rate in 2000 5000 10000 20000 40000; do
	n=$((rate * 2))
	r=$(in_g 1 "$load" $UP "$n" "$rate" 's%u.wild.test')
	pct=$(jq -r "(.answered * 1000 / $n | floor) / 10" <<<"$r")
	echo "| $rate | $(j "$r" answered) ($pct%) | $(j "$r" p50us) | $(j "$r" p99us) |"
	if [ "$(jq -r ".answered * 100 >= $n * 99" <<<"$r")" = true ]; then best=$rate; fi
done
echo
echo "Highest rate answered at >= 99%: $best q/s."
echo

setter1=$(jq -r .dnsPid "$BATS_TEST_TMPDIR/s1.json")
res1=$(pgrep -P "$setter1")
many=$(seq 1 10000 | awk '{printf "%s\"n%d.bench.test\"", NR > 1 ? "," : "", $1}')
t0=$(now_ms)
dns_vm 3 "[$many]"
t_setup=$(( $(now_ms) - t0 ))
setter3=$(jq -r .dnsPid "$BATS_TEST_TMPDIR/s3.json")
res3=$(pgrep -P "$setter3")
in_g 3 "$load" $UP 1000 0 'n1.bench.test' >/dev/null
c=$(jq -cn --argjson d "[$many,\"x.bench.test\"]" \
	'{policy:"custom", allowedDomains:$d, dnsResolvers:["'$UP'"], agentPort:9119}' | "$LIBEXEC/vmsan-nftables" compile)
t0=$(now_ms)
jq -c --argjson d "[$many,\"x.bench.test\"]" '{op:"apply-rules", id:"vm-7e570003", ruleset:.ruleset,
	dns:{domains:$d, upstreams:["'$UP'"]}}' <<<"$c" | nsx "$H" "$LIBEXEC/vmsan-net" >/dev/null
t_apply=$(( $(now_ms) - t0 ))
echo "Memory (RSS, kB) and times:"
echo
echo "| allowed names | resolver RSS | setter RSS |"
echo "|---:|---:|---:|"
echo "| 2 | $(rss "$res1") | $(rss "$setter1") |"
echo "| 10000 | $(rss "$res3") | $(rss "$setter3") |"
echo
echo "With 10000 names: vmsan-net setup (namespace, rules, resolver) ${t_setup} ms; a live list change (rules and list) ${t_apply} ms."
