#!/usr/bin/env bats
# vmsan-net and vmsan-nftables with real packets: a guest namespace attached
# to the VM's TAP, a fake internet behind the test host.  Each test shows
# that what must pass passes and what must not pass does not.
load test_helper
load net_helper

setup_file() {
	[ "$(id -u)" = 0 ] || return 0
	export TOP LIBEXEC
	net_fixture_up
}

teardown_file() {
	[ "$(id -u)" = 0 ] || return 0
	net_fixture_down
}

setup_extra() {
	require_root
	[ -x "$PUMP" ] || { echo "build tests/tools/tap-pump (make check does)"; return 1; }
}

teardown_extra() {
	vm_down 1
	vm_down 2
	vm_down 8
	vm_down 9
	return 0
}

get() { # get N ADDR PORT: a TCP request from guest N
	tcp_get in_guest "$1" nc -w 2 "$2" "$3" </dev/null
}

udp() { # udp N ADDR PORT
	echo x | nsx "vtg${NET_SFX}$1" socat -T 1 - "UDP4:$2:$3" 2>/dev/null || true
}

dns() { # dns N SERVER [tcp]: the answer's address bytes, hex
	if [ "${3:-}" = tcp ]; then
		{ printf '\x00\x1e'; dns_query_bytes; } | nsx "vtg${NET_SFX}$1" socat -T 1 - "TCP4:$2:53" 2>/dev/null |
			od -An -tx1 | tr -d ' \n' | tail -c 8
	else
		dns_query_bytes | nsx "vtg${NET_SFX}$1" socat -T 1 - "UDP4:$2:53" 2>/dev/null |
			od -An -tx1 | tr -d ' \n' | tail -c 8
	fi
}

@test "allow-all: TCP out works; ICMP, plain UDP, DoT and foreign DNS do not" {
	vm_up 1 '{"policy":"allow-all","dnsResolvers":["192.0.2.53"]}'
	assert_eq "$(get 1 192.0.2.10 80)" "hello-from-192.0.2.10"
	assert_eq "$(get 1 192.0.2.20 80)" "hello-from-192.0.2.20"
	run in_guest 1 ping -c 1 -W 1 192.0.2.10
	[ "$status" -ne 0 ]
	assert_eq "$(udp 1 192.0.2.10 5000)" ""
	assert_eq "$(get 1 192.0.2.10 853)" ""
	# DNS: the configured resolver answers, over UDP and TCP; another does not.
	assert_eq "$(dns 1 192.0.2.53)" "c000020a"
	assert_eq "$(dns 1 192.0.2.53 tcp)" "c000020a"
	assert_eq "$(dns 1 192.0.2.54)" ""
	assert_eq "$(dns 1 192.0.2.54 tcp)" ""
}

@test "the control: the same probes pass when sent from the host itself" {
	# Shows the listeners answer, so the drops above are the policy's.
	run nsx "$H" ping -c 1 -W 1 192.0.2.10
	[ "$status" -eq 0 ]
	assert_eq "$(echo x | nsx "$H" socat -T 1 - UDP4:192.0.2.10:5000)" "udp-192.0.2.10"
	assert_eq "$(tcp_get nsx "$H" nc -w 2 192.0.2.10 853 </dev/null)" "dot-192.0.2.10"
	assert_eq "$(dns_query_bytes | nsx "$H" socat -T 1 - UDP4:192.0.2.54:53 | od -An -tx1 | tr -d ' \n' | tail -c 8)" "c000020a"
}

@test "deny-all: nothing goes out, not even DNS" {
	vm_up 1 '{"policy":"deny-all","dnsResolvers":["192.0.2.53"]}'
	assert_eq "$(get 1 192.0.2.10 80)" ""
	assert_eq "$(dns 1 192.0.2.53)" ""
	run in_guest 1 ping -c 1 -W 1 192.0.2.10
	[ "$status" -ne 0 ]
}

@test "custom: allowed CIDRs pass, the rest does not, denied wins" {
	vm_up 1 '{"policy":"custom","allowedCidrs":["192.0.2.0/24"],"deniedCidrs":["192.0.2.20/32"]}'
	assert_eq "$(get 1 192.0.2.10 80)" "hello-from-192.0.2.10"
	assert_eq "$(get 1 192.0.2.20 80)" ""
	assert_eq "$(get 1 203.0.113.254 80)" ""
}

