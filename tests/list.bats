#!/usr/bin/env bats
# vmsan list: table, --json, derived status, unreadable records.
load test_helper

# put_vm ID STATUS CREATED [extra JSON]: write a record as a VMM would.
put_vm() {
	state put "$(jq -cn --arg id "$1" --arg s "$2" --arg c "$3" --argjson x "${4:-{\}}" \
		'{record:({id:$id, schemaVersion:1, status:$s, createdAt:$c,
		  memSizeMib:128, vcpuCount:1, runtime:"base"} + $x)}')" >/dev/null
}

teardown_extra() {
	[ -z "${sleeper:-}" ] || kill "$sleeper" 2>/dev/null || true
}

@test "no VMs: 'No VMs found.' and an empty JSON array" {
	run "$VMSAN" list
	[ "$status" -eq 0 ]
	assert_eq "$output" "No VMs found."
	run "$VMSAN" list --json
	assert_eq "$output" "[]"
	[ ! -e "$VMSAN_DIR" ]   # listing creates nothing
}

@test "the table has the original's columns, newest first" {
	put_vm vm-00000001 stopped 2026-01-01T00:00:00Z
	put_vm vm-00000002 stopped 2026-01-02T00:00:00Z '{"memSizeMib":512,"vcpuCount":2,"runtime":"node22","snapshot":"vm-00000001-1"}'
	run "$VMSAN" ls
	[ "$status" -eq 0 ]
	[[ ${lines[0]} =~ ^ID\ +STATUS\ +CREATED\ +MEMORY\ +VCPUS\ +RUNTIME\ +TIMEOUT\ +SNAPSHOT$ ]]
	[[ ${lines[1]} =~ ^vm-00000002\ +stopped\ +[0-9]+\ days\ ago\ +512\ MiB\ +2\ +node22\ +-\ +vm-00000001-1$ ]]
	[[ ${lines[2]} =~ ^vm-00000001\ +stopped\ +[0-9]+\ days\ ago\ +128\ MiB\ +1\ +base\ +-\ +-$ ]]
	[ "${#lines[@]}" -eq 3 ]
	# Columns line up: STATUS starts at the same offset on every line.
	[ "$(printf '%s\n' "${lines[@]}" | awk '{ print index($0, $2) }' | sort -u | wc -l)" -eq 1 ]
}

@test "--json is an array of whole records, newest first" {
	put_vm vm-00000001 stopped 2026-01-01T00:00:00Z
	put_vm vm-00000002 stopped 2026-01-02T00:00:00Z '{"network":{"guestIp":"172.16.0.2"}}'
	run "$VMSAN" list --json
	[ "$status" -eq 0 ]
	assert_one_json "$output"
	[ "$(echo "$output" | jq -r '[.[].id] | join(",")')" = vm-00000002,vm-00000001 ]
	[ "$(echo "$output" | jq -r '.[0].network.guestIp')" = 172.16.0.2 ]
	[ "$(echo "$output" | jq -r '.[0].schemaVersion')" = 1 ]
}

@test "a running record whose process is alive is running" {
	sleep 300 &
	sleeper=$!
	put_vm vm-00000001 running 2026-01-01T00:00:00Z "{\"pid\":$sleeper}"
	[ "$(jq .pidStartTime "$VMSAN_DIR/vms/vm-00000001.json")" -gt 0 ]
	run "$VMSAN" list --json
	[ "$(echo "$output" | jq -r '.[0].status')" = running ]
	[ "$(echo "$output" | jq '.[0] | has("recordedStatus")')" = false ]
}

@test "a running record whose process is gone is never shown as running" {
	sleep 300 &
	sleeper=$!
	put_vm vm-00000001 running 2026-01-01T00:00:00Z "{\"pid\":$sleeper}"
	kill "$sleeper"
	wait "$sleeper" 2>/dev/null || true
	run "$VMSAN" list --json
	[ "$(echo "$output" | jq -r '.[0].status')" = error ]
	[ "$(echo "$output" | jq -r '.[0].recordedStatus')" = running ]
	assert_contains "$(echo "$output" | jq -r '.[0].statusReason')" "process $sleeper is gone"
	run "$VMSAN" list
	[[ ${lines[1]} =~ ^vm-00000001\ +error ]]
	# The record itself is not rewritten by a read.
	[ "$(jq -r .status "$VMSAN_DIR/vms/vm-00000001.json")" = running ]
}

