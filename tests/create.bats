#!/usr/bin/env bats
# vmsan create / start / stop / rm / run / gc end to end: real guests under
# QEMU (microvm, TCG here), real namespaces, rules and packets.  vmsan runs
# in a test "host" namespace whose default route leads to a fake internet
# (net_helper.bash): nothing leaves the machine, and the guests' resolver
# is the fake internet's dnsmasq.

bats_require_minimum_version 1.5.0
load test_helper
load net_helper
load init_helper

setup_file() {
	guest_suite_start || return 0
}

# whatever a failed test left: VMs in this state dir, then the fixture
teardown_file() { guest_suite_down; }

setup() { guest_test_setup; }

# A failed test's VM goes with it, so the next test starts clean; what
# its network looked like goes to the test's output first.
teardown() {
	if [ -z "${BATS_TEST_COMPLETED:-}" ]; then
		[ -z "${ID:-}" ] || vm_net_diag "$ID"
		[ -z "${UID_ID:-}" ] || vm_net_diag "$UID_ID" as_user "$(cut -d' ' -f4 <<<"$USER_TEST")"
	fi
	[ -z "${ID:-}" ] || vmsan rm -f "$ID" >/dev/null 2>&1 || true
	if [ -n "${USER_TEST:-}" ]; then
		# shellcheck disable=SC2086
		set -- $USER_TEST    # prefix sudoers group user other
		[ -z "${UID_ID:-}" ] || as_user "$4" rm -f "$UID_ID" >/dev/null 2>&1 || true
		"$TOP/install.sh" --uninstall --prefix "$1" --sudoers "$2" --group "$3" >/dev/null 2>&1 || true
		userdel -r "$4" 2>/dev/null || true
		userdel -r "$5" 2>/dev/null || true
		groupdel "$3" 2>/dev/null || true
		rm -rf "$1" "$2"
	fi
	[ -z "${REG_PID:-}" ] || { kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null || true; }
	rm -rf "$TEST_TMP"
}

# as_user USER ARGS...: the installed vmsan (prefix $UPREFIX) run as USER,
# with a clean environment, in the test host namespace.
as_user() {
	local u=$1
	shift
	nsenter --net="/run/netns/$H" setpriv --reuid="$u" --regid="$u" --init-groups \
		env -i HOME="/home/$u" PATH=/usr/bin:/bin VMSAN_DNS=192.0.2.53 "$UPREFIX/bin/vmsan" "$@"
}

# create ARGS...: a VM; its id in $ID.
create() {
	local out
	out=$(vmsan create --json "$@") || { echo "$out" >&2; return 1; }
	ID=$(jq -r .vm.id <<<"$out")
	echo "$out" >"$TEST_TMP/create.json"
}

# Nothing of VM $1 is left: record, files, token, namespace, runtime
# record, VMM process.
assert_gone() {
	local id=$1
	[ ! -e "$VMSAN_DIR/vms/$id.json" ] || { echo "record left" >&2; return 1; }
	[ ! -e "$VMSAN_DIR/vms/$id" ] || { echo "VM dir left" >&2; return 1; }
	[ ! -e "$VMSAN_DIR/vms/$id.token" ] || { echo "token left" >&2; return 1; }
	[ ! -e "/run/netns/vmsan-$id" ] || { echo "netns left" >&2; return 1; }
	[ ! -e "/run/vmsan/net/$id.json" ] || { echo "net record left" >&2; return 1; }
	[ -z "$(pgrep -f "process=vmsan-$id" || true)" ] || { echo "VMM left" >&2; return 1; }
	local out
	out=$(echo "{\"id\":\"$id\"}" | nsx "$H" "$TOP/libexec/vmsan-net" verify)
	assert_eq "$(jq .clean <<<"$out")" true
}

@test "create: a base VM answers exec in its own namespace; egress allowed, host unreachable; files; stop, start (same disk), rm leaves nothing" {
	create --runtime base
	jq -e '.vm.status == "running" and .vm.network.netns == "vmsan-" + .vm.id' "$TEST_TMP/create.json"
	# the breakdown names every step
	for k in recordMs imageMs diskMs policyMs networkMs vmmStartMs bootMs totalMs controlPlaneMs; do
		jq -e ".timing.$k > 0" "$TEST_TMP/create.json" >/dev/null || { echo "no $k" >&2; false; }
	done
	run vmsan exec "$ID" -- hostname
	assert_eq "$output" "$ID"
	# entropy from the host: the kernel's hardware RNG is virtio-rng, and reads
	run vmsan exec "$ID" -- cat /sys/class/misc/hw_random/rng_current
	assert_eq "$output" virtio_rng.0
	run vmsan exec "$ID" -- sh -c 'head -c 64 /dev/hwrng | wc -c'
	assert_eq "$output" 64
	# the fake internet, by address and by name through the resolver
	run vmsan exec "$ID" -- nc -w 3 192.0.2.10 80
	assert_eq "$output" hello-from-192.0.2.10
	run vmsan exec "$ID" -- nslookup example.test
	assert_contains "$output" 192.0.2.10
	# the host's own service is not reachable from the guest
	run vmsan exec "$ID" -- nc -w 2 203.0.113.1 2222
	[[ $output != *host-service* ]]
	# files both ways
	head -c 3000000 /dev/urandom >"$TEST_TMP/blob"
	vmsan upload "$ID" "$TEST_TMP/blob" --dest /root
	vmsan download "$ID" /root/blob --dest "$TEST_TMP/back"
	assert_eq "$(sha256sum <"$TEST_TMP/back")" "$(sha256sum <"$TEST_TMP/blob")"
	# stop: the guest powers off, the network goes, the disk stays
	run vmsan stop "$ID" --json
	assert_eq "$status" 0
	assert_eq "$(jq -r .status <<<"$output")" stopped
	[ ! -e "/run/netns/vmsan-$ID" ]
	[ -z "$(pgrep -f "process=vmsan-$ID" || true)" ]
	assert_eq "$(vmsan list --json | jq -r --arg id "$ID" '.[] | select(.id == $id) | .status')" stopped
	# start: the same disk
	run vmsan start "$ID" --json
	assert_eq "$status" 0
	run vmsan exec "$ID" -- sha256sum /root/blob
	assert_contains "$output" "$(sha256sum <"$TEST_TMP/blob" | cut -d' ' -f1)"
	# rm refuses a running VM, rm -f removes everything
	run vmsan rm "$ID"
	assert_eq "$status" 1
	assert_contains "$output" "use rm -f"
	run vmsan rm -f "$ID" --json
	assert_eq "$status" 0
	assert_eq "$(jq -c .removed <<<"$output")" "[\"$ID\"]"
	assert_gone "$ID"
}

