#!/usr/bin/env bats
# vmsan-fc: the plan for both VMMs (no privileges), and QEMU started,
# stopped and killed for real, as an unprivileged uid in a namespace with
# the TAP handed over as a descriptor.

load test_helper
load init_helper

FC=$TOP/libexec/vmsan-fc

fc() { "$FC" "$@"; }

# root_conf KEY=VALUE...: the root helpers' configuration for this test
# (VMSAN_ROOT_CONFIG: honoured for root itself only, never under sudo).
root_conf() {
	printf '%s\n' "$@" >"$TEST_TMP/root.conf"
	chmod 644 "$TEST_TMP/root.conf"
	export VMSAN_ROOT_CONFIG=$TEST_TMP/root.conf
}

# (call root_conf first: $(fcreq) runs in a subshell)
fcreq() {
	fc_request '.vmm = "firecracker" | del(.accel)'"${1:+ | $1}"
}

# fcid OP [JSON-FIELDS]: an operation on the test's VM, found by id.
fcid() { fc "$1" <<<"{\"id\":\"vm-1a2b3c4d\"${2:+,$2}}"; }

teardown_extra() {
	qemu_down
	"$FC" cleanup <<<'{"id":"vm-1a2b3c4d"}' >/dev/null 2>&1 || true
}

@test "fc plan: QEMU microvm, the same two disks and kernel command line, TAP as a descriptor" {
	run fc plan <<<"$(fc_request)"
	assert_eq "$status" 0
	local argv
	argv=$(echo "$output" | jq -r '.argv | join(" ")')
	assert_contains "$argv" "qemu-system-x86_64 -name vmsan-vm-1a2b3c4d,process=vmsan-vm-1a2b3c4d"
	assert_contains "$argv" "-machine microvm,x-option-roms=off,rtc=on,acpi=off,memory-backend=ram"
	# the guest's RAM: a shared file vmsan-fc makes, what snapshots copy
	assert_contains "$argv" "-object memory-backend-file,id=ram,size=256M,mem-path=/dev/shm/vmsan/vm-1a2b3c4d.ram,share=on -accel tcg -cpu max"
	assert_contains "$argv" "-nodefaults -no-user-config -display none -no-reboot"
	assert_contains "$argv" "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
	# QEMU opens no file of the caller's: descriptors in fd sets
	assert_contains "$argv" "-add-fd fd=4,set=1,opaque=vm-rw -add-fd fd=5,set=1,opaque=vm-ro -drive id=vm,file=/dev/fdset/1,format=raw,if=none"
	assert_contains "$argv" "-add-fd fd=6,set=2,opaque=image-ro -drive id=image,file=/dev/fdset/2,format=raw,if=none,readonly=on"
	assert_contains "$argv" "-add-fd fd=7,set=3,opaque=console -serial file:/dev/fdset/3"
	assert_contains "$argv" "-netdev tap,id=net0,fd=3 -device virtio-net-device,netdev=net0,mac=06:00:ac:10:00:02"
	# entropy from QEMU's getrandom(), rate-limited: no file opened by name
	assert_contains "$argv" "-object rng-builtin,id=rng0 -device virtio-rng-device,rng=rng0,max-bytes=65536,period=1000"
	assert_contains "$argv" "-chardev socket,id=qmp,fd=8,server=on,wait=off -mon chardev=qmp,mode=control"
	[[ $argv != *"$TEST_TMP"* ]]
	[[ $argv != *-daemonize* ]]
	assert_eq "$(echo "$output" | jq -r .kernelCmdline)" "console=ttyS0 reboot=t panic=-1 root=/dev/vda rw init=/vmsan/init tsc_early_khz=2100000 vmsan.lower=/dev/vdb vmsan.hostname=vm-1a2b3c4d vmsan.port=9119 vmsan.ip=$GUEST_IP/30 vmsan.gw=$HOST_IP vmsan.dns=$HOST_IP"
	# KVM: host CPU, no TSC override; no image disk: the VM disk alone (a
	# kernel file of its own, whose KVM boot check has no answer kept yet)
	cp "$(guest_kernel)" "$TEST_TMP/vmlinux-kvm"
	run fc plan <<<"$(fc_request ".accel = \"kvm\" | .kernel = \"$TEST_TMP/vmlinux-kvm\" | del(.imageDisk) | .vcpus = 4 | .memoryMib = 1024")"
	assert_eq "$(jq -c .kvmBoot <<<"$output")" '{"checked":false}'
	argv=$(echo "$output" | jq -r '.argv | join(" ")')
	assert_contains "$argv" "-accel kvm -cpu host -smp 4 -m 1024"
	[[ $argv != *id=image* ]]
	assert_eq "$(echo "$output" | jq -r .kernelCmdline | grep -c tsc_early_khz)" 0
	assert_contains "$(echo "$output" | jq -r .kernelCmdline)" "vmsan.lower=none"
}

