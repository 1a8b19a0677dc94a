#!/usr/bin/env bats
# vmsan-net attacked as a hostile member of the vmsan group would: an
# ordinary user, `sudo -n` on the helper install.sh installed (through the
# sudoers rule it wrote), hand-written JSON.  Every refusal comes with a
# control showing the request reached the helper through the same path:
# the error code is the helper's own (sudo's refusals carry none), and the
# same user's legitimate request succeeds.  The helper runs in the test's
# fake host namespace ($H), never in the real one.
bats_require_minimum_version 1.5.0
load test_helper
load net_helper

setup_file() {
	[ "$(id -u)" = 0 ] || return 0
	command -v visudo >/dev/null && command -v setpriv >/dev/null || return 0
	export TOP LIBEXEC
	net_fixture_up
	export G=vmng$$ UA=vmna$$ UB=vmnb$$ UO=vmno$$
	export UPREFIX=/opt/vmsan-testnet$$ USUDO=/etc/sudoers.d/vmsan-testnet$$
	HOME=$BATS_FILE_TMPDIR/home "$TOP/install.sh" --no-deps --no-demo --prefix "$UPREFIX" \
		--sudoers "$USUDO" --group "$G" >"$BATS_FILE_TMPDIR/install.log" 2>&1 ||
		{ cat "$BATS_FILE_TMPDIR/install.log" >&2; return 1; }
	useradd -m -G "$G" "$UA"
	useradd -m -G "$G" "$UB"
	useradd -m "$UO"
	# a host service the published ports must not take over
	net_serve "$H" 5432 'echo postgres'
	nsd "$H" socat -t "$ANSWER_WAIT" TCP6-LISTEN:6379,ipv6only=1,reuseaddr,fork SYSTEM:'echo redis'
	sleep 0.2
}

teardown_file() {
	[ "$(id -u)" = 0 ] || return 0
	[ -n "${UPREFIX:-}" ] || return 0
	net_fixture_down
	rm -f /run/vmsan/ids/vm-7e5f*
	"$TOP/install.sh" --uninstall --prefix "$UPREFIX" --sudoers "$USUDO" --group "$G" >/dev/null 2>&1 || true
	rm -f "$USUDO"
	rm -rf "$UPREFIX"
	for u in "$UA" "$UB" "$UO"; do userdel -r "$u" 2>/dev/null || true; done
	groupdel "$G" 2>/dev/null || true
}

setup_extra() {
	require_root
	require_cmd visudo
	require_cmd setpriv
	if [ -z "${UPREFIX:-}" ] || [ ! -x "$UPREFIX/libexec/vmsan/vmsan-net" ]; then echo "setup_file did not install"; return 1; fi
}

teardown_extra() {
	local id
	for id in vm-7e5f0001 vm-7e5f0002 vm-7e5f0003 vm-7e5fe00000000000000025; do
		echo "{\"op\":\"teardown\",\"id\":\"$id\"}" | nsx "$H" "$LIBEXEC/vmsan-net" >/dev/null 2>&1 || true
		rm -f "/run/vmsan/ids/$id"
	done
	rm -f /run/vmsan/ids/vm-7e5fe*
	return 0
}