@test "create: deny-all reaches nothing, yet its published port answers from outside the host" {
	create --network-policy deny-all --publish-port 8080:80
	vmsan exec "$ID" --detach -- nc -ll -p 80 -e echo hello-from-guest >/dev/null
	run vmsan exec "$ID" -- nc -w 2 192.0.2.10 80
	[[ $output != *hello-from* ]]
	run vmsan exec "$ID" -- nslookup example.test
	[[ $output != *192.0.2.10* ]]
	# from the fake internet, through the test host's address
	local got=""
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		got=$(nsx "$I" nc -w 2 203.0.113.1 8080 </dev/null || true)
		[ -n "$got" ] && break
		sleep 0.2
	done
	assert_eq "$got" hello-from-guest
	# a second VM cannot publish the same port: a clear error, nothing left
	local before
	before=$(ls "$VMSAN_DIR/vms")
	run --separate-stderr vmsan create --json --publish-port 8080
	assert_eq "$status" 1
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_PORT_CONFLICT
	assert_eq "$(ls "$VMSAN_DIR/vms")" "$before"
	vmsan rm -f "$ID" >/dev/null
	assert_gone "$ID"
}

@test "network: a running VM's policy changes live; bad input changes nothing; a stopped VM is refused" {
	create --runtime base
	run vmsan exec "$ID" -- nc -w 3 192.0.2.10 80
	assert_eq "$output" hello-from-192.0.2.10
	run vmsan network "$ID" --network-policy custom --allowed-cidr 192.0.2.20/32 --json
	assert_eq "$status" 0
	assert_eq "$(jq -c '[.previousPolicy, .newPolicy, .allowedCidrs]' <<<"$output")" '["allow-all","custom",["192.0.2.20/32"]]'
	assert_eq "$(jq -r .network.policy "$VMSAN_DIR/vms/$ID.json")" custom
	run vmsan exec "$ID" -- nc -w 2 192.0.2.10 80
	[[ $output != *hello* ]]
	run vmsan exec "$ID" -- nc -w 3 192.0.2.20 80
	assert_eq "$output" hello-from-192.0.2.20
	# the configured resolver still answers
	run vmsan exec "$ID" -- nslookup example.test
	assert_contains "$output" 192.0.2.10
	# bad input: refused, named, and the policy in force is unchanged
	run vmsan network "$ID" --network-policy custom --allowed-cidr 10.0.0.0/33
	assert_eq "$status" 100
	assert_contains "$output" "10.0.0.0/33"
	run vmsan network "$ID" --network-policy deny-al
	[ "$status" -ne 0 ]
	assert_contains "$output" "deny-al"
	run vmsan network "$ID" --network-policy custom --allowed-domain a..b
	assert_eq "$status" 100
	assert_contains "$output" "empty label"
	run vmsan network "$ID"
	assert_eq "$status" 100
	assert_contains "$output" "--network-policy is required"
	assert_eq "$(jq -r .network.policy "$VMSAN_DIR/vms/$ID.json")" custom
	run vmsan exec "$ID" -- nc -w 3 192.0.2.20 80
	assert_eq "$output" hello-from-192.0.2.20
	# deny-all cuts everything, DNS too
	run vmsan network "$ID" --network-policy deny-all
	assert_eq "$status" 0
	assert_contains "$output" "custom -> deny-all"
	run vmsan exec "$ID" -- nc -w 2 192.0.2.20 80
	[[ $output != *hello* ]]
	run vmsan exec "$ID" -- nslookup -timeout=1 -retry=0 example.test
	[[ $output != *192.0.2.10* ]]
	# a stopped VM has no rules to change
	vmsan stop "$ID" >/dev/null
	run vmsan network "$ID" --network-policy allow-all
	assert_eq "$status" 1
	assert_contains "$output" "not running"
	run vmsan network vm-00000000 --network-policy allow-all
	assert_eq "$status" 1
	assert_contains "$output" "VM not found"
}

