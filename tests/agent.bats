#!/usr/bin/env bats
# vmsan-agent and vmsan-agentctl, with the agent as a process in a network
# namespace this suite creates (no VM needed), driven by vmsan-agentctl and
# by independent clients: curl, node's ws, nc.

# Remote commands are single-quoted on purpose: the guest expands them.
# shellcheck disable=SC2016
load test_helper
load agent_helper

setup_extra() {
	require_root
	agent_up
}

teardown_extra() {
	agent_down
}

@test "agent: health needs no token and names the version" {
	run in_ns curl -sf "http://127.0.0.1:$PORT/health"
	[ "$status" -eq 0 ]
	assert_eq "$(echo "$output" | jq -r .status)" ok
	assert_eq "$(echo "$output" | jq -r .version)" "$(sed -n 's/^VMSAN_VERSION=//p' "$TOP/bin/vmsan")"
	run "$AGENT" --version
	assert_contains "$output" "vmsan-agent "
}

@test "agent: the binary is static and under 1 MiB" {
	run file -L "$AGENT"
	assert_contains "$output" "statically linked"
	[ "$(stat -c %s "$AGENT")" -lt 1048576 ]
}

@test "exec: exit codes, including death by a signal" {
	run ctl exec -- sh -c 'exit 7'
	assert_eq "$status" 7
	run ctl exec -- true
	assert_eq "$status" 0
	run ctl exec -- sh -c 'kill -TERM $$'
	assert_eq "$status" 143
	run ctl --json exec -- sh -c 'kill -KILL $$'
	assert_eq "$status" 137
	assert_eq "$(echo "$output" | jq -r .signal)" SIGKILL
	assert_eq "$(echo "$output" | jq -r .exitCode)" 137
}

@test "exec: commands start with no blocked or ignored signals and in their own session" {
	# The agent ignores SIGPIPE and handles SIGHUP; neither may leak, and
	# neither may what the agent's own parent ignored (here USR1 and 34).
	agent_down
	# shellcheck disable=SC2172 # 34 is a real-time signal libc reserves
	trap '' USR1 34
	agent_up
	# shellcheck disable=SC2172
	trap - USR1 34
	run ctl exec -- sh -c 'grep -E "^Sig(Blk|Ign):" /proc/self/status; ps -o sid= -p $$; echo $$'
	assert_eq "$status" 0
	assert_contains "$output" "SigBlk:	0000000000000000"
	assert_contains "$output" "SigIgn:	0000000000000000"
	# sid == pid of the shell: setsid() ran in the child
	local sid pid
	sid=$(echo "$output" | sed -n 3p | tr -d ' ')
	pid=$(echo "$output" | sed -n 4p)
	assert_eq "$sid" "$pid"
}

@test "exec: a missing command is 127, a directory 126, with a clear message" {
	run -127 ctl exec -- no-such-command-here
	assert_eq "$status" 127
	assert_contains "$output" "no-such-command-here: command not found"
	run ctl exec -- /tmp
	assert_eq "$status" 126
	assert_contains "$output" "cannot execute /tmp"
	assert_agent_serving
}

@test "exec: 10 MB of output arrives complete and in order, text and binary" {
	run bash -c "'$CTL' --help >/dev/null; nsenter --net=/run/netns/$AG_NS '$CTL' --agent 127.0.0.1:$PORT --token-file '$TOKEN_FILE' exec -- seq 1 1400000 | sha256sum"
	assert_eq "$output" "$(seq 1 1400000 | sha256sum)"
	[ "$(seq 1 1400000 | wc -c)" -gt 10000000 ]
	head -c 10485760 /dev/urandom >"$TEST_TMP/blob"
	run bash -c "nsenter --net=/run/netns/$AG_NS '$CTL' --agent 127.0.0.1:$PORT --token-file '$TOKEN_FILE' exec -- cat '$TEST_TMP/blob' | sha256sum"
	assert_eq "$output" "$(sha256sum <"$TEST_TMP/blob")"
}

@test "exec: output is streamed as it is produced, stdout and stderr interleaved in order" {
	# Each line is written 100 ms after the previous one, alternating fds.
	api POST /exec -N -d '{"cmd":"sh","args":["-c","for i in 1 2 3; do echo o$i; sleep 0.1; echo e$i >&2; sleep 0.1; done"]}' \
		>"$TEST_TMP/events"
	run jq -r 'select(.type=="stdout" or .type=="stderr") | .type + ":" + .data' "$TEST_TMP/events"
	assert_eq "$output" "$(printf 'stdout:o1\n\nstderr:e1\n\nstdout:o2\n\nstderr:e2\n\nstdout:o3\n\nstderr:e3\n')"
	# Streamed: the first output event is ~500 ms older than the exit.
	t0=$(jq -r 'select(.type=="stdout") | .ts' "$TEST_TMP/events" | head -1)
	t1=$(jq -r 'select(.type=="exit") | .ts' "$TEST_TMP/events")
	gap=$(( $(date -d "$t1" +%s%N) - $(date -d "$t0" +%s%N) ))
	[ "$gap" -gt 400000000 ]
	assert_eq "$(jq -r 'select(.type=="started") | .id' "$TEST_TMP/events" | grep -cE '^[0-9a-f]{16}$')" 1
}

@test "exec: stdin is streamed to the command (-i), 5 MB intact" {
	head -c 5000000 /dev/urandom >"$TEST_TMP/in"
	run bash -c "nsenter --net=/run/netns/$AG_NS '$CTL' --agent 127.0.0.1:$PORT --token-file '$TOKEN_FILE' exec -i -- sha256sum <'$TEST_TMP/in'"
	assert_eq "${output%% *}" "$(sha256sum <"$TEST_TMP/in" | cut -d' ' -f1)"
	# and with curl: the JSON object, then the stdin bytes
	printf '{"cmd":"tr","args":["a-z","A-Z"],"stdin":true}hello' >"$TEST_TMP/req"
	run api POST /exec -N -T "$TEST_TMP/req"
	assert_eq "$(echo "$output" | jq -r 'select(.type=="stdout") | .data')" HELLO
	# stdin bytes without "stdin":true are refused, not ignored
	printf '{"cmd":"cat"}trailing' >"$TEST_TMP/req2"
	run api POST /exec -T "$TEST_TMP/req2"
	assert_contains "$output" 'set \"stdin\":true'
}