# net USER OP [JSON]: vmsan-net OP as USER, through sudo and the
# installed rule, in the fake host's namespace; stdout is its reply.
net() {
	local u=$1 op=$2
	nsenter --net="/run/netns/$H" setpriv --reuid="$u" --regid="$u" --init-groups \
		env -i PATH=/usr/bin:/bin HOME="/home/$u" sudo -n "$UPREFIX/libexec/vmsan/vmsan-net" "$op" <<<"${3:-}"
}
# net_args USER ARGS...: the same with any command line (stdin: the request)
net_args() {
	local u=$1
	shift
	nsenter --net="/run/netns/$H" setpriv --reuid="$u" --regid="$u" --init-groups \
		env -i PATH=/usr/bin:/bin HOME="/home/$u" sudo -n "$UPREFIX/libexec/vmsan/vmsan-net" "$@"
}
# root_net OP JSON: the same helper as root itself
root_net() { nsenter --net="/run/netns/$H" "$UPREFIX/libexec/vmsan/vmsan-net" "$1" <<<"$2"; }
code() { jq -r .error.code <<<"$1"; }
# setup_req ID POLICY-JSON [EXTRA-JSON]
setup_req() {
	"$LIBEXEC/vmsan-nftables" compile <<<"$2" |
		jq -c --arg id "$1" --argjson x "${3:-{\}}" '{id:$id, ruleset:.ruleset, publishedPorts:[.publishedPorts[][0]]} + $x'
}
# hold_all_but N: user A holds every id of root.conf's max-vms-per-user
# but N already (as claims vmsan-fc would have made)
hold_all_but() {
	local uid max=64 i
	uid=$(id -u "$UA")
	[ ! -e /etc/vmsan/root.conf ] || max=$(sed -n 's/^max-vms-per-user *= *//p' /etc/vmsan/root.conf)
	mkdir -p /run/vmsan/ids
	for i in $(seq $(($1 + 1)) "$max"); do printf '%s\n' "$uid" >"/run/vmsan/ids/vm-7e5fe$(printf %03d "$i")"; done
}
# refused_at_limit ID: user A's setup of ID refused (ERR_VM_LIMIT), nothing of it left
refused_at_limit() {
	run --separate-stderr net "$UA" setup "$(setup_req "$1" '{"policy":"deny-all"}')"
	assert_eq "$status" 1
	assert_eq "$(code "$output")" ERR_VM_LIMIT
	clean "$1"
}
# clean ID: verify (as root) finds nothing of it, and it has no claim
clean() {
	local out
	out=$(root_net verify "{\"id\":\"$1\"}")
	assert_eq "$(jq .clean <<<"$out")" true || { echo "$out" >&2; return 1; }
	[ ! -e "/run/vmsan/ids/$1" ]
}

@test "control: a member sets up, verifies, changes and tears down their own VM's network through sudo; root records them as its owner" {
	local out uid
	uid=$(id -u "$UA")
	run --separate-stderr net "$UA" setup "$(setup_req vm-7e5f0001 '{"policy":"deny-all"}')"
	assert_eq "$status" 0
	assert_eq "$(jq .ok <<<"$output")" true
	assert_eq "$(jq .owner /run/vmsan/net/vm-7e5f0001.json)" "$uid"
	assert_eq "$(head -n 1 /run/vmsan/ids/vm-7e5f0001)" "$uid"
	assert_contains "$(nsenter --net=/run/netns/vmsan-vm-7e5f0001 ip -d link show vmstap0)" "user $UA "
	run --separate-stderr net "$UA" verify '{"id":"vm-7e5f0001"}'
	assert_eq "$status" 0
	run --separate-stderr net "$UA" apply-rules "$(setup_req vm-7e5f0001 '{"policy":"allow-all"}' | jq -c '{id, ruleset}')"
	assert_eq "$status" 0
	run --separate-stderr net "$UA" teardown '{"id":"vm-7e5f0001"}'
	assert_eq "$status" 0
	assert_eq "$(jq .removed <<<"$output")" true
	# someone outside the group: sudo itself refuses (no helper error code)
	run --separate-stderr net "$UO" verify '{"id":"vm-7e5f0001"}'
	[ "$status" -ne 0 ]
	assert_eq "$output" ""
}