@test "a guest reaches no host address or port, nor its own namespace" {
	vm_up 1 '{"policy":"allow-all"}'
	# The host's service, on its outside address and on the VM link.
	assert_eq "$(tcp_get nsx "$H" nc -w 2 203.0.113.1 2222 </dev/null)" "host-service"
	assert_eq "$(get 1 203.0.113.1 2222)" ""
	assert_eq "$(get 1 198.18.0.1 2222)" ""
	assert_eq "$(get 1 172.16.0.1 2222)" ""
	run in_guest 1 ping -c 1 -W 1 172.16.0.1
	[ "$status" -ne 0 ]
}

@test "guests cannot reach each other" {
	vm_up 1 '{"policy":"allow-all","agentPort":7000}'
	vm_up 2 '{"policy":"allow-all","agentPort":7000}'
	in_guest 1 socat -t "$ANSWER_WAIT" TCP4-LISTEN:7000,reuseaddr,fork SYSTEM:'echo agent-1' &
	sleep 0.2
	a1=$(jq -r .agentAddr "$BATS_TEST_TMPDIR/s1.json")
	# The host reaches VM 1's agent; VM 2 does not.
	assert_eq "$(tcp_get nsx "$H" nc -w 2 "$a1" 7000 </dev/null)" "agent-1"
	assert_eq "$(get 2 "$a1" 7000)" ""
}

@test "a VM's TAP belongs to its VMM's uid (root's per-slot one, or the sudo caller's): no other uid can attach to it" {
	local c slot owner
	c=$(echo '{"policy":"deny-all","agentPort":7000}' | "$LIBEXEC/vmsan-nftables" compile)
	jq -c '{op:"setup", id:"vm-7e570008", ruleset:.ruleset}' <<<"$c" |
		nsx "$H" "$LIBEXEC/vmsan-net" >"$BATS_TEST_TMPDIR/s8.json"
	slot=$(jq .slot "$BATS_TEST_TMPDIR/s8.json")
	owner=$((1879048192 + slot))
	ip netns exec vmsan-vm-7e570008 ip -d link show vmstap0 | grep -q "user $owner "
	assert_eq "$(ip netns exec vmsan-vm-7e570008 "$TOP/tests/tools/tap-attach" 65534 vmstap0 || true)" \
		"Operation not permitted"
	assert_eq "$(ip netns exec vmsan-vm-7e570008 "$TOP/tests/tools/tap-attach" "$owner" vmstap0)" attached
	# through sudo, the VMM is the caller's: so is the TAP
	jq -c '{op:"setup", id:"vm-7e570009", ruleset:.ruleset}' <<<"$c" |
		SUDO_UID=4242 SUDO_GID=4242 nsx "$H" "$LIBEXEC/vmsan-net" >/dev/null
	ip netns exec vmsan-vm-7e570009 ip -d link show vmstap0 | grep -q "user 4242 "
	assert_eq "$(ip netns exec vmsan-vm-7e570009 "$TOP/tests/tools/tap-attach" "$owner" vmstap0 || true)" \
		"Operation not permitted"
	assert_eq "$(ip netns exec vmsan-vm-7e570009 "$TOP/tests/tools/tap-attach" 4242 vmstap0)" attached
	vm_down 8
	vm_down 9
}

@test "the agent port is reachable from the host only, not from outside" {
	vm_up 1 '{"policy":"deny-all","agentPort":7000}'
	in_guest 1 socat -t "$ANSWER_WAIT" TCP4-LISTEN:7000,reuseaddr,fork SYSTEM:'echo agent' &
	sleep 0.2
	a1=$(jq -r .agentAddr "$BATS_TEST_TMPDIR/s1.json")
	assert_eq "$(tcp_get nsx "$H" nc -w 2 "$a1" 7000 </dev/null)" "agent"
	nsx "$I" ip route add 198.18.0.0/15 via 203.0.113.1
	out=$(tcp_get nsx "$I" nc -w 2 "$a1" 7000 </dev/null)
	nsx "$I" ip route del 198.18.0.0/15 via 203.0.113.1
	assert_eq "$out" ""
}

@test "a spoofed source address is dropped" {
	vm_up 1 '{"policy":"allow-all"}'
	in_guest 1 ip addr add 10.9.9.9/32 dev eth0
	assert_eq "$(tcp_get in_guest 1 nc -w 2 -s 10.9.9.9 192.0.2.10 80 </dev/null)" ""
	assert_eq "$(tcp_get in_guest 1 nc -w 2 -s 172.16.0.2 192.0.2.10 80 </dev/null)" "hello-from-192.0.2.10"
}