@test "exec: --timeout kills the whole process group and exits 124" {
	run ctl exec --timeout 0.5 -- sh -c 'sleep 1001 & sleep 1002'
	assert_eq "$status" 124
	assert_contains "$output" "timed out after 500 ms"
	sleep 0.2
	run pgrep -f 'sleep 100[12]'
	assert_eq "$status" 1
	api POST /exec -d '{"cmd":"sleep","args":["5"],"timeoutMs":200}' >"$TEST_TMP/ev"
	assert_eq "$(jq -r .type "$TEST_TMP/ev" | tr '\n' ' ')" "started timeout exit "
	assert_eq "$(jq -r 'select(.type=="exit") | .timedOut' "$TEST_TMP/ev")" true
}

@test "exec: kill with a signal reaches the command; unknown ids are 404" {
	api POST /exec -N -d '{"cmd":"sh","args":["-c","trap \"echo got-term; exit 3\" TERM; sleep 1003 & wait"]}' \
		>"$TEST_TMP/ev" &
	local curl_pid=$! id=
	for _ in $(seq 50); do
		id=$(jq -r 'select(.type=="started") | .id' "$TEST_TMP/ev" 2>/dev/null) && [ -n "$id" ] && break
		sleep 0.05
	done
	[ -n "$id" ]
	sleep 0.2
	run ctl kill --signal TERM "$id"
	[ "$status" -eq 0 ]
	assert_contains "$output" SIGTERM
	wait "$curl_pid"
	assert_eq "$(jq -r 'select(.type=="stdout") | .data' "$TEST_TMP/ev")" got-term
	assert_eq "$(jq -r 'select(.type=="exit") | .exitCode' "$TEST_TMP/ev")" 3
	run ctl kill 0123456789abcdef
	assert_eq "$status" 1
	assert_contains "$output" "command not found"
	run ctl kill --signal NOPE 0123456789abcdef
	assert_contains "$output" "signal must be"
}

@test "exec: 50 concurrent commands all complete with their own output and status" {
	local i pids=
	for i in $(seq 50); do
		( rc=0
		  in_ns "$CTL" --agent "127.0.0.1:$PORT" --token-file "$TOKEN_FILE" \
			exec -- sh -c 'sleep 0.5; echo "n$0"; exit $(($0 % 5))' "$i" >"$TEST_TMP/c$i" 2>&1 || rc=$?
		  echo "$rc" >"$TEST_TMP/s$i" ) &
		pids="$pids $!"
	done
	# shellcheck disable=SC2086 # a list of pids
	wait $pids
	for i in $(seq 50); do
		assert_eq "$(cat "$TEST_TMP/c$i")" "n$i"
		assert_eq "$(cat "$TEST_TMP/s$i")" "$((i % 5))"
	done
}

@test "exec: past --max-execs the agent answers 429 and the client waits for a slot: none is lost, stdin kept" {
	agent_down
	agent_up --max-execs 2
	# two detached commands hold both slots for 2 s
	ctl exec --detach -- sleep 2 >/dev/null
	ctl exec --detach -- sleep 2 >/dev/null
	# control: the agent itself refuses a third while they run
	run api POST /exec -d '{"cmd":"true"}'
	assert_contains "$output" "too many concurrent commands (limit 2)"
	local i pids=
	for i in $(seq 12); do
		( rc=0
		  ctl exec -- sh -c 'echo "n$0"; exit $(($0 % 5))' "$i" >"$TEST_TMP/c$i" 2>&1 || rc=$?
		  echo "$rc" >"$TEST_TMP/s$i" ) &
		pids="$pids $!"
	done
	# -i: our stdin is sent only once the command runs, so a retry keeps it
	( printf 'from-stdin' | ctl exec -i -- cat >"$TEST_TMP/in" 2>&1; echo $? >"$TEST_TMP/in.rc" ) &
	pids="$pids $!"
	# shellcheck disable=SC2086 # a list of pids
	wait $pids || true
	for i in $(seq 12); do
		assert_eq "$(cat "$TEST_TMP/c$i")" "n$i"
		assert_eq "$(cat "$TEST_TMP/s$i")" "$((i % 5))"
	done
	assert_eq "$(cat "$TEST_TMP/in")" from-stdin
	assert_eq "$(cat "$TEST_TMP/in.rc")" 0
	# the agent did turn some away: the waits were real
	grep -q '"path":"/exec","status":429' "$AG_LOG"
	assert_agent_serving
}

@test "exec: a signal while waiting for a slot ends the wait; the command never runs" {
	agent_down
	agent_up --max-execs 1
	ctl exec --detach -- sleep 5 >/dev/null
	# not through a function: the signal is for agentctl itself
	nsenter --net="/run/netns/$AG_NS" "$CTL" --agent "127.0.0.1:$PORT" --token-file "$TOKEN_FILE" \
		exec -- touch "$TEST_TMP/ran" >"$TEST_TMP/out" 2>&1 &
	local pid=$!
	# control: it is waiting (the agent turned it away at least once)
	local _
	for _ in $(seq 50); do
		! grep -q '"path":"/exec","status":429' "$AG_LOG" || break
		sleep 0.1
	done
	grep -q '"path":"/exec","status":429' "$AG_LOG"
	kill -TERM "$pid"
	local rc=0
	wait "$pid" || rc=$?
	assert_eq "$rc" 143
	assert_contains "$(cat "$TEST_TMP/out")" "the command did not run"
	sleep 0.5
	[ ! -e "$TEST_TMP/ran" ]
}

@test "exec: env, workdir, user (from /etc/passwd) and --sudo" {
	run ctl exec -e FOO=bar -e 'SPACED=a b' -- sh -c 'echo "$FOO|$SPACED|$HOME|$USER"'
	assert_eq "$output" "bar|a b|/root|root"
	run ctl exec -w /tmp -- pwd
	assert_eq "$output" /tmp
	run ctl exec --user nobody -- id -u
	assert_eq "$output" 65534
	run ctl exec --user nobody --sudo -- id -u
	assert_eq "$output" 0
	run -127 ctl exec -e PATH=/nowhere -- ls
	assert_eq "$status" 127
	run ctl exec --user no-such-user -- id
	assert_eq "$status" 1
	assert_contains "$output" "unknown user 'no-such-user'"
	run ctl exec -w relative -- pwd
	assert_eq "$status" 100
	run ctl exec --env NOEQUALS -- true
	assert_eq "$status" 100
}

