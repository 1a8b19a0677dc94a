#!/usr/bin/env bats
# The helper contract, on the real helpers: one bounded, strictly parsed
# request; one reply; precise errors; exit 100 for bad requests.
load test_helper

reply_code() { echo "$output" | jq -r .error.code; }
reply_msg() { echo "$output" | jq -r .error.message; }

@test "success is one JSON line with ok:true and exit 0" {
	run "$LIBEXEC/vmsan-state" dir </dev/null
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[ "$(echo "$output" | jq .ok)" = true ]
}

@test "duplicate keys are rejected" {
	run "$LIBEXEC/vmsan-state" <<<'{"op":"get","id":"vm-1","id":"vm-2"}'
	[ "$status" -eq 100 ]
	assert_one_json "$output"
	[ "$(reply_code)" = ERR_REQUEST_JSON ]
	assert_contains "$(reply_msg)" "duplicate object key"
}

@test "unknown keys are rejected by name" {
	run "$LIBEXEC/vmsan-state" <<<'{"op":"get","id":"vm-1","colour":"red"}'
	[ "$status" -eq 100 ]
	assert_eq "$(reply_msg)" "request: unknown field 'colour'"
	[ -n "$(echo "$output" | jq -r .error.fix)" ]
}

@test "a 2 MiB body is refused without being parsed" {
	head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$TEST_TMP/big"
	run "$LIBEXEC/vmsan-state" <"$TEST_TMP/big"
	[ "$status" -eq 100 ]
	[ "$(reply_code)" = ERR_REQUEST_TOO_LARGE ]
}

@test "a body of exactly 1 MiB is still read" {
	{ printf '{"op":"dir"}'; head -c $((1024 * 1024 - 12)) /dev/zero | tr '\0' ' '; } >"$TEST_TMP/max"
	[ "$(stat -c %s "$TEST_TMP/max")" -eq $((1024 * 1024)) ]
	run "$LIBEXEC/vmsan-state" <"$TEST_TMP/max"
	[ "$status" -eq 0 ]
}

@test "invalid UTF-8 is rejected" {
	run "$LIBEXEC/vmsan-state" < <(printf '{"op":"get","id":"vm-\xff"}')
	[ "$status" -eq 100 ]
	[ "$(reply_code)" = ERR_REQUEST_JSON ]
}

@test "a number where a string belongs names the field and both types" {
	run "$LIBEXEC/vmsan-state" <<<'{"op":"get","id":5}'
	[ "$status" -eq 100 ]
	assert_eq "$(reply_msg)" "request.id: expected a string, got an integer"
}

@test "trailing garbage after the object is rejected" {
	run "$LIBEXEC/vmsan-state" <<<'{"op":"dir"} {"op":"dir"}'
	[ "$status" -eq 100 ]
	[ "$(reply_code)" = ERR_REQUEST_JSON ]
}

@test "out-of-range and wrongly typed nested values are rejected" {
	run "$LIBEXEC/vmsan-state" <<<'{"op":"update","id":"vm-1","set":[]}'
	[ "$status" -eq 100 ]
	assert_eq "$(reply_msg)" "request.set: expected an object, got an array"
	run "$LIBEXEC/vmsan-state" <<<'{"op":"list","ids":["vm-1",7]}'
	[ "$status" -eq 100 ]
	assert_contains "$(reply_msg)" "request.ids[1]"
}

@test "an unknown op lists the known ones" {
	run "$LIBEXEC/vmsan-state" <<<'{"op":"explode"}'
	[ "$status" -eq 100 ]
	assert_contains "$(reply_msg)" "unknown op 'explode' (known: dir, new, get"
	run "$LIBEXEC/vmsan-probe" <<<'{"op":"explode"}'
	[ "$status" -eq 100 ]
}

@test "the op on the command line and in the request must agree" {
	run "$LIBEXEC/vmsan-state" get <<<'{"op":"delete","id":"vm-1"}'
	[ "$status" -eq 100 ]
	assert_contains "$(reply_msg)" "op 'get' on the command line but 'delete' in the request"
}

@test "a missing op is named" {
	run "$LIBEXEC/vmsan-state" <<<'{}'
	[ "$status" -eq 100 ]
	assert_eq "$(reply_msg)" "request: missing required field 'op'"
}

@test "closed standard descriptors do not turn files into stdout" {
	run bash -c "'$LIBEXEC/vmsan-state' dir <&- 2>&-"
	[ "$status" -eq 0 ]
	assert_one_json "$output"
}

@test "--verbose puts diagnostics on stderr, never on stdout" {
	run --separate-stderr "$LIBEXEC/vmsan-state" --verbose <<<'{"op":"nope"}'
	[ "$status" -eq 100 ]
	assert_one_json "$output"
	assert_contains "$stderr" "vmsan-state: unknown op 'nope'"
}

@test "a message cut at its 767 bytes ends at a whole UTF-8 character: the reply is still one JSON document (vmsan-dns, vmsan-state)" {
	local k pre
	k=$(printf '\xc3\xa9%.0s' $(seq 400))
	for pre in "" x; do
		run -1 "$LIBEXEC/vmsan-dns" <<<"{\"id\":\"vm-0123abcd\",\"uid\":1,\"gid\":1,\"upstreams\":[\"192.0.2.1\"],\"domains\":[],\"$pre$k\":1}"
		assert_one_json "$output"
		assert_eq "$(reply_code)" ERR_DNS
		assert_contains "$(reply_msg)" "unknown field '$pre"
		[ "$(jq -j .error.message <<<"$output" | wc -c)" -ge 766 ]
		run -100 "$LIBEXEC/vmsan-state" <<<"{\"op\":\"get\",\"id\":\"vm-1\",\"$pre$k\":1}"
		assert_one_json "$output"
		assert_eq "$(reply_code)" ERR_REQUEST_FIELD
		[ "$(jq -j .error.message <<<"$output" | wc -c)" -ge 766 ]
	done
}
