#!/usr/bin/env bats
# vmsan-init and vmsan-agent in a real guest: QEMU's microvm machine (TCG on
# machines without KVM), started by vmsan-fc, booting our kernel (make
# kernel) with the VM disk as root and the image disk read-only, a TAP in a
# namespace of the test's own.

load test_helper
load init_helper

teardown_extra() { qemu_down; }

@test "vm: a real guest boots to a serving agent; exec, files, clean stop, same disk again" {
	vmm_prepare
	qemu_up '.hostname = "guest1"'
	run ctl exec -- sh -c 'tr "\0" " " </proc/1/cmdline; echo; hostname; uname -r; grep -c "^overlay / " /proc/mounts'
	assert_eq "$status" 0
	assert_eq "${lines[0]}" "/vmsan/init "
	assert_eq "${lines[1]}" guest1
	local kver
	kver=$(basename "$(guest_kernel)" | sed 's/^vmlinux-\([0-9.]*\)-vmsan-.*/\1/')
	[[ ${lines[2]} == "$kver".* ]]
	assert_eq "${lines[3]}" 1
	# files both ways over the real virtio-net link
	head -c 3000000 /dev/urandom >"$TEST_TMP/blob"
	ctl upload --dest /root "$TEST_TMP/blob" >/dev/null
	mkdir "$TEST_TMP/back"
	ctl download --dest "$TEST_TMP/back/" /root/blob >/dev/null
	cmp "$TEST_TMP/blob" "$TEST_TMP/back/blob"
	# a clean stop from inside: init stops everything and QEMU exits
	ctl exec -- sh -c 'echo kept > /root/kept; kill -TERM 1' || true
	local _
	for _ in $(seq 300); do kill -0 "$INIT_WRAP" 2>/dev/null || break; sleep 0.05; done
	run kill -0 "$INIT_WRAP"
	[ "$status" -ne 0 ]
	assert_contains "$(cat "$CONSOLE")" "vmsan-init: reboot"
	# the VM disk was left clean, with what the guest wrote
	run e2fsck -fn "$TEST_TMP/vm.ext4"
	assert_eq "$status" 0
	assert_eq "$(debugfs -R 'cat /upper/root/kept' "$TEST_TMP/vm.ext4" 2>/dev/null)" kept
	# and the next boot of the same disks sees it
	qemu_up '.hostname = "guest1"'
	run ctl exec -- cat /root/kept
	assert_eq "$output" kept
	run ctl exec -- sha256sum /root/blob
	assert_eq "${output%% *}" "$(sha256sum "$TEST_TMP/blob" | cut -d' ' -f1)"
}

@test "vm: E2B's SDK drives the guest's agent (envd): commands, with /bin/sh for the SDK's /bin/bash, and files" {
	vmm_prepare
	qemu_up '.hostname = "guest1"'
	# the busybox image has no bash: the agent runs its sh instead
	run ctl exec -- sh -c 'test -e /bin/bash && echo bash || echo no-bash'
	assert_eq "$output" no-bash
	run in_host node "$TOP/tests/tools/e2b-envd.mjs" "http://$GUEST_IP:9119" "$(cat "$TOKEN_FILE")" guest /tmp
	[ "$status" -eq 0 ] || { echo "$output" >&2; return 1; }
	assert_eq "$(echo "$output" | jq -c .stdout)" '"/bin/sh\nok\nguest1\n"'
	assert_eq "$(echo "$output" | jq -c .cat)" '"written by the SDK\n"'
	assert_eq "$(echo "$output" | jq -c .read)" '"written by the SDK\n"'
	assert_eq "$(ctl exec -- cat /tmp/from-sdk.txt)" "written by the SDK"
}
