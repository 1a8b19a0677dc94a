#!/usr/bin/env bats
# VM records: ids, atomic writes, locking, derived status, bad state dirs.
load test_helper

@test "new makes a vm-XXXXXXXX record, 0600 in a 0700 dir, schema-versioned" {
	id=$(new_vm '{"runtime":"base","memSizeMib":256}')
	[[ $id =~ ^vm-[0-9a-f]{8}$ ]]
	f=$VMSAN_DIR/vms/$id.json
	[ "$(stat -c %a "$f")" = 600 ]
	[ "$(stat -c %a "$VMSAN_DIR")" = 700 ]
	[ "$(stat -c %a "$VMSAN_DIR/vms")" = 700 ]
	[ "$(jq .schemaVersion "$f")" = 1 ]
	[ "$(jq -r .status "$f")" = creating ]
	[[ $(jq -r .createdAt "$f") =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]]
	[ "$(jq .memSizeMib "$f")" = 256 ]
}

@test "new refuses to let the caller pick id, schemaVersion or createdAt" {
	run state new '{"record":{"id":"vm-00000001"}}'
	[ "$status" -eq 100 ]
	assert_contains "$output" "request.record.id is set by vmsan-state"
	[ ! -e "$VMSAN_DIR/vms/vm-00000001.json" ]
}

@test "get, update (merge, unset, compare-and-swap), delete (idempotent)" {
	id=$(new_vm '{"runtime":"base","note":"x"}')
	run state get "{\"id\":\"$id\"}"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq -r .record.runtime)" = base ]

	run state update "{\"id\":\"$id\",\"set\":{\"status\":\"stopped\",\"vcpuCount\":2},\"unset\":[\"note\"]}"
	[ "$status" -eq 0 ]
	f=$VMSAN_DIR/vms/$id.json
	[ "$(jq -r .status "$f")" = stopped ]
	[ "$(jq .vcpuCount "$f")" = 2 ]
	[ "$(jq 'has("note")' "$f")" = false ]
	[ "$(jq -r .runtime "$f")" = base ]

	run state update "{\"id\":\"$id\",\"expectStatus\":\"running\",\"set\":{\"status\":\"error\"}}"
	[ "$status" -eq 1 ]
	[ "$(echo "$output" | jq -r .error.code)" = ERR_VM_STATUS ]
	[ "$(jq -r .status "$f")" = stopped ]

	run state delete "{\"id\":\"$id\"}"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq .deleted)" = true ]
	[ ! -e "$f" ] && [ ! -e "$VMSAN_DIR/vms/$id.lock" ]
	run state delete "{\"id\":\"$id\"}"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq .deleted)" = false ]
}

@test "get of a VM that does not exist: ERR_VM_NOT_FOUND, exit 1" {
	run state get '{"id":"vm-00000000"}'
	[ "$status" -eq 1 ]
	[ "$(echo "$output" | jq -r .error.code)" = ERR_VM_NOT_FOUND ]
	[ -n "$(echo "$output" | jq -r .error.fix)" ]
}

@test "bad VM ids are refused everywhere and touch nothing" {
	mkdir -p "$VMSAN_DIR/vms" "$TEST_TMP/x"
	echo keep >"$TEST_TMP/x.json"
	long=$(printf 'a%.0s' $(seq 70))
	for id in '../x' 'A B' "$long" '' 'vm-1/../../x' '.hidden'; do
		for op in get delete; do
			run state $op "$(jq -cn --arg id "$id" '{id:$id}')"
			[ "$status" -eq 100 ] || { echo "$op '$id' gave $status: $output"; false; }
		done
		run state update "$(jq -cn --arg id "$id" '{id:$id, set:{status:"error"}}')"
		[ "$status" -eq 100 ]
		run state put "$(jq -cn --arg id "$id" '{record:{id:$id, schemaVersion:1, status:"stopped", createdAt:"2026-01-01T00:00:00Z"}}')"
		[ "$status" -eq 100 ]
		run "$VMSAN" list "$id"
		[ "$status" -eq 100 ] || { echo "list '$id' gave $status"; false; }
	done
	[ "$(cat "$TEST_TMP/x.json")" = keep ]
	[ -z "$(ls -A "$VMSAN_DIR/vms")" ]
}

@test "the porcelain names the bad id and the rule" {
	run --separate-stderr "$VMSAN" list '../x'
	[ "$status" -eq 100 ]
	assert_contains "$stderr" "VM id '../x' must start with a-z or 0-9"
	long=$(printf 'a%.0s' $(seq 70))
	run --separate-stderr "$VMSAN" list "$long"
	assert_contains "$stderr" "70 characters long; the limit is 63"
	run --separate-stderr "$VMSAN" list 'A B'
	assert_contains "$stderr" "must start with a-z or 0-9"
	run --separate-stderr "$VMSAN" list ''
	assert_contains "$stderr" "cannot be empty"
}

