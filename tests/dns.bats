#!/usr/bin/env bats
# Allowed domains: vmsan-dns (started by vmsan-net) with real packets from a
# guest namespace attached to the VM's TAP, a real dnsmasq upstream in the
# fake internet (192.0.2.55, records with a TTL of 2 s), real nftables.
bats_require_minimum_version 1.5.0
load test_helper
load net_helper

UP=192.0.2.55

setup_file() {
	[ "$(id -u)" = 0 ] || return 0
	export TOP LIBEXEC
	net_fixture_up
	nsx "$I" ip addr add $UP/32 dev lo
	# h0.many.test .. h8999.many.test: 10.77.0.0 up, one address each
	awk 'BEGIN { for (i = 0; i < 9000; i++) printf "10.77.%d.%d h%d.many.test\n", i / 256, i % 256, i }' \
		>"$BATS_FILE_TMPDIR/many.hosts"
	# cdn.alias.test is a CNAME to edge.other.test; *.wild.test and
	# *.example.test answer for any name under them
	nsd "$I" dnsmasq --no-resolv --no-hosts --no-daemon --bind-interfaces --listen-address=$UP \
		--pid-file= --user=root --local-ttl=2 --log-queries \
		--address=/example.test/192.0.2.10 --address=/wild.test/192.0.2.20 \
		--host-record=other.test,192.0.2.20 --host-record=edge.other.test,192.0.2.20 \
		--host-record=shared.test,192.0.2.10 --host-record=bulk.test,192.0.2.30 \
		--host-record=meta.test,169.254.169.254 --host-record=lo.test,127.0.0.1 \
		--host-record=keep.test,192.0.2.31 --host-record=evil.test,192.0.2.31 \
		--cname=cdn.alias.test,edge.other.test --addn-hosts="$BATS_FILE_TMPDIR/many.hosts" --log-facility="$BATS_FILE_TMPDIR/dns-up.log"
	# --strict-domains: a real TLS server on 192.0.2.10:443 (example.test
	# and shared.test both live there, as sites behind one CDN address),
	# and another port on it
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=example.test \
		-keyout "$BATS_FILE_TMPDIR/tls.key" -out "$BATS_FILE_TMPDIR/tls.crt" 2>/dev/null
	nsd "$I" openssl s_server -accept 192.0.2.10:443 -cert "$BATS_FILE_TMPDIR/tls.crt" \
		-key "$BATS_FILE_TMPDIR/tls.key" -www -quiet
	net_serve "$I" 8080,bind=192.0.2.10 "echo other-port"
	# an HTTP server that answers "GET /N" with N bytes
	nsx "$I" ip addr add 192.0.2.30/32 dev lo
	nsd "$I" "$TOP/tests/tools/http-load" -l 192.0.2.30 80
	# a keep-alive HTTP/1.1 server on 192.0.2.31:80 that logs every request it gets
	nsx "$I" ip addr add 192.0.2.31/32 dev lo
	cat >"$BATS_FILE_TMPDIR/keep.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self, body=b""):
        with open(sys.argv[2], "a") as f:
            f.write("%s %s %s %s\n" % (self.command, self.headers.get("Host", ""), self.path, body.decode()))
        b = ("hi %s %s\n" % (self.headers.get("Host", ""), self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_GET(self):
        self.answer()
    def do_POST(self):
        self.answer(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((sys.argv[1], 80), H).serve_forever()
PY
	nsd "$I" python3 "$BATS_FILE_TMPDIR/keep.py" 192.0.2.31 "$BATS_FILE_TMPDIR/keep.log"
	sleep 0.3
}

teardown_file() {
	[ "$(id -u)" = 0 ] || return 0
	net_fixture_down
}

setup_extra() {
	require_root
	require_cmd dig
	require_cmd dnsmasq
	[ -x "$PUMP" ] || { echo "build tests/tools/tap-pump (make check does)"; return 1; }
}

teardown_extra() {
	vm_down 1
	vm_down 2
	return 0
}

get() { tcp_get in_guest "$1" nc -w 2 "$2" "$3" </dev/null; }

# dvm N DOMAINS-JSON [POLICY-EXTRA-JSON]: VM N with those allowed domains
# (custom policy), its resolver's TTL floor at $TTL_MIN s (default 30: the
# records' 2 s would not outlast a test), its log in the test dir.
dvm() {
	local n=$1 doms=$2 extra=${3:-'{}'} req
	req=$(dns_req "$n" "$doms")
	! jq -e .strictDomains <<<"$extra" >/dev/null || req=$(jq -c '. + {strict:true}' <<<"$req")
	VM_DNS=$req vm_up "$n" "$(policy "$doms" "$extra")"
}
policy() {
	jq -cn --argjson d "$1" --argjson x "$2" \
		'{policy:"custom", allowedDomains:$d, dnsResolvers:["'$UP'"], agentPort:9119} + $x'
}
dns_req() {
	jq -cn --argjson d "$2" --arg log "$BATS_TEST_TMPDIR/dns$1.log" \
		'{domains:$d, upstreams:["'$UP'"], ttlMin:'"${TTL_MIN:-30}"', ttlMax:3600, log:$log}'
}
# apply N POLICY-JSON [DNS-JSON]: a live change of VM N's rules (and list)
apply() {
	local c r
	c=$(echo "$2" | "$LIBEXEC/vmsan-nftables" compile) || return 1
	r=$(jq -c --arg id "vm-7e57000$1" --argjson dns "${3:-null}" \
		'{op:"apply-rules", id:$id, ruleset:.ruleset} + (if $dns then {dns:$dns} else {} end)' <<<"$c" |
		nsx "$H" "$LIBEXEC/vmsan-net") || { echo "apply-rules failed: $r" >&2; return 1; }
	echo "$r"
}
# q N NAME [DIG-ARGS...]: the addresses the guest gets (none: refused)
q() {
	local n=$1 name=$2
	shift 2
	in_guest "$n" dig +time=2 +tries=1 +short "@$UP" "$@" "$name" A | grep -E '^[0-9.]+$' | sort | tr '\n' ' ' |
		sed 's/ $//'
}
# rcode N NAME [DIG-ARGS...]
rcode() {
	local n=$1 name=$2
	shift 2
	in_guest "$n" dig +time=2 +tries=1 "@$UP" "$@" "$name" A | sed -n 's/.*status: \([A-Z]*\),.*/\1/p'
}
set_of() { ip netns exec "vmsan-vm-7e57000$1" nft list set ip vmsan dns_allow; }
setter() { jq -r .dnsPid "$BATS_TEST_TMPDIR/s$1.json"; }
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
upstream_saw() { grep -c "query\[A\] $1 from" "$BATS_FILE_TMPDIR/dns-up.log" || true; }

@test "an allowed name resolves and is reachable over TCP; other names get NXDOMAIN and their addresses stay unreachable, even by IP" {
	dvm 1 '["example.test"]'
	# nothing is reachable before its name was asked
	assert_eq "$(get 1 192.0.2.10 80)" ""
	assert_eq "$(get 1 192.0.2.20 80)" ""
	assert_eq "$(q 1 example.test)" 192.0.2.10
	# in the set (with a timeout) by the time the answer arrived
	assert_contains "$(set_of 1)" "192.0.2.10 timeout"
	assert_eq "$(get 1 192.0.2.10 80)" hello-from-192.0.2.10
	assert_eq "$(rcode 1 other.test)" NXDOMAIN
	assert_eq "$(get 1 192.0.2.20 80)" ""
	# the refused name never reached the upstream
	assert_eq "$(upstream_saw other.test)" 0
	[[ $(set_of 1) != *192.0.2.20* ]]
	# the log: one line per answer, the verdict and what was let through
	log=$BATS_TEST_TMPDIR/dns1.log
	assert_eq "$(jq -r 'select(.verdict=="allow") | "\(.name) \(.pattern) \(.addresses[0])"' "$log" | head -1)" \
		"example.test example.test 192.0.2.10"
	assert_eq "$(jq -r 'select(.verdict=="deny") | .name' "$log")" other.test
}

@test "subdomains only with *.; an exact name is only itself; names are matched without regard to case" {
	dvm 1 '["EXAMPLE.Test.","*.wild.test"]'
	assert_eq "$(q 1 a.wild.test)" 192.0.2.20
	assert_eq "$(q 1 deep.er.wild.test)" 192.0.2.20
	assert_eq "$(rcode 1 wild.test)" NXDOMAIN
	assert_eq "$(rcode 1 sub.example.test)" NXDOMAIN
	assert_eq "$(rcode 1 notwild.test)" NXDOMAIN
	assert_eq "$(q 1 Example.TEST)" 192.0.2.10
	# AAAA of an allowed name: an empty answer at once (guests have no IPv6 route)
	out=$(in_guest 1 dig +time=2 +tries=1 "@$UP" example.test AAAA)
	assert_contains "$out" "status: NOERROR"
	assert_contains "$out" "ANSWER: 0,"
	# A then AAAA under one id (BusyBox's nslookup): the AAAA answer, made at
	# once, waits for the forwarded A one asked before it
	assert_eq "$(in_guest 1 "$TOP/tests/tools/dns-load" $UP pair example.test)" "1 28"
	assert_eq "$(in_guest 1 "$TOP/tests/tools/dns-load" $UP pair a.wild.test)" "1 28"
}

@test "CNAME: the chain from an allowed name is followed (its start decides); the target asked directly, or a chain into an allowed name, is refused" {
	dvm 1 '["cdn.alias.test"]'
	assert_eq "$(get 1 192.0.2.20 80)" ""
	out=$(in_guest 1 dig +time=2 +tries=1 +short "@$UP" cdn.alias.test A)
	assert_contains "$out" "edge.other.test."
	assert_contains "$out" 192.0.2.20
	assert_eq "$(get 1 192.0.2.20 80)" hello-from-192.0.2.20
	assert_eq "$(rcode 1 edge.other.test)" NXDOMAIN
	# VM 2 allows the target only: the alias pointing at it is not asked for
	dvm 2 '["edge.other.test"]'
	assert_eq "$(rcode 2 cdn.alias.test)" NXDOMAIN
	assert_eq "$(q 2 edge.other.test)" 192.0.2.20
}

@test "an allowed name's link-local (metadata) or loopback address never enters the set; the guest only hears it" {
	dvm 1 '["meta.test","lo.test","example.test"]'
	assert_eq "$(q 1 meta.test)" "169.254.169.254"
	assert_eq "$(q 1 lo.test)" "127.0.0.1"
	# the control: an ordinary address of the same list does
	assert_eq "$(q 1 example.test)" "192.0.2.10"
	set=$(nsenter --net=/run/netns/vmsan-vm-7e570001 nft list set ip vmsan dns_allow)
	assert_contains "$set" "192.0.2.10"
	[[ $set != *169.254* && $set != *127.0.0.1* ]]
	grep -q 'allow.*meta.test' "$BATS_TEST_TMPDIR/dns1.log"
}

@test "an address leaves the set when its TTL runs out" {
	TTL_MIN=1 dvm 1 '["example.test"]'
	assert_eq "$(q 1 example.test)" 192.0.2.10
	assert_eq "$(get 1 192.0.2.10 80)" hello-from-192.0.2.10
	assert_contains "$(set_of 1)" "192.0.2.10 timeout 2s"
	sleep 3     # the record's TTL is 2 s (dnsmasq --local-ttl), the floor here 1 s
	[[ $(set_of 1) != *192.0.2.10* ]]
	assert_eq "$(get 1 192.0.2.10 80)" ""
	# asked again: back
	assert_eq "$(q 1 example.test)" 192.0.2.10
	assert_eq "$(get 1 192.0.2.10 80)" hello-from-192.0.2.10
}

@test "DNS to any other server is answered by the resolver, never forwarded; DNS over TCP works; DoT and other UDP stay dropped" {
	dvm 1 '["example.test"]'
	before=$(grep -c . "$BATS_FILE_TMPDIR/dns-192.0.2.54.log" || true)
	assert_eq "$(in_guest 1 dig +time=2 +tries=1 +short @192.0.2.54 other.test A)" ""
	assert_eq "$(in_guest 1 dig +time=2 +tries=1 @192.0.2.54 other.test A | sed -n 's/.*status: \([A-Z]*\),.*/\1/p')" NXDOMAIN
	assert_eq "$(in_guest 1 dig +time=2 +tries=1 +short @192.0.2.54 example.test A)" 192.0.2.10
	# an address where nothing listens answers too: it is the resolver
	assert_eq "$(in_guest 1 dig +time=2 +tries=1 +short @203.0.113.77 example.test A)" 192.0.2.10
	# the "rogue" server saw none of it
	assert_eq "$(grep -c . "$BATS_FILE_TMPDIR/dns-192.0.2.54.log" || true)" "$before"
	# over TCP, to the upstream's address and to any other
	assert_eq "$(q 1 example.test +tcp)" 192.0.2.10
	assert_eq "$(in_guest 1 dig +tcp +time=2 +tries=1 +short @203.0.113.77 example.test A)" 192.0.2.10
	assert_eq "$(rcode 1 other.test +tcp)" NXDOMAIN
	# the allowed address, but DoT and plain UDP: dropped
	assert_eq "$(get 1 192.0.2.10 853)" ""
	assert_eq "$(echo x | nsx "vtg${NET_SFX}1" socat -T 1 - UDP4:192.0.2.10:5000 2>/dev/null || true)" ""
}

@test "live changes: a removed domain is cut at once, the others stay; CIDRs combine, denied CIDRs win; without domains the resolver goes" {
	dvm 1 '["example.test","*.wild.test"]'
	pid=$(setter 1)
	assert_eq "$(q 1 example.test)" 192.0.2.10
	assert_eq "$(q 1 a.wild.test)" 192.0.2.20
	assert_eq "$(get 1 192.0.2.10 80)" hello-from-192.0.2.10
	assert_eq "$(get 1 192.0.2.20 80)" hello-from-192.0.2.20
	# example.test removed: its address goes with the change, the other stays
	apply 1 "$(policy '["*.wild.test"]' '{}')" "$(dns_req 1 '["*.wild.test"]')" >/dev/null
	assert_eq "$(get 1 192.0.2.10 80)" ""
	assert_eq "$(get 1 192.0.2.20 80)" hello-from-192.0.2.20
	[[ $(set_of 1) != *192.0.2.10* ]]
	assert_eq "$(rcode 1 example.test)" NXDOMAIN
	# the same resolver took the list (no restart)
	assert_eq "$(jq .dns.pid "/run/vmsan/net/vm-7e570001.json")" "$pid"
	# a denied CIDR wins over an allowed name's address
	apply 1 "$(policy '["*.wild.test"]' '{"deniedCidrs":["192.0.2.20/32"]}')" "$(dns_req 1 '["*.wild.test"]')" >/dev/null
	assert_eq "$(q 1 b.wild.test)" 192.0.2.20
	assert_eq "$(get 1 192.0.2.20 80)" ""
	# allowed CIDRs combine with the names
	apply 1 "$(policy '["*.wild.test"]' '{"allowedCidrs":["192.0.2.10/32"]}')" "$(dns_req 1 '["*.wild.test"]')" >/dev/null
	assert_eq "$(get 1 192.0.2.10 80)" hello-from-192.0.2.10
	assert_eq "$(get 1 192.0.2.20 80)" hello-from-192.0.2.20
	# no domains any more: the resolver is stopped and DNS goes out as is
	apply 1 '{"policy":"allow-all","dnsResolvers":["'$UP'"],"agentPort":9119}' >/dev/null
	run ! alive "$pid"
	assert_eq "$(jq .dns "/run/vmsan/net/vm-7e570001.json")" null
	assert_eq "$(q 1 other.test)" 192.0.2.20
	# and back: a new resolver
	apply 1 "$(policy '["example.test"]' '{}')" "$(dns_req 1 '["example.test"]')" >/dev/null
	new=$(jq .dns.pid "/run/vmsan/net/vm-7e570001.json")
	alive "$new"
	assert_eq "$(rcode 1 other.test)" NXDOMAIN
	assert_eq "$(q 1 example.test)" 192.0.2.10
}

@test "a live change that keeps the resolver never drops an address it allowed: the set's elements go into the new rules' own transaction" {
	require_cmd strace
	local c rq log=$BATS_TEST_TMPDIR/strace.log out=$BATS_TEST_TMPDIR/apply.json bg
	dvm 1 '["example.test"]'
	pid=$(setter 1)
	assert_eq "$(q 1 example.test)" 192.0.2.10
	assert_eq "$(get 1 192.0.2.10 80)" hello-from-192.0.2.10
	# a CIDR added, the list kept: apply-rules is held 6 s on its way to
	# the resolver (root's strace delays every connect), so its new table
	# stands before the resolver heard of it
	c=$(policy '["example.test"]' '{"allowedCidrs":["192.0.2.20/32"]}' | "$LIBEXEC/vmsan-nftables" compile)
	rq=$(jq -c --arg id vm-7e570001 --argjson dns "$(dns_req 1 '["example.test"]')" \
		'{op:"apply-rules", id:$id, ruleset:.ruleset, dns:$dns}' <<<"$c")
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" timeout 30 nsenter --net="/run/netns/$H" \
		strace -f -o "$log" -e trace=connect -e inject=connect:delay_enter=6000000 \
		"$LIBEXEC/vmsan-net" <<<"$rq" >"$out" 2>&1 3>&- &
	bg=$!
	for _ in $(seq 100); do
		ip netns exec vmsan-vm-7e570001 nft list ruleset 2>/dev/null | grep -q 192.0.2.20 && break
		sleep 0.05
	done
	# control: the new rules are in, and the helper has not yet reached
	# the resolver
	ip netns exec vmsan-vm-7e570001 nft list ruleset | grep -q 192.0.2.20
	kill -0 "$bg"
	[ ! -s "$out" ]
	# in that window, the name's address (and the new CIDR) answer
	assert_eq "$(get 1 192.0.2.10 80)" hello-from-192.0.2.10
	assert_eq "$(get 1 192.0.2.20 80)" hello-from-192.0.2.20
	kill -0 "$bg"
	wait "$bg"
	jq -e '.applied == true' "$out" >/dev/null
	grep -q 'connect(.*vmsan-dns-ctl' "$log"
	# the same resolver took the list; what it justifies is still allowed
	assert_eq "$(jq .dns.pid "/run/vmsan/net/vm-7e570001.json")" "$pid"
	assert_eq "$(get 1 192.0.2.10 80)" hello-from-192.0.2.10
}

@test "3000 random names at 1000 queries/s: answered, yet the set and the resolver's memory stay bounded" {
	dvm 1 '["*.wild.test"]'
	res=$(pgrep -P "$(setter 1)")
	rss0=$(awk '/^VmRSS/ {print $2}' "/proc/$res/status")
	load=$(timeout 30 nsenter --net="/run/netns/vtg${NET_SFX}1" "$TOP/tests/tools/dns-load" $UP 3000 1000 'r%u.wild.test')
	echo "allowed: $load"
	[ "$(jq .answered <<<"$load")" -ge 2970 ]
	assert_eq "$(jq -r '.rcodes["0"]' <<<"$load")" "$(jq .answered <<<"$load")"
	load=$(timeout 30 nsenter --net="/run/netns/vtg${NET_SFX}1" "$TOP/tests/tools/dns-load" $UP 3000 1000 'r%u.nowhere.test')
	echo "refused: $load"
	[ "$(jq .answered <<<"$load")" -ge 2970 ]
	assert_eq "$(jq -r '.rcodes["3"]' <<<"$load")" "$(jq .answered <<<"$load")"
	# one address for all those names, one element
	assert_eq "$(set_of 1 | grep -o 'expires' | wc -l)" 1
	stats=$(echo '{"op":"stats"}' | ip netns exec vmsan-vm-7e570001 socat -t 2 - ABSTRACT-CONNECT:vmsan-dns-ctl)
	echo "$stats"
	assert_eq "$(jq .tracked <<<"$stats")" 1
	assert_eq "$(jq .pending <<<"$stats")" 0
	rss1=$(awk '/^VmRSS/ {print $2}' "/proc/$res/status")
	echo "resolver RSS $rss0 kB -> $rss1 kB"
	[ $((rss1 - rss0)) -lt 2048 ]
	# and the log stayed rate-limited: far fewer lines than queries
	[ "$(wc -l <"$BATS_TEST_TMPDIR/dns1.log")" -lt 1000 ]
	grep -q '"suppressedBefore":[1-9]' "$BATS_TEST_TMPDIR/dns1.log"
}

@test "9000 names with as many addresses: all in the set; a live change re-syncs them in one batch; the name removed, all go" {
	dvm 1 '["*.many.test"]'
	load=$(timeout 60 nsenter --net="/run/netns/vtg${NET_SFX}1" "$TOP/tests/tools/dns-load" $UP 9000 2000 'h%i.many.test')
	echo "$load"
	# a resolver slower than 2000 answers/s (a sanitizer's build, a host
	# busy with other work: 1300/s was seen) lets queries time out; this
	# test is about the set, not speed (bench/dns.sh is): the same
	# names again, slower, and each must have been answered by then
	if [ "$(jq .answered <<<"$load")" -lt 8950 ]; then
		load=$(timeout 60 nsenter --net="/run/netns/vtg${NET_SFX}1" "$TOP/tests/tools/dns-load" $UP 9000 500 'h%i.many.test')
		echo "again, slower: $load"
	fi
	[ "$(jq .answered <<<"$load")" -ge 8950 ]
	assert_eq "$(jq -r '.rcodes["0"]' <<<"$load")" "$(jq .answered <<<"$load")"
	n=$(set_of 1 | grep -o expires | wc -l)
	[ "$n" -ge "$(jq .answered <<<"$load")" ]
	stats() { echo '{"op":"stats"}' | ip netns exec vmsan-vm-7e570001 socat -t 2 - ABSTRACT-CONNECT:vmsan-dns-ctl; }
	assert_eq "$(stats | jq .tracked)" "$n"
	# a name added: the rules are replaced and the resolver puts back all
	# 9000 (a batch above the default netlink send buffer)
	apply 1 "$(policy '["*.many.test","example.test"]' '{}')" "$(dns_req 1 '["*.many.test","example.test"]')" >/dev/null
	assert_eq "$(set_of 1 | grep -o expires | wc -l)" "$n"
	set_of 1 | grep -q '10\.77\.35\.39 '      # h8999
	# the wildcard removed: every one of them leaves at once
	apply 1 "$(policy '["example.test"]' '{}')" "$(dns_req 1 '["example.test"]')" >/dev/null
	assert_eq "$(set_of 1 | grep -o expires | wc -l)" 0
	assert_eq "$(stats | jq .tracked)" 0
}

# tls N NAME|-: a TLS handshake from guest N with 192.0.2.10:443 (SNI NAME,
# or none); "ok" when the server's certificate came back
tls() {
	local sni=(-servername "$2")
	[ "$2" != - ] || sni=(-noservername)
	in_guest "$1" timeout 4 openssl s_client -connect 192.0.2.10:443 "${sni[@]}" </dev/null 2>&1 |
		grep -q 'BEGIN CERTIFICATE' && echo ok || echo refused
}
# http N HOST: a request from guest N to 192.0.2.10:80 with that Host
http() { printf 'GET / HTTP/1.0\r\nHost: %s\r\n\r\n' "$2" | tcp_get in_guest "$1" nc -w 3 192.0.2.10 80; }

@test "--strict-domains: 443 needs an allowed TLS name and 80 an allowed Host, for the address that name resolved to; other ports to it dropped" {
	# VM 2 without the check: an allowed name's address opens every site on it
	dvm 2 '["example.test"]'
	assert_eq "$(q 2 example.test)" 192.0.2.10
	assert_eq "$(tls 2 shared.test)" ok
	assert_eq "$(get 2 192.0.2.10 8080)" other-port

	dvm 1 '["example.test"]' '{"strictDomains":true}'
	jq -e '.dns.strict == true' /run/vmsan/net/vm-7e570001.json >/dev/null
	# not resolved yet: not even the check is reached
	assert_eq "$(tls 1 example.test)" refused
	assert_eq "$(q 1 example.test)" 192.0.2.10
	assert_eq "$(tls 1 example.test)" ok
	assert_eq "$(tls 1 EXAMPLE.test.)" ok
	# the same address under another name, or no name: closed before a
	# byte reaches the server
	assert_eq "$(tls 1 shared.test)" refused
	assert_eq "$(tls 1 -)" refused
	assert_contains "$(http 1 example.test)" hello-from-192.0.2.10
	assert_contains "$(http 1 example.test:80)" hello-from-192.0.2.10
	out=$(http 1 shared.test)
	assert_contains "$out" "403 Forbidden"
	[[ $out != *hello-from* ]]
	# other ports to the name's address: dropped
	assert_eq "$(get 1 192.0.2.10 8080)" ""
	# an allowed name that did not resolve to this address does not open it
	apply 1 "$(policy '["example.test","other.test"]' '{"strictDomains":true}')" \
		"$(dns_req 1 '["example.test","other.test"]' | jq -c '. + {strict:true}')" >/dev/null
	assert_eq "$(q 1 example.test)" 192.0.2.10
	assert_eq "$(tls 1 other.test)" refused
	assert_eq "$(q 1 other.test)" 192.0.2.20
	# the log names each verdict
	grep -q '"verdict":"deny","conn":"tls","name":"shared.test","address":"192.0.2.10","port":443' \
		"$BATS_TEST_TMPDIR/dns1.log"
	grep -q '"verdict":"allow","conn":"tls","name":"example.test"' "$BATS_TEST_TMPDIR/dns1.log"
	grep -q '"verdict":"deny","conn":"http","name":"shared.test"' "$BATS_TEST_TMPDIR/dns1.log"
	# the check off, live: a new resolver, the address reached directly
	apply 1 "$(policy '["example.test"]' '{}')" "$(dns_req 1 '["example.test"]')" >/dev/null
	jq -e '.dns.strict == false' /run/vmsan/net/vm-7e570001.json >/dev/null
	assert_eq "$(q 1 example.test)" 192.0.2.10
	assert_eq "$(get 1 192.0.2.10 8080)" other-port
	# on and off again and again: each change replaces the resolver, whose
	# successor binds the same ports at once (the old one is waited for)
	for _ in 1 2 3 4 5 6 7 8; do
		apply 1 "$(policy '["example.test"]' '{"strictDomains":true}')" \
			"$(dns_req 1 '["example.test"]' | jq -c '. + {strict:true}')" >/dev/null
		apply 1 "$(policy '["example.test"]' '{}')" "$(dns_req 1 '["example.test"]')" >/dev/null
	done
	assert_eq "$(q 1 example.test)" 192.0.2.10
}

@test "--strict-domains: one HTTP request per connection: a second (pipelined or keep-alive) request, with another Host, never reaches the server" {
	require_cmd python3
	local log=$BATS_FILE_TMPDIR/keep.log two
	two='GET /1 HTTP/1.1\r\nHost: keep.test\r\n\r\nGET /2 HTTP/1.1\r\nHost: evil.test\r\n\r\n'
	# The control, without --strict-domains: both requests of one
	# connection reach this server (it keeps connections alive).
	dvm 1 '["keep.test"]'
	assert_eq "$(q 1 keep.test)" "192.0.2.31"
	: >"$log"
	out=$(printf %b "$two" | in_guest 1 timeout 4 nc -q 2 192.0.2.31 80 || true)
	assert_contains "$out" "hi evil.test /2"
	assert_contains "$(cat "$log")" "GET evil.test /2"
	vm_down 1
	rm -f /run/vmsan/ids/vm-7e570001
	dvm 1 '["keep.test"]' '{"strictDomains":true}'
	assert_eq "$(q 1 keep.test)" "192.0.2.31"
	: >"$log"
	out=$(printf %b "$two" | in_guest 1 timeout 4 nc -q 2 192.0.2.31 80 || true)
	assert_contains "$out" "hi keep.test /1"
	[[ $out != *"/2"* ]]
	# after a body (Content-Length) too; and the guest waiting on the
	# connection (no -q: it never closes) gets the end of it
	out=$(printf 'POST /p HTTP/1.1\r\nHost: keep.test\r\nContent-Length: 5\r\n\r\nhelloGET /3 HTTP/1.1\r\nHost: evil.test\r\n\r\n' |
		in_guest 1 timeout 4 nc 192.0.2.31 80; echo "rc=$?")
	assert_contains "$out" "hi keep.test /p"
	assert_contains "$out" "rc=0"
	sleep 0.3
	assert_eq "$(cat "$log")" $'GET keep.test /1 \nPOST keep.test /p hello'
	grep -q 'more than one request on a connection' "$BATS_TEST_TMPDIR/dns1.log"
	# ambiguous framing (Content-Length and chunked): refused before any byte goes out
	out=$(printf 'POST /x HTTP/1.1\r\nHost: keep.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' |
		in_guest 1 timeout 4 nc -q 2 192.0.2.31 80 || true)
	assert_contains "$out" "403 Forbidden"
	[[ $(cat "$log") != *"/x"* ]]
}

@test "--strict-domains: the relay carries large uploads and responses, and many connections one after another; none is left open" {
	dvm 1 '["bulk.test"]' '{"strictDomains":true}'
	assert_eq "$(q 1 bulk.test)" 192.0.2.30
	out=$(in_guest 1 timeout 60 "$TOP/tests/tools/http-load" 192.0.2.30 80 bulk.test /16777216 3)
	echo "$out"
	assert_eq "$(jq .ok <<<"$out")" 3
	out=$(in_guest 1 timeout 60 "$TOP/tests/tools/http-load" 192.0.2.30 80 bulk.test /up 3 16777216)
	echo "$out"
	assert_eq "$(jq .ok <<<"$out")" 3
	out=$(in_guest 1 timeout 60 "$TOP/tests/tools/http-load" 192.0.2.30 80 bulk.test /100 300)
	assert_eq "$(jq .ok <<<"$out")" 300
	out=$(in_guest 1 timeout 60 "$TOP/tests/tools/http-load" 192.0.2.30 80 other.test /100 3)
	assert_eq "$(jq .ok <<<"$out")" 0
	# every relay closed: nothing left open in the resolver
	res=$(pgrep -P "$(setter 1)")
	sleep 0.5
	[ "$(find /proc/"$res"/fd -mindepth 1 | wc -l)" -lt 20 ]
}

@test "least privilege: setter CAP_NET_ADMIN only, resolver nothing and seccomp; control from root only; teardown and sweep leave no process" {
	dvm 1 '["example.test"]'
	s=$(setter 1)
	r=$(pgrep -P "$s")
	st=/proc/$s/status rt=/proc/$r/status
	[ "$(awk '/^Uid:/ {print $2}' "$st")" -ge 1879080960 ]
	assert_eq "$(awk '/^Uid:/ {print $2}' "$rt")" "$(awk '/^Uid:/ {print $2}' "$st")"
	assert_eq "$(awk '/^CapEff:/ {print $2}' "$st")" 0000000000001000
	assert_eq "$(awk '/^CapBnd:/ {print $2}' "$st")" 0000000000001000
	assert_eq "$(awk '/^NoNewPrivs:/ {print $2}' "$st")" 1
	assert_eq "$(awk '/^CapEff:/ {print $2}' "$rt")" 0000000000000000
	assert_eq "$(awk '/^CapPrm:/ {print $2}' "$rt")" 0000000000000000
	assert_eq "$(awk '/^Seccomp:/ {print $2}' "$rt")" 2
	# the control socket: root gets an answer, anyone else (the VMM's
	# user, say) is hung up on and changes nothing
	ok=$(echo '{"op":"stats"}' | ip netns exec vmsan-vm-7e570001 socat -t 2 - ABSTRACT-CONNECT:vmsan-dns-ctl)
	assert_eq "$(jq .domains <<<"$ok")" 1
	no=$(echo '{"domains":["*.test"]}' | ip netns exec vmsan-vm-7e570001 setpriv --reuid=65534 --regid=65534 \
		--clear-groups socat -t 2 - ABSTRACT-CONNECT:vmsan-dns-ctl 2>/dev/null || true)
	assert_eq "$no" ""
	assert_eq "$(rcode 1 other.test)" NXDOMAIN
	vm_down 1
	run ! alive "$s"
	run ! alive "$r"
	# a VM whose runtime record is lost: sweep kills what runs in its namespace
	dvm 2 '["example.test"]'
	s=$(setter 2)
	rm "/run/vmsan/net/vm-7e570002.json"
	out=$(echo '{}' | nsx "$H" "$LIBEXEC/vmsan-net" sweep)
	assert_contains "$out" "(vmsan-dns) in it"
	run ! alive "$s"
	[ ! -e /run/netns/vmsan-vm-7e570002 ]
}

@test "vmsan-net refuses bad resolver settings before making anything" {
	rs=$(policy '["example.test"]' '{}' | "$LIBEXEC/vmsan-nftables" compile | jq -c .ruleset)
	plain=$(echo '{"policy":"allow-all"}' | "$LIBEXEC/vmsan-nftables" compile | jq -c .ruleset)
	long=$(printf 'a%.0s' $(seq 1 60)); long="$long.$long.$long.$long.$long.com"
	while IFS='|' read -r dns ruleset msg; do
		run --separate-stderr nsx "$H" "$LIBEXEC/vmsan-net" <<<"{\"op\":\"setup\",\"id\":\"vm-7e570001\",\"ruleset\":${ruleset:-$rs},\"dns\":$dns}"
		[ "$status" -eq 100 ] || { echo "status $status for $dns: $output"; false; }
		assert_contains "$(jq -r .error.message <<<"$output")" "$msg"
		out=$(echo '{"id":"vm-7e570001"}' | nsx "$H" "$LIBEXEC/vmsan-net" verify)
		assert_eq "$(jq .clean <<<"$out")" true
	done <<CASES
{"domains":["*."],"upstreams":["$UP"]}||'*.' needs a domain after it
{"domains":["a..b"],"upstreams":["$UP"]}||has an empty label
{"domains":["*foo.com"],"upstreams":["$UP"]}||only allowed as a leading '*.'
{"domains":["$long"],"upstreams":["$UP"]}||longer than 253 characters
{"domains":[],"upstreams":["$UP"]}||may not be empty
{"domains":["example.test"],"upstreams":["8.8.8"]}||expected an IPv4 address
{"domains":["example.test"],"upstreams":["$UP"],"ttlMin":60,"ttlMax":30}||is above ttlMax
{"domains":["example.test"],"upstreams":["$UP"],"log":"relative/dns.log"}||expected an absolute path
{"domains":["example.test"],"upstreams":["$UP"]}|$plain|has no set dns_allow
CASES
}
