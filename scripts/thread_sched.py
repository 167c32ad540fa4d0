#!/usr/bin/env python3
"""Per-thread CPU and context switches of a running process (Linux): does each thread run out
of work and sleep (voluntary switches), or is it taken off the core (involuntary)?

Usage: thread_sched.py PID [seconds=4] [--slice-us N]
Prints, for every thread that used CPU in the interval, its share of one core and its
voluntary and involuntary context switches per second. With --slice-us, first sets the
scheduler slice (sched_setattr's sched_runtime, Linux 6.12+ EEVDF; 0 = the default) of the
process's HTTP workers ("actix-server wo…" threads). Used in BENCHMARKS.md, sixth session.
"""

import ctypes
import os
import struct
import sys
import time

SYS_SCHED_SETATTR = 314  # x86_64
SYS_SCHED_GETATTR = 315
# struct sched_attr: size, policy, flags, nice, priority, runtime, deadline, period,
# util_min, util_max.
SCHED_ATTR = "IIQiIQQQII"
WORKER_PREFIX = "actix-server wo"


def threads(pid):
    """{tid: (name, cpu ticks, voluntary switches, involuntary switches)}"""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
            status = open(f"/proc/{pid}/task/{tid}/status").read().splitlines()
        except OSError:
            continue  # the thread ended
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        switches = {line.split(":")[0]: int(line.split()[1]) for line in status
                    if line.startswith(("voluntary_ctxt", "nonvoluntary_ctxt"))}
        found[tid] = (name, int(fields[11]) + int(fields[12]),
                      switches["voluntary_ctxt_switches"], switches["nonvoluntary_ctxt_switches"])
    return found


def set_worker_slices(pid, slice_us):
    libc = ctypes.CDLL(None, use_errno=True)
    for tid, (name, *_rest) in threads(pid).items():
        if not name.startswith(WORKER_PREFIX):
            continue
        attr = ctypes.create_string_buffer(struct.pack(SCHED_ATTR, struct.calcsize(SCHED_ATTR),
                                                       0, 0, 0, 0, slice_us * 1000, 0, 0, 0, 0))
        if libc.syscall(SYS_SCHED_SETATTR, int(tid), attr, 0) != 0:
            sys.exit(f"sched_setattr({tid}) failed: errno {ctypes.get_errno()}")
        now = ctypes.create_string_buffer(struct.calcsize(SCHED_ATTR))
        libc.syscall(SYS_SCHED_GETATTR, int(tid), now, len(now), 0)
        runtime_ns = struct.unpack(SCHED_ATTR, now.raw)[5]
        print(f"thread {tid} ({name}): slice now {runtime_ns / 1000:.0f} us")


def main():
    args = sys.argv[1:]
    slice_us = None
    if "--slice-us" in args:
        at = args.index("--slice-us")
        slice_us = int(args[at + 1])
        del args[at:at + 2]
    if not args:
        sys.exit(__doc__)
    pid, seconds = int(args[0]), float(args[1]) if len(args) > 1 else 4.0
    if slice_us is not None:
        set_worker_slices(pid, slice_us)
    tick = os.sysconf("SC_CLK_TCK")
    before = threads(pid)
    time.sleep(seconds)
    after = threads(pid)
    for tid, (name, cpu, voluntary, involuntary) in sorted(after.items()):
        if tid not in before or cpu == before[tid][1]:
            continue
        _, cpu0, voluntary0, involuntary0 = before[tid]
        print(f"{tid:>8} {name:16} cpu {100 * (cpu - cpu0) / tick / seconds:4.0f} %"
              f"  voluntary {(voluntary - voluntary0) / seconds:7.0f}/s"
              f"  involuntary {(involuntary - involuntary0) / seconds:7.0f}/s")


if __name__ == "__main__":
    main()
