#!/usr/bin/env bats
# Load on one VM (issue 18): a real guest under QEMU takes 100 `vmsan exec`s
# and 20 uploads at once; none is lost and its agent still answers.  The
# agent runs 64 commands at a time and answers 429 past that; vmsan exec
# waits for a slot.  Its memory under that load is measured by
# bench/load.sh (BENCHMARKS.md), not asserted here.  vmsan runs in the test
# host namespace (net_helper.bash): nothing leaves the machine.

bats_require_minimum_version 1.5.0
load test_helper
load net_helper
load init_helper

setup_file() {
	guest_suite_start || return 0
}

teardown_file() { guest_suite_down; }

setup() { guest_test_setup; }

teardown() { guest_test_teardown; }

# Remote commands are single-quoted on purpose: the guest expands them.
# shellcheck disable=SC2016

@test "load: 100 execs and 20 uploads at once to one VM: every output, status and checksum right; the agent answers" {
	ID=$(vmsan create --json --network-policy deny-all | jq -r .vm.id)
	local i pids=
	mkdir -p "$TEST_TMP/files"
	for i in $(seq 20); do head -c 262144 /dev/urandom >"$TEST_TMP/files/f$i"; done
	for i in $(seq 100); do
		( rc=0
		  vmsan exec "$ID" -- sh -c 'sleep 2; echo "out-$0"; exit $(($0 % 50))' "$i" >"$TEST_TMP/c$i" 2>&1 || rc=$?
		  echo "$rc" >"$TEST_TMP/s$i" ) &
		pids="$pids $!"
	done
	for i in $(seq 20); do
		( rc=0
		  vmsan upload "$ID" "$TEST_TMP/files/f$i" --dest /root/up >"$TEST_TMP/u$i" 2>&1 || rc=$?
		  echo "$rc" >"$TEST_TMP/us$i" ) &
		pids="$pids $!"
	done
	# shellcheck disable=SC2086 # a list of pids
	wait $pids || true
	for i in $(seq 100); do
		assert_eq "$(cat "$TEST_TMP/c$i")" "out-$i"
		assert_eq "$(cat "$TEST_TMP/s$i")" "$((i % 50))"
	done
	for i in $(seq 20); do assert_eq "$(cat "$TEST_TMP/us$i")" 0; done
	(cd "$TEST_TMP/files" && sha256sum f*) | sort >"$TEST_TMP/host.sums"
	vmsan exec "$ID" -- sh -c 'cd /root/up && sha256sum f*' | sort >"$TEST_TMP/guest.sums"
	assert_eq "$(cat "$TEST_TMP/guest.sums")" "$(cat "$TEST_TMP/host.sums")"
	assert_eq "$(wc -l <"$TEST_TMP/guest.sums")" 20
	# control: the agent did refuse some (past its 64 slots), so the
	# waits were real
	grep -q '"path":"/exec","status":429' "$VMSAN_DIR/vms/$ID/console.log"
	assert_eq "$(vmsan exec "$ID" -- echo still-serving)" still-serving
}

@test "load: 12 exec -t at once to one VM (8 terminal sessions at a time): all run, each with its output and status" {
	ID=$(vmsan create --json --network-policy deny-all | jq -r .vm.id)
	local i pids=
	for i in $(seq 12); do
		# shellcheck disable=SC2016 # the guest's shell expands it
		( rc=0
		  vmsan exec -t "$ID" -- sh -c 'sleep 2; echo "tty-$0"; exit $(($0 % 5))' "$i" </dev/null \
			>"$TEST_TMP/t$i" 2>"$TEST_TMP/e$i" || rc=$?
		  echo "$rc" >"$TEST_TMP/s$i" ) &
		pids="$pids $!"
	done
	# shellcheck disable=SC2086 # a list of pids
	wait $pids || true
	for i in $(seq 12); do
		assert_eq "$(tr -d '\r' <"$TEST_TMP/t$i")" "tty-$i"
		assert_eq "$(cat "$TEST_TMP/s$i")" "$((i % 5))"
	done
	# control: the agent did turn some away (past its 8 sessions), so the
	# waits were real
	grep -q '"path":"/ws/shell","status":429' "$VMSAN_DIR/vms/$ID/console.log"
	assert_eq "$(vmsan exec "$ID" -- echo still-serving)" still-serving
}
