#!/usr/bin/env bats
# Faults and leftovers: each process of a VM's life killed (-9) at its
# step, a guest that panics or fills its memory, a host disk that fills,
# a host "reboot", a user's state removed under running VMs.  After each:
# vmsan list says the truth, vmsan doctor names what is left, vmsan gc
# brings the host back (checked against the real system: namespaces,
# links, tables, /run/vmsan, processes, /dev/shm), and a bystander VM (the
# same user, another state dir) running all along still answers exec.
# Real guests under QEMU in the test host namespace (net_helper.bash);
# nothing leaves the machine.

bats_require_minimum_version 1.5.0
load test_helper
load net_helper
load init_helper
load leftovers_helper

setup_file() {
	guest_suite_start || return 0
	# the bystander: another state dir of the same user, running throughout
	export BYSTANDER_DIR=$BATS_FILE_TMPDIR/bystander
	mkdir -p "$BYSTANDER_DIR"
	ln -s "$VMSAN_DIR/images" "$BYSTANDER_DIR/images"
	BYSTANDER=$(VMSAN_DIR=$BYSTANDER_DIR nsenter --net="/run/netns/$H" "$TOP/bin/vmsan" create --json \
		--network-policy deny-all | jq -r .vm.id)
	export BYSTANDER
}

teardown_file() {
	[ -z "${BYSTANDER:-}" ] || VMSAN_DIR=$BYSTANDER_DIR nsenter --net="/run/netns/$H" "$TOP/bin/vmsan" \
		rm -f "$BYSTANDER" >/dev/null 2>&1 || true
	guest_suite_down
}

setup() {
	guest_test_setup
	IDS=()
}

teardown() {
	local id
	[ -z "${STRAY:-}" ] || kill -9 "$STRAY" 2>/dev/null || true
	for id in "${IDS[@]}"; do
		[ -n "$id" ] || continue
		vmsan rm -f "$id" >/dev/null 2>&1 || true
		VMSAN_DIR=$TEST_TMP/other vmsan rm -f "$id" >/dev/null 2>&1 || true
		# a test that removed the state dir leaves root's records only
		rm -f "/run/vmsan/ids/$id"
	done
	if [ -n "${USER_TEST:-}" ]; then
		# shellcheck disable=SC2086
		set -- $USER_TEST # prefix sudoers group user other
		for id in "${IDS[@]}"; do
			asu "$4" "$1/bin/vmsan" rm -f "$id" >/dev/null 2>&1 || true
			asu "$5" "$1/bin/vmsan" rm -f "$id" >/dev/null 2>&1 || true
		done
		VMSAN_DIR=$TEST_TMP/none vmsan gc >/dev/null 2>&1 || true
		"$TOP/install.sh" --uninstall --prefix "$1" --sudoers "$2" --group "$3" >/dev/null 2>&1 || true
		pkill -9 -u "$4" 2>/dev/null || true
		pkill -9 -u "$5" 2>/dev/null || true
		userdel -r "$4" 2>/dev/null || true
		userdel -r "$5" 2>/dev/null || true
		groupdel "$3" 2>/dev/null || true
		rm -rf "$1" "$2"
	fi
	mountpoint -q "$TEST_TMP/full" 2>/dev/null && umount "$TEST_TMP/full"
	rm -rf "$TEST_TMP"
}

# asu USER CMD...: CMD as USER, as a login would run it, in the test host.
asu() {
	local who=$1
	shift
	nsenter --net="/run/netns/$H" setpriv --reuid="$who" --regid="$who" --init-groups \
		env -i HOME="/home/$who" PATH=/usr/bin:/bin VMSAN_DNS=192.0.2.53 "$@"
}

# create ARGS...: a VM in $VMSAN_DIR; its id in $ID (and IDS, for teardown).
create() {
	local out
	out=$(vmsan create --json "$@") || { echo "$out" >&2; return 1; }
	ID=$(jq -r .vm.id <<<"$out")
	IDS+=("$ID")
	echo "$out" >"$TEST_TMP/create.json"
}

# bystander_ok: the other state dir's VM still runs and answers.
bystander_ok() {
	local out
	out=$(VMSAN_DIR=$BYSTANDER_DIR vmsan exec "$BYSTANDER" -- echo bystander-ok) || true
	assert_eq "$out" bystander-ok
}

