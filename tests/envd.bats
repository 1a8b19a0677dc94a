#!/usr/bin/env bats
# vmsan-agent's envd side (E2B's protocol, agent/envd/), with the agent as
# a process in a network namespace this suite creates (no VM needed; a
# real guest is in vm.bats), on envd's port 49983, driven by E2B's own
# SDK (tests/tools/e2b-envd.mjs) and, for what the SDK never sends, by
# curl with hand-made Connect envelopes.

# Remote commands are single-quoted on purpose: the agent's side expands them.
# shellcheck disable=SC2016
load test_helper
load agent_helper

PORT=49983

setup_extra() {
	require_root
	agent_up --port "$PORT"
	# a scratch directory any user may write in (nobody's, in one test)
	chmod 755 "$TEST_TMP"
	SCRATCH=$TEST_TMP/scratch
	mkdir -m 777 "$SCRATCH"
}

teardown_extra() {
	agent_down
}

# sdk SCENARIO: tests/tools/e2b-envd.mjs against the agent; its one JSON
# object in $output.
sdk() {
	run in_ns node "$TOP/tests/tools/e2b-envd.mjs" "http://127.0.0.1:$PORT" "$TOKEN" "$1" "$SCRATCH"
	[ "$status" -eq 0 ] || { echo "$output" >&2; return 1; }
	assert_eq "$(echo "$output" | jq -r .envdVersion)" "$(envd_version)"
}

# The version agent/envd/envd.h claims.
envd_version() {
	sed -n 's/^#define ENVD_VERSION "\(.*\)"/\1/p' "$TOP/agent/envd/envd.h"
}

# j FILTER: jq on $output.
j() { echo "$output" | jq -c "$1"; }

# rpc PROCEDURE JSON [curl args...]: a unary call with the token (in
# X-Access-Token, as the SDK sends it); the body, then the status alone on
# the last line.
rpc() {
	local p=$1 body=$2
	shift 2
	# the first Content-Type counts: the caller's, if it gives one
	in_ns curl -sS -X POST -H "X-Access-Token: $TOKEN" "$@" -H 'Content-Type: application/json' \
		--data-binary "$body" -w '\n%{http_code}' "http://127.0.0.1:$PORT/$p"
}

# envelope JSON [FLAGS-BYTE]: one Connect envelope holding JSON.
envelope() {
	local n=${#1} head
	head=$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((n >> 24 & 255)) $((n >> 16 & 255)) $((n >> 8 & 255)) \
		$((n & 255)))
	printf "\\x${2:-00}$head%s" "$1"
}

# stream PROCEDURE FILE [curl args...]: a streaming call whose body is
# FILE; the answer with its binary bytes as dots, then the status.
stream() {
	local p=$1 f=$2
	shift 2
	in_ns curl -sS -N -X POST -H "X-Access-Token: $TOKEN" "$@" -H 'Content-Type: application/connect+json' \
		--data-binary "@$f" -w '\n%{http_code}' "http://127.0.0.1:$PORT/$p" | LC_ALL=C tr -c '[:print:]\n' '.'
}

@test "envd: /health names the version of envd's API the agent implements" {
	run in_ns curl -sf "http://127.0.0.1:$PORT/health"
	assert_eq "$(j .status)" '"ok"'
	assert_eq "$(j .envdVersion)" "\"$(envd_version)\""
	[ -n "$(envd_version)" ]
}

@test "envd/sdk: commands.run streams output, gives exit codes; a failing command is a CommandExitError" {
	sdk run
	assert_eq "$(j .exitCode)" 0
	assert_eq "$(j .stdout)" "\"one\\n/root:0:$SCRATCH:bar\""
	assert_eq "$(j .streamed)" "$(j .stdout)"
	assert_eq "$(j .stderr)" '"two\n"'
	assert_eq "$(j .streamedErr)" '"two\n"'
	assert_eq "$(j .fail)" '{"name":"CommandExitError","exitCode":3,"stdout":"partial\n","stderr":"bad\n","error":"exit status 3","isExitError":true}'
	assert_eq "$(j .missing)" 127
}

