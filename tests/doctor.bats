#!/usr/bin/env bats
# vmsan doctor: real probes, clear fixes, exit 1 only for required failures.
load test_helper

teardown_extra() {
	ip netns del "vmsan-test-doc-$$" 2>/dev/null || true
}

@test "--json: one document, every check shaped {name, ok, required, status, detail, fix}" {
	run --separate-stderr "$VMSAN" doctor --json
	assert_one_json "$output"
	echo "$output" | jq -e '.checks | length >= 14' >/dev/null
	echo "$output" | jq -e 'all(.checks[]; has("name") and has("ok") and has("required")
		and (.status | IN("pass", "warn", "fail", "skip")) and (.detail | length > 0) and has("fix"))' >/dev/null
	# Every problem comes with a fix.
	echo "$output" | jq -e 'all(.checks[] | select(.status != "pass"); .fix | length > 0)' >/dev/null
	for name in kvm firecracker qemu vmm kernel guest base-image nftables tun ip-forward \
		host-firewall cgroup-v2 sudoers state-dir disk; do
		echo "$output" | jq -e --arg n "$name" 'any(.checks[]; .name == $n)' >/dev/null ||
			{ echo "missing check $name"; false; }
	done
	# Counts add up, and the exit status follows the required checks.
	echo "$output" | jq -e '.summary.total == (.checks | length)
		and .summary.passed + .summary.warnings + .summary.failed + .summary.skipped == .summary.total' >/dev/null
	if echo "$output" | jq -e '.summary.failed > 0' >/dev/null; then
		[ "$status" -eq 1 ]
	else
		[ "$status" -eq 0 ]
	fi
}

@test "it says which VMM create will use, and why" {
	run --separate-stderr "$VMSAN" doctor --json
	vmm=$(echo "$output" | jq -r .vmm.name)
	[[ $vmm =~ ^(firecracker|qemu|none)$ ]]
	[ -n "$(echo "$output" | jq -r .vmm.reason)" ]
	if [ "$vmm" = none ]; then
		[ "$(echo "$output" | jq -r '.checks[] | select(.name == "vmm") | .status')" = fail ]
	fi
	run --separate-stderr "$VMSAN" doctor
	assert_contains "$output" "VMM: $vmm"
}

@test "without any VMM where root's configuration says, the required vmm check fails and doctor exits 1" {
	printf 'qemu = /nonexistent/qemu\nfirecracker = /nonexistent/fc\njailer = /nonexistent/jailer\n' >"$TEST_TMP/root.conf"
	# PATH has QEMU, but the programs root runs are never looked up there
	VMSAN_ROOT_CONFIG=$TEST_TMP/root.conf run --separate-stderr "$VMSAN" doctor --json
	[ "$status" -eq 1 ]
	[ "$(echo "$output" | jq -r '.checks[] | select(.name == "vmm") | .status')" = fail ]
	[ "$(echo "$output" | jq -r .vmm.name)" = none ]
	[ "$(echo "$output" | jq -r .ok)" = false ]
}

@test "human output marks each check and ends with a result line" {
	run --separate-stderr "$VMSAN" doctor
	[ "${lines[0]}" = "vmsan doctor" ]
	assert_contains "$output" "✓ nftables"
	[[ ${lines[-1]} =~ ^Result:\ [0-9]+\ passed,\ [0-9]+\ warnings,\ [0-9]+\ failed,\ [0-9]+\ not\ checked$ ]]
	# A failed check is marked ✗ and followed by its fix.
	echo "$output" | grep -A1 '✗' | grep -q 'fix:' || echo "$output" | grep -vq '✗'
}

@test "the kernel and base image checks find what is installed" {
	# not the source tree's share/ (make check builds a kernel there)
	export VMSAN_DATADIR=$TEST_TMP/share
	run --separate-stderr "$VMSAN" doctor --json
	[ "$(echo "$output" | jq -r '.checks[] | select(.name == "kernel") | .status')" = fail ]
	mkdir -p "$VMSAN_DIR/kernels" "$VMSAN_DIR/images"
	chmod 700 "$VMSAN_DIR"
	: >"$VMSAN_DIR/kernels/vmlinux-6.1-test"
	run --separate-stderr "$VMSAN" doctor --json
	[ "$(echo "$output" | jq -r '.checks[] | select(.name == "base-image") | .status')" = fail ]
	"$VMSAN" images pull --runtime base
	run --separate-stderr "$VMSAN" doctor --json
	[ "$(echo "$output" | jq -r '.checks[] | select(.name == "kernel") | .detail')" = "$VMSAN_DIR/kernels/vmlinux-6.1-test" ]
	[ "$(echo "$output" | jq -r '.checks[] | select(.name == "base-image") | .status')" = pass ]
}

