#!/bin/sh
# vmsan serve (issue 17) against the CLI, side by side in one run: E2B's
# SDK creating a sandbox and getting its first commands.run('true') back vs
# vmsan create + vmsan exec; commands.run('true')'s round trip through the
# daemon vs vmsan exec; ten sandboxes created at once both ways.
#
# Everything runs as root in a throwaway host namespace with no route out;
# sandboxes are deny-all.  Needs root, node, jq, a built tree, its kernel
# and tests/tools/node_modules (make check installs it).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/common
. "$top/bench/common"
runs=${BENCH_RUNS:-5}
rtts=${BENCH_RTTS:-50}
many=${BENCH_MANY:-10}
[ "$(id -u)" = 0 ] || { echo "bench/serve.sh: needs root" >&2; exit 1; }
work=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/vmsan-bench.XXXXXX")
H=vbench-srv$$
export VMSAN_DIR="$work/state" VMSAN_DNS=192.0.2.53
PORT=3000
URL=http://127.0.0.1:$PORT

ns() { nsenter --net="/run/netns/$H" "$@"; }
vm() { ns "$top/bin/vmsan" "$@"; }
sdk() {
	ns env E2B_API_URL=$URL E2B_SANDBOX_URL=$URL E2B_API_KEY="$key" node "$top/tests/tools/e2b-bench.mjs" "$@"
}
us() { echo "$(($(date +%s%N) / 1000))"; }
cleanup() {
	[ -z "${srv:-}" ] || kill "$srv" 2>/dev/null || true
	for f in "$VMSAN_DIR"/vms/vm-*.json; do
		[ -e "$f" ] || continue
		f=${f##*/}
		vm rm -f "${f%.json}" >/dev/null 2>&1 || true
	done
	ip netns del "$H" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir -m 700 "$VMSAN_DIR"
bench_host_ns "$H"
key=$("$top/bin/vmsan" serve --new-key)
# not through ns(): $! must be the daemon itself (nsenter and bin/vmsan
# exec it), or the cleanup's kill leaves it running, holding whatever lock
# this script was run under
nsenter --net="/run/netns/$H" "$top/bin/vmsan" serve --port $PORT 2>"$work/serve.log" &
srv=$!
vm images pull --runtime base >/dev/null
sleep 0.5
echo "bench/serve.sh: create to the first result, $runs rounds" >&2

# Alternating rounds; each sandbox removed after, a second's pause before
# the next (the kernel destroys the namespace meanwhile).
: >"$work/first-cli"
: >"$work/create-own"
: >"$work/first-sdk"
i=0
while [ "$i" -lt "$runs" ]; do
	t0=$(us)
	out=$(vm create --json --network-policy deny-all)
	t1=$(us)
	id=$(jq -r .vm.id <<EOF3
$out
EOF3
)
	jq .timing.totalMs <<EOF3 >>"$work/create-own"
$out
EOF3
	vm exec "$id" -- true
	t2=$(us)
	vm rm -f "$id" >/dev/null
	echo "{\"create\":$(((t1 - t0) / 1000)),\"firstRun\":$(((t2 - t1) / 1000)),\"total\":$(((t2 - t0) / 1000))}" \
		>>"$work/first-cli"
	sleep 1
	sdk first >>"$work/first-sdk"
	sleep 1
	i=$((i + 1))
done

echo "bench/serve.sh: round trips, $rtts each" >&2
id=$(ns curl -s -H "X-API-KEY: $key" -d '{"templateID":"base","timeout":3600,"allow_internet_access":false}' \
	"$URL/v2/sandboxes" | jq -r .sandboxID)
: >"$work/rtt-cli"
j=0
while [ "$j" -lt "$rtts" ]; do
	t0=$(us)
	vm exec "$id" -- true
	echo "$(($(us) - t0))" >>"$work/rtt-cli"
	j=$((j + 1))
done
sdk rtt "$id" "$rtts" | jq '.[] * 1000 | floor' >"$work/rtt-sdk"
# the same, the SDK's envd traffic straight to the guest's agent: what the
# daemon's proxy costs
agent=http://$(jq -r '.agent.addr + ":" + (.agent.port | tostring)' "$VMSAN_DIR/vms/$id.json")
ns env E2B_API_URL=$URL E2B_SANDBOX_URL="$agent" E2B_API_KEY="$key" node "$top/tests/tools/e2b-bench.mjs" \
	rtt "$id" "$rtts" | jq '.[] * 1000 | floor' >"$work/rtt-direct"
vm rm -f "$id" >/dev/null
sleep 1

echo "bench/serve.sh: $many at once" >&2
t0=$(us)
k=0
pids=
while [ "$k" -lt "$many" ]; do
	vm create --json --network-policy deny-all >"$work/many-$k" &
	pids="$pids $!"
	k=$((k + 1))
done
# shellcheck disable=SC2086 # the pids, word by word (a bare wait would wait for the daemon too)
wait $pids
many_cli=$((($(us) - t0) / 1000))
for k in $(seq 0 $((many - 1))); do vm rm -f "$(jq -r .vm.id "$work/many-$k")" >/dev/null; done
sleep 2
many_sdk=$(sdk many "$many" | jq '.wall | floor')

med() { jq -s "map(.$2) | sort | .[length / 2 | floor]" "$work/first-$1"; }
# what the daemon itself spent on the SDK's creates (its request log), and
# vmsan create's own total (its --json timing): the rest is process starts
# (CLI) or the SDK's HTTP (SDK)
daemon_create=$(grep '"path":"/v2/sandboxes"' "$work/serve.log" | head -n $((2 * runs)) | jq -s 'map(.ms) | sort | .[length / 2 | floor] | floor')
create_own=$(jq -s 'sort | .[length / 2 | floor] | floor' "$work/create-own")
pct() { sort -n "$work/rtt-$1" | awk -v p="$2" '{a[NR] = $1} END {i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; printf "%.2f", a[i] / 1000}'; }
ratio() { echo "$1 $2" | awk '{printf "%.2f", $2 / $1}'; }
cat <<EOF2
## vmsan serve: E2B's SDK against the CLI (issue 17)

- **Date:** $(date -u +%Y-%m-%d)
- **Machine:** $(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -m), $(nproc) vCPUs, $(awk '/MemTotal/ {printf "%d GiB", $2/1048576}' /proc/meminfo); QEMU microvm under TCG, guests 1 vCPU / 256 MiB, deny-all.
- **Method:** \`bench/serve.sh\` at $(git -C "$top" rev-parse --short HEAD): vmsan serve and E2B's SDK (e2b $(jq -r .version "$top/tests/tools/node_modules/e2b/package.json"), node $(node --version)) in a throwaway namespace; the SDK timed inside node (its start-up not counted), the CLI with the shell's clock around each command (its start-up counted: that is the CLI path); $runs alternating rounds of create-to-first-result, $rtts round trips each, $many creates at once each way.

| create, then the first \`true\` (median of $runs, ms) | CLI: vmsan create + vmsan exec | SDK: Sandbox.create + commands.run | SDK/CLI |
|---|---|---|---|
| create | $(med cli create) | $(med sdk create | xargs printf %.0f) | $(ratio "$(med cli create)" "$(med sdk create)") |
| first \`true\` | $(med cli firstRun) | $(med sdk firstRun | xargs printf %.0f) | $(ratio "$(med cli firstRun)" "$(med sdk firstRun)") |
| total | $(med cli total) | $(med sdk total | xargs printf %.0f) | $(ratio "$(med cli total)" "$(med sdk total)") |
| create, the SDK's second in its process | | $(med sdk createWarm | xargs printf %.0f) | $(ratio "$(med cli create)" "$(med sdk createWarm)") |
| first \`true\`, the SDK's second | | $(med sdk firstRunWarm | xargs printf %.0f) | $(ratio "$(med cli firstRun)" "$(med sdk firstRunWarm)") |
| total, the SDK's second | | $(med sdk totalWarm | xargs printf %.0f) | $(ratio "$(med cli total)" "$(med sdk totalWarm)") |

| \`true\` round trip, ms | vmsan exec ID true | commands.run('true') through the daemon | SDK/CLI | commands.run('true') straight to the agent | daemon/direct |
|---|---|---|---|---|---|
| p50 | $(pct cli 50) | $(pct sdk 50) | $(ratio "$(pct cli 50)" "$(pct sdk 50)") | $(pct direct 50) | $(ratio "$(pct direct 50)" "$(pct sdk 50)") |
| p99 | $(pct cli 99) | $(pct sdk 99) | $(ratio "$(pct cli 99)" "$(pct sdk 99)") | $(pct direct 99) | $(ratio "$(pct direct 99)" "$(pct sdk 99)") |

Of a create: vmsan create's own total (its \`--json\` timing) $create_own ms, the
daemon's handling of the SDK's \`POST /v2/sandboxes\` (its request log,
the create run as a process included) $daemon_create ms; medians.

| $many sandboxes created at once | wall ms |
|---|---|
| CLI: $many \`vmsan create\` in parallel | $many_cli |
| SDK: $many \`Sandbox.create\` in one Promise.all | $many_sdk |
EOF2
