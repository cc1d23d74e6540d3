#!/usr/bin/env python3
"""Fleet start: N gates started at once against the emulator enforcing RegisterUsage 5 requests/s.

Usage: bench/fleet.py GATE EMULATOR N [--out DIR] [--label NAME] [--rate R] [--neighbour GATE_B:M@S]
                      [--proxy tinyproxy]
Every gate is the `ecs-task` workload of the demo world (one AWS account, so one quota bucket) and runs
`exec -q -- /bin/true`. Reports: admitted count, total time against the ideal N/R s, the spread of
admission times, RegisterUsage requests sent (throttled and not) and their rate per second (from each
request's time at the emulator (when its answer was decided), one-second bins, the last one partial:
the peak and the mean against the quota), and the requests in the first second. Writes
DIR/fleet-N.json and, when matplotlib is importable, DIR/fleet-N.png (admissions, and RegisterUsage
requests per second, over time). NAME (default: none) goes into the file names and the title;
bench/fleet-compare.py overlays the JSON of several runs.

--rate R: the account's RegisterUsage quota is R requests/s instead of AWS's 5 (the emulator's
  `POST /_emulator/quotas` rates), e.g. to time a product alone on a share of the quota.
--neighbour GATE_B:M@S: M gates of GATE_B, a gate baked with a second product code of the same
  account (scripts/build-gates --fleet builds mpgate-test-neighbour), start S seconds after the first
  N; the JSON and the plot then give both products' admissions and request rates. The exit status
  is 0 only if every gate of both is admitted.
--proxy tinyproxy: starts Debian's tinyproxy on a free loopback port and runs every gate with
  HTTPS_PROXY pointing at it (the result gains "proxy": the server's version and the CONNECT requests
  its log shows).
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def option(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def start_proxy(kind, tmp, n):
    """tinyproxy on 127.0.0.1 with room for all N gates at once: (process, URL, log path, version)."""
    if kind != "tinyproxy":
        sys.exit(f"fleet.py: --proxy {kind}: only tinyproxy is supported")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log, conf = os.path.join(tmp, "tinyproxy.log"), os.path.join(tmp, "tinyproxy.conf")
    with open(conf, "w") as f:
        f.write(f"Port {port}\nListen 127.0.0.1\nTimeout 600\nMaxClients {n + 50}\n"
                f"LogFile \"{log}\"\nLogLevel Connect\nAllow 127.0.0.1\n")
    proc = subprocess.Popen(["tinyproxy", "-d", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"fleet.py: tinyproxy exited with {proc.returncode} (config {conf})")
            time.sleep(0.01)
    else:
        sys.exit("fleet.py: tinyproxy did not listen within 5 s")
    version = subprocess.run(["tinyproxy", "-v"], capture_output=True, text=True).stdout.strip()
    return proc, f"http://127.0.0.1:{port}", log, version


def main():
    gate, emulator, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    out_dir, label = option("--out", "."), option("--label", "")
    rate = float(option("--rate", "5"))
    neighbour = None
    if option("--neighbour"):
        path, _, spec = option("--neighbour").rpartition(":")
        count, _, at = spec.partition("@")
        neighbour = (path, int(count), float(at.rstrip("s")))
    groups = [("A", gate, n, 0.0)] + ([("B", *neighbour)] if neighbour else [])
    proxy_kind, proxy, proxy_proc = option("--proxy"), None, None
    with tempfile.TemporaryDirectory() as tmp:
        emu = subprocess.Popen([emulator, "--env-dir", tmp], stdout=subprocess.PIPE, text=True)
        try:
            url = emu.stdout.readline().split()[-1]
            post(url + "/_emulator/quotas", {"enabled": True, "rates": {"RegisterUsage": rate}})
            env = dict(line.rstrip("\n").split("=", 1) for line in open(os.path.join(tmp, "ecs-task.env")))
            env["PATH"] = "/usr/bin:/bin"
            if proxy_kind:
                gates = sum(count for _, _, count, _ in groups)
                proxy_proc, proxy_url, proxy_log, proxy_version = start_proxy(proxy_kind, tmp, gates)
                env["HTTPS_PROXY"] = proxy_url
            ledger, runs, wall_start, total = run(groups, env, url)
            if proxy_proc:
                connects = sum(1 for line in open(proxy_log) if "): CONNECT " in line)
                proxy = {"server": proxy_version, "connects": connects}
        finally:
            if proxy_proc:
                proxy_proc.terminate()
                proxy_proc.wait(timeout=10)
            emu.terminate()
            emu.wait(timeout=10)
    reg = [r for r in ledger if r["op"] == "RegisterUsage"]
    product_of = {}
    for r in reg:
        product_of[id(r)] = json.loads(r["body"]).get("ProductCode", "?")
    codes_seen = sorted(set(product_of.values()))
    # Requests per one-second bin since the start, by when the emulator decided each answer.
    second = lambda r: int(r["at_unix_ms"] / 1000 - wall_start)
    bins = lambda rs: {s: sum(1 for r in rs if second(r) == s) for s in range(0, max(map(second, reg), default=-1) + 1)}
    per_second = bins(reg)
    result = summary(runs[0], [r for r in reg if len(groups) == 1 or product_of[id(r)] == runs[0]["code"]], rate)
    result.update({"first_second_requests": per_second.get(0, 0), "quota_per_s": rate,
                   "request_rate_per_s": {"peak": max(per_second.values(), default=0),
                                          "mean": round(len(reg) / max(total, 1e-9), 1)}})
    if label:
        result["label"] = label
    data = {"result": result, "admission_times_s": runs[0]["times"],
            "requests_per_second_bin": sorted(per_second.items())}
    if neighbour:
        b = runs[1]
        b_reg = [r for r in reg if product_of[id(r)] == b["code"]]
        result["neighbour"] = summary(b, b_reg, rate)
        result["neighbour"]["started_s"] = b["at"]
        result["neighbour"]["last_admission_after_start_s"] = round(max(b["times"], default=b["at"]) - b["at"], 2)
        data["neighbour_admission_times_s"] = b["times"]
        data["neighbour_requests_per_second_bin"] = sorted(bins(b_reg).items())
        data["products"] = codes_seen
    if proxy:
        result["proxy"] = proxy
    print(json.dumps(result))
    name = f"fleet-{n}" + (f"-{label}" if label else "")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(data, f)
    plot(data, os.path.join(out_dir, f"{name}.png"))
    sys.exit(0 if all(r["admitted"] == r["n"] for r in runs) else 1)


def run(groups, env, url):
    """Starts every group's gates at its time; returns (ledger, per-group runs, wall start, total s)."""
    start, wall_start = time.monotonic(), time.time()
    runs, procs = [], []
    for name, path, count, at in groups:
        runs.append({"name": name, "path": path, "n": count, "at": at, "procs": [], "done": [None] * count,
                     "codes": [None] * count, "code": product_code(path) if len(groups) > 1 else None})
    deadline = start + 600
    while time.monotonic() < deadline:
        now = time.monotonic() - start
        for g in runs:
            if not g["procs"] and now >= g["at"]:
                g["at"] = round(now, 3)
                g["procs"] = [subprocess.Popen([g["path"], "exec", "-q", "--", "/bin/true"], env=env,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                              for _ in range(g["n"])]
                procs += g["procs"]
        for g in runs:
            for i, p in enumerate(g["procs"]):
                if g["codes"][i] is None and p.poll() is not None:
                    g["codes"][i], g["done"][i] = p.returncode, time.monotonic() - start
        if all(g["procs"] and None not in g["codes"] for g in runs):
            break
        time.sleep(0.005)
    total = time.monotonic() - start
    for p in procs:
        if p.poll() is None:
            p.kill()
    ledger = json.load(urllib.request.urlopen(url + "/_emulator/requests"))
    for g in runs:
        g["admitted"] = sum(1 for c in g["codes"] if c == 0)
        g["times"] = sorted(t for t, c in zip(g["done"], g["codes"]) if c == 0)
        # To the last exit; to the end of the run if a gate never exited.
        g["total"] = total if None in g["done"] else max(g["done"], default=total)
    return ledger, runs, wall_start, total


def summary(g, reg, rate):
    times, n = [round(t - g["at"], 3) for t in g["times"]], g["n"]
    ideal = n / rate
    pct = lambda q: times[min(len(times) - 1, int(q * len(times)))] if times else float("nan")
    throttled = sum(1 for r in reg if r.get("error_code") == "ThrottlingException")
    return {
        "n": n, "admitted": g["admitted"], "exit_codes": sorted(set(c for c in g["codes"] if c is not None)),
        "total_s": round(g["total"] - g["at"], 2), "ideal_s": ideal, "ratio_to_ideal": round((g["total"] - g["at"]) / ideal, 3),
        "admission_s": {"p50": round(pct(0.5), 2), "p90": round(pct(0.9), 2), "max": round(pct(1.0), 2)},
        "register_usage_requests": len(reg), "throttled": throttled,
        "requests_per_admission": round(len(reg) / max(g["admitted"], 1), 2),
    }


def product_code(gate):
    """The default product code baked into GATE (`GATE version` marks it "(default)")."""
    out = subprocess.run([gate, "version"], capture_output=True, text=True).stdout
    return next((line.split()[0] for line in out.splitlines() if line.rstrip().endswith("(default)")), "?")


def plot(data, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    r = data["result"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    times = data["admission_times_s"]
    top.step(times, range(1, len(times) + 1), where="post", label=f"product A ({r['n']} gates)")
    top.plot([0, r["ideal_s"]], [0, r["n"]], "--", color="gray", label=f"ideal ({r['quota_per_s']:g}/s)")
    rate = data["requests_per_second_bin"]
    # Empty seconds drawn at 0.5 so the log axis keeps them.
    bottom.step([t for t, _ in rate], [max(v, 0.5) for _, v in rate], where="post", label="all RegisterUsage")
    nb = r.get("neighbour")
    if nb:
        bt = data["neighbour_admission_times_s"]
        top.step(bt, range(1, len(bt) + 1), where="post", label=f"product B ({nb['n']} gates from {nb['started_s']:.0f} s)")
        brate = data["neighbour_requests_per_second_bin"]
        bottom.step([t for t, _ in brate], [max(v, 0.5) for _, v in brate], where="post", label="product B's")
    top.set_ylabel("gates admitted"); top.legend(fontsize=8)
    top.set_title(f"{r['n']} gates, RegisterUsage quota {r['quota_per_s']:g}/s" + (f" ({r['label']})" if r.get("label") else ""))
    bottom.axhline(r["quota_per_s"], linestyle="--", color="gray", label="quota")
    bottom.set_yscale("log"); bottom.set_ylabel("RegisterUsage requests/s"); bottom.legend(fontsize=8)
    bottom.set_xlabel("seconds since start")
    fig.tight_layout(); fig.savefig(path, dpi=100)


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    urllib.request.urlopen(req).read()


if __name__ == "__main__":
    main()
