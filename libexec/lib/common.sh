# shellcheck shell=sh
# Sourced by every porcelain command.  The dispatcher exports
# VMSAN_LIBEXECDIR, VMSAN_DATADIR, VMSAN_JSON and VMSAN_VERBOSE.
#
# A command's help lives in its own header comments:
#   # Summary: one line for `vmsan help`
#   # Usage: vmsan cmd [...]        (and the "# " lines after it)
#   # Complete: --flag --other      (words for shell completion)
#   # Complete-ids: yes             (also complete VM ids)

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
	if grep -q '^# Complete-ids: yes' "$0"; then
		"$VMSAN_LIBEXECDIR/vmsan-state" list </dev/null 2>/dev/null |
			jq -r '.vms[]?.id' 2>/dev/null
	fi
	return 0
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

# vmsan_fail REPLY STATUS: a helper failed; pass its error on and exit
# with its status.
vmsan_fail() {
	if [ "$VMSAN_JSON" = 1 ] && printf '%s' "$1" | jq -e '.error' >/dev/null 2>&1; then
		printf '%s\n' "$1"
	elif [ "$VMSAN_JSON" = 1 ]; then
		vmsan_error ERR_HELPER "a helper failed without a reply (exit $2)"
	fi
	printf '%s' "$1" | jq -r --arg cmd "$vmsan_cmd" \
		'"vmsan \($cmd): \(.error.message)" + (if .error.fix then "\n  fix: \(.error.fix)" else "" end)' \
		>&2 2>/dev/null || printf 'vmsan %s: a helper failed (exit %s)\n' "$vmsan_cmd" "$2" >&2
	exit "$2"
}

# vmsan_helper NAME [OP]: run an unprivileged helper with stdin as request.
vmsan_helper() {
	_h=$1
	shift
	if [ "$VMSAN_VERBOSE" = 1 ]; then
		"$VMSAN_LIBEXECDIR/$_h" --verbose "$@"
	else
		"$VMSAN_LIBEXECDIR/$_h" "$@"
	fi
}

# vmsan_priv NAME [OP]: run one of the two root helpers (vmsan-net,
# vmsan-fc), through the sudoers rule unless we are root already.
vmsan_priv() {
	_h=$1
	shift
	case $_h in vmsan-net | vmsan-fc) ;; *) vmsan_die ERR_INTERNAL "vmsan_priv: $_h is not a root helper" ;; esac
	if [ "$(id -u)" = 0 ]; then
		"$VMSAN_LIBEXECDIR/$_h" "$@"
	else
		sudo -n "$VMSAN_LIBEXECDIR/$_h" "$@"
	fi
}

# Colours only for a terminal, and never when NO_COLOR is set.
vmsan_color() {
	[ -t 1 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-dumb}" != dumb ]
}
