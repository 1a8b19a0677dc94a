#!/usr/bin/env python3
"""Times vmsan-net as its caller sees it, from inside a network namespace.

A helper's work is done when its one-line reply arrives; vmsan create reads
up to that line and reaps the process later.  After an nftables commit the
process's exit still waits for an RCU grace period (nf_tables flushes its
transaction-destroy work when a netfilter socket is released), so both
times are recorded: until the reply, and until the process is gone.

  helper-time.py NETNS HELPER RULESET_JSON pairs RUNS
      RUNS setup, apply-rules (a live policy change), teardown of one VM;
      prints medians (ms) as JSON; a "pair" is setup+teardown.
  helper-time.py NETNS HELPER RULESET_JSON scale COUNT
      COUNT setups in a row (kept), then COUNT teardowns; prints the
      setup reply times (ms) of each VM and the total teardown time.

The namespace is entered with setns(2) here, so no nsenter process is timed.
"""
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time

CLONE_NEWNET = 0x40000000


def enter(netns):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(netns, os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        sys.exit("setns %s: %s" % (netns, os.strerror(ctypes.get_errno())))
    os.close(fd)


def call(helper, req):
    """(reply ms, exit ms, reply) for one request."""
    t0 = time.perf_counter()
    p = subprocess.Popen([helper], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    p.stdin.write(json.dumps(req).encode())
    p.stdin.close()
    line = p.stdout.readline()
    t1 = time.perf_counter()
    p.wait()
    t2 = time.perf_counter()
    p.stdout.close()
    reply = json.loads(line)
    if not reply.get("ok"):
        sys.exit("%s: %s" % (req["op"], line.decode().strip()))
    return (t1 - t0) * 1e3, (t2 - t0) * 1e3, reply


def main():
    netns, helper, rsfile, mode, n = sys.argv[1:6]
    n = int(n)
    with open(rsfile) as f:
        ruleset = json.load(f)
    enter(netns)
    if mode == "pairs":
        keys = ("setupReply", "setupExit", "applyReply", "applyExit", "teardownReply", "teardownExit")
        t = {k: [] for k in keys}
        pair_reply, pair_exit = [], []
        for i in range(n):
            vid = "vm-bf%06x" % i
            sr, se, _ = call(helper, {"op": "setup", "id": vid, "ruleset": ruleset})
            # a live policy change: the whole ruleset replaced in one batch
            ar, ae, _ = call(helper, {"op": "apply-rules", "id": vid, "ruleset": ruleset})
            tr, te, _ = call(helper, {"op": "teardown", "id": vid})
            for k, v in zip(keys, (sr, se, ar, ae, tr, te)):
                t[k].append(v)
            pair_reply.append(sr + tr)
            pair_exit.append(se + te)
        out = {k: statistics.median(v) for k, v in t.items()}
        out["pairReply"] = statistics.median(pair_reply)
        out["pairExit"] = statistics.median(pair_exit)
        out["runs"] = n
        print(json.dumps(out))
    elif mode == "scale":
        setups = []
        for i in range(n):
            sr, _, _ = call(helper, {"op": "setup", "id": "vm-be%06x" % i, "ruleset": ruleset})
            setups.append(sr)
        t0 = time.perf_counter()
        for i in range(n):
            call(helper, {"op": "teardown", "id": "vm-be%06x" % i})
        print(json.dumps({"setupReplyMs": setups, "teardownAllS": time.perf_counter() - t0}))
    else:
        sys.exit("mode: pairs or scale")


if __name__ == "__main__":
    main()
