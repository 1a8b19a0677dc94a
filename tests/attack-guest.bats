#!/usr/bin/env bats
# The hostile guest, host side: a fake agent (tests/tools/hostile-agent) that
# answers vmsan-agentctl the way a guest that owns its agent could, with
# crafted archives, endless lines and headers, slow drips, enormous lengths
# and WebSocket frames.  Each test asserts the refusal (exit status, error
# code), that nothing outside the destination changed, and a control: the
# same agent's well-formed answer in the same test works, so the attack
# reached the code under test.  No VM is booted.
# (The real guest as root trying IPv6, router advertisements, metadata and
# spoofing is issue 15's other half, not here.)

load test_helper

CTL=$TOP/libexec/vmsan-agentctl
HOSTILE=$TOP/tests/tools/hostile-agent

setup_extra() {
	require_cmd python3
	umask 022
	OUT=$TEST_TMP/outside
	DL=$TEST_TMP/dl
	mkdir -p "$OUT" "$DL"
	printf 'victim\n' >"$OUT/victim"
	# what the reported attack overwrote: a file beside the download
	printf 'sentinel\n' >"$DL/.bashrc"
	chmod 600 "$DL/.bashrc"
	# the fake agent's own files, apart from what downloads may not touch
	HA=$TEST_TMP/ha
	mkdir "$HA"
	printf '0123456789abcdef0123456789abcdef\n' >"$HA/token"
	"$HOSTILE" "$HA/port" "$OUT" "$HA/requests" 2>"$HA/agent.err" &
	HA_PID=$!
	for _ in $(seq 100); do
		[ -s "$HA/port" ] && break
		sleep 0.05
	done
	HA_PORT=$(cat "$HA/port")
}

teardown_extra() {
	[ -z "${HA_PID:-}" ] || kill "$HA_PID" 2>/dev/null || true
}

ctl() { "$CTL" --agent "127.0.0.1:$HA_PORT" --token-file "$HA/token" "$@"; }

# Everything a download must not touch: the test's tree but the name being
# downloaded (type, mode, size, link, content) and /etc/passwd.
outside_state() {
	(cd "$TEST_TMP" && find . -path "./dl/$1" -prune -o -path ./ha -prune -o \
		-printf '%p|%y|%m|%s|%n|%U|%l\n' | LC_ALL=C sort)
	cat "$OUT/victim" "$DL/.bashrc"
	sha256sum /etc/passwd
	stat -c '%h %a %U' /etc/passwd
}

# refused NAME CODE [download options]: downloading /NAME fails with CODE,
# leaves nothing of itself (no NAME, no hidden directory) and changes
# nothing else; the request reached the fake agent.
refused() {
	local name=$1 code=$2 before
	shift 2
	before=$(outside_state "$name")
	local n0
	n0=$(grep -c "^POST /files/read" "$HA/requests" 2>/dev/null || true)
	run ctl --json download --dest "$DL/" "/$name" "$@"
	assert_eq "$status" 1
	assert_one_json "$output"
	assert_eq "$(echo "$output" | jq -r .error.code)" "$code"
	echo "$output" | jq -e '.error.message | length > 0' >/dev/null
	echo "$output" | jq -e '.error.fix | length > 0' >/dev/null
	assert_eq "$(grep -c "^POST /files/read" "$HA/requests")" "$((n0 + 1))"
	[ ! -e "$DL/$name" ]
	[ ! -L "$DL/$name" ]
	[ -z "$(ls -A "$DL" | grep vmsan-download)" ]
	assert_eq "$(outside_state "$name")" "$before"
}

# The control: the same agent's well-formed archive comes out exactly.
control() {
	rm -rf "$DL/benign"
	run ctl download --dest "$DL/" /benign
	assert_eq "$status" 0
	assert_eq "$(cat "$DL/benign/a.txt")" hello
	assert_eq "$(cat "$DL/benign/sub/b.txt")" bee
	assert_eq "$(readlink "$DL/benign/link")" a.txt
	assert_eq "$(stat -c %i "$DL/benign/hard")" "$(stat -c %i "$DL/benign/a.txt")"
	assert_eq "$(stat -c %a "$DL/benign") $(stat -c %a "$DL/benign/run.sh") $(stat -c %a "$DL/benign/sub/b.txt")" \
		"750 755 600"
	[ -z "$(ls -A "$DL" | grep vmsan-download)" ]
}

