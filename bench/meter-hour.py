#!/usr/bin/env python3
"""MeterUsage at the top of the hour: M metered supervisors close the same hour against the emulator
enforcing MeterUsage 10 requests/s, once with --meter-spread 0 and once with a spread.

Usage: bench/meter-hour.py GATE EMULATOR [--pods M] [--spread S] [--lead L] [--out FILE.json]
GATE is the test-flavour custom-metering gate (target/dist/mpgate-test-metered: the pod's clock is
MPGATE_TEST_CLOCK_OFFSET), EMULATOR the emulator binary. Defaults: 100 pods; S = the default spread
scaled to M pods (600 s for 3,000 records, so M x 2 dimensions / 5 per second); L = 60 s from the
start to the pod's next hour boundary, time for every pod's start-up dry runs under the quota.

Each run starts one emulator with quotas on and its clock (and every pod's) L seconds before an hour
boundary, and M supervisors of the demo's `ecs-task` workload (one account, so one quota bucket), each
with its own spool; each workload records 1 `requests` and 1 `gb_processed` in the hour that is about
to close, all with the same timestamp, so every pod's records are identical requests the emulator
accepts as repeats of one record (its hour rounding) and only the quota throttles. Once the hour has
closed and every pod's two records were accepted (or the time is up), every supervisor gets SIGTERM.
From the emulator's request ledger (each request's real arrival time) it reports, for the real (not
dry-run) MeterUsage requests after the boundary: the peak and the 99th percentile of requests per
second (throttled ones included, one-second bins from the boundary to the last acceptance), the mean,
the throttled count, and when the last was accepted. JSON on stdout (and in FILE).
"""
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HOUR = 3600
DIMENSIONS = ["requests", "gb_processed"]


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req))


def one_run(gate, emulator, pods, spread, lead):
    with tempfile.TemporaryDirectory() as tmp:
        emu = subprocess.Popen([emulator, "--env-dir", os.path.join(tmp, "env")], stdout=subprocess.PIPE, text=True)
        procs = []
        try:
            url = emu.stdout.readline().split()[-1]
            post(url + "/_emulator/quotas", {"enabled": True})
            offset = (2 * HOUR - int(time.time()) % HOUR - lead) % HOUR
            post(url + "/_emulator/clock", {"advance_secs": offset})
            boundary = (int(time.time()) + offset) // HOUR * HOUR + HOUR
            stamp = boundary - 30
            base = dict(line.rstrip("\n").split("=", 1) for line in open(os.path.join(tmp, "env", "ecs-task.env")))
            base.update(PATH="/usr/bin:/bin", MPGATE_ALLOW_NOT_PID1="1", MPGATE_DEADLINE="180s",
                        MPGATE_TEST_CLOCK_OFFSET=str(offset), MPGATE_METER_SPREAD=f"{spread}s")
            lines = "".join(f"{stamp} {d} 1\\n" for d in DIMENSIONS)
            script = f'printf "{lines}" >> "$MPGATE_USAGE_FILE"; touch "$0"; exec sleep 100000'
            for i in range(pods):
                env = dict(base, MPGATE_SPOOL_DIR=os.path.join(tmp, f"spool{i}"))
                procs.append(subprocess.Popen([gate, "supervise", "-q", "--", "sh", "-c", script,
                                               os.path.join(tmp, f"ready{i}")], env=env, stdin=subprocess.DEVNULL,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wall_boundary = boundary - offset
            while sum(os.path.exists(os.path.join(tmp, f"ready{i}")) for i in range(pods)) < pods:
                if time.time() >= wall_boundary - 1:
                    sys.exit(f"meter-hour: not every pod had started 1 s before the boundary; raise --lead (now {lead})")
                time.sleep(0.1)
            limit = wall_boundary + spread + 180
            while time.time() < limit:
                real = [r for r in ledger(url) if r["at_unix_ms"] >= wall_boundary * 1000]
                if sum(1 for r in real if r["status"] == 200) >= pods * len(DIMENSIONS):
                    break
                time.sleep(0.5)
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
            requests = ledger(url)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            emu.terminate()
            emu.wait(timeout=10)
    return summary(requests, wall_boundary, pods, spread)


def ledger(url):
    every = json.load(urllib.request.urlopen(url + "/_emulator/requests"))
    return [r for r in every if r["op"] == "MeterUsage" and '"DryRun":true' not in r["body"]]


def summary(requests, wall_boundary, pods, spread):
    after = [(r["at_unix_ms"] / 1000 - wall_boundary, r) for r in requests if r["at_unix_ms"] >= wall_boundary * 1000]
    accepted = [t for t, r in after if r["status"] == 200]
    last = max(accepted, default=0.0)
    bins = [0] * (int(last) + 1)
    for t, _ in after:
        if int(t) < len(bins):
            bins[int(t)] += 1
    ordered = sorted(bins)
    return {
        "pods": pods,
        "records": pods * len(DIMENSIONS),
        "spread_s": spread,
        "requests": len(after),
        "accepted": len(accepted),
        "throttled": sum(1 for _, r in after if r.get("error_code") == "ThrottlingException"),
        "peak_per_s": max(bins),
        "p99_per_s": ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)],
        "mean_per_s": round(len(after) / (last + 1), 2),
        "first_accepted_s": round(min(accepted, default=0.0), 1),
        "last_accepted_s": round(last, 1),
        "before_boundary": sum(1 for r in requests if r["at_unix_ms"] < wall_boundary * 1000),
    }


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    gate, emulator = args[0], args[1]

    def opt(name, default):
        return type(default)(args[args.index(name) + 1]) if name in args else default

    pods = opt("--pods", 100)
    spread = opt("--spread", max(1, round(600 * pods * len(DIMENSIONS) / 3000)))
    lead = opt("--lead", 60)
    runs = [one_run(gate, emulator, pods, s, lead) for s in (0, spread)]
    out = json.dumps({"runs": runs}, indent=1)
    print(out)
    if "--out" in args:
        open(opt("--out", ""), "w").write(out + "\n")


if __name__ == "__main__":
    main()
