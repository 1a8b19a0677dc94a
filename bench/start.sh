#!/bin/sh
# Cold and warm starts (issue 19), side by side in one run, on whatever
# accelerator create chooses here (it says which: KVM where the guest
# kernel boots under it, else TCG):
#  1. N cold creates in a row (create --cold: base image, deny-all, to the
#     agent answering): p50/p99 of the wall time, and the median of every
#     step of create's own --json timing;
#  2. the first plain create (no template yet): it boots and makes the
#     template (what that adds: its templateMs);
#  3. N plain creates in a row: each restores the template create made (a
#     new slot, disk copy, token, clock, name and seed), the same figures;
#  4. N warm creates in a row from a snapshot taken by hand
#     (create --snapshot), the same figures;
#  5. N cold, then N plain, all at once: wall time until all answer, p99;
#     host memory per VM (QEMU's PSS);
#  6. vmsan run --rm base -- true, end to end, 5 times --cold and 5 times
#     plain (templates).
# vmsan runs in a throwaway host namespace with no route out.  Needs root,
# jq.  Prints Markdown.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
n=${BENCH_RUNS:-20}
H=vbench-start$$
work=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/vmsan-bench.XXXXXX")
[ "$(id -u)" = 0 ] || { echo "bench/start.sh: needs root" >&2; exit 1; }
VMSAN_DIR="$work/state"
VMSAN_DNS=192.0.2.53
export VMSAN_DIR VMSAN_DNS
# shellcheck source=bench/common
. "$top/bench/common"
vmsan() { nsenter --net="/run/netns/$H" "$top/bin/vmsan" "$@"; }
cleanup() { bench_rm_all; ip netns del "$H" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
bench_host_ns "$H"
"$top/bin/vmsan" images pull --runtime base >/dev/null
now() { date +%s%N; }
# pct P FILE: the P-th percentile (nearest rank) of the numbers in FILE
pct() { sort -n "$2" | awk -v p="$1" '{ a[NR] = $1 } END { i = int((p * NR + 99) / 100); if (i < 1) i = 1; print a[i] }'; }
# step FILE NAME: the median of one step of the --json timings in FILE
step() { jq -s --arg k "$2" 'map(.[$k] // 0) | sort | .[length / 2 | floor] | . * 10 | round / 10' "$1"; }
fmt() { printf '%.0f' "$1"; }

# one create, timed; its timing and id kept
timed_create() {
	s=$(now)
	vmsan create --json --network-policy deny-all "$@" >"$work/out"
	e=$(now)
	echo "($e - $s) / 1000000" | bc >>"$work/wall"
	jq -c .timing "$work/out" >>"$work/timing"
	jq -r .vm.accelUsed "$work/out" >"$work/accel"
}

series() { # NAME [create args]: n in a row, each removed after
	name=$1
	shift
	: >"$work/wall"
	: >"$work/timing"
	i=0
	while [ "$i" -lt "$n" ]; do
		timed_create "$@"
		vmsan rm -f "$(jq -r .vm.id "$work/out")" >/dev/null
		i=$((i + 1))
	done
	cp "$work/wall" "$work/wall.$name"
	cp "$work/timing" "$work/timing.$name"
}

at_once() { # NAME [create args]: n at once, wall until all answer
	name=$1
	shift
	: >"$work/each.$name"
	s=$(now)
	i=0
	while [ "$i" -lt "$n" ]; do
		(
			t0=$(now)
			vmsan create --json --network-policy deny-all "$@" >"$work/once.$name.$i" 2>&1 &&
				echo "($(now) - $t0) / 1000000" | bc >>"$work/each.$name"
		) &
		i=$((i + 1))
	done
	wait
	e=$(now)
	echo "($e - $s) / 1000000" | bc >"$work/total.$name"
	pss=0 nq=0
	for p in $(pgrep -f "process=vmsan-vm-" || true); do
		k=$(awk '/^Pss:/ { s += $2 } END { print s + 0 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
		pss=$((pss + k))
		nq=$((nq + 1))
	done
	echo "$((pss / (nq > 0 ? nq : 1) / 1024))" >"$work/pss.$name"
	wc -l <"$work/each.$name" | tr -d ' ' >"$work/ok.$name"
	bench_rm_all
}

series cold --cold
# the first plain create: booted, and the template made from it
s0=$(now)
vmsan create --json --network-policy deny-all >"$work/first"
first_wall=$(echo "($(now) - $s0) / 1000000" | bc)
first_start=$(jq -r .start "$work/first")
first_tpl=$(jq '.timing.templateMs // 0 | round' "$work/first")
vmsan rm -f "$(jq -r .vm.id "$work/first")" >/dev/null
series template
# a snapshot taken by hand of a VM just booted (left paused: it is not
# needed again), then removed
vmsan create --json --cold --network-policy deny-all >"$work/tpl"
tid=$(jq -r .vm.id "$work/tpl")
sid=$(vmsan snapshot create "$tid" --json --no-resume | jq -r .snapshotId)
vmsan rm -f "$tid" >/dev/null
series warm --snapshot "$sid"
at_once cold --cold
at_once template
for how in cold template; do
	: >"$work/run.$how"
	i=0
	while [ "$i" -lt 5 ]; do
		s=$(now)
		if [ "$how" = cold ]; then
			vmsan run --rm --cold --network-policy deny-all base -- true >/dev/null
		else
			vmsan run --rm --network-policy deny-all base -- true >/dev/null
		fi
		echo "($(now) - $s) / 1000000" | bc >>"$work/run.$how"
		i=$((i + 1))
	done
done

accel=$(cat "$work/accel")
c50=$(pct 50 "$work/wall.cold") c99=$(pct 99 "$work/wall.cold")
t50=$(pct 50 "$work/wall.template") t99=$(pct 99 "$work/wall.template")
w50=$(pct 50 "$work/wall.warm") w99=$(pct 99 "$work/wall.warm")
echo "| $n in a row ($accel) | p50, ms | p99, ms |"
echo "|---|---|---|"
echo "| create --cold to agent ready | $c50 | $c99 |"
echo "| create (restores the template create made) to agent ready | $t50 | $t99 |"
echo "| create --snapshot (a snapshot taken by hand) to agent ready | $w50 | $w99 |"
printf '| cold / template | %.1fx | %.1fx |\n' "$(echo "$c50 / $t50" | bc -l)" "$(echo "$c99 / $t99" | bc -l)"
echo
echo "The first plain create ($first_start): $first_wall ms, of which $first_tpl ms making the template."
echo
echo "Where the milliseconds go (medians of create's own --json timing):"
echo
echo "| step | cold, ms | template, ms | snapshot, ms |"
echo "|---|---|---|---|"
for k in $(jq -s -r 'map(keys) | add | unique | .[]' "$work/timing.cold" "$work/timing.template" "$work/timing.warm"); do
	echo "| $k | $(step "$work/timing.cold" "$k") | $(step "$work/timing.template" "$k") | $(step "$work/timing.warm" "$k") |"
done
echo
echo "| $n at once | all answered, s | p99 of each, ms | ok | PSS per VM, MiB |"
echo "|---|---|---|---|---|"
for name in cold template; do
	printf '| %s | %.1f | %s | %s of %s | %s |\n' "$name" "$(echo "$(cat "$work/total.$name") / 1000" | bc -l)" \
		"$(pct 99 "$work/each.$name")" "$(cat "$work/ok.$name")" "$n" "$(cat "$work/pss.$name")"
done
echo
for how in cold template; do
	echo "vmsan run --rm base -- true, 5 times ($how): median $(pct 50 "$work/run.$how") ms (min $(pct 1 "$work/run.$how"), max $(pct 100 "$work/run.$how"))"
	echo
done