# status ID: its derived status in vmsan list --json.
status_of() { vmsan list --json | jq -r --arg id "$1" '.[] | select(.id == $id) | .status'; }

# wait_gone PID: until it has exited (10 s at most).
wait_gone() {
	for _ in $(seq 200); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
	return 1
}

@test "orphans: a state dir removed under a running VM; root's gc (of that state dir) collects it whole" {
	local d=$VMSAN_DIR
	export VMSAN_DIR=$TEST_TMP/other
	mkdir -p "$VMSAN_DIR"
	ln -s "$d/images" "$VMSAN_DIR/images"
	create --network-policy custom --allowed-domain example.test
	note_slot "$ID"
	# control: it really runs, with its resolver, before the fault
	run vmsan exec "$ID" -- echo up
	assert_eq "$output" up
	[ -n "$(vmm_pid "$ID")" ]
	assert_contains "$(leftovers "$ID")" "(vmsan-dns)"
	rm -rf "$VMSAN_DIR"
	# the fault: nothing of the user's state names it any more
	[ -n "$(vmm_pid "$ID")" ]
	run vmsan list --json
	assert_eq "$output" "[]"
	run vmsan gc --dry-run --json
	assert_eq "$status" 0
	jq -e --arg id "$ID" '[.found[] | select(.id == $id)] | length >= 2' <<<"$output" >/dev/null ||
		{ echo "not found: $output" >&2; false; }
	assert_contains "$output" "VM directory"
	run vmsan doctor
	assert_contains "$output" "$ID"
	# dry run: all still there
	[ -n "$(vmm_pid "$ID")" ]
	run vmsan gc --json
	assert_eq "$status" 0
	assert_eq "$(leftovers "$ID")" ""
	run vmsan gc --dry-run --json
	assert_eq "$(jq --arg id "$ID" '[.found[] | select(.id == $id)] | length' <<<"$output")" 0
	bystander_ok
}

@test "orphans: a stopped VM whose state dir is removed: gc gives its id's claim back" {
	local d=$VMSAN_DIR
	export VMSAN_DIR=$TEST_TMP/other
	mkdir -p "$VMSAN_DIR"
	ln -s "$d/images" "$VMSAN_DIR/images"
	create --network-policy deny-all
	vmsan stop "$ID" >/dev/null
	# control: stopped, its network and VMM gone, the claim alone is root's
	# record of it, and it notes the VM's home
	[ ! -e "/run/vmsan/net/$ID.json" ] && [ ! -e "/run/vmsan/vmm/$ID/record.json" ]
	assert_eq "$(head -n 1 "/run/vmsan/ids/$ID")" 0
	assert_eq "$(sed -n 2p "/run/vmsan/ids/$ID" | jq -r .path)" "$VMSAN_DIR/vms/$ID"
	rm -rf "$VMSAN_DIR"
	run vmsan gc --dry-run --json
	assert_contains "$output" "the claim of a stopped VM whose directory $VMSAN_DIR/vms/$ID is gone"
	[ -e "/run/vmsan/ids/$ID" ]
	run vmsan gc --json
	assert_eq "$status" 0
	[ ! -e "/run/vmsan/ids/$ID" ]
	assert_eq "$(removed_left "$ID")" ""
	ID=
	bystander_ok
}

