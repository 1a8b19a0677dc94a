#!/bin/sh
# Cost of the front door: vmsan --version, list --json with 0, 100 and 1000
# VMs, doctor --json; beside `node -e 0`, the floor of any CLI that starts a
# JavaScript runtime (as the original vmsan does) before doing anything.
# Prints a Markdown table.  Needs hyperfine.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
vmsan=$top/bin/vmsan
state=$top/libexec/vmsan-state
runs=${BENCH_RUNS:-30}
work=$(mktemp -d)
sleeper=
cleanup() {
	[ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
command -v hyperfine >/dev/null || { echo "bench: hyperfine is needed (apt-get install hyperfine)" >&2; exit 1; }

# make_vms DIR N: N realistic records, half of them "running" with a live pid.
sleep 3600 &
sleeper=$!
make_vms() {
	mkdir -p "$1"
	i=0
	while [ "$i" -lt "$2" ]; do
		if [ $((i % 2)) = 0 ]; then st=running; pid=$sleeper; else st=stopped; pid=null; fi
		printf '{"op":"put","record":{"id":"vm-%08x","schemaVersion":1,"status":"%s","pid":%s,
		  "createdAt":"2026-11-%02dT10:00:00Z","vcpuCount":1,"memSizeMib":256,"runtime":"base",
		  "diskSizeGb":10,"timeoutAt":null,"snapshot":null,"agentPort":9119,
		  "network":{"netnsName":"vmsan-vm-%08x","tapDevice":"vmstap0","guestIp":"172.16.0.2",
		  "hostIp":"198.18.%d.%d","networkPolicy":"custom","allowedCidrs":["10.0.0.0/8"],
		  "deniedCidrs":[],"allowedDomains":["example.com"],"publishedPorts":[8080]}}}\n' \
			"$i" "$st" "$pid" $((i % 28 + 1)) "$i" $((i / 256)) $((i % 256)) |
			VMSAN_DIR=$1 "$state" >/dev/null
		i=$((i + 1))
	done
}
for n in 0 100 1000; do make_vms "$work/s$n" "$n"; done

hf() {
	hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/r.json" "$@" >/dev/null 2>&1 ||
		hyperfine --warmup 3 --runs "$runs" --export-json "$work/r.json" "$@" >/dev/null
	jq -r '.results[] | "| `\(.command | sub(".*/bin/"; "") | sub("VMSAN_DIR=[^ ]* "; ""))` | \(.mean * 1000 | . * 10 | round / 10) | \(.stddev * 1000 | . * 10 | round / 10) | \(.min * 1000 | . * 10 | round / 10) |"' "$work/r.json"
}

echo "| command | mean ms | ± ms | min ms |"
echo "|---|---|---|---|"
if command -v node >/dev/null; then hf "node -e 0"; fi
hf "$vmsan --version"
for n in 0 100 1000; do
	printf '| *%s VMs* | | | |\n' "$n"
	hf "env VMSAN_DIR=$work/s$n $vmsan list --json"
done
hf "env VMSAN_DIR=$work/s1000 $vmsan list"
hf "env VMSAN_DIR=$work/s1000 $state list"
BENCH_RUNS=5 hf -i "env VMSAN_DIR=$work/s0 $vmsan doctor --json"