@test "the guest check runs vmsan-init and vmsan-agent and wants this version" {
	run --separate-stderr "$VMSAN" doctor --json
	[ "$(echo "$output" | jq -r '.checks[] | select(.name == "guest") | .status')" = pass ]
	# a libexec whose guest binaries are missing, then stale
	cp -a "$LIBEXEC" "$TEST_TMP/libexec"
	rm "$TEST_TMP/libexec/guest/vmsan-agent"
	VMSAN_LIBEXECDIR=$TEST_TMP/libexec run --separate-stderr "$VMSAN" doctor --json
	local g
	g=$(echo "$output" | jq -c '.checks[] | select(.name == "guest")')
	[ "$(echo "$g" | jq -r .status)" = fail ]
	assert_contains "$(echo "$g" | jq -r .detail)" "vmsan-agent: missing or not runnable"
	assert_contains "$(echo "$g" | jq -r .fix)" "make install"
	printf '#!/bin/sh\necho vmsan-agent 0.0.1\n' >"$TEST_TMP/libexec/guest/vmsan-agent"
	chmod 755 "$TEST_TMP/libexec/guest/vmsan-agent"
	VMSAN_LIBEXECDIR=$TEST_TMP/libexec run --separate-stderr "$VMSAN" doctor --json
	assert_contains "$output" "vmsan-agent: vmsan-agent 0.0.1 (want"
}

@test "a bad state dir is a failed required check with its fix" {
	mkdir -p "$VMSAN_DIR"
	chmod 777 "$VMSAN_DIR"
	run --separate-stderr "$VMSAN" doctor --json
	[ "$status" -eq 1 ]
	[ "$(echo "$output" | jq -r '.checks[] | select(.name == "state-dir") | .status')" = fail ]
	assert_contains "$(echo "$output" | jq -r '.checks[] | select(.name == "state-dir") | .fix')" "chmod 700"
}

@test "the nftables probe commits for real and leaves no table or namespace" {
	require_root
	ns=vmsan-test-doc-$$
	ip netns add "$ns"
	before_ns=$(ip netns list | sort)
	run --separate-stderr ip netns exec "$ns" "$VMSAN" doctor --json
	[ "$(echo "$output" | jq -r '.checks[] | select(.name == "nftables") | .status')" = pass ]
	[ "$(ip netns list | sort)" = "$before_ns" ]
	# The probe ran in its own namespace: the one it was started in is untouched.
	[ -z "$(ip netns exec "$ns" nft list tables)" ]
	[ -z "$(nft list tables | grep vmsan_probe || true)" ]
}

@test "a forward chain with policy drop (Docker-style) is reported with a fix" {
	require_root
	require_cmd nft
	ns=vmsan-test-doc-$$
	ip netns add "$ns"
	run --separate-stderr ip netns exec "$ns" "$VMSAN" doctor --json
	[ "$(echo "$output" | jq -r '.checks[] | select(.name == "host-firewall") | .status')" = pass ]
	ip netns exec "$ns" nft 'add table ip filter; add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }'
	run --separate-stderr ip netns exec "$ns" "$VMSAN" doctor --json
	fw=$(echo "$output" | jq -c '.checks[] | select(.name == "host-firewall")')
	[ "$(echo "$fw" | jq -r .status)" = warn ]
	assert_contains "$(echo "$fw" | jq -r .detail)" "ip filter FORWARD"
	assert_contains "$(echo "$fw" | jq -r .fix)" "vms+"
}

@test "ip forwarding off is reported (in a fresh namespace, where it is off)" {
	require_root
	ns=vmsan-test-doc-$$
	ip netns add "$ns"
	# a new namespace inherits the host's IPv4 settings (devconf_inherit_init_net=0)
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=0
	run --separate-stderr ip netns exec "$ns" "$VMSAN" doctor --json
	[ "$(echo "$output" | jq -r '.checks[] | select(.name == "ip-forward") | .status')" = warn ]
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
	run --separate-stderr ip netns exec "$ns" "$VMSAN" doctor --json
	[ "$(echo "$output" | jq -r '.checks[] | select(.name == "ip-forward") | .status')" = pass ]
}

@test "as an unprivileged user, root-only probes are 'not checked', not failed" {
	require_root
	chmod 755 "$TEST_TMP"
	mkdir -p "$TEST_TMP/nobody"
	chown nobody "$TEST_TMP/nobody"
	run --separate-stderr setpriv --reuid=nobody --regid=nogroup --clear-groups \
		env HOME="$TEST_TMP/nobody" VMSAN_DIR="$TEST_TMP/nobody/state" "$VMSAN" doctor --json
	assert_one_json "$output"
	[ "$(echo "$output" | jq -r '.checks[] | select(.name == "host-firewall") | .status')" = skip ]
	[ "$(echo "$output" | jq -r '.checks[] | select(.name == "nftables") | .status')" = pass ]
	[ "$(echo "$output" | jq -r '.checks[] | select(.name == "sudoers") | .status')" = fail ]
}