@test "another member can neither tear down, loosen, read, set up again nor sweep someone's VM network; the owner still can" {
	local before after
	net "$UA" setup "$(setup_req vm-7e5f0001 '{"policy":"deny-all"}')" >/dev/null
	before=$(nsenter --net=/run/netns/vmsan-vm-7e5f0001 nft list table ip vmsan)
	run --separate-stderr net "$UB" apply-rules "$(setup_req vm-7e5f0001 '{"policy":"allow-all"}' | jq -c '{id, ruleset}')"
	assert_eq "$status" 1
	assert_eq "$(code "$output")" ERR_NOT_OWNER
	run --separate-stderr net "$UB" teardown '{"id":"vm-7e5f0001"}'
	assert_eq "$status" 1
	assert_eq "$(code "$output")" ERR_NOT_OWNER
	run --separate-stderr net "$UB" verify '{"id":"vm-7e5f0001"}'
	assert_eq "$status" 1
	assert_eq "$(code "$output")" ERR_NOT_OWNER
	run --separate-stderr net "$UB" setup "$(setup_req vm-7e5f0001 '{"policy":"allow-all"}')"
	assert_eq "$status" 1
	assert_eq "$(code "$output")" ERR_NOT_OWNER
	run --separate-stderr net "$UB" sweep '{"dryRun":true}'
	assert_eq "$status" 1
	assert_eq "$(code "$output")" ERR_PERMISSION
	# nothing changed: same rules, same namespace, same owner
	after=$(nsenter --net=/run/netns/vmsan-vm-7e5f0001 nft list table ip vmsan)
	assert_eq "$after" "$before"
	assert_eq "$(jq .owner /run/vmsan/net/vm-7e5f0001.json)" "$(id -u "$UA")"
	# the controls: B's own requests work through the same path, and
	# root's sweep does
	run --separate-stderr net "$UB" setup "$(setup_req vm-7e5f0002 '{"policy":"deny-all"}')"
	assert_eq "$status" 0
	run --separate-stderr net "$UB" teardown '{"id":"vm-7e5f0002"}'
	assert_eq "$status" 0
	run --separate-stderr root_net sweep '{"dryRun":true}'
	assert_eq "$status" 0
	# a teardown of an id nobody has is still a success (idempotent)
	run --separate-stderr net "$UB" teardown '{"id":"vm-7e5f0003"}'
	assert_eq "$status" 0
	assert_eq "$(jq .removed <<<"$output")" false
}

@test "published ports: a port a host service listens on (IPv4 or IPv6) or below the configured range is refused, nothing made; a free one works" {
	local p
	for p in 5432 6379; do
		run --separate-stderr net "$UA" setup "$(setup_req vm-7e5f0001 "{\"policy\":\"allow-all\",\"publishedPorts\":[{\"hostPort\":$p}]}")"
		assert_eq "$status" 1
		assert_eq "$(code "$output")" ERR_PORT_IN_USE
		assert_contains "$(jq -r .error.message <<<"$output")" "host port $p"
		clean vm-7e5f0001
	done
	run --separate-stderr net "$UA" setup "$(setup_req vm-7e5f0001 '{"policy":"allow-all","publishedPorts":[{"hostPort":1023}]}')"
	assert_eq "$status" 1
	assert_eq "$(code "$output")" ERR_PORT_RANGE
	clean vm-7e5f0001
	[[ $(nsenter --net="/run/netns/$H" nft list map ip vmsan pub) != *"5432 :"* ]]
	# the host's service still answers itself
	assert_eq "$(tcp_get nsx "$H" nc -w 2 127.0.0.1 5432 </dev/null)" postgres
	# a tapOwner other than the caller's own uid
	run --separate-stderr net "$UA" setup "$(setup_req vm-7e5f0001 '{"policy":"allow-all"}' '{"tapOwner":0}')"
	assert_eq "$status" 1
	assert_eq "$(code "$output")" ERR_PERMISSION
	clean vm-7e5f0001
	# the control: a free port in the range
	run --separate-stderr net "$UA" setup "$(setup_req vm-7e5f0001 '{"policy":"allow-all","publishedPorts":[{"hostPort":8095}]}')"
	assert_eq "$status" 0
	nsenter --net="/run/netns/$H" nft list map ip vmsan pub | grep -q '8095 : 198.18.'
}