@test "envd/sdk: a background command outlives its stream: listed, connected to again, killed" {
	sdk background
	assert_eq "$(j '.listed | length')" 1
	assert_eq "$(j '.listed[0].cmd')" '"/bin/bash"'
	assert_eq "$(j '.listed[0].pid')" "$(j .pid)"
	assert_eq "$(j .killed)" true
	assert_eq "$(j .end)" '{"exitCode":-1,"error":"signal: killed"}'
	assert_eq "$(j .listedAfter)" 0
	# gone: kill says so, connect is a NotFoundError
	assert_eq "$(j .killedAgain)" false
	assert_eq "$(j .connectGone)" '"NotFoundError"'
}

@test "envd/sdk: stdin: sent in pieces, closed; a command without stdin refuses it" {
	sdk stdin
	assert_eq "$(j .stdout)" '"hello world\ndone\n"'
	assert_eq "$(j .exitCode)" 0
	assert_contains "$(j .refused)" "stdin not enabled or closed"
}

@test "envd/sdk: a PTY: input, a controlling terminal, resize, kill" {
	sdk pty
	assert_eq "$(j .answered)" true
	assert_eq "$(j .tty)" true
	assert_eq "$(j .resized)" true
	assert_eq "$(j .killed)" true
	assert_eq "$(j .end.exitCode)" -1
}

@test "envd/sdk: a command's timeout ends it, and the agent kills it" {
	sdk timeout
	assert_eq "$(j .err)" '"TimeoutError"'
	assert_eq "$(j .elapsedOk)" true
	assert_eq "$(j .left)" 0
}

@test "envd/sdk: files: write (multipart, raw+gzip, several), read, list, exists, makeDir, rename, remove, metadata" {
	sdk files
	assert_eq "$(j .write)" "{\"name\":\"one.txt\",\"path\":\"$SCRATCH/a/b/one.txt\",\"type\":\"file\"}"
	assert_eq "$(j .read)" '"hello files\n"'
	assert_eq "$(j .bytesEqual)" true
	assert_eq "$(j .many)" '["m1","m2"]'
	assert_eq "$(j .gzip)" '{"name":"gz.txt","back":"squeezed"}'
	assert_eq "$(j .metadataWritten)" '{"k2":"v 2","owner":"vmsan"}'
	assert_eq "$(j .metadataInfo)" '{"k2":"v 2","owner":"vmsan"}'
	assert_eq "$(j .exists)" '[true,false]'
	assert_eq "$(j .makeDir)" '[true,false]'
	assert_eq "$(j .info)" '{"name":"one.txt","type":"file","size":12,"permissions":"-rw-r--r--","owner":"root","mtimeOk":true}'
	assert_eq "$(j .list)" '["a:dir","bin.dat:file","gz.txt:file","m1:file","m2:file","md.txt:file","new:dir"]'
	assert_eq "$(j .listDeep)" '["a","a/b","a/b/one.txt","bin.dat","gz.txt","m1","m2","md.txt","new","new/deep"]'
	assert_eq "$(j .rename)" "{\"path\":\"$SCRATCH/moved/one.txt\",\"old\":false}"
	assert_eq "$(j .removed)" false
	assert_eq "$(j .readMissing)" true
	assert_eq "$(j .listMissing)" true
	# what the SDK wrote is on the disk
	assert_eq "$(cat "$SCRATCH/moved/one.txt")" "hello files"
	assert_eq "$(getfattr --only-values -n user.e2b.owner "$SCRATCH/md.txt" 2>/dev/null)" vmsan
}

@test "envd/sdk: watchDir streams events as they happen, into new directories too" {
	sdk watch
	assert_eq "$(j .events)" '["create:w1.txt","write:w1.txt","create:sub","create:sub/w2.txt","write:sub/w2.txt","remove:w1.txt"]'
}