@test "fc plan: says what start would do from the KVM boot check's kept answer, and boots nothing itself" {
	[ -c /dev/kvm ] || skip "no /dev/kvm on this host"
	vmm_prepare
	# a kernel file of its own, which QEMU (nobody) can read by its path
	cp "$KERNEL" "$TEST_TMP/vmlinux-own"
	chmod 711 "$TEST_TMP"
	local req=".kernel = \"$TEST_TMP/vmlinux-own\" | .accel = \"auto\"" kept
	kept=$(find /run/vmsan/kvm -type f 2>/dev/null | wc -l)
	# no answer kept for this kernel file: KVM, and the check still to come
	run fc plan <<<"$(fc_request "$req")"
	assert_eq "$status" 0
	assert_eq "$(jq -c '[.accel, .kvmBoot]' <<<"$output")" '["kvm",{"checked":false}]'
	assert_eq "$(find /run/vmsan/kvm -type f 2>/dev/null | wc -l)" "$kept"
	# start runs the check (the control: its answer is now kept) ...
	run fc start <<<"$(fc_request "$req | .op = \"start\"")"
	assert_eq "$status" 0
	local used refused
	used=$(jq -r .accel <<<"$output") refused=$(jq -r '.kvmRefused // empty' <<<"$output")
	"$FC" kill <<<'{"id":"vm-1a2b3c4d"}' >/dev/null
	[ "$(find /run/vmsan/kvm -type f | wc -l)" -gt "$kept" ]
	# ... and plan now says what start did
	run fc plan <<<"$(fc_request "$req")"
	assert_eq "$status" 0
	assert_eq "$(jq -r .accel <<<"$output")" "$used"
	assert_eq "$(jq -r .kvmBoot.checked <<<"$output")" true
	if [ "$used" = tcg ]; then
		assert_eq "$(jq -r .kvmRefused <<<"$output")" "$refused"
		assert_contains "$(jq -r '.argv | join(" ")' <<<"$output")" "-accel tcg -cpu max"
		# --accel kvm would be refused by start: so it is by plan
		run fc plan <<<"$(fc_request "$req | .accel = \"kvm\"")"
		assert_eq "$status" 1
		assert_eq "$(jq -r .error.code <<<"$output")" ERR_KVM
	fi
}

@test "fc plan: Firecracker under its jailer, the documented API calls in order, seccomp left on" {
	root_conf firecracker=/opt/fc/firecracker jailer=/opt/fc/jailer chroot-base=/srv/jail
	run fc plan <<<"$(fcreq '.vcpus = 2 | .memoryMib = 512')"
	assert_eq "$status" 0
	assert_eq "$(echo "$output" | jq -r '.jailer | join(" ")')" "/opt/fc/jailer --id vm-1a2b3c4d --exec-file /opt/fc/firecracker --uid 65534 --gid 65534 --chroot-base-dir /srv/jail --netns /run/netns/${IN_HOST:-vmsan-x} --new-pid-ns --cgroup-version 2 --cgroup cpu.max=200000 100000 --cgroup memory.max=603979776 --daemonize -- --api-sock /run/firecracker.socket"
	assert_eq "$(echo "$output" | jq -r .chroot)" /srv/jail/firecracker/vm-1a2b3c4d/root
	assert_eq "$(echo "$output" | jq -c '[.api[] | .method + " " + .path]')" \
		'["PUT /logger","PUT /serial","PUT /boot-source","PUT /drives/vm","PUT /drives/image","PUT /machine-config","PUT /network-interfaces/eth0","PUT /entropy","PUT /actions"]'
	assert_eq "$(echo "$output" | jq -c '.api[3].body')" \
		'{"drive_id":"vm","path_on_host":"vm.ext4","is_root_device":true,"is_read_only":false,"cache_type":"Unsafe","io_engine":"Sync"}'
	assert_eq "$(echo "$output" | jq -c '.api[4].body.is_read_only')" true
	assert_eq "$(echo "$output" | jq -c '.api[5].body')" '{"vcpu_count":2,"mem_size_mib":512,"smt":false,"track_dirty_pages":false}'
	assert_eq "$(echo "$output" | jq -c '.api[8].body')" '{"action_type":"InstanceStart"}'
	local cmdline
	cmdline=$(echo "$output" | jq -r '.api[2].body.boot_args')
	assert_contains "$cmdline" "reboot=k panic=-1 root=/dev/vda rw init=/vmsan/init pci=off"
	[[ $cmdline != *tsc_early_khz* ]]
	[[ "$(echo "$output" | jq -r '.jailer | join(" ")')" != *no-seccomp* ]]
}

