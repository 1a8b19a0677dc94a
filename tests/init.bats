#!/usr/bin/env bats
# vmsan-init as PID 1 (of a PID namespace), with real disks on loop devices,
# a real overlay, a real veth and the real agent; see init_helper.bash.

# shellcheck disable=SC2016 # guest commands are single-quoted on purpose
load test_helper
load init_helper

teardown_extra() { guest_down; }

@test "init: refuses to run as anything but PID 1, and bad usage exits 100" {
	run "$INIT"
	assert_eq "$status" 100
	assert_contains "$output" "must run as PID 1"
	run "$INIT" --bogus
	assert_eq "$status" 100
	run "$INIT" --version
	assert_eq "$status" 0
	assert_contains "$output" "vmsan-init "
	run file -L "$INIT"
	assert_contains "$output" "statically linked"
}

@test "init: the root is an overlay of the read-only image and the VM disk, with the usual mounts" {
	guest_up
	run ctl exec -- cat /proc/mounts
	assert_eq "$status" 0
	assert_contains "$output" "overlay / overlay"
	for m in "proc /proc proc" "sysfs /sys sysfs" "devpts /dev/pts devpts" "tmpfs /run tmpfs" \
		"tmpfs /tmp tmpfs" "shm /dev/shm tmpfs"; do
		assert_contains "$output" "$m"
	done
	# PID 1 is init; the VM disk itself is out of sight
	run ctl exec -- cat /proc/1/comm
	assert_eq "$output" vmsan-init
	run ctl exec -- ls /vmsan /upper
	[ "$status" -ne 0 ]
	# writes land in the VM disk's upper dir, never in the image
	run ctl exec -- sh -c 'echo written > /etc/new-file && mkdir -p /srv/x && cat /etc/new-file'
	assert_eq "$output" written
	run ctl exec -- sh -c 'echo x > /dev/null; test -c /dev/null && test -L /dev/fd && ls -l /dev/ptmx'
	assert_eq "$status" 0
	[ "$(sha256sum "$TEST_TMP/image.ext4" | cut -d' ' -f1)" = "$IMG_SUM" ]
	assert_eq "$(cat "$TEST_TMP/root/upper/etc/new-file")" written
	[ -d "$TEST_TMP/root/upper/srv/x" ]
}

@test "init: hostname, network from the command line, resolv.conf replacing a link" {
	guest_up
	run ctl exec -- hostname
	assert_eq "$output" guest1
	run ctl exec -- cat /etc/hostname /etc/resolv.conf
	assert_eq "$output" "guest1
nameserver $HOST_IP"
	run ctl exec -- stat -c %F /etc/resolv.conf
	assert_eq "$output" "regular file"
	# default route via the gateway (little-endian hex in /proc/net/route)
	run ctl exec -- cat /proc/net/route
	assert_contains "$output" "eth0	00000000	0100FA0A"
	# lo is up: the agent answers on 127.0.0.1 inside the guest
	run ctl exec -- cat /sys/class/net/lo/flags /sys/class/net/eth0/flags
	assert_eq "$output" "0x9
0x1003"
	# and the guest reaches the host end of its link
	in_host sh -c "echo hello-from-host | timeout 5 nc -l -p 7777 -s $HOST_IP" &
	sleep 0.3
	run ctl exec -- sh -c "busybox nc $HOST_IP 7777 </dev/null"
	assert_eq "$output" hello-from-host
}

@test "init: the agent gets the image's environment and its token from /run/vmsan, never in any environment" {
	guest_up
	run ctl exec -- env
	assert_contains "$output" "IMAGE_VAR=from-the-image"
	local tok
	tok=$(cat "$TOKEN_FILE")
	[[ "$output" != *"$tok"* ]]
	run ctl exec -- sh -c 'stat -c "%a %u" /run/vmsan /run/vmsan/agent.token; cat /proc/*/environ | tr "\0" "\n"'
	assert_contains "$output" "700 0"
	assert_contains "$output" "600 0"
	[[ "$output" != *"$tok"* ]]
	# a non-root user can read neither
	run ctl exec -u app -- cat /run/vmsan/agent.token
	[ "$status" -ne 0 ]
	[[ "$output" != *"$tok"* ]]
	# the kernel command line carries no secret either
	run ctl exec -- cat /proc/cmdline
	[[ "$output" != *"$tok"* ]]
}

@test "init: orphans are reaped" {
	guest_up
	# grandchildren whose parents exit become init's; they must not linger
	run ctl exec -- sh -c 'for i in 1 2 3 4 5; do (sleep 0.2 &) ; done; exit 0'
	assert_eq "$status" 0
	sleep 1
	run ctl exec -- sh -c 'cat /proc/[0-9]*/stat | awk "{print \$3}" | grep -c Z || true'
	assert_eq "$output" 0
}