@test "published ports reach the guest from outside and from the host (127.0.0.1 too), even under deny-all" {
	vm_up 1 '{"policy":"deny-all","publishedPorts":[{"hostPort":8080,"guestPort":80}]}'
	in_guest 1 socat -t "$ANSWER_WAIT" TCP4-LISTEN:80,reuseaddr,fork SYSTEM:'echo published' &
	sleep 0.2
	assert_eq "$(tcp_get nsx "$I" nc -w 2 203.0.113.1 8080 </dev/null)" "published"
	assert_eq "$(tcp_get nsx "$H" nc -w 2 203.0.113.1 8080 </dev/null)" "published"
	# The host's loopback address too (route_localnet on vmsh<N>, masqueraded).
	assert_eq "$(tcp_get nsx "$H" nc -w 2 127.0.0.1 8080 </dev/null)" "published"
	# Unpublished ports stay closed.
	assert_eq "$(tcp_get nsx "$I" nc -w 2 203.0.113.1 8081 </dev/null)" ""
}

@test "a port published by another VM is refused and the failed setup leaves nothing" {
	vm_up 1 '{"policy":"allow-all","publishedPorts":[{"hostPort":8080}]}'
	run vm_up 2 '{"policy":"allow-all","publishedPorts":[{"hostPort":8080}]}'
	[ "$status" -ne 0 ]
	assert_contains "$(cat "$BATS_TEST_TMPDIR/s2.json")" "host port 8080 is already published by another VM"
	run nsx "$H" "$LIBEXEC/vmsan-net" verify <<<'{"id":"vm-7e570002"}'
	[ "$(echo "$output" | jq .clean)" = true ]
	# VM 1 keeps its port.
	nsx "$H" nft list map ip vmsan pub | grep -q '8080 : 198.18.'
}

@test "a live policy change cuts an established flow to a newly denied address" {
	vm_up 1 '{"policy":"allow-all"}'
	nsd "$I" socat TCP4-LISTEN:9000,bind=192.0.2.10,reuseaddr SYSTEM:'while sleep 0.2; do echo tick; done'
	sleep 0.2
	in_guest 1 timeout 6 nc 192.0.2.10 9000 </dev/null >"$BATS_TEST_TMPDIR/flow" &
	sleep 1
	[ -s "$BATS_TEST_TMPDIR/flow" ]
	echo '{"policy":"custom","deniedCidrs":["192.0.2.10/32"]}' | "$LIBEXEC/vmsan-nftables" compile |
		jq -c '{op:"apply-rules", id:"vm-7e570001", ruleset:.ruleset}' | nsx "$H" "$LIBEXEC/vmsan-net"
	sleep 0.5
	before=$(wc -l <"$BATS_TEST_TMPDIR/flow")
	sleep 1.5
	after=$(wc -l <"$BATS_TEST_TMPDIR/flow")
	[ "$after" -le $((before + 1)) ]
	assert_eq "$(get 1 192.0.2.10 80)" ""
	assert_eq "$(get 1 192.0.2.20 80)" "hello-from-192.0.2.20"
}

@test "bandwidth is shaped in both directions" {
	vm_up 1 '{"policy":"allow-all"}'
	echo '{"policy":"allow-all"}' | "$LIBEXEC/vmsan-nftables" compile |
		jq -c '{op:"setup", id:"vm-7e570009", ruleset:.ruleset, bandwidthMbit:50}' |
		nsx "$H" "$LIBEXEC/vmsan-net" >/dev/null
	run nsx "$H" ip netns exec vmsan-vm-7e570009 tc qdisc show
	echo '{"op":"teardown","id":"vm-7e570009"}' | nsx "$H" "$LIBEXEC/vmsan-net" >/dev/null
	echo "$output" | grep -q 'tbf .* dev vmstap0 .*rate 50Mbit'
	echo "$output" | grep -q 'tbf .* dev vmsnet0 .*rate 50Mbit'
}

