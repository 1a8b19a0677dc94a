#!/bin/sh
# Guest agent (issue 5), with vmsan-agent as a process in a throwaway
# network namespace and every client in the same namespace (loopback):
#  1. exec round trip of /bin/true (p50, p99 over RUNS): POST /exec on a new
#     TCP connection until the exit event, against fork+execve+wait of the
#     same binary here (both by tests/tools/exec-rtt); then whole commands: vmsan-agentctl exec, ssh to an sshd in the namespace,
#     and /bin/true itself, each in a shell loop;
#  2. upload and download of SIZE_MB of random data through the agent
#     (tar over HTTP, to/from files on the same disk) against raw TCP:
#     cat FILE | nc into nc -l > FILE;
#  3. the agent's binary size and idle RSS.
# Needs root, nc (openbsd), sshd, bc, jq.  Prints Markdown.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
agent=$top/agent/vmsan-agent
ctl=$top/libexec/vmsan-agentctl
rtt=$top/tests/tools/exec-rtt
runs=${BENCH_RUNS:-1000}
size_mb=${BENCH_SIZE_MB:-1024}
NS=vbench-agent$$
work=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/vmsan-bench.XXXXXX")
[ "$(id -u)" = 0 ] || { echo "bench/agent.sh: needs root" >&2; exit 1; }
in_ns() { nsenter --net="/run/netns/$NS" "$@"; }

cleanup() {
	ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

ip netns add "$NS"
in_ns ip link set lo up
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/token"
chmod 600 "$work/token"
token=$(cat "$work/token")
in_ns "$agent" --token-file "$work/token" --env-file /nonexistent --quiet </dev/null >/dev/null 2>&1 &
agent_pid=$!
for _ in $(seq 100); do in_ns curl -sf http://127.0.0.1:9119/health >/dev/null 2>&1 && break; sleep 0.05; done
sleep 1
rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$agent_pid/status")
size=$(stat -c %s "$agent")

# 1. exec round trip
spawn=$("$rtt" spawn "$runs" /bin/true)
viaagent=$(in_ns "$rtt" agent "$runs" 127.0.0.1 9119 "$token" /bin/true)
p50s=$(echo "$spawn" | jq .p50_us); p99s=$(echo "$spawn" | jq .p99_us)
p50a=$(echo "$viaagent" | jq .p50_us); p99a=$(echo "$viaagent" | jq .p99_us)

# sshd in the namespace, key-only, on 2222
mkdir -p "$work/ssh"
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/host" >/dev/null
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/user" >/dev/null
cp "$work/ssh/user.pub" "$work/ssh/authorized_keys"
chmod 600 "$work/ssh/authorized_keys"
mkdir -p /run/sshd
cat >"$work/ssh/sshd_config" <<CONF
Port 2222
ListenAddress 127.0.0.1
HostKey $work/ssh/host
AuthorizedKeysFile $work/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
StrictModes no
UsePAM no
PidFile $work/ssh/pid
MaxStartups 100
CONF
in_ns /usr/sbin/sshd -f "$work/ssh/sshd_config"
sshcmd="ssh -q -p 2222 -i $work/ssh/user -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes root@127.0.0.1 true"
in_ns sh -c "$sshcmd"   # one to check it works
hf=$work/hf.json
# Whole commands, each run R times in a row; mean in ms.
loop_ms() {
	r=$1
	shift
	s=$(date +%s%N)
	i=0
	while [ $i -lt "$r" ]; do in_ns "$@" >/dev/null 2>&1 || exit 1; i=$((i + 1)); done
	e=$(date +%s%N)
	echo "scale=2; ($e - $s) / 1000000 / $r" | bc
}
hr=${BENCH_HF_RUNS:-100}
t_true=$(loop_ms "$hr" /bin/true)
t_ctl=$(loop_ms "$hr" "$ctl" --agent 127.0.0.1:9119 --token-file "$work/token" exec -- /bin/true)
# shellcheck disable=SC2086 # the ssh command line is words
t_ssh=$(loop_ms "$hr" $sshcmd)

# 2. transfer
head -c $((size_mb * 1048576)) /dev/urandom >"$work/src"
sync
secs() { s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo "scale=3; ($e - $s) / 1000000000" | bc; }
rm -f "$work/nc-dst"
in_ns sh -c "nc -l 127.0.0.1 9300 >'$work/nc-dst'" &
sleep 0.3
t_nc_up=$(secs in_ns sh -c "cat '$work/src' | nc -N 127.0.0.1 9300")
wait
cmp -s "$work/src" "$work/nc-dst"
rm -f "$work/nc-dst"
t_up=$(secs in_ns "$ctl" --agent 127.0.0.1:9119 --token-file "$work/token" upload --dest "$work/up" "$work/src")
cmp -s "$work/src" "$work/up/src"
mkdir "$work/down"
t_down=$(secs in_ns "$ctl" --agent 127.0.0.1:9119 --token-file "$work/token" download --dest "$work/down/" "$work/up/src")
cmp -s "$work/src" "$work/down/src"
mbps() { echo "scale=0; $size_mb / $1" | bc; }
pct() { echo "scale=0; 100 * $2 / $1" | bc; }

cat <<MD
## Guest agent: exec, transfer, footprint (bench/agent.sh)

$(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r); agent and clients in one
network namespace over loopback (the agent as a process, no VM).

| exec of /bin/true | p50 | p99 |
|---|---|---|
| fork+execve+wait here (the spawn cost) | ${p50s} µs | ${p99s} µs |
| POST /exec to vmsan-agent, new TCP connection, until the exit event | ${p50a} µs | ${p99a} µs |
| **agent's addition** | **$(echo "$p50a - $p50s" | bc) µs** | $(echo "$p99a - $p99s" | bc) µs |

| whole command, run from a shell loop (mean; includes nsenter) | ms |
|---|---|
| /bin/true | $t_true |
| vmsan-agentctl exec -- /bin/true | $t_ctl |
| ssh (ed25519 key, sshd in the namespace) true | $t_ssh |

vmsan-agentctl is $(echo "scale=1; $t_ssh / $t_ctl" | bc)x faster than ssh for the same job.

| transfer of ${size_mb} MiB random data | s | MiB/s | of raw TCP |
|---|---|---|---|
| cat FILE \| nc (raw TCP) | $t_nc_up | $(mbps "$t_nc_up") | 100% |
| vmsan upload (tar over HTTP, chunked) | $t_up | $(mbps "$t_up") | $(pct "$t_up" "$t_nc_up")% |
| vmsan download (tar over HTTP, chunked) | $t_down | $(mbps "$t_down") | $(pct "$t_down" "$t_nc_up")% |

| footprint | |
|---|---|
| vmsan-agent static binary (musl, stripped) | $size bytes |
| idle RSS | $rss_kib KiB |

MD