@test "init: a dead agent is restarted and serves again" {
	guest_up
	local before after
	before=$(ctl exec -- sh -c 'for p in /proc/[0-9]*; do [ "$(cat $p/comm)" = vmsan-agent ] && echo ${p#/proc/}; done; true')
	[ -n "$before" ]
	# the exec's own connection dies with the agent
	ctl exec -- kill -9 "$before" || true
	wait_agent
	after=$(ctl exec -- sh -c 'for p in /proc/[0-9]*; do [ "$(cat $p/comm)" = vmsan-agent ] && echo ${p#/proc/}; done; true')
	[ -n "$after" ] && [ "$after" != "$before" ]
	assert_contains "$(cat "$CONSOLE")" "the agent exited"
}

@test "init: SIGTERM stops every process (SIGKILL for the stubborn), syncs and ends the VM" {
	guest_up
	ctl exec --detach -- sh -c 'trap "" TERM; while :; do sleep 1; done' >/dev/null
	ctl exec --detach -- sh -c 'trap "echo got-term > /root/term; exit 0" TERM; while :; do sleep 1; done' >/dev/null
	sleep 0.3
	kill -TERM "$(init_pid)"
	local st=0
	wait_init_gone || st=$?
	# reboot(2) in a PID namespace ends it as if by SIGHUP
	assert_eq "$st" 129
	local con
	con=$(cat "$CONSOLE")
	assert_contains "$con" "Terminated received"
	assert_contains "$con" "SIGKILL"
	assert_contains "$con" "reboot"
	# what the well-behaved process wrote before it went is on the disk
	assert_eq "$(cat "$TEST_TMP/root/upper/root/term")" got-term
	# and nothing of the guest is left running
	[ -z "$(ip netns pids "$IN_GUEST")" ]
}

@test "init: the agent's /shutdown (vmsan-agentctl shutdown) stops the VM like SIGTERM" {
	guest_up
	run ctl shutdown
	assert_eq "$status" 0
	assert_contains "$output" stopping
	local st=0
	wait_init_gone || st=$?
	assert_eq "$st" 129
	assert_contains "$(cat "$CONSOLE")" "Terminated received"
}

@test "init: SIGUSR2 (busybox poweroff) and ctrl-alt-del's SIGINT stop it too" {
	guest_up vmsan.off=poweroff
	kill -USR2 "$(init_pid)"
	local st=0
	wait_init_gone || st=$?
	# power off in a PID namespace ends it as if by SIGINT
	assert_eq "$st" 130
	assert_contains "$(cat "$CONSOLE")" "power off"
}

@test "init: bad command-line values are reported and ignored; the guest still comes up" {
	guest_up vmsan.port=0 vmsan.hostname=bad_name! vmsan.mtu=12 vmsan.frobnicate=1 vmsan.dns=1.2.3,"$HOST_IP"
	local con
	con=$(cat "$CONSOLE")
	assert_contains "$con" "ignoring vmsan.port=0"
	assert_contains "$con" "ignoring vmsan.hostname=bad_name!"
	assert_contains "$con" "ignoring vmsan.mtu=12"
	assert_contains "$con" "ignoring unknown option vmsan.frobnicate"
	assert_contains "$con" "ignoring resolver 1.2.3"
	run ctl exec -- cat /etc/resolv.conf
	assert_eq "$output" "nameserver $HOST_IP"
}

@test "init: an image disk that does not mount is a clear message and a stopped VM, not a panic" {
	NO_WAIT=1 guest_up
	guest_down
	IN_GUEST=vmsan-ig$$-bad
	IN_HOST=vmsan-ih$$-bad
	ip netns add "$IN_GUEST"
	ip netns add "$IN_HOST"
	VM_DEV=$(losetup -f --show "$TEST_TMP/vm.ext4")
	mount "$VM_DEV" "$TEST_TMP/root"
	start_init "vmsan.lower=/dev/vmsan-no-such-disk"
	local st=0
	wait_init_gone || st=$?
	assert_eq "$st" 129
	local con
	con=$(cat "$CONSOLE")
	assert_contains "$con" "fatal: cannot mount /dev/vmsan-no-such-disk"
	assert_contains "$con" "stopping the VM"
	[ -z "$(ip netns pids "$IN_GUEST")" ]
}

@test "init: a glibc image with no busybox (dash, coreutils and their libraries only)" {
	require_cmd dash
	IMAGE=glibc guest_up
	run ctl exec -- sh -c 'echo "$0 on $(hostname)"; cat /etc/resolv.conf; id -u'
	assert_eq "$status" 0
	assert_eq "$output" "sh on guest1
nameserver $HOST_IP
0"
	run ctl exec -- env
	assert_contains "$output" "IMAGE_VAR=from-the-image"
}

@test "init: a musl image (a dynamic musl program and musl's loader, no shell at all)" {
	require_cmd musl-gcc
	IMAGE=musl guest_up
	run ctl exec -- /bin/hello
	assert_eq "$status" 0
	assert_eq "$output" "musl-dynamic pid1=1"
	run -127 ctl exec -- /bin/sh -c true
	assert_contains "$output" "No such file or directory"
}
