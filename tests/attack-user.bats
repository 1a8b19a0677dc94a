#!/usr/bin/env bats
# The privilege boundary, attacked as a member of the vmsan group would:
# an ordinary user, `sudo -n` on the installed root helpers, hand-written
# JSON.  Each attack asserts the refusal, that nothing changed, and a
# control that the attempt reached the helper (its own JSON reply, not
# sudo's refusal).  Network attacks: attack-net.bats.

bats_require_minimum_version 1.5.0
load test_helper
load net_helper
load init_helper
load attack_helper

setup_file() {
	[ "$(id -u)" = 0 ] || return 0
	command -v visudo >/dev/null || return 0
	attack_up
	net_fixture_up
	nsx "$H" sysctl -qw net.ipv4.ip_forward=1
}

teardown_file() {
	attack_down
	[ -z "${H:-}" ] || net_fixture_down
}

setup() {
	require_root
	require_cmd visudo
	require_cmd setpriv
	require_cmd qemu-system-x86_64
	guest_kernel >/dev/null
	TEST_TMP=$(mktemp -d /tmp/vmsan-test.XXXXXX)
	chmod 755 "$TEST_TMP"
	rm -f "$ROOTCONF"
}

teardown() {
	[ -z "${SOCAT_PID:-}" ] || kill "$SOCAT_PID" 2>/dev/null || true
	[ -z "${KILLER:-}" ] || rm -f "$KILLER"
	wait
	if [ -n "${KVM_WAS:-}" ]; then
		chgrp "${KVM_WAS#* }" /dev/kvm
		chmod "${KVM_WAS%% *}" /dev/kvm
		gpasswd -d "$ATK" kvm >/dev/null 2>&1 || true
	fi
	rm -f "$SECRET_DIR/qmp.sock"
	# every id the two users hold (a failed test's too): VMM, RAM, claim
	local f
	grep -lxE "$(id -u "$ATK")|$(id -u "$VIC")" /run/vmsan/ids/* 2>/dev/null | while read -r f; do
		"$TOP/libexec/vmsan-fc" cleanup <<<"{\"id\":\"${f##*/}\"}" >/dev/null 2>&1 || true
	done
	rm -f "$ROOTCONF"
	rm -rf "$TEST_TMP"
}

# atk_vmm ID: a VMM of the attacker's own (QEMU, no network; the guest need
# not boot), started through sudo; its pid in $ATK_PID.
atk_vmm() {
	local d=/home/$ATK/$1 out
	own_vmm_files "$ATK" "$d"
	out=$(helper_as "$ATK" "$FCH" start <<<"$(fc_start_req "$ATK" "$1" "$d")")
	ATK_IDS="${ATK_IDS:-} $1"
	ATK_PID=$(jq -er .pid <<<"$out") || { echo "$out" >&2; return 1; }
}