@test "20 parallel setups get 20 distinct slots, and all tear down clean" {
	rs=$(echo '{"policy":"allow-all"}' | "$LIBEXEC/vmsan-nftables" compile | jq -c .ruleset)
	for i in $(seq 10 29); do
		echo "{\"op\":\"setup\",\"id\":\"vm-7e5700$i\",\"ruleset\":$rs}" |
			nsx "$H" "$LIBEXEC/vmsan-net" >"$BATS_TEST_TMPDIR/p$i" &
	done
	wait
	[ "$(cat "$BATS_TEST_TMPDIR"/p* | jq -r .slot | sort -u | wc -l)" -eq 20 ]
	[ "$(cat "$BATS_TEST_TMPDIR"/p* | jq -r .ok | sort -u)" = true ]
	for i in $(seq 10 29); do
		echo "{\"op\":\"teardown\",\"id\":\"vm-7e5700$i\"}" | nsx "$H" "$LIBEXEC/vmsan-net" >/dev/null &
	done
	wait
	for i in $(seq 10 29); do
		run nsx "$H" "$LIBEXEC/vmsan-net" verify <<<"{\"id\":\"vm-7e5700$i\"}"
		[ "$(echo "$output" | jq .clean)" = true ] || { echo "$output"; false; }
	done
	[ -z "$(ip netns list | grep vmsan-vm-7e5700 || true)" ]
	# The kernel releases a deleted namespace, and the veth with it,
	# asynchronously: the host ends must be gone within a moment.
	for _ in $(seq 40); do
		[ -n "$(nsx "$H" ip -br link | grep vmsh || true)" ] || break
		sleep 0.05
	done
	[ -z "$(nsx "$H" ip -br link | grep vmsh || true)" ]
}

@test "teardown is idempotent and verify reports every leftover" {
	vm_up 1 '{"policy":"allow-all"}'
	run nsx "$H" "$LIBEXEC/vmsan-net" verify <<<'{"id":"vm-7e570001"}'
	[ "$(echo "$output" | jq '.leftovers | length')" -eq 4 ]
	kill "$(cat "$BATS_TEST_TMPDIR/pump1.pid")"
	run nsx "$H" "$LIBEXEC/vmsan-net" teardown <<<'{"id":"vm-7e570001"}'
	[ "$(echo "$output" | jq .removed)" = true ]
	run nsx "$H" "$LIBEXEC/vmsan-net" teardown <<<'{"id":"vm-7e570001"}'
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq .removed)" = false ]
	run nsx "$H" "$LIBEXEC/vmsan-net" verify <<<'{"id":"vm-7e570001"}'
	[ "$(echo "$output" | jq .clean)" = true ]
}

@test "sweep removes what no runtime record accounts for, and nothing else" {
	vm_up 1 '{"policy":"allow-all","publishedPorts":[{"hostPort":8091}]}'
	vm_up 2 '{"policy":"allow-all","publishedPorts":[{"hostPort":8092}]}'
	slot1=$(jq .slot /run/vmsan/net/vm-7e570001.json)
	kill "$(cat "$BATS_TEST_TMPDIR/pump1.pid")"
	# VM 1's runtime record is lost: teardown and verify no longer know
	# its slot, its host link or its published port.
	rm /run/vmsan/net/vm-7e570001.json
	run nsx "$H" "$LIBEXEC/vmsan-net" sweep <<<'{"dryRun":true}'
	[ "$status" -eq 0 ]
	assert_contains "$output" "\"slot $slot1\""
	assert_contains "$output" "\"interface vmsh$slot1\""
	assert_contains "$output" "network namespace vmsan-vm-7e570001"
	assert_contains "$output" "published port 8091 -> "
	# A dry run changed nothing.
	[ -e /run/netns/vmsan-vm-7e570001 ]
	nsx "$H" nft list map ip vmsan pub | grep -q '8091 : 198.18.'
	run nsx "$H" "$LIBEXEC/vmsan-net" sweep <<<'{}'
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq '.removed | length')" -eq 4 ]
	[ ! -e /run/netns/vmsan-vm-7e570001 ]
	[ -z "$(nsx "$H" ip -br link show "vmsh$slot1" 2>/dev/null)" ]
	[[ $(nsx "$H" nft list map ip vmsan pub) != *"8091 :"* ]]
	# VM 2 is whole and still answers on its published port.
	nsx "$H" nft list map ip vmsan pub | grep -q '8092 : 198.18.'
	assert_eq "$(get 2 192.0.2.20 80)" "hello-from-192.0.2.20"
	run nsx "$H" "$LIBEXEC/vmsan-net" sweep <<<'{"dryRun":true}'
	[ "$(echo "$output" | jq '.found | length')" -eq 0 ]
	# The slot is free again in the bitmap.
	[ $(( $(od -An -tu1 -j $((slot1 / 8)) -N1 /run/vmsan/slots) & (1 << (slot1 % 8)) )) -eq 0 ]
}