@test "fc: bad requests are refused with the field named, nothing started" {
	local bad
	for bad in '.uid = 0' '.gid = 0' '.vmm = "kvmtool"' '.kernel = "vmlinux"' '.vmDisk = "/a/../b"' \
		'.vcpus = 33' '.memoryMib = 10' '.network.mac = "01:00:00:00:00:01"' '.network.mac = "zz"' \
		'.network.tap = "eth0"' '.network.netns = "../x"' '.network.guestIp = "300.1.1.1"' \
		'.network.dns = ["8.8.8.8","1.1.1.1","9.9.9.9","4.4.4.4"]' '.id = "../etc"' '.accel = "hvf"' \
		'.bogus = 1' '.vmDisk = "/a,b"' '.firecracker = {binary:"/tmp/x", jailer:"/tmp/x", chrootBase:"/tmp"}' \
		'.qemu = "/tmp/x"' '.qmpSocket = "/run/x.sock"'; do
		run fc plan <<<"$(fc_request "$bad")"
		[ "$status" -eq 100 ] || { echo "accepted: $bad"; false; }
		assert_eq "$(echo "$output" | jq -r .error.code)" ERR_REQUEST_FIELD
	done
	run fc plan <<<"$(fcreq '.vcpus = 3')"
	assert_eq "$status" 100
	assert_contains "$output" "1 or an even number"
}

@test "fc start: QEMU boots the guest as an unprivileged uid; status, stop (QMP quit), kill" {
	vmm_prepare
	run fc start <<<"$(fc_request '.op = "start"')"
	assert_eq "$status" 0
	local pid st
	pid=$(echo "$output" | jq .pid)
	st=$(echo "$output" | jq .startTime)
	# the VMM runs as the uid asked for, not root, with its name set
	assert_eq "$(stat -c %U "/proc/$pid")" nobody
	assert_eq "$(cat "/proc/$pid/comm")" vmsan-vm-1a2b3c
	# shellcheck disable=SC2034 # the process wait_agent watches
	INIT_WRAP=$pid
	wait_agent
	run ctl exec -- hostname
	assert_eq "$output" vm-1a2b3c4d
	run fcid status
	assert_eq "$(echo "$output" | jq .running)" true
	# QEMU got descriptors, and the files stay root's: it opened none
	assert_eq "$(stat -c %U "$TEST_TMP/vm.ext4" "$TEST_TMP/run")" "root
root"
	# the QMP socket and root's record of the VMM are root's alone
	[ -S /run/vmsan/vmm/vm-1a2b3c4d/qmp.sock ]
	assert_eq "$(stat -c '%U %a' /run/vmsan/vmm/vm-1a2b3c4d)" "root 700"
	assert_eq "$(jq -c '[.owner, .pid]' /run/vmsan/vmm/vm-1a2b3c4d/record.json)" "[0,$pid]"
	[ ! -e "$TEST_TMP/run/qmp.sock" ] && [ ! -e "$TEST_TMP/run/vmm.pid" ]
	# a request names the VM, never a pid or a socket
	run fc kill <<<"{\"id\":\"vm-1a2b3c4d\",\"pid\":$pid,\"startTime\":$st}"
	assert_eq "$status" 100
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_REQUEST_FIELD
	run fc stop <<<"{\"id\":\"vm-1a2b3c4d\",\"qmpSocket\":\"/run/x.sock\"}"
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_REQUEST_FIELD
	# another VM's id: nothing of it runs
	run fc kill <<<'{"id":"vm-99999999"}'
	assert_eq "$(echo "$output" | jq -c '[.ok, .wasRunning]')" "[true,false]"
	kill -0 "$pid"
	# a user acting through sudo cannot touch a VM that is not theirs
	run env SUDO_UID=4242 SUDO_GID=4242 "$FC" kill <<<'{"id":"vm-1a2b3c4d"}'
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_NOT_OWNER
	kill -0 "$pid"
	# a guest that does not power off: QMP quit after the timeout
	run fcid stop '"timeoutSec":1'
	assert_eq "$status" 0
	assert_eq "$(echo "$output" | jq -r .how)" quit
	run fcid status
	assert_eq "$(echo "$output" | jq .running)" false
	[ ! -e /run/vmsan/vmm/vm-1a2b3c4d ]
	# again, and this time killed
	run fc start <<<"$(fc_request '.op = "start"')"
	assert_eq "$status" 0
	pid=$(echo "$output" | jq .pid)
	run fc start <<<"$(fc_request '.op = "start"')"
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_VM_RUNNING
	run fcid kill
	assert_eq "$(echo "$output" | jq -c '[.wasRunning, .running]')" "[true,false]"
	# nothing left to signal
	run fcid kill
	assert_eq "$(echo "$output" | jq .wasRunning)" false
	# cleanup gives the id up
	[ "$(head -n 1 /run/vmsan/ids/vm-1a2b3c4d)" = 0 ]
	run fcid cleanup
	assert_eq "$status" 0
	[ ! -e /run/vmsan/ids/vm-1a2b3c4d ]
}