@test "orphans: a user's gc collects their own orphans through the root helpers, never another user's" {
	require_cmd setpriv
	local g=vmscg$$ u=vmscu$$ o=vmsco$$ p=/opt/vmsan-chaos$$
	USER_TEST="$p /etc/sudoers.d/vmsan-chaos$$ $g $u $o"
	"$TOP/install.sh" --no-deps --no-demo --prefix "$p" --sudoers "/etc/sudoers.d/vmsan-chaos$$" \
		--group "$g" >/dev/null 2>&1
	useradd -m -G "$g" "$u"
	useradd -m -G "$g" "$o"
	local mine theirs out
	mine=$(asu "$u" "$p/bin/vmsan" create --json --network-policy deny-all | jq -r .vm.id)
	theirs=$(asu "$o" "$p/bin/vmsan" create --json --network-policy deny-all | jq -r .vm.id)
	IDS+=("$mine" "$theirs")
	note_slot "$mine"
	[ -n "$(vmm_pid "$mine")" ] && [ -n "$(vmm_pid "$theirs")" ]
	# the attacker removes their own state, then tries to get root to
	# collect the other user's VM: by its id, or by naming its directory
	asu "$u" rm -rf "/home/$u/.vmsan"
	out=$(asu "$u" sudo -n "$p/libexec/vmsan/vmsan-fc" orphans <<<'{"dryRun":true}')
	jq -e '.ok' <<<"$out" >/dev/null # control: the helper's own reply
	assert_eq "$(jq -c '[.found[].id]' <<<"$out")" "[\"$mine\"]"
	out=$(asu "$u" sudo -n "$p/libexec/vmsan/vmsan-net" orphans <<<'{"dryRun":true}')
	assert_eq "$(jq -c '[.found[].id]' <<<"$out")" "[\"$mine\"]"
	local rs
	rs=$("$TOP/libexec/vmsan-nftables" compile <<<'{"policy":"deny-all"}' | jq -c .ruleset)
	out=$(asu "$u" sudo -n "$p/libexec/vmsan/vmsan-net" setup \
		<<<"{\"id\":\"vm-0c0c0c0c\",\"ruleset\":$rs,\"vmDir\":\"/home/$o/.vmsan/vms/$theirs\"}" || true)
	assert_eq "$(jq -r .ok <<<"$out")" false
	assert_contains "$(jq -r .error.message <<<"$out")" "request.vmDir"
	[ ! -e /run/vmsan/ids/vm-0c0c0c0c ] && [ ! -e /run/vmsan/net/vm-0c0c0c0c.json ]
	out=$(asu "$u" sudo -n "$p/libexec/vmsan/vmsan-fc" cleanup <<<"{\"id\":\"$theirs\"}" || true)
	assert_eq "$(jq -r .error.code <<<"$out")" ERR_NOT_OWNER
	# the user's gc: its own orphan goes whole, the other user's VM stays
	run asu "$u" "$p/bin/vmsan" gc --json
	assert_eq "$status" 0
	assert_contains "$output" "$mine"
	assert_eq "$(leftovers "$mine")" ""
	run asu "$o" "$p/bin/vmsan" exec "$theirs" -- echo theirs-ok
	assert_eq "$output" theirs-ok
	asu "$o" "$p/bin/vmsan" rm -f "$theirs" >/dev/null
	assert_eq "$(leftovers "$theirs")" ""
	bystander_ok
}

# users_up: an installed vmsan (install.sh into a temporary prefix, its
# sudoers rule, its group) and two members, $U and $O (the other); the
# test's teardown undoes it.
users_up() {
	require_cmd setpriv
	G=vmscg$$ U=vmscu$$ O=vmsco$$ P=/opt/vmsan-chaos$$
	USER_TEST="$P /etc/sudoers.d/vmsan-chaos$$ $G $U $O"
	"$TOP/install.sh" --no-deps --no-demo --prefix "$P" --sudoers "/etc/sudoers.d/vmsan-chaos$$" \
		--group "$G" >/dev/null 2>&1
	useradd -m -G "$G" "$U"
	useradd -m -G "$G" "$O"
	chmod 755 "$TEST_TMP"
}

# stopped_of USER DIR: a VM of USER's in state dir DIR, created and
# stopped through the installed vmsan; its id on stdout.
stopped_of() {
	local id
	id=$(asu "$1" env VMSAN_DIR="$2" "$P/bin/vmsan" create --json --network-policy deny-all | jq -r .vm.id)
	[ -n "$id" ] && [ "$id" != null ] || return 1
	asu "$1" env VMSAN_DIR="$2" "$P/bin/vmsan" stop "$id" >/dev/null
	echo "$id"
}

