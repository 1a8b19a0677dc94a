# vmsan-init as PID 1 of a new PID, mount and UTS namespace, inside a
# network namespace of the test's own: the VM disk and the image disk are
# real ext4 file systems on loop devices, the VM's link is a veth whose
# other end sits in a second namespace standing for the host.

INIT=$TOP/agent/vmsan-init
AGENT=$TOP/agent/vmsan-agent
CTL=$TOP/libexec/vmsan-agentctl
GUEST_IP=10.250.0.2
HOST_IP=10.250.0.1

in_host() { nsenter --net="/run/netns/$IN_HOST" "$@"; }
in_guest() { nsenter --net="/run/netns/$IN_GUEST" "$@"; }
ctl() { in_host "$CTL" --agent "$GUEST_IP:9119" --token-file "$TOKEN_FILE" "$@"; }

# busybox_image DIR: a busybox-only root: no libc, no shell but busybox's.
busybox_image() {
	local d=$1 bb
	bb=$(command -v busybox)
	mkdir -p "$d/bin" "$d/etc" "$d/root" "$d/tmp" "$d/home/app"
	cp "$bb" "$d/bin/busybox"
	for a in sh ls cat echo ps sleep kill mount id env grep sed stat sync true false wc head tr hostname sha256sum; do
		ln -s busybox "$d/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n' >"$d/etc/passwd"
	printf 'root:x:0:\napp:x:1000:\n' >"$d/etc/group"
	# the link systemd-resolved images carry: init must replace it
	ln -s ../run/systemd/resolve/stub-resolv.conf "$d/etc/resolv.conf"
	chown 1000:1000 "$d/home/app"
	chmod 1777 "$d/tmp"
}

# with_libs DIR BINARY...: copy each binary and the shared libraries
# ldd names for it into DIR, at the same paths.
with_libs() {
	local d=$1 b l
	shift
	for b in "$@"; do
		mkdir -p "$d/$(dirname "$b")"
		cp -L "$b" "$d/$b"
		for l in $(ldd "$b" | grep -o '/[^ ]*'); do
			mkdir -p "$d/$(dirname "$l")"
			[ -e "$d/$l" ] || cp -L "$l" "$d/$l"
		done
	done
}

# glibc_image DIR: dash as /bin/sh and a few coreutils with glibc, nothing
# else (no busybox).
glibc_image() {
	local d=$1
	mkdir -p "$d/bin" "$d/etc" "$d/root" "$d/tmp"
	with_libs "$d" /bin/dash /bin/cat /usr/bin/env /usr/bin/id /bin/hostname
	ln -s dash "$d/bin/sh"
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$d/etc/passwd"
	printf 'root:x:0:\n' >"$d/etc/group"
	chmod 1777 "$d/tmp"
}

# musl_image DIR: a dynamically linked musl program and musl's loader, as
# in Alpine; no shell at all.
musl_image() {
	local d=$1
	mkdir -p "$d/bin" "$d/etc" "$d/root" "$d/lib"
	printf '#include <stdio.h>\n#include <unistd.h>\nint main(void){printf("musl-dynamic pid1=%%d\\n", getppid() > 0);return 0;}\n' \
		>"$TEST_TMP/hello.c"
	musl-gcc -o "$d/bin/hello" "$TEST_TMP/hello.c"
	cp -L /lib/ld-musl-x86_64.so.1 "$d/lib/ld-musl-x86_64.so.1"
	printf 'root:x:0:0:root:/root:/bin/hello\n' >"$d/etc/passwd"
	printf 'root:x:0:\n' >"$d/etc/group"
}

# vm_disk DIR: the VM's own disk as the host lays it out.
vm_disk() {
	local d=$1
	mkdir -p "$d/vmsan" "$d/upper" "$d/work"
	cp "$INIT" "$d/vmsan/init"
	cp "$AGENT" "$d/vmsan/vmsan-agent"
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/vmsan/agent.token"
	chmod 600 "$d/vmsan/agent.token"
	printf 'IMAGE_VAR=from-the-image\nPATH=/usr/local/bin:/usr/bin:/bin\n' >"$d/vmsan/agent.env"
	chmod 600 "$d/vmsan/agent.env"
}

# make_disks: the image disk ($IMAGE: busybox, glibc or musl) and the VM's
# own disk as the host lays it out; TOKEN_FILE holds the agent's token.
make_disks() {
	"${IMAGE:-busybox}_image" "$TEST_TMP/image"
	mke2fs -q -t ext4 -d "$TEST_TMP/image" "$TEST_TMP/image.ext4" 16M
	# shellcheck disable=SC2034 # compared by init.bats
	IMG_SUM=$(sha256sum "$TEST_TMP/image.ext4" | cut -d' ' -f1)
	vm_disk "$TEST_TMP/vmdisk"
	mke2fs -q -t ext4 -d "$TEST_TMP/vmdisk" "$TEST_TMP/vm.ext4" 64M
	TOKEN_FILE=$TEST_TMP/token
	cp "$TEST_TMP/vmdisk/vmsan/agent.token" "$TOKEN_FILE"
}