@test "envd/sdk: another user (Authorization: Basic): commands and files as that user, an unknown one refused" {
	sdk user
	assert_eq "$(j .who)" '"nobody\n/nonexistent\n"'
	assert_eq "$(j .owner)" '"nobody"'
	assert_eq "$(stat -c %U "$SCRATCH/by-nobody.txt")" nobody
	# the user's rights, not root's: /root is not nobody's to write
	assert_eq "$(j .denied)" '"SandboxError"'
	[ ! -e /root/not-nobodys.txt ]
	assert_eq "$(j .unknown)" '"AuthenticationError"'
}

@test "envd/sdk: signed URLs (uploadUrl, downloadUrl) need no token; a signature fits one path, one operation, one time span" {
	sdk urls
	assert_eq "$(j .signed)" true
	assert_eq "$(j .upload)" 200
	assert_eq "$(j .uploaded)" "[\"$SCRATCH/signed.txt\"]"
	assert_eq "$(j .download)" 200
	assert_eq "$(j .body)" '"via a signed URL\n"'
	assert_eq "$(j .tampered)" 401
	assert_eq "$(j .writeAsRead)" 401
	assert_eq "$(j .expired)" '[401,"signature is already expired"]'
}

@test "envd: StreamInput, a client stream: its envelopes reach the process as they come" {
	sdk streaminput
	assert_eq "$(j .status)" 200
	assert_eq "$(j .answer)" '["0:{}","2:{}"]'
	assert_eq "$(j .stdout)" '"streamed input\n"'
	# by hand: data before the start; a start for no process
	{ envelope '{"data":{"input":{"stdin":"eA=="}}}'; } >"$TEST_TMP/early"
	run stream process.Process/StreamInput "$TEST_TMP/early"
	assert_contains "$output" '{"error":{"code":"failed_precondition","message":"data before the start event"}}'
	{ envelope '{"start":{"process":{"pid":999999}}}'; envelope '{"keepalive":{}}'; } >"$TEST_TMP/nobody"
	run stream process.Process/StreamInput "$TEST_TMP/nobody"
	assert_contains "$output" '{"error":{"code":"not_found","message":"process with pid 999999 not found"}}'
}

@test "envd: the token as X-Access-Token or Bearer; refusals in envd's words: 401 unauthenticated, 403" {
	local url=http://127.0.0.1:$PORT
	# control: the token works, either way
	run rpc filesystem.Filesystem/Stat '{"path":"/tmp"}'
	assert_eq "${lines[-1]}" 200
	run in_ns curl -sS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"path":"/tmp"}' \
		-w '\n%{http_code}' "$url/filesystem.Filesystem/Stat"
	assert_eq "${lines[-1]}" 200
	# none
	run in_ns curl -sS -H 'Content-Type: application/json' -d '{"path":"/tmp"}' -w '\n%{http_code}' \
		"$url/filesystem.Filesystem/Stat"
	assert_eq "${lines[-1]}" 401
	assert_eq "$(echo "${lines[0]}" | jq -r .code)" unauthenticated
	run in_ns curl -sS -w '\n%{http_code}' "$url/files?path=/etc/hostname"
	assert_eq "${lines[-1]}" 401
	assert_eq "$(echo "${lines[0]}" | jq -r .code)" 401
	# a wrong one, as envd gets it: 401; as a bearer (the agent's own way): 403
	run in_ns curl -sS -H "X-Access-Token: x$TOKEN" -H 'Content-Type: application/json' -d '{"path":"/tmp"}' \
		-w '\n%{http_code}' "$url/filesystem.Filesystem/Stat"
	assert_eq "${lines[-1]}" 401
	assert_eq "$(echo "${lines[0]}" | jq -r .code)" unauthenticated
	run in_ns curl -sS -H "Authorization: Bearer x$TOKEN" -H 'Content-Type: application/json' -d '{"path":"/tmp"}' \
		-w '\n%{http_code}' "$url/filesystem.Filesystem/Stat"
	assert_eq "${lines[-1]}" 403
	assert_eq "$(echo "${lines[0]}" | jq -r .code)" permission_denied
	# a Basic authorization names a user, it is no token
	run in_ns curl -sS -H "Authorization: Basic $(printf 'root:%s' "$TOKEN" | base64 -w0)" \
		-H 'Content-Type: application/json' -d '{"path":"/tmp"}' -w '\n%{http_code}' "$url/filesystem.Filesystem/Stat"
	assert_eq "${lines[-1]}" 401
	# the agent's own endpoints take X-Access-Token too, and still answer
	# their own way without a token
	run in_ns curl -sS -H "X-Access-Token: $TOKEN" -d '{"cmd":"echo","args":["own"]}' "$url/exec"
	assert_contains "$output" '"data":"own\n"'
	run in_ns curl -sS -w '\n%{http_code}' -d '{"cmd":"true"}' "$url/exec"
	assert_eq "${lines[0]}" '{"error":"missing authorization"}'
	assert_eq "${lines[-1]}" 401
}

