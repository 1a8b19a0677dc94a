#!/usr/bin/env bats
# vmsan-nftables: the policy compiler.  Golden outputs, nft(8) accepting
# what it renders, the semantics in the rule list, and bad input.
load test_helper

compile() { "$LIBEXEC/vmsan-nftables" compile "$@"; }

@test "golden: compiled rulesets are exactly as reviewed" {
	# custom-host: --no-netns, the table vmsan-net builds for the host
	for g in custom deny-all custom-host domains domains-strict; do
		diff -u "$TOP/tests/golden/$g.nft" <(compile --format nft <"$TOP/tests/golden/$g.json")
	done
	diff -u "$TOP/tests/golden/host.nft" <("$LIBEXEC/vmsan-nftables" host --format nft </dev/null)
}

@test "nft(8) accepts the rendered text, and the JSON applies to the same rules" {
	require_root
	require_cmd nft
	for g in custom deny-all custom-host domains domains-strict; do
		unshare -n nft -c -f "$TOP/tests/golden/$g.nft"
	done
	unshare -n nft -c -f "$TOP/tests/golden/host.nft"
}

@test "--no-netns rules: every verdict scoped to the VM's TAP, the chain's policy accept, a final drop" {
	all=$(compile --format nft <"$TOP/tests/golden/custom-host.json")
	rules=$(sed '/^table ip6 /,$d' <<<"$all")
	assert_contains "$rules" "table ip vmsan_vm_1a2b3c4d {"
	assert_contains "$rules" "type filter hook forward priority 0; policy accept;"
	[ -z "$(grep -E ' (accept|drop)$' <<<"$all" | grep -vE '^\s*(iif|oif)name "vmst7"' || true)" ]
	[ "$(grep -E ' (accept|drop)$' <<<"$rules" | tail -1 | tr -d '\t')" = 'iifname "vmst7" drop' ]
	# IPv6 from and to the TAP: dropped, in a table of its own (the host's chains accept)
	v6=$(sed -n '/^table ip6 vmsan_vm_1a2b3c4d {/,$p' <<<"$all")
	assert_contains "$v6" $'hook input priority 0; policy accept;\n\t\tiifname "vmst7" drop'
	assert_contains "$v6" $'iifname "vmst7" drop\n\t\toifname "vmst7" drop'
	# in a VM's namespace, every IPv6 chain drops
	v6=$(compile --format nft <<<'{"policy":"allow-all"}' | sed -n '/^table ip6 vmsan {/,$p')
	[ "$(grep -c 'policy drop;' <<<"$v6")" -eq 3 ]
	[ -z "$(grep -E ' accept$' <<<"$v6" || true)" ]
	assert_contains "$rules" 'ip saddr != 198.18.0.30/32 drop'
	# no agent DNAT, no masquerade, no input chain: the host table has those
	[[ $rules != *9119* && $rules != *masquerade* && $rules != *"hook input"* ]]
	run compile <<<'{"policy":"allow-all","hostMode":{"id":"../x","slot":1}}'
	assert_eq "$status" 100
	run compile <<<'{"policy":"allow-all","hostMode":{"id":"vm-1a2b3c4d","slot":32768}}'
	assert_eq "$status" 100
}

@test "policy semantics: promotion to custom, denied before allowed, DNS only for resolvers" {
	run compile <<<'{"policy":"allow-all","allowedCidrs":["10.0.0.0/8"]}'
	[ "$(echo "$output" | jq -r .policy)" = custom ]
	run compile <<<'{"policy":"custom"}'
	[ "$(echo "$output" | jq -r .policy)" = custom ]
	rules=$(compile --format nft <<<'{"policy":"custom","allowedCidrs":["10.0.0.0/8"],"deniedCidrs":["10.1.0.0/16"]}')
	deny=$(echo "$rules" | grep -n 'ip daddr 10.1.0.0/16 drop' | cut -d: -f1)
	allow=$(echo "$rules" | grep -n 'ip daddr 10.0.0.0/8 accept' | cut -d: -f1)
	[ "$deny" -lt "$allow" ]
	# No blanket accept before the policy: every accept in forward is scoped.
	echo "$rules" | sed -n '/chain forward/,/}/p' | grep -n 'accept' | head -3 | grep -q 'vmsnet0'
	# deny-all: no DNS accept at all.
	run compile --format nft <<<'{"policy":"deny-all","dnsResolvers":["192.0.2.53"]}'
	run ! grep -q "dport 53 accept" <<<"$output"
}