# start_init CMDLINE: init as PID 1 of a new PID, mount and UTS namespace
# in $IN_GUEST, on the VM disk mounted at $TEST_TMP/root.
start_init() {
	CONSOLE=$TEST_TMP/console.log
	in_guest unshare --pid --mount --uts --fork --kill-child \
		"$INIT" --root "$TEST_TMP/root" --cmdline "$1" </dev/null >"$CONSOLE" 2>&1 3>&- &
	INIT_WRAP=$!
}

# guest_up [CMDLINE WORDS...]: make both disks, the namespaces and start
# init with the words added to its command line; waits for the agent
# unless NO_WAIT=1.
guest_up() {
	require_root
	require_cmd busybox
	IN_HOST=vmsan-ih$$-$BATS_TEST_NUMBER
	IN_GUEST=vmsan-ig$$-$BATS_TEST_NUMBER
	make_disks
	LOWER_DEV=$(losetup -f --show -r "$TEST_TMP/image.ext4")
	VM_DEV=$(losetup -f --show "$TEST_TMP/vm.ext4")
	mkdir "$TEST_TMP/root"
	mount "$VM_DEV" "$TEST_TMP/root"
	ip netns add "$IN_HOST"
	ip netns add "$IN_GUEST"
	ip -n "$IN_HOST" link add vh type veth peer name eth0 netns "$IN_GUEST"
	ip -n "$IN_HOST" addr add "$HOST_IP/30" dev vh
	ip -n "$IN_HOST" link set vh up
	ip -n "$IN_HOST" link set lo up
	start_init "vmsan.lower=$LOWER_DEV vmsan.hostname=guest1 vmsan.ip=$GUEST_IP/30 vmsan.gw=$HOST_IP \
vmsan.dns=$HOST_IP vmsan.stop_timeout=1 $*"
	[ "${NO_WAIT:-0}" = 1 ] || wait_agent
}

# wait_agent: until the guest's agent answers from $IN_HOST, as long as
# $INIT_WRAP (init's wrapper, or the VMM) lives; shows the console (and
# $VMM_LOG) if it does not come up.
wait_agent() {
	for _ in $(seq 600); do
		in_host curl -sf --max-time 1 "http://$GUEST_IP:9119/health" >/dev/null 2>&1 && return 0
		kill -0 "$INIT_WRAP" 2>/dev/null || break
		sleep 0.05
	done
	echo "the guest's agent did not come up; console:" >&2
	cat "$CONSOLE" ${VMM_LOG:+"$VMM_LOG"} >&2
	return 1
}

# The PID, as the host sees it, of the init in the guest namespace.
init_pid() {
	local p
	for p in $(ip netns pids "$IN_GUEST" 2>/dev/null); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = vmsan-init ] && { echo "$p"; return 0; }
	done
	return 1
}

# Wait (up to 10 s) for init's namespace to end; its wrapper's status.
wait_init_gone() {
	local i
	for i in $(seq 200); do
		kill -0 "$INIT_WRAP" 2>/dev/null || break
		sleep 0.05
	done
	[ "$i" -lt 200 ] || return 1
	wait "$INIT_WRAP"
}

guest_down() {
	[ -n "${IN_GUEST:-}" ] || return 0
	[ -z "${INIT_WRAP:-}" ] || kill -9 "$INIT_WRAP" 2>/dev/null || true
	ip netns pids "$IN_GUEST" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
	sleep 0.1
	ip netns del "$IN_GUEST" 2>/dev/null || true
	ip netns del "$IN_HOST" 2>/dev/null || true
	umount "$TEST_TMP/root" 2>/dev/null || true
	[ -z "${VM_DEV:-}" ] || losetup -d "$VM_DEV" 2>/dev/null || true
	[ -z "${LOWER_DEV:-}" ] || losetup -d "$LOWER_DEV" 2>/dev/null || true
}

# ---- the same guest under QEMU (microvm, TCG here) with our kernel --------

# The guest kernel: $VMSAN_KERNEL, else the newest one `make kernel` left.
guest_kernel() {
	local k=${VMSAN_KERNEL:-}
	if [ -z "$k" ]; then
		for f in "$TOP"/share/vmsan/kernels/vmlinux-*; do [ -f "$f" ] && k=$f; done
	fi
	[ -n "$k" ] && [ -f "$k" ] && { echo "$k"; return 0; }
	if [ "${VMSAN_TEST_MUST_RUN:-0}" = 1 ]; then
		echo "no guest kernel: run 'make kernel' (VMSAN_TEST_MUST_RUN=1 forbids skipping)" >&2
		return 1
	fi
	skip "no guest kernel (make kernel)"
}

