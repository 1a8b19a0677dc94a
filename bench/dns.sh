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
#  3. memory at 10000 distinct allowed names: a VM whose list holds 10000
#     names, each resolving to an address of its own; the guest asks every
#     one (10000 addresses in the set): the resolver's and the setter's RSS
#     before and after, against a VM with 2 names; the time setup (with the
#     resolver) and a live list change (rules replaced, 10000 addresses
#     re-synced) take.
#  4. --strict-domains: HTTP requests (a new connection each) from a guest to
#     an allowed name's address on port 80, through vmsan-dns's check and
#     relay, against the same from a VM with the same name without the
#     check (straight through nftables): latency of small requests and the
#     bytes per second of 64 MiB ones.
# Needs root, dnsmasq, and tests/tools/{tap-pump,dns-load,http-load} (make
# check builds them).  Prints Markdown.
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
	for n in 1 2 3 4 5; do vm_down "$n" >/dev/null 2>&1 || true; done
	net_fixture_down >/dev/null 2>&1 || true
	rm -rf "$BATS_FILE_TMPDIR" "$BATS_TEST_TMPDIR"
}
trap cleanup EXIT INT TERM
net_fixture_up
nsx "$I" ip addr add $UP/32 dev lo
nsx "$I" ip addr add 192.0.2.30/32 dev lo
nsd "$I" "$top/tests/tools/http-load" -l 192.0.2.30 80
awk 'BEGIN { for (i = 0; i < 10000; i++) printf "10.78.%d.%d n%d.bench.test\n", i / 256, i % 256, i }' \
	>"$BATS_FILE_TMPDIR/bench.hosts"
nsd "$I" dnsmasq --no-resolv --no-hosts --no-daemon --bind-interfaces --listen-address=$UP \
	--pid-file= --user=root --local-ttl=300 --address=/wild.test/192.0.2.20 --address=/example.test/192.0.2.10 \
	--address=/bulk.test/192.0.2.30 \
	--cache-size=0 --addn-hosts="$BATS_FILE_TMPDIR/bench.hosts"
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
# 10000 names: in files (too long for an argument)
b=$BATS_TEST_TMPDIR
seq 0 9999 | jq -R '"n" + . + ".bench.test"' | jq -cs . >"$b/many.json"
jq -c '{policy:"custom", allowedDomains:., dnsResolvers:["'$UP'"], agentPort:9119}' "$b/many.json" >"$b/many-policy.json"
jq -c '{domains:., upstreams:["'$UP'"]}' "$b/many.json" >"$b/many-dns.json"
t0=$(now_ms)
VM_DNS_FILE=$b/many-dns.json vm_up 3 "$(cat "$b/many-policy.json")"
t_setup=$(( $(now_ms) - t0 ))
setter3=$(jq -r .dnsPid "$BATS_TEST_TMPDIR/s3.json")
res3=$(pgrep -P "$setter3")
r3_0=$(rss "$res3") s3_0=$(rss "$setter3")
fill=$(in_g 3 "$load" $UP 10000 0 'n%i.bench.test')
in_set=$(nsx "$H" ip netns exec vmsan-vm-7e570003 nft list set ip vmsan dns_allow | grep -o expires | wc -l)
r3_1=$(rss "$res3") s3_1=$(rss "$setter3")
jq -c '. + ["x.bench.test"]' "$b/many.json" >"$b/more.json"
jq -c '{policy:"custom", allowedDomains:., dnsResolvers:["'$UP'"], agentPort:9119}' "$b/more.json" |
	"$LIBEXEC/vmsan-nftables" compile >"$b/more-c.json"
jq -c --slurpfile d "$b/more.json" '{op:"apply-rules", id:"vm-7e570003", ruleset:.ruleset,
	dns:{domains:$d[0], upstreams:["'$UP'"]}}' "$b/more-c.json" >"$b/more-req.json"
t0=$(now_ms)
nsx "$H" "$LIBEXEC/vmsan-net" <"$b/more-req.json" >/dev/null
t_apply=$(( $(now_ms) - t0 ))
in_set2=$(nsx "$H" ip netns exec vmsan-vm-7e570003 nft list set ip vmsan dns_allow | grep -o expires | wc -l)
echo "Memory at 10000 distinct allowed names (RSS, kB): the list holds them and the guest asked each"
echo "(one query after another: p50 $(j "$fill" p50us) us, p99 $(j "$fill" p99us) us, $(j "$fill" answered) answered),"
echo "so the set holds $in_set addresses:"
echo
echo "| VM | resolver RSS | setter RSS |"
echo "|---|---:|---:|"
echo "| 2 names, a few thousand asked (one address) | $(rss "$res1") | $(rss "$setter1") |"
echo "| 10000 names in the list, none asked yet | $r3_0 | $s3_0 |"
echo "| 10000 names, each asked: $in_set addresses tracked and in the set | $r3_1 | $s3_1 |"
echo
echo "With 10000 names: vmsan-net setup (namespace, rules, resolver) ${t_setup} ms; a live list change"
echo "(rules replaced, the resolver re-syncs the set: $in_set2 addresses back) ${t_apply} ms."

# 4. --strict-domains
hl=$top/tests/tools/http-load
jq -cn '{domains:["bulk.test"], upstreams:["'$UP'"], strict:true}' >"$b/strict-dns.json"
VM_DNS_FILE=$b/strict-dns.json vm_up 4 '{"policy":"custom","allowedDomains":["bulk.test"],"strictDomains":true,"dnsResolvers":["'$UP'"],"agentPort":9119}'
dns_vm 5 '["bulk.test"]'
for n in 4 5; do in_g "$n" "$load" $UP 1 0 bulk.test >/dev/null; done
for n in 4 5; do in_g "$n" "$hl" 192.0.2.30 80 bulk.test /2 50 >/dev/null; done     # warm
small5=$(in_g 5 "$hl" 192.0.2.30 80 bulk.test /2 1000)
small4=$(in_g 4 "$hl" 192.0.2.30 80 bulk.test /2 1000)
big5=$(in_g 5 "$hl" 192.0.2.30 80 bulk.test /67108864 5)
big4=$(in_g 4 "$hl" 192.0.2.30 80 bulk.test /67108864 5)
refused=$(in_g 4 "$hl" 192.0.2.30 80 other.test /2 200)
echo
echo "--strict-domains: HTTP/1.0 requests from the guest to an allowed name's address, port 80, a new"
echo "connection each (connect to last byte, microseconds; MB/s of 64 MiB bodies, 5 requests):"
echo
echo "| VM | small p50 | small p99 | ok | 64 MiB, MB/s |"
echo "|---|---:|---:|---:|---:|"
echo "| domains, no check (nftables only) | $(j "$small5" p50us) | $(j "$small5" p99us) | $(j "$small5" ok)/1000 | $(j "$big5" MBps) |"
echo "| --strict-domains (Host checked, relayed by vmsan-dns) | $(j "$small4" p50us) | $(j "$small4" p99us) | $(j "$small4" ok)/1000 | $(j "$big4" MBps) |"
echo "| --strict-domains, a Host not allowed (403 from vmsan-dns) | $(j "$refused" p50us) | $(j "$refused" p99us) | 0 (refused) | |"