@test "a recycled pid does not count: the start time must match" {
	sleep 300 &
	sleeper=$!
	put_vm vm-00000001 running 2026-01-01T00:00:00Z "{\"pid\":$sleeper,\"pidStartTime\":1}"
	run "$VMSAN" list --json
	[ "$(echo "$output" | jq -r '.[0].status')" = error ]
	assert_contains "$(echo "$output" | jq -r '.[0].statusReason')" "belongs to another process"
}

@test "running without a pid, or creating by a dead process, reads as error" {
	put_vm vm-00000001 running 2026-01-01T00:00:00Z
	put_vm vm-00000002 creating 2026-01-01T00:00:01Z '{"pid":4194304}'
	run "$VMSAN" list --json
	[ "$(echo "$output" | jq -r '[.[].status] | unique | join(",")')" = error ]
}

@test "a corrupt record is reported by file name; the others are still listed" {
	put_vm vm-00000001 stopped 2026-01-01T00:00:00Z
	put_vm vm-00000003 stopped 2026-01-03T00:00:00Z
	echo '{"id": "vm-00000002", "status": ' >"$VMSAN_DIR/vms/vm-00000002.json"
	cp "$VMSAN_DIR/vms/vm-00000002.json" "$TEST_TMP/orig"
	run --separate-stderr "$VMSAN" list
	[ "$status" -eq 0 ]
	assert_contains "$stderr" "vmsan list: skipping $VMSAN_DIR/vms/vm-00000002.json: "
	assert_contains "$stderr" "is corrupt"
	[ "${#lines[@]}" -eq 3 ]
	run --separate-stderr "$VMSAN" list --json
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq length)" -eq 2 ]
	# Nothing is lost: the bad file is left for the user to inspect.
	cmp "$VMSAN_DIR/vms/vm-00000002.json" "$TEST_TMP/orig"
}

@test "asking for a corrupt or missing VM by id exits 1" {
	put_vm vm-00000001 stopped 2026-01-01T00:00:00Z
	echo 'not json' >"$VMSAN_DIR/vms/vm-00000002.json"
	run --separate-stderr "$VMSAN" list vm-00000001 vm-00000002
	[ "$status" -eq 1 ]
	[[ ${lines[1]} =~ ^vm-00000001 ]]
	assert_contains "$stderr" "vm-00000002.json is corrupt"
	run --separate-stderr "$VMSAN" list --json vm-00000002
	[ "$status" -eq 1 ]
	assert_one_json "$output"
	[ "$(echo "$output" | jq -r .error.code)" = ERR_STATE_CORRUPT ]
	run --separate-stderr "$VMSAN" list vm-00000009
	[ "$status" -eq 1 ]
	assert_contains "$stderr" "VM not found: vm-00000009"
}

@test "records of the wrong shape are corrupt, not trusted" {
	mkdir -p "$VMSAN_DIR/vms" && chmod 700 "$VMSAN_DIR" "$VMSAN_DIR/vms"
	v=$VMSAN_DIR/vms
	echo '{"id":"vm-00000001","schemaVersion":1,"status":"running","createdAt":"2026-01-01T00:00:00Z","id":"x"}' >"$v/vm-00000001.json"
	echo '{"id":"vm-00000009","schemaVersion":1,"status":"stopped","createdAt":"2026-01-01T00:00:00Z"}' >"$v/vm-00000002.json"
	echo '{"id":"vm-00000003","schemaVersion":99,"status":"stopped","createdAt":"2026-01-01T00:00:00Z"}' >"$v/vm-00000003.json"
	echo '{"id":"vm-00000004","schemaVersion":1,"status":"flying","createdAt":"2026-01-01T00:00:00Z"}' >"$v/vm-00000004.json"
	echo '{}' >"$v/Bad_Name.json"
	ln -s /etc/passwd "$v/vm-00000005.json"
	run --separate-stderr "$VMSAN" list --json
	[ "$status" -eq 0 ]
	assert_eq "$output" "[]"
	[ "$(echo "$stderr" | grep -c 'skipping')" -eq 6 ]
	assert_contains "$stderr" "duplicate object key"
	assert_contains "$stderr" "its id does not match its file name"
	assert_contains "$stderr" "newer than this vmsan understands"
	assert_contains "$stderr" "status is missing or not one of"
	assert_contains "$stderr" "Bad_Name.json: file name is not a VM id"
}