@test "--allowed-domain: the guest's DNS goes through its resolver; only allowed names' addresses are reachable; live changes; logs; stop, start, rm" {
	create --allowed-domain "Example.TEST."
	assert_eq "$(jq -c .network.allowedDomains "$VMSAN_DIR/vms/$ID.json")" '["example.test"]'
	assert_eq "$(jq -r .network.policy "$VMSAN_DIR/vms/$ID.json")" custom
	pid=$(jq .dns.pid "/run/vmsan/net/$ID.json")
	[ "$pid" -gt 0 ]
	# by address, before the name was asked: nothing
	run vmsan exec "$ID" -- nc -w 3 192.0.2.10 80
	[[ $output != *hello* ]]
	# the guest's resolv.conf still names the upstream: the answer comes
	# through the resolver all the same
	run vmsan exec "$ID" -- cat /etc/resolv.conf
	assert_contains "$output" 192.0.2.53
	run vmsan exec "$ID" -- nslookup example.test
	assert_contains "$output" 192.0.2.10
	run vmsan exec "$ID" -- nc -w 3 192.0.2.10 80
	assert_contains "$output" hello-from-192.0.2.10
	run vmsan exec "$ID" -- nslookup other.test
	[[ $output != *192.0.2.20* ]]
	run vmsan exec "$ID" -- nc -w 3 192.0.2.20 80
	[[ $output != *hello* ]]
	out=$(vmsan logs "$ID" --dns --json)
	assert_eq "$(jq -r '[.lines[] | select(.verdict=="allow") | .name][0]' <<<"$out")" example.test
	assert_eq "$(jq -r '[.lines[] | select(.verdict=="deny") | .name][0]' <<<"$out")" other.test
	# live: domains dropped for a CIDR: the resolver goes, the name's address with it
	vmsan network "$ID" --network-policy custom --allowed-cidr 192.0.2.20/32 >/dev/null
	[ ! -e "/proc/$pid" ] || grep -q '^State:.*Z' "/proc/$pid/status"
	run vmsan exec "$ID" -- nc -w 3 192.0.2.10 80
	[[ $output != *hello* ]]
	run vmsan exec "$ID" -- nc -w 3 192.0.2.20 80
	assert_contains "$output" hello-from-192.0.2.20
	out=$(vmsan network "$ID" --json --network-policy custom --allowed-domain example.test)
	assert_eq "$(jq -c .allowedDomains <<<"$out")" '["example.test"]'
	run vmsan exec "$ID" -- nslookup example.test
	assert_contains "$output" 192.0.2.10
	run vmsan exec "$ID" -- nc -w 3 192.0.2.10 80
	assert_contains "$output" hello-from-192.0.2.10
	# --strict-domains, live: port 80 to the name's address only with its Host
	out=$(vmsan network "$ID" --json --network-policy custom --allowed-domain example.test --strict-domains)
	assert_eq "$(jq .strictDomains <<<"$out")" true
	assert_eq "$(jq .network.strictDomains "$VMSAN_DIR/vms/$ID.json")" true
	run vmsan exec "$ID" -- nslookup example.test
	assert_contains "$output" 192.0.2.10
	run vmsan exec "$ID" -- sh -c 'printf "GET / HTTP/1.0\r\nHost: example.test\r\n\r\n" | nc -w 3 192.0.2.10 80'
	assert_contains "$output" hello-from-192.0.2.10
	run vmsan exec "$ID" -- sh -c 'printf "GET / HTTP/1.0\r\nHost: other.test\r\n\r\n" | nc -w 3 192.0.2.10 80'
	assert_contains "$output" "403 Forbidden"
	# stop and start: the resolver comes back with the VM, still strict
	vmsan stop "$ID" >/dev/null
	vmsan start "$ID" >/dev/null
	jq -e '.dns.strict == true' "/run/vmsan/net/$ID.json" >/dev/null
	run vmsan exec "$ID" -- nslookup example.test
	assert_contains "$output" 192.0.2.10
	run vmsan exec "$ID" -- nslookup other.test
	[[ $output != *192.0.2.20* ]]
	run vmsan exec "$ID" -- sh -c 'printf "GET / HTTP/1.0\r\nHost: example.test\r\n\r\n" | nc -w 3 192.0.2.10 80'
	assert_contains "$output" hello-from-192.0.2.10
	pid=$(jq .dns.pid "/run/vmsan/net/$ID.json")
	vmsan rm -f "$ID" >/dev/null
	[ ! -e "/proc/$pid" ] || grep -q '^State:.*Z' "/proc/$pid/status"
	assert_gone "$ID"
	ID=
}

@test "DNS resolvers: --dns, then VMSAN_DNS, then the config file, then the default; bad values refused" {
	printf '# resolvers for the guests\n  dns = 192.0.2.54 , 192.0.2.53  # both in the fake internet\n' >"$VMSAN_DIR/config"
	VMSAN_DNS='' create --runtime base
	assert_eq "$(jq -c .vm.network.dns "$TEST_TMP/create.json")" '["192.0.2.54","192.0.2.53"]'
	run vmsan exec "$ID" -- cat /etc/resolv.conf
	assert_contains "$output" "nameserver 192.0.2.54"
	# vmsan logs: the console; no DNS log without domains; bad input
	run vmsan logs "$ID" --tail 3
	assert_eq "$status" 0
	[ "${#lines[@]}" -le 3 ] && [ "${#lines[@]}" -ge 1 ]
	assert_eq "$(vmsan logs "$ID" --json | jq -r '.log + " " + (.lines | type)')" "console array"
	run vmsan logs "$ID" --dns
	assert_eq "$status" 1
	assert_contains "$output" "has no allowed domains"
	run vmsan logs "$ID" --tail many
	assert_eq "$status" 100
	assert_contains "$output" "--tail needs a number, not 'many'"
	run vmsan logs
	assert_eq "$status" 100
	run vmsan logs vm-00000000
	assert_eq "$status" 1
	assert_contains "$output" "not found"
	vmsan rm -f "$ID" >/dev/null
	ID=
	# bad values, each named with where it came from; nothing is made
	local before
	before=$(ls "$VMSAN_DIR/vms")
	run --separate-stderr vmsan create --json --dns 300.1.1.1
	assert_eq "$status" 100
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_VALIDATION_DNS
	assert_contains "$(jq -r .error.message <<<"$output")" "--dns: invalid resolver '300.1.1.1'"
	run --separate-stderr vmsan create --json --dns 192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_VALIDATION_DNS
	VMSAN_DNS=1.2.3.4.5 run --separate-stderr vmsan create --json
	assert_contains "$(jq -r .error.message <<<"$output")" "VMSAN_DNS: invalid resolver"
	printf 'dns = 192.0.2.53\nresolver = 192.0.2.53\n' >"$VMSAN_DIR/config"
	VMSAN_DNS='' run --separate-stderr vmsan create --json
	assert_eq "$status" 1
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_CONFIG
	assert_contains "$(jq -r .error.message <<<"$output")" "$VMSAN_DIR/config:2: unknown setting 'resolver'"
	printf 'dns 192.0.2.53\n' >"$VMSAN_DIR/config"
	VMSAN_DNS='' run --separate-stderr vmsan create --json
	assert_contains "$(jq -r .error.message <<<"$output")" "config:1: no '='"
	rm "$VMSAN_DIR/config"
	assert_eq "$(ls "$VMSAN_DIR/vms")" "$before"
}