@test "exec: the token reaches no child's environment and no log line" {
	agent_down
	# Given through the environment as well, the worst case.
	AG_NS=vmsan-tag$$-${BATS_TEST_NUMBER}b
	ip netns add "$AG_NS"
	in_ns ip link set lo up
	TOKEN=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
	printf '%s' "$TOKEN" >"$TOKEN_FILE"
	VMSAN_AGENT_TOKEN=$TOKEN in_ns "$AGENT" --token-file /nonexistent >"$AG_LOG" 2>&1 &
	AG_PID=$!
	for _ in $(seq 100); do in_ns curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.05; done
	run ctl exec -- sh -c 'env; cat /proc/$$/environ | tr "\0" "\n"'
	[ "$status" -eq 0 ]
	[ -n "$output" ]
	if printf '%s' "$output" | grep -q "$TOKEN"; then false; fi
	if printf '%s' "$output" | grep -q VMSAN_AGENT_TOKEN; then false; fi
	if tr '\0' '\n' </proc/"$AG_PID"/environ | grep -q "$TOKEN"; then false; fi
	run ctl exec -- true
	if grep -q "$TOKEN" "$AG_LOG"; then false; fi
	grep -q '"path":"/exec"' "$AG_LOG"
	# and on the command line it is refused outright
	run "$AGENT" --token "$TOKEN"
	assert_eq "$status" 2
	assert_contains "$output" "--token-file"
}

@test "auth: wrong and missing tokens are refused; the agent keeps serving" {
	run in_ns curl -s -o /dev/null -w '%{http_code}' -d '{"cmd":"true"}' "http://127.0.0.1:$PORT/exec"
	assert_eq "$output" 401
	run in_ns curl -s -w '%{http_code}' -H "Authorization: Bearer x$TOKEN" -d '{"cmd":"true"}' "http://127.0.0.1:$PORT/exec"
	assert_eq "$output" '{"error":"invalid token"}
403'
	printf 'wrong-token-0123456789' >"$TEST_TMP/bad"
	run in_ns "$CTL" --agent "127.0.0.1:$PORT" --token-file "$TEST_TMP/bad" exec -- true
	assert_eq "$status" 1
	assert_contains "$output" "403"
	assert_contains "$output" "fix:"
	run in_ns node "$WSC" "ws://127.0.0.1:$PORT/ws/shell" --token "x$TOKEN"
	assert_contains "$output" "http 403"
	assert_agent_serving
}

@test "http: /shutdown is refused (501) unless vmsan-init started the agent; needs the token" {
	run api POST /shutdown
	assert_contains "$output" "not started by vmsan-init"
	run ctl shutdown
	assert_eq "$status" 1
	assert_contains "$output" "501"
	assert_eq "$(in_ns curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/shutdown")" 401
	assert_agent_serving
}

@test "http: malformed requests, oversize heads and bad framing get 4xx; the agent keeps serving" {
	printf 'GARBAGE\r\n\r\n' >"$TEST_TMP/r1"
	assert_eq "$(raw_http "$TEST_TMP/r1")" "HTTP/1.1 400 Bad Request"
	{ printf 'GET /health HTTP/1.1\r\nX-Big: '; head -c 20000 /dev/zero | tr '\0' a; printf '\r\n\r\n'; } >"$TEST_TMP/r2"
	assert_eq "$(raw_http "$TEST_TMP/r2")" "HTTP/1.1 431 Request Header Fields Too Large"
	printf 'POST /exec HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n' >"$TEST_TMP/r3"
	assert_eq "$(raw_http "$TEST_TMP/r3")" "HTTP/1.1 400 Bad Request"
	printf 'GET /health HTTP/2.0\r\n\r\n' >"$TEST_TMP/r4"
	assert_eq "$(raw_http "$TEST_TMP/r4")" "HTTP/1.1 505 HTTP Version Not Supported"
	printf 'POST /exec HTTP/1.1\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n' "$TOKEN" >"$TEST_TMP/r5"
	assert_eq "$(raw_http "$TEST_TMP/r5")" "HTTP/1.1 400 Bad Request"
	run api POST /exec -d '{"cmd":"true","bogus":1}'
	assert_contains "$output" "unknown field 'bogus'"
	run api POST /exec -d '{"cmd":'
	assert_contains "$output" "invalid JSON"
	run api GET /nope
	assert_contains "$output" "no such endpoint"
	assert_agent_serving
}

@test "shell: a WebSocket frame over 64 KiB is refused with 1009; the agent keeps serving" {
	run in_ns node "$WSC" "ws://127.0.0.1:$PORT/ws/shell?shell=/bin/sh" --token "$TOKEN" --big 70000
	assert_contains "$output" "close 1009 message too big"
	assert_agent_serving
}

@test "shell: an independent client (node ws) runs commands; two subscribers share a session" {
	run in_ns node "$WSC" "ws://127.0.0.1:$PORT/ws/shell?shell=/bin/sh" --query-token --token "$TOKEN" \
		--send 'echo m$((6*7))k; ' --send $'echo done\n' --expect m42k
	assert_contains "$output" matched
	sid=$(echo "$output" | sed -n 's/^session //p')
	[ "${#sid}" -eq 32 ]
	# Two subscribers on one session: both see what either types.
	in_ns node "$WSC" "ws://127.0.0.1:$PORT/ws/shell/$sid" --token "$TOKEN" --expect shared-0x --stay --wait 3000 \
		>"$TEST_TMP/sub1" &
	local p1=$!
	sleep 0.5
	run api GET /shell/sessions
	assert_eq "$(echo "$output" | jq -r ".[] | select(.sessionId==\"$sid\") | .subscriberCount")" 1
	run in_ns node "$WSC" "ws://127.0.0.1:$PORT/ws/shell/$sid" --token "$TOKEN" --send $'echo shared-$((2*0))x\n' \
		--expect shared-0x
	assert_contains "$output" matched
	wait "$p1"
	grep -q '^matched' "$TEST_TMP/sub1"
	run api POST "/shell/sessions/$sid/kill"
	assert_eq "$output" '{"ok":true}'
	sleep 0.3
	run api GET /shell/sessions
	assert_eq "$(echo "$output" | jq length)" 0
	run in_ns node "$WSC" "ws://127.0.0.1:$PORT/ws/shell/$sid" --token "$TOKEN"
	assert_contains "$output" "http 404"
}