@test "fc snapshot (QEMU): state, memory and disk saved while paused; restored, the guest's files and processes go on" {
	vmm_prepare
	run fc start <<<"$(fc_request '.op = "start"')"
	assert_eq "$status" 0
	local pid snap=$TEST_TMP/snap ram=/dev/shm/vmsan/vm-1a2b3c4d.ram
	pid=$(jq .pid <<<"$output")
	# the guest's RAM is a file of the VMM's uid, the size of the guest
	assert_eq "$(stat -c '%U %s' "$ram")" "nobody $((256 << 20))"
	INIT_WRAP=$pid
	wait_agent
	ctl exec -- sh -c 'echo kept >/root/file'
	# shellcheck disable=SC2016 # the guest's shell expands it
	ctl exec --detach -- sh -c 'i=0; while :; do i=$((i + 1)); echo $i >/tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.1; done'
	sleep 1
	# pause and resume
	local q='"id":"vm-1a2b3c4d"'
	run fc pause <<<"{$q}"
	assert_eq "$(jq .paused <<<"$output")" true
	run timeout 2 "$CTL" --agent "$GUEST_IP:9119" --token-file "$TOKEN_FILE" exec -- true
	[ "$status" -ne 0 ]
	run fc resume <<<"{$q}"
	assert_eq "$(jq .paused <<<"$output")" false
	ctl exec -- true
	# bad input: a directory that is not there, a VM that is not running
	run fc snapshot <<<"{$q,\"vmDisk\":\"$TEST_TMP/vm.ext4\",\"dir\":\"$TEST_TMP/nowhere\"}"
	[ "$status" -ne 0 ]
	assert_contains "$output" "$TEST_TMP/nowhere"
	ctl exec -- true     # still running after the refusal
	mkdir "$snap"
	run fc snapshot <<<"{$q,\"vmDisk\":\"$TEST_TMP/vm.ext4\",\"dir\":\"$snap\",\"resume\":false}"
	assert_eq "$status" 0
	[ "$(jq .stateBytes <<<"$output")" -gt 1000 ]
	# the memory copy keeps its holes: far less than 256 MiB allocated
	[ "$(jq .memoryBytes <<<"$output")" -lt $((200 << 20)) ]
	[ -s "$snap/state" ] && [ -s "$snap/memory" ] && [ -s "$snap/disk.ext4" ]
	local at
	at=$(ctl exec -- cat /tmp/count 2>/dev/null || true)
	[ -z "$at" ]     # paused: the agent does not answer (ctl gave up)
	# the snapshot's files were made by the caller (root here), new
	run fc snapshot <<<"{$q,\"vmDisk\":\"$TEST_TMP/vm.ext4\",\"dir\":\"$snap\"}"
	assert_eq "$status" 1
	assert_contains "$output" "already there"
	[ -s "$snap/state" ]
	run fcid kill
	[ ! -e "$ram" ]
	# restored twice, one after the other, each on its own copy of the disk
	for n in 1 2; do
		cp --sparse=always "$snap/disk.ext4" "$TEST_TMP/vm$n.ext4"
		run fc start <<<"$(fc_request ".op = \"start\" | .vmDisk = \"$TEST_TMP/vm$n.ext4\" | .incoming = \"$snap\"")"
		assert_eq "$status" 0
		pid=$(jq .pid <<<"$output")
		# shellcheck disable=SC2034 # the process wait_agent watches
		INIT_WRAP=$pid
		wait_agent
		run ctl exec -- cat /root/file
		assert_eq "$output" kept
		local c1 c2
		c1=$(ctl exec -- cat /tmp/count)
		sleep 0.5
		c2=$(ctl exec -- cat /tmp/count)
		[ "$c2" -gt "$c1" ]      # the counter process runs on
		run fcid kill
		assert_eq "$(jq .running <<<"$output")" false
	done
	# a snapshot of another memory size does not restore: a clear error
	run fc start <<<"$(fc_request ".op = \"start\" | .memoryMib = 512 | .incoming = \"$snap\"")"
	assert_eq "$status" 1
	assert_contains "$output" "256 MiB, not 512"
	[ ! -e "$ram" ]
}