@test "the per-user limit of VM networks (root.conf's max-vms-per-user, 64 by default) holds at setup" {
	hold_all_but 1
	run --separate-stderr net "$UA" setup "$(setup_req vm-7e5f0001 '{"policy":"deny-all"}')"
	assert_eq "$status" 0
	refused_at_limit vm-7e5f0002
	# another user is not limited by A's VMs
	run --separate-stderr net "$UB" setup "$(setup_req vm-7e5f0003 '{"policy":"deny-all"}')"
	assert_eq "$status" 0
}

@test "the DNS log is opened as the caller: not a root file, not through a symlink, not a FIFO; their own works" {
	local d=/home/$UA
	req() {
		setup_req vm-7e5f0001 '{"policy":"custom","allowedDomains":["example.test"],"dnsResolvers":["192.0.2.53"]}' \
			"$(jq -cn --arg log "$1" '{dns:{domains:["example.test"], upstreams:["192.0.2.53"], log:$log}}')"
	}
	echo secret >"$BATS_TEST_TMPDIR/root-only"
	chmod 600 "$BATS_TEST_TMPDIR/root-only"
	chmod 755 "$BATS_TEST_TMPDIR"
	run --separate-stderr net "$UA" setup "$(req "$BATS_TEST_TMPDIR/root-only")"
	[ "$status" -ne 0 ]
	assert_eq "$(code "$output")" ERR_PERMISSION
	clean vm-7e5f0001
	run --separate-stderr net "$UA" setup "$(req /etc/vmsan-net-attack-$$)"
	[ "$status" -ne 0 ]
	assert_eq "$(code "$output")" ERR_PERMISSION
	[ ! -e "/etc/vmsan-net-attack-$$" ]
	clean vm-7e5f0001
	setpriv --reuid="$UA" --regid="$UA" --init-groups ln -s "$BATS_TEST_TMPDIR/root-only" "$d/link.log"
	run --separate-stderr net "$UA" setup "$(req "$d/link.log")"
	assert_eq "$status" 1
	assert_eq "$(code "$output")" ERR_FILE
	clean vm-7e5f0001
	setpriv --reuid="$UA" --regid="$UA" --init-groups mkfifo "$d/fifo.log"
	# (a FIFO opened for writing would hang the helper until a reader came)
	run --separate-stderr timeout 20 bash -c "$(declare -f net); UPREFIX=$UPREFIX H=$H net $UA setup '$(req "$d/fifo.log")'"
	[ "$status" -ne 0 ] && [ "$status" -ne 124 ] || { echo "$status $output"; false; }
	assert_contains "ERR_FILE ERR_PERMISSION" "$(code "$output")"
	clean vm-7e5f0001
	assert_eq "$(cat "$BATS_TEST_TMPDIR/root-only")" secret
	assert_eq "$(stat -c %U "$BATS_TEST_TMPDIR/root-only")" root
	# the control: a new file of their own, made by them
	run --separate-stderr net "$UA" setup "$(req "$d/dns.log")"
	assert_eq "$status" 0
	assert_eq "$(stat -c %U "$d/dns.log")" "$UA"
}

@test "a helper stopped while holding the slot lock costs the others a clear ERR_BUSY after 10 s, not a hang" {
	mkdir -p /run/vmsan
	# a holder that never lets go (as one stopped by its caller would not)
	bash -c 'exec 9>>/run/vmsan/slots && flock 9 && exec sleep 30' &
	local holder=$!
	sleep 0.2
	SECONDS=0
	run --separate-stderr net "$UA" setup "$(setup_req vm-7e5f0001 '{"policy":"deny-all"}')"
	local took=$SECONDS
	kill "$holder"
	wait "$holder" 2>/dev/null || true
	assert_eq "$status" 1
	assert_eq "$(code "$output")" ERR_BUSY
	[ "$took" -ge 9 ] && [ "$took" -le 15 ]
	clean vm-7e5f0001
	# the lock free again: the same request works
	run --separate-stderr net "$UA" setup "$(setup_req vm-7e5f0001 '{"policy":"deny-all"}')"
	assert_eq "$status" 0 || { echo "$output"; false; }
}