@test "hostMode (--no-netns): rules only from the policy, never the caller's; teardown and sweep remove TAP and table" {
	rs=$(echo '{"policy":"allow-all"}' | "$LIBEXEC/vmsan-nftables" compile | jq -c .ruleset)
	# A ruleset from the caller would be applied to the host: refused.
	run nsx "$H" "$LIBEXEC/vmsan-net" <<<"{\"op\":\"setup\",\"id\":\"vm-7e57000a\",\"hostMode\":true,\"policy\":{\"policy\":\"allow-all\"},\"ruleset\":$rs}"
	assert_eq "$status" 100
	assert_contains "$output" "not with hostMode"
	run nsx "$H" "$LIBEXEC/vmsan-net" <<<'{"op":"setup","id":"vm-7e57000a","hostMode":true,"policy":{"policy":"deny-all"},"bandwidthMbit":5}'
	assert_eq "$status" 100
	run nsx "$H" "$LIBEXEC/vmsan-net" <<<'{"op":"setup","id":"vm-7e57000a","hostMode":true,"policy":{"policy":"custom","allowedCidrs":["10.0.0.0/33"]}}'
	assert_eq "$status" 100
	[ ! -e /run/vmsan/net/vm-7e57000a.json ]
	run nsx "$H" "$LIBEXEC/vmsan-net" <<<'{"op":"setup","id":"vm-7e57000a","hostMode":true,"policy":{"policy":"deny-all","publishedPorts":[{"hostPort":8093,"guestPort":80}]}}'
	assert_eq "$status" 0
	tap=$(jq -r .tap <<<"$output")
	[ "$(jq -r .netns <<<"$output")" = null ]
	nsx "$H" nft list table ip vmsan_vm_7e57000a >/dev/null
	nsx "$H" nft list map ip vmsan pub | grep -q '8093 : 198.18.'
	# apply-rules wants the policy here, and keeps the published ports
	run nsx "$H" "$LIBEXEC/vmsan-net" <<<"{\"op\":\"apply-rules\",\"id\":\"vm-7e57000a\",\"ruleset\":$rs}"
	assert_eq "$status" 100
	run nsx "$H" "$LIBEXEC/vmsan-net" <<<'{"op":"apply-rules","id":"vm-7e57000a","policy":{"policy":"allow-all"}}'
	assert_eq "$status" 100
	assert_contains "$output" "cannot change on a running VM"
	run nsx "$H" "$LIBEXEC/vmsan-net" <<<'{"op":"apply-rules","id":"vm-7e57000a","policy":{"policy":"allow-all","publishedPorts":[{"hostPort":8093,"guestPort":80}]}}'
	assert_eq "$status" 0
	# the record lost: sweep finds the slot, the TAP, the table and the port
	rm /run/vmsan/net/vm-7e57000a.json
	run nsx "$H" "$LIBEXEC/vmsan-net" sweep <<<'{}'
	assert_eq "$status" 0
	assert_contains "$output" "\"interface $tap\""
	assert_contains "$output" '"table vmsan_vm_7e57000a"'
	assert_contains "$output" "published port 8093 -> "
	[ -z "$(nsx "$H" ip -br link show "$tap" 2>/dev/null)" ]
	[[ $(nsx "$H" nft list tables) != *vmsan_vm_7e57000a* ]]
	# and a whole one tears down to nothing
	run nsx "$H" "$LIBEXEC/vmsan-net" <<<'{"op":"setup","id":"vm-7e57000b","hostMode":true,"policy":{"policy":"allow-all"}}'
	assert_eq "$status" 0
	tap=$(jq -r .tap <<<"$output")
	run nsx "$H" "$LIBEXEC/vmsan-net" verify <<<'{"id":"vm-7e57000b"}'
	assert_contains "$output" "table vmsan_vm_7e57000b"
	nsx "$H" "$LIBEXEC/vmsan-net" teardown <<<'{"id":"vm-7e57000b"}' >/dev/null
	run nsx "$H" "$LIBEXEC/vmsan-net" verify <<<'{"id":"vm-7e57000b"}'
	assert_eq "$(jq .clean <<<"$output")" true
	[ -z "$(nsx "$H" ip -br link show "$tap" 2>/dev/null)" ]
}