@test "20 concurrent creates get 20 distinct ids and leave no temp files" {
	for i in $(seq 20); do
		state new '{"record":{"runtime":"base"}}' >"$TEST_TMP/new.$i" &
	done
	wait
	ids=$(cat "$TEST_TMP"/new.* | jq -r .record.id | sort -u | wc -l)
	[ "$ids" -eq 20 ]
	[ "$(ls "$VMSAN_DIR/vms" | grep -c '\.json$')" -eq 20 ]
	[ -z "$(ls -A "$VMSAN_DIR/vms" | grep -v '\.json$' | grep -v '\.lock$')" ]
}

@test "concurrent updates of one VM are serialized: none is lost" {
	id=$(new_vm)
	for i in $(seq 20); do
		state update "{\"id\":\"$id\",\"set\":{\"k$i\":$i}}" >/dev/null &
	done
	wait
	[ "$(jq '[to_entries[] | select(.key | startswith("k"))] | length' "$VMSAN_DIR/vms/$id.json")" -eq 20 ]
}

@test "a write that fails (disk full) keeps the old record whole and leaves no temp file" {
	require_root
	mkdir -p "$TEST_TMP/small"
	mount -t tmpfs -o size=64k tmpfs "$TEST_TMP/small"
	export VMSAN_DIR=$TEST_TMP/small/state
	id=$(new_vm '{"runtime":"base"}')
	before=$(cat "$VMSAN_DIR/vms/$id.json")
	dd if=/dev/zero of="$TEST_TMP/small/fill" bs=4k 2>/dev/null || true
	big=$(head -c 100000 /dev/zero | tr '\0' x)
	run state update "{\"id\":\"$id\",\"set\":{\"blob\":\"$big\"}}"
	[ "$status" -eq 111 ]
	[ "$(echo "$output" | jq -r .error.code)" = ERR_STATE_WRITE ]
	assert_contains "$(echo "$output" | jq -r .error.message)" "No space left on device"
	assert_eq "$(cat "$VMSAN_DIR/vms/$id.json")" "$before"
	[ -z "$(ls -A "$VMSAN_DIR/vms" | grep tmp)" ]
	umount "$TEST_TMP/small"
}

teardown_extra() {
	mountpoint -q "$TEST_TMP/small" 2>/dev/null && umount "$TEST_TMP/small"
	return 0
}

@test "a state dir owned by another user is refused with a fix" {
	require_root
	mkdir -p "$VMSAN_DIR/vms"
	chown -R nobody "$VMSAN_DIR"
	run --separate-stderr "$VMSAN" list
	[ "$status" -eq 1 ]
	assert_contains "$stderr" "state directory $VMSAN_DIR belongs to nobody"
	assert_contains "$stderr" "fix: set VMSAN_DIR to a directory you own"
	run --separate-stderr "$VMSAN" --json list
	[ "$status" -eq 1 ]
	assert_one_json "$output"
	[ "$(echo "$output" | jq -r .error.code)" = ERR_STATE_DIR_OWNER ]
}

@test "a state dir writable by others is refused" {
	mkdir -p "$VMSAN_DIR/vms"
	chmod 777 "$VMSAN_DIR"
	run --separate-stderr "$VMSAN" list
	[ "$status" -eq 1 ]
	assert_contains "$stderr" "is writable by others (mode 777)"
}

@test "the default state dir is ~/.vmsan, or the sudo user's under sudo" {
	unset VMSAN_DIR
	run state dir
	[ "$(echo "$output" | jq -r .dir)" = "$HOME/.vmsan" ]
	if [ "$(id -u)" = 0 ]; then
		SUDO_USER=nobody run state dir
		[ "$(echo "$output" | jq -r .dir)" = "$(getent passwd nobody | cut -d: -f6)/.vmsan" ]
	fi
	VMSAN_DIR=relative/path run state dir
	[ "$status" -eq 100 ]
	assert_contains "$output" "not an absolute path"
}

@test "root acting for a sudo user creates files that user owns" {
	require_root
	mkdir -p "$VMSAN_DIR"
	chown nobody:nogroup "$VMSAN_DIR"
	chmod 700 "$VMSAN_DIR"
	uid=$(id -u nobody) gid=$(getent group nogroup | cut -d: -f3)
	id=$(SUDO_UID=$uid SUDO_GID=$gid new_vm)
	[ "$(stat -c %u:%g "$VMSAN_DIR/vms/$id.json")" = "$uid:$gid" ]
	[ "$(stat -c %u "$VMSAN_DIR/vms")" = "$uid" ]
}
