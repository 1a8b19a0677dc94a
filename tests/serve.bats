#!/usr/bin/env bats
# vmsan serve driven by E2B's own SDK (the e2b package from npm, pinned in
# tests/tools/package-lock.json, unmodified) with real guests: the daemon
# and the SDK in the test host namespace, whose route leads to the fake
# internet (net_helper.bash).  Bad input and other keys get E2B's statuses.

bats_require_minimum_version 1.5.0
load test_helper
load net_helper
load init_helper

PORT=3000
URL=http://127.0.0.1:$PORT

setup_file() {
	guest_suite_start || return 0
	export KEYS=$BATS_FILE_TMPDIR/api-keys
	"$TOP/bin/vmsan" serve --new-key --keys "$KEYS" >"$BATS_FILE_TMPDIR/key-a"
	"$TOP/bin/vmsan" serve --new-key --keys "$KEYS" >"$BATS_FILE_TMPDIR/key-b"
	serve_up
}

teardown_file() {
	serve_down
	guest_suite_down
}

# serve_up / serve_down: the daemon in the test host namespace.
serve_up() {
	nsenter --net="/run/netns/$H" "$TOP/bin/vmsan" serve --port "$PORT" --keys "$KEYS" \
		</dev/null 2>>"$BATS_FILE_TMPDIR/serve.log" &
	echo $! >"$BATS_FILE_TMPDIR/serve.pid"
	local _
	for _ in $(seq 100); do
		nsx "$H" curl -sf "$URL/health" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	cat "$BATS_FILE_TMPDIR/serve.log" >&2
	return 1
}

serve_down() {
	[ -f "$BATS_FILE_TMPDIR/serve.pid" ] || return 0
	local pid
	pid=$(cat "$BATS_FILE_TMPDIR/serve.pid")
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	rm -f "$BATS_FILE_TMPDIR/serve.pid"
}

setup() {
	require_root
	require_cmd qemu-system-x86_64
	require_cmd node
	guest_kernel >/dev/null
	TEST_TMP=$(mktemp -d /tmp/vmsan-test.XXXXXX)
	KEY_A=$(cat "$BATS_FILE_TMPDIR/key-a")
	KEY_B=$(cat "$BATS_FILE_TMPDIR/key-b")
}

teardown() {
	local id
	for id in ${IDS:-}; do sdk kill "$id" >/dev/null 2>&1 || vmsan rm -f "$id" >/dev/null 2>&1 || true; done
	[ -z "${REG_PID:-}" ] || { kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null || true; }
	rm -rf "$TEST_TMP"
}

# sdk STEP ARGS...: one step of tests/tools/e2b.mjs with key A (KEY=... for another).
sdk() {
	nsenter --net="/run/netns/$H" env E2B_API_URL="$URL" E2B_SANDBOX_URL="$URL" \
		E2B_API_KEY="${KEY:-$KEY_A}" node "$TOP/tests/tools/e2b.mjs" "$@"
}

# api METHOD PATH [BODY] [KEY]: curl on the control API; prints "STATUS BODY".
api() {
	local key=${4-$KEY_A}
	nsx "$H" curl -s -o "$TEST_TMP/body" -w '%{http_code}' -X "$1" ${key:+-H "X-API-KEY: $key"} \
		${3:+-H 'Content-Type: application/json' --data-binary "$3"} "$URL$2"
	printf ' %s\n' "$(cat "$TEST_TMP/body")"
}

# new_sandbox [METADATA [TIMEOUT_MS [NETWORK]]]: ID of a new base sandbox.
new_sandbox() {
	local out
	out=$(sdk create base "${1:-}" "${2:-}" "${3:-}") || { echo "$out" >&2; return 1; }
	ID=$(jq -r .id <<<"$out")
	IDS="${IDS:-} $ID"
}

# vm_status ID: running, paused (vCPUs stopped), ... or nothing when there is no such VM.
vm_status() {
	vmsan list --json | jq -r --arg id "$1" '.[] | select(.id == $id) | if .paused then "paused" else .status end'
}