@test "shell: a PTY under tmux: keys, screen, resize, detach and re-attach" {
	require_cmd tmux
	local sock=$TEST_TMP/tmux.sock run="nsenter --net=/run/netns/$AG_NS $CTL --agent 127.0.0.1:$PORT --token-file $TOKEN_FILE"
	tmux -S "$sock" new-session -d -x 100 -y 30 "$run shell --shell /bin/sh; echo EXIT=\$?; sleep 30"
	screen() { tmux -S "$sock" capture-pane -p; }
	wait_screen() {
		for _ in $(seq 60); do screen | grep -q "$1" && return 0; sleep 0.05; done
		screen >&2
		return 1
	}
	wait_screen '^#'                # the shell's prompt: it reads input now
	tmux -S "$sock" send-keys 'echo hello-$((6*7)); stty size' Enter
	wait_screen hello-42
	wait_screen '30 100'
	tmux -S "$sock" resize-window -x 120 -y 40
	sleep 0.2
	tmux -S "$sock" send-keys 'stty size; echo marker-one' Enter
	wait_screen '40 120'
	sid=$(api GET /shell/sessions | jq -r '.[0].sessionId')
	[ "${#sid}" -eq 32 ]
	# Detach by killing the client: the session survives.
	tmux -S "$sock" kill-server
	sleep 0.3
	run api GET /shell/sessions
	assert_eq "$(echo "$output" | jq -r '.[0].subscriberCount')" 0
	tmux -S "$sock" new-session -d -x 120 -y 40 "$run shell --session $sid; echo EXIT=\$?; sleep 30"
	wait_screen marker-one          # replayed from the session's scrollback
	tmux -S "$sock" send-keys 'exit 5' Enter
	wait_screen EXIT=5
	tmux -S "$sock" kill-server
}

@test "shell: bad shells, users and unknown sessions are refused clearly" {
	run in_ns node "$WSC" "ws://127.0.0.1:$PORT/ws/shell?shell=/usr/bin/python3" --token "$TOKEN"
	assert_contains "$output" "http 400"
	run api GET /ws/shell -H 'Upgrade: websocket' -H 'Connection: Upgrade' -H 'Sec-WebSocket-Version: 13' \
		-H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' --get --data-urlencode shell=/bin/nosh
	assert_contains "$output" "shell not allowed"
	run api GET /ws/shell -H 'Upgrade: websocket' -H 'Connection: Upgrade' -H 'Sec-WebSocket-Version: 13' \
		-H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' --get --data-urlencode user=ghost
	assert_contains "$output" "unknown user 'ghost'"
	run api GET /ws/shell
	assert_contains "$output" "needs a WebSocket upgrade"
	run ctl shell --session nothex
	assert_eq "$status" 100
	assert_agent_serving
}

@test "files: a 200 MB random file goes up and comes back with the same sha256" {
	head -c 209715200 /dev/urandom >"$TEST_TMP/big"
	want=$(sha256sum <"$TEST_TMP/big" | cut -d' ' -f1)
	run ctl upload --dest "$TEST_TMP/remote" "$TEST_TMP/big"
	[ "$status" -eq 0 ]
	assert_eq "$(sha256sum <"$TEST_TMP/remote/big" | cut -d' ' -f1)" "$want"
	mkdir "$TEST_TMP/back"
	run ctl download --dest "$TEST_TMP/back/" "$TEST_TMP/remote/big"
	[ "$status" -eq 0 ]
	assert_eq "$(sha256sum <"$TEST_TMP/back/big" | cut -d' ' -f1)" "$want"
	# raw read of one file, as the original's client does it
	api POST /files/read -d "{\"path\":\"$TEST_TMP/remote/big\"}" -o "$TEST_TMP/raw"
	assert_eq "$(sha256sum <"$TEST_TMP/raw" | cut -d' ' -f1)" "$want"
}

@test "files: a tree with odd names, modes and symlinks round-trips exactly" {
	local t=$TEST_TMP/tree
	mkdir -p "$t/sub dir/deeper" "$t/ünï cødé"
	printf 'a' >"$t/with space"
	printf 'b' >"$t/new
line"
	printf 'c' >"$t/ünï cødé/ファイル"
	printf 'd' >"$t/sub dir/deeper/$(printf 'x%.0s' $(seq 150))"
	printf '#!/bin/sh\n' >"$t/run.sh"
	chmod 750 "$t/run.sh"
	chmod 700 "$t/sub dir/deeper"
	ln -s "with space" "$t/link"
	listing() { (cd "$1" && find . -printf '%P|%y|%m|%l|%s\n' | LC_ALL=C sort); }
	run ctl upload --dest "$TEST_TMP/r" "$t"
	[ "$status" -eq 0 ]
	assert_eq "$(listing "$TEST_TMP/r/tree")" "$(listing "$t")"
	run ctl download --dest "$TEST_TMP/copy" "$TEST_TMP/r/tree"
	[ "$status" -eq 0 ]
	assert_eq "$(listing "$TEST_TMP/copy")" "$(listing "$t")"
	assert_eq "$(cat "$TEST_TMP/copy/new
line")" b
	# upload with curl and a gzip'd tar, as the original's client sends it
	tar -C "$t" -czf "$TEST_TMP/up.tgz" .
	run api POST /files/write -H "X-Extract-Dir: $TEST_TMP/viacurl" --data-binary @"$TEST_TMP/up.tgz"
	assert_eq "$(echo "$output" | jq .filesWritten)" 5
	assert_eq "$(listing "$TEST_TMP/viacurl")" "$(listing "$t")"
	# ownership: to a named user, or preserved from the archive
	run ctl upload --user nobody --dest "$TEST_TMP/own" "$t/run.sh"
	assert_eq "$(stat -c %U "$TEST_TMP/own/run.sh")" nobody
}

@test "files: an upload of several paths counts each file once" {
	mkdir -p "$TEST_TMP/several/d"
	printf 'a' >"$TEST_TMP/several/a"
	printf 'bb' >"$TEST_TMP/several/b"
	printf 'ccc' >"$TEST_TMP/several/d/c"
	run ctl upload --dest "$TEST_TMP/up3" "$TEST_TMP/several/a" "$TEST_TMP/several/b" "$TEST_TMP/several/d"
	assert_eq "$status" 0
	assert_eq "$output" "uploaded 3 file(s), 6 bytes"
	run ctl --json upload --dest "$TEST_TMP/up2" "$TEST_TMP/several/a" "$TEST_TMP/several/b"
	assert_eq "$status" 0
	assert_one_json "$output"
	# the control: the agent's own count of what it wrote
	assert_eq "$(echo "$output" | jq .written.filesWritten)" 2
	assert_eq "$(echo "$output" | jq -c '[.files, .bytes]')" "[2,3]"
}

