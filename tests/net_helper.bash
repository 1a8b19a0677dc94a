# A host and a fake internet, in namespaces this suite creates and removes.
# Nothing here sends a packet off the machine: the "internet" is a
# namespace behind the test host's default route, with listeners on
# documentation addresses (RFC 5737) that exist only inside it.
#
#   host  (H): eth0 203.0.113.1/24, default via 203.0.113.254; vmsan-net runs here
#   inet  (I): eth0 203.0.113.254/24; on lo: 192.0.2.10 (web), 192.0.2.20 (other),
#              192.0.2.53 (DNS: dnsmasq), 192.0.2.54 (a second, "rogue" DNS)
#   guest (G): eth0 172.16.0.2/30 via 172.16.0.1, attached to the VM's TAP by tap-pump

PUMP=$TOP/tests/tools/tap-pump

kill_ns_pids() { ip netns pids "$1" 2>/dev/null | xargs -r kill 2>/dev/null || true; }

# vm_down N: stop VM N's pump and guest, tear its network down.
vm_down() {
	local n=$1
	[ ! -f "$BATS_TEST_TMPDIR/pump$n.pid" ] || kill "$(cat "$BATS_TEST_TMPDIR/pump$n.pid")" 2>/dev/null || true
	kill_ns_pids "vmsan-vm-7e57000$n"
	if [ -e "/run/netns/vtg${NET_SFX}$n" ]; then
		kill_ns_pids "vtg${NET_SFX}$n"
		ip netns del "vtg${NET_SFX}$n"
	fi
	echo "{\"op\":\"teardown\",\"id\":\"vm-7e57000$n\"}" | nsx "$H" "$LIBEXEC/vmsan-net" >/dev/null
	# the id's claim (claim.h) outlives its network: vmsan rm releases it
	rm -f "/run/vmsan/ids/vm-7e57000$n"
}

# nsx NS CMD...: run in a namespace, for at most 5 s.
nsx() { local ns=$1; shift; timeout 5 nsenter --net="/run/netns/$ns" "$@"; }
# nsd NS CMD...: a daemon in a namespace, for the whole suite.
nsd() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@" </dev/null >/dev/null 2>&1 & }

# ANSWER_WAIT: socat's -t for every service that answers a connection
# with a command's output (net_serve, and the guests' own listeners).  A
# client whose stdin is at EOF (each `nc` a test runs without input, in
# a guest or a namespace) half-closes as soon as it connects; socat then
# gives the command 0.5 s (its default -t) to answer and closes without
# it, and the client prints nothing and exits 0.  A host stalled that
# long (a VM's hypervisor, a loaded machine) made create.bats read an
# empty answer now and then, and no rule of the product was involved: a
# dropped packet makes nc say "timed out".  30 s costs nothing: socat
# ends when the command does.
ANSWER_WAIT=30
# net_serve NS LISTEN-OPTS CMD: a TCP service in NS for the whole suite,
# answering each connection with CMD's output (LISTEN-OPTS: PORT[,bind=A]).
net_serve() { nsd "$1" socat -t "$ANSWER_WAIT" "TCP4-LISTEN:$2,reuseaddr,fork" "SYSTEM:$3"; }

net_fixture_up() {
	export NET_SFX=$$
	export H=vth$NET_SFX I=vti$NET_SFX
	ip netns add "$H"
	ip netns add "$I"
	ip link add "vtH$NET_SFX" type veth peer name "vtI$NET_SFX"
	ip link set "vtH$NET_SFX" netns "$H"
	ip link set "vtI$NET_SFX" netns "$I"
	nsx "$H" ip link set "vtH$NET_SFX" name eth0
	nsx "$I" ip link set "vtI$NET_SFX" name eth0
	nsx "$H" sh -c 'ip link set lo up && ip link set eth0 up &&
		ip addr add 203.0.113.1/24 dev eth0 && ip route add default via 203.0.113.254'
	# shellcheck disable=SC2016 # $a belongs to the inner shell
	nsx "$I" sh -c 'ip link set lo up && ip link set eth0 up &&
		ip addr add 203.0.113.254/24 dev eth0 &&
		for a in 192.0.2.10 192.0.2.20 192.0.2.53 192.0.2.54; do ip addr add $a/32 dev lo; done'
	local d=$BATS_FILE_TMPDIR
	for a in 192.0.2.10 192.0.2.20; do
		net_serve "$I" "80,bind=$a" "echo hello-from-$a"
		net_serve "$I" "853,bind=$a" "echo dot-$a"
		nsd "$I" socat "UDP4-RECVFROM:5000,bind=$a,fork" "SYSTEM:echo udp-$a"
	done
	# The test host's own service: guests must never reach it.
	net_serve "$H" 2222 "echo host-service"
	for a in 192.0.2.53 192.0.2.54; do
		nsd "$I" dnsmasq --no-resolv --no-hosts --no-daemon --bind-interfaces \
			--listen-address="$a" --interface=lo --pid-file= --user=root \
			--address=/example.test/192.0.2.10 --log-facility="$d/dns-$a.log"
	done
	sleep 0.3
}