# fc_request [JQ-FILTER]: a vmsan-fc plan/start request for the disks
# make_disks makes, edited by the filter.
fc_request() {
	jq -nc --arg k "${KERNEL:-/k/vmlinux}" --arg t "$TEST_TMP" --arg ns "${IN_HOST:-vmsan-x}" \
		--arg g "$GUEST_IP" --arg h "$HOST_IP" '{op:"plan", id:"vm-1a2b3c4d", vmm:"qemu",
		kernel:$k, vmDisk:($t + "/vm.ext4"), imageDisk:($t + "/image.ext4"), runDir:($t + "/run"),
		uid:65534, gid:65534, accel:"tcg",
		network:{netns:$ns, tap:"vmstap0", mac:"06:00:ac:10:00:02",
			guestIp:$g, gatewayIp:$h, prefixLen:30, dns:[$h]}}' | jq -c "${1:-.}"
}

# vmm_prepare [notap]: disks, a run directory (root's: vmsan-fc opens
# what QEMU uses and the VMM's uid, nobody, needs access to none of it)
# and the namespace $IN_HOST with the TAP vmstap0 (unless notap).
vmm_prepare() {
	require_root
	require_cmd qemu-system-x86_64
	KERNEL=$(guest_kernel)
	make_disks
	mkdir -p "$TEST_TMP/run"
	CONSOLE=$TEST_TMP/run/console.log
	VMM_LOG=$TEST_TMP/run/vmm.log
	IN_HOST=vmsan-qh$$-$BATS_TEST_NUMBER
	ip netns add "$IN_HOST"
	ip -n "$IN_HOST" link set lo up
	[ "${1:-}" != notap ] || return 0
	ip -n "$IN_HOST" tuntap add dev vmstap0 mode tap
	ip -n "$IN_HOST" addr add "$HOST_IP/30" dev vmstap0
	ip -n "$IN_HOST" link set vmstap0 up
}

# qemu_up [JQ-FILTER]: boot what vmm_prepare made through vmsan-fc (QEMU
# microvm, TCG here); its reply in $TEST_TMP/start.json; waits for the
# agent.
qemu_up() {
	"$TOP/libexec/vmsan-fc" start <<<"$(fc_request ".op = \"start\"${1:+ | $1}")" >"$TEST_TMP/start.json" ||
		{ cat "$TEST_TMP/start.json" >&2; return 1; }
	INIT_WRAP=$(jq .pid "$TEST_TMP/start.json")
	wait_agent
}

# Everything in the namespace goes (QEMU, and anything it left).
qemu_down() {
	[ -n "${IN_HOST:-}" ] || return 0
	ip netns pids "$IN_HOST" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
	local _
	for _ in $(seq 50); do
		[ -z "$(ip netns pids "$IN_HOST" 2>/dev/null)" ] && break
		sleep 0.1
	done
	ip netns del "$IN_HOST" 2>/dev/null || true
	# root's record of the VMM, its RAM file, and the id's claim
	"$TOP/libexec/vmsan-fc" cleanup <<<'{"id":"vm-1a2b3c4d"}' >/dev/null 2>&1 || true
}

# guest_suite_up / guest_suite_down (setup_file, teardown_file of a suite
# that boots real guests): vmsan in the test host namespace $H, whose
# route leads to the fake internet (net_helper.bash); one state dir for
# the suite (the base image is built once); every VM left in it removed
# at the end.
guest_suite_up() {
	TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
	export TOP
	net_fixture_up
	nsx "$H" sysctl -qw net.ipv4.ip_forward=1
	export VMSAN_DIR=$BATS_FILE_TMPDIR/state
	export VMSAN_DNS=192.0.2.53
	"$TOP/bin/vmsan" images pull --runtime base >/dev/null
}

guest_suite_down() {
	[ -n "${H:-}" ] || return 0
	local f
	for f in "$VMSAN_DIR"/vms/vm-*.json; do
		[ -e "$f" ] || continue
		f=${f##*/}
		nsenter --net="/run/netns/$H" "$TOP/bin/vmsan" rm -f "${f%.json}" >/dev/null 2>&1 || true
	done
	net_fixture_down
}

# The frame of the suites that boot real guests in the test host namespace
# (create, chaos, load, options, attack-guest-vm, serve):
# vmsan ARGS...: the CLI, run in the test host namespace.
vmsan() { nsenter --net="/run/netns/$H" "$TOP/bin/vmsan" "$@"; }
# guest_suite_start (setup_file): the fixture, where root and QEMU are;
# 1 elsewhere (each test's setup then skips, or fails under MUST_RUN).
guest_suite_start() {
	[ "$(id -u)" = 0 ] && command -v qemu-system-x86_64 >/dev/null || return 1
	guest_suite_up
}
# guest_test_setup / guest_test_teardown (setup, teardown): a test's
# directory, and its VM ($ID) removed whatever the test did.
guest_test_setup() {
	require_root
	require_cmd qemu-system-x86_64
	guest_kernel >/dev/null
	TEST_TMP=$(mktemp -d /tmp/vmsan-test.XXXXXX)
}
guest_test_teardown() {
	[ -z "${ID:-}" ] || vmsan rm -f "$ID" >/dev/null 2>&1 || true
	rm -rf "$TEST_TMP"
}