@test "download: a symlink up (NAME/up -> ..) then a file and a directory through it: refused, the .bashrc beside it intact" {
	dlmode=$(stat -c %a "$DL")
	refused updotdot ERR_UNSAFE_ARCHIVE
	assert_contains "$(echo "$output" | jq -r .error.message)" "updotdot/up/"
	refused updotdot2 ERR_UNSAFE_ARCHIVE
	assert_contains "$(echo "$output" | jq -r .error.message)" "crosses a symlink"
	assert_eq "$(cat "$DL/.bashrc")" sentinel
	assert_eq "$(stat -c %a "$DL/.bashrc") $(stat -c %a "$DL")" "600 $dlmode"
	[ ! -e "$TEST_TMP/.bashrc" ]
	control
	assert_eq "$(cat "$DL/.bashrc")" sentinel
}

@test "download: a symlink to an absolute path, or a directory turned symlink, then a file through it: refused" {
	refused abssym ERR_UNSAFE_ARCHIVE
	refused dirthensym ERR_UNSAFE_ARCHIVE
	assert_eq "$(ls -A "$OUT")" victim
	control
}

@test "download: hard links to /etc/passwd, beside the download, outside the name, or to a file already there: refused" {
	refused hardpasswd ERR_UNSAFE_ARCHIVE
	refused hardout ERR_UNSAFE_ARCHIVE
	refused hardother ERR_UNSAFE_ARCHIVE
	# a file of the user's where the download's own tree would be
	mkdir "$DL/hardpre"
	printf 'mine\n' >"$DL/hardpre/existing"
	run ctl --json download --dest "$DL/" /hardpre
	assert_eq "$status" 1
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_UNSAFE_ARCHIVE
	assert_contains "$(echo "$output" | jq -r .error.message)" "not a file this download made"
	assert_eq "$(cat "$DL/hardpre/existing") $(stat -c %h "$DL/hardpre/existing")" "mine 1"
	assert_eq "$(ls -A "$DL/hardpre")" existing
	control
}

@test "download: '..', absolute names and entries beside the name asked for: refused" {
	refused dotdot ERR_UNSAFE_ARCHIVE
	assert_contains "$(echo "$output" | jq -r .error.message)" '".." in a name'
	refused dotdot2 ERR_UNSAFE_ARCHIVE
	refused absolute ERR_UNSAFE_ARCHIVE
	assert_contains "$(echo "$output" | jq -r .error.message)" "absolute name"
	refused sibling ERR_UNSAFE_ARCHIVE
	[ ! -e "$TEST_TMP/x" ]
	[ ! -e "$OUT/abs" ]
	[ ! -e "$DL/x-sibling" ]
	control
}

@test "download: device nodes and FIFOs are not made; setuid, setgid, sticky bits and the archive's owners are dropped" {
	run ctl --json download --dest "$DL/" /device
	assert_eq "$status" 0
	assert_eq "$(echo "$output" | jq -r '"\(.skipped) \(.files)"')" "2 1"
	[ ! -e "$DL/device/null" ]
	[ ! -e "$DL/device/fifo" ]
	assert_eq "$(cat "$DL/device/ok")" ok
	run ctl --json download --dest "$DL/" /setuid
	assert_eq "$status" 0
	# the archive says 7777, 4755 and 2755, owner 1234; umask 022 applies
	assert_eq "$(stat -c '%a %u' "$DL/setuid" "$DL/setuid/suid" "$DL/setuid/sgid" | tr '\n' ' ')" \
		"755 $(id -u) 755 $(id -u) 755 $(id -u) "
	control
}

