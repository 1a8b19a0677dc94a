#!/usr/bin/env bats
# bin/vmsan: flags, help, unknown commands, exit statuses, dash.
load test_helper

@test "--version prints the version, alone or with --json" {
	run "$VMSAN" --version
	[ "$status" -eq 0 ]
	assert_eq "$output" "vmsan $(sed -n 's/^VMSAN_VERSION=//p' "$VMSAN")"
	run "$VMSAN" --version --json
	[ "$status" -eq 0 ]
	assert_one_json "$output"
	[ "$(echo "$output" | jq -r .version)" != null ]
}

@test "no command, --help and 'help' print the same command list" {
	run "$VMSAN"
	[ "$status" -eq 0 ]
	local plain=$output
	assert_contains "$plain" "list (ls)"
	assert_contains "$plain" "doctor"
	assert_contains "$plain" "Plumbing"
	assert_contains "$plain" "  state "
	run "$VMSAN" --help
	assert_eq "$output" "$plain"
	run "$VMSAN" help
	assert_eq "$output" "$plain"
}

@test "help COMMAND, COMMAND --help and --help COMMAND agree" {
	run "$VMSAN" help list
	[ "$status" -eq 0 ]
	local h=$output
	assert_contains "$h" "usage: vmsan list"
	run "$VMSAN" list --help
	assert_eq "$output" "$h"
	run "$VMSAN" --help list
	assert_eq "$output" "$h"
}

@test "help --json lists every command with a summary" {
	run "$VMSAN" help --json
	[ "$status" -eq 0 ]
	assert_one_json "$output"
	[ "$(echo "$output" | jq -r '.commands[] | select(.name == "list") | .aliases[0]')" = ls ]
	[ "$(echo "$output" | jq '[.commands[] | select(.summary == "")] | length')" = 0 ]
}

@test "an unknown command gets one line and exit 100" {
	run --separate-stderr "$VMSAN" frobnicate
	[ "$status" -eq 100 ]
	assert_eq "$stderr" "vmsan: no such command 'frobnicate'"
	assert_eq "$output" ""
}

@test "an unknown command with --json prints one JSON error document" {
	run --separate-stderr "$VMSAN" --json frobnicate
	[ "$status" -eq 100 ]
	assert_one_json "$output"
	[ "$(echo "$output" | jq -r .error.code)" = ERR_USAGE ]
	assert_eq "$stderr" "vmsan: no such command 'frobnicate'"
}

@test "command names that are not names are refused, not run" {
	for bad in '../vmsan-list' 'a;b' 'LIST' '-x' 'list/..'; do
		run --separate-stderr "$VMSAN" "$bad"
		[ "$status" -eq 100 ] || { echo "status $status for $bad"; false; }
	done
}

@test "an unknown global option is an error before any command runs" {
	run --separate-stderr "$VMSAN" --frob list
	[ "$status" -eq 100 ]
	assert_eq "$stderr" "vmsan: unknown option '--frob'"
}

@test "an unknown option to a command is an error with exit 100" {
	run --separate-stderr "$VMSAN" list --frob
	[ "$status" -eq 100 ]
	assert_contains "$stderr" "unknown option '--frob'"
	run --separate-stderr "$VMSAN" --json list --frob
	[ "$status" -eq 100 ]
	assert_one_json "$output"
}

@test "global flags work before and after the command" {
	run "$VMSAN" --json list
	[ "$status" -eq 0 ]
	local before=$output
	assert_eq "$before" "[]"
	run "$VMSAN" list --json
	assert_eq "$output" "$before"
}

@test "exit statuses pass through and arguments after -- are untouched" {
	mkdir -p "$TEST_TMP/libexec"
	cat >"$TEST_TMP/libexec/vmsan-probe42" <<'SH'
#!/bin/sh
printf '%s|' "$@"
echo "json=$VMSAN_JSON"
exit 42
SH
	chmod +x "$TEST_TMP/libexec/vmsan-probe42"
	VMSAN_LIBEXECDIR=$TEST_TMP/libexec run "$VMSAN" probe42 a --json -- --json 'b c'
	[ "$status" -eq 42 ]
	assert_eq "$output" "a|--|--json|b c|json=1"
}

@test "the dispatcher runs under dash" {
	require_cmd dash
	run dash "$VMSAN" --version
	[ "$status" -eq 0 ]
	run dash "$VMSAN" list --json
	[ "$status" -eq 0 ]
	assert_eq "$output" "[]"
	run dash "$VMSAN" nosuch
	[ "$status" -eq 100 ]
}

@test "every command answers --summary, --help and --complete" {
	for f in "$LIBEXEC"/vmsan-*; do
		case $f in *.c | *.o) continue ;; esac
		[ -x "$f" ] || continue
		run "$f" --summary
		[ "$status" -eq 0 ] && [ -n "$output" ] && [ "${#lines[@]}" -eq 1 ] ||
			{ echo "bad --summary from $f: $output"; false; }
		run "$f" --help
		[ "$status" -eq 0 ] && assert_contains "$output" "usage:" ||
			{ echo "bad --help from $f"; false; }
		VMSAN_LIBEXECDIR=$LIBEXEC run "$f" --complete
		[ "$status" -eq 0 ] || { echo "bad --complete from $f"; false; }
	done
}

@test "--json output is exactly one JSON document for every front-door command" {
	for args in "--version" "help" "list" "list vm-00000000" "doctor" "nosuch" "list --bad"; do
		# shellcheck disable=SC2086
		run --separate-stderr "$VMSAN" --json $args
		assert_one_json "$output" || { echo "for: vmsan --json $args"; false; }
	done
}