@test "fc start: a VMM that cannot start is a clear error and leaves nothing running" {
	vmm_prepare notap
	# no TAP in the namespace
	run fc start <<<"$(fc_request '.op = "start"')"
	assert_eq "$status" 1
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_VMM_START
	assert_contains "$output" "cannot open TAP vmstap0 in $IN_HOST"
	# a kernel QEMU cannot load
	ip -n "$IN_HOST" tuntap add dev vmstap0 mode tap
	: >"$TEST_TMP/empty-kernel"
	chmod 644 "$TEST_TMP/empty-kernel"
	run fc start <<<"$(fc_request ".op = \"start\" | .kernel = \"$TEST_TMP/empty-kernel\"")"
	assert_eq "$status" 1
	assert_contains "$output" "QEMU did not start"
	[ -z "$(pgrep -f "process=vmsan-vm-1a2b3c4d" || true)" ]
	# a user acting through sudo: the VMM runs as them, on their files
	run env SUDO_UID=4242 SUDO_GID=4242 "$FC" start <<<"$(fc_request '.op = "start"')"
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_PERMISSION
	assert_contains "$output" "runs as 4242:4242"
	# in the namespace vmsan-net made for that VM only
	run env SUDO_UID=4242 SUDO_GID=4242 "$FC" start <<<"$(fc_request '.op = "start" | .uid = 4242 | .gid = 4242')"
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_PERMISSION
	assert_contains "$output" "runs in namespace vmsan-vm-1a2b3c4d, not $IN_HOST"
	# an id root holds (the failed starts above claimed it) is not theirs
	local mine='.op = "start" | .uid = 4242 | .gid = 4242 | .network.netns = "vmsan-vm-1a2b3c4d"'
	run env SUDO_UID=4242 SUDO_GID=4242 "$FC" start <<<"$(fc_request "$mine")"
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_ID_TAKEN
	"$FC" cleanup <<<'{"id":"vm-1a2b3c4d"}' >/dev/null
	# its files are opened with its rights, not root's: a directory it
	# cannot enter is one it cannot name
	run env SUDO_UID=4242 SUDO_GID=4242 "$FC" start <<<"$(fc_request "$mine")"
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_PERMISSION
	assert_contains "$output" "cannot open runDir $TEST_TMP/run: Permission denied"
	chmod 755 "$TEST_TMP"
	run env SUDO_UID=4242 SUDO_GID=4242 "$FC" start <<<"$(fc_request "$mine")"
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_PERMISSION
	assert_contains "$output" "runDir $TEST_TMP/run belongs to uid 0"
	chown 4242:4242 "$TEST_TMP/run"
	ln -s /etc/shadow "$TEST_TMP/evil.ext4"
	run env SUDO_UID=4242 SUDO_GID=4242 "$FC" start <<<"$(fc_request "$mine | .vmDisk = \"$TEST_TMP/evil.ext4\"")"
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_FILE
	assert_contains "$output" "is a symbolic link"
	run env SUDO_UID=4242 SUDO_GID=4242 "$FC" start <<<"$(fc_request "$mine")"
	assert_contains "$output" "cannot open vmDisk $TEST_TMP/vm.ext4: Permission denied"
	[ -z "$(pgrep -f "process=vmsan-vm-1a2b3c4d" || true)" ]
	# and without root
	run setpriv --reuid 65534 --regid 65534 --clear-groups "$FC" start <<<"$(fc_request '.op = "start"')"
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_PERMISSION
}

