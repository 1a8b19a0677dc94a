#!/usr/bin/env bats
# Every command that takes a VM id reads its words the same way: options
# before the id and after it, "--" ends the options (for exec, what follows
# is the guest command, never parsed), an unknown option is a usage error
# (100) that names it.  One real guest for the suite (QEMU, TCG here), in
# the test host namespace of net_helper.bash.

bats_require_minimum_version 1.5.0
load test_helper
load net_helper
load init_helper

setup_file() {
	guest_suite_start || return 0
	local out
	out=$(nsenter --net="/run/netns/$H" "$TOP/bin/vmsan" create --json --runtime base --network-policy deny-all)
	VM=$(jq -r .vm.id <<<"$out")
	export VM
}

teardown_file() { guest_suite_down; }

setup() {
	require_root
	require_cmd qemu-system-x86_64
	if [ -z "${VM:-}" ] || [ "$VM" = null ]; then skip "the suite's VM was not created"; fi
	TEST_TMP=$(mktemp -d /tmp/vmsan-test.XXXXXX)
}

teardown() { rm -rf "$TEST_TMP"; }

# usage_error_names CMD... : vmsan CMD... exits 100 and names --bogus-opt.
usage_error_names() {
	run vmsan "$@"
	assert_eq "$status" 100
	assert_contains "$output" "--bogus-opt"
}

# shellcheck disable=SC2016 # the guest's shell expands them
@test "exec: options before the id and after it; '--' hands the rest to the guest unparsed" {
	run -0 vmsan exec --sudo "$VM" -- id -u
	assert_eq "$output" 0
	run -0 vmsan exec -w /tmp -e WHO=before "$VM" -- sh -c 'echo "$WHO $(pwd)"'
	assert_eq "$output" "before /tmp"
	run -0 vmsan exec "$VM" -w /tmp -e WHO=after -- sh -c 'echo "$WHO $(pwd)"'
	assert_eq "$output" "after /tmp"
	run -0 vmsan exec --workdir=/tmp --env WHO=mixed "$VM" --user root sh -c 'echo "$WHO $(pwd) $(id -u)"'
	assert_eq "$output" "mixed /tmp 0"
	# after '--' (wherever it is) and after the command's name: the guest's words
	run -0 vmsan exec "$VM" -- echo --sudo -w /x
	assert_eq "$output" "--sudo -w /x"
	run -0 vmsan exec -- "$VM" echo --sudo
	assert_eq "$output" "--sudo"
	run -0 vmsan exec --timeout 30 "$VM" echo --sudo
	assert_eq "$output" "--sudo"
	# '--sudo' alone after '--' is the command the guest is asked to run
	run -127 vmsan exec "$VM" -- --sudo
	assert_contains "$output" "--sudo"
	usage_error_names exec --bogus-opt "$VM" -- true
	usage_error_names exec "$VM" --bogus-opt -- true
	run vmsan exec --sudo
	assert_eq "$status" 100
	assert_contains "$output" "no VM id given"
	run vmsan exec "$VM" -e
	assert_eq "$status" 100
	# before the id: a value missing, or given to an option without one, named
	run vmsan exec -w
	assert_eq "$status" 100
	assert_contains "$output" "-w needs a value"
	run vmsan exec --sudo=yes "$VM" -- true
	assert_eq "$status" 100
	assert_contains "$output" "--sudo takes no value"
}

@test "upload, download: options before the id and after it" {
	echo one >"$TEST_TMP/a"
	echo two >"$TEST_TMP/b"
	run -0 vmsan upload --dest /tmp/up1 "$VM" "$TEST_TMP/a"
	run -0 vmsan upload "$VM" "$TEST_TMP/b" --dest /tmp/up2
	run -0 vmsan exec "$VM" -- cat /tmp/up1/a /tmp/up2/b
	assert_eq "$output" "$(printf 'one\ntwo')"
	run -0 vmsan download --dest "$TEST_TMP/x" "$VM" /tmp/up1/a
	assert_eq "$(cat "$TEST_TMP/x")" one
	run -0 vmsan download "$VM" /tmp/up2/b --dest "$TEST_TMP/y" --max-bytes 100000
	assert_eq "$(cat "$TEST_TMP/y")" two
	usage_error_names upload --bogus-opt "$VM" "$TEST_TMP/a"
	usage_error_names upload "$VM" "$TEST_TMP/a" --bogus-opt
	usage_error_names download --bogus-opt "$VM" /tmp/up1/a
	usage_error_names download "$VM" /tmp/up1/a --bogus-opt
}

