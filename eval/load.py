"""Load test: N concurrent askers against a real ``kb serve`` for S seconds.

Starts ``kb serve`` (the default config: the real embedder over the bundled corpus, or
``--config``) on a free port as a subprocess, then N threads post the development questions
(``eval/dev.jsonl``, in turn) to ``/api/ask`` over real HTTP until the time is up. Prints
requests, errors (any non-200 or transport error), throughput and latency p50/p95/max, and
the server's peak memory; writes them to ``reports/load.json``.

    .venv/bin/python eval/load.py --users 20 --seconds 60

Run it on a quiet machine: the embedder uses both cores.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def questions() -> list[str]:
    with open(ROOT / "eval" / "dev.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)["question"] for line in fh if line.strip()]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):  # peak resident set size
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--config", default=None)
    ap.add_argument("--reports", default=str(ROOT / "reports"))
    args = ap.parse_args()

    port = free_port()
    cmd = [sys.executable, "-m", "kb.cli", "serve", "--port", str(port)]
    if args.config:
        cmd += ["--config", args.config]
    server = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                print("the server did not start:", server.stderr.read()[-2000:], file=sys.stderr)
                return 1
            time.sleep(0.3)

        qs = questions()
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        stop = time.monotonic() + args.seconds

        def user(k: int) -> None:
            i = k
            with httpx.Client(base_url=url, timeout=60) as c:
                while time.monotonic() < stop:
                    q = qs[i % len(qs)]
                    i += args.users
                    t0 = time.perf_counter()
                    try:
                        r = c.post("/api/ask", json={"question": q})
                        ok = r.status_code == 200 and "answered" in r.json()
                        err = "" if ok else f"HTTP {r.status_code}"
                    except (httpx.HTTPError, ValueError) as e:
                        err = type(e).__name__
                    dt = time.perf_counter() - t0
                    with lock:
                        latencies.append(dt)
                        if err:
                            errors.append(err)

        threads = [threading.Thread(target=user, args=(k,)) for k in range(args.users)]
        t_start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t_start
        latencies.sort()

        def pct(p: float) -> float:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0.0

        result = {
            "users": args.users, "seconds": round(wall, 1), "requests": len(latencies),
            "errors": len(errors), "error_kinds": sorted(set(errors)),
            "throughput_rps": round(len(latencies) / wall, 2) if wall else 0.0,
            "latency_ms": {"p50": round(pct(0.50), 1), "p95": round(pct(0.95), 1),
                           "max": round(latencies[-1] * 1000, 1) if latencies else 0.0},
            "server_peak_rss_mb": round(rss_mb(server.pid), 1),
            "cpus": os.cpu_count(),
        }
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    print(f"{result['users']} concurrent askers for {result['seconds']} s: {result['requests']} asks, "
          f"{result['errors']} errors, {result['throughput_rps']} asks/s, "
          f"p50 {result['latency_ms']['p50']} ms, p95 {result['latency_ms']['p95']} ms, "
          f"max {result['latency_ms']['max']} ms; server peak RSS {result['server_peak_rss_mb']} MB")
    out = Path(args.reports)
    out.mkdir(parents=True, exist_ok=True)
    (out / "load.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