@test "serve: E2B's SDK creates, lists by metadata, reads, measures and kills sandboxes that are vmsan VMs" {
	new_sandbox '{"suite":"serve","n":"1"}'
	assert_eq "$(vm_status "$ID")" running
	run sdk list '{"suite":"serve"}'
	assert_eq "$status" 0
	assert_eq "$(jq -r --arg id "$ID" '.[] | select(.id == $id) | .state' <<<"$output")" running
	assert_eq "$(jq -r --arg id "$ID" '.[] | select(.id == $id) | .template' <<<"$output")" base
	# control for the filter: another value matches nothing
	run sdk list '{"suite":"other"}'
	assert_eq "$output" '[]'
	run sdk info "$ID"
	assert_eq "$(jq -r .metadata.n <<<"$output")" 1
	run sdk metrics "$ID"
	assert_eq "$status" 0
	assert_eq "$(jq -r '.[0].cpuCount' <<<"$output")" 1
	assert_eq "$(jq -r '.[0].memTotal' <<<"$output")" $((256 << 20))
	[ "$(jq -r '.[0].memUsed' <<<"$output")" -gt 0 ]
	run sdk kill "$ID"
	assert_eq "$output" '{"killed":true}'
	assert_eq "$(vm_status "$ID")" ""
	run ip netns list
	[[ $output != *"vmsan-$ID"* ]]
	run sdk list '{"suite":"serve"}'
	assert_eq "$output" '[]'
	# killing it again: E2B's answer for a sandbox that is not there
	run sdk kill "$ID"
	assert_eq "$output" '{"killed":false}'
}

@test "serve: a sandbox ends when its timeout is up; setTimeout moves the end" {
	new_sandbox '' 600000
	run sdk timeout "$ID" 2000
	assert_eq "$output" '{"ok":true}'
	# control: it is there until then
	assert_eq "$(vm_status "$ID")" running
	local _
	for _ in $(seq 150); do [ -n "$(vm_status "$ID")" ] || break; sleep 0.1; done
	assert_eq "$(vm_status "$ID")" ""
	[ ! -e "$VMSAN_DIR/serve/$ID.json" ]
}

@test "serve: pause then connect resumes the same sandbox, its files kept" {
	new_sandbox
	vmsan exec "$ID" -- sh -c 'echo kept >/root/f'
	run sdk pause "$ID"
	assert_eq "$output" '{"paused":true}'
	assert_eq "$(vm_status "$ID")" paused
	assert_eq "$(sdk info "$ID" | jq -r .state)" paused
	# pausing a paused sandbox: E2B's 409, which the SDK reports as false
	run sdk pause "$ID"
	assert_eq "$output" '{"paused":false}'
	run sdk connect "$ID"
	assert_eq "$output" "{\"id\":\"$ID\",\"running\":true}"
	assert_eq "$(vm_status "$ID")" running
	run vmsan exec "$ID" -- cat /root/f
	assert_eq "$output" kept
}

@test "serve: a stopped daemon leaves sandboxes running, and a restarted one finds them" {
	new_sandbox '{"restart":"yes"}'
	serve_down
	assert_eq "$(vm_status "$ID")" running
	serve_up
	run sdk list '{"restart":"yes"}'
	assert_eq "$(jq -r '.[0].id' <<<"$output")" "$ID"
}