@test "envd: requests are read as protojson reads them: an unknown field or a wrong type is invalid_argument" {
	# control: camelCase or the proto's snake_case, null for the default
	run rpc filesystem.Filesystem/ListDir '{"path":"/etc","depth":1}'
	assert_eq "${lines[-1]}" 200
	run rpc filesystem.Filesystem/CreateWatcher "{\"path\":\"$SCRATCH\",\"include_entry\":true,\"recursive\":null}"
	assert_eq "${lines[-1]}" 200
	run rpc filesystem.Filesystem/Stat '{"path":"/tmp","bogus":1}'
	assert_eq "${lines[-1]}" 400
	assert_eq "$(echo "${lines[0]}" | jq -c .)" '{"code":"invalid_argument","message":"Stat: unknown field \"bogus\""}'
	run rpc filesystem.Filesystem/ListDir '{"path":"/tmp","depth":-1}'
	assert_eq "${lines[-1]}" 400
	run rpc filesystem.Filesystem/Stat '{"path":5}'
	assert_eq "${lines[-1]}" 400
	run rpc filesystem.Filesystem/CreateWatcher "{\"path\":\"$SCRATCH\",\"includeEntry\":true,\"include_entry\":true}"
	assert_eq "${lines[-1]}" 400
	assert_contains "${lines[0]}" "is set twice"
	run rpc filesystem.Filesystem/Stat '{"path":"/tmp"'
	assert_eq "${lines[-1]}" 400
	assert_contains "${lines[0]}" "invalid JSON message"
	run rpc process.Process/SendSignal '{"process":{"pid":1,"tag":"x"},"signal":"SIGNAL_SIGKILL"}'
	assert_eq "${lines[-1]}" 400
	assert_contains "${lines[0]}" "one of them"
	run rpc process.Process/SendSignal '{"process":{"pid":1},"signal":"SIGNAL_SIGHUP"}'
	assert_eq "${lines[-1]}" 400
	# what is not there: a procedure (404), a process (404 not_found)
	run rpc process.Process/Fork '{}'
	assert_eq "${lines[-1]}" 404
	assert_eq "$(echo "${lines[0]}" | jq -r .code)" unimplemented
	run rpc process.Process/SendSignal '{"process":{"pid":999999},"signal":"SIGNAL_SIGKILL"}'
	assert_eq "${lines[-1]}" 404
	assert_eq "$(echo "${lines[0]}" | jq -c .)" '{"code":"not_found","message":"process with pid 999999 not found"}'
	run in_ns curl -sS -H "X-Access-Token: $TOKEN" -w '\n%{http_code}' "http://127.0.0.1:$PORT/process.Process/List"
	assert_eq "${lines[-1]}" 405
}

@test "envd: a unary call wants application/json, a stream application/connect+json; anything else is 415" {
	# control: with a charset too
	run rpc filesystem.Filesystem/Stat '{"path":"/tmp"}' -H 'Content-Type: application/json; charset=utf-8'
	assert_eq "${lines[-1]}" 200
	local ct
	for ct in application/connect+json application/proto text/plain; do
		run rpc filesystem.Filesystem/Stat '{"path":"/tmp"}' -H "Content-Type: $ct"
		assert_eq "${lines[-1]}" 415
	done
	envelope '{"process":{"cmd":"true"}}' >"$TEST_TMP/start"
	run stream process.Process/Start "$TEST_TMP/start" -H 'Content-Type: application/json'
	assert_eq "${lines[-1]}" 415
	run stream process.Process/Start "$TEST_TMP/start" -H 'Content-Type: application/connect+proto'
	assert_eq "${lines[-1]}" 415
	assert_eq "$(ctl exec -- echo still-serving)" still-serving
}

