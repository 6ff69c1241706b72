"""Ask latency of several servers over PostgreSQL against one server over SQLite (issue 16's
target: two servers over PostgreSQL, ask p50 within 10% of one server over SQLite, same run).

Three ``kb serve`` processes over one index folder (the config's, read only): one whose
database is a fresh SQLite file, two sharing the PostgreSQL database ``--postgres`` (its schema
is made on first open; each ask writes the ask log and reads the FAQ revision, so the database
is on every request's path). Closed loop, one request at a time, the same questions in the same
order, interleaved (SQLite server, then a PostgreSQL server, alternating between the two), so
that the machine's drift falls on both alike::

    .venv/bin/python -m kb.bench_servers --postgres postgresql+psycopg://kb@/kbbench?host=/tmp/pg
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from kb.config import ROOT, load_config

DEV = ROOT / "eval" / "dev.jsonl"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml(value: Any) -> str:
    return json.dumps(str(value), ensure_ascii=False)


def _config_file(folder: Path, base: Path | None, index_dir: Path, database_url: str, data_dir: Path) -> Path:
    lines = [f"index_dir = {_toml(index_dir)}", f"database_url = {_toml(database_url)}",
             f"data_dir = {_toml(data_dir)}"]
    path = folder / f"bench-{len(list(folder.glob('bench-*.toml')))}.toml"
    text = "\n".join(lines) + "\n"
    if base is not None:  # the user's config, with these three settings put first
        body = [ln for ln in base.read_text(encoding="utf-8").splitlines()
                if ln.split("=")[0].strip() not in ("index_dir", "database_url", "data_dir")]
        text += "\n".join(body) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


class _Server:
    def __init__(self, config: Path, log: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in ("KB_CONFIG", "KB_DATA_DIR")}
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "kb.cli", "serve", "--config", str(config),
                                      "--port", str(self.port)], env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self.logfile = log

    def wait(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kb serve exited: {self.logfile.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(self.url + "/api/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"kb serve did not start: {self.logfile.read_text(errors='replace')[-2000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def _pct(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"p50": round(statistics.median(ms), 2), "p95": round(ms[int(0.95 * (len(ms) - 1))], 2),
            "n": len(ms)}


def run(postgres: str, requests: int = 200, config: Path | None = None, warmup: int = 10) -> dict[str, Any]:
    cfg = load_config(config)
    questions = [json.loads(line)["question"] for line in DEV.read_text(encoding="utf-8").splitlines() if line]
    with tempfile.TemporaryDirectory(prefix="kb-bench-servers-") as tmp:
        folder = Path(tmp)
        lite = _config_file(folder, config, cfg.index_path, f"sqlite:///{folder / 'kb.sqlite3'}", folder / "lite")
        pg = _config_file(folder, config, cfg.index_path, postgres, folder / "pg")
        servers = [_Server(lite, folder / "sqlite.log"), _Server(pg, folder / "pg-a.log"),
                   _Server(pg, folder / "pg-b.log")]
        try:
            for s in servers:
                s.wait()
            clients = [httpx.Client(base_url=s.url, timeout=60) for s in servers]
            for c in clients:
                for q in questions[:warmup]:
                    c.post("/api/ask", json={"question": q}).raise_for_status()
            lite_ms: list[float] = []
            pg_ms: list[float] = []
            for i in range(requests):
                q = questions[i % len(questions)]
                for c, out in ((clients[0], lite_ms), (clients[1 + i % 2], pg_ms)):
                    t0 = time.perf_counter()
                    c.post("/api/ask", json={"question": q}).raise_for_status()
                    out.append((time.perf_counter() - t0) * 1000)
            for c in clients:
                c.close()
        finally:
            for s in servers:
                s.stop()
    one, two = _pct(lite_ms), _pct(pg_ms)
    return {"one_server_sqlite": one, "two_servers_postgresql": two,
            "p50_ratio": round(two["p50"] / one["p50"], 3), "target_p50_ratio": 1.10}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kb.bench_servers", description=__doc__.split("\n\n")[0])
    p.add_argument("--postgres", required=True, help="a PostgreSQL database URL the two servers share")
    p.add_argument("--requests", type=int, default=200, help="asks to each side")
    p.add_argument("--config", type=Path, default=None, help="the config whose index and embedder to use")
    args = p.parse_args(argv)
    res = run(args.postgres, args.requests, args.config)
    one, two = res["one_server_sqlite"], res["two_servers_postgresql"]
    verdict = "within" if res["p50_ratio"] <= res["target_p50_ratio"] else "OVER"
    print(f"ask over HTTP, {one['n']} requests each, interleaved: one server over SQLite p50 {one['p50']} ms "
          f"(p95 {one['p95']}); two servers over PostgreSQL p50 {two['p50']} ms (p95 {two['p95']}): "
          f"{res['p50_ratio']}x ({verdict} the {res['target_p50_ratio']}x target)")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