@test "vmsan-net refuses bad input and applies nothing" {
	rs=$(echo '{"policy":"allow-all"}' | "$LIBEXEC/vmsan-nftables" compile | jq -c .ruleset)
	for id in '../x' 'A B' "$(printf 'a%.0s' $(seq 70))" ''; do
		run nsx "$H" "$LIBEXEC/vmsan-net" <<<"$(jq -cn --arg id "$id" --argjson rs "$rs" '{op:"setup", id:$id, ruleset:$rs}')"
		[ "$status" -eq 100 ] || { echo "id '$id': $output"; false; }
	done
	# A ruleset for someone else's table, or with an unknown matcher.
	bad=$(echo "$rs" | jq -c '.table = "filter"')
	run nsx "$H" "$LIBEXEC/vmsan-net" <<<"{\"op\":\"setup\",\"id\":\"vm-7e570001\",\"ruleset\":$bad}"
	[ "$status" -eq 100 ]
	assert_contains "$output" "is not ours"
	bad=$(echo "$rs" | jq -c '.rules[0].match = [{"goto":"x"}]')
	run nsx "$H" "$LIBEXEC/vmsan-net" <<<"{\"op\":\"setup\",\"id\":\"vm-7e570001\",\"ruleset\":$bad}"
	[ "$status" -eq 100 ]
	assert_contains "$output" "unknown matcher 'goto'"
	# The IPv6 guard cannot be loosened, nor hold anything but interface matchers.
	bad=$(echo "$rs" | jq -c '.ip6.chains[0].policy = "accept"')
	run nsx "$H" "$LIBEXEC/vmsan-net" <<<"{\"op\":\"setup\",\"id\":\"vm-7e570001\",\"ruleset\":$bad}"
	[ "$status" -eq 100 ]
	assert_contains "$output" "drops all IPv6"
	bad=$(echo "$rs" | jq -c '.ip6.rules = [{"chain":"input","match":[{"saddr":"10.0.0.0/8"}],"verdict":"accept"}]')
	run nsx "$H" "$LIBEXEC/vmsan-net" <<<"{\"op\":\"setup\",\"id\":\"vm-7e570001\",\"ruleset\":$bad}"
	[ "$status" -eq 100 ]
	assert_contains "$output" "only interface matchers in ip6"
	[ ! -e /run/netns/vmsan-vm-7e570001 ]
	[ ! -e /run/vmsan/net/vm-7e570001.json ]
	# A ruleset without it gets it all the same.
	nsx "$H" "$LIBEXEC/vmsan-net" <<<"{\"op\":\"setup\",\"id\":\"vm-7e570001\",\"ruleset\":$(jq -c 'del(.ip6)' <<<"$rs")}" >/dev/null
	assert_contains "$(nsx vmsan-vm-7e570001 nft list table ip6 vmsan)" "hook forward priority filter; policy drop;"
	nsx "$H" "$LIBEXEC/vmsan-net" teardown <<<'{"id":"vm-7e570001"}' >/dev/null
	# Not root: refused before reading anything.
	run setpriv --reuid=nobody --regid=nogroup --clear-groups "$LIBEXEC/vmsan-net" setup </dev/null
	[ "$status" -eq 1 ]
	assert_contains "$output" "vmsan-net needs root"
}

@test "169.254.169.254 (cloud metadata) is never reached unless an allowed CIDR names it; another address of the same fake host is" {
	# The fake internet's host answers on a metadata address and on 192.0.2.10.
	nsx "$I" ip addr add 169.254.169.254/32 dev lo
	net_serve "$I" 80,bind=169.254.169.254 'echo metadata'
	sleep 0.2
	assert_eq "$(tcp_get nsx "$H" nc -w 2 169.254.169.254 80 </dev/null)" "metadata"
	for p in '{"policy":"allow-all"}' '{"policy":"custom","allowedCidrs":["0.0.0.0/0"]}' \
		'{"policy":"custom","allowedCidrs":["192.0.2.0/24"]}'; do
		vm_up 1 "$p"
		assert_eq "$(get 1 192.0.2.10 80)" "hello-from-192.0.2.10"
		assert_eq "$(get 1 169.254.169.254 80)" ""
		vm_down 1
	done
	vm_up 1 '{"policy":"custom","allowedCidrs":["169.254.169.254/32","192.0.2.10/32"]}'
	assert_eq "$(get 1 169.254.169.254 80)" "metadata"
	assert_eq "$(get 1 192.0.2.10 80)" "hello-from-192.0.2.10"
	vm_down 1
	nsx "$I" ip addr del 169.254.169.254/32 dev lo
}

# send_ra NS IFACE: a router advertisement for 2001:db8:1::/64 (autonomous,
# on-link) and a default route, from NS's IFACE (link-local fe80::99) to
# all nodes.
send_ra() {
	nsx "$1" ip -6 addr add fe80::99/64 dev "$2" nodad 2>/dev/null || true
	nsx "$1" python3 - "$2" <<'PY'
import socket, struct, sys
ifi = socket.if_nametoindex(sys.argv[1])
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifi)
s.bind(("fe80::99", 0, 0, ifi))
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
pi = struct.pack("!BBBBIII", 3, 4, 64, 0xc0, 86400, 14400, 0) + socket.inet_pton(socket.AF_INET6, "2001:db8:1::")
for _ in range(3):
    s.sendto(ra + pi, ("ff02::1", 0, 0, ifi))