@test "files: an upload arrives whole however its body is cut (chunks of any size, or Content-Length)" {
	# File data is written from the connection's buffer where it lies: a
	# file bigger than the sniffed first 64 KiB and the 256 KiB buffer,
	# chunk and buffer edges anywhere in it, small files after it.
	mkdir -p "$TEST_TMP/cut"
	head -c 700001 /dev/urandom >"$TEST_TMP/cut/big"
	printf 'x' >"$TEST_TMP/cut/one"
	head -c 513 /dev/urandom >"$TEST_TMP/cut/odd"
	tar -C "$TEST_TMP" -cf "$TEST_TMP/cut.tar" cut
	# chunks of 1, 7, 511, 4099 and 65537 bytes in turn
	python3 - "$TEST_TMP/cut.tar" "$TEST_TMP/cut.http" "$TOKEN" "$TEST_TMP/viachunks" <<'PY'
import sys
data = open(sys.argv[1], 'rb').read()
out = open(sys.argv[2], 'wb')
out.write(('POST /files/write HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n'
           'X-Extract-Dir: %s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n'
           % (sys.argv[3], sys.argv[4])).encode())
sizes, i, k = [1, 7, 511, 4099, 65537], 0, 0
while i < len(data):
    n = sizes[k % len(sizes)]
    out.write(b'%x\r\n' % len(data[i:i + n]) + data[i:i + n] + b'\r\n')
    i, k = i + n, k + 1
out.write(b'0\r\n\r\n')
PY
	run in_ns sh -c "socat -t 30 - TCP:127.0.0.1:$PORT <'$TEST_TMP/cut.http'"
	assert_contains "$output" "200 OK"
	# the control: the agent's own count of what it wrote
	assert_contains "$output" '"filesWritten":3'
	assert_contains "$output" '"bytes":700515'
	run api POST /files/write -H "X-Extract-Dir: $TEST_TMP/vialength" --data-binary @"$TEST_TMP/cut.tar"
	assert_contains "$output" '"filesWritten":3'
	run ctl upload --dest "$TEST_TMP/viactl" "$TEST_TMP/cut"
	assert_eq "$status" 0
	for d in viachunks vialength viactl; do
		for f in big one odd; do
			cmp "$TEST_TMP/cut/$f" "$TEST_TMP/$d/cut/$f"
		done
	done
}

@test "files: vmsan-agentctl sends each chunk of an upload in one write, size line and CRLF with its data" {
	command -v strace >/dev/null || skip "needs strace"
	head -c 1000000 /dev/urandom >"$TEST_TMP/onew"
	# (LeakSanitizer cannot run under ptrace: off for this one, in a
	# sanitized build)
	run env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" strace -f -e trace=sendto,sendmsg \
		-o "$TEST_TMP/onew.trace" nsenter --net="/run/netns/$AG_NS" "$CTL" --agent "127.0.0.1:$PORT" --token-file "$TOKEN_FILE" \
		upload --dest "$TEST_TMP/onewd" "$TEST_TMP/onew"
	assert_eq "$status" 0
	cmp "$TEST_TMP/onew" "$TEST_TMP/onewd/onew"
	# the control: the trace saw the upload's data go out (in 256 KiB chunks)
	grep -qE '(sendto|sendmsg)\(.*262144' "$TEST_TMP/onew.trace"
	# no size line and no CRLF sent alone (each a segment of its own and
	# a wakeup of the guest's agent under TCP_NODELAY)
	run grep -cE 'sendto\([0-9]+, "(\\r\\n|[0-9a-f]+\\r\\n)", [0-9]+,' "$TEST_TMP/onew.trace"
	assert_eq "$output" 0
}

@test "files: path escapes in uploads are refused and write nothing outside" {
	mkdir -p "$TEST_TMP/src" "$TEST_TMP/outside" "$TEST_TMP/dst"
	echo pwned >"$TEST_TMP/src/f"
	# 1. a ".." member
	tar -C "$TEST_TMP/src" -P --transform 's,^,../,' -cf "$TEST_TMP/dotdot.tar" f
	tar -tf "$TEST_TMP/dotdot.tar" | grep -qx '../f'
	run api POST /files/write -H "X-Extract-Dir: $TEST_TMP/dst" --data-binary @"$TEST_TMP/dotdot.tar"
	assert_contains "$output" "path traversal"
	[ ! -e "$TEST_TMP/f" ]
	# 2. a symlink out, then a file through it
	mkdir -p "$TEST_TMP/s1" "$TEST_TMP/s2/l"
	ln -s "$TEST_TMP/outside" "$TEST_TMP/s1/l"
	echo pwned >"$TEST_TMP/s2/l/file"
	tar -C "$TEST_TMP/s1" -cf "$TEST_TMP/sym.tar" l
	tar -C "$TEST_TMP/s2" -rf "$TEST_TMP/sym.tar" l/file
	run api POST /files/write -H "X-Extract-Dir: $TEST_TMP/dst" --data-binary @"$TEST_TMP/sym.tar"
	assert_contains "$output" "escapes the target directory"
	[ ! -e "$TEST_TMP/outside/file" ]
	# 3. a relative or dotted extract dir
	run api POST /files/write -H "X-Extract-Dir: relative" --data-binary @"$TEST_TMP/sym.tar"
	assert_contains "$output" "must be absolute"
	run api POST /files/read -d '{"path":"/tmp/../etc/passwd"}'
	assert_contains "$output" "path traversal"
	assert_agent_serving
}

