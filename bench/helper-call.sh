#!/bin/sh
# One root helper call, before and after a change, side by side: vmsan-net
# verify and vmsan-fc status of an id nobody has, run by root directly (no
# sudo: the helpers' own cost), in rounds of 10 calls alternating
# before/after so drift hits both alike.  Session 12 added to every call
# what a caller set through sudo undone and the work moved into a child
# (libexec/lib/rootproc.c): this is what that costs.
#
#   bench/helper-call.sh [BEFORE-COMMIT]   (default 98b7709, the commit
#                                           before libexec/lib/rootproc.c)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
before=${1:-98b7709}
rounds=${BENCH_RUNS:-50}
[ "$(id -u)" = 0 ] || { echo "bench/helper-call.sh: needs root" >&2; exit 1; }
work=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/vmsan-bench.XXXXXX")
old=$work/before
trap 'git -C "$top" worktree remove --force "$old" 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM
echo "bench/helper-call.sh: building $before" >&2
git -C "$top" worktree add -q --detach "$old" "$before"
make -s -C "$old" libexec/vmsan-net libexec/vmsan-fc >/dev/null

# ten DIR HELPER OP: microseconds per call, over ten calls
ten() {
	s=$(date +%s%N)
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		"$1/libexec/$2" "$3" >/dev/null <<EOF
{"id":"vm-benchx"}
EOF
	done
	e=$(date +%s%N)
	echo $(((e - s) / 10000))
}
for r in $(seq "$rounds"); do
	for v in before after; do
		d=$top
		[ "$v" = after ] || d=$old
		ten "$d" vmsan-net verify >>"$work/$v.net"
		ten "$d" vmsan-fc status >>"$work/$v.fc"
	done
	[ -t 2 ] && printf '\r%s/%s rounds' "$r" "$rounds" >&2
done
[ -t 2 ] && echo >&2
# p50 FILE: the median, in ms
p50() { sort -n "$1" | awk '{ a[NR] = $1 } END { printf "%.2f", a[int((NR + 1) / 2)] / 1000 }'; }
echo "## One root helper call, before ($before) and after"
echo
echo "| call | before, ms | after, ms | after - before |"
echo "|---|---|---|---|"
for h in net fc; do
	b=$(p50 "$work/before.$h") a=$(p50 "$work/after.$h")
	name="vmsan-net verify"
	[ "$h" = net ] || name="vmsan-fc status"
	echo "| $name | $b | $a | $(echo "$a $b" | awk '{ printf "%+.2f", $1 - $2 }') |"
done
echo
echo "p50 of $rounds rounds of 10 calls each, alternating; run as root, no sudo."
