#!/usr/bin/env bats
# A real guest, root inside its VM, attacks the network around it: IPv6
# and router advertisements, the cloud metadata address, a spoofed source
# address.  Each attack has a control through the same guest and link
# showing the path works for what the policy allows.  The fake hostile
# agent's attacks on the host client: attack-guest.bats.

bats_require_minimum_version 1.5.0
load test_helper
load net_helper
load init_helper

setup_file() {
	guest_suite_start || return 0
	# a metadata service on the fake internet, where clouds put one
	nsx "$I" ip addr add 169.254.169.254/32 dev lo
	net_serve "$I" 80,bind=169.254.169.254 "echo metadata-secret"
}

teardown_file() { guest_suite_down; }

setup() { guest_test_setup; }

teardown() { guest_test_teardown; }

create() {
	local out
	out=$(vmsan create --json "$@") || { echo "$out" >&2; return 1; }
	ID=$(jq -r .vm.id <<<"$out")
}

# rx_packets NS: packets received on vmstap0 in namespace NS.
rx_packets() { ip -n "$1" -s -j link show vmstap0 | jq -e '.[0].stats64.rx.packets'; }

# snmp6 NS COUNTER: an IPv6 counter of namespace NS.
# shellcheck disable=SC2016 # awk's fields
snmp6() { nsenter --net="/run/netns/$1" awk -v k="$2" '$1 == k {print $2}' /proc/net/snmp6; }

# g CMD: a shell command as root in the guest.
g() { vmsan exec "$ID" -- sh -c "$1"; }

@test "guest as root: the metadata address is unreachable under allow-all; spoofed sources go nowhere" {
	create --runtime base --network-policy allow-all
	# control: allow-all reaches the fake internet
	run g 'nc -w 3 192.0.2.10 80'
	assert_eq "$output" hello-from-192.0.2.10
	# 169.254.169.254: dropped (a policy must name it to reach it)
	run g 'nc -w 3 169.254.169.254 80'
	[[ $output != *metadata-secret* ]]
	# a source address that is not the guest's (a route that prefers it):
	# never forwarded
	run g 'ip addr add 10.66.0.2/32 dev eth0 &&
		ip route add 192.0.2.10/32 via 172.16.0.1 dev eth0 src 10.66.0.2 &&
		nc -w 3 192.0.2.10 80; ip route del 192.0.2.10/32; ip addr del 10.66.0.2/32 dev eth0'
	[[ $output != *hello* ]]
	# control: with the route gone, the same command from the guest's own
	# address gets through
	run g 'nc -w 3 192.0.2.10 80'
	assert_eq "$output" hello-from-192.0.2.10
	# and a policy that names the metadata address reaches it
	run vmsan network "$ID" --network-policy custom --allowed-cidr 169.254.169.254/32
	assert_eq "$status" 0
	run g 'nc -w 3 169.254.169.254 80'
	assert_eq "$output" metadata-secret
}

@test "guest as root: IPv6 (all-nodes pings, a router's address, its own addresses) reaches nothing on the host side" {
	create --runtime base --network-policy allow-all
	local ns=vmsan-$ID rx0 rx1 in0 in1 dr0 dr1
	# the host side of the VM's link has no IPv6 at all
	assert_eq "$(nsenter --net="/run/netns/$ns" cat /proc/sys/net/ipv6/conf/vmstap0/disable_ipv6)" 1
	assert_eq "$(nsenter --net="/run/netns/$ns" ip -6 addr show dev vmstap0)" ""
	rx0=$(rx_packets "$ns")
	in0=$(snmp6 "$ns" Ip6InReceives)
	dr0=$(snmp6 "$ns" Ip6InDiscards)
	# the guest turns IPv6 on, takes addresses, and sends: to all nodes,
	# to all routers, and as a would-be router (fe80::1)
	# (the guest answers its own multicast pings: those replies are dropped
	# from what is checked, any other would have come from the host side)
	# shellcheck disable=SC2016 # the guest's shell expands it
	run g 'sysctl -qw net.ipv6.conf.eth0.disable_ipv6=0; ip -6 addr add fe80::1/64 dev eth0;
		ip -6 addr add fd00::2/64 dev eth0; sleep 1;
		{ ping6 -c 3 -W 1 -I eth0 ff02::1; ping6 -c 3 -W 1 -I eth0 ff02::2; ping6 -c 2 -W 1 fd00::1; } >/tmp/p 2>&1
		for a in $(ip -6 addr show dev eth0 | sed -n "s/.*inet6 \([^/]*\).*/\1/p"); do
			sed -i "/from $a[:%]/d" /tmp/p; done
		grep "bytes from" /tmp/p; true'
	assert_eq "$output" ""
	rx1=$(rx_packets "$ns")
	in1=$(snmp6 "$ns" Ip6InReceives)
	dr1=$(snmp6 "$ns" Ip6InDiscards)
	# control: the guest's packets did arrive on the TAP (some pings may
	# fail to leave while an address is still tentative: the counters
	# say what did)...
	[ "$rx1" -gt "$((rx0 + 5))" ]
	# ...and every IPv6 one was discarded as it came in (IPv6 is off on
	# the link: the kernel counts it received, then drops it)
	[ "$((in1 - in0))" -gt 0 ]
	assert_eq "$((dr1 - dr0))" "$((in1 - in0))"
	assert_eq "$(nsenter --net="/run/netns/$ns" ip -6 neigh show)" ""
	assert_eq "$(nsenter --net="/run/netns/$ns" ip -6 route show | grep -v '^$' || true)" ""
	# and IPv4 through the same link still works
	run g 'nc -w 3 192.0.2.10 80'
	assert_eq "$output" hello-from-192.0.2.10
}