@test "files: a download from a hostile guest cannot write outside the destination" {
	# A fake agent that answers every request with a crafted archive:
	# entries outside the name asked for, "..", and a symlink to follow.
	mkdir -p "$TEST_TMP/evil/x" "$TEST_TMP/outside" "$TEST_TMP/dl"
	echo pwned >"$TEST_TMP/evil/x/f"
	tar -C "$TEST_TMP/evil" -P --transform 's,^x/f$,../../outside/f,' -cf "$TEST_TMP/a.tar" x/f
	make_reply() {
		{ printf 'HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nContent-Length: %s\r\nConnection: close\r\n\r\n' \
			"$(stat -c %s "$1")"; cat "$1"; } >"$1.http"
	}
	make_reply "$TEST_TMP/a.tar"
	serve() {
		in_ns socat TCP4-LISTEN:9200,bind=127.0.0.1,reuseaddr "SYSTEM:sleep 0.2; cat '$1'" &
		sleep 0.3
	}
	serve "$TEST_TMP/a.tar.http"
	run in_ns "$CTL" --agent 127.0.0.1:9200 --token-file "$TOKEN_FILE" download --dest "$TEST_TMP/dl/" /x
	assert_eq "$status" 1
	assert_contains "$output" "nothing was written"
	[ ! -e "$TEST_TMP/outside/f" ]
	# a symlink planted in the archive, then a file through it
	mkdir -p "$TEST_TMP/e1" "$TEST_TMP/e2/x/l"
	ln -s "$TEST_TMP/outside" "$TEST_TMP/e1/x"
	mkdir -p "$TEST_TMP/e1b/x" && ln -s "$TEST_TMP/outside" "$TEST_TMP/e1b/x/l"
	echo pwned >"$TEST_TMP/e2/x/l/g"
	tar -C "$TEST_TMP/e1b" -cf "$TEST_TMP/b.tar" x x/l
	tar -C "$TEST_TMP/e2" -rf "$TEST_TMP/b.tar" x/l/g
	make_reply "$TEST_TMP/b.tar"
	serve "$TEST_TMP/b.tar.http"
	run in_ns "$CTL" --agent 127.0.0.1:9200 --token-file "$TOKEN_FILE" download --dest "$TEST_TMP/dl/" /x
	assert_eq "$status" 1
	[ ! -e "$TEST_TMP/outside/g" ]
	# a setuid file arrives without its setuid bit
	mkdir -p "$TEST_TMP/e3/x"
	printf 'x' >"$TEST_TMP/e3/x/suid"
	chmod 4755 "$TEST_TMP/e3/x/suid"
	tar -C "$TEST_TMP/e3" -cf "$TEST_TMP/c.tar" x
	make_reply "$TEST_TMP/c.tar"
	serve "$TEST_TMP/c.tar.http"
	run in_ns "$CTL" --agent 127.0.0.1:9200 --token-file "$TOKEN_FILE" download --dest "$TEST_TMP/dl2/" /x
	[ "$status" -eq 0 ]
	assert_eq "$(stat -c %a "$TEST_TMP/dl2/x/suid")" 755
}

@test "files: the upload size limit is enforced while streaming; the agent keeps serving" {
	agent_down
	agent_up --max-upload 1048576
	head -c 3000000 /dev/urandom >"$TEST_TMP/toobig"
	run ctl upload --dest "$TEST_TMP/lim" "$TEST_TMP/toobig"
	assert_eq "$status" 1
	assert_contains "$output" "413"
	assert_contains "$output" "limit of 1048576 bytes"
	# what was written stops at the limit
	[ "$(stat -c %s "$TEST_TMP/lim/toobig")" -le 1048576 ]
	assert_agent_serving
}

@test "files: download of a missing path is a clear error; bad --dest is refused" {
	run ctl download /no/such/file
	assert_eq "$status" 1
	assert_contains "$output" "file not found on VM: /no/such/file"
	run ctl upload --dest relative/dir "$TOKEN_FILE"
	assert_eq "$status" 100
	run ctl upload /no/such/local/file
	assert_eq "$status" 1
	assert_contains "$output" "cannot upload /no/such/local/file"
}

@test "agentctl: --json replies are one JSON document; bad usage exits 100" {
	run ctl --json exec -- sh -c 'echo out; echo err >&2; exit 3'
	assert_eq "$status" 3
	assert_one_json "$output"
	assert_eq "$(echo "$output" | jq -r .stdout)" out
	assert_eq "$(echo "$output" | jq -r .stderr)" err
	run ctl --json exec -- printf 'a\377b'
	assert_eq "$(echo "$output" | jq -r .stdoutB64 | base64 -d | od -An -tx1 | tr -d ' ')" 61ff62
	run ctl --json download /nope
	assert_one_json "$output"
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_REMOTE_NOT_FOUND
	run ctl exec
	assert_eq "$status" 100
	run "$CTL" exec -- true
	assert_eq "$status" 100
	assert_contains "$output" "--vm ID"
}

@test "shell: a program that ends before its creator is attached still reports its exit; the agent lives on" {
	# A session's thread frees it when its program ends; a program like
	# `exit 7` ends before the agent has handed the creator's socket over.
	# 100 in a row crashed the agent (a read of the freed session) within
	# a few dozen, and the ones before that could lose their exit code.
	local i rc codes=
	for i in $(seq 100); do
		rc=0
		ctl exec -t -- sh -c 'exit 7' </dev/null >/dev/null 2>&1 || rc=$?
		codes="$codes$rc"
	done
	assert_eq "$codes" "$(printf '7%.0s' $(seq 100))"
	assert_agent_serving
}

@test "agentctl: options too long for the request are refused, not cut short or written past a buffer" {
	local long
	long=$(printf 'x%.0s' $(seq 6000))
	# the control: the same options, short, reach the agent
	run ctl exec -t -u nobody -w /tmp -- true </dev/null
	assert_eq "$status" 0
	run ctl exec -t -u "$long" -w "/$long" -- true </dev/null
	assert_eq "$status" 100
	assert_contains "$output" "too long for a terminal session"
	run ctl shell --shell "/$long" -u "$long$long" </dev/null
	assert_eq "$status" 100
	run ctl upload --dest "$TEST_TMP/short" -u nobody "$TOKEN_FILE"
	assert_eq "$status" 0
	run ctl upload --dest "/$long" -u nobody "$TOKEN_FILE"
	assert_eq "$status" 100
	assert_contains "$output" "--dest is 6001 bytes long: a path in the guest is at most 4095 (PATH_MAX)"
	run ctl upload --dest "$TEST_TMP/short" -u "$long" "$TOKEN_FILE"
	assert_eq "$status" 100
	assert_contains "$output" "--user is 6000 bytes long: at most 127"
	assert_agent_serving
}

