#!/usr/bin/env python3
"""Prints every Redis PING answer slower than a threshold: is Redis (or this machine) answering
late while something else runs? Usage: redis_ping_watch.py [seconds=60] [threshold_ms=30]
(REDIS_HOST / REDIS_PORT, default 127.0.0.1:6379). Used in BENCHMARKS.md, fifth session."""

import os
import socket
import sys
import time

duration = float(sys.argv[1]) if len(sys.argv) > 1 else 60
threshold_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 30
host, port = os.environ.get("REDIS_HOST", "127.0.0.1"), int(os.environ.get("REDIS_PORT", "6379"))

with socket.create_connection((host, port)) as redis:
    end = time.monotonic() + duration
    slowest = 0.0
    while time.monotonic() < end:
        sent = time.monotonic()
        redis.sendall(b"PING\r\n")
        redis.recv(64)
        took_ms = (time.monotonic() - sent) * 1000
        slowest = max(slowest, took_ms)
        if took_ms > threshold_ms:
            print(f"{time.strftime('%H:%M:%S')} PING answered in {took_ms:.0f} ms", flush=True)
        time.sleep(0.05)
    print(f"slowest PING: {slowest:.1f} ms")