@test "download: a 100 MB name, a 100 MB pax header, a 1 PB pax size, an enormous Content-Length, an endless archive and 300 levels are bounded" {
	refused hugename ERR_AGENT_PROTOCOL
	assert_contains "$(echo "$output" | jq -r .error.message)" "header too large"
	refused hugepax ERR_AGENT_PROTOCOL
	refused paxsize ERR_DOWNLOAD_LIMIT
	assert_contains "$(echo "$output" | jq -r .error.message)" "1125899906842624 bytes, over the download limit"
	refused biglength ERR_DOWNLOAD_LIMIT
	assert_contains "$(echo "$output" | jq -r .error.message)" "announces 4611686018427387904 bytes"
	refused endless ERR_DOWNLOAD_LIMIT --max-bytes 3000000
	assert_contains "$(echo "$output" | jq -r .error.message)" "1099511627776 bytes, over the download limit of 3000000"
	refused manyfiles ERR_DOWNLOAD_LIMIT --max-bytes 3000000
	assert_contains "$(echo "$output" | jq -r .error.message)" "the archive exceeds the download limit of 3000000 bytes"
	refused deep ERR_DOWNLOAD_LIMIT
	assert_contains "$(echo "$output" | jq -r .error.message)" "more than 256 levels deep"
	# the limit is the user's: the control under a limit it exceeds, then not
	refused benign ERR_DOWNLOAD_LIMIT --max-bytes 2000
	run ctl download --dest "$DL/" /benign --max-bytes 0
	assert_eq "$status" 100
	control
}

@test "download: a transfer cut short leaves nothing behind" {
	refused truncated ERR_AGENT_PROTOCOL
	assert_contains "$(echo "$output" | jq -r .error.message)" "cut short"
	control
}

@test "download: an existing destination is not followed through a symlink, and a full directory is not merged into" {
	ln -s "$OUT" "$DL/benign"
	before=$(outside_state nothing)
	run ctl --json download --dest "$DL/" /benign
	assert_eq "$status" 1
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_DEST_EXISTS
	assert_eq "$(readlink "$DL/benign")" "$OUT"
	assert_eq "$(outside_state nothing)" "$before"
	assert_eq "$(ls -A "$OUT")" victim
	# a file over a symlink replaces the link, not what it points at
	ln -s "$OUT/victim" "$DL/onefile"
	run ctl download --dest "$DL/" /onefile
	assert_eq "$status" 0
	[ ! -L "$DL/onefile" ]
	assert_eq "$(cat "$DL/onefile") / $(cat "$OUT/victim")" "just a file / victim"
	# a directory that is not empty stays as it is; an empty one is replaced
	rm "$DL/benign"
	mkdir "$DL/benign"
	printf 'keep\n' >"$DL/benign/mine"
	run ctl download --dest "$DL/" /benign
	assert_eq "$status" 1
	assert_contains "$output" "not empty"
	assert_eq "$(ls -A "$DL/benign")" mine
	rm "$DL/benign/mine"
	control
}

@test "exec: an event line with no newline is cut at 1 MiB; the control command's output comes through" {
	run ctl --json exec -- endless-line
	assert_eq "$status" 1
	assert_one_json "$output"
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_AGENT_PROTOCOL
	assert_contains "$(echo "$output" | jq -r .error.message)" "event line of more than 1048576 bytes"
	run ctl exec -- hello
	assert_eq "$status" 0
	assert_eq "$output" "hi from hello"
}

@test "HTTP: endless headers and a one-byte-a-second head are refused in bounded time; a slow command still works" {
	run ctl --json exec -- endless-headers
	assert_eq "$status" 1
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_AGENT_PROTOCOL
	assert_contains "$(echo "$output" | jq -r .error.message)" "head exceeds 16384 bytes"
	s=$(date +%s)
	VMSAN_AGENT_TIMEOUT=2 run ctl --json exec -- drip
	assert_eq "$status" 1
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_AGENT_TIMEOUT
	[ $(($(date +%s) - s)) -le 5 ]
	# an event every 1.5 s for 4.5 s, under a 2 s head deadline: fine
	VMSAN_AGENT_TIMEOUT=2 run ctl exec -- slow
	assert_eq "$status" 0
	assert_eq "$output" "$(printf 'tick 0\ntick 1\ntick 2')"
}

@test "HTTP: a reply with an enormous Content-Length or an endless body is refused; a normal one is read" {
	run ctl --json kill b1
	assert_eq "$status" 1
	assert_one_json "$output"
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_AGENT_TOO_LARGE
	assert_contains "$(echo "$output" | jq -r .error.message)" "announces a 1000000000000000000-byte answer"
	run ctl --json kill b2
	assert_eq "$status" 1
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_AGENT_TOO_LARGE
	assert_contains "$(echo "$output" | jq -r .error.message)" "exceeds 1048576 bytes"
	run ctl --json kill aaaa
	assert_eq "$status" 0
	assert_eq "$(echo "$output" | jq -r .ok)" true
}

