#!/usr/bin/env python3
"""Overlays fleet runs: bench/fleet-compare.py OUT.png RUN.json [RUN.json ...]

Each RUN.json is written by bench/fleet.py (use --label to name the run). Top: gates admitted over time;
bottom: RegisterUsage requests per second (log scale) against the quota. Also prints one line per run.
"""
import json
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main():
    out, runs = sys.argv[1], [json.load(open(p)) for p in sys.argv[2:]]
    sizes = {run["result"]["n"] for run in runs}
    if len(sizes) != 1:
        sys.exit(f"fleet-compare: the runs have different N ({sorted(sizes)}); compare runs of one size")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for run in runs:
        r = run["result"]
        name = f"{r.get('label', '?')}: {r['total_s']} s ({r['ratio_to_ideal']}x), {r['requests_per_admission']} req/admission"
        print(name)
        times = run["admission_times_s"]
        top.step(times, range(1, len(times) + 1), where="post", label=name)
        rate = run.get("requests_per_second_bin", [])
        # Empty seconds drawn at 0.5 so the log axis keeps them.
        bottom.step([t for t, _ in rate], [max(v, 0.5) for _, v in rate], where="post", label=r.get("label", "?"))
    n = runs[0]["result"]["n"]
    top.plot([0, n / 5], [0, n], "--", color="gray", label="ideal (5/s)")
    top.set_ylabel("gates admitted"); top.legend(fontsize=8)
    top.set_title(f"{n} gates started at once, RegisterUsage quota 5/s")
    bottom.axhline(5, linestyle="--", color="gray", label="quota 5/s")
    bottom.set_yscale("log"); bottom.set_ylabel("RegisterUsage requests/s"); bottom.set_xlabel("seconds since start")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    main()