@test "bad policies are refused with a clear error and exit 100" {
	while IFS='|' read -r req msg; do
		run --separate-stderr compile <<<"$req"
		[ "$status" -eq 100 ] || { echo "status $status for $req"; false; }
		assert_contains "$(echo "$output" | jq -r .error.message)" "$msg"
	done <<'CASES'
{"policy":"allow-all","allowedCidrs":["10.0.0.0/33"]}|prefix length 33 is more than 32
{"policy":"allow-all","deniedCidrs":["300.1.1.1/8"]}|is not an IPv4 CIDR
{"policy":"allow-all","allowedCidrs":["::/0"]}|is not an IPv4 CIDR
{"policy":"allow-all","allowedCidrs":["10.0.0.1/8"]}|did you mean 10.0.0.0/8
{"policy":"allow-all","publishedPorts":[{"hostPort":0}]}|out of range
{"policy":"allow-all","publishedPorts":[{"hostPort":70000}]}|out of range
{"policy":"allow-all","publishedPorts":[{"hostPort":10053}]}|reserved for vmsan
{"policy":"allow-all","publishedPorts":[{"hostPort":10500}]}|reserved for vmsan
{"policy":"allow-all","publishedPorts":[{"hostPort":8080},{"hostPort":8080}]}|published twice
{"policy":"allow-all","agentPort":9119,"publishedPorts":[{"hostPort":9119}]}|reserved for vmsan
{"policy":"allow-al"}|'allow-al' is not a policy
{"policy":"deny-all","allowedCidrs":["10.0.0.0/8"]}|deny-all cannot be combined
{"policy":"allow-all","dnsResolvers":["8.8.8"]}|is not an IPv4 address
{"policy":"allow-all","colour":"red"}|unknown field 'colour'
{"policy":"custom","allowedDomains":["*."],"dnsResolvers":["192.0.2.53"]}|'*.' needs a domain after it
{"policy":"custom","allowedDomains":["a..b"],"dnsResolvers":["192.0.2.53"]}|has an empty label
{"policy":"custom","allowedDomains":["*foo.com"],"dnsResolvers":["192.0.2.53"]}|a wildcard is only allowed as a leading '*.'
{"policy":"custom","allowedDomains":["a.*.com"],"dnsResolvers":["192.0.2.53"]}|a wildcard is only allowed as a leading '*.'
{"policy":"custom","allowedDomains":["x_y.com"],"dnsResolvers":["192.0.2.53"]}|may contain only letters, digits
{"policy":"deny-all","allowedDomains":["example.com"],"dnsResolvers":["192.0.2.53"]}|deny-all cannot be combined
{"policy":"custom","allowedDomains":["example.com"]}|at least one upstream resolver
{"policy":"custom","allowedDomains":["example.com"],"dnsResolvers":["192.0.2.53"],"hostMode":{"id":"vm-1a2b3c4d","slot":3}}|need the VM's own network namespace
{"policy":"custom","strictDomains":true,"dnsResolvers":["192.0.2.53"]}|strictDomains checks connections to allowed domains: there are none
{"policy":"custom","allowedDomains":["example.com"],"strictDomains":1,"dnsResolvers":["192.0.2.53"]}|strictDomains
CASES
	# 300 characters, and one label of 64
	long=$(printf 'a%.0s' $(seq 1 60)); long="$long.$long.$long.$long.$long.com"
	run compile <<<"{\"policy\":\"custom\",\"allowedDomains\":[\"$long\"],\"dnsResolvers\":[\"192.0.2.53\"]}"
	assert_eq "$status" 100
	assert_contains "$output" "longer than 253 characters"
	run compile <<<"{\"policy\":\"custom\",\"allowedDomains\":[\"$(printf 'b%.0s' $(seq 1 64)).com\"],\"dnsResolvers\":[\"192.0.2.53\"]}"
	assert_eq "$status" 100
	assert_contains "$output" "label longer than 63"
}

