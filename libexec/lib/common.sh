# shellcheck shell=sh
# Sourced by every porcelain command.  The dispatcher exports
# VMSAN_LIBEXECDIR, VMSAN_DATADIR, VMSAN_JSON and VMSAN_VERBOSE.
#
# A command's help lives in its own header comments:
#   # Summary: one line for `vmsan help`
#   # Usage: vmsan cmd [...]        (and the "# " lines after it)
#   # Complete: --flag --other      (words for shell completion)

# Run directly (not through bin/vmsan), a command finds its neighbours.
VMSAN_LIBEXECDIR=${VMSAN_LIBEXECDIR:-${0%/*}}
VMSAN_VERSION=${VMSAN_VERSION:-unknown}
VMSAN_JSON=${VMSAN_JSON:-0}
VMSAN_VERBOSE=${VMSAN_VERBOSE:-0}
vmsan_cmd=${0##*/vmsan-}

# Answer --summary, --help and --complete wherever they appear before "--".
vmsan_init() {
	for _a; do
		case $_a in
		--) return 0 ;;
		--summary) sed -n 's/^# Summary: //p' "$0"; exit 0 ;;
		--help | -h) vmsan_usage; exit 0 ;;
		--complete) vmsan_complete; exit 0 ;;
		esac
	done
}

vmsan_usage() {
	sed -n '/^# Usage:/,/^[^#]/{
		/^#/!d
		s/^# Usage: /usage: /
		s/^# \{0,1\}//
		/^Complete/d
		p
	}' "$0"
}

vmsan_complete() {
	sed -n 's/^# Complete: //p' "$0" | tr ' ' '\n'
}

# vmsan_error CODE MESSAGE [FIX]: report one error in the current mode.
vmsan_error() {
	if [ "$VMSAN_JSON" = 1 ]; then
		jq -cn --arg c "$1" --arg m "$2" --arg f "${3:-}" \
			'{ok:false, error:({code:$c, message:$m} + (if $f == "" then {} else {fix:$f} end))}'
	fi
	printf 'vmsan %s: %s\n' "$vmsan_cmd" "$2" >&2
	[ -z "${3:-}" ] || printf '  fix: %s\n' "$3" >&2
}

# vmsan_die CODE MESSAGE [FIX [EXIT]]
vmsan_die() {
	vmsan_error "$1" "$2" "${3:-}"
	exit "${4:-1}"
}

vmsan_usage_error() {
	vmsan_die ERR_USAGE "$1" "see 'vmsan $vmsan_cmd --help'" 100
}

# Colours only for a terminal, and never when NO_COLOR is set.
vmsan_color() {
	[ -t 1 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-dumb}" != dumb ]
}
