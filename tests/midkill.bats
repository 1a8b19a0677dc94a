#!/usr/bin/env bats
# The root helpers killed (-9) inside their own run, at each step that
# makes something: vmsan-net setup and vmsan-fc start during a create,
# vmsan-net teardown and vmsan-fc stop/kill/cleanup during rm and stop.
# After each: the command failed, `vmsan gc` (root's: orphans and sweep)
# ran, and the host holds nothing of the VM (tests/leftovers_helper.bash
# reads it from the system: namespace, links, slot, tables, /run/vmsan
# records and their temporary files, the id's claim, RAM file, VMM and
# resolver processes, mounts).
#
# How the kill lands where it should, every time: strace delivers SIGKILL
# on entry to the Nth call of one system call (-e inject=SC:signal=KILL:
# when=N).  strace counts per traced process, so the porcelain itself is
# traced (as root it runs its helpers directly, no sudo between) and each
# helper it starts counts from its own start.  For a create, strace
# attaches only once the porcelain has stopped itself right before the
# step (VMSAN_CREATE_PAUSE=network or vmm, the hook create.bats uses):
# what ran before (vmsan-rootfs, mke2fs) is not traced, and the porcelain
# makes none of the chosen calls from there on.  The control of each case
# reads strace's log: exactly one process was killed, it is the helper
# doing the step (its execve), and what the step follows was made (the
# call before it succeeded in that helper).  A case "with the porcelain"
# also kills the porcelain at its next helper start (clone3 #2: the
# helpers fork with clone, QEMU never runs in these cases): nothing undoes
# the step then, and gc alone must collect it.
#
# On the teardown side (vmsan stop, vmsan rm) no pause is needed: the
# porcelain finds its helpers in $VMSAN_LIBEXECDIR, and there one helper
# is a wrapper that runs it under strace for one operation only (killer),
# so the count is that helper's alone.  A bystander VM runs beside each
# case and must still answer exec after it.
#
# Real guests under QEMU (TCG) in the test host namespace; nothing leaves
# the machine.

bats_require_minimum_version 1.5.0
load test_helper
load net_helper
load init_helper
load leftovers_helper

setup_file() {
	guest_suite_start || return 0
}

teardown_file() {
	guest_suite_down
}

setup() {
	guest_test_setup
	require_cmd strace
	ID=
	BYST=
}

teardown() {
	# a failed test's leftovers, so that the next one starts clean
	if [ -n "${ID:-}" ]; then
		pkill -9 -f "process=vmsan-$ID" 2>/dev/null || true
		vmsan rm -f "$ID" >/dev/null 2>&1 || true
		vmsan gc >/dev/null 2>&1 || true
	fi
	[ -z "${BYST:-}" ] || vmsan rm -f "$BYST" >/dev/null 2>&1 || true
	rm -rf "$TEST_TMP"
}

# wait_state PID FIELD-TEST: until /proc/PID/status matches (10 s at most).
wait_status() {
	for _ in $(seq 400); do
		grep -qE "$2" "/proc/$1/status" 2>/dev/null && return 0
		sleep 0.025
	done
	echo "pid $1 never matched $2" >&2
	return 1
}

TRACED=execve,write,linkat,rename,pwrite64,mount,umount2,unshare,sendmsg,sendto,ioctl,clone,clone3,bind,ftruncate,mkdirat,connect,kill,unlink,unlinkat,pidfd_send_signal