@test "envd: a stream's request envelope: bad flags, cut short, oversized, two: the stream's end says why" {
	# control: a good one runs the command
	envelope '{"process":{"cmd":"/bin/sh","args":["-c","echo hi"]}}' >"$TEST_TMP/good"
	run stream process.Process/Start "$TEST_TMP/good"
	assert_eq "${lines[-1]}" 200
	assert_contains "$output" '{"event":{"data":{"stdout":"aGkK"}}}'
	assert_contains "$output" '"exitCode":0,"exited":true,"status":"exit status 0"}}}'
	assert_contains "$output" '..{}'
	# compressed (not negotiated), an end-of-stream flag (the server's)
	local f
	for f in 01 02; do
		envelope '{"process":{"cmd":"true"}}' "$f" >"$TEST_TMP/bad"
		run stream process.Process/Start "$TEST_TMP/bad"
		assert_eq "${lines[-1]}" 200
		assert_contains "$output" '{"error":{"code":"invalid_argument","message":"protocol error: envelope flags'
	done
	# cut short: says 100 bytes, has 10
	printf '\0\0\0\0\x64{"process"' >"$TEST_TMP/short"
	run stream process.Process/Start "$TEST_TMP/short"
	assert_contains "$output" '"message":"protocol error: incomplete envelope"'
	# says 2 GiB: refused by its head
	printf '\0\x7f\xff\xff\xff{}' >"$TEST_TMP/huge"
	run stream process.Process/Start "$TEST_TMP/huge"
	assert_contains "$output" '{"error":{"code":"resource_exhausted"'
	# two messages for a server stream; none
	cat "$TEST_TMP/good" "$TEST_TMP/good" >"$TEST_TMP/two"
	run stream process.Process/Start "$TEST_TMP/two"
	assert_contains "$output" '"message":"protocol error: more than one request message"'
	: >"$TEST_TMP/none"
	run stream process.Process/Start "$TEST_TMP/none"
	assert_contains "$output" '"message":"protocol error: missing request message"'
	# a message that is not JSON
	envelope '{"process":' >"$TEST_TMP/notjson"
	run stream process.Process/Start "$TEST_TMP/notjson"
	assert_contains "$output" '{"error":{"code":"invalid_argument","message":"invalid JSON message'
	# none of it ran anything, and the agent serves on
	run rpc process.Process/List '{}'
	assert_eq "${lines[0]}" '{"processes":[]}'
	assert_eq "$(ctl exec -- echo still-serving)" still-serving
}

@test "envd: keepalives come at Keepalive-Ping-Interval; Connect-Timeout-Ms ends the stream and the process" {
	envelope '{"process":{"cmd":"sleep","args":["30"]},"tag":"sleeper"}' >"$TEST_TMP/sleep"
	SECONDS=0
	run stream process.Process/Start "$TEST_TMP/sleep" -H 'Keepalive-Ping-Interval: 1' -H 'Connect-Timeout-Ms: 3500'
	[ "$SECONDS" -lt 10 ]
	assert_contains "$output" '{"event":{"start":{"pid":'
	# at 1, 2 and 3 s (a loaded machine may be late for one)
	local n
	n=$(grep -o '{"event":{"keepalive":{}}}' <<<"$output" | wc -l)
	[ "$n" -ge 2 ] && [ "$n" -le 3 ]
	assert_contains "$output" '{"error":{"code":"deadline_exceeded"'
	# the process went with it
	local pid
	pid=$(grep -o '"start":{"pid":[0-9]*' <<<"$output" | grep -o '[0-9]*$')
	[ -n "$pid" ]
	[ ! -e "/proc/$pid" ] || [ "$(cat "/proc/$pid/comm")" != sleep ]
	run rpc process.Process/List '{}'
	assert_eq "${lines[0]}" '{"processes":[]}'
}