# long_path N: a path of N bytes under $TEST_TMP/d, in components of 200.
long_path() {
	local p=$TEST_TMP/d c200
	c200=$(printf 'y%.0s' $(seq 200))
	while [ $((${#p} + 202)) -le "$1" ]; do p=$p/$c200; done
	p=$p/$(printf 'z%.0s' $(seq $(($1 - ${#p} - 1))))
	echo "$p"
}

@test "files: an upload's --dest works up to PATH_MAX (4095 bytes), longer is refused naming it; the agent refuses a header too long rather than drop it" {
	local d3000 d4095 d4096
	d3000=$(long_path 3000) d4095=$(long_path 4095) d4096=$(long_path 4096)
	assert_eq "${#d3000} ${#d4095} ${#d4096}" "3000 4095 4096"
	# the control: a short one
	run ctl upload --dest "$TEST_TMP/short" "$TOKEN_FILE"
	assert_eq "$status" 0
	# 1.5 to 4.4 KB were cut from the request head ("cannot send")
	run ctl upload --dest "$d3000" "$TOKEN_FILE"
	assert_eq "$status" 0
	run ctl upload --dest "$d4095" "$TOKEN_FILE"
	assert_eq "$status" 0
	# each file where it was sent (its path is --dest's and /agent.token)
	assert_eq "$(find "$TEST_TMP/d" -name agent.token | awk '{ print length($0) }' | sort -n | tr '\n' ' ')" \
		"3012 4107 "
	run ctl upload --dest "$d4096" "$TOKEN_FILE"
	assert_eq "$status" 100
	assert_contains "$output" "--dest is 4096 bytes long: a path in the guest is at most 4095 (PATH_MAX)"
	# the agent: a header over its buffer was taken as absent (the files
	# went to / or kept root as owner); now refused
	local marker=vmsan-test-marker-$$
	mkdir "$TEST_TMP/src"
	echo m >"$TEST_TMP/src/$marker"
	tar -C "$TEST_TMP/src" -cf "$TEST_TMP/m.tar" "$marker"
	run api POST /files/write -H "X-Extract-Dir: $(long_path 5000)" --data-binary @"$TEST_TMP/m.tar"
	local landed=no
	[ ! -e "/$marker" ] || landed=yes
	rm -f "/$marker"
	assert_eq "$landed" no
	assert_contains "$output" "X-Extract-Dir is longer than 4095 bytes"
	run api POST /files/write -H "X-Extract-Dir: $TEST_TMP/owned" -H "X-Owner: $(printf 'u%.0s' $(seq 128))" \
		--data-binary @"$TEST_TMP/m.tar"
	assert_contains "$output" "X-Owner is longer than 127 bytes"
	[ ! -e "$TEST_TMP/owned/$marker" ]
	# the control: the same request, its header short, writes
	run api POST /files/write -H "X-Extract-Dir: $TEST_TMP/owned" -H "X-Owner: nobody" --data-binary @"$TEST_TMP/m.tar"
	assert_eq "$(stat -c %U "$TEST_TMP/owned/$marker")" nobody
	assert_agent_serving
}

@test "agentctl: two ways of naming the agent, sessions' extra words, session-kill --signal and an empty id are refused before any request" {
	# the controls: the commands, well formed, reach the agent
	run ctl sessions
	assert_eq "$status" 0
	run ctl session-kill 0123456789abcdef
	assert_eq "$status" 1
	assert_contains "$output" "session not found"
	run ctl kill 0123456789abcdef
	assert_eq "$status" 1
	assert_contains "$output" "command not found"
	run ctl sessions extra
	assert_eq "$status" 100
	assert_contains "$output" "sessions takes no arguments"
	run ctl session-kill --signal TERM 0123456789abcdef
	assert_eq "$status" 100
	assert_contains "$output" "session-kill takes no --signal"
	local c
	for c in kill session-kill; do
		run ctl "$c" ''
		assert_eq "$status" 100
		assert_contains "$output" "is not an id"
	done
	run in_ns "$CTL" --vm vm-00000000 --vm-operand exec vm-00000001 -- true
	assert_eq "$status" 100
	assert_contains "$output" "--vm and --vm-operand each name the agent"
	run ctl --vm-operand exec vm-00000001 -- true
	assert_eq "$status" 100
	assert_contains "$output" "--vm-operand and --agent each name the agent"
	run in_ns "$CTL" --vm vm-00000000 --token-file "$TOKEN_FILE" health
	assert_eq "$status" 100
	assert_contains "$output" "--token-file goes with --agent"
	assert_agent_serving
}

@test "porcelain: vmsan exec, upload and download find the agent through the VM's record and token file" {
	# The agent stands in for the VM's process: the record names it, so the
	# VM reads as running (the contract vmsan create writes: agent.addr,
	# agent.port and vms/<id>.token, mode 0600).
	local apid id
	apid=$(for p in $(ip netns pids "$AG_NS"); do
		[ "$(cat "/proc/$p/comm")" = vmsan-agent ] && echo "$p"; done)
	[ -n "$apid" ]
	id=$(new_vm "{\"status\":\"running\",\"pid\":$apid,\"pidStartTime\":$(awk '{print $22}' "/proc/$apid/stat"),
		\"agent\":{\"addr\":\"127.0.0.1\",\"port\":$PORT}}")
	install -m 600 "$TOKEN_FILE" "$VMSAN_DIR/vms/$id.token"
	run in_ns "$VMSAN" exec "$id" -- sh -c 'echo from-the-vm; exit 3'
	assert_eq "$status" 3
	assert_eq "$output" from-the-vm
	run in_ns "$VMSAN" --json exec "$id" -- echo hi
	assert_eq "$(echo "$output" | jq -c '[.exitCode, .stdout]')" '[0,"hi\n"]'
	echo payload >"$TEST_TMP/up.txt"
	in_ns "$VMSAN" upload "$id" "$TEST_TMP/up.txt" --dest "$TEST_TMP/guest" >/dev/null
	mkdir "$TEST_TMP/back"
	in_ns "$VMSAN" download "$id" "$TEST_TMP/guest/up.txt" --dest "$TEST_TMP/back/" >/dev/null
	assert_eq "$(cat "$TEST_TMP/back/up.txt")" payload
	# an unknown VM, a VM whose process is gone, a missing token: clear errors
	run in_ns "$VMSAN" exec vm-00000000 -- true
	assert_eq "$status" 1
	assert_contains "$output" "VM not found: vm-00000000"
	rm "$VMSAN_DIR/vms/$id.token"
	run in_ns "$VMSAN" exec "$id" -- true
	assert_eq "$status" 1
	assert_contains "$output" "cannot read the agent token of $id"
	local dead
	dead=$(new_vm '{"status":"running","pid":4194304,"agent":{"addr":"127.0.0.1","port":9119}}')
	run in_ns "$VMSAN" exec "$dead" -- true
	assert_eq "$status" 1
	assert_contains "$output" "is error, not running"
}

@test "tunnel: GET /tunnel/PORT with Upgrade: vmsan-tcp carries bytes both ways to a port of the guest" {
	in_ns socat TCP4-LISTEN:7001,bind=127.0.0.1,reuseaddr,fork SYSTEM:'read l; echo "echo:$l"' &
	local srv=$!
	sleep 0.3
	up() { printf 'GET /tunnel/%s HTTP/1.1\r\nHost: a\r\n%bConnection: Upgrade\r\nUpgrade: %s\r\n\r\n%b' \
		"$1" "$2" "$3" "$4"; }
	# control: with the token and the upgrade, a line goes there and back
	run in_ns sh -c "$(declare -f up); (up 7001 'Authorization: Bearer $TOKEN\r\n' vmsan-tcp 'ping\n'; sleep 1) | nc -q 2 127.0.0.1 $PORT"
	assert_contains "$output" "HTTP/1.1 101"
	assert_contains "$output" "echo:ping"
	# no token: 401, nothing reaches the port
	run in_ns sh -c "$(declare -f up); (up 7001 '' vmsan-tcp 'ping\n'; sleep 1) | nc -q 2 127.0.0.1 $PORT"
	assert_contains "$output" "HTTP/1.1 401"
	[[ $output != *echo:* ]]
	# no upgrade: 426; a bad port: 400; nothing there: 502
	run in_ns curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/tunnel/7001"
	assert_eq "$output" 426
	run in_ns curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" -H 'Connection: Upgrade' \
		-H 'Upgrade: vmsan-tcp' "http://127.0.0.1:$PORT/tunnel/0"
	assert_eq "$output" 400
	run in_ns curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" -H 'Connection: Upgrade' \
		-H 'Upgrade: vmsan-tcp' "http://127.0.0.1:$PORT/tunnel/7002"
	assert_eq "$output" 502
	kill "$srv" 2>/dev/null || true
	# the agent still serves
	run in_ns curl -sf "http://127.0.0.1:$PORT/health"
	assert_eq "$status" 0
}

@test "restored: the host's seed is required and checked before anything changes (the token stays)" {
	# Only refusals here: a valid /restored would set this host's clock.
	local t=$TOKEN s
	s=$(head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n')
	run api POST /restored -d "{\"token\":\"new-token\",\"sec\":1,\"nsec\":0}"
	assert_contains "$output" "seed"
	run api POST /restored -d "{\"token\":\"new-token\",\"seed\":\"${s:0:100}\",\"sec\":1,\"nsec\":0}"
	assert_contains "$output" "seed: 64 bytes in lowercase hex"
	run api POST /restored -d "{\"token\":\"new-token\",\"seed\":\"${s^^}\",\"sec\":1,\"nsec\":0}"
	assert_contains "$output" "seed: 64 bytes in lowercase hex"
	run api POST /restored -d "{\"token\":\"new-token\",\"seed\":12,\"sec\":1,\"nsec\":0}"
	assert_contains "$output" "seed"
	# the control: the same request with an unknown field is refused for that
	run api POST /restored -d "{\"token\":\"new-token\",\"seed\":\"$s\",\"sec\":1,\"x\":0}"
	assert_contains "$output" "unknown field 'x'"
	assert_eq "$(cat "$TOKEN_FILE")" "$t"
	assert_agent_serving
}

@test "agentctl: a message cut at 699 bytes ends at a whole UTF-8 character: --json still replies one document" {
	local k pre
	k=$(printf '\xc3\xa9%.0s' $(seq 500))
	for pre in "" x; do
		run -1 ctl --json upload "$TEST_TMP/$pre$k"
		assert_one_json "$output"
		assert_eq "$(jq -r .error.code <<<"$output")" ERR_LOCAL_FILE
		assert_contains "$(jq -r .error.message <<<"$output")" "cannot upload $TEST_TMP/$pre"
		[ "$(jq -j .error.message <<<"$output" | wc -c)" -ge 698 ]
	done
}

@test "download: a hidden name found taken, then getrandom failing: the cleanup touches no directory the download did not make" {
	require_cmd strace
	echo x >"$TEST_TMP/src"
	mkdir "$TEST_TMP/dl"
	local dl=("$CTL" --agent "127.0.0.1:$PORT" --token-file "$TOKEN_FILE" download --dest "$TEST_TMP/dl/a" "$TEST_TMP/src")
	# how many getrandom calls come before the hidden directory's mkdirat
	# (LeakSanitizer, in a sanitized build, cannot work under ptrace)
	local nolsan="ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
	in_ns env "$nolsan" strace -f -qq -e trace=getrandom,mkdirat -o "$TEST_TMP/trace1" "${dl[@]}"
	local n
	n=$(sed -n '/mkdirat(.*\.vmsan-download-/q; /getrandom(/p' "$TEST_TMP/trace1" | wc -l)
	[ "$n" -ge 1 ]
	rm -rf "$TEST_TMP/dl/a"
	# the first name "taken" (EEXIST: another's directory), the next
	# getrandom failing: the download fails, and the other's name, which
	# the cleanup removed, is not touched again
	run in_ns env "$nolsan" strace -f -qq -o "$TEST_TMP/trace2" -e inject=mkdirat:error=EEXIST:when=1 \
		-e inject=getrandom:error=EIO:when=$((n + 1)) "${dl[@]}"
	assert_eq "$status" 1
	assert_contains "$output" getrandom
	local name
	name=$(sed -n 's/.*mkdirat([^"]*"\(\.vmsan-download-[0-9a-f]*\)".*EEXIST.*(INJECTED).*/\1/p' "$TEST_TMP/trace2")
	[ -n "$name" ] # the control: the name was tried, and found taken
	assert_eq "$(grep -c -- "$name" "$TEST_TMP/trace2")" 1
	[ ! -e "$TEST_TMP/dl/a" ]
	assert_eq "$(find "$TEST_TMP/dl" -mindepth 1 | wc -l)" 0
}
