#!/usr/bin/env bats
# The C unit tests: validators and the strict request parser, table-driven.
load test_helper

run_tap() {
	run "$TOP/tests/unit/$1"
	echo "$output" | grep '^not ok' >&2 || true
	[ "$status" -eq 0 ]
	# A plan line and no failures: a table that ran.
	echo "$output" | grep -Eq '^1\.\.[0-9]+$'
	! echo "$output" | grep -q '^not ok'
}

@test "validators accept good values and reject bad ones (table-driven)" {
	run_tap test-validate
	# Every validator named in the contract has cases.
	for v in valid_vm_id valid_snapshot_id valid_ifname valid_ipv4 valid_cidr \
		valid_port valid_port_range valid_size valid_domain; do
		echo "$output" | grep -q "^ok .* $v accepts" || { echo "no good cases for $v"; false; }
		echo "$output" | grep -q "^ok .* $v rejects" || { echo "no bad cases for $v"; false; }
	done
}

@test "request parser: duplicates, unknown keys, types, ranges, UTF-8, trailing data" {
	run_tap test-request
}