@test "envd: past --max-execs processes a Start waits for one to end (E2B's envd has no limit), within its timeout" {
	agent_down
	agent_up --port "$PORT" --max-execs 1
	envelope '{"process":{"cmd":"sleep","args":["30"]},"tag":"one"}' >"$TEST_TMP/one"
	# the stream is dropped after a second; the process stays
	run stream process.Process/Start "$TEST_TMP/one" --max-time 1
	run rpc process.Process/List '{}'
	assert_eq "$(echo "${lines[0]}" | jq -c '[.processes[] | {tag, cmd: .config.cmd, args: .config.args}]')" \
		'[{"tag":"one","cmd":"sleep","args":["30"]}]'
	# a Start whose client leaves while it waits never runs
	envelope "{\"process\":{\"cmd\":\"touch\",\"args\":[\"$TEST_TMP/left\"]}}" >"$TEST_TMP/left.env"
	run stream process.Process/Start "$TEST_TMP/left.env" --max-time 1
	# a Start whose Connect-Timeout-Ms passes while it waits is refused
	envelope '{"process":{"cmd":"true"}}' >"$TEST_TMP/true"
	run stream process.Process/Start "$TEST_TMP/true" -H 'Connect-Timeout-Ms: 1000'
	assert_contains "$output" '{"error":{"code":"resource_exhausted","message":"too many processes (limit 1) for as'
	# a Start without a timeout waits for "one" to end, then runs
	stream process.Process/Start "$TEST_TMP/true" >"$TEST_TMP/waited" &
	local job=$! _
	# control: it is waiting (the agent says so, once for each of the three)
	for _ in $(seq 100); do
		[ "$(grep -c 'envd process waits for a slot' "$AG_LOG")" -lt 3 ] || break
		sleep 0.1
	done
	assert_eq "$(grep -c 'envd process waits for a slot' "$AG_LOG")" 3
	run rpc process.Process/SendSignal '{"process":{"tag":"one"},"signal":"SIGNAL_SIGTERM"}'
	assert_eq "${lines[-1]}" 200
	wait "$job"
	assert_contains "$(cat "$TEST_TMP/waited")" '"status":"exit status 0"'
	[ ! -e "$TEST_TMP/left" ]
	run rpc process.Process/List '{}'
	assert_eq "${lines[0]}" '{"processes":[]}'
}

@test "envd: polled watchers: CreateWatcher, GetWatcherEvents (snake_case too), RemoveWatcher" {
	run rpc filesystem.Filesystem/CreateWatcher "{\"path\":\"$SCRATCH\",\"recursive\":true}"
	assert_eq "${lines[-1]}" 200
	local id
	id=$(echo "${lines[0]}" | jq -r .watcherId)
	[[ $id == w* ]]
	echo x >"$SCRATCH/f"
	mkdir "$SCRATCH/d"
	run rpc filesystem.Filesystem/GetWatcherEvents "{\"watcherId\":\"$id\"}"
	assert_eq "${lines[0]}" '{"events":[{"name":"f","type":"EVENT_TYPE_CREATE"},{"name":"f","type":"EVENT_TYPE_WRITE"},{"name":"d","type":"EVENT_TYPE_CREATE"}]}'
	echo y >"$SCRATCH/d/g"
	chmod 600 "$SCRATCH/f"
	run rpc filesystem.Filesystem/GetWatcherEvents "{\"watcher_id\":\"$id\"}"
	assert_eq "${lines[0]}" '{"events":[{"name":"d/g","type":"EVENT_TYPE_CREATE"},{"name":"d/g","type":"EVENT_TYPE_WRITE"},{"name":"f","type":"EVENT_TYPE_CHMOD"}]}'
	run rpc filesystem.Filesystem/GetWatcherEvents "{\"watcherId\":\"$id\"}"
	assert_eq "${lines[0]}" '{"events":[]}'
	run rpc filesystem.Filesystem/RemoveWatcher "{\"watcherId\":\"$id\"}"
	assert_eq "${lines[-1]}" 200
	run rpc filesystem.Filesystem/GetWatcherEvents "{\"watcherId\":\"$id\"}"
	assert_eq "${lines[-1]}" 404
	run rpc filesystem.Filesystem/CreateWatcher '{"path":"/no/such/dir"}'
	assert_eq "${lines[-1]}" 404
	run rpc filesystem.Filesystem/CreateWatcher '{"path":"/etc/hostname"}'
	assert_eq "${lines[-1]}" 400
}