# create_killed PAUSE SC N [both]: a create whose helper is killed on entry
# to its Nth SC, strace attached at step PAUSE; with "both" the porcelain
# is killed too before it undoes anything.  Sets ID, RC (create's exit
# status), LOG (strace's log), SLOT (the VM's slot, if it got one).
create_killed() {
	local pause=$1 sc=$2 n=$3 both=${4:-} pid spid
	local inj=(-e "inject=$sc:signal=KILL:when=$n")
	[ -z "$both" ] || inj+=(-e "inject=clone3:signal=KILL:when=2")
	LOG=$TEST_TMP/strace.log
	slots_set >"$TEST_TMP/slots.before"
	# (LeakSanitizer, in a sanitized build, runs its check at exit in a
	# clone of its own: the clone counts would be its, so it is off here)
	# shellcheck disable=SC2086 # CREATE_ARGS: words on purpose
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 VMSAN_CREATE_PAUSE=$pause nsenter --net="/run/netns/$H" "$TOP/bin/vmsan" create --json --verbose --accel tcg \
		${CREATE_ARGS:---network-policy custom --allowed-domain example.test} >"$TEST_TMP/create.out" \
		2>"$TEST_TMP/create.err" &
	pid=$!
	wait_status "$pid" '^State:.*T \(stopped\)'
	timeout 120 strace -f -qq -s 300 -o "$LOG" -e trace="$TRACED" "${inj[@]}" -p "$pid" 2>"$TEST_TMP/strace.err" &
	spid=$!
	wait_status "$pid" '^TracerPid:[[:space:]]*[1-9]'
	kill -CONT "$pid"
	RC=0
	wait "$pid" || RC=$?
	wait "$spid" || true
	ID=$(grep -o 'vm-[0-9a-f]\{8\}: record made' "$TEST_TMP/create.err" | cut -d: -f1)
	[ -n "$ID" ] || { cat "$TEST_TMP/create.err" >&2; return 1; }
	SLOT=$(grep -oE 'slot\\?":[0-9]+' "$LOG" | head -1 | grep -oE '[0-9]+$' || true)
	[ -n "$SLOT" ] || SLOT=$(comm -13 <(sort "$TEST_TMP/slots.before") <(slots_set | sort) | head -1)
	[ -z "$SLOT" ] || echo "$SLOT" >"$TEST_TMP/slot.$ID"
}

# worker_of PID: the worker of root helper PID (lib/rootproc.c: the work
# runs in a child of a session of its own; the process sudo started only
# waits for it), from its first clone3 in $LOG
worker_of() {
	local w
	w=$(grep -E "^$1 +(clone3\(|<\.\.\. clone3 resumed>).* = [0-9]+$" "$LOG" | head -1 | awk '{ print $NF }')
	echo "${w:-$1}"
}