@test "allowed domains: all guest DNS to the resolver, the set after denied CIDRs, no DNS forwarded; allow-all becomes custom" {
	rules=$(compile --format nft <<<'{"policy":"allow-all","allowedDomains":["example.com"],"dnsResolvers":["192.0.2.53"],"deniedCidrs":["10.9.0.0/16"]}')
	run compile <<<'{"policy":"allow-all","allowedDomains":["Example.COM."],"dnsResolvers":["192.0.2.53"]}'
	assert_eq "$(jq -r .policy <<<"$output")" custom
	fwd=$(sed -n '/chain forward/,/}/p' <<<"$rules")
	# no DNS to any address is forwarded: it is DNATed to the resolver
	[[ $fwd != *"dport 53 accept"* ]]
	assert_contains "$rules" 'iifname "vmstap0" meta l4proto udp th dport 53 dnat to 172.16.0.1:53'
	assert_contains "$rules" 'iifname "vmstap0" meta l4proto tcp th dport 53 dnat to 172.16.0.1:53'
	deny=$(grep -n 'ip daddr 10.9.0.0/16 drop' <<<"$fwd" | cut -d: -f1)
	allow=$(grep -n 'ip daddr @dns_allow accept' <<<"$fwd" | cut -d: -f1)
	[ -n "$deny" ] && [ -n "$allow" ] && [ "$deny" -lt "$allow" ]
	# the set is the last accept: nothing else is let through
	[ "$(grep -c ' accept$' <<<"$(sed -n "${allow},\$p" <<<"$fwd")")" = 1 ]
	# without domains: no set, no DNAT of DNS
	rules=$(compile --format nft <<<'{"policy":"allow-all","dnsResolvers":["192.0.2.53"]}')
	[[ $rules != *dns_allow* && $rules != *"dnat to 172.16.0.1:53"* ]]
}

@test "ports just outside the reserved ranges are accepted" {
	for p in 10052 10335 10442 10698 8080; do
		run compile <<<"{\"policy\":\"allow-all\",\"publishedPorts\":[{\"hostPort\":$p}]}"
		[ "$status" -eq 0 ] || { echo "port $p: $output"; false; }
	done
}

@test "link-local 169.254.0.0/16 (cloud metadata): dropped unless an allowed CIDR inside it names it; denied still wins" {
	for p in '{"policy":"allow-all"}' '{"policy":"custom"}' '{"policy":"custom","allowedCidrs":["0.0.0.0/0"]}' \
		'{"policy":"custom","allowedCidrs":["169.0.0.0/8"]}' '{"policy":"deny-all"}' \
		'{"policy":"allow-all","hostMode":{"id":"vm-1a2b3c4d","slot":7}}'; do
		rules=$(compile --format nft <<<"$p")
		assert_contains "$rules" "ip daddr 169.254.0.0/16 drop"
		# nothing accepts before that drop but the chain's own first rules
		before=$(sed -n '/chain forward/,/169.254.0.0\/16 drop/p' <<<"$rules" | grep -E ' accept$' |
			grep -vE 'ct state established,related accept|ct status dnat accept|ct direction reply accept|icmp ct state related accept|dport 53 accept' || true)
		[ -z "$before" ] || { echo "$p: $before"; false; }
	done
	rules=$(compile --format nft <<<'{"policy":"custom","allowedCidrs":["169.254.169.254/32","10.0.0.0/8"]}')
	meta=$(grep -n 'ip daddr 169.254.169.254/32 accept' <<<"$rules" | cut -d: -f1)
	ll=$(grep -n 'ip daddr 169.254.0.0/16 drop' <<<"$rules" | cut -d: -f1)
	[ -n "$meta" ] && [ "$meta" -lt "$ll" ]
	[ "$(grep -c '169.254.169.254/32 accept' <<<"$rules")" -eq 1 ]
	# denied wins over an allowed link-local CIDR
	rules=$(compile --format nft <<<'{"policy":"custom","allowedCidrs":["169.254.0.0/16"],"deniedCidrs":["169.254.169.254/32"]}')
	deny=$(grep -n 'ip daddr 169.254.169.254/32 drop' <<<"$rules" | cut -d: -f1)
	allow=$(grep -n 'ip daddr 169.254.0.0/16 accept' <<<"$rules" | cut -d: -f1)
	[ "$deny" -lt "$allow" ]
}