net_fixture_down() {
	local ns
	for ns in $(ip netns list | awk '{print $1}' | grep -E "^(vtg$NET_SFX|vmsan-vm-7e57)" || true); do
		kill_ns_pids "$ns"
	done
	for ns in "$H" "$I"; do
		kill_ns_pids "$ns"
	done
	sleep 0.1
	for f in /run/vmsan/net/vm-7e57*.json; do
		[ -e "$f" ] || continue
		id=${f##*/}
		id=${id%.json}
		echo "{\"op\":\"teardown\",\"id\":\"$id\"}" | nsx "$H" "$LIBEXEC/vmsan-net" >/dev/null || true
	done
	rm -f /run/vmsan/ids/vm-7e57*
	for ns in $(ip netns list | awk '{print $1}' | grep -E "^vtg$NET_SFX" || true); do
		ip netns del "$ns"
	done
	ip netns del "$H" 2>/dev/null || true
	ip netns del "$I" 2>/dev/null || true
}

# vm_up N POLICY-JSON [PORTS-JSON]: network for VM vm-7e57000N with that
# policy, and a guest namespace vtg<sfx>N attached to its TAP.  With
# VM_DNS set (a JSON object), or VM_DNS_FILE naming a file holding one, setup
# gets it as "dns" (allowed domains).
vm_up() {
	local n=$1 policy=$2 ports=${3:-[]} id=vm-7e57000$1 g=vtg${NET_SFX}$1
	local dnsf=${VM_DNS_FILE:-$BATS_TEST_TMPDIR/dns-req$n.json}
	[ -n "${VM_DNS_FILE:-}" ] || printf '%s\n' "${VM_DNS:-null}" >"$dnsf"
	echo "$policy" | "$LIBEXEC/vmsan-nftables" compile >"$BATS_TEST_TMPDIR/c$n.json" || return 1
	jq -c --arg id "$id" --argjson p "$ports" --slurpfile dns "$dnsf" \
		'{op:"setup", id:$id, ruleset:.ruleset, publishedPorts:[.publishedPorts[][0]]}
		 + (if $dns[0] then {dns:$dns[0]} else {} end)' \
		"$BATS_TEST_TMPDIR/c$n.json" | nsx "$H" "$LIBEXEC/vmsan-net" >"$BATS_TEST_TMPDIR/s$n.json" ||
		{ cat "$BATS_TEST_TMPDIR/s$n.json" >&2; return 1; }
	ip netns add "$g"
	ip link add "vtgw$NET_SFX$n" type veth peer name "vtge$NET_SFX$n"
	ip link set "vtgw$NET_SFX$n" netns "$g"
	ip link set "vtge$NET_SFX$n" netns "$g"
	nsx "$g" sh -c "ip link set lo up && ip link set vtgw$NET_SFX$n name wire && ip link set wire up &&
		ip link set vtge$NET_SFX$n name eth0 && ip link set eth0 up &&
		ip addr add 172.16.0.2/30 dev eth0 && ip route add default via 172.16.0.1"
	"$PUMP" "vmsan-$id" vmstap0 "$g" wire >"$BATS_TEST_TMPDIR/pump$n" 2>&1 &
	# After setns the pump lives in the VM's namespace, not the guest's:
	# it is stopped by pid.
	echo $! >"$BATS_TEST_TMPDIR/pump$n.pid"
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		grep -q ready "$BATS_TEST_TMPDIR/pump$n" && return 0
		sleep 0.05
	done
	cat "$BATS_TEST_TMPDIR/pump$n" >&2
	return 1
}

# in_guest N CMD...: run in VM N's guest namespace.
in_guest() { local n=$1; shift; nsx "vtg${NET_SFX}$n" "$@"; }

# tcp_get CMD...: what it printed, or nothing if it failed.
tcp_get() { "$@" 2>/dev/null || true; }

# dns_query SERVER: an A query for example.test over UDP; prints the
# answer's last four bytes (the address) in hex, if an answer came.
dns_query_bytes() {
	printf '\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x04test\x00\x00\x01\x00\x01'
}

# vm_net_diag ID [VMSAN...]: what a failed reachability check needs to be
# explained, on stderr: the VM namespace's rules (with the resolver's set
# elements), routes, neighbours and connection tracking, root's record of
# the VM's network, the host side's routes, and the guest's own view (run
# with the vmsan command given, default `vmsan`).  Called by teardowns
# when a test failed, so a failure that does not come again still says
# why it happened.
vm_net_diag() {
	local id=$1 ns=/run/netns/vmsan-$1
	shift
	[ $# -gt 0 ] || set -- vmsan
	{
		echo "--- network of $id at $(date +%T.%N)"
		if [ -e "$ns" ]; then
			timeout 5 nsenter --net="$ns" sh -c 'nft list ruleset; ip -br addr; ip route; ip neigh;
				grep -v "dport=9119 " /proc/net/nf_conntrack 2>/dev/null | head -30' 2>&1
		else
			echo "(no namespace $ns)"
		fi
		cat "/run/vmsan/net/$id.json" 2>&1
		echo
		[ -z "${H:-}" ] || nsx "$H" sh -c 'ip route; ip neigh' 2>&1
		echo "--- the guest's view"
		timeout 20 "$@" exec "$id" -- sh -c 'ip route; cat /etc/resolv.conf; cat /proc/net/arp;
			nc -w 3 192.0.2.10 80; echo "nc: $?"' 2>&1
	} >&2
}