# killed_in HELPER OP SC N MADE [both]: the control of a kill: the create
# failed; the one process killed (besides the porcelain, with "both") is
# HELPER doing OP, on entry to its Nth SC; MADE (a regex) matched one of
# its calls before (what the step follows was made).
killed_in() {
	local helper=$1 op=$2 sc=$3 n=$4 made=$5 both=${6:-} hp killed
	[ "$RC" -ne 0 ] || { echo "create succeeded" >&2; return 1; }
	hp=$(grep -E "^[0-9]+ +execve\(\"[^\"]*/$helper\", \[\"[^\"]*\", \"$op\"" "$LOG" | awk '{ print $1 }' | head -1)
	[ -n "$hp" ] || { echo "no $helper $op in the log" >&2; return 1; }
	hp=$(worker_of "$hp")
	# what the helper started (its resolver) is killed by the undo or gc:
	# its processes are left out
	local kids=" $hp " k
	for _ in 1 2 3; do
		for k in $kids; do
			kids+=" $(grep -E "^$k +(clone\(|<\.\.\. clone resumed>).* += [0-9]+$" "$LOG" | awk '{ print $NF }' | tr '\n' ' ')"
		done
	done
	killed=$(grep -E '^[0-9]+ +\+\+\+ killed by SIGKILL' "$LOG" | awk '{ print $1 }' | sort -n |
		while read -r k; do [ "$k" != "$hp" ] && [[ "$kids " == *" $k "* ]] || echo "$k"; done | tr '\n' ' ')
	if [ -n "$both" ]; then
		grep -qE '^[0-9]+ +\+\+\+ killed by SIGKILL' "$LOG" || return 1
		[[ " $killed" == *" $hp "* ]] || { echo "killed: $killed, not $helper $hp" >&2; return 1; }
		[ "$(wc -w <<<"$killed")" = 2 ] || { echo "killed: $killed (wanted $hp and the porcelain)" >&2; return 1; }
	else
		assert_eq "$killed" "$hp "
	fi
	killed_at "$hp" "$sc" "$n" "$made" "$helper"
}

# killed_at PID SC N MADE NAME: PID was killed on entry to its Nth SC (N-1
# returned, the Nth did not), after a call matching MADE (what the step
# follows was made).
killed_at() {
	local hp=$1 sc=$2 n=$3 made=$4 name=$5
	assert_eq "$(grep -cE "^$hp +$sc\(" "$LOG")" "$n"
	grep -E "^$hp +$sc\(" "$LOG" | tail -1 | grep -q ' <unfinished ...>\|= ?$' ||
		{ echo "the ${n}th $sc returned:" >&2; grep -E "^$hp +$sc\(" "$LOG" | tail -1 >&2; return 1; }
	grep -qE "^$hp +$made" "$LOG" || {
		echo "$name made nothing matching $made before the kill; its calls:" >&2
		grep -E "^$hp " "$LOG" | cut -c1-160 | tail -25 >&2
		return 1
	}
}

# gc_then_clean: root's gc, then nothing of $ID on the host (and no slot
# taken that was free before the create).
gc_then_clean() {
	# while root holds a record of the id, the id stays its owner's
	if [ -e "/run/vmsan/net/$ID.json" ] || [ -e "/run/vmsan/vmm/$ID/record.json" ]; then
		[ -e "/run/vmsan/ids/$ID" ] || { echo "a record of $ID is left, its claim is not" >&2; return 1; }
	fi
	removed_left "$ID" >"$TEST_TMP/before-gc"
	run vmsan gc --json
	assert_eq "$status" 0
	echo "$output" >"$TEST_TMP/gc.json"
	local left
	left=$(removed_left "$ID")
	[ -z "$left" ] || {
		echo "left after gc:" >&2
		echo "$left" >&2
		echo "(before gc: $(tr '\n' ';' <"$TEST_TMP/before-gc"); gc: $output)" >&2
		return 1
	}
	assert_eq "$(comm -13 <(sort "$TEST_TMP/slots.before") <(slots_set | sort) | tr '\n' ' ')" ""
	# a record of what each case left for gc, for BENCHMARKS.md
	printf '%s\t%s\t%s\n' "$BATS_TEST_DESCRIPTION" "$(tr '\n' ';' <"$TEST_TMP/before-gc")" \
		"$(jq -c '[.found[] | .found]' <<<"$output")" >>"${MIDKILL_REPORT:-/dev/null}"
}

# net_case SC N MADE [both] / fc_case SC N MADE [both]: one create killed
# in vmsan-net setup / vmsan-fc start, controlled, collected.
net_case() {
	create_killed network "$1" "$2" "${4:-}"
	killed_in vmsan-net setup "$1" "$2" "$3" "${4:-}"
	gc_then_clean
}
fc_case() {
	create_killed vmm "$1" "$2" "${4:-}"
	killed_in vmsan-fc start "$1" "$2" "$3" "${4:-}"
	gc_then_clean
}

# ---- vmsan-net setup, in a create ------------------------------------------
# Its steps (net/*.c): the id's claim (a file written, then linked into
# place), the slot (bitmap bit, cursor), the first record (with the slot),
# the host table, the namespace (unshare, bind mount), the veth pair, the
# TAP, the VM's ruleset, the resolver (fork), the record naming it.

@test "midkill: vmsan-net setup killed at each step of a create; gc leaves nothing" {
	net_case linkat 1 'write\([0-9]+, "0\\n.*\) += [0-9]+'
	net_case pwrite64 1 'linkat\(.*\) += 0'
	net_case pwrite64 2 'pwrite64\(.*\) += 1'
	net_case rename 1 'pwrite64\(.*, 4, 4096\) += 4'
	net_case mount 2 'unshare\(CLONE_NEWNET\) += 0'
	net_case sendmsg 3 'sendmsg\(.*nlmsg_len=108, nlmsg_type=(RTM_NEWLINK|0x10 ).*\) += [0-9]+'
	net_case ioctl 3 'ioctl\([0-9]+, TUNSETIFF, .*\) += 0'
	net_case sendto 2 'ioctl\([0-9]+, TUNSETIFF, .*\) += 0'
	net_case clone 1 'sendto\(.*\) += [0-9]+'
	net_case rename 2 'clone\(.*\) += [0-9]+'
}

@test "midkill: vmsan-net setup and the porcelain killed at each step of a create; gc alone leaves nothing" {
	net_case linkat 1 'write\([0-9]+, "0\\n.*\) += [0-9]+' both
	net_case pwrite64 2 'pwrite64\(.*\) += 1' both
	net_case rename 1 'pwrite64\(.*, 4, 4096\) += 4' both
	net_case mount 2 'unshare\(CLONE_NEWNET\) += 0' both
	net_case sendmsg 3 'sendmsg\(.*nlmsg_len=108, nlmsg_type=(RTM_NEWLINK|0x10 ).*\) += [0-9]+' both
	net_case clone 1 'sendto\(.*\) += [0-9]+' both
	net_case rename 2 'clone\(.*\) += [0-9]+' both
}

# ---- vmsan-fc start, in a create (--accel tcg: no KVM boot check) ----------
# Its steps (fc/qemu.c): root's directory for the VM, the QMP socket, the
# RAM file, the VMM forked, root's record naming it, QMP asked.

@test "midkill: vmsan-fc start killed at each step of a create; gc leaves nothing" {
	fc_case bind 1 'mkdirat\(.*\) += 0'
	fc_case ftruncate 1 'bind\(.*qmp.sock.*\) += 0'
	fc_case clone 1 'ftruncate\(.*\) += 0'
	fc_case rename 1 'clone\(.*\) += [0-9]+'
}

@test "midkill: vmsan-fc start and the porcelain killed at each step of a create; gc alone leaves nothing" {
	fc_case ftruncate 1 'bind\(.*qmp.sock.*\) += 0' both
	fc_case clone 1 'ftruncate\(.*\) += 0' both
	fc_case rename 1 'clone\(.*\) += [0-9]+' both
}


# ---- vmsan-net teardown, in an rm --------------------------------------------

@test "midkill: vmsan-net teardown killed at its record's removal: the record it leaves never names a slot another VM has since taken" {
	local a b slot_a slot_b rec
	a=$(vmsan create --json --accel tcg --network-policy deny-all | jq -r .vm.id)
	ID=$a
	slot_a=$(jq .slot "/run/vmsan/net/$a.json")
	rec=/run/vmsan/net/$a.json
	# the kill: on entry to the one call that removes root's record of $a
	LOG=$TEST_TMP/strace.log
	nsenter --net="/run/netns/$H" strace -f -qq -o "$LOG" -P "$rec" -e trace=unlink -e inject=unlink:signal=KILL -- \
		"$TOP/bin/vmsan" rm -f "$a" >/dev/null 2>&1 || true
	# control: vmsan-net was killed there, and the namespace had gone first
	grep -qE '^[0-9]+ +unlink\("'"$rec"'"\) += \?' "$LOG" || { cat "$LOG" >&2; false; }
	grep -qE '^[0-9]+ +\+\+\+ killed by SIGKILL' "$LOG"
	[ -e "$rec" ] && [ ! -e "/run/netns/vmsan-$a" ]
	# the slot is still the record's: no other VM can be given it
	slot_taken "$slot_a" || { echo "slot $slot_a was freed while $rec names it" >&2; false; }
	b=$(vmsan create --json --accel tcg --network-policy deny-all | jq -r .vm.id)
	slot_b=$(jq .slot "/run/vmsan/net/$b.json")
	[ "$slot_b" != "$slot_a" ]
	# a second rm finishes the job, and the other VM goes on
	vmsan rm -f "$a" >/dev/null || vmsan gc >/dev/null
	[ -z "$(removed_left "$a")" ] || { removed_left "$a" >&2; false; }
	run vmsan exec "$b" -- echo up
	assert_eq "$output" up
	slot_taken "$slot_b"
	vmsan rm -f "$b" >/dev/null
	ID=
}

@test "midkill: vmsan-net setup killed before it publishes a port: its record does not name the port, so gc cannot take it from the VM that publishes it next" {
	local a b addr
	# killed after its first record (with the slot) and before the port is
	# published: at the namespace's bind mount, the porcelain too (nothing
	# undoes it before gc)
	CREATE_ARGS="--network-policy deny-all --publish-port 18181:80" create_killed network mount 2 both
	killed_in vmsan-net setup mount 2 'unshare\(CLONE_NEWNET\) += 0' both
	a=$ID
	assert_eq "$(jq -c .ports "/run/vmsan/net/$a.json")" "[]"
	# another VM publishes the port meanwhile, then gc collects the first
	b=$(vmsan create --json --accel tcg --network-policy deny-all --publish-port 18181:80 | jq -r .vm.id)
	addr=$(jq -r .nsAddr "/run/vmsan/net/$b.json")
	run vmsan gc --json
	assert_eq "$status" 0
	assert_eq "$(removed_left "$a")" ""
	nsenter --net="/run/netns/$H" nft list map ip vmsan pub | grep -q "18181 : $addr" ||
		{ nsenter --net="/run/netns/$H" nft list map ip vmsan pub >&2; false; }
	vmsan rm -f "$b" >/dev/null
	ID=
}

# ---- vmsan stop and vmsan rm: vmsan-fc stop/kill/cleanup, vmsan-net teardown --
# The porcelain finds its helpers in $VMSAN_LIBEXECDIR: here a directory of
# links to the real ones, but for one helper a wrapper that runs it under
# strace for one operation only, killed on entry to its Nth SC (the
# helper's own count: its other operations, the porcelain and the other
# helpers are not traced).

# killer HELPER OP SC N: that directory in $LX; the trace goes to $LOG.
killer() {
	LX=$TEST_TMP/lx
	LOG=$TEST_TMP/strace.log
	rm -rf "$LX" "$LOG"
	mkdir -p "$LX"
	local f
	for f in "$TOP"/libexec/*; do ln -s "$f" "$LX/${f##*/}"; done
	rm "$LX/vmsan-$1"
	cat >"$LX/vmsan-$1" <<EOS
#!/bin/sh
[ "\$1" != "$2" ] || exec strace -f -qq -s 200 -o "$LOG" -e trace="$TRACED,openat,$3" -e inject="$3:signal=KILL:when=$4" "$TOP/libexec/vmsan-$1" "\$@"
exec "$TOP/libexec/vmsan-$1" "\$@"
EOS
	chmod 755 "$LX/vmsan-$1"
}

# td_case CMD HELPER OP SC N MADE: a VM (its resolver, a published port)
# stopped or removed (CMD: stop, rm) with vmsan-HELPER OP killed on entry
# to its Nth SC.  Control: that helper was killed there (the one process
# killed, N calls made, the last unfinished) and MADE (a regex) matched one
# of its calls before.  Then root's gc; a VM stopped must be stopped with
# nothing of it running (its claim alone left), and the user's stop again
# and rm take the rest; nothing of it is left, no slot is taken that was
# free, and the bystander ($BYST) still answers exec.
td_case() {
	local cmd=$1 helper=$2 op=$3 sc=$4 n=$5 made=$6 hp killed out
	ID=$(vmsan create --json --accel tcg --network-policy custom --allowed-domain example.test \
		--publish-port 18183:80 | jq -r .vm.id)
	note_slot "$ID"
	killer "$helper" "$op" "$sc" "$n"
	RC=0
	if [ "$cmd" = rm ]; then
		VMSAN_LIBEXECDIR=$LX vmsan rm -f "$ID" >"$TEST_TMP/cmd.out" 2>&1 || RC=$?
	else
		VMSAN_LIBEXECDIR=$LX vmsan stop "$ID" >"$TEST_TMP/cmd.out" 2>&1 || RC=$?
	fi
	hp=$(grep -E "^[0-9]+ +execve\(\"[^\"]*/vmsan-$helper\", \[\"[^\"]*\", \"$op\"" "$LOG" | awk '{ print $1 }' | head -1)
	[ -n "$hp" ] || { echo "no vmsan-$helper $op traced ($cmd: $(cat "$TEST_TMP/cmd.out"))" >&2; return 1; }
	hp=$(worker_of "$hp")
	killed=$(grep -E '^[0-9]+ +\+\+\+ killed by SIGKILL' "$LOG" | awk '{ print $1 }' | tr '\n' ' ')
	assert_eq "$killed" "$hp "
	killed_at "$hp" "$sc" "$n" "$made" "vmsan-$helper"
	# while root holds a record of the id, the id stays its owner's
	if [ -e "/run/vmsan/net/$ID.json" ] || [ -e "/run/vmsan/vmm/$ID/record.json" ]; then
		[ -e "/run/vmsan/ids/$ID" ] || { echo "a record of $ID is left, its claim is not" >&2; return 1; }
	fi
	removed_left "$ID" >"$TEST_TMP/before-gc"
	run vmsan gc --json
	assert_eq "$status" 0
	if [ "$cmd" = stop ]; then
		out=$(leftovers "$ID" | grep -v "^/run/vmsan/ids/$ID\$" || true)
		[ -z "$out" ] || { echo "left of the stopped $ID after gc: $out (gc: $output)" >&2; return 1; }
		assert_eq "$(vmsan list --json | jq -r --arg id "$ID" '.[] | select(.id == $id) | .status')" stopped
		vmsan stop "$ID" >/dev/null
	fi
	vmsan rm -f "$ID" >/dev/null 2>&1 || [ "$cmd" = rm ]
	out=$(removed_left "$ID")
	[ -z "$out" ] || {
		echo "left of $ID: $out (before gc: $(tr '\n' ';' <"$TEST_TMP/before-gc"); gc: $output)" >&2
		return 1
	}
	run vmsan exec "$BYST" -- echo bystander-ok
	assert_eq "$output" bystander-ok
	printf '%s\t%s %s %s %s %s\t%s\n' "$BATS_TEST_DESCRIPTION" "$cmd" "$helper" "$op" "$sc" "$n" \
		"$(tr '\n' ';' <"$TEST_TMP/before-gc")" >>"${MIDKILL_REPORT:-/dev/null}"
	ID=
}

# bystander_up: another VM, running beside each case ($BYST).
bystander_up() {
	BYST=$(vmsan create --json --accel tcg --network-policy deny-all | jq -r .vm.id)
	[ -n "$BYST" ] && [ "$BYST" != null ]
}

@test "midkill: vmsan-fc kill and cleanup killed at each step of an rm; gc leaves nothing, another VM untouched" {
	bystander_up
	td_case rm fc kill pidfd_send_signal 1 'openat\(.*record\.json", O_RDONLY\) += [0-9]+'
	td_case rm fc kill unlinkat 1 'pidfd_send_signal\(.*\) += 0'
	td_case rm fc kill unlinkat 2 'unlinkat\([0-9]+, "vm-[0-9a-f]+\.ram", 0\) += 0'
	td_case rm fc kill unlinkat 3 'unlinkat\([0-9]+, "(qmp\.sock|record\.json)", 0\) += 0'
	td_case rm fc kill unlinkat 4 'unlinkat\([0-9]+, "(qmp\.sock|record\.json)", 0\) += 0'
	td_case rm fc cleanup unlinkat 1 'openat\(.*\.lock", .*\) += [0-9]+'
	td_case rm fc cleanup unlink 1 'unlinkat\([0-9]+, "vm-[0-9a-f]+\.ram", 0\) += -1 ENOENT'
	td_case rm fc cleanup unlinkat 3 'unlink\(".*\.lock"\) += 0'
}

@test "midkill: vmsan-net teardown killed at each step of an rm; gc leaves nothing, another VM untouched" {
	bystander_up
	td_case rm net teardown sendto 1 'bind\(.*AF_NETLINK.*\) += 0'
	td_case rm net teardown kill 1 'sendto\(.*\) += [0-9]+'
	td_case rm net teardown umount2 1 'kill\(.*SIGKILL\) += 0'
	td_case rm net teardown unlink 1 'umount2\(.*\) += 0'
	td_case rm net teardown unlink 2 'unlink\("/run/netns/.*"\) += 0'
	td_case rm net teardown pwrite64 1 'unlink\("/run/vmsan/net/.*"\) += 0'
}

@test "midkill: vmsan-fc stop killed at each step of a stop; gc, then the VM stopped with nothing running, another VM untouched" {
	bystander_up
	td_case stop fc stop unlinkat 1 'openat\(.*record\.json", O_RDONLY\) += [0-9]+'
	td_case stop fc stop unlinkat 2 'unlinkat\([0-9]+, "vm-[0-9a-f]+\.ram", 0\) += 0'
	td_case stop fc stop unlinkat 3 'unlinkat\([0-9]+, "(qmp\.sock|record\.json)", 0\) += 0'
	td_case stop fc stop unlinkat 4 'unlinkat\([0-9]+, "(qmp\.sock|record\.json)", 0\) += 0'
}

@test "midkill: vmsan-net teardown killed at each step of a stop; gc, then the VM stopped with nothing running, another VM untouched" {
	bystander_up
	td_case stop net teardown sendto 1 'bind\(.*AF_NETLINK.*\) += 0'
	td_case stop net teardown kill 1 'sendto\(.*\) += [0-9]+'
	td_case stop net teardown umount2 1 'kill\(.*SIGKILL\) += 0'
	td_case stop net teardown unlink 1 'umount2\(.*\) += 0'
	td_case stop net teardown unlink 2 'unlink\("/run/netns/.*"\) += 0'
	td_case stop net teardown pwrite64 1 'unlink\("/run/vmsan/net/.*"\) += 0'
}

# ---- the KVM boot check's answer, kept by vmsan-fc start ---------------------

@test "midkill: vmsan-fc start killed as it keeps the KVM boot check's answer: no file of it is left, and the next start keeps it" {
	[ -c /dev/kvm ] || skip "no /dev/kvm on this host"
	local hp out
	# no answer kept for this QEMU and kernel: the check runs
	rm -f /run/vmsan/kvm/kvm-boot-*.json
	find /run/vmsan/kvm -mindepth 1 2>/dev/null | sort >"$TEST_TMP/kvm.before"
	# killed on entry to the call that puts the answer in place (a rename
	# of a named temporary file, or the link of one with no name)
	killer fc start renameat,linkat 1
	RC=0
	VMSAN_LIBEXECDIR=$LX vmsan create --json --verbose --accel auto --network-policy deny-all \
		>"$TEST_TMP/create.out" 2>"$TEST_TMP/create.err" || RC=$?
	ID=$(grep -o 'vm-[0-9a-f]\{8\}: record made' "$TEST_TMP/create.err" | cut -d: -f1)
	[ "$RC" -ne 0 ] && [ -n "$ID" ] || { cat "$TEST_TMP/create.err" >&2; false; }
	# control: vmsan-fc start was killed there, its answer written whole
	hp=$(grep -E '^[0-9]+ +execve\("[^"]*/vmsan-fc", \["[^"]*", "start"' "$LOG" | awk '{ print $1 }' | head -1)
	[ -n "$hp" ]
	hp=$(worker_of "$hp")
	assert_eq "$(grep -E '^[0-9]+ +\+\+\+ killed by SIGKILL' "$LOG" | awk '{ print $1 }')" "$hp"
	grep -E "^$hp +(renameat|linkat)\(" "$LOG" | tail -1 | grep -q ' = ?$' || { grep -E "^$hp " "$LOG" | tail -5 >&2; false; }
	grep -qE "^$hp +write\([0-9]+, \"kvm; host " "$LOG" ||
		{ grep -E "^$hp +write" "$LOG" | tail -5 >&2; false; }
	# nothing of the answer's file is left where root keeps them
	assert_eq "$(find /run/vmsan/kvm -mindepth 1 | sort | comm -13 "$TEST_TMP/kvm.before" -)" ""
	run vmsan gc --json
	assert_eq "$status" 0
	assert_eq "$(removed_left "$ID")" ""
	# the next start checks again and keeps its answer
	out=$(vmsan create --json --accel auto --network-policy deny-all)
	ID=$(jq -r .vm.id <<<"$out")
	assert_eq "$(find /run/vmsan/kvm -name 'kvm-boot-*.json' | wc -l)" 1
	jq -e '.boots | type == "boolean"' /run/vmsan/kvm/kvm-boot-*.json >/dev/null
	vmsan rm -f "$ID" >/dev/null
	ID=
}