# fc_fake: Firecracker and its jailer as the test stand-ins (the API socket
# checks every request against Firecracker's own API specification).
fc_fake() {
	FC_SPEC=${FIRECRACKER_API_SPEC:-$TOP/../shared/reference/firecracker-api.yaml}
	[ -f "$FC_SPEC" ] || skip "Firecracker's API specification is not at $FC_SPEC (set FIRECRACKER_API_SPEC)"
	python3 -c 'import yaml' 2>/dev/null || skip "python3-yaml is needed by the fake API socket"
	mkdir -p "$TEST_TMP/fcbin" "$TEST_TMP/jail"
	cp "$TOP/tests/tools/fake-firecracker" "$TEST_TMP/fcbin/firecracker"
	cp "$TOP/tests/tools/fake-jailer" "$TEST_TMP/fcbin/jailer"
	chmod 755 "$TEST_TMP" "$TEST_TMP/fcbin" "$TEST_TMP/fcbin"/*
	# the stand-ins read their settings beside themselves (vmsan-fc gives
	# the jailer a clean environment)
	jq -n --arg s "$FC_SPEC" --arg a "$TEST_TMP/api.log" --arg j "$TEST_TMP/jailer.log" \
		'{spec:$s, apiLog:$a, jailerLog:$j}' >"$TEST_TMP/fcbin/fake.json"
	chmod 644 "$TEST_TMP/fcbin/fake.json"
	# Firecracker runs as nobody: its log must be writable by it
	: >"$TEST_TMP/api.log"
	chmod 666 "$TEST_TMP/api.log"
	root_conf "firecracker=$TEST_TMP/fcbin/firecracker" "jailer=$TEST_TMP/fcbin/jailer" \
		"chroot-base=$TEST_TMP/jail"
}

fcstart() {
	fc_request ".op = \"start\" | .vmm = \"firecracker\" | del(.accel) | .vcpus = 2 | .memoryMib = 512${1:+ | $1}"
}

@test "fc start (Firecracker): the jailer's command line, every API call valid against the spec and in order; stop is ctrl-alt-del" {
	vmm_prepare
	fc_fake
	run fc start <<<"$(fcstart)"
	assert_eq "$status" 0
	local pid
	pid=$(jq .pid <<<"$output")
	# the jailer got exactly the planned command line
	assert_eq "$(jq -c . "$TEST_TMP/jailer.log")" "$(fc plan <<<"$(fcstart '.op = "plan"')" | jq -c '.jailer[1:]')"
	# the kernel and disks are in the jail (hard links: the same files)
	local root=$TEST_TMP/jail/firecracker/vm-1a2b3c4d/root
	assert_eq "$(stat -c %i "$root/vm.ext4")" "$(stat -c %i "$TEST_TMP/vm.ext4")"
	assert_eq "$(stat -c %i "$root/image.ext4")" "$(stat -c %i "$TEST_TMP/image.ext4")"
	[ -f "$root/vmlinux" ]
	# every call accepted by the spec checker, in the documented order
	assert_eq "$(jq -s -c '[.[] | .method + " " + .path]' "$TEST_TMP/api.log")" \
		'["PUT /logger","PUT /serial","PUT /boot-source","PUT /drives/vm","PUT /drives/image","PUT /machine-config","PUT /network-interfaces/eth0","PUT /entropy","PUT /actions"]'
	assert_eq "$(jq -s -c '[.[] | .status] | unique' "$TEST_TMP/api.log")" "[204]"
	# Firecracker runs as the uid asked for, in the VM's namespace
	assert_eq "$(stat -c %u "/proc/$pid")" 65534
	assert_eq "$(readlink "/proc/$pid/ns/net")" "$(ip netns exec "$IN_HOST" readlink /proc/self/ns/net)"
	run fcid status
	assert_eq "$(jq .running <<<"$output")" true
	# stop: SendCtrlAltDel, and the VMM ends
	run fcid stop '"timeoutSec":5'
	assert_eq "$status" 0
	assert_eq "$(jq -r .how <<<"$output")" ctrl-alt-del
	assert_eq "$(tail -1 "$TEST_TMP/api.log" | jq -c .body)" '{"action_type":"SendCtrlAltDel"}'
}

@test "fc start (Firecracker): the fake socket refuses what the spec refuses, and a refusal stops start cleanly" {
	vmm_prepare
	fc_fake
	# the checker itself: an unknown field, a wrong type, a bad enum, a path id mismatch
	"$TEST_TMP/fcbin/firecracker" --id t --api-sock "$TEST_TMP/t.sock" 3>&- &
	local fp=$!
	for _ in $(seq 50); do [ -S "$TEST_TMP/t.sock" ] && break; sleep 0.05; done
	put() { curl -s -o /dev/null -w '%{http_code}' --unix-socket "$TEST_TMP/t.sock" -X PUT -d "$2" "http://localhost$1"; }
	assert_eq "$(put /machine-config '{"vcpu_count":2,"mem_size_mib":256,"bogus":1}')" 400
	assert_eq "$(put /machine-config '{"vcpu_count":"2","mem_size_mib":256}')" 400
	assert_eq "$(put /drives/vm '{"drive_id":"vm","is_root_device":true,"cache_type":"Fast"}')" 400
	assert_eq "$(put /drives/vm '{"drive_id":"other","is_root_device":true}')" 400
	assert_eq "$(put /actions '{"action_type":"InstanceStart"}')" 400
	assert_eq "$(put /machine-config '{"vcpu_count":2,"mem_size_mib":256}')" 204
	kill "$fp"
	# a Firecracker that refuses a call: start fails with its message, nothing runs
	python3 - "$TEST_TMP/fcbin/firecracker" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read().replace('    def handle(self, method, path, body):\n', '    def handle(self, method, path, body):\n        if path == "/logger":\n            raise Invalid("logger: refused by this test")\n', 1)
open(p, "w").write(s)
PY
	run fc start <<<"$(fcstart)"
	assert_eq "$status" 1
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_VMM_START
	assert_contains "$output" "Firecracker refused PUT /logger (HTTP 400)"
	sleep 0.2
	[ -z "$(pgrep -f 'firecracker --id vm-1a2b3c4d' || true)" ]
	# the programs and the jail base are root's configuration: a request
	# that names them is refused, whoever sends it
	run fc start <<<"$(fcstart ".firecracker = {binary:\"/tmp/x\", jailer:\"/tmp/x\", chrootBase:\"$TEST_TMP\"}")"
	assert_eq "$status" 100
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_REQUEST_FIELD
	# a jailer that anyone could have replaced is never run
	chmod 777 "$TEST_TMP/fcbin/jailer"
	run fc start <<<"$(fcstart)"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_ROOT_CONFIG
	assert_contains "$output" "jailer $TEST_TMP/fcbin/jailer is not an executable that only root can change"
	[ "$(wc -l <"$TEST_TMP/jailer.log")" -eq 1 ]     # the one run above, before the chmod
}

@test "fc start (Firecracker): a jail whose root/ cannot be made is removed again, and nothing runs" {
	require_cmd strace
	vmm_prepare
	fc_fake
	local jail=$TEST_TMP/jail/firecracker/vm-1a2b3c4d
	# which of vmsan-fc's own mkdirat calls makes the jail's root/ (a run
	# that succeeds, traced, then stopped and cleaned up)
	# (vmsan-fc's own processes, its worker too: strace leaves each
	# process that execs, else the daemonized Firecracker would hold it)
	# (LeakSanitizer, in a sanitized build, cannot work under ptrace)
	local nolsan="ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
	env "$nolsan" strace -f --detach-on=execve -qq -e trace=mkdirat -o "$TEST_TMP/trace1" "$FC" start <<<"$(fcstart)" >/dev/null
	fcid stop '"timeoutSec":5' >/dev/null
	"$FC" cleanup <<<'{"id":"vm-1a2b3c4d"}' >/dev/null
	local n
	n=$(grep 'mkdirat(' "$TEST_TMP/trace1" | grep -n 'mkdirat(.*"root", 0755)' | cut -d: -f1)
	[ -n "$n" ]
	[ ! -e "$jail" ] # what cleanup leaves
	# that mkdirat fails: start fails naming it, the id's jail is gone
	run env "$nolsan" strace -f --detach-on=execve -qq -e trace=mkdirat -o "$TEST_TMP/trace2" -e inject=mkdirat:error=ENOSPC:when="$n" \
		"$FC" start <<<"$(fcstart)"
	assert_eq "$status" 111
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_JAIL
	assert_contains "$output" "cannot create root in the jail base"
	grep -q 'mkdirat(.*"root", 0755) *= -1 ENOSPC .*(INJECTED)' "$TEST_TMP/trace2" # the control
	[ ! -e "$jail" ]
	[ -d "$TEST_TMP/jail/firecracker" ] # every VM's: kept
	[ -z "$(pgrep -f 'firecracker --id vm-1a2b3c4d' || true)" ]
	# the next start makes the jail and runs
	run fc start <<<"$(fcstart)"
	assert_eq "$status" 0
	[ -d "$jail/root" ]
}

@test "fc snapshot (Firecracker): PATCH /vm Paused, PUT /snapshot/create, Resumed; a restore is PUT /snapshot/load into a fresh Firecracker" {
	vmm_prepare
	fc_fake
	run fc start <<<"$(fcstart)"
	assert_eq "$status" 0
	local root=$TEST_TMP/jail/firecracker/vm-1a2b3c4d/root snap=$TEST_TMP/snap
	# pause and resume: PATCH /vm
	: >"$TEST_TMP/api.log"
	run fcid pause
	assert_eq "$(jq .paused <<<"$output")" true
	run fcid resume
	assert_eq "$(jq .paused <<<"$output")" false
	assert_eq "$(jq -s -c '[.[] | .method + " " + .path + " " + .body.state + " " + (.status | tostring)]' "$TEST_TMP/api.log")" \
		'["PATCH /vm Paused 204","PATCH /vm Resumed 204"]'
	mkdir "$snap"
	: >"$TEST_TMP/api.log"
	run fcid snapshot "\"vmDisk\":\"$TEST_TMP/vm.ext4\",\"dir\":\"$snap\""
	assert_eq "$status" 0
	# the documented sequence, each call valid against the spec
	assert_eq "$(jq -s -c '[.[] | .method + " " + .path + " " + (.body | tostring)]' "$TEST_TMP/api.log")" \
		'["PATCH /vm {\"state\":\"Paused\"}","PUT /snapshot/create {\"snapshot_type\":\"Full\",\"snapshot_path\":\"snapshot.state\",\"mem_file_path\":\"snapshot.mem\"}","PATCH /vm {\"state\":\"Resumed\"}"]'
	assert_eq "$(jq -s -c '[.[] | .status] | unique' "$TEST_TMP/api.log")" "[204]"
	# the files came out of the jail into the snapshot, and left the jail
	[ -s "$snap/state" ] && [ -s "$snap/memory" ] && [ -s "$snap/disk.ext4" ]
	[ ! -e "$root/snapshot.state" ] && [ ! -e "$root/snapshot.mem" ]
	assert_eq "$(stat -c %U "$snap/state" "$snap/memory")" "root
root"
	run fcid kill
	# restore: a fresh Firecracker whose only calls are the logger and the load
	: >"$TEST_TMP/api.log"
	run fc start <<<"$(fcstart ".incoming = \"$snap\"")"
	assert_eq "$status" 0
	assert_eq "$(jq -s -c '[.[] | .method + " " + .path]' "$TEST_TMP/api.log")" '["PUT /logger","PUT /snapshot/load"]'
	assert_eq "$(tail -1 "$TEST_TMP/api.log" | jq -c .body)" \
		'{"snapshot_path":"snapshot.state","mem_backend":{"backend_type":"File","backend_path":"snapshot.mem"},"resume_vm":true}'
	assert_eq "$(jq -s -c '[.[] | .status] | unique' "$TEST_TMP/api.log")" "[204]"
	# the copies in the jail are Firecracker's uid's; the snapshot's stay the caller's
	assert_eq "$(stat -c %u "$root/snapshot.mem")" 65534
	assert_eq "$(stat -c %U "$snap/memory")" root
	run fcid kill
	# a snapshot of a VM that is not running: refused, nothing made
	rm -rf "${snap:?}"/*
	run fcid snapshot "\"vmDisk\":\"$TEST_TMP/vm.ext4\",\"dir\":\"$snap\""
	assert_eq "$status" 1
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_VM_NOT_RUNNING
	assert_eq "$(ls -A "$snap")" ""
}