@test "a member cannot stop vmsan-net half way: every signal sudo relays (TERM, INT, HUP, USR1, USR2, ALRM) waits for the end of its work" {
	require_cmd strace
	local sig out log=$BATS_TEST_TMPDIR/strace.log pid
	for sig in TERM INT HUP USR1 USR2 ALRM; do
		# root's strace holds the helper 3 s in its first rename (its
		# record, half way through the setup), while the member signals
		# their sudo, which relays the signal to the helper
		strace -f -qq -o "$log" -e trace=kill,rename -e inject=rename:delay_enter=3000000:when=1 -- \
			nsenter --net="/run/netns/$H" setpriv --reuid="$UA" --regid="$UA" --init-groups \
			env -i PATH=/usr/bin:/bin HOME="/home/$UA" sudo -n "$UPREFIX/libexec/vmsan/vmsan-net" setup \
			<<<"$(setup_req vm-7e5f0001 '{"policy":"deny-all"}')" >"$BATS_TEST_TMPDIR/reply" 2>/dev/null &
		pid=$!
		sleep 1.5
		setpriv --reuid="$UA" --regid="$UA" --init-groups pkill "-$sig" -U "$UA" -x sudo
		wait "$pid" || true
		# (sudo may be gone before the helper's work is done: SIGALRM)
		for _ in $(seq 50); do [ -s "$BATS_TEST_TMPDIR/reply" ] && break; sleep 0.1; done
		out=$(cat "$BATS_TEST_TMPDIR/reply")
		# control: sudo relayed the member's signal to the helper, which
		# was then in the delayed rename (it had begun its work); a
		# SIGALRM is sudo's timeout: it sends SIGHUP, SIGTERM, then
		# SIGKILL to the process it started
		if [ "$sig" = ALRM ]; then
			grep -q "kill([0-9]*, SIGKILL)" "$log" || { cat "$log" >&2; false; }
		else
			grep -q "kill([0-9]*, SIG$sig)" "$log" || { cat "$log" >&2; false; }
		fi
		grep -q '^[0-9]* *rename(' "$log"
		# the helper finished its work and said so; then the owner tears
		# it down whole
		assert_eq "$(jq -c .ok <<<"$out")" true
		[ -e /run/vmsan/net/vm-7e5f0001.json ]
		run --separate-stderr net "$UA" teardown '{"id":"vm-7e5f0001"}'
		assert_eq "$status" 0
		assert_eq "$(root_net verify '{"id":"vm-7e5f0001"}' | jq .clean)" true
		rm -f /run/vmsan/ids/vm-7e5f0001 # the id's claim is vmsan-fc's to give back
	done
}

@test "a flag on the command line (--verbose) runs no op before the helper knows its caller: root's VM stays root's" {
	local out
	root_net setup "$(setup_req vm-7e5f0002 '{"policy":"deny-all"}')" >/dev/null
	# control: the plain request reaches the helper, which refuses it
	run --separate-stderr net "$UA" teardown '{"id":"vm-7e5f0002"}'
	assert_eq "$status" 1
	assert_eq "$(code "$output")" ERR_NOT_OWNER
	# with a flag before or after the op (it skipped the helper's setting
	# up, ran as a caller of uid 0 and removed root's network)
	for args in "--verbose teardown" "teardown --verbose"; do
		# shellcheck disable=SC2086 # the words are the point
		run --separate-stderr net_args "$UA" $args <<<'{"id":"vm-7e5f0002"}'
		assert_eq "$status" 1
		assert_eq "$(code "$output")" ERR_NOT_OWNER
		[ -e /run/vmsan/net/vm-7e5f0002.json ]
	done
	# and a loosened ruleset stays out, for a VM with a namespace and one without
	run --separate-stderr net_args "$UA" --verbose apply-rules \
		<<<"$(setup_req vm-7e5f0002 '{"policy":"allow-all"}' | jq -c '{id, ruleset}')"
	assert_eq "$(code "$output")" ERR_NOT_OWNER
	out=$(nsenter --net=/run/netns/vmsan-vm-7e5f0002 nft list chain ip vmsan forward)
	[[ $out != *"accept"*"}"* ]] || [[ $out == *drop* ]]
	assert_eq "$(root_net verify '{"id":"vm-7e5f0002"}' | jq .clean)" false
	# answer-only flags still answer, as anyone
	run --separate-stderr net_args "$UA" --version
	assert_eq "$status" 0
	assert_contains "$output" vmsan-net
	root_net teardown '{"id":"vm-7e5f0002"}' >/dev/null
	rm -f /run/vmsan/ids/vm-7e5f0002
}