@test "exec --json: output past 16 MiB is refused and the command is killed; small output is kept" {
	run ctl --json exec -- flood
	assert_eq "$status" 1
	assert_one_json "$output"
	assert_eq "$(echo "$output" | jq -r .error.code)" ERR_OUTPUT_TOO_LARGE
	assert_contains "$(echo "$output" | jq -r .error.message)" "stdout exceeds 16777216 bytes"
	grep -qx "POST /exec/abc123/kill" "$HA/requests"
	run ctl --json exec -- hello
	assert_eq "$status" 0
	assert_eq "$(echo "$output" | jq -r .stdout)" "hi from hello"
}

@test "messages: the guest's words in agentctl's own messages are made printable and cut; the command's own output is not touched" {
	esc=$(printf '\033')
	run --separate-stderr ctl kill b3
	assert_eq "$status" 1
	[[ $stderr != *"$esc"* ]]
	assert_contains "$stderr" 'agent answered 500: \x1b]0;owned\x07\x1b[2Jgonexxx'
	[ "${#stderr}" -lt 600 ]
	run --separate-stderr ctl exec -- ansi-error
	assert_eq "$status" 0
	[[ $stderr != *"$esc"* ]]
	assert_contains "$stderr" 'vmsan exec: \x1b]0;owned\x07\x1b[2J\xc2\x9bcleared\x1b[31mred'
	# what the user asked for, the remote command's output, is raw
	assert_eq "$output" "$(printf '\033[32mgreen\033[0m')"
	# --json: the same message, as JSON text
	run ctl --json exec -- ansi-error
	assert_one_json "$output"
	assert_contains "$(echo "$output" | jq -r .error)" '\x1b]0;owned'
	# an id that is not one is not used (nor printed)
	run --separate-stderr ctl exec --detach -- badid
	assert_eq "$status" 1
	[[ $stderr != *"$esc"* ]]
	[[ $output != *"$esc"* ]]
	assert_contains "$stderr" "no usable command id"
	run ctl exec --detach -- hello
	assert_eq "$status" 0
	assert_eq "${lines[${#lines[@]} - 1]}" abc123
}

@test "shell: a WebSocket frame of 2^63 bytes and an endless message are refused; a session runs" {
	run ctl exec -t -- bigframe </dev/null
	assert_eq "$status" 1
	assert_contains "$output" "WebSocket frame of more than 131072 bytes"
	run ctl exec -t -- bigmsg </dev/null
	assert_eq "$status" 1
	assert_contains "$output" "WebSocket message of more than 1048576 bytes"
	run --separate-stderr ctl exec -t -- hello </dev/null
	assert_eq "$status" 7
	assert_contains "$output" "hello from the shell"
	[[ $stderr != *$'\033'* ]]
}

@test "logs: console control characters are shown, not obeyed, on a terminal; piped, the bytes are intact; --json is JSON" {
	require_cmd script
	mkdir -p "$TEST_TMP/vm"
	id=$(new_vm "{\"dir\":\"$TEST_TMP/vm\"}")
	printf 'boot \033[2J\033]0;owned\007 tab\there \302\23331m caf\303\251 \177 \000nul\034 end\n' \
		>"$TEST_TMP/vm/console.log"
	# on a terminal (script gives it one)
	script -qc "$VMSAN logs $id" /dev/null | tr -d '\r' >"$TEST_TMP/tty"
	assert_eq "$(cat "$TEST_TMP/tty")" "$(printf 'boot ^[[2J^[]0;owned^G tab\there M-^[31m caf\303\251 ^? ^@nul^\\ end')"
	assert_eq "$(grep -c "$(printf '\033')" "$TEST_TMP/tty")" 0
	# piped: exactly the bytes
	"$VMSAN" logs "$id" | cmp - "$TEST_TMP/vm/console.log"
	"$VMSAN" logs "$id" --tail 1 | cmp - "$TEST_TMP/vm/console.log"
	# --json on a terminal: one document, the text as it is
	script -qc "$VMSAN logs $id --json" /dev/null | tr -d '\r' >"$TEST_TMP/json"
	assert_one_json "$(cat "$TEST_TMP/json")"
	assert_eq "$(jq -r '.lines[0]' "$TEST_TMP/json" | head -c 9 | od -An -c | tr -s ' ')" \
		"$(printf 'boot \033[2J' | od -An -c | tr -s ' ')"
}
