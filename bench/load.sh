#!/bin/sh
# Load on one VM (issue 18): EXECS concurrent `vmsan exec`s (each sleeps a
# second, prints its number and exits with a status of its own) and UPLOADS
# concurrent uploads of a 1 MiB random file each, to one VM (base image,
# deny-all, 1 vCPU / 256 MiB).  Checked: every exec's output and status,
# every file's SHA-256 in the guest, and that the agent answers afterwards.
# Measured from inside the guest by a sampler started before the load
# (`vmsan exec --detach`, twice a second, from /proc): the agent's VmRSS,
# VmHWM, threads and descriptors, and the guest's MemAvailable: idle, the
# highest sampled under load, and +1, +10 and +40 s after it (the agent's
# spare worker threads end after 30 s idle), for BENCH_ROUNDS rounds (3).
# vmsan runs in a throwaway host namespace with no route out.  Needs root,
# jq, bc.  BENCH_EXECS (100), BENCH_UPLOADS (20).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/common
. "$top/bench/common"
execs=${BENCH_EXECS:-100}
uploads=${BENCH_UPLOADS:-20}
H=vbench-load$$
work=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/vmsan-bench.XXXXXX")
[ "$(id -u)" = 0 ] || { echo "bench/load.sh: needs root" >&2; exit 1; }
VMSAN_DIR="$work/state"
VMSAN_DNS=192.0.2.53
export VMSAN_DIR VMSAN_DNS
vmsan() { nsenter --net="/run/netns/$H" "$top/bin/vmsan" "$@"; }
cleanup() {
	for f in "$VMSAN_DIR"/vms/vm-*.json; do
		[ -e "$f" ] || continue
		f=${f##*/}
		vmsan rm -f "${f%.json}" >/dev/null 2>&1 || true
	done
	ip netns del "$H" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
bench_host_ns "$H"
"$top/bin/vmsan" images pull --runtime base >/dev/null
id=$(vmsan create --json --network-policy deny-all | jq -r .vm.id)
vmsan exec "$id" -- true

# The sampler: "uptime rss hwm threads fds memavailable" every 0.5 s.
# shellcheck disable=SC2016 # expanded in the guest
vmsan exec "$id" --detach -- sh -c 'for p in /proc/[0-9]*; do
	[ "$(cat $p/comm)" = vmsan-agent ] && a=$p; done
	while :; do
		set -- $(cat /proc/uptime)
		printf "%s %s %s %s %s %s\n" $1 $(awk "/^VmRSS/ {r=\$2} /^VmHWM/ {h=\$2} /^Threads/ {t=\$2}
			END {print r, h, t}" $a/status) $(ls $a/fd | wc -l) $(awk "/^MemAvailable/ {print \$2}" /proc/meminfo)
		sleep 0.5
	done >/run/samples' >/dev/null
up() { vmsan exec "$id" -- cut -d' ' -f1 /proc/uptime; }
sleep 40 # the warm-up's spare threads end (30 s), then 5 s of idle samples
t_load=$(up)

mkdir -p "$work/out" "$work/files"
i=0
while [ "$i" -lt "$uploads" ]; do
	head -c 1048576 /dev/urandom >"$work/files/f$i"
	i=$((i + 1))
done
(cd "$work/files" && sha256sum f*) | sort >"$work/sums.host"

# load R: the execs and uploads at once, checked; "R t_load t_end ok uok s
# alive" appended to $work/rounds.  Then the uploads are removed (their
# page cache with them) and the agent left idle 45 s.
load() {
	t_load=$(up)
	s=$(date +%s%N)
	i=0
	while [ "$i" -lt "$execs" ]; do
		(
			rc=0
			vmsan exec "$id" -- sh -c "sleep 1; echo out-$i; exit $((i % 50))" >"$work/out/$i" 2>&1 || rc=$?
			echo "$rc" >"$work/out/$i.rc"
		) &
		i=$((i + 1))
	done
	i=0
	while [ "$i" -lt "$uploads" ]; do
		vmsan upload "$id" "$work/files/f$i" --dest /root/up >"$work/out/u$i" 2>&1 &
		i=$((i + 1))
	done
	wait
	e=$(date +%s%N)
	t_end=$(up)
	ok=0
	i=0
	while [ "$i" -lt "$execs" ]; do
		if [ "$(cat "$work/out/$i")" = "out-$i" ] && [ "$(cat "$work/out/$i.rc")" = $((i % 50)) ]; then
			ok=$((ok + 1))
		fi
		i=$((i + 1))
	done
	vmsan exec "$id" -- sh -c 'cd /root/up && sha256sum f*' | sort >"$work/sums.guest"
	uok=$(comm -12 "$work/sums.host" "$work/sums.guest" | wc -l)
	alive=$(vmsan exec "$id" -- echo alive)
	vmsan exec "$id" -- rm -rf /root/up
	echo "$1 $t_load $t_end $ok $uok $(echo "($e - $s) / 1000000000" | bc -l | xargs printf '%.1f') $alive" >>"$work/rounds"
	rm -f "$work"/out/*
	sleep 45
}
# the guest's memory by kind, and its sockets in TIME_WAIT
meminfo() {
	# shellcheck disable=SC2016 # expanded in the guest
	vmsan exec "$id" -- sh -c 'grep -E "^(MemFree|MemAvailable|Cached|Slab|SReclaimable|SUnreclaim|KernelStack|PageTables):" /proc/meminfo;
		echo "TIME_WAIT: $(awk "\$4 == \"06\"" /proc/net/tcp | wc -l)"' | awk '{ print $1, $2 }'
}
meminfo >"$work/mem.idle"
rounds=${BENCH_ROUNDS:-3}
r=1
while [ "$r" -le "$rounds" ]; do
	load "$r"
	r=$((r + 1))
done
sleep 90
meminfo >"$work/mem.end"
t_rest=$(up)
vmsan exec "$id" -- cat /run/samples >"$work/samples"

# at T: the first sample at or after uptime T
at() { awk -v t="$1" '$1 >= t { print; exit }' "$work/samples"; }
col() { echo "$1" | cut -d' ' -f"$2"; }
row() { # label sample
	printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$(col "$2" 2)" "$(col "$2" 3)" "$(col "$2" 4)" "$(col "$2" 5)" \
		"$(col "$2" 6)"
}
read -r _ t1 _ <"$work/rounds"
cat <<EOF
## Load on one VM (issue 18)

- **Date:** $(date -u +%Y-%m-%d)
- **Machine:** $(. /etc/os-release && echo "$PRETTY_NAME"), $(nproc) vCPUs; guest 1 vCPU / 256 MiB, accel $(jq -r .accelUsed "$VMSAN_DIR/vms/$id.json" 2>/dev/null || echo '?').
- **Method:** \`bench/load.sh\` (root), $rounds rounds of: $execs \`vmsan exec\`s at once (each \`sleep 1; echo out-N; exit N%50\`) and $uploads \`vmsan upload\`s at once (1 MiB of random bytes each) to one VM, checked, the uploads removed, 45 s idle. The agent runs 64 commands at a time; the client waits for a slot past that. Figures from a sampler inside the guest (\`/proc/<agent>/status\`, \`/proc/meminfo\`, twice a second): a peak between two samples shows only in VmHWM.

| round | execs right | files right (SHA-256) | agent answers after | wall, s |
|---|---|---|---|---|
EOF
while read -r n _ _ ok uok secs alive; do
	echo "| $n | $ok of $execs | $uok of $uploads | $alive | $secs |"
done <"$work/rounds"
cat <<EOF

| agent (kB) / guest (kB) | VmRSS | VmHWM | threads | fds | MemAvailable |
|---|---|---|---|---|---|
EOF
row "idle, before round 1" "$(awk -v a="$t1" '$1 < a' "$work/samples" | tail -1)"
while read -r n t_load t_end _; do
	peak=$(awk -v a="$t_load" -v b="$t_end" '$1 >= a && $1 <= b && $2 > m { m = $2 } END { print m + 0 }' "$work/samples")
	thr=$(awk -v a="$t_load" -v b="$t_end" '$1 >= a && $1 <= b && $4 > m { m = $4 } END { print m + 0 }' "$work/samples")
	low=$(awk -v a="$t_load" -v b="$t_end" '$1 >= a && $1 <= b && (!m || $6 < m) { m = $6 } END { print m + 0 }' \
		"$work/samples")
	echo "| round $n, highest sampled under load | $peak | | $thr | | $low (lowest) |"
	for d in 1 10 40; do
		row "round $n, +$d s after" "$(at "$(echo "$t_end + $d" | bc -l)")"
	done
done <"$work/rounds"
row "round $rounds, +135 s after" "$(awk -v a="$t_rest" '$1 < a' "$work/samples" | tail -1)"
cat <<EOF

| the guest (kB) | idle, before round 1 | 135 s after round $rounds |
|---|---|---|
EOF
paste -d' ' "$work/mem.idle" "$work/mem.end" | awk '{ sub(/:$/, "", $1); print "| " $1 " | " $2 " | " $4 " |" }'