@test "limits a member lowers before sudo do not cut vmsan-net short: a file size limit is raised, or refused before anything is made" {
	local out
	# 7 blocks of 512 bytes, hard and soft (sudo cannot raise a hard one
	# without CAP_SYS_RESOURCE): the slot map's cursor is written at
	# 4 KiB, where the helper died with SIGXFSZ, the slot taken and no
	# record naming it
	# shellcheck disable=SC2016 # $0 is the inner shell's
	out=$(nsenter --net="/run/netns/$H" setpriv --reuid="$UA" --regid="$UA" --init-groups \
		env -i PATH=/usr/bin:/bin HOME="/home/$UA" sh -c 'ulimit -f 7; exec sudo -n "$0" setup' \
		"$UPREFIX/libexec/vmsan/vmsan-net" <<<"$(setup_req vm-7e5f0001 '{"policy":"deny-all"}')" 2>/dev/null || true)
	if [ "$(jq -c .ok <<<"$out")" = true ]; then
		# raised (root here may): the work was done whole
		[ -e /run/vmsan/net/vm-7e5f0001.json ]
		run --separate-stderr net "$UA" teardown '{"id":"vm-7e5f0001"}'
		assert_eq "$status" 0
		rm -f /run/vmsan/ids/vm-7e5f0001
	else
		# the helper saw the limit (control: it names it) and refused
		# before making anything
		assert_eq "$(code "$out")" ERR_LIMITS || { echo "reply: $out" >&2; false; }
		assert_contains "$(jq -r .error.message <<<"$out")" "file size"
		[ ! -e /run/vmsan/ids/vm-7e5f0001 ]
		[ ! -e /run/vmsan/net/vm-7e5f0001.json ]
	fi
	# whichever: no slot was left taken, nothing of the VM is left
	clean vm-7e5f0001
	assert_eq "$(root_net sweep '{"dryRun":true}' | jq -c .found)" "[]"
}

@test "a member's umask does not reach what root makes (umask 022 from the start): its record is made 0644, not 000" {
	require_cmd strace
	local log=$BATS_TEST_TMPDIR/strace.log
	# umask 0777 through sudo (which keeps the stricter one): the helper's
	# own files and directories are made with root's 022
	# shellcheck disable=SC2016 # $0 is the inner shell's
	strace -f -qq -o "$log" -e trace=umask -- \
		nsenter --net="/run/netns/$H" setpriv --reuid="$UA" --regid="$UA" --init-groups \
		env -i PATH=/usr/bin:/bin HOME="/home/$UA" sh -c 'umask 0777; exec sudo -n "$0" setup' \
		"$UPREFIX/libexec/vmsan/vmsan-net" <<<"$(setup_req vm-7e5f0001 '{"policy":"deny-all"}')" \
		>"$BATS_TEST_TMPDIR/reply" 2>/dev/null || true
	# control: the helper started under the member's umask (its umask call
	# returned the 0777 it had)
	grep -q 'umask(022) *= 0777' "$log" || { grep umask "$log" >&2; false; }
	assert_eq "$(jq -c .ok "$BATS_TEST_TMPDIR/reply")" true
	# what it made is usable: its namespace's bind mount and root's record
	assert_eq "$(stat -c %a /run/vmsan/net/vm-7e5f0001.json)" 644
	run --separate-stderr net "$UA" teardown '{"id":"vm-7e5f0001"}'
	assert_eq "$status" 0
	rm -f /run/vmsan/ids/vm-7e5f0001
	clean vm-7e5f0001
}