@test "connect: options before the id and after it" {
	# the agent judges --shell (/etc/shells and /bin/sh) and --session: their
	# refusals show the options reached it from either side of the id
	run vmsan connect --shell /bin/true "$VM" </dev/null
	assert_eq "$status" 1
	assert_contains "$output" "shell not allowed: /bin/true"
	run vmsan connect "$VM" --shell /bin/true </dev/null
	assert_eq "$status" 1
	assert_contains "$output" "shell not allowed: /bin/true"
	run vmsan connect --session 0123456789abcdef0123456789abcdef "$VM" </dev/null
	assert_contains "$output" "session not found"
	run vmsan connect "$VM" --session 0123456789abcdef0123456789abcdef </dev/null
	assert_contains "$output" "session not found"
	# a shell that runs: its exit status is connect's
	run vmsan connect --shell /bin/sh "$VM" <<<'exit 7'
	assert_eq "$status" 7
	run vmsan connect "$VM" --shell /bin/sh <<<'exit 5'
	assert_eq "$status" 5
	usage_error_names connect --bogus-opt "$VM"
	usage_error_names connect "$VM" --bogus-opt
}

@test "logs: options before the id and after it, '--' before it" {
	run -0 vmsan logs --tail 1 "$VM"
	assert_eq "$(wc -l <<<"$output")" 1
	run -0 vmsan logs "$VM" --tail=2
	assert_eq "$(wc -l <<<"$output")" 2
	run -0 vmsan logs --json -- "$VM"
	assert_eq "$(jq -r .vmId <<<"$output")" "$VM"
	usage_error_names logs --bogus-opt "$VM"
	usage_error_names logs "$VM" --bogus-opt
}

@test "network, pause, resume: options before the id and after it" {
	run -0 vmsan network --network-policy custom --allowed-cidr 192.0.2.10/32 "$VM" --json
	assert_eq "$(jq -r '.vmId, .newPolicy' <<<"$output" | paste -sd' ')" "$VM custom"
	run -0 vmsan network "$VM" --network-policy=deny-all
	run -0 vmsan pause --json "$VM"
	assert_eq "$(jq .paused <<<"$output")" true
	run -0 vmsan resume "$VM" --json
	assert_eq "$(jq .paused <<<"$output")" false
	run -0 vmsan pause -- "$VM"
	run -0 vmsan resume "$VM"
	run -0 vmsan exec "$VM" -- echo awake
	assert_eq "$output" awake
	usage_error_names network --bogus-opt "$VM" --network-policy deny-all
	usage_error_names network "$VM" --network-policy deny-all --bogus-opt
	run vmsan network "$VM" --network-policy
	assert_eq "$status" 100
	assert_contains "$output" "--network-policy needs a value"
	usage_error_names pause --bogus-opt "$VM"
	usage_error_names pause "$VM" --bogus-opt
	usage_error_names resume --bogus-opt "$VM"
	usage_error_names resume "$VM" --bogus-opt
}

@test "snapshot create: options before the id and after it" {
	run -0 vmsan snapshot create --json "$VM"
	local s1 s2
	s1=$(jq -r .snapshotId <<<"$output")
	run -0 vmsan snapshot --resume create "$VM" --json
	s2=$(jq -r .snapshotId <<<"$output")
	[ -n "$s1" ] && [ "$s1" != null ] && [ "$s1" != "$s2" ]
	run -0 vmsan exec "$VM" -- echo resumed
	assert_eq "$output" resumed
	run -0 vmsan snapshot delete --json "$s1" -- "$s2"
	usage_error_names snapshot create --bogus-opt "$VM"
	usage_error_names snapshot create "$VM" --bogus-opt
}

@test "stop, start, rm: options before the id and after it" {
	run -0 vmsan stop --grace 20 "$VM" --json
	assert_eq "$(jq -r .status <<<"$output")" stopped
	run -0 vmsan start --json "$VM"
	run -0 vmsan stop "$VM" --grace=20
	run -0 vmsan start "$VM" --json
	run -0 vmsan exec "$VM" -- echo up
	assert_eq "$output" up
	run vmsan stop "$VM" --grace
	assert_eq "$status" 100
	assert_contains "$output" "--grace needs a value"
	for c in stop start rm; do
		usage_error_names "$c" --bogus-opt "$VM"
		usage_error_names "$c" "$VM" --bogus-opt
	done
	# rm: -f before and after the id (a second VM is not worth its boot:
	# an unknown id shows the option was taken and the id looked up)
	run vmsan rm -f vm-0000beef
	assert_eq "$status" 1
	assert_contains "$output" "vm-0000beef"
	run vmsan rm vm-0000beef --force
	assert_eq "$status" 1
	assert_contains "$output" "vm-0000beef"
	run -0 vmsan rm --json -f -- "$VM"
	assert_eq "$(jq -c .removed <<<"$output")" "[\"$VM\"]"
}
