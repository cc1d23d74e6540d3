#!/usr/bin/env python3
"""Fleet start: N gates started at once against the emulator enforcing RegisterUsage 5 requests/s.

Usage: bench/fleet.py GATE EMULATOR N [--out DIR] [--label NAME] [--proxy tinyproxy]
Every gate is the `ecs-task` workload of the demo world (one AWS account, so one quota bucket) and runs
`exec -q -- /bin/true`. Reports: admitted count, total time against the ideal N/5 s, the spread of
admission times, RegisterUsage requests sent (throttled and not) and their rate per second (from each
request's time at the emulator (when its answer was decided), one-second bins, the last one partial:
the peak and the mean against the 5/s quota). Writes DIR/fleet-N.json and, when
matplotlib is importable, DIR/fleet-N.png (admissions, and RegisterUsage requests per second, over
time). NAME (default: none) goes into the file names and the title; bench/fleet-compare.py overlays
the JSON of several runs. --proxy tinyproxy starts Debian's tinyproxy on a free loopback port and
runs every gate with HTTPS_PROXY pointing at it (the result gains "proxy": the server's version and
the CONNECT requests its log shows).
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


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
    out_dir = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else "."
    label = sys.argv[sys.argv.index("--label") + 1] if "--label" in sys.argv else ""
    proxy_kind = sys.argv[sys.argv.index("--proxy") + 1] if "--proxy" in sys.argv else None
    proxy, proxy_proc = None, None
    with tempfile.TemporaryDirectory() as tmp:
        emu = subprocess.Popen([emulator, "--env-dir", tmp], stdout=subprocess.PIPE, text=True)
        try:
            url = emu.stdout.readline().split()[-1]
            post(url + "/_emulator/quotas", {"enabled": True})
            env = dict(line.rstrip("\n").split("=", 1) for line in open(os.path.join(tmp, "ecs-task.env")))
            env["PATH"] = "/usr/bin:/bin"
            if proxy_kind:
                proxy_proc, proxy_url, proxy_log, proxy_version = start_proxy(proxy_kind, tmp, n)
                env["HTTPS_PROXY"] = proxy_url
            start, wall_start = time.monotonic(), time.time()
            procs = [subprocess.Popen([gate, "exec", "-q", "--", "/bin/true"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(n)]
            done, codes = [None] * n, [None] * n
            deadline = start + 600
            while any(c is None for c in codes) and time.monotonic() < deadline:
                for i, p in enumerate(procs):
                    if codes[i] is None and p.poll() is not None:
                        codes[i], done[i] = p.returncode, time.monotonic() - start
                time.sleep(0.005)
            total = time.monotonic() - start
            for p in procs:
                if p.poll() is None:
                    p.kill()
            ledger = json.load(urllib.request.urlopen(url + "/_emulator/requests"))
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
    throttled = sum(1 for r in reg if r.get("error_code") == "ThrottlingException")
    # Requests per one-second bin since the start, by when the emulator decided each answer.
    per_second = {}
    for r in reg:
        second = int(r["at_unix_ms"] / 1000 - wall_start)
        per_second[second] = per_second.get(second, 0) + 1
    admitted = sum(1 for c in codes if c == 0)
    times = sorted(t for t, c in zip(done, codes) if c == 0)
    ideal = n / 5.0
    pct = lambda q: times[min(len(times) - 1, int(q * len(times)))] if times else float("nan")
    result = {
        "n": n, "admitted": admitted, "exit_codes": sorted(set(c for c in codes if c is not None)),
        "total_s": round(total, 2), "ideal_s": ideal, "ratio_to_ideal": round(total / ideal, 3),
        "admission_s": {"p50": round(pct(0.5), 2), "p90": round(pct(0.9), 2), "max": round(pct(1.0), 2)},
        "register_usage_requests": len(reg), "throttled": throttled,
        "requests_per_admission": round(len(reg) / max(admitted, 1), 2),
        "request_rate_per_s": {"peak": max(per_second.values(), default=0),
                           "mean": round(len(reg) / max(total, 1e-9), 1)},
    }
    if label:
        result["label"] = label
    if proxy:
        result["proxy"] = proxy
    print(json.dumps(result))
    rate = [(s, per_second.get(s, 0)) for s in range(0, max(per_second, default=-1) + 1)]
    name = f"fleet-{n}" + (f"-{label}" if label else "")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump({"result": result, "admission_times_s": times, "requests_per_second_bin": rate}, f)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5.5), sharex=True)
        top.step(times, range(1, len(times) + 1), where="post", label="admitted")
        top.plot([0, ideal], [0, n], "--", label="ideal (5/s)")
        top.set_ylabel("gates admitted"); top.legend()
        top.set_title(f"{n} gates, RegisterUsage quota 5/s" + (f" ({label})" if label else ""))
        # Empty seconds drawn at 0.5 so the log axis keeps them.
        bottom.step([t for t, _ in rate], [max(v, 0.5) for _, v in rate], where="post")
        bottom.axhline(5, linestyle="--", color="gray", label="quota 5/s")
        bottom.set_yscale("log"); bottom.set_ylabel("RegisterUsage requests/s"); bottom.legend()
        bottom.set_xlabel("seconds since start")
        fig.tight_layout(); fig.savefig(os.path.join(out_dir, f"{name}.png"), dpi=100)
    except ImportError:
        pass
    sys.exit(0 if admitted == n else 1)


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    urllib.request.urlopen(req).read()


if __name__ == "__main__":
    main()