@test "serve: API keys: none or a wrong one is 401; another key's sandbox does not exist for it" {
	run api GET /v2/sandboxes '' ''
	assert_eq "$output" '401 {"code":401,"message":"Invalid API key"}'
	run api GET /v2/sandboxes '' e2b_0000000000000000000000000000000000000000
	assert_eq "${output%% *}" 401
	# control: the right key is served
	run api GET /v2/sandboxes
	assert_eq "${output%% *}" 200
	new_sandbox
	run api GET "/sandboxes/$ID" '' "$KEY_B"
	assert_eq "${output%% *}" 404
	run api DELETE "/sandboxes/$ID" '' "$KEY_B"
	assert_eq "${output%% *}" 404
	run api POST "/sandboxes/$ID/timeout" '{"timeout":1}' "$KEY_B"
	assert_eq "${output%% *}" 404
	KEY=$KEY_B run sdk list
	assert_eq "$output" '[]'
	assert_eq "$(vm_status "$ID")" running
	run api GET "/sandboxes/$ID"
	assert_eq "${output%% *}" 200
	assert_eq "$(jq -r .state <<<"${output#* }")" running
	# a key file others can read is refused
	cp "$KEYS" "$TEST_TMP/keys"
	chmod 644 "$TEST_TMP/keys"
	run nsenter --net="/run/netns/$H" "$TOP/bin/vmsan" serve --port 3001 --keys "$TEST_TMP/keys"
	[ "$status" -ne 0 ]
	assert_contains "$output" "mode 0600"
}

@test "serve: bad input gets E2B's error shape and status, and leaves nothing behind" {
	local before
	before=$(find "$VMSAN_DIR/vms" -mindepth 1 -maxdepth 1 | sort)
	run api POST /v2/sandboxes '{"templateID":'
	assert_eq "${output%% *}" 400
	assert_eq "$(jq -r .code <<<"${output#* }")" 400
	run api POST /v2/sandboxes '{"templateID":"base","extra":1}'
	assert_eq "$output" "400 {\"code\":400,\"message\":\"unknown field 'extra'\"}"
	run api POST /v2/sandboxes '{"templateID":"base","timeout":0}'
	assert_eq "${output%% *}" 400
	run api POST /v2/sandboxes '{"templateID":"base","metadata":{"k":1}}'
	assert_eq "${output%% *}" 400
	run api POST /v2/sandboxes '{"templateID":"base","network":{"allowOut":["192.0.2.10"]}}'
	assert_eq "${output%% *}" 400
	run api POST /v2/sandboxes '{"templateID":"no-such-template"}'
	assert_eq "$output" "404 {\"code\":404,\"message\":\"template 'no-such-template' not found\"}"
	run api POST /v2/sandboxes '{"templateID":"--runtime"}'
	assert_eq "${output%% *}" 404
	head -c 2000000 /dev/zero | tr '\0' ' ' >"$TEST_TMP/big"
	run nsx "$H" curl -s -w ' %{http_code}' -H "X-API-KEY: $KEY_A" --data-binary @"$TEST_TMP/big" "$URL/v2/sandboxes"
	assert_eq "${output##* }" 413
	run api PATCH /v2/sandboxes
	assert_eq "${output%% *}" 405
	run api GET /no/such/route
	assert_eq "${output%% *}" 404
	run api GET /sandboxes/vm-../etc
	assert_eq "${output%% *}" 404
	# nothing was made: no VM, no record
	assert_eq "$(find "$VMSAN_DIR/vms" -mindepth 1 -maxdepth 1 | sort)" "$before"
	assert_eq "$(find "$VMSAN_DIR/serve" -mindepth 1 -type f)" ""
	# a template whose registry does not answer: 502, and nothing left
	run api POST /v2/sandboxes '{"templateID":"127.0.0.1:1/nothing:here"}'
	assert_eq "${output%% *}" 502
	assert_eq "$(find "$VMSAN_DIR/vms" -mindepth 1 -maxdepth 1 | sort)" "$before"
}

@test "serve: a template from a plain-HTTP registry: refused (502) until VMSAN_INSECURE_REGISTRIES names it" {
	require_cmd docker-registry
	load rootfs_helper
	busybox_image "$TEST_TMP/img"
	echo from-the-registry >"$TEST_TMP/img/etc/marker"
	tar_layer "$TEST_TMP/img" "$TEST_TMP/layer.tar" gzip
	oci_image "$TEST_TMP/oci" v1 '{"Env":["PATH=/bin:/usr/bin"]}' "$TEST_TMP/layer.tar"
	REG_NS=$H registry_start
	REG_NS=$H push "$TEST_TMP/oci" v1 test/srv:v1
	# the daemon as the suite started it: the pull reached the registry, which speaks no TLS
	run api POST /v2/sandboxes "{\"templateID\":\"$REG/test/srv:v1\"}"
	assert_eq "${output%% *}" 502
	assert_contains "$output" "does not speak TLS"
	# the daemon started with the registry named: its creates pull over plain HTTP
	serve_down
	VMSAN_INSECURE_REGISTRIES=$REG serve_up
	local out
	out=$(sdk create "$REG/test/srv:v1") || { echo "$out" >&2; serve_down; serve_up; false; }
	ID=$(jq -r .id <<<"$out")
	IDS="${IDS:-} $ID"
	serve_down
	serve_up
	run vmsan exec "$ID" -- cat /etc/marker
	assert_eq "$output" from-the-registry
	registry_stop
}

@test "serve: a client that stalls mid-request holds only itself" {
	# half a request head, kept open
	nsenter --net="/run/netns/$H" sh -c "(printf 'POST /v2/sandboxes HTTP/1.1\r\nHost: x\r\n'; sleep 30) | nc 127.0.0.1 $PORT" \
		>/dev/null 2>&1 &
	local slow=$!
	sleep 0.3
	run nsx "$H" curl -s --max-time 4 -w ' %{http_code}' -H "X-API-KEY: $KEY_A" "$URL/v2/sandboxes"
	kill "$slow" 2>/dev/null || true
	assert_eq "${output##* }" 200
}

@test "serve: envd requests reach the sandbox's agent with its access token, and nothing else does" {
	new_sandbox
	local token
	token=$(api GET "/sandboxes/$ID" | sed 's/^[0-9]* //' | jq -r .envdAccessToken)
	[ ${#token} -ge 16 ]
	envd() { nsx "$H" curl -s -w ' %{http_code}' -H "E2b-Sandbox-Id: $1" -H 'E2b-Sandbox-Port: 49983' \
		${2:+-H "X-Access-Token: $2"} "$URL$3"; }
	# control: the token reaches the guest's agent
	run envd "$ID" "$token" /health
	assert_eq "${output##* }" 200
	assert_eq "$(jq -r .status <<<"${output% *}")" ok
	run envd "$ID" wrong-token-wrong-token /health
	assert_eq "${output##* }" 401
	run envd "$ID" "" /health
	assert_eq "${output##* }" 401
	run envd vm-00000000 "$token" /health
	assert_eq "${output##* }" 404
	# the agent's own API is not envd's: not proxied even with the token
	run envd "$ID" "$token" /shell/sessions
	assert_eq "${output##* }" 404
}

@test "serve: E2B's SDK runs commands in a sandbox: envd through the proxy, spoken by the guest's agent" {
	new_sandbox
	run sdk run "$ID" 'echo out; echo err >&2; exit 3'
	assert_eq "$(jq -c . <<<"$output")" '{"stdout":"out\n","stderr":"err\n","exitCode":3}'
	# control: a command that succeeds, in the guest (its hostname)
	run sdk run "$ID" 'hostname'
	assert_eq "$(jq -r .exitCode <<<"$output")" 0
	[ -n "$(jq -r .stdout <<<"$output")" ]
}

@test "serve: the network update is the live vmsan policy" {
	new_sandbox
	run vmsan exec "$ID" -- nc -w 3 192.0.2.10 80
	assert_eq "$output" hello-from-192.0.2.10
	run sdk network "$ID" '{"denyOut":["0.0.0.0/0"],"allowOut":["192.0.2.20"]}'
	assert_eq "$output" '{"ok":true}'
	run vmsan exec "$ID" -- nc -w 3 192.0.2.10 80
	[ "$status" -ne 0 ]
	[[ $output != *hello* ]]
	# control: what the allow list names still answers
	run vmsan exec "$ID" -- nc -w 3 192.0.2.20 80
	assert_eq "$output" hello-from-192.0.2.20
}

@test "serve: a sandbox's port (the SDK's getHost) reaches a server in the guest; the traffic token guards it" {
	new_sandbox '' '' '{"allowPublicTraffic":false}'
	vmsan exec "$ID" -- sh -c 'mkdir -p /tmp/www && echo hello-from-the-guest >/tmp/www/index.html &&
		busybox httpd -p 8080 -h /tmp/www'
	local out host tt
	out=$(sdk host "$ID" 8080)
	host=$(jq -r .host <<<"$out")
	tt=$(jq -r .trafficAccessToken <<<"$out")
	assert_eq "${host%%.*}" "8080-$ID"
	[ ${#tt} -ge 32 ]
	get() { nsx "$H" curl -s -w ' %{http_code}' -H "Host: $1" ${2:+-H "e2b-traffic-access-token: $2"} "$URL/index.html"; }
	# control: with the token, the guest's server answers
	run get "$host" "$tt"
	assert_eq "$output" "hello-from-the-guest
 200"
	# the server's own headers come back as it sent them
	run nsx "$H" curl -s -D - -o /dev/null -H "Host: $host" -H "e2b-traffic-access-token: $tt" "$URL/index.html"
	assert_eq "$(grep -i '^content-type:' <<<"$output" | tr -d '\r')" "Content-type: text/html"
	run get "$host" ""
	assert_eq "${output##* }" 403
	run get "$host" "0$tt"
	assert_eq "${output##* }" 403
	run get "8081-$ID.e2b.app" "$tt"
	assert_eq "${output##* }" 502
	# the same through the headers E2B_SANDBOX_URL uses
	run nsx "$H" curl -s -H "E2b-Sandbox-Id: $ID" -H 'E2b-Sandbox-Port: 8080' -H "e2b-traffic-access-token: $tt" \
		"$URL/index.html"
	assert_eq "$output" hello-from-the-guest
}

@test "serve: a guest that answers its ports with garbage gets 502 or a cut stream, and the daemon serves on" {
	new_sandbox
	# root in the guest: one canned answer per connection on each port
	# shellcheck disable=SC2016 # expanded in the guest
	vmsan exec "$ID" -- sh -c '
		serve() { while :; do printf "$2" | nc -l -p "$1" >/dev/null 2>&1; done; }
		big=$(head -c 20000 /dev/zero | tr "\0" a)
		serve 8001 "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n" &
		serve 8002 "HTTP/1.1 200 OK\r\nX: $big\r\n\r\n" &
		serve 8003 "HTTP/9.9 banana\r\n\r\n" &
		serve 8004 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n" &
		serve 8005 "HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\nshort" &
		serve 8006 "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n" &
		sleep 0.5' >/dev/null 2>&1 &
	sleep 2
	port() { nsx "$H" curl -s --max-time 4 -w ' %{http_code}' -H "Host: $1-$ID.e2b.app" "$URL/"; }
	# control: a well-formed answer comes through
	run port 8001
	assert_eq "$output" "ok
 200"
	run port 8002
	assert_eq "${output##* }" 502
	run port 8003
	assert_eq "${output##* }" 502
	run port 8006
	assert_eq "${output##* }" 502
	# a body that breaks off mid-way: the client sees the stream cut
	run port 8004
	[ "$status" -ne 0 ]
	run port 8005
	[ "$status" -ne 0 ]
	# the daemon is still there for everyone
	run nsx "$H" curl -s -w ' %{http_code}' -H "X-API-KEY: $KEY_A" "$URL/v2/sandboxes"
	assert_eq "${output##* }" 200
	run port 8001
	assert_eq "${output##* }" 200
}

@test "serve: a snapshot is a template, a process and files kept; fork makes running copies; both the key's own" {
	new_sandbox
	vmsan exec "$ID" -- sh -c 'echo kept >/root/f; (sleep 1000 &) ; true'
	run api POST "/sandboxes/$ID/snapshots" '{"name":"with-sleep"}'
	assert_eq "${output%% *}" 201
	local snap
	snap=$(jq -r .snapshotID <<<"${output#* }")
	assert_eq "$(jq -r '.names[0]' <<<"${output#* }")" with-sleep
	# the source keeps running
	assert_eq "$(vm_status "$ID")" running
	run api GET /snapshots
	assert_eq "$(jq -r '.[0].snapshotID' <<<"${output#* }")" "$snap"
	run api GET /snapshots '' "$KEY_B"
	assert_eq "$output" '200 []'
	# by name, a new sandbox with the file and the process
	run api POST /v2/sandboxes '{"templateID":"with-sleep"}'
	assert_eq "${output%% *}" 201
	local child
	child=$(jq -r .sandboxID <<<"${output#* }")
	IDS="$IDS $child"
	[ "$child" != "$ID" ]
	run vmsan exec "$child" -- sh -c 'cat /root/f; ps | grep -q "[s]leep 1000" && echo sleeping'
	assert_eq "$output" "kept
sleeping"
	# another key cannot use it: for that key it does not exist
	run api POST /v2/sandboxes '{"templateID":"with-sleep"}' "$KEY_B"
	assert_eq "${output%% *}" 404
	# fork: two running copies
	run api POST "/sandboxes/$ID/fork" '{"count":2,"timeout":120}'
	assert_eq "${output%% *}" 200
	local forks
	forks=$(jq -r '.[].sandbox.sandboxID' <<<"${output#* }")
	IDS="$IDS $forks"
	assert_eq "$(wc -w <<<"$forks")" 2
	for f in $forks; do
		assert_eq "$(vm_status "$f")" running
		run vmsan exec "$f" -- cat /root/f
		assert_eq "$output" kept
	done
	run api POST "/sandboxes/$ID/fork" '{"count":50}'
	assert_eq "${output%% *}" 400
}

# envd SCENARIO: a scenario of tests/tools/e2b-envd.mjs in a new sandbox
# of the daemon (created and killed by the SDK), its result on stdout.
envd_scenario() {
	nsenter --net="/run/netns/$H" env E2B_API_URL="$URL" E2B_SANDBOX_URL="$URL" E2B_API_KEY="$KEY_A" \
		node "$TOP/tests/tools/e2b-envd.mjs" serve - "$1" /root
}

@test "serve: the SDK's commands, PTY, files and watch work in a sandbox, through the daemon" {
	local out
	out=$(envd_scenario run)
	assert_eq "$(jq -r .exitCode <<<"$out")" 0
	assert_eq "$(jq -c .streamed <<<"$out")" '"one\n/root:0:/root:bar"'
	assert_eq "$(jq -c '[.fail.exitCode, .fail.stdout, .fail.isExitError, .missing]' <<<"$out")" '[3,"partial\n",true,127]'
	out=$(envd_scenario background)
	assert_eq "$(jq -r .killed <<<"$out")" true
	assert_eq "$(jq -r .listedAfter <<<"$out")" 0
	out=$(envd_scenario stdin)
	assert_eq "$(jq -c .stdout <<<"$out")" '"hello world\ndone\n"'
	out=$(envd_scenario pty)
	assert_eq "$(jq -c '[.answered, .resized, .tty]' <<<"$out")" '[true,true,true]'
	out=$(envd_scenario files)
	assert_eq "$(jq -c .read <<<"$out")" '"hello files\n"'
	assert_eq "$(jq -c '[.bytesEqual, .exists, .removed, .readMissing]' <<<"$out")" '[true,[true,false],false,true]'
	assert_eq "$(jq -cS .metadataInfo <<<"$out")" '{"k2":"v 2","owner":"vmsan"}'
	out=$(envd_scenario watch)
	assert_contains "$(jq -r '.events | join(" ")' <<<"$out")" "write:sub/w2.txt"
	out=$(envd_scenario timeout)
	assert_eq "$(jq -c '[.err, .left]' <<<"$out")" '["TimeoutError",0]'
	# every sandbox the scenarios made is gone
	run sdk list
	assert_eq "$output" '[]'
}

@test "serve: the example in E2B's README runs as written, and a client gone mid-stream stalls nobody" {
	# README, "Start a sandbox and run commands", and the client with an explicit configuration
	cat >"$TOP/tests/tools/.readme-$$.mjs" <<'JS'
import { Sandbox, E2B } from 'e2b'
const sandbox = await Sandbox.create()
const result = await sandbox.commands.run('echo "Hello from E2B!"')
console.log(result.stdout)
const client = new E2B({ apiKey: process.env.E2B_API_KEY })
const exists = await client.Template.exists('base')
const missing = await client.Template.exists('my-template')
const paginator = client.Sandbox.list()
console.log(JSON.stringify({ exists, missing, listed: (await paginator.nextItems()).some((s) => s.sandboxId === sandbox.sandboxId) }))
await sandbox.kill()
JS
	run nsenter --net="/run/netns/$H" env E2B_API_URL="$URL" E2B_SANDBOX_URL="$URL" E2B_API_KEY="$KEY_A" \
		node "$TOP/tests/tools/.readme-$$.mjs"
	rm -f "$TOP/tests/tools/.readme-$$.mjs"
	assert_eq "${lines[0]}" "Hello from E2B!"
	assert_eq "${lines[1]}" '{"exists":true,"missing":false,"listed":true}'
	# a client that goes away while its command streams: others are served
	new_sandbox
	local token
	token=$(api GET "/sandboxes/$ID" | sed 's/^[0-9]* //' | jq -r .envdAccessToken)
	printf '\0\0\0\0%b' "\\x$(printf %02x 60)" >/dev/null
	local body='{"process":{"cmd":"/bin/sh","args":["-c","while :; do echo tick; sleep 0.1; done"]}}'
	# one Connect envelope: a flag byte, the length (32 bits, big-endian), the JSON
	python3 -c 'import sys, struct; b = sys.argv[1].encode(); sys.stdout.buffer.write(b"\0" + struct.pack(">I", len(b)) + b)' \
		"$body" >"$TEST_TMP/start"
	nsx "$H" curl -s --max-time 2 -H "E2b-Sandbox-Id: $ID" -H "X-Access-Token: $token" \
		-H 'Content-Type: application/connect+json' --data-binary @"$TEST_TMP/start" \
		"$URL/process.Process/Start" >"$TEST_TMP/stream" || true
	# control: the stream was flowing when the client went
	assert_contains "$(tr -d '\0' <"$TEST_TMP/stream")" "dGljawo"
	run sdk run "$ID" 'echo still'
	assert_eq "$(jq -c .stdout <<<"$output")" '"still\n"'
	run nsx "$H" curl -s -w ' %{http_code}' -H "X-API-KEY: $KEY_A" "$URL/v2/sandboxes"
	assert_eq "${output##* }" 200
}

@test "serve: several clients at once: three SDK programs create, run and kill side by side" {
	local i
	for i in 1 2 3; do
		nsenter --net="/run/netns/$H" env E2B_API_URL="$URL" E2B_SANDBOX_URL="$URL" E2B_API_KEY="$KEY_A" \
			node "$TOP/tests/tools/e2b-envd.mjs" serve - guest /root >"$TEST_TMP/c$i" 2>&1 &
	done
	wait
	for i in 1 2 3; do
		assert_contains "$(jq -r .stdout "$TEST_TMP/c$i")" "ok"
		assert_eq "$(jq -r .read "$TEST_TMP/c$i")" "written by the SDK"
	done
	# three different guests answered, and none is left
	assert_eq "$(for i in 1 2 3; do jq -r '.stdout | split("\n")[2]' "$TEST_TMP/c$i"; done | sort -u | wc -l)" 3
	run sdk list
	assert_eq "$output" '[]'
}
