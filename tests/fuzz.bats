#!/usr/bin/env bats
# The libFuzzer targets (make fuzz runs them for longer): every parser that
# reads bytes from the other side survives a short run from scratch, under
# AddressSanitizer and UBSan.  A crash or a broken promise (abort) fails.

load test_helper

fuzz_run() {
	local f=$TOP/tests/fuzz/fuzz-$1
	[ -x "$f" ] || require_cmd clang
	local dict=()
	[ ! -f "$TOP/tests/fuzz/$1.dict" ] || dict=(-dict="$TOP/tests/fuzz/$1.dict")
	# valid inputs to start from, where the parser in front (jansson, not
	# instrumented) would keep the fuzzer from finding one
	[ ! -d "$TOP/tests/fuzz/seeds/$1" ] || cp "$TOP/tests/fuzz/seeds/$1"/* "$TEST_TMP/"
	run "$f" -runs=200000 -max_len=4096 -seed=1 "${dict[@]}" "$TEST_TMP"
	[ "$status" -eq 0 ] || { echo "$output" | tail -30; return 1; }
	assert_contains "$output" "Done 200000 runs"
}

@test "fuzz: HTTP head parser and chunked decoder" { fuzz_run http; }
@test "fuzz: WebSocket frame parser and UTF-8 validator" { fuzz_run ws; }
@test "fuzz: tar reader (ustar, pax, GNU long names)" { fuzz_run tar; }
@test "fuzz: DNS queries and responses, TLS ClientHello server_name, HTTP Host (vmsan-dns)" { fuzz_run dns; }
@test "fuzz: the root helpers' request readers (vmsan-fc start/plan, vmsan-net ruleset check, policy compiler)" { fuzz_run request; }