@test "orphans: a member cannot have another's stopped VM's claim given up: not by their gc, not through the helper, not by moving what they own on its home's path" {
	users_up
	local uid a1 a2 a3 out shared=$TEST_TMP/shared bdir=$TEST_TMP/bdir
	uid=$(id -u "$U")
	# the other makes a shared directory (theirs, sticky, open to all) and
	# a directory of theirs with a symlink to one of the user's
	install -d -o "$O" -m 1777 "$shared"
	install -d -o "$O" -m 755 "$bdir"
	asu "$U" mkdir -p "/home/$U/s3"
	asu "$O" ln -s "/home/$U/s3" "$bdir/link"
	a1=$(stopped_of "$U" "/home/$U/.vmsan")
	IDS+=("$a1")
	a2=$(stopped_of "$U" "$shared/u")
	IDS+=("$a2")
	a3=$(stopped_of "$U" "$bdir/link")
	IDS+=("$a3")
	# control: each is stopped, its claim alone is root's record of it
	for id in "$a1" "$a2" "$a3"; do
		assert_eq "$(head -n 1 "/run/vmsan/ids/$id")" "$uid"
		[ ! -e "/run/vmsan/net/$id.json" ] && [ ! -e "/run/vmsan/vmm/$id/record.json" ]
	done
	# the homes noted: a3's by the path the symlink led to; none for a2,
	# whose path goes through a directory of the other's
	assert_eq "$(sed -n 2p "/run/vmsan/ids/$a1" | jq -r .path)" "/home/$U/.vmsan/vms/$a1"
	assert_eq "$(sed -n 2p "/run/vmsan/ids/$a3" | jq -r .path)" "/home/$U/s3/vms/$a3"
	assert_eq "$(sed -n 2p "/run/vmsan/ids/$a2")" ""
	# the user's state dir of a1 is removed: its home is gone for real
	asu "$U" rm -rf "/home/$U/.vmsan"
	# the other's gc, and the helper asked directly with forged fields
	run asu "$O" "$P/bin/vmsan" gc --json
	assert_eq "$status" 0
	out=$(asu "$O" sudo -n "$P/libexec/vmsan/vmsan-fc" orphans <<<'{"dryRun":false}')
	assert_eq "$(jq -c '.found' <<<"$out")" "[]" # control: the helper's own reply
	out=$(asu "$O" sudo -n "$P/libexec/vmsan/vmsan-fc" orphans \
		<<<"{\"dryRun\":false,\"uid\":$uid,\"owner\":$uid,\"id\":\"$a1\",\"home\":{\"path\":\"/home/$U/.vmsan/vms/$a1\"}}" || true)
	assert_eq "$(jq -r .error.code <<<"$out")" ERR_REQUEST_FIELD
	run asu "$O" sudo -n SUDO_UID="$uid" "$P/libexec/vmsan/vmsan-fc" orphans <<<'{"dryRun":false}'
	[ "$status" -ne 0 ] || assert_eq "$(jq -c .found <<<"$output")" "[]" # sudo's refusal, or the caller unchanged
	out=$(asu "$O" sudo -n "$P/libexec/vmsan/vmsan-net" orphans <<<'{"dryRun":false}')
	jq -e .ok <<<"$out" >/dev/null
	for id in "$a1" "$a2" "$a3"; do
		assert_eq "$(head -n 1 "/run/vmsan/ids/$id")" "$uid"
	done
	# what the other owns on the way to the user's two other homes: the
	# shared directory's entry moved away, the symlink pointed elsewhere
	asu "$O" mv "$shared/u" "$shared/moved"
	asu "$O" ln -sfn "/home/$O" "$bdir/link"
	asu "$U" test ! -e "$shared/u/vms/$a2"
	asu "$U" test ! -e "$bdir/link/vms/$a3"
	# the user's gc, then root's: a1's claim goes (control: gc reached
	# the stopped VMs' claims and gives up those whose home is gone); the
	# two the other "moved" stay the user's
	run asu "$U" "$P/bin/vmsan" gc --json
	assert_eq "$status" 0
	assert_contains "$output" "the claim of a stopped VM whose directory /home/$U/.vmsan/vms/$a1 is gone"
	[ ! -e "/run/vmsan/ids/$a1" ]
	run vmsan gc --json
	assert_eq "$status" 0
	assert_eq "$(head -n 1 "/run/vmsan/ids/$a2")" "$uid"
	assert_eq "$(head -n 1 "/run/vmsan/ids/$a3")" "$uid"
	# put back, they are the user's to remove
	asu "$O" mv "$shared/moved" "$shared/u"
	asu "$O" ln -sfn "/home/$U/s3" "$bdir/link"
	asu "$U" env VMSAN_DIR="$shared/u" "$P/bin/vmsan" rm "$a2" >/dev/null
	asu "$U" env VMSAN_DIR="$bdir/link" "$P/bin/vmsan" rm "$a3" >/dev/null
	for id in "$a1" "$a2" "$a3"; do
		assert_eq "$(removed_left "$id")" ""
	done
	bystander_ok
}

