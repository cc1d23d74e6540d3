#!/usr/bin/env python3
"""A/B runs of the gate, interleaved so that machine load drifts over all variants alike.

Usage: bench/interleave.py RUNS GATE LABEL ENVFILE [EXTRA=VALUE ...] [-- LABEL ENVFILE [EXTRA=VALUE ...] ...]
Each round runs `GATE exec -q -- /bin/true` once per variant (order reversed every other round), with
exactly the environment of ENVFILE (one VAR=value a line, as the emulator's --env-dir writes) plus the
EXTRA assignments. Three warm-up rounds are not counted. Prints, per variant, the median and mean wall
time (fork to wait4), how many runs took over 30 ms, and the median CPU time (user + system, wait4).
Every run must exit 0.
Example (emulator started as bench/run does):
  bench/interleave.py 150 $CARGO_TARGET_DIR/dist/mpgate-test http DIR/ecs-task.env \
      -- https DIR/ecs-task.env AWS_ENDPOINT_URL=https://127.0.0.1:PORT
"""
import os
import statistics
import sys
import time


def variants(args):
    out, cur = [], []
    for a in args + ["--"]:
        if a == "--":
            if cur:
                label, envfile, *extra = cur
                env = dict(line.rstrip("\n").split("=", 1) for line in open(envfile) if "=" in line)
                env.update(x.split("=", 1) for x in extra)
                env.update(PATH="/usr/bin:/bin", AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
                out.append((label, env))
            cur = []
        else:
            cur.append(a)
    return out


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    runs, gate, cases = int(sys.argv[1]), sys.argv[2], variants(sys.argv[3:])
    wall = {label: [] for label, _ in cases}
    cpu = {label: [] for label, _ in cases}
    devnull = os.open("/dev/null", os.O_WRONLY)
    for i in range(runs + 3):
        for label, env in cases if i % 2 == 0 else cases[::-1]:
            start = time.perf_counter()
            pid = os.fork()
            if pid == 0:
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                os.execve(gate, [gate, "exec", "-q", "--", "/bin/true"], env)
            _, status, usage = os.wait4(pid, 0)
            elapsed = time.perf_counter() - start
            if os.waitstatus_to_exitcode(status) != 0:
                sys.exit(f"interleave: {label}: the gate exited {os.waitstatus_to_exitcode(status)}")
            if i >= 3:
                wall[label].append(elapsed)
                cpu[label].append(usage.ru_utime + usage.ru_stime)
    print(f"load average at the end: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    for label, _ in cases:
        w, c = wall[label], cpu[label]
        print(f"  {label:18s} wall median {statistics.median(w) * 1000:6.2f} ms  mean {statistics.mean(w) * 1000:6.2f} ms"
              f"  runs > 30 ms {sum(x > 0.03 for x in w):3d}/{runs}  CPU median {statistics.median(c) * 1000:.2f} ms")


main()