@test "KVM that opens but does not boot our guest: auto falls back to TCG and says why, --accel kvm is refused, nothing left" {
	[ -c /dev/kvm ] || skip "no /dev/kvm on this host"
	local mode group out before
	mode=$(stat -c %a /dev/kvm) group=$(stat -c %G /dev/kvm)
	getent group kvm >/dev/null || groupadd --system kvm
	chgrp kvm /dev/kvm
	chmod 0660 /dev/kvm
	rm -rf /run/vmsan/kvm
	# --cold: a template's restore would skip the boot check
	out=$(vmsan create --json --cold --network-policy deny-all) || { chgrp "$group" /dev/kvm; chmod "$mode" /dev/kvm; false; }
	ID=$(jq -r .vm.id <<<"$out")
	# the control: the boot check ran, as root, and kept its answer
	local cached
	cached=$(cat /run/vmsan/kvm/kvm-boot-*.json)
	if [ "$(jq .boots <<<"$cached")" = true ]; then
		chgrp "$group" /dev/kvm
		chmod "$mode" /dev/kvm
		assert_eq "$(jq -r .accelUsed "$VMSAN_DIR/vms/$ID.json")" kvm
		return 0
	fi
	assert_eq "$(jq -r .accelUsed "$VMSAN_DIR/vms/$ID.json")" tcg
	assert_eq "$(jq -r .kvmRefused "$VMSAN_DIR/vms/$ID.json")" "$(jq -r .detail <<<"$cached")"
	run vmsan exec "$ID" -- echo up
	assert_eq "$output" up
	vmsan rm -f "$ID" >/dev/null
	ID=
	before=$(ls "$VMSAN_DIR/vms")
	run --separate-stderr vmsan create --json --accel kvm --network-policy deny-all
	chgrp "$group" /dev/kvm
	chmod "$mode" /dev/kvm
	assert_eq "$status" 1
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_KVM
	assert_contains "$(jq -r .error.message <<<"$output")" "does not boot under KVM here"
	assert_contains "$(jq -r .error.fix <<<"$output")" "--accel tcg"
	assert_eq "$(ls "$VMSAN_DIR/vms")" "$before"
}

@test "a user in the vmsan group runs VMs through the installed sudoers rule, as themself; others are refused" {
	require_cmd visudo
	require_cmd setpriv
	local g=vmsg$$ u=vmsu$$ o=vmso$$
	UPREFIX=/opt/vmsan-test$$
	USER_TEST="$UPREFIX /etc/sudoers.d/vmsan-test$$ $g $u $o"
	"$TOP/install.sh" --no-deps --no-demo --prefix "$UPREFIX" --sudoers "/etc/sudoers.d/vmsan-test$$" \
		--group "$g" >/dev/null 2>&1
	useradd -m -G "$g" "$u"
	useradd -m "$o"
	local out pid
	out=$(as_user "$u" create --json --network-policy deny-all)
	UID_ID=$(jq -r .vm.id <<<"$out")
	# the VMM runs as the user, not root; the user's state is the user's
	pid=$(jq -r .vm.process.pid <<<"$out")
	assert_eq "$(ps -o user= -p "$pid")" "$u"
	# all of it: root keeps what is root's (the VMM's record, its QMP
	# socket) in /run/vmsan/vmm, owned by the user's uid in its record
	assert_eq "$(find "/home/$u/.vmsan" ! -user "$u" | head -3)" ""
	assert_eq "$(jq .owner "/run/vmsan/vmm/$UID_ID/record.json")" "$(id -u "$u")"
	assert_eq "$(head -n 1 "/run/vmsan/ids/$UID_ID")" "$(id -u "$u")"
	run as_user "$u" exec "$UID_ID" -- hostname
	assert_eq "$output" "$UID_ID"
	run as_user "$u" network "$UID_ID" --network-policy allow-all
	assert_eq "$status" 0
	run as_user "$u" exec "$UID_ID" -- nc -w 3 192.0.2.10 80
	assert_eq "$output" hello-from-192.0.2.10
	run as_user "$u" rm -f "$UID_ID"
	assert_eq "$status" 0
	VMSAN_DIR=/home/$u/.vmsan assert_gone "$UID_ID"
	UID_ID=
	# not in the group: a clear refusal, and nothing is left behind
	run --separate-stderr as_user "$o" create --json --network-policy deny-all
	assert_eq "$status" 1
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_SUDO
	assert_contains "$(jq -r .error.fix <<<"$output")" "vmsan group"
	assert_eq "$(ls "/home/$o/.vmsan/vms" | grep -c '^vm-' || true)" 0
}