PY
	sleep 0.5
}

@test "no IPv6 on a VM's links: none on the TAP, uplink or host end, router advertisements ignored, the ruleset drops it anyway; IPv4 on the same path works" {
	require_cmd python3
	vm_up 1 '{"policy":"allow-all"}'
	local ns=vmsan-vm-7e570001 slot
	slot=$(jq .slot "$BATS_TEST_TMPDIR/s1.json")
	assert_eq "$(get 1 192.0.2.10 80)" "hello-from-192.0.2.10"
	for l in vmstap0 vmsnet0 lo; do
		assert_eq "$(nsx "$ns" cat /proc/sys/net/ipv6/conf/$l/disable_ipv6)" 1
		assert_eq "$(nsx "$ns" cat /proc/sys/net/ipv6/conf/$l/accept_ra)" 0
	done
	assert_eq "$(nsx "$H" cat /proc/sys/net/ipv6/conf/vmsh"$slot"/disable_ipv6)" 1
	assert_eq "$(nsx "$H" ip -6 -o addr show dev "vmsh$slot")" ""
	# The guest advertises itself as a router: nothing in the VM's namespace takes it.
	send_ra "vtg${NET_SFX}1" eth0
	assert_eq "$(nsx "$ns" ip -6 -o addr show)" ""
	assert_eq "$(nsx "$ns" ip -6 route show)" ""
	# IPv6 turned back on for the TAP (as a careless host could): the
	# ruleset still drops every IPv6 packet of the guest, the
	# advertisement and a ping alike...
	nsx "$ns" sh -c 'echo 0 >/proc/sys/net/ipv6/conf/vmstap0/disable_ipv6; echo 2 >/proc/sys/net/ipv6/conf/vmstap0/accept_ra'
	nsx "$ns" ip -6 addr add fd00::1/64 dev vmstap0 nodad
	nsx "vtg${NET_SFX}1" ip -6 addr add fd00::2/64 dev eth0 nodad
	send_ra "vtg${NET_SFX}1" eth0
	[[ $(nsx "$ns" ip -6 -o addr show dev vmstap0) != *2001:db8:1:* ]]
	[[ $(nsx "$ns" ip -6 route show) != *"default via"* ]]
	run nsx "vtg${NET_SFX}1" ping -6 -c 1 -W 1 fd00::1
	[ "$status" -ne 0 ]
	# ...and it is the ruleset: without its ip6 table the same
	# advertisement configures an address and a route, and the ping answers.
	nsx "$ns" nft delete table ip6 vmsan
	send_ra "vtg${NET_SFX}1" eth0
	assert_contains "$(nsx "$ns" ip -6 -o addr show dev vmstap0)" "2001:db8:1:"
	assert_contains "$(nsx "$ns" ip -6 route show)" "default via fe80::99"
	run nsx "vtg${NET_SFX}1" ping -6 -c 2 -W 1 fd00::1
	[ "$status" -eq 0 ]
}