# runtime_left ID: leftovers of a VM that still exists (stopped): its
# claim stays until vmsan rm.
runtime_left() { leftovers "$1" | grep -v "^/run/vmsan/ids/" || true; }

# crashed_then_gc ID: list says it crashed (not running) with its
# console's last lines; doctor names it; gc stops it, leaving nothing
# running of it; the bystander still answers.
crashed_then_gc() {
	local id=$1 out
	out=$(vmsan list --json | jq -c --arg id "$id" '.[] | select(.id == $id)')
	assert_eq "$(jq -r .status <<<"$out")" error
	assert_contains "$(jq -r .statusReason <<<"$out")" "crashed"
	jq -e '.consoleTail | length > 0' <<<"$out" >/dev/null || { echo "no console tail: $out" >&2; return 1; }
	run vmsan doctor
	assert_contains "$output" "$id"
	run vmsan gc --json
	assert_eq "$status" 0
	assert_eq "$(jq -r --arg id "$id" '.found[] | select(.id == $id) | .action' <<<"$output" | head -1)" stop
	assert_eq "$(status_of "$id")" stopped
	assert_eq "$(runtime_left "$id")" ""
	bystander_ok
}

@test "chaos: the VMM killed (-9): list says crashed, with the console's last lines; gc stops it, nothing left" {
	create --network-policy deny-all
	note_slot "$ID"
	run vmsan exec "$ID" -- echo up
	assert_eq "$output" up
	local pid
	pid=$(vmm_pid "$ID")
	[ -n "$pid" ]
	kill -9 "$pid"
	wait_gone "$pid"
	crashed_then_gc "$ID"
}