@test "kvm-boot: a kernel booted to its first panic is 'boots'; the answer is cached by QEMU and the kernel file; a file that is no kernel does not boot" {
	require_root
	require_cmd qemu-system-x86_64
	load init_helper
	local k q=/usr/bin/qemu-system-x86_64 c=$TEST_TMP/cache out
	k=$(guest_kernel)
	cp "$k" "$TEST_TMP/vmlinux"
	# the check of the check: the same boot under TCG, where our kernel runs
	out=$(jq -n --arg k "$TEST_TMP/vmlinux" --arg q "$q" --arg c "$c" \
		'{op:"kvm-boot", kernel:$k, qemu:$q, cacheDir:$c, accel:"tcg"}' | "$LIBEXEC/vmsan-probe")
	assert_eq "$(jq -c '[.boots, .cached]' <<<"$out")" '[true,false]'
	assert_contains "$(jq -r .detail <<<"$out")" "booted under tcg"
	out=$(jq -n --arg k "$TEST_TMP/vmlinux" --arg q "$q" --arg c "$c" \
		'{op:"kvm-boot", kernel:$k, qemu:$q, cacheDir:$c, accel:"tcg"}' | "$LIBEXEC/vmsan-probe")
	assert_eq "$(jq -c '[.boots, .cached]' <<<"$out")" '[true,true]'
	# another kernel file (the same name, written again) is asked again
	touch -d '2001-01-01' "$TEST_TMP/vmlinux"
	out=$(jq -n --arg k "$TEST_TMP/vmlinux" --arg q "$q" --arg c "$c" \
		'{op:"kvm-boot", kernel:$k, qemu:$q, cacheDir:$c, accel:"tcg"}' | "$LIBEXEC/vmsan-probe")
	assert_eq "$(jq .cached <<<"$out")" false
	# a file that is no kernel: QEMU refuses it, and that is 'does not boot'
	# (text: random bytes may pass for a flat image and run as code)
	printf 'this is not a kernel\n' >"$TEST_TMP/junk"
	out=$(jq -n --arg k "$TEST_TMP/junk" --arg q "$q" \
		'{op:"kvm-boot", kernel:$k, qemu:$q, accel:"tcg"}' | "$LIBEXEC/vmsan-probe")
	assert_eq "$(jq .boots <<<"$out")" false
	assert_contains "$(jq -r .detail <<<"$out")" "QEMU stopped"
	# bad requests
	run "$LIBEXEC/vmsan-probe" <<<'{"op":"kvm-boot","kernel":"rel/path","qemu":"/usr/bin/true"}'
	assert_eq "$status" 100
	run "$LIBEXEC/vmsan-probe" <<<"{\"op\":\"kvm-boot\",\"kernel\":\"$k\",\"qemu\":\"$q\",\"accel\":\"hvf\"}"
	assert_eq "$status" 100
	assert_contains "$output" "accel must be kvm or tcg"
}

@test "kvm-boot: where /dev/kvm opens but the guest kernel does not boot under it, doctor says why and promises TCG" {
	require_root
	require_cmd qemu-system-x86_64
	[ -c /dev/kvm ] || skip "no /dev/kvm on this host"
	load init_helper
	local k q=/usr/bin/qemu-system-x86_64 out mode group
	k=$(guest_kernel)
	# the host's own answer, as nobody with the device's group (as a VMM)
	mode=$(stat -c %a /dev/kvm) group=$(stat -c %G /dev/kvm)
	getent group kvm >/dev/null || groupadd --system kvm
	chgrp kvm /dev/kvm
	chmod 0660 /dev/kvm
	out=$(jq -n --arg k "$k" --arg q "$q" '{op:"kvm-boot", kernel:$k, qemu:$q}' | "$LIBEXEC/vmsan-probe") || true
	local boots detail
	boots=$(jq -r .boots <<<"$out")
	detail=$(jq -r .detail <<<"$out")
	run --separate-stderr "$VMSAN" doctor --json
	chgrp "$group" /dev/kvm
	chmod "$mode" /dev/kvm
	# the control: the check ran (it reached QEMU under KVM: an answer, not an error)
	[[ $boots =~ ^(true|false)$ ]] || { echo "no answer: $out" >&2; false; }
	assert_eq "$(jq -r '.checks[] | select(.name == "kvm-boot") | .status' <<<"$output")" \
		"$([ "$boots" = true ] && echo pass || echo warn)"
	if [ "$boots" = false ]; then
		assert_contains "$(jq -r '.checks[] | select(.name == "kvm-boot") | .detail' <<<"$output")" "${detail:0:40}"
		assert_eq "$(jq -r .vmm.accel <<<"$output")" tcg
	else
		assert_eq "$(jq -r .vmm.accel <<<"$output")" kvm
	fi
}
