#!/usr/bin/env bats
# create's automatic templates end to end: real guests under QEMU (TCG
# here) in the test host namespace of net_helper.bash, a state directory
# of this suite's own (so the first create of a kind is cold here).

bats_require_minimum_version 1.5.0
load test_helper
load net_helper
load init_helper

setup_file() {
	guest_suite_start || return 0
}

teardown_file() { guest_suite_down; }

setup() { guest_test_setup; }

teardown() {
	local v
	for v in ${IDS:-}; do vmsan rm -f "$v" >/dev/null 2>&1 || true; done
	guest_test_teardown
}

# mk NAME ARGS...: a VM (vmsan create --json ARGS); its reply in
# $TEST_TMP/NAME.json, its id in $NAME and in $IDS (removed after).
mk() {
	local name=$1 out
	shift
	out=$(vmsan create --json "$@") || { echo "$out" >&2; return 1; }
	echo "$out" >"$TEST_TMP/$name.json"
	printf -v "$name" '%s' "$(jq -r .vm.id <<<"$out")"
	IDS="${IDS:-} $(jq -r .vm.id <<<"$out")"
}

# field NAME JQ: a field of NAME's create reply.
field() { jq -r "$2" "$TEST_TMP/$1.json"; }

# urandom ID: 32 bytes the guest reads from /dev/urandom, in hex.
urandom() { vmsan exec "$1" -- sh -c 'head -c 32 /dev/urandom | od -An -tx1' | tr -d ' \n'; }

@test "templates: the first create boots and makes one; the next restore it, each its own name, token, randomness, clock and policy" {
	mk A --network-policy custom --allowed-cidr 192.0.2.10/32
	assert_eq "$(field A .start)" cold+template-made
	local key
	key=$(field A .template.key)
	[[ $key =~ ^[0-9a-f]{32}$ ]]
	for f in snapshot.json state memory disk.ext4 token; do
		[ -s "$VMSAN_DIR/templates/$key/$f" ] || { echo "no $f in the template" >&2; false; }
	done
	jq -e '.timing.templateMs > 0 and (.timing | has("restoredMs") | not)' "$TEST_TMP/A.json" >/dev/null
	# no user code ran in it: the template's VM was saved before create returned
	[ "$(jq -r .vmId "$VMSAN_DIR/templates/$key/snapshot.json")" = "$A" ]
	# the VM that made it goes on, with the host's clock
	run vmsan exec "$A" -- hostname
	assert_eq "$output" "$A"
	run vmsan exec "$A" -- date +%s
	[ $(($(date +%s) - output)) -lt 5 ]
	# and a token of its own: every VM restored from the template holds the
	# template's in its memory, which must not open the maker (control: its
	# own opens it)
	[ "$(cat "$VMSAN_DIR/vms/$A.token")" != "$(cat "$VMSAN_DIR/templates/$key/token")" ]
	run nsenter --net="/run/netns/$H" "$TOP/libexec/vmsan-agentctl" \
		--agent "$(jq -r .agent.addr "$VMSAN_DIR/vms/$A.json"):9119" \
		--token-file "$VMSAN_DIR/templates/$key/token" exec -- true
	[ "$status" -ne 0 ]
	run nsenter --net="/run/netns/$H" "$TOP/libexec/vmsan-agentctl" \
		--agent "$(jq -r .agent.addr "$VMSAN_DIR/vms/$A.json"):9119" \
		--token-file "$VMSAN_DIR/vms/$A.token" exec -- echo own
	assert_eq "$output" own
	# which it keeps across a stop and start (its disk holds it too)
	vmsan stop "$A" >/dev/null
	vmsan start "$A" >/dev/null
	run vmsan exec "$A" -- echo up
	assert_eq "$output" up
	# the same kind again: restored from it (the control: start, restoredMs)
	mk B --network-policy custom --allowed-cidr 192.0.2.20/32
	mk C
	for v in B C; do
		assert_eq "$(field $v .start)" template
		assert_eq "$(field $v .template.key)" "$key"
		jq -e '.timing.restoredMs > 0' "$TEST_TMP/$v.json" >/dev/null
		assert_eq "$(jq -r .restoredFrom "$VMSAN_DIR/vms/$(field $v .vm.id).json")" "$key"
	done
	# each its own name and token; the template's token opens none of them
	for v in "$B" "$C"; do
		run vmsan exec "$v" -- hostname
		assert_eq "$output" "$v"
		run vmsan exec "$v" -- date +%s
		[ $(($(date +%s) - output)) -lt 5 ]
		run nsenter --net="/run/netns/$H" "$TOP/libexec/vmsan-agentctl" \
			--agent "$(jq -r .agent.addr "$VMSAN_DIR/vms/$v.json"):9119" \
			--token-file "$VMSAN_DIR/templates/$key/token" exec -- true
		[ "$status" -ne 0 ]
	done
	[ "$(cat "$VMSAN_DIR/vms/$A.token")" != "$(cat "$VMSAN_DIR/vms/$B.token")" ]
	[ "$(cat "$VMSAN_DIR/vms/$B.token")" != "$(cat "$VMSAN_DIR/vms/$C.token")" ]
	# each its own randomness (the agent reseeds the template's generator)
	local ra rb rc
	ra=$(urandom "$A") rb=$(urandom "$B") rc=$(urandom "$C")
	[ "${#rb}" = 64 ] && [ "$ra" != "$rb" ] && [ "$rb" != "$rc" ] && [ "$ra" != "$rc" ]
	# each its own policy: the template's maker's is not B's
	run vmsan exec "$B" -- nc -w 3 192.0.2.20 80
	assert_eq "$output" hello-from-192.0.2.20
	run vmsan exec "$B" -- nc -w 2 192.0.2.10 80
	[[ $output != *hello* ]]
	run vmsan exec "$A" -- nc -w 3 192.0.2.10 80
	assert_eq "$output" hello-from-192.0.2.10
	run vmsan exec "$A" -- nc -w 2 192.0.2.20 80
	[[ $output != *hello* ]]
	run vmsan exec "$C" -- nc -w 3 192.0.2.20 80
	assert_eq "$output" hello-from-192.0.2.20
	# listed, with its last use; the text form says where a VM came from
	run vmsan template list --json
	assert_eq "$(jq -r '.[].id' <<<"$output")" "$key"
	jq -e '.[0].lastUsedAt != "" and .[0].diskUsageBytes > 1000000' <<<"$output" >/dev/null
	run vmsan create
	assert_eq "$status" 0
	assert_contains "$output" "from a template"
	IDS="$IDS $(head -1 <<<"$output" | cut -d' ' -f1)"
	# vmsan run with templates, and --cold through run
	run vmsan run --rm --network-policy deny-all base -- hostname
	assert_eq "$status" 0
	run vmsan run --rm --network-policy deny-all --cold base -- true
	assert_eq "$status" 0
}

