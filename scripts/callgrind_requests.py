#!/usr/bin/env python3
"""Instructions the server executes per request, by case: repeatable where timings are not.

Seeds a throwaway database as `make bench-load` does, starts the release server under
`valgrind --tool=callgrind` with one HTTP worker, sends a warm-up, zeroes the counters, sends
N requests with oha (4 connections), dumps the counters and prints the server's instructions
per request from the request dispatcher down (the runtime's idle loop and background tasks
are left out). The callgrind files are kept for `callgrind_annotate --inclusive=yes <file>`.

Usage: callgrind_requests.py [case ...]   cases: live (the `/live` ceiling as the cases send
it), l1 (an L1 hit), analysis (a cached analysis); default: live l1.
Environment: CALLGRIND_REQUESTS (default 5000), BENCH_BINARY (default target/release, built
by `cargo build --release` beforehand), plus bench_load.py's DATABASE_ADMIN_URL and REDIS_URL.
Valgrind counts `rep movsb`/`rep stosb` (large memcpy/memset) per byte: compare those
functions between cases, not with the rest.
"""

import os
import subprocess
import sys
import tempfile
import time

import bench_load as bench

PORT = bench.free_port()
REQUESTS = int(os.environ.get("CALLGRIND_REQUESTS", "5000"))
# The dispatcher's future: one request read, served and written, whatever the worker's loop.
DISPATCH_SYMBOL = "HttpServiceHandlerResponse"


def targets():
    return {
        "live": bench.url_regex("/live[?]n=([1-9]|[1-9][0-9]|100)", PORT),
        "l1": bench.hot_ids_regex(PORT),
        "analysis": bench.url_regex("/api/workflows/wf-([1-9]|[1-9][0-9])/analysis", PORT),
    }


# The server's bind address. Valgrind also names its control pipes after $HOST, so
# callgrind_control must be run with the same value to find them.
HOST = "127.0.0.1"


def serve_under_callgrind(db_url, out_file):
    env = bench.server_env(db_url, port=PORT, HOST=HOST, WORKERS="1",
                           CACHE_PREFIX=f"gwdcallgrind{os.getpid()}")
    server = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
                               str(bench.BINARY), "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bench.wait_until_ready(PORT, seconds=60)
    # Under valgrind the cache's startup probe may miss Redis; give it time to reconnect.
    time.sleep(8)
    return server


def load(target, requests):
    cmd = [bench.OHA, "--no-tui", "-c", "4", "-n", str(requests), *bench.auth(),
           "--rand-regex-url", target]
    subprocess.run(cmd, capture_output=True, check=True)


def dispatched_instructions(out_file):
    listing = subprocess.run(["callgrind_annotate", "--inclusive=yes", out_file],
                             capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        if DISPATCH_SYMBOL in line:
            return int(line.split()[0].replace(",", ""))
    raise RuntimeError(f"{DISPATCH_SYMBOL} not in {out_file}")


def callgrind_control(option, pid):
    done = subprocess.run(["callgrind_control", option, str(pid)], capture_output=True, text=True,
                          env=dict(os.environ, HOST=HOST))
    # It exits 0 even when it could not reach the process.
    if done.returncode != 0 or "error" in (done.stdout + done.stderr).lower():
        raise RuntimeError(f"callgrind_control {option} failed: {done.stdout}{done.stderr}")


def measure(case, db_url, out_dir):
    out_file = os.path.join(out_dir, f"callgrind.{case}.out")
    server = serve_under_callgrind(db_url, out_file)
    try:
        load(targets()[case], 2000)  # fills L1 and every lazy structure
        callgrind_control("--zero", server.pid)
        load(targets()[case], REQUESTS)
        callgrind_control("--dump", server.pid)
    finally:
        server.terminate()
        server.wait()
    dump = out_file + ".1"  # the requested dump; the exit's own goes to out_file
    return dispatched_instructions(dump) / REQUESTS, dump


def main():
    cases = sys.argv[1:] or ["live", "l1"]
    unknown = [case for case in cases if case not in targets()]
    if unknown:
        sys.exit(f"unknown case(s) {unknown}; known: {sorted(targets())}")
    bench.OHA = bench.ensure_oha()
    bench.run([str(bench.ROOT / "scripts" / "ensure-services.sh")])
    db_url, _ = bench.seed()
    out_dir = tempfile.mkdtemp(prefix="gwd-callgrind-")
    try:
        for case in cases:
            per_request, out_file = measure(case, db_url, out_dir)
            print(f"{case:9} {per_request:9.0f} instructions per request   ({out_file})", flush=True)
    finally:
        bench.psql(bench.ADMIN_URL, f'drop database if exists "{bench.BENCH_DB}" with (force)')


if __name__ == "__main__":
    main()