@test "envd: /files errors are {code,message}; a multipart upload names its files; a raw one needs a path" {
	local url=http://127.0.0.1:$PORT/files
	run in_ns curl -sS -H "X-Access-Token: $TOKEN" -w '\n%{http_code}' "$url?path=$SCRATCH/nope"
	assert_eq "${lines[-1]}" 404
	assert_eq "$(echo "${lines[0]}" | jq -c .)" "{\"code\":404,\"message\":\"path '$SCRATCH/nope' does not exist\"}"
	run in_ns curl -sS -H "X-Access-Token: $TOKEN" -w '\n%{http_code}' "$url?path=$SCRATCH"
	assert_eq "${lines[-1]}" 400
	run in_ns curl -sS -H "X-Access-Token: $TOKEN" -w '\n%{http_code}' "$url?path=/etc/hostname&username=no-such-user"
	assert_eq "${lines[-1]}" 401
	# control: curl's own multipart, two files named by their filenames
	echo one >"$TEST_TMP/one"
	echo two >"$TEST_TMP/two"
	run in_ns curl -sS -H "X-Access-Token: $TOKEN" -F "file=@$TEST_TMP/one;filename=$SCRATCH/x/1.txt" \
		-F "other=ignored" -F "file=@$TEST_TMP/two;filename=$SCRATCH/x/2.txt" -w '\n%{http_code}' "$url"
	assert_eq "${lines[-1]}" 200
	assert_eq "$(echo "${lines[0]}" | jq -c '[.[].name]')" '["1.txt","2.txt"]'
	assert_eq "$(cat "$SCRATCH/x/1.txt" "$SCRATCH/x/2.txt")" "$(printf 'one\ntwo')"
	# a download asked with Connection: close (as a proxy asks) still gets its body
	run in_ns curl -sS -H "X-Access-Token: $TOKEN" -H 'Connection: close' "$url?path=$SCRATCH/x/1.txt"
	assert_eq "$output" one
	# two files to one path: refused
	run in_ns curl -sS -H "X-Access-Token: $TOKEN" -F "file=@$TEST_TMP/one" -F "file=@$TEST_TMP/two" \
		-w '\n%{http_code}' "$url?path=$SCRATCH/same"
	assert_eq "${lines[-1]}" 400
	assert_contains "${lines[0]}" "cannot upload multiple files to the same path"
	# a raw body without a path; a body of another kind; a broken multipart
	run in_ns curl -sS -H "X-Access-Token: $TOKEN" -H 'Content-Type: application/octet-stream' --data-binary x \
		-w '\n%{http_code}' "$url"
	assert_eq "${lines[-1]}" 400
	assert_contains "${lines[0]}" "path query parameter is required"
	run in_ns curl -sS -H "X-Access-Token: $TOKEN" -H 'Content-Type: text/plain' --data-binary x \
		-w '\n%{http_code}' "$url?path=$SCRATCH/t"
	assert_eq "${lines[-1]}" 400
	run in_ns curl -sS -H "X-Access-Token: $TOKEN" -H 'Content-Type: multipart/form-data; boundary=XbX' \
		--data-binary $'--XbX\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\nno end' \
		-w '\n%{http_code}' "$url?path=$SCRATCH/cut"
	assert_eq "${lines[-1]}" 400
	assert_contains "${lines[0]}" "malformed multipart body"
	# a gzip'd raw body that is not gzip
	run in_ns curl -sS -H "X-Access-Token: $TOKEN" -H 'Content-Type: application/octet-stream' \
		-H 'Content-Encoding: gzip' --data-binary notgzip -w '\n%{http_code}' "$url?path=$SCRATCH/g"
	assert_eq "${lines[-1]}" 400
	assert_eq "$(ctl exec -- echo still-serving)" still-serving
}
