#!/usr/bin/env python3
"""CPU time of a command, not wall time (the machine is shared): runs it N
times, each time after removing OUTDIR (ffmpeg gets it created), and prints
the medians of user+sys, user, sys (getrusage of the child, microsecond
resolution; /usr/bin/time rounds to 10 ms) and wall, and the bytes left in
OUTDIR per CPU second.

    scripts/cpu-median.py N OUTDIR COMMAND [ARGS...]
"""
import os, resource, subprocess, sys, statistics, shutil, time
n = int(sys.argv[1]); out = sys.argv[2]; cmd = sys.argv[3:]
runs = []
for i in range(n):
    shutil.rmtree(out, ignore_errors=True)
    if 'ffmpeg' in cmd[0]: os.makedirs(out, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    u = after.ru_utime - before.ru_utime; s = after.ru_stime - before.ru_stime
    runs.append((u + s, u, s, wall))
out_bytes = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
cpu = statistics.median(r[0] for r in runs); user = statistics.median(r[1] for r in runs); sys_ = statistics.median(r[2] for r in runs); wall = statistics.median(r[3] for r in runs)
print(f"runs={n} output_bytes={out_bytes} median cpu={cpu*1000:.1f} ms (user {user*1000:.1f}, sys {sys_*1000:.1f}) wall={wall*1000:.0f} ms -> {out_bytes/cpu/1e6:.0f} MB/s per cpu-second, user-only {out_bytes/user/1e6:.0f} MB/s")