@test "attack: vmsan-fc runs no program a caller names (request, environment, PATH); Firecracker only for who may open /dev/kvm" {
	local mark=/tmp/vmsan-atk-ran$$ d=/home/$ATK/p
	rm -f "$mark"
	as_user "$ATK" /bin/sh -c "mkdir -p /home/$ATK/bin && printf '#!/bin/sh\ntouch $mark\n' >/home/$ATK/bin/jailer &&
		cp /home/$ATK/bin/jailer /home/$ATK/bin/qemu-system-x86_64 && chmod 755 /home/$ATK/bin/*"
	own_vmm_files "$ATK" "$d"
	# the request: a jailer and a Firecracker of the caller's
	run helper_as "$ATK" "$FCH" start <<<"$(fc_start_req "$ATK" vm-atk00001 "$d" \
		".vmm = \"firecracker\" | del(.accel) | .firecracker = {binary:\"/home/$ATK/bin/jailer\", jailer:\"/home/$ATK/bin/jailer\", chrootBase:\"/home/$ATK\"}")"
	reached "$output"
	assert_eq "$status" 100
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_REQUEST_FIELD
	assert_contains "$output" "unknown field 'firecracker'"
	[ ! -e "$mark" ]
	# control: the same request without them reaches start.  Firecracker
	# only for a caller who may open /dev/kvm (its jailer would give the
	# VMM's uid, theirs, a node of it in the jail)
	if [ -c /dev/kvm ] && ! as_user "$ATK" /bin/sh -c ': <>/dev/kvm' 2>/dev/null; then
		run helper_as "$ATK" "$FCH" start <<<"$(fc_start_req "$ATK" vm-atk00001 "$d" '.vmm = "firecracker" | del(.accel)')"
		reached "$output"
		assert_eq "$(jq -r .error.code <<<"$output")" ERR_PERMISSION
		assert_contains "$output" "Firecracker needs /dev/kvm"
		[ ! -e /run/vmsan/ids/vm-atk00001 ]
		# /dev/kvm for group kvm, the attacker in it, as install.sh sets it up
		KVM_WAS="$(stat -c %a /dev/kvm) $(stat -c %G /dev/kvm)"
		getent group kvm >/dev/null || groupadd --system kvm
		chgrp kvm /dev/kvm
		chmod 0660 /dev/kvm
		usermod -aG kvm "$ATK"
	fi
	# then it looks for the jailer only where root's configuration says
	run helper_as "$ATK" "$FCH" start <<<"$(fc_start_req "$ATK" vm-atk00001 "$d" '.vmm = "firecracker" | del(.accel)')"
	reached "$output"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_MISSING_TOOL
	assert_contains "$output" "jailer /usr/bin/jailer is not there"
	# the environment and PATH: the porcelain's old VMSAN_JAILER, a PATH
	# whose first qemu is the caller's; the VMM is root's configured QEMU
	AS_ENV="VMSAN_JAILER=/home/$ATK/bin/jailer VMSAN_FIRECRACKER=/home/$ATK/bin/jailer VMSAN_ROOT_CONFIG=/home/$ATK/evil.conf PATH=/home/$ATK/bin:/usr/bin:/bin" \
		run helper_as "$ATK" "$FCH" start <<<"$(fc_start_req "$ATK" vm-atk00001 "$d")"
	reached "$output"
	assert_eq "$(jq .ok <<<"$output")" true
	ATK_IDS=vm-atk00001
	assert_eq "$(readlink "/proc/$(jq .pid <<<"$output")/exe")" "$(readlink -f /usr/bin/qemu-system-x86_64)"
	[ ! -e "$mark" ]
	# VMSAN_ROOT_CONFIG is root's own switch: under sudo (SUDO_UID set) it
	# is ignored, run by root itself it is read
	printf 'qemu = /tmp/evil-qemu\n' >"$TEST_TMP/evil.conf"
	run env SUDO_UID="$(id -u "$ATK")" SUDO_GID="$(id -g "$ATK")" VMSAN_ROOT_CONFIG="$TEST_TMP/evil.conf" \
		"$FCH" plan <<<"$(fc_start_req "$ATK" vm-atk00001 "$d")"
	assert_eq "$(jq -r '.argv[0]' <<<"$output")" /usr/bin/qemu-system-x86_64
	run env VMSAN_ROOT_CONFIG="$TEST_TMP/evil.conf" "$FCH" plan <<<"$(fc_start_req "$ATK" vm-atk00001 "$d")"
	assert_eq "$(jq -r '.argv[0]' <<<"$output")" /tmp/evil-qemu
}

@test "attack: the root configuration is trusted only when only root can change it" {
	local d=/home/$ATK/c
	own_vmm_files "$ATK" "$d"
	# a configuration file others may write is refused whole
	set_root_conf "max-vms-per-user = 5"
	chmod 666 "$ROOTCONF"
	run helper_as "$ATK" "$FCH" start <<<"$(fc_start_req "$ATK" vm-atk00002 "$d")"
	reached "$output"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_ROOT_CONFIG
	assert_contains "$output" "not a file only root can change"
	# a QEMU the caller could replace is never run
	as_user "$ATK" /bin/cp /usr/bin/true "/home/$ATK/qemu"
	set_root_conf "qemu = /home/$ATK/qemu"
	run helper_as "$ATK" "$FCH" start <<<"$(fc_start_req "$ATK" vm-atk00002 "$d")"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_ROOT_CONFIG
	assert_contains "$output" "qemu /home/$ATK/qemu is not an executable that only root can change"
	# an unknown setting names its line
	set_root_conf "qemu = /usr/bin/qemu-system-x86_64" "jail = /tmp"
	run helper_as "$ATK" "$FCH" start <<<"$(fc_start_req "$ATK" vm-atk00002 "$d")"
	assert_contains "$(jq -r .error.message <<<"$output")" "$ROOTCONF:2: unknown setting 'jail'"
	# control: root's own file is read
	set_root_conf "qemu = /usr/bin/qemu-system-x86_64"
	run helper_as "$ATK" "$FCH" start <<<"$(fc_start_req "$ATK" vm-atk00002 "$d")"
	assert_eq "$(jq .ok <<<"$output")" true
	ATK_IDS=vm-atk00002
}

@test "attack: root opens no path of the caller's with root's rights (secrets, FIFOs, symlinks)" {
	local d=/home/$ATK/f sec=$SECRET_DIR/secret before
	own_vmm_files "$ATK" "$d"
	before=$(stat -c '%U %a %h %s' "$sec")
	# root's secret as the kernel, the VM disk, the image disk: the caller
	# cannot open it, so neither does vmsan-fc on its behalf
	local f
	for f in kernel vmDisk imageDisk; do
		run helper_as "$ATK" "$FCH" start <<<"$(fc_start_req "$ATK" vm-atk00003 "$d" ".$f = \"$sec\"")"
		reached "$output"
		assert_eq "$(jq -r .error.code <<<"$output")" ERR_PERMISSION
		assert_contains "$output" "cannot open $f $sec: Permission denied"
	done
	# no oracle: a file that is not there reads the same as one denied
	run helper_as "$ATK" "$FCH" start <<<"$(fc_start_req "$ATK" vm-atk00003 "$d" ".kernel = \"$SECRET_DIR/nothing\"")"
	assert_contains "$output" "cannot open kernel $SECRET_DIR/nothing: Permission denied"
	# a FIFO as a disk cannot hang root's helper
	as_user "$ATK" /usr/bin/mkfifo "$d/fifo"
	run helper_as "$ATK" "$FCH" start <<<"$(fc_start_req "$ATK" vm-atk00003 "$d" ".imageDisk = \"$d/fifo\"")"
	reached "$output"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_FILE
	assert_contains "$output" "imageDisk $d/fifo is not a regular file"
	# the console file planted as a symlink to /etc/shadow
	local shadow
	shadow=$(stat -c '%U %G %a' /etc/shadow)
	as_user "$ATK" /bin/ln -s /etc/shadow "$d/run/console.log"
	run helper_as "$ATK" "$FCH" start <<<"$(fc_start_req "$ATK" vm-atk00003 "$d")"
	reached "$output"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_FILE
	assert_contains "$output" "console file console.log is a symbolic link"
	assert_eq "$(stat -c '%U %G %a' /etc/shadow)" "$shadow"
	assert_eq "$(stat -c '%U %a %h %s' "$sec")" "$before"
	# nothing was left running, no RAM file, no record
	[ -z "$(pgrep -f 'process=vmsan-vm-atk00003' || true)" ]
	[ ! -e /dev/shm/vmsan/vm-atk00003.ram ] && [ ! -e /run/vmsan/vmm/vm-atk00003 ]
	# control: with its own files in place, the same request starts a VMM,
	# and the console file it gets is its own, made by itself
	as_user "$ATK" /bin/rm "$d/run/console.log"
	run helper_as "$ATK" "$FCH" start <<<"$(fc_start_req "$ATK" vm-atk00003 "$d")"
	assert_eq "$(jq .ok <<<"$output")" true
	ATK_IDS=vm-atk00003
	assert_eq "$(stat -c %U "$d/run/console.log" "$d/run/vmm.log")" "$ATK
$ATK"
	# and the RAM file lives where only root may make files
	run as_user "$ATK" /usr/bin/touch /dev/shm/vmsan/vm-victim.ram
	[ "$status" -ne 0 ]
}

@test "attack: the KVM boot check, whose answer every user gets, is out of its caller's reach (signals, limits, priority)" {
	[ -c /dev/kvm ] || skip "no /dev/kvm on this host"
	local d=/home/$ATK/k kernel honest kept out
	kernel=$(find "$P/share/vmsan/kernels" -name 'vmlinux-*' | head -n 1)
	[ -n "$kernel" ]
	own_vmm_files "$ATK" "$d"
	# /dev/kvm for group kvm, the attacker in it, as install.sh sets it up
	KVM_WAS="$(stat -c %a /dev/kvm) $(stat -c %G /dev/kvm)"
	getent group kvm >/dev/null || groupadd --system kvm
	chgrp kvm /dev/kvm
	chmod 0660 /dev/kvm
	usermod -aG kvm "$ATK"
	# what the check says when nobody interferes (root's probe, its own cache)
	honest=$("$TOP/libexec/vmsan-probe" kvm-boot <<<"{\"kernel\":\"$kernel\",\"qemu\":\"$(command -v qemu-system-x86_64)\"}")
	jq -e '.boots | type == "boolean"' <<<"$honest" >/dev/null || { echo "probe: $honest" >&2; false; }
	rm -rf /run/vmsan/kvm
	# 1. the attacker kills every QEMU of their uid the moment it appears,
	# and starts the VM (the installed, shared kernel) at the lowest
	# priority, in the idle scheduling class, pinned to one CPU
	# (by command line: QEMU renames itself vmsan-<id> once it runs; the
	# loop runs while $d/armed is there, so it ends with the test)
	as_user "$ATK" /usr/bin/touch "$d/armed"
	as_user "$ATK" /bin/sh -c "while [ -e $d/armed ]; do pkill -KILL -u \$(id -u) -f '^[^ ]*qemu-system' && echo killed >>$d/killer.log; sleep 0.005; done" &
	KILLER=$d/armed
	out=$(fc_start_req "$ATK" vm-atk00009 "$d" ".kernel = \"$kernel\" | .accel = \"auto\"" |
		as_user "$ATK" /bin/sh -c "exec /usr/bin/taskset -c 0 /usr/bin/chrt --idle 0 /usr/bin/nice -n 19 /usr/bin/timeout 30 /usr/bin/sudo -n $FCH start") || true
	ATK_IDS=vm-atk00009
	reached "$out"
	# control: the check ran in this start and kept its answer, and the
	# attacker's means work on what is theirs: the VM's own QEMU, which
	# runs as them, was killed (at its start, or once it ran)
	kept=$(cat /run/vmsan/kvm/kvm-boot-*.json)
	as_user "$ATK" /bin/sleep 1
	rm -f "$KILLER"
	wait
	KILLER=
	[ -s "$d/killer.log" ] || { echo "the attacker's own VMM ran unharmed: $out" >&2; false; }
	# the answer kept for everyone is the honest one
	assert_eq "$(jq .boots <<<"$kept")" "$(jq .boots <<<"$honest")"
	if [ "$(jq .boots <<<"$honest")" = false ]; then
		assert_eq "$(jq -r .detail <<<"$kept")" "$(jq -r .detail <<<"$honest")"
	fi
	assert_eq "$(jq .timedOut <<<"$kept")" false
	# 2. 250 MB of address space (a limit sudo hands on): root raises it
	# for the check, or, where root may not (no CAP_SYS_RESOURCE, as in
	# some containers), the check gives no answer and keeps none.  Not with
	# a helper built with AddressSanitizer: its shadow memory alone wants
	# more address space than that, before main
	if ldd "$FCH" | grep -q libasan; then
		echo "# part 2 (ulimit -v) left out: $FCH is built with AddressSanitizer" >&3
		return 0
	fi
	rm -rf /run/vmsan/kvm
	out=$(fc_start_req "$ATK" vm-atk00009 "$d" ".kernel = \"$kernel\" | .accel = \"kvm\"" |
		as_user "$ATK" /bin/sh -c "ulimit -v 250000; exec /usr/bin/timeout 30 /usr/bin/sudo -n $FCH start") || true
	reached "$out"
	kept=$(cat /run/vmsan/kvm/kvm-boot-*.json 2>/dev/null || true)
	if [ -z "$kept" ]; then
		# control: vmsan-fc saw the limit and said so: it refuses to run
		# under it at all (ERR_LIMITS, lib/rootproc.c), before any check
		assert_eq "$(jq -r .error.code <<<"$out")" ERR_LIMITS
		assert_contains "$(jq -r .error.message <<<"$out")" "address space"
	else
		assert_eq "$(jq -c '[.boots, .detail]' <<<"$kept")" "$(jq -c '[.boots, .detail]' <<<"$honest")"
	fi
}

@test "attack: another user's VM is out of reach (stop, kill, pause, snapshot, cleanup, start, status by id; no socket or pid named)" {
	local out vid vpid d=/home/$ATK/o
	out=$(as_user "$VIC" vmsan create --json --network-policy deny-all)
	vid=$(jq -r .vm.id <<<"$out")
	vpid=$(jq -r .vm.process.pid <<<"$out")
	[ -n "$vid" ] && kill -0 "$vpid"
	local op
	for op in stop kill pause resume status cleanup; do
		run helper_as "$ATK" "$FCH" "$op" <<<"{\"id\":\"$vid\"}"
		reached "$output"
		assert_eq "$status" 1
		assert_eq "$(jq -r .error.code <<<"$output")" ERR_NOT_OWNER
	done
	mkdir -p "$d" && chown "$ATK" "$d"
	run helper_as "$ATK" "$FCH" snapshot <<<"{\"id\":\"$vid\",\"vmDisk\":\"/home/$VIC/.vmsan/vms/$vid/disk.ext4\",\"dir\":\"$d\"}"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_NOT_OWNER
	[ -z "$(ls -A "$d")" ]
	# its id cannot be taken over
	own_vmm_files "$ATK" "$d"
	run helper_as "$ATK" "$FCH" start <<<"$(fc_start_req "$ATK" "$vid" "$d")"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_ID_TAKEN
	# the old requests that named root's QMP socket or a pid are refused:
	# a root-only socket listening receives nothing
	local sock=$SECRET_DIR/qmp.sock
	socat -u "UNIX-LISTEN:$sock,fork" "OPEN:$TEST_TMP/received,creat,append" 3>&- &
	SOCAT_PID=$!
	for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.05; done
	for req in "{\"id\":\"$vid\",\"qmpSocket\":\"$sock\"}" "{\"id\":\"$vid\",\"pid\":$vpid,\"startTime\":1}" \
		"{\"id\":\"$vid\",\"apiSocket\":\"$sock\"}"; do
		run helper_as "$ATK" "$FCH" stop <<<"$req"
		reached "$output"
		assert_eq "$(jq -r .error.code <<<"$output")" ERR_REQUEST_FIELD
	done
	[ ! -s "$TEST_TMP/received" ]
	# the victim's VM runs on, unpaused
	kill -0 "$vpid"
	run as_user "$VIC" vmsan exec "$vid" -- echo still-here
	assert_eq "$output" still-here
	# control: the same operations on the attacker's own VMM go through
	atk_vmm vm-atk00004
	[ "$(stat -c %U "/proc/$ATK_PID")" = "$ATK" ]
	run helper_as "$ATK" "$FCH" pause <<<'{"id":"vm-atk00004"}'
	assert_eq "$(jq .paused <<<"$output")" true
	run helper_as "$ATK" "$FCH" kill <<<'{"id":"vm-atk00004"}'
	assert_eq "$(jq -c '[.wasRunning, .running]' <<<"$output")" "[true,false]"
	run helper_as "$ATK" "$FCH" cleanup <<<'{"id":"vm-atk00004"}'
	assert_eq "$(jq .ok <<<"$output")" true
	[ ! -e /run/vmsan/ids/vm-atk00004 ]
	as_user "$VIC" vmsan rm -f "$vid" >/dev/null
}

@test "attack: a user cannot take every VM: the per-user limit, and ids claimed per user" {
	set_root_conf "max-vms-per-user = 2"
	atk_vmm vm-atk00005
	atk_vmm vm-atk00006
	own_vmm_files "$ATK" "/home/$ATK/l7"
	run helper_as "$ATK" "$FCH" start <<<"$(fc_start_req "$ATK" vm-atk00007 "/home/$ATK/l7")"
	reached "$output"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_VM_LIMIT
	assert_contains "$output" "you have 2 VMs"
	[ ! -e /run/vmsan/ids/vm-atk00007 ]
	# another user is not held by the attacker's count
	own_vmm_files "$VIC" "/home/$VIC/l8"
	run helper_as "$VIC" "$FCH" start <<<"$(fc_start_req "$VIC" vm-vic00008 "/home/$VIC/l8")"
	assert_eq "$(jq .ok <<<"$output")" true
	ATK_IDS="$ATK_IDS vm-vic00008"
	# one given up, one more may be had
	helper_as "$ATK" "$FCH" cleanup <<<'{"id":"vm-atk00005"}' >/dev/null
	run helper_as "$ATK" "$FCH" start <<<"$(fc_start_req "$ATK" vm-atk00007 "/home/$ATK/l7")"
	assert_eq "$(jq .ok <<<"$output")" true
	ATK_IDS="$ATK_IDS vm-atk00007"
}

@test "attack: a snapshot never writes over, nor removes, a file it did not make" {
	atk_vmm vm-atk00009
	local s=/home/$ATK/snap v=/home/$VIC/private
	as_user "$ATK" /bin/sh -c "mkdir -p $s && echo keep >$s/state && echo keep >$s/memory"
	run helper_as "$ATK" "$FCH" snapshot <<<"{\"id\":\"vm-atk00009\",\"vmDisk\":\"/home/$ATK/vm-atk00009/vm.ext4\",\"dir\":\"$s\"}"
	reached "$output"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_SNAPSHOT
	assert_contains "$output" "$s/state is already there"
	assert_eq "$(cat "$s/state" "$s/memory")" "keep
keep"
	[ ! -e "$s/disk.ext4" ]
	# into another user's directory: as the caller, so not at all
	as_user "$VIC" /bin/mkdir -m 700 "$v"
	run helper_as "$ATK" "$FCH" snapshot <<<"{\"id\":\"vm-atk00009\",\"vmDisk\":\"/home/$ATK/vm-atk00009/vm.ext4\",\"dir\":\"$v\"}"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_PERMISSION
	[ -z "$(ls -A "$v")" ]
	# control: an empty directory of its own gets the three files, its own
	as_user "$ATK" /bin/mkdir "$s/ok"
	run helper_as "$ATK" "$FCH" snapshot <<<"{\"id\":\"vm-atk00009\",\"vmDisk\":\"/home/$ATK/vm-atk00009/vm.ext4\",\"dir\":\"$s/ok\"}"
	assert_eq "$(jq .ok <<<"$output")" true
	assert_eq "$(stat -c %U "$s/ok/state" "$s/ok/memory" "$s/ok/disk.ext4" | sort -u)" "$ATK"
}

@test "attack: vmsan serve run by a user serves that user's VMs; another user in the group gets nothing of it" {
	local url=http://127.0.0.1:3100 key out id
	key=$(as_user "$VIC" vmsan serve --new-key)
	assert_eq "$(stat -c '%U %a' "/home/$VIC/.vmsan/api-keys")" "$VIC 600"
	AS_ENV="" as_user "$VIC" vmsan serve --port 3100 2>"$TEST_TMP/serve.log" &
	local srv=$!
	for _ in $(seq 100); do nsx "$H" curl -sf "$url/health" >/dev/null 2>&1 && break; sleep 0.05; done
	out=$(nsx "$H" curl -s --max-time 60 -H "X-API-KEY: $key" -d '{"templateID":"base","allow_internet_access":false}' \
		"$url/v2/sandboxes") || true
	id=$(jq -r .sandboxID <<<"$out")
	# control: the sandbox is the victim's VM, its VMM not root
	[ -e "/home/$VIC/.vmsan/vms/$id.json" ] || { echo "$out"; cat "$TEST_TMP/serve.log"; false; }
	local vmm
	vmm=$(jq -r .process.pid "/home/$VIC/.vmsan/vms/$id.json")
	[ "$(stat -c %u "/proc/$vmm")" != 0 ]
	run nsx "$H" curl -s -o /dev/null -w '%{http_code}' -H "X-API-KEY: $key" "$url/sandboxes/$id"
	assert_eq "$output" 200
	# the attacker cannot read the keys, and without one gets 401
	run as_user "$ATK" cat "/home/$VIC/.vmsan/api-keys"
	[ "$status" -ne 0 ]
	run nsx "$H" curl -s -o /dev/null -w '%{http_code}' "$url/sandboxes/$id"
	assert_eq "$output" 401
	# nor a token to the sandbox's envd, nor a daemon of its own over the victim's state
	run nsx "$H" curl -s -o /dev/null -w '%{http_code}' -H "E2b-Sandbox-Id: $id" -H 'X-Access-Token: guessed-guessed-guessed' \
		"$url/health"
	assert_eq "$output" 401
	AS_ENV="VMSAN_DIR=/home/$VIC/.vmsan" run as_user "$ATK" vmsan serve --port 3101
	[ "$status" -ne 0 ]
	assert_contains "$output" "/home/$VIC/.vmsan"
	run nsx "$H" curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:3101/health
	assert_eq "$output" 000
	# the victim's key ends it, through the victim's own rights
	run nsx "$H" curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "X-API-KEY: $key" "$url/sandboxes/$id"
	assert_eq "$output" 204
	[ ! -e "/home/$VIC/.vmsan/vms/$id.json" ]
	kill "$srv" 2>/dev/null || true
}
