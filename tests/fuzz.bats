#!/usr/bin/env bats
# The libFuzzer targets (make fuzz runs them for longer): every parser that
# reads bytes from the other side survives a short run from scratch, under
# AddressSanitizer and UBSan.  A crash or a broken promise (abort) fails.

load test_helper

# fuzz_run TARGET [RUNS]: from scratch, or from tests/fuzz/seeds/TARGET
# when there is one (a checksummed tar header is not found by chance, nor
# a valid request behind jansson, which is not instrumented), with
# tests/fuzz/TARGET.dict when there is one.
fuzz_run() {
	local f=$TOP/tests/fuzz/fuzz-$1 runs=${2:-200000} seeds=$TOP/tests/fuzz/seeds/$1
	[ -x "$f" ] || require_cmd clang
	local dict=()
	[ ! -f "$TOP/tests/fuzz/$1.dict" ] || dict=(-dict="$TOP/tests/fuzz/$1.dict")
	[ -d "$seeds" ] || seeds=
	run "$f" -runs="$runs" -max_len=4096 -seed=1 "${dict[@]}" "$TEST_TMP" ${seeds:+"$seeds"}
	[ "$status" -eq 0 ] || { echo "$output" | tail -30; return 1; }
	assert_contains "$output" "Done $runs runs"
}

@test "fuzz: HTTP head parser and chunked decoder" { fuzz_run http; }
@test "fuzz: WebSocket frame parser and UTF-8 validator" { fuzz_run ws; }
@test "fuzz: tar reader (ustar, pax, GNU long names)" { fuzz_run tar; }
# Each run extracts into a fresh directory and checks a sentinel beside it
# (about 1000 runs a second): fewer runs.
@test "fuzz: a download's extraction (libarchive and untar.c): nothing outside, nothing left behind" { fuzz_run untar 10000; }
@test "fuzz: DNS queries and responses, TLS ClientHello server_name, HTTP Host (vmsan-dns)" { fuzz_run dns; }
@test "fuzz: the root helpers' request readers (vmsan-fc start/plan, vmsan-net ruleset check, policy compiler)" { fuzz_run request; }
@test "fuzz: Connect envelopes, Content-Types and proto3 JSON's base64 (the agent's envd side)" { fuzz_run connect; }
@test "fuzz: multipart/form-data and header parameters, fed in pieces (envd's POST /files)" { fuzz_run multipart; }
