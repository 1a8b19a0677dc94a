# Shared by every suite: a hermetic environment per test.
bats_require_minimum_version 1.5.0
# HOME, VMSAN_DIR and every path live under the test's own temp dir.

TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
# shellcheck disable=SC2034 # used by the suites that load this file
VMSAN=$TOP/bin/vmsan
LIBEXEC=$TOP/libexec
# The guest kernel's build cache stays the real one when HOME moves: a
# test that runs install.sh must not rebuild the kernel.
export VMSAN_KERNEL_CACHE=${VMSAN_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmsan/kernel}

setup() {
	export LC_ALL=C
	TEST_TMP=$(mktemp -d "${BATS_TMPDIR:-/tmp}/vmsan-test.XXXXXX")
	export HOME=$TEST_TMP/home
	export VMSAN_DIR=$TEST_TMP/state
	mkdir -p "$HOME"
	unset VMSAN_LIBEXECDIR VMSAN_DATADIR VMSAN_JSON VMSAN_VERBOSE SUDO_USER SUDO_UID SUDO_GID NO_COLOR
	if declare -F setup_extra >/dev/null; then setup_extra; fi
}

teardown() {
	if declare -F teardown_extra >/dev/null; then teardown_extra; fi
	# A test may have handed the dir to another user; take it back first.
	[ "$(id -u)" != 0 ] || chown -R root: "$TEST_TMP" 2>/dev/null || true
	chmod -R u+rwX "$TEST_TMP" 2>/dev/null || true
	rm -rf "$TEST_TMP"
}

# Privileged tests may not skip silently in CI: VMSAN_TEST_MUST_RUN=1 turns
# a skip into a failure.
require_root() {
	[ "$(id -u)" = 0 ] && return 0
	if [ "${VMSAN_TEST_MUST_RUN:-0}" = 1 ]; then
		echo "this test needs root and VMSAN_TEST_MUST_RUN=1 forbids skipping" >&2
		return 1
	fi
	skip "needs root"
}

require_cmd() {
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "${VMSAN_TEST_MUST_RUN:-0}" = 1 ]; then
		echo "this test needs $1 and VMSAN_TEST_MUST_RUN=1 forbids skipping" >&2
		return 1
	fi
	skip "needs $1"
}

# state OP [JSON]: run the record store helper.
state() {
	local op=$1 body=${2:-}
	printf '%s' "$body" | "$LIBEXEC/vmsan-state" "$op"
}

# new_vm [JSON fields]: create a record, print its id.
new_vm() {
	state new "{\"record\":${1:-{\}}}" | jq -er .record.id
}

# The output must be exactly one JSON document.
assert_one_json() {
	local n
	n=$(printf '%s' "$1" | jq -s 'length') || { echo "not JSON: $1" >&2; return 1; }
	[ "$n" = 1 ] || { echo "expected one JSON document, got $n: $1" >&2; return 1; }
}

assert_eq() {
	[ "$1" = "$2" ] || { printf 'expected: %s\n     got: %s\n' "$2" "$1" >&2; return 1; }
}

assert_contains() {
	case $1 in *"$2"*) return 0 ;; esac
	printf 'expected to contain: %s\n                got: %s\n' "$2" "$1" >&2
	return 1
}