@test "a VM without a namespace needs an id its table name holds whole: a longer one would share (and replace, and delete) another's table" {
	local long=vm-7e5fe000000000000000000x26 short=vm-7e5fe00000000000000025
	[ "${#long}" -gt 25 ]
	[ "${#short}" -le 25 ]
	# the victim's table, then the attacker's id that began alike (both
	# were cut to vmsan_vm_7e5fe00000000000000000 before)
	run --separate-stderr net "$UB" setup "{\"id\":\"$long\",\"hostMode\":true,\"policy\":{\"policy\":\"deny-all\"}}"
	assert_eq "$status" 100
	assert_eq "$(code "$output")" ERR_REQUEST_FIELD
	assert_contains "$(jq -r .error.message <<<"$output")" "at most 25 characters"
	[ ! -e "/run/vmsan/net/$long.json" ]
	[ ! -e "/run/vmsan/ids/$long" ]
	# control: the same request with an id that fits is made, and torn down
	run --separate-stderr net "$UB" setup "{\"id\":\"$short\",\"hostMode\":true,\"policy\":{\"policy\":\"deny-all\"}}"
	assert_eq "$status" 0 || { echo "$output" >&2; false; }
	assert_eq "$(jq -r .table <<<"$output")" "vmsan_${short//-/_}"
	run --separate-stderr net "$UB" teardown "{\"id\":\"$short\"}"
	assert_eq "$status" 0
	rm -f "/run/vmsan/ids/$short"
	clean "$short"
}

@test "vmsan-fc cleanup keeps an id claimed while its network stands: setup, cleanup, setup again cannot pass the per-user limit" {
	local out fc=$UPREFIX/libexec/vmsan/vmsan-fc
	hold_all_but 2
	run --separate-stderr net "$UA" setup "$(setup_req vm-7e5f0001 '{"policy":"deny-all"}')"
	assert_eq "$status" 0
	# vmsan-fc cleanup of that id, through sudo, its network still there:
	# it answers (control), and the id stays theirs
	out=$(nsenter --net="/run/netns/$H" setpriv --reuid="$UA" --regid="$UA" --init-groups \
		env -i PATH=/usr/bin:/bin HOME="/home/$UA" sudo -n "$fc" cleanup <<<'{"id":"vm-7e5f0001"}')
	assert_eq "$(jq .ok <<<"$out")" true
	[ -e /run/vmsan/ids/vm-7e5f0001 ]
	run --separate-stderr net "$UA" setup "$(setup_req vm-7e5f0002 '{"policy":"deny-all"}')"
	assert_eq "$status" 0
	# the limit holds: a third network is refused (before, the cleanup had
	# given the first id up, and networks went on past the limit)
	refused_at_limit vm-7e5f0003
	# torn down, then cleaned up: the id goes
	run --separate-stderr net "$UA" teardown '{"id":"vm-7e5f0001"}'
	assert_eq "$status" 0
	out=$(nsenter --net="/run/netns/$H" setpriv --reuid="$UA" --regid="$UA" --init-groups \
		env -i PATH=/usr/bin:/bin HOME="/home/$UA" sudo -n "$fc" cleanup <<<'{"id":"vm-7e5f0001"}')
	assert_eq "$(jq .ok <<<"$out")" true
	[ ! -e /run/vmsan/ids/vm-7e5f0001 ]
}