@test "completion scripts ask the commands themselves" {
	run bash -c "source '$TOP/completions/vmsan.bash'; PATH='$TOP/bin':\$PATH
		COMP_WORDS=(vmsan li); COMP_CWORD=1; _vmsan; printf '%s\n' \"\${COMPREPLY[@]}\""
	[ "$status" -eq 0 ]
	assert_eq "$output" "list"
	run bash -c "source '$TOP/completions/vmsan.bash'; PATH='$TOP/bin':\$PATH
		COMP_WORDS=(vmsan doctor --j); COMP_CWORD=2; _vmsan; printf '%s\n' \"\${COMPREPLY[@]}\""
	assert_eq "$output" "--json"
}

@test "exec: the words of the user's command are its own, global flags included (python3 --version, ls --help, echo --json)" {
	# the real dispatcher and exec script, over an agentctl that prints
	# what reaches it
	local d=$BATS_TEST_TMPDIR/libexec
	mkdir -p "$d/lib"
	cp "$(dirname "$VMSAN")/../libexec/vmsan-exec" "$d/"
	cp "$(dirname "$VMSAN")/../libexec/lib/common.sh" "$d/lib/"
	# shellcheck disable=SC2016 # expanded by the stand-in, not here
	printf '#!/bin/sh\necho "json=$VMSAN_JSON verbose=$VMSAN_VERBOSE: $*"\n' >"$d/vmsan-agentctl"
	chmod +x "$d/vmsan-agentctl"
	local -a cases=(
		"ID python3 --version|json=0 verbose=0: --vm-operand exec ID python3 --version"
		"ID ls --help|json=0 verbose=0: --vm-operand exec ID ls --help"
		"ID -e A=1 echo --json|json=0 verbose=0: --vm-operand exec ID -e A=1 echo --json"
		"-u root ID -ie A=1 sh -c --verbose|json=0 verbose=0: --vm-operand exec -u root ID -ie A=1 sh -c --verbose"
		"ID -eA=1 --timeout=5 echo --json|json=0 verbose=0: --vm-operand exec ID -eA=1 --timeout=5 echo --json"
		"--json ID --verbose echo hi|json=1 verbose=1: --json --vm-operand exec ID echo hi"
		"ID --timeout 5 --json -- ls --json|json=1 verbose=0: --json --vm-operand exec ID --timeout 5 -- ls --json"
	)
	local c
	for c in "${cases[@]}"; do
		# shellcheck disable=SC2086 # the case's words
		run env VMSAN_LIBEXECDIR="$d" "$VMSAN" exec ${c%%|*}
		assert_eq "$output" "${c#*|}"
	done
	# --help before the user's command is exec's own
	run env VMSAN_LIBEXECDIR="$d" "$VMSAN" exec ID --help
	assert_contains "$output" "usage: vmsan exec ID"
	# control: another command still takes global flags after its operands
	run "$VMSAN" list --version
	assert_eq "$output" "vmsan $(sed -n 's/^VMSAN_VERSION=//p' "$VMSAN")"
}

@test "run reads create's words as create does: each flag of create's usage takes no value, wherever it stands" {
	# the flags: the bracketed option words of create's usage that take no value
	local flags
	flags=$("$TOP/libexec/vmsan-create" --help | grep -o '\[--[a-z-]*\]' | tr -d '[]')
	assert_contains "$flags" --no-netns
	assert_contains "$flags" --strict-domains
	# the control: create's own check of --vcpus is reached through run
	run --separate-stderr "$TOP/libexec/vmsan-run" --vcpus 99 base -- true
	assert_eq "$status" 100
	assert_contains "$stderr" 'invalid --vcpus: "99"'
	local f
	for f in $flags; do
		# before the image: the image is not taken as the flag's value
		run --separate-stderr "$TOP/libexec/vmsan-run" "$f" base --vcpus 99 -- true
		assert_eq "$status" 100
		assert_contains "$stderr$output" 'invalid --vcpus: '
	done
	# the image word after a flag named: --strict-domains needs domains
	run --separate-stderr "$TOP/libexec/vmsan-run" --rm --strict-domains base -- true
	assert_eq "$status" 100
	assert_contains "$stderr" "--strict-domains checks connections to allowed domains"
	# one image or runtime
	run --separate-stderr "$TOP/libexec/vmsan-run" base alpine -- true
	assert_eq "$status" 100
	assert_contains "$stderr" "one image or runtime: 'base' and 'alpine'"
}

@test "snapshot and template read their words alike: SUB first, --json and their own flags anywhere, others' flags refused" {
	local c
	for c in snapshot template; do
		run --separate-stderr "$VMSAN" "$c" list extra
		assert_eq "$status" 100
		assert_contains "$stderr" "$c list takes no arguments"
		run --separate-stderr "$VMSAN" "$c" --bogus list
		assert_eq "$status" 100
		assert_contains "$stderr" "unknown option --bogus"
		run --separate-stderr "$VMSAN" "$c" frob
		assert_eq "$status" 100
		assert_contains "$stderr" "no such $c command 'frob'"
		run -0 "$TOP/libexec/vmsan-$c" ls --json
		assert_eq "$output" "[]"
		run -0 "$TOP/libexec/vmsan-$c" --json -- list
		assert_eq "$output" "[]"
	done
	# each its own flags
	run --separate-stderr "$VMSAN" template list --resume
	assert_contains "$stderr" "unknown option --resume"
	run --separate-stderr "$VMSAN" snapshot delete --all
	assert_contains "$stderr" "unknown option --all"
	run --separate-stderr "$VMSAN" template --all list
	assert_contains "$stderr" "template list takes no arguments"
	run --separate-stderr "$VMSAN" snapshot create --no-resume
	assert_contains "$stderr" "snapshot create takes one VM id"
}