@test "--no-netns: TAP and rules in the host's namespace; the same policy holds; published ports map; rm leaves nothing" {
	create --runtime base --no-netns --network-policy custom --allowed-cidr 192.0.2.10/32 --publish-port 8081:80
	jq -e '.vm.network.netns == null and .vm.network.noNetns and (.vm.network.tapDevice | startswith("vmst"))' \
		"$TEST_TMP/create.json"
	local tap guest table
	tap=$(jq -r .vm.network.tapDevice "$TEST_TMP/create.json")
	guest=$(jq -r .vm.network.guestIp "$TEST_TMP/create.json")
	table=vmsan_${ID//-/_}
	[ ! -e "/run/netns/vmsan-$ID" ]
	nsx "$H" ip -br link show "$tap" | grep -q UP
	# the TAP belongs to the VMM's uid: nobody else's VMM can attach to it
	nsx "$H" ip -d link show "$tap" | grep -q "user $(ps -o uid= -p "$(jq -r .vm.process.pid "$TEST_TMP/create.json")" | tr -d ' ')"
	run vmsan exec "$ID" -- hostname
	assert_eq "$output" "$ID"
	# the guest has its slot's address (no namespace to hide behind)
	run vmsan exec "$ID" -- ip -4 addr show eth0
	assert_contains "$output" "inet $guest/30"
	# the policy: the allowed address only; DNS to the resolver; no ICMP
	run vmsan exec "$ID" -- nc -w 3 192.0.2.10 80
	assert_eq "$output" hello-from-192.0.2.10
	run vmsan exec "$ID" -- nc -w 2 192.0.2.20 80
	[[ $output != *hello* ]]
	run vmsan exec "$ID" -- nslookup example.test
	assert_contains "$output" 192.0.2.10
	run vmsan exec "$ID" -- ping -c 1 -W 1 192.0.2.10
	[ "$status" -ne 0 ]
	# the host (its gateway and its other addresses) is not reachable
	run vmsan exec "$ID" -- nc -w 2 203.0.113.1 2222
	[[ $output != *host-service* ]]
	run vmsan exec "$ID" -- nc -w 2 "$(jq -r .vm.network.hostAddr "$TEST_TMP/create.json")" 2222
	[[ $output != *host-service* ]]
	# the rules touch only this VM's TAP: the host's own forwarding is untouched
	local verdicts unscoped
	verdicts=$(nsx "$H" nft list table ip "$table" | grep -E ' (accept|drop)$')
	[ "$(wc -l <<<"$verdicts")" -gt 5 ]
	unscoped=$(grep -v "iifname \"$tap\"" <<<"$verdicts" || true)
	assert_eq "$unscoped" ""
	# published 8081 -> the guest's 80, from outside and from the host (127.0.0.1 too)
	vmsan exec "$ID" --detach -- nc -ll -p 80 -e echo hello-from-guest >/dev/null
	local got=""
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		got=$(nsx "$I" nc -w 2 203.0.113.1 8081 </dev/null || true)
		[ -n "$got" ] && break
		sleep 0.2
	done
	assert_eq "$got" hello-from-guest
	assert_eq "$(nsx "$H" nc -w 2 127.0.0.1 8081 </dev/null)" hello-from-guest
	# a live change, then bad input that changes nothing
	run vmsan network "$ID" --network-policy deny-all
	assert_eq "$status" 0
	run vmsan exec "$ID" -- nc -w 2 192.0.2.10 80
	[[ $output != *hello* ]]
	run vmsan network "$ID" --network-policy custom --allowed-cidr 300.1.1.1/8
	assert_eq "$status" 100
	# --bandwidth needs a namespace
	run --separate-stderr vmsan create --json --no-netns --bandwidth 50mbit
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_VALIDATION_FLAGS
	# stop and start keep the mode; rm removes TAP, table and all
	vmsan stop "$ID" >/dev/null
	[ -z "$(nsx "$H" ip -br link show "$tap" 2>/dev/null)" ]
	vmsan start "$ID" >/dev/null
	run vmsan exec "$ID" -- hostname
	assert_eq "$output" "$ID"
	vmsan rm -f "$ID" >/dev/null
	assert_gone "$ID"
	[[ $(nsx "$H" nft list tables) != *"$table"* ]]
	[ -z "$(nsx "$H" ip -br link show | grep '^vmst' || true)" ]
}

@test "snapshots: saved from a running VM, restored twice; files, processes, own token, name, clock and network each" {
	create --runtime base --network-policy custom --allowed-cidr 192.0.2.10/32
	local src=$ID
	vmsan exec "$src" -- sh -c 'echo kept >/root/file'
	# shellcheck disable=SC2016 # the guest's shell expands it
	vmsan exec "$src" --detach -- sh -c 'i=0; while :; do i=$((i + 1)); echo $i >/tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.1; done' >/dev/null
	sleep 1
	run vmsan snapshot create "$src" --json
	assert_eq "$status" 0
	local sid
	sid=$(jq -r .snapshotId <<<"$output")
	[[ $sid == "$src"-* ]]
	[ -s "$VMSAN_DIR/snapshots/$sid/memory" ] && [ -s "$VMSAN_DIR/snapshots/$sid/state" ]
	# the source VM goes on
	run vmsan exec "$src" -- cat /root/file
	assert_eq "$output" kept
	run vmsan snapshot list --json
	assert_eq "$(jq -r --arg s "$sid" '.[] | select(.id == $s) | .vmId' <<<"$output")" "$src"
	[ "$(jq -r --arg s "$sid" '.[] | select(.id == $s) | .diskUsageBytes' <<<"$output")" -gt 1000000 ]
	# two VMs from it, one with a policy of its own
	local a b c1 c2
	a=$(vmsan create --json --snapshot "$sid" | jq -r .vm.id)
	b=$(vmsan create --json --snapshot "$sid" --network-policy custom --allowed-cidr 192.0.2.20/32 | jq -r .vm.id)
	[ -n "$a" ] && [ -n "$b" ] && [ "$a" != "$b" ]
	# each its own randomness: a clone of the snapshot's random number
	# generator would give both the same keys, ids and nonces (the agent
	# reseeds it from the host at /restored; under TCG the guest's clock
	# also jumps over the time between save and restore, which makes the
	# kernel reseed by itself, so this guards more than it proves here)
	local ra rb
	ra=$(vmsan exec "$a" -- sh -c 'head -c 32 /dev/urandom | od -An -tx1' | tr -d ' \n')
	rb=$(vmsan exec "$b" -- sh -c 'head -c 32 /dev/urandom | od -An -tx1' | tr -d ' \n')
	[ "${#ra}" = 64 ] && [ "${#rb}" = 64 ]
	[ "$ra" != "$rb" ] || { echo "both restored guests read $ra from /dev/urandom" >&2; false; }
	for v in "$a" "$b"; do
		run vmsan exec "$v" -- cat /root/file
		assert_eq "$output" kept
		run vmsan exec "$v" -- hostname
		assert_eq "$output" "$v"
		c1=$(vmsan exec "$v" -- cat /tmp/count)
		sleep 0.5
		c2=$(vmsan exec "$v" -- cat /tmp/count)
		[ "$c2" -gt "$c1" ]
		# the clock is the host's, not the snapshot's
		run vmsan exec "$v" -- date +%s
		[ $(( $(date +%s) - output )) -lt 5 ]
		# a token of its own: the snapshot's no longer opens the agent
		run nsenter --net="/run/netns/$H" "$TOP/libexec/vmsan-agentctl" \
			--agent "$(jq -r .agent.addr "$VMSAN_DIR/vms/$v.json"):9119" \
			--token-file "$VMSAN_DIR/snapshots/$sid/token" exec -- true
		[ "$status" -ne 0 ]
		assert_eq "$(jq -r .restoredFrom "$VMSAN_DIR/vms/$v.json")" "$sid"
	done
	# each has its own network and policy, and cannot see the other
	run vmsan exec "$a" -- nc -w 3 192.0.2.10 80
	assert_eq "$output" hello-from-192.0.2.10
	run vmsan exec "$a" -- nc -w 2 192.0.2.20 80
	[[ $output != *hello* ]]
	run vmsan exec "$b" -- nc -w 3 192.0.2.20 80
	assert_eq "$output" hello-from-192.0.2.20
	run vmsan exec "$b" -- nc -w 2 192.0.2.10 80
	[[ $output != *hello* ]]
	run vmsan exec "$a" -- nc -w 2 "$(jq -r .agent.addr "$VMSAN_DIR/vms/$b.json")" 9119
	[[ $output != *HTTP* ]]
	# bad input
	run vmsan create --snapshot "$src-1"
	assert_eq "$status" 1
	assert_contains "$output" "snapshot not found"
	run vmsan create --snapshot ../vms
	assert_eq "$status" 100
	run vmsan snapshot delete ../vms
	assert_eq "$status" 100
	[ -d "$VMSAN_DIR/vms" ]
	run vmsan create --snapshot "$sid" --vmm firecracker
	assert_eq "$status" 100
	assert_contains "$output" "restores with qemu"
	run vmsan create --snapshot "$sid" --memory 512
	assert_eq "$status" 100
	vmsan rm -f "$a" "$b" >/dev/null
	vmsan stop "$src" >/dev/null
	run vmsan snapshot create "$src"
	assert_eq "$status" 1
	assert_contains "$output" "not running"
	# delete removes every file of it
	run vmsan snapshot delete "$sid" --json
	assert_eq "$status" 0
	[ ! -e "$VMSAN_DIR/snapshots/$sid" ]
	assert_eq "$(ls -A "$VMSAN_DIR/snapshots")" ""
	run vmsan snapshot delete "$sid"
	assert_eq "$status" 1
	assert_gone "$a"
	assert_gone "$b"
	[ -z "$(ls /dev/shm | grep -E "vmsan-($a|$b)" || true)" ]
}

@test "snapshots: a full disk leaves no partial snapshot and the VM running; gc removes what a killed one left" {
	create --runtime base --network-policy deny-all
	mkdir -p "$VMSAN_DIR/snapshots"
	mount -t tmpfs -o size=8m tmpfs "$VMSAN_DIR/snapshots"
	run vmsan snapshot create "$ID" --json
	local left
	left=$(ls -A "$VMSAN_DIR/snapshots")
	umount "$VMSAN_DIR/snapshots"
	[ "$status" -ne 0 ]
	assert_contains "$output" "ERR_NO_SPACE"
	# nothing left on the full file system, nothing listed, the VM resumed
	assert_eq "$left" ""
	run vmsan snapshot list --json
	assert_eq "$(jq --arg v "$ID" '[.[] | select(.vmId == $v)] | length' <<<"$output")" 0
	run vmsan exec "$ID" -- echo still-here
	assert_eq "$output" still-here
	# a snapshot whose create was killed: hidden, then collected
	mkdir -p "$VMSAN_DIR/snapshots/.$ID-1.999999999.tmp"
	run vmsan gc --dry-run --json
	assert_contains "$output" "unfinished snapshot .$ID-1.999999999.tmp"
	run vmsan snapshot list --json
	assert_eq "$(jq length <<<"$output")" 0
	vmsan gc >/dev/null
	[ ! -e "$VMSAN_DIR/snapshots/.$ID-1.999999999.tmp" ]
}

@test "pause and resume: the guest stops answering and answers again" {
	create --runtime base --network-policy deny-all
	run vmsan pause "$ID" --json
	assert_eq "$(jq .paused <<<"$output")" true
	run timeout 3 nsenter --net="/run/netns/$H" "$TOP/bin/vmsan" exec "$ID" -- true
	[ "$status" -ne 0 ]
	run vmsan resume "$ID"
	assert_eq "$status" 0
	run vmsan exec "$ID" -- echo back
	assert_eq "$output" back
	vmsan stop "$ID" >/dev/null
	run vmsan pause "$ID"
	assert_eq "$status" 1
	assert_contains "$output" "not running"
}

@test "create --from-image: an image from the registry on 127.0.0.1 boots with the agent and its environment" {
	require_cmd docker-registry
	load rootfs_helper
	busybox_image "$TEST_TMP/img"
	tar_layer "$TEST_TMP/img" "$TEST_TMP/layer.tar" gzip
	oci_image "$TEST_TMP/oci" v1 '{"Env":["PATH=/bin:/usr/bin","GREETING=from-the-image"]}' "$TEST_TMP/layer.tar"
	registry_start
	push "$TEST_TMP/oci" v1 test/bb:v1
	# the registry listens in the root namespace: pull there, create from the cache
	VMSAN_INSECURE_REGISTRIES=$REG "$TOP/bin/vmsan" images pull "$REG/test/bb:v1" >/dev/null
	registry_stop
	create --from-image "$REG/test/bb:v1" --network-policy deny-all
	assert_eq "$(jq -r .vm.image.ref "$TEST_TMP/create.json")" "$REG/test/bb:v1"
	# shellcheck disable=SC2016 # expanded by the guest's shell
	run vmsan exec "$ID" -- sh -c 'echo $GREETING'
	assert_eq "$output" from-the-image
	vmsan rm -f "$ID" >/dev/null
	assert_gone "$ID"
}

@test "create --from-image and run from a plain-HTTP registry: VMSAN_INSECURE_REGISTRIES is honoured; the error is quoted once" {
	require_cmd docker-registry
	load rootfs_helper
	local before
	busybox_image "$TEST_TMP/img"
	echo from-the-registry >"$TEST_TMP/img/etc/marker"
	tar_layer "$TEST_TMP/img" "$TEST_TMP/layer.tar" gzip
	oci_image "$TEST_TMP/oci" v1 '{"Env":["PATH=/bin:/usr/bin"]}' "$TEST_TMP/layer.tar"
	# the registry on the 127.0.0.1 of the namespace vmsan runs in
	REG_NS=$H registry_start
	REG_NS=$H push "$TEST_TMP/oci" v1 test/plain:v1
	REG_NS=$H push "$TEST_TMP/oci" v1 test/plain:v2
	before=$(ls "$VMSAN_DIR/vms" 2>/dev/null || true)
	# unset: refused by the registry (the pull reached it), one JSON document
	# whose message has no escaped quotes once decoded, and a fix naming the variable
	run -1 --separate-stderr vmsan --json create --from-image "$REG/test/plain:v1" --network-policy deny-all
	assert_eq "$(jq -s length <<<"$output")" 1
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_REGISTRY_TLS
	assert_contains "$(jq -r .error.message <<<"$output")" "Get \"https://$REG/v2/\""
	[[ $(jq -r .error.message <<<"$output") != *\\* ]]
	assert_contains "$(jq -r .error.fix <<<"$output")" "set VMSAN_INSECURE_REGISTRIES=$REG"
	assert_eq "$(ls "$VMSAN_DIR/vms" 2>/dev/null || true)" "$before"
	# set, to a list without this registry: not told to set what is set
	export VMSAN_INSECURE_REGISTRIES=other:1
	run -1 vmsan create --from-image "$REG/test/plain:v1" --network-policy deny-all
	assert_contains "$output" "VMSAN_INSECURE_REGISTRIES is 'other:1', which does not name $REG"
	[[ $output != *"set VMSAN_INSECURE_REGISTRIES"* ]]
	# set: the guest runs a command from the registry's image
	export VMSAN_INSECURE_REGISTRIES="other:1,$REG"
	create --from-image "$REG/test/plain:v1" --network-policy deny-all
	run vmsan exec "$ID" -- cat /etc/marker
	assert_eq "$output" from-the-registry
	vmsan rm -f "$ID" >/dev/null
	# vmsan run reaches the registry the same way (a tag not pulled yet)
	run vmsan run --rm --network-policy deny-all "$REG/test/plain:v2" -- cat /etc/marker
	assert_eq "$status" 0
	assert_contains "$output" from-the-registry
	unset VMSAN_INSECURE_REGISTRIES
	registry_stop
}

@test "create: bad input is refused before anything is made, with the flag named" {
	local before
	before=$(ls "$VMSAN_DIR/vms" 2>/dev/null || true)
	run vmsan create --vcpus 0
	assert_eq "$status" 100
	assert_contains "$output" "--vcpus"
	run vmsan create --memory 64
	assert_eq "$status" 100
	assert_contains "$output" "--memory"
	run --separate-stderr vmsan create --json --network-policy open
	assert_eq "$status" 100
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_POLICY
	run --separate-stderr vmsan create --json --publish-port 10060
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_PORT_RESERVED
	run --separate-stderr vmsan create --json --publish-port 70000
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_VALIDATION_PORT
	run --separate-stderr vmsan create --json --network-policy deny-all --allowed-cidr 192.0.2.0/24
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_POLICY_CONFLICT
	for d in '*.' 'a..b' '*foo.com' "$(printf 'a%.0s' $(seq 1 300)).com"; do
		run --separate-stderr vmsan create --json --allowed-domain "$d"
		assert_eq "$(jq -r .error.code <<<"$output")" ERR_VALIDATION_DOMAIN
	done
	run --separate-stderr vmsan create --json --allowed-domain example.test --no-netns
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_VALIDATION_FLAGS
	run --separate-stderr vmsan create --json --strict-domains
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_VALIDATION_FLAGS
	assert_contains "$(jq -r .error.message <<<"$output")" "--strict-domains"
	run --separate-stderr vmsan create --json --network-policy deny-all --allowed-domain example.test
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_POLICY_CONFLICT
	run --separate-stderr vmsan create --json --timeout 5x
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_VALIDATION_DURATION
	run --separate-stderr vmsan create --json --bandwidth fast
	assert_eq "$status" 100
	run --separate-stderr vmsan create --json --runtime base --from-image alpine
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_VALIDATION_FLAGS
	run --separate-stderr vmsan create --json --vmm kvmtool
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_VALIDATION_VMM
	run --separate-stderr vmsan create --json --from-image "oci:$TEST_TMP/nothing:v1"
	assert_eq "$status" 1
	run vmsan start vm-00000000
	assert_eq "$status" 1
	assert_contains "$output" "VM not found"
	run vmsan rm ../etc
	assert_eq "$status" 100
	assert_eq "$(ls "$VMSAN_DIR/vms" 2>/dev/null || true)" "$before"
	[ -z "$(ip netns list | grep -E '^vmsan-vm-' || true)" ]
}

@test "create: a VMM that fails (a kernel it cannot load) is undone: no record, disk, namespace or process" {
	: >"$TEST_TMP/bad-kernel"
	chmod 644 "$TEST_TMP/bad-kernel"
	chmod 755 "$TEST_TMP"
	local before
	before=$(ls "$VMSAN_DIR/vms")
	run --separate-stderr vmsan create --json --kernel "$TEST_TMP/bad-kernel"
	assert_eq "$status" 1
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_VMM_START
	assert_eq "$(ls "$VMSAN_DIR/vms")" "$before"
	[ -z "$(ip netns list | grep -E '^vmsan-vm-' || true)" ]
	[ -z "$(pgrep -f 'process=vmsan-vm-' || true)" ]
}

@test "create killed (SIGKILL) at each step: gc --dry-run reports it, gc removes everything" {
	local step pid id
	for step in image network vmm boot running; do
		VMSAN_CREATE_PAUSE=$step vmsan create --json >"$TEST_TMP/out" 2>&1 3>&- &
		pid=$!
		# wait for the SIGSTOP it gives itself before that step
		id=""
		for _ in $(seq 300); do
			[ "$(ps -o stat= -p "$(pgrep -P "$pid" -f vmsan-create || echo 0)" 2>/dev/null | cut -c1)" = T ] && break
			sleep 0.05
		done
		local child
		child=$(pgrep -P "$pid" -f vmsan-create)
		kill -9 "$child"
		wait "$pid" || true
		id=$(ls "$VMSAN_DIR/vms" | grep -E '^vm-[0-9a-f]{8}\.json$' | sed 's/\.json$//' |
			while read -r v; do jq -e '.status == "creating"' "$VMSAN_DIR/vms/$v.json" >/dev/null && echo "$v"; done || true)
		[ -n "$id" ] || { echo "no record for step $step" >&2; false; }
		run vmsan gc --dry-run --json
		assert_eq "$(jq -r --arg id "$id" '.found[] | select(.id == $id) | .action' <<<"$output")" remove
		run vmsan doctor
		assert_contains "$output" "$id"
		run vmsan gc --json
		assert_eq "$status" 0
		assert_gone "$id"
	done
}

@test "--timeout stops the VM when it expires and tears its network down" {
	create --timeout 4s --network-policy deny-all
	jq -e '.vm.timeoutAt != null' "$TEST_TMP/create.json" >/dev/null
	local st=""
	for _ in $(seq 100); do
		st=$(jq -r .status "$VMSAN_DIR/vms/$ID.json")
		[ "$st" = stopped ] && break
		sleep 0.1
	done
	assert_eq "$st" stopped
	assert_eq "$(jq -r .stopReason "$VMSAN_DIR/vms/$ID.json")" timeout
	[ ! -e "/run/netns/vmsan-$ID" ]
	[ -z "$(pgrep -f "process=vmsan-$ID" || true)" ]
	vmsan rm "$ID" >/dev/null
	assert_gone "$ID"
}

@test "operations on one VM are serialized by its lock; vmsan run --rm returns the command's status" {
	create --network-policy deny-all
	# hold the VM's lock: stop waits for it (and must not inherit it)
	exec {fd}>>"$VMSAN_DIR/vms/$ID.lock"
	flock "$fd"
	vmsan stop "$ID" >"$TEST_TMP/stop.out" 2>&1 3>&- {fd}>&- &
	local sp=$!
	sleep 1
	kill -0 "$sp"
	assert_eq "$(jq -r .status "$VMSAN_DIR/vms/$ID.json")" running
	exec {fd}>&-
	wait "$sp"
	assert_eq "$(jq -r .status "$VMSAN_DIR/vms/$ID.json")" stopped
	vmsan rm "$ID" >/dev/null
	assert_gone "$ID"
	# run: create, exec, remove
	run vmsan run --rm --network-policy deny-all base -- sh -c 'echo in-the-vm; exit 7'
	assert_eq "$status" 7
	assert_contains "$output" in-the-vm
	[ -z "$(ls "$VMSAN_DIR/vms" | grep -E '\.json$' || true)" ]
}

@test "create --vmm firecracker: the jail, the jailer and every API call (checked against the spec); a guest that never answers is undone" {
	local spec=${FIRECRACKER_API_SPEC:-$TOP/../shared/reference/firecracker-api.yaml}
	[ -f "$spec" ] || skip "Firecracker's API specification is not at $spec (set FIRECRACKER_API_SPEC)"
	python3 -c 'import yaml' 2>/dev/null || skip "python3-yaml is needed by the fake API socket"
	chmod 755 "$TEST_TMP"
	mkdir -p "$TEST_TMP/fcbin"
	cp "$TOP/tests/tools/fake-firecracker" "$TEST_TMP/fcbin/firecracker"
	cp "$TOP/tests/tools/fake-jailer" "$TEST_TMP/fcbin/jailer"
	chmod 755 "$TEST_TMP/fcbin" "$TEST_TMP/fcbin"/*
	cp "$(guest_kernel)" "$VMSAN_DIR/vmlinux-fc"
	: >"$TEST_TMP/api.log"
	chmod 666 "$TEST_TMP/api.log"
	jq -n --arg s "$spec" --arg a "$TEST_TMP/api.log" --arg j "$TEST_TMP/jailer.log" \
		'{spec:$s, apiLog:$a, jailerLog:$j}' >"$TEST_TMP/fcbin/fake.json"
	chmod 644 "$TEST_TMP/fcbin/fake.json"
	# root's configuration names the programs and the jail base (root
	# itself may point vmsan at another file); the jail hard-links the VM's
	# disks: the same file system as the state
	printf 'firecracker = %s\njailer = %s\nchroot-base = %s\n' "$TEST_TMP/fcbin/firecracker" \
		"$TEST_TMP/fcbin/jailer" "$VMSAN_DIR/jail" >"$TEST_TMP/root.conf"
	export VMSAN_ROOT_CONFIG=$TEST_TMP/root.conf
	local before
	before=$(ls "$VMSAN_DIR/vms")
	# the stand-in boots no guest: create waits for the agent, gives up, undoes everything
	VMSAN_BOOT_TIMEOUT=2 run --separate-stderr vmsan create --json --vmm firecracker --vcpus 2 \
		--kernel "$VMSAN_DIR/vmlinux-fc" --network-policy deny-all
	assert_eq "$status" 1
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_BOOT_TIMEOUT || { echo "$output"; false; }
	# it got as far as a configured, started Firecracker
	assert_eq "$(jq -s -c '[.[] | .method + " " + .path]' "$TEST_TMP/api.log")" \
		'["PUT /logger","PUT /serial","PUT /boot-source","PUT /drives/vm","PUT /drives/image","PUT /machine-config","PUT /network-interfaces/eth0","PUT /entropy","PUT /actions"]'
	assert_eq "$(jq -s -c '[.[] | .status] | unique' "$TEST_TMP/api.log")" "[204]"
	assert_eq "$(jq -s -c '.[5].body' "$TEST_TMP/api.log")" '{"vcpu_count":2,"mem_size_mib":256,"smt":false,"track_dirty_pages":false}'
	local jargv
	jargv=$(jq -r 'join(" ")' "$TEST_TMP/jailer.log")
	assert_contains "$jargv" "--exec-file $TEST_TMP/fcbin/firecracker"
	assert_contains "$jargv" "--chroot-base-dir $VMSAN_DIR/jail --netns /run/netns/vmsan-vm-"
	[[ $jargv != *--uid\ 0\ * ]]
	# and everything is gone: record, disk, jail, Firecracker, namespace
	assert_eq "$(ls "$VMSAN_DIR/vms")" "$before"
	[ -z "$(ls "$VMSAN_DIR/jail/firecracker" 2>/dev/null || true)" ]
	[ -z "$(pgrep -f "fcbin/firecracker --id" || true)" ]
	local id
	id=$(jq -r '.[1]' "$TEST_TMP/jailer.log")
	[[ $id =~ ^vm-[0-9a-f]{8}$ ]]
	[ ! -e "/run/netns/vmsan-$id" ]
	[ ! -e "/run/vmsan/net/$id.json" ]
	[ ! -e "/run/vmsan/vmm/$id" ] && [ ! -e "/run/vmsan/ids/$id" ]
}