@test "chaos: the VMM killed in the middle of an exec: exec fails (no hang), then as above" {
	create --network-policy deny-all
	note_slot "$ID"
	local pid rc=0
	pid=$(vmm_pid "$ID")
	(sleep 2 && kill -9 "$pid") &
	timeout 60 nsenter --net="/run/netns/$H" "$TOP/bin/vmsan" exec "$ID" -- sh -c 'echo started; sleep 30' \
		>"$TEST_TMP/exec.out" 2>&1 || rc=$?
	wait
	# the exec had started in the guest (control), failed, and did not hang
	assert_contains "$(cat "$TEST_TMP/exec.out")" started
	assert_contains "$(cat "$TEST_TMP/exec.out")" "died during the command"
	[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || { echo "exec: $rc" >&2; false; }
	wait_gone "$pid"
	crashed_then_gc "$ID"
}

# agentctl_pid ID: the vmsan-agentctl talking to VM ID (nothing when none).
agentctl_pid() { pgrep -f "vmsan-agentctl .* $1( |$)" || true; }

# sock_bytes PID FIELD: FIELD (bytes_acked, bytes_received) of PID's TCP
# connection, as the kernel counts it (in the test host namespace).
sock_bytes() {
	nsenter --net="/run/netns/$H" ss -tinpH 2>/dev/null | awk -v p="pid=$1," -v f="$2:" '
		index($0, p) { hit = 1 }
		hit { for (i = 1; i <= NF; i++) if (index($i, f) == 1) { print substr($i, length(f) + 1); exit } }
		!index($0, p) { hit = 0 }'
}

# wait_sock PID FIELD N: until PID's connection has FIELD >= N (60 s at
# most); prints it.
wait_sock() {
	local v
	for _ in $(seq 1200); do
		v=$(sock_bytes "$1" "$2")
		[ -n "$v" ] && [ "$v" -ge "$3" ] && { echo "$v"; return 0; }
		sleep 0.05
	done
	echo "no $2 >= $3 on $1's connection: $(nsenter --net="/run/netns/$H" ss -tinpH)" >&2
	return 1
}

# transfer_killed WHAT ARGS...: vmsan WHAT ARGS... --json (under timeout,
# so that a hang fails), the VMM killed once its connection has moved 1
# MiB (FIELD: bytes_acked for an upload, bytes_received for a download);
# its status in $rc, its JSON in $TEST_TMP/t.out.
transfer_killed() {
	local field=$1 pid ctl moved
	shift
	pid=$(vmm_pid "$ID")
	rc=0
	timeout 90 nsenter --net="/run/netns/$H" "$TOP/bin/vmsan" "$@" --json >"$TEST_TMP/t.out" 2>"$TEST_TMP/t.err" &
	local job=$!
	for _ in $(seq 400); do
		ctl=$(agentctl_pid "$ID")
		[ -z "$ctl" ] || break
		sleep 0.05
	done
	[ -n "$ctl" ] || { echo "no vmsan-agentctl for $ID" >&2; return 1; }
	# control: the transfer had started (the kernel's count of its bytes)
	moved=$(wait_sock "$ctl" "$field" 1048576) || return 1
	echo "$field $moved before the kill" >&2
	local t0=$EPOCHREALTIME
	kill -9 "$pid"
	wait "$job" || rc=$?
	# how long it took to notice (a note, not a test)
	echo "# $1 ended $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s after the VMM's kill, $field $moved" >&3
	wait_gone "$pid"
}

# crash_reported WORDS: the transfer ended (not killed by timeout) with
# ERR_VM_CRASHED, said in WORDS, and no vmsan-agentctl is left.
crash_reported() {
	if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then
		echo "status $rc: $(cat "$TEST_TMP/t.err")" >&2
		return 1
	fi
	assert_eq "$(jq -r .error.code "$TEST_TMP/t.out")" ERR_VM_CRASHED
	assert_contains "$(jq -r .error.message "$TEST_TMP/t.out")" "$1"
	assert_eq "$(agentctl_pid "$ID")" ""
}

@test "chaos: the VMM killed in the middle of an upload: upload fails with ERR_VM_CRASHED (no hang), then as above" {
	create --network-policy deny-all
	note_slot "$ID"
	# 1 GiB (sparse here, all of it sent): far more than the socket's buffer
	truncate -s 1G "$TEST_TMP/big"
	transfer_killed bytes_acked upload "$ID" "$TEST_TMP/big" --dest /root
	crash_reported "died during the transfer"
	crashed_then_gc "$ID"
}

@test "chaos: the VMM killed in the middle of a download: download fails with ERR_VM_CRASHED, nothing written" {
	create --network-policy deny-all
	note_slot "$ID"
	vmsan exec "$ID" -- dd if=/dev/zero of=/root/big bs=1M count=0 seek=1024 2>/dev/null
	mkdir "$TEST_TMP/dl"
	transfer_killed bytes_received download "$ID" /root/big --dest "$TEST_TMP/dl/"
	crash_reported "died during the transfer; nothing was written"
	# nothing at the destination: not the file, not its hidden directory
	assert_eq "$(ls -A "$TEST_TMP/dl")" ""
	crashed_then_gc "$ID"
}

@test "chaos: the VMM killed during a terminal session (vmsan connect): it ends with ERR_VM_CRASHED (no hang)" {
	require_cmd script
	create --network-policy deny-all
	note_slot "$ID"
	local pid i rc=0
	pid=$(vmm_pid "$ID")
	# a terminal (script gives it one), its input a FIFO held open here
	mkfifo "$TEST_TMP/in"
	timeout 90 script -qec "nsenter --net=/run/netns/$H $TOP/bin/vmsan connect --json $ID --shell /bin/sh" \
		/dev/null <"$TEST_TMP/in" >"$TEST_TMP/tty.out" 2>&1 &
	local job=$!
	exec 8>"$TEST_TMP/in"
	# control: the session is up, its shell ran the line (typed again
	# every 2 s: what comes before the shell reads its terminal is lost)
	for i in $(seq 600); do
		# shellcheck disable=SC2016 # the guest's shell expands it
		[ $((i % 40)) != 1 ] || echo 'echo "session-$((6 * 7))"' >&8
		! grep -q session-42 "$TEST_TMP/tty.out" || break
		sleep 0.05
	done
	grep -q session-42 "$TEST_TMP/tty.out" || { exec 8>&-; cat "$TEST_TMP/tty.out" >&2; false; }
	local t0=$EPOCHREALTIME
	kill -9 "$pid"
	wait "$job" || rc=$?
	echo "# connect ended $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s after the VMM's kill" >&3
	exec 8>&-
	[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || { echo "connect: $rc: $(cat "$TEST_TMP/tty.out")" >&2; false; }
	assert_contains "$(cat "$TEST_TMP/tty.out")" '"code":"ERR_VM_CRASHED"'
	assert_contains "$(cat "$TEST_TMP/tty.out")" "died during the session"
	assert_eq "$(agentctl_pid "$ID")" ""
	wait_gone "$pid"
	crashed_then_gc "$ID"
}

@test "chaos: the guest's kernel panics (out of memory with panic_on_oom): the VMM exits, list says crashed, gc" {
	create --network-policy deny-all --memory 128
	note_slot "$ID"
	# first a guest that fills its memory: the OOM killer takes the hog,
	# the VM keeps answering
	# shellcheck disable=SC2016 # the guest's shell expands it
	run vmsan exec "$ID" -- sh -c 'x=aaaaaaaa; while :; do x=$x$x; done'
	assert_eq "$status" 137
	run vmsan exec "$ID" -- echo survived
	assert_eq "$output" survived
	# then a kernel panic: the VMM exits (panic=-1, -no-reboot), and the
	# exec running then says so instead of waiting forever
	vmsan exec "$ID" -- sh -c 'echo 1 >/proc/sys/vm/panic_on_oom' >/dev/null
	local pid
	pid=$(vmm_pid "$ID")
	# shellcheck disable=SC2016 # the guest's shell expands it
	run timeout 120 nsenter --net="/run/netns/$H" "$TOP/bin/vmsan" exec "$ID" -- \
		sh -c 'x=aaaaaaaa; while :; do x=$x$x; done'
	assert_contains "$output" "died during the command"
	wait_gone "$pid"
	run vmsan logs "$ID" --tail 80
	assert_contains "$output" "Kernel panic"
	crashed_then_gc "$ID"
}

@test "chaos: the guest agent killed (-9): vmsan-init starts it again; the VM answers; gc finds nothing" {
	create --network-policy deny-all
	local before after
	before=$(vmsan exec "$ID" -- pidof vmsan-agent)
	[ -n "$before" ]
	run vmsan exec "$ID" -- sh -c "kill -9 $before"
	for _ in $(seq 100); do
		after=$(vmsan exec "$ID" -- pidof vmsan-agent 2>/dev/null) && break
		sleep 0.2
	done
	[ -n "$after" ] && [ "$after" != "$before" ] || { echo "agent $before -> $after" >&2; false; }
	assert_eq "$(status_of "$ID")" running
	run vmsan gc --dry-run --json
	assert_eq "$(jq --arg id "$ID" '[.found[] | select(.id == $id)] | length' <<<"$output")" 0
}

@test "chaos: the resolver (vmsan-dns) killed (-9): doctor names it, gc starts it again, names resolve again" {
	create --network-policy custom --allowed-domain example.test
	run vmsan exec "$ID" -- nslookup example.test
	assert_contains "$output" 192.0.2.10
	local pids
	pids=$(ip netns pids "vmsan-$ID" | while read -r p; do [ "$(cat "/proc/$p/comm")" != vmsan-dns ] || echo "$p"; done)
	[ -n "$pids" ]
	# shellcheck disable=SC2086
	kill -9 $pids
	for p in $pids; do wait_gone "$p"; done
	run vmsan exec "$ID" -- nslookup -timeout=2 example.test
	[[ $output != *192.0.2.10* ]]
	run vmsan doctor
	assert_contains "$output" "resolver"
	run vmsan gc --json
	assert_eq "$(jq -r --arg id "$ID" '.found[] | select(.id == $id) | .action' <<<"$output")" restart
	assert_contains "$(leftovers "$ID")" "(vmsan-dns)"
	run vmsan exec "$ID" -- nslookup example.test
	assert_contains "$output" 192.0.2.10
	bystander_ok
}

@test "chaos: a resolver left running by a slot no record holds (its namespace gone): root's gc kills it, a VM's own resolver stays" {
	create --network-policy custom --allowed-domain example.test
	local own stray slot=32000
	own=$(ip netns pids "vmsan-$ID" | while read -r p; do [ "$(cat "/proc/$p/comm")" != vmsan-dns ] || echo "$p"; done | head -1)
	[ -n "$own" ]
	# the leftover: a process of slot 32000's resolver uid, in no namespace
	# of a VM (what a setup killed between starting its resolver and
	# recording it left before teardown killed what runs in the namespace)
	run slot_taken "$slot"
	[ "$status" -ne 0 ]
	setpriv --reuid=$((DNS_UID_BASE + slot)) --regid=$((DNS_UID_BASE + slot)) --clear-groups \
		sleep 600 </dev/null >/dev/null 2>&1 &
	stray=$! STRAY=$!
	sleep 0.2
	run vmsan gc --dry-run --json
	assert_contains "$output" "resolver process $stray of slot $slot, which no record holds"
	[[ $output != *"resolver process $own "* ]]
	kill -0 "$stray"
	run vmsan gc --json
	assert_eq "$status" 0
	wait "$stray" || true
	run kill -0 "$stray"
	[ "$status" -ne 0 ]
	# control: the VM's own resolver runs on and answers
	kill -0 "$own"
	run vmsan exec "$ID" -- nslookup example.test
	assert_contains "$output" 192.0.2.10
	bystander_ok
}

@test "chaos: a host 'reboot' (the VM's processes killed, its /run/vmsan records gone): list says crashed, root's gc cleans" {
	create --network-policy custom --allowed-domain example.test
	note_slot "$ID"
	local p
	# every process of the VM's (its VMM, its resolver) killed
	for p in $(ip netns pids "vmsan-$ID") $(vmm_pid "$ID"); do kill -9 "$p" 2>/dev/null || true; done
	for p in $(ip netns pids "vmsan-$ID"); do wait_gone "$p"; done
	# /run/vmsan emptied, of this VM's records (the host's other VMs run on)
	rm -rf "/run/vmsan/net/$ID.json" "/run/vmsan/vmm/$ID" "/run/vmsan/vmm/$ID.lock" "/run/vmsan/ids/$ID"
	# control: what the "reboot" left behind is really there
	run leftovers "$ID"
	assert_contains "$output" "netns vmsan-$ID"
	assert_contains "$output" "/dev/shm/vmsan/$ID.ram"
	assert_contains "$output" "slot "
	crashed_then_gc "$ID"
	assert_eq "$(leftovers "$ID")" ""
}

@test "chaos: the host's disk fills during create: a clear error, nothing left" {
	mkdir -p "$TEST_TMP/full"
	mount -t tmpfs -o size=1m tmpfs "$TEST_TMP/full"
	local d=$VMSAN_DIR before
	export VMSAN_DIR=$TEST_TMP/full/state
	mkdir -p "$VMSAN_DIR"
	ln -s "$d/images" "$VMSAN_DIR/images"
	# what gc finds before (root's sweep sees the whole host): the create
	# must add nothing to it
	before=$(vmsan gc --dry-run --json | jq -c '.found')
	run --separate-stderr vmsan create --json --network-policy deny-all
	[ "$status" -ne 0 ]
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_NO_SPACE
	# control: the file system really is full of nothing of ours now
	assert_eq "$(ls -A "$VMSAN_DIR/vms" | grep -v '\.lock$' || true)" ""
	assert_eq "$(ip netns list | grep -c "^vmsan-vm-" || true)" "$(ls /run/vmsan/net | grep -c json || true)"
	run vmsan gc --dry-run --json
	assert_eq "$(jq -c '.found' <<<"$output")" "$before"
}

@test "chaos: the host's disk fills during a download: a clear error, no partial file" {
	create --network-policy deny-all
	vmsan exec "$ID" -- dd if=/dev/urandom of=/root/blob bs=1M count=3 2>/dev/null
	mkdir -p "$TEST_TMP/full"
	mount -t tmpfs -o size=1m tmpfs "$TEST_TMP/full"
	run --separate-stderr vmsan download "$ID" /root/blob --dest "$TEST_TMP/full/blob" --json
	[ "$status" -ne 0 ]
	assert_contains "$output" "space"
	assert_eq "$(ls -A "$TEST_TMP/full")" ""
	run vmsan exec "$ID" -- echo still-here
	assert_eq "$output" still-here
}
