#!/usr/bin/env bats
# The accelerator the rest of the suite does not use, so neither path rots:
# every other test creates with --accel auto (KVM where this host's KVM
# boots our kernel, TCG elsewhere); here one VM's whole life runs under
# TCG by force, and under KVM by force where KVM boots (where it does not,
# that --accel kvm is refused cleanly is what is checked).

bats_require_minimum_version 1.5.0
load test_helper
load net_helper
load init_helper

setup_file() { guest_suite_start || return 0; }
teardown_file() { guest_suite_down; }
setup() { guest_test_setup; }
teardown() {
	[ -z "${SID:-}" ] || vmsan snapshot delete "$SID" >/dev/null 2>&1 || true
	[ -z "${ID2:-}" ] || vmsan rm -f "$ID2" >/dev/null 2>&1 || true
	guest_test_teardown
}

# life ACCEL: create, exec, snapshot, restore, rm under ACCEL.
life() {
	local out
	out=$(vmsan create --json --accel "$1" --network-policy deny-all)
	ID=$(jq -r .vm.id <<<"$out")
	assert_eq "$(jq -r .accelUsed "$VMSAN_DIR/vms/$ID.json")" "$1"
	run vmsan exec "$ID" -- sh -c 'echo kept >/root/f; hostname'
	assert_eq "$output" "$ID"
	SID=$(vmsan snapshot create "$ID" --json | jq -r .snapshotId)
	ID2=$(vmsan create --json --snapshot "$SID" | jq -r .vm.id)
	run vmsan exec "$ID2" -- cat /root/f
	assert_eq "$output" kept
	assert_eq "$(jq -r .accelUsed "$VMSAN_DIR/vms/$ID2.json")" "$1"
	vmsan rm -f "$ID2" "$ID" >/dev/null
	vmsan snapshot delete "$SID" >/dev/null
	for v in "$ID" "$ID2"; do
		[ ! -e "$VMSAN_DIR/vms/$v.json" ] && [ ! -e "/run/netns/vmsan-$v" ]
	done
	ID='' ID2='' SID=''
}

@test "smoke under TCG, forced: create, exec, snapshot, restore, rm" {
	life tcg
}

@test "smoke under KVM, forced, where KVM boots our kernel; where it does not, --accel kvm is refused and nothing is left" {
	[ -c /dev/kvm ] || skip "no /dev/kvm on this host"
	local probe before
	probe=$("$TOP/libexec/vmsan-probe" kvm-boot <<<"{\"kernel\":\"$(guest_kernel)\",\"qemu\":\"$(command -v qemu-system-x86_64)\"}")
	if [ "$(jq .boots <<<"$probe")" = true ]; then
		life kvm
		return 0
	fi
	before=$(ls "$VMSAN_DIR/vms")
	run --separate-stderr vmsan create --json --accel kvm --network-policy deny-all
	assert_eq "$status" 1
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_KVM
	assert_contains "$(jq -r .error.message <<<"$output")" "$(jq -r .detail <<<"$probe" | cut -c1-40)"
	assert_eq "$(ls "$VMSAN_DIR/vms")" "$before"
}