@test "templates: another size boots cold; --cold, VMSAN_TEMPLATES=off and the config's templates = off make none" {
	mk A --memory 320
	assert_eq "$(field A .start)" cold+template-made
	local k320 before
	k320=$(field A .template.key)
	[ -d "$VMSAN_DIR/templates/$k320" ]
	mk B --memory 320
	assert_eq "$(field B .start)" template
	mk C --memory 384
	assert_eq "$(field C .start)" cold+template-made
	[ "$(field C .template.key)" != "$k320" ]
	before=$(ls "$VMSAN_DIR/templates")
	mk D --memory 320 --cold
	assert_eq "$(field D .start)" cold
	assert_eq "$(field D .template.off)" --cold
	jq -e '.timing | has("restoredMs") or has("templateMs") | not' "$TEST_TMP/D.json" >/dev/null
	VMSAN_TEMPLATES=off mk E --memory 352
	assert_eq "$(field E .start)" cold
	assert_contains "$(field E .template.off)" VMSAN_TEMPLATES
	printf 'templates = off\n' >"$VMSAN_DIR/config"
	mk F --memory 352
	assert_eq "$(field F .start)" cold
	assert_contains "$(field F .template.off)" "templates is off"
	assert_eq "$(ls "$VMSAN_DIR/templates")" "$before"
	# bad values are refused before anything is made
	printf 'templates = maybe\n' >"$VMSAN_DIR/config"
	run --separate-stderr vmsan create --json
	assert_eq "$status" 100
	assert_contains "$(jq -r .error.message <<<"$output")" "neither on nor off"
	rm "$VMSAN_DIR/config"
	VMSAN_TEMPLATES=sometimes run --separate-stderr vmsan create --json
	assert_eq "$status" 100
	assert_contains "$(jq -r .error.message <<<"$output")" "VMSAN_TEMPLATES: 'sometimes'"
}

@test "templates: a partial or corrupt one is refused and removed, one that does not restore too; the create boots cold and makes it again" {
	mk A --vcpus 2
	local key t
	key=$(field A .template.key)
	t=$VMSAN_DIR/templates/$key
	# a file missing
	rm "$t/memory"
	mk B --vcpus 2
	assert_eq "$(field B .start)" cold+template-made
	assert_contains "$(field B .template.error)" "template $key refused and removed: its memory is missing"
	[ -s "$t/memory" ]
	# a record that is not one, said on stderr without --json
	echo '{"templateKey":' >"$t/snapshot.json"
	run --separate-stderr vmsan create --vcpus 2
	assert_eq "$status" 0
	IDS="$IDS $(head -1 <<<"$output" | cut -d' ' -f1)"
	assert_contains "$stderr" "refused and removed: its record is missing or not JSON"
	assert_contains "$output" "template made"
	jq -e .templateKey "$t/snapshot.json" >/dev/null
	# whole, but its device state is garbage: QEMU refuses it, the VM it
	# was restoring into is undone, the template removed, the VM boots cold
	local size vms
	size=$(stat -c %s "$t/state")
	head -c "$size" /dev/urandom >"$t/state"
	vms=$(ls "$VMSAN_DIR/vms" | grep -c '\.json$')
	mk C --vcpus 2
	assert_eq "$(field C .start)" cold+template-made
	assert_contains "$(field C .template.error)" "did not restore"
	assert_eq "$(ls "$VMSAN_DIR/vms" | grep -c '\.json$')" $((vms + 1))
	assert_eq "$(ls -A "$VMSAN_DIR/templates" | grep -c "$key")" 1
	run vmsan exec "$C" -- hostname
	assert_eq "$output" "$C"
	# and the one it made restores
	mk D --vcpus 2
	assert_eq "$(field D .start)" template
}