@test "--no-netns: the TAP vmst<N> has no IPv6 and its table drops the guest's IPv6; IPv4 through it works" {
	require_cmd python3
	local g=vtg${NET_SFX}7 out tap gw guest table=vmsan_vm_7e57000c
	out=$(nsx "$H" "$LIBEXEC/vmsan-net" <<<'{"op":"setup","id":"vm-7e57000c","hostMode":true,"policy":{"policy":"allow-all"}}')
	tap=$(jq -r .tap <<<"$out") gw=$(jq -r .gatewayIp <<<"$out") guest=$(jq -r .guestIp <<<"$out")
	assert_eq "$(nsx "$H" cat "/proc/sys/net/ipv6/conf/$tap/disable_ipv6")" 1
	assert_eq "$(nsx "$H" cat "/proc/sys/net/ipv6/conf/$tap/accept_ra")" 0
	assert_eq "$(nsx "$H" ip -6 -o addr show dev "$tap")" ""
	ip netns add "$g"
	ip link add "vtgw${NET_SFX}7" type veth peer name "vtge${NET_SFX}7"
	ip link set "vtgw${NET_SFX}7" netns "$g"
	ip link set "vtge${NET_SFX}7" netns "$g"
	nsx "$g" sh -c "ip link set lo up && ip link set vtgw${NET_SFX}7 name wire && ip link set wire up &&
		ip link set vtge${NET_SFX}7 name eth0 && ip link set eth0 up &&
		ip addr add $guest/30 dev eth0 && ip route add default via $gw"
	"$PUMP" "$H" "$tap" "$g" wire >"$BATS_TEST_TMPDIR/pump7" 2>&1 &
	echo $! >"$BATS_TEST_TMPDIR/pump7.pid"
	sleep 0.3
	grep -q ready "$BATS_TEST_TMPDIR/pump7"
	assert_eq "$(tcp_get nsx "$g" nc -w 2 192.0.2.10 80 </dev/null)" "hello-from-192.0.2.10"
	send_ra "$g" eth0
	assert_eq "$(nsx "$H" ip -6 -o addr show dev "$tap")" ""
	[[ $(nsx "$H" ip -6 route show) != *"$tap"* ]]
	# IPv6 turned back on for the TAP: the VM's ip6 table still drops it
	nsx "$H" sh -c "echo 0 >/proc/sys/net/ipv6/conf/$tap/disable_ipv6"
	nsx "$H" ip -6 addr add fd00::1/64 dev "$tap" nodad
	nsx "$g" ip -6 addr add fd00::2/64 dev eth0 nodad
	run nsx "$g" ping -6 -c 1 -W 1 fd00::1
	[ "$status" -ne 0 ]
	nsx "$H" nft delete table ip6 "$table"
	run nsx "$g" ping -6 -c 2 -W 1 fd00::1
	[ "$status" -eq 0 ]
	kill "$(cat "$BATS_TEST_TMPDIR/pump7.pid")"
	ip netns del "$g"
	nsx "$H" "$LIBEXEC/vmsan-net" teardown <<<'{"id":"vm-7e57000c"}' >/dev/null
}

@test "a published port cannot take over a host service: a port something listens on is refused (exit 1, nothing made); root may publish below 1024" {
	# 2222: the test host's own service (net_helper.bash)
	run vm_up 1 '{"policy":"allow-all","publishedPorts":[{"hostPort":2222}]}'
	[ "$status" -ne 0 ]
	assert_eq "$(jq -r .error.code "$BATS_TEST_TMPDIR/s1.json")" ERR_PORT_IN_USE
	run nsx "$H" "$LIBEXEC/vmsan-net" verify <<<'{"id":"vm-7e570001"}'
	assert_eq "$(jq .clean <<<"$output")" true
	[ ! -e /run/vmsan/ids/vm-7e570001 ]
	[[ $(nsx "$H" nft list map ip vmsan pub) != *"2222 :"* ]]
	assert_eq "$(tcp_get nsx "$H" nc -w 2 127.0.0.1 2222 </dev/null)" "host-service"
	# the same through --no-netns
	run nsx "$H" "$LIBEXEC/vmsan-net" <<<'{"op":"setup","id":"vm-7e57000a","hostMode":true,"policy":{"policy":"allow-all","publishedPorts":[{"hostPort":2222}]}}'
	assert_eq "$status" 1
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_PORT_IN_USE
	[ ! -e /run/vmsan/net/vm-7e57000a.json ]
	# the controls: a free port, and root below 1024
	vm_up 1 '{"policy":"deny-all","publishedPorts":[{"hostPort":81,"guestPort":80}]}'
	in_guest 1 socat -t "$ANSWER_WAIT" TCP4-LISTEN:80,reuseaddr,fork SYSTEM:'echo published' &
	sleep 0.2
	assert_eq "$(tcp_get nsx "$I" nc -w 2 203.0.113.1 81 </dev/null)" "published"
}

# The fixture itself: create.bats' guests read nothing now and then from
# a service here that answered late (see ANSWER_WAIT in net_helper.bash).
@test "the fake internet answers a client that half-closes at once (busybox nc, stdin at EOF) however late its answer comes" {
	require_cmd busybox
	vm_up 1 '{"policy":"allow-all","dnsResolvers":["192.0.2.53"]}'
	net_serve "$I" 8181,bind=192.0.2.10 "sleep 1.2; echo late"
	# control: socat's default wait after the client's half-close (0.5 s)
	nsd "$I" socat TCP4-LISTEN:8182,bind=192.0.2.10,reuseaddr,fork "SYSTEM:sleep 1.2; echo late"
	sleep 0.3
	run in_guest 1 busybox nc -w 3 192.0.2.10 8182 </dev/null
	assert_eq "$status" 0
	assert_eq "$output" ""
	run in_guest 1 busybox nc -w 3 192.0.2.10 8181 </dev/null
	assert_eq "$status" 0
	assert_eq "$output" late
}
