# vmsan-agent as a process in a network namespace of the test's own, driven
# by vmsan-agentctl and by independent clients (curl, node's ws, nc).

AGENT=$TOP/agent/vmsan-agent
CTL=$TOP/libexec/vmsan-agentctl
# shellcheck disable=SC2034 # used by agent.bats
WSC=$TOP/tests/tools/ws-client.js
PORT=9119

# in_ns CMD...: run inside the agent's namespace.
in_ns() { nsenter --net="/run/netns/$AG_NS" "$@"; }

# agent_up [agent options]: start the agent with a fresh token; waits
# until /health answers.
agent_up() {
	AG_NS=vmsan-tag$$-${BATS_TEST_NUMBER:-0}
	ip netns add "$AG_NS"
	in_ns ip link set lo up
	TOKEN_FILE=$TEST_TMP/agent.token
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TOKEN_FILE"
	chmod 600 "$TOKEN_FILE"
	TOKEN=$(cat "$TOKEN_FILE")
	AG_LOG=$TEST_TMP/agent.log
	in_ns "$AGENT" --token-file "$TOKEN_FILE" --env-file "$TEST_TMP/no-env" "$@" \
		</dev/null >"$AG_LOG" 2>&1 3>&- &
	AG_PID=$!
	for _ in $(seq 100); do
		in_ns curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
		kill -0 "$AG_PID" 2>/dev/null || { cat "$AG_LOG" >&2; return 1; }
		sleep 0.05
	done
	echo "agent did not come up" >&2
	return 1
}

agent_down() {
	[ -n "${AG_NS:-}" ] || return 0
	[ -z "${AG_PID:-}" ] || kill "$AG_PID" 2>/dev/null || true
	ip netns pids "$AG_NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
	ip netns del "$AG_NS" 2>/dev/null || true
	AG_NS=
}

# ctl ARGS...: vmsan-agentctl against the test agent.
ctl() { in_ns "$CTL" --agent "127.0.0.1:$PORT" --token-file "$TOKEN_FILE" "$@"; }

# api METHOD PATH [curl args...]: curl with the bearer token; prints the body.
api() {
	local m=$1 p=$2
	shift 2
	in_ns curl -sS -X "$m" -H "Authorization: Bearer $TOKEN" "$@" "http://127.0.0.1:$PORT$p"
}

# The agent is alive and still answers an authenticated exec.
assert_agent_serving() {
	local out
	out=$(ctl exec -- echo still-serving) || { echo "agent stopped serving" >&2; return 1; }
	assert_eq "$out" still-serving
}

# raw_http BYTES-FILE: send a raw request, print the status line.
raw_http() {
	in_ns sh -c "nc -q 2 127.0.0.1 $PORT <'$1'" | head -1 | tr -d '\r'
}