@test "templates: two first creates at once make one template, both VMs work" {
	local o1=$TEST_TMP/1.json o2=$TEST_TMP/2.json
	vmsan create --json --memory 288 >"$o1" &
	local p1=$!
	vmsan create --json --memory 288 >"$o2" &
	local p2=$!
	wait "$p1"
	wait "$p2"
	IDS="$(jq -r .vm.id "$o1") $(jq -r .vm.id "$o2")"
	local key
	key=$(jq -r .template.key "$o1")
	assert_eq "$(jq -r .template.key "$o2")" "$key"
	# both booted (neither found one); one made it, the other said so
	assert_eq "$(jq -r .start "$o1" "$o2" | sort | tr '\n' ' ')" "cold cold+template-made "
	assert_contains "$(jq -r '.template.note // ""' "$o1" "$o2")" "another create made template $key"
	assert_eq "$(ls -A "$VMSAN_DIR/templates" | grep -c "$key")" 1
	for v in $IDS; do
		run vmsan exec "$v" -- hostname
		assert_eq "$output" "$v"
	done
	mk C --memory 288
	assert_eq "$(field C .start)" template
}

@test "templates: rm; gc takes those whose image is gone, keeps templates-max by last use, and what a killed create left" {
	# a create killed while it saves its template: gc removes both
	VMSAN_CREATE_PAUSE=template vmsan create --json --memory 272 >"$TEST_TMP/out" 2>&1 3>&- &
	local pid=$! child=""
	for _ in $(seq 600); do
		child=$(pgrep -P "$pid" -f vmsan-create || true)
		[ -n "$child" ] && [ "$(ps -o stat= -p "$child" | cut -c1)" = T ] && break
		sleep 0.05
	done
	kill -9 "$child"
	wait "$pid" || true
	ls -A "$VMSAN_DIR/templates" | grep -q '\.tmp$'
	run vmsan gc --json
	assert_contains "$output" "unfinished template ."
	[ -z "$(ls -A "$VMSAN_DIR/templates" | grep '\.tmp$' || true)" ]
	# templates-max: the least recently used go first
	local keys n
	keys=$(ls "$VMSAN_DIR/templates")
	n=$(wc -w <<<"$keys")
	[ "$n" -ge 3 ] || { mk A --memory 304; mk B --memory 336; keys=$(ls "$VMSAN_DIR/templates"); n=$(wc -w <<<"$keys"); }
	local newest oldest
	newest=$(head -1 <<<"$keys")
	oldest=$(sed -n 2p <<<"$keys")
	for k in $keys; do touch -d '2 hours ago' "$VMSAN_DIR/templates/$k"; done
	touch -d '3 hours ago' "$VMSAN_DIR/templates/$oldest"
	touch "$VMSAN_DIR/templates/$newest"
	printf 'templates-max = %d\n' $((n - 1)) >"$VMSAN_DIR/config"
	run vmsan gc --json
	assert_contains "$output" "template $oldest beyond templates-max"
	[ ! -e "$VMSAN_DIR/templates/$oldest" ] && [ -d "$VMSAN_DIR/templates/$newest" ]
	rm "$VMSAN_DIR/config"
	# rm: by key, refused for a bad or unknown one
	run vmsan template rm "$newest" --json
	assert_eq "$status" 0
	[ ! -e "$VMSAN_DIR/templates/$newest" ]
	run vmsan template rm "$newest"
	assert_eq "$status" 1
	run vmsan template rm ../vms
	assert_eq "$status" 100
	[ -d "$VMSAN_DIR/vms" ]
	# an image removed: its templates go at the next gc
	mk E --memory 304
	for v in $(ls "$VMSAN_DIR/vms" | grep '\.json$' | sed 's/\.json$//'); do vmsan rm -f "$v" >/dev/null; done
	[ -n "$(ls "$VMSAN_DIR/templates")" ]
	vmsan images rm vmsan/base >/dev/null
	run vmsan gc --json
	assert_contains "$output" "its image is gone"
	assert_eq "$(ls -A "$VMSAN_DIR/templates")" ""
	run vmsan template list
	assert_eq "$output" "no templates"
	vmsan images pull --runtime base >/dev/null
}
