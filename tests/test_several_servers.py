"""Two real servers (``kb serve`` in two processes, two ports) over one PostgreSQL database and
one index folder, the hashing embedder over the tiny corpus: a login made on one is good on the
other; feedback sent to one is in the other's trainers' API (``/api/feedback`` and the FAQ
usage gaps the trainers' page shows); an FAQ entry a trainer approves on one answers on the
other; after an admin's upload on one (a background job, run once: by that server), and after a
``kb ingest`` in a shell, both answer from the new index without a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest_app import ADMIN_TOKEN, add_user, free_port, login, seed_admin_key, write_corpus
from sqlalchemy import select

from kb.config import load_config

ROOT = Path(__file__).resolve().parents[1]
TRAINER, PASSWORD = "培训师", "correct-horse-1"
BUS = ("班车制度.txt", "班车管理制度\n一、发车时间\n公司班车每天早上七点二十分从市民广场发车，晚上六点返程。\n")
BUS_Q = "班车每天早上几点从市民广场发车？"
GYM = ("健身房.md", "# 健身房开放时间\n员工健身房每周一至周五中午十二点至下午两点开放，须刷工卡进入。\n")
GYM_Q = "员工健身房中午几点开放？"


def write_config(tmp: Path, database_url: str) -> Path:
    corpus = write_corpus(tmp / "corpus")
    path = tmp / "kb.toml"
    path.write_text(
        f'data_dir = "{tmp / "data"}"\n'
        f'corpus_dir = "{corpus}"\n'
        f'index_dir = "{tmp / "shared-index"}"\n'
        f'database_url = "{database_url}"\n'
        "[embedder]\nbackend = \"hashing\"\n"
        "[answer]\nmin_confidence = 0.05\ncalibrate = false\n",
        encoding="utf-8")
    return path


class Server:
    """``kb serve --config … --port …`` as a subprocess."""

    def __init__(self, config: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in ("KB_CONFIG", "KB_DATA_DIR")}
        self.log = log
        self._out = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "kb.cli", "serve", "--config", str(config),
                                      "--port", str(self.port)], cwd=ROOT, env=env, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 180) -> Server:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"kb serve exited {self.proc.returncode}: {self.log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(self.url + "/api/health", timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, self.log.read_text(errors="replace")[-3000:]
            time.sleep(0.3)

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._out.close()


def ask(c: httpx.Client, question: str) -> dict:
    r = c.post("/api/ask", json={"question": question})
    assert r.status_code == 200, r.text
    return r.json()


def cited(answer: dict) -> set[str]:
    return {c["source"] for c in answer["citations"]}


def wait_until_cited(clients: list[httpx.Client], question: str, source: str, timeout: float = 30) -> float:
    """Seconds until every client's server answers ``question`` citing ``source``."""
    t0 = time.monotonic()
    pending = list(clients)
    while pending:
        pending = [c for c in pending if source not in cited(ask(c, question))]
        assert time.monotonic() - t0 < timeout, f"{[c.base_url for c in pending]} still not citing {source}"
        if pending:
            time.sleep(0.3)
    return time.monotonic() - t0


@pytest.fixture(scope="module")
def servers(tmp_path_factory, pg_cluster):
    tmp = tmp_path_factory.mktemp("two-servers")
    url = pg_cluster.create_database()
    config = write_config(tmp, url)
    cfg = load_config(config)
    from kb.service import run_ingest

    run_ingest(cfg, progress=False)  # the index both serve (one folder)
    seed_admin_key(cfg)
    add_user(cfg, TRAINER, "trainer", PASSWORD)
    a, b = Server(config, tmp / "a.log"), Server(config, tmp / "b.log")
    try:
        a.wait_ready()
        b.wait_ready()
        yield cfg, config, a, b
    finally:
        a.stop()
        b.stop()


def test_both_servers_are_on_postgresql_and_one_index(servers):
    cfg, _, a, b = servers
    assert cfg.database_url.startswith("postgresql+psycopg://")
    ha, hb = (httpx.get(s.url + "/api/health").json() for s in (a, b))
    assert ha["index_built_at"] == hb["index_built_at"] and a.proc.pid != b.proc.pid


def test_a_login_and_feedback_on_one_server_are_seen_by_the_other(servers):
    _, _, a, b = servers
    question = "食堂的早餐几点供应？"
    with a.client() as ca, b.client() as cb:
        r = ca.post("/api/feedback", json={"question": question, "answer": "知识库中没有找到相关内容",
                                           "rating": "down", "comment": "希望补充食堂制度", "user": "emp-42"})
        assert r.status_code == 200, r.text
        fid = r.json()["id"]
        csrf = login(ca, TRAINER, PASSWORD)  # a session made on A ...
        cb.cookies.update(ca.cookies)  # ... is good on B: sessions live in the shared database
        cb.headers["X-CSRF-Token"] = csrf
        assert cb.get("/api/auth/me").json()["name"] == TRAINER
        rows = cb.get("/api/feedback").json()
        assert any(f["id"] == fid and f["question"] == question and f["comment"] == "希望补充食堂制度"
                   and f["user"] == "emp-42" for f in rows), rows
        gaps = cb.get("/api/admin/faq/usage").json()["gaps"]  # what the trainers' page lists
        assert any(g["question"] == question for g in gaps), gaps

        # an FAQ entry written and approved on B answers on A (its cache follows the revision)
        draft = ask(cb, "年假须提前几个工作日申请？")
        r = cb.post("/api/admin/faq/entries", json={
            "question": "请年假要提前多久说？", "answer": "年假须提前五个工作日申请 [1]。",
            "citations": draft["citations"][:1]})
        assert r.status_code == 201, r.text
        entry = r.json()
        r = cb.post(f"/api/admin/faq/entries/{entry['id']}/approve")
        assert r.status_code == 200, r.text
        answer = ask(ca, "请年假要提前多久说？")
        assert answer["source_kind"] == "faq" and "五个工作日" in answer["answer"], answer


def test_an_upload_on_one_server_is_answered_by_both_and_its_job_runs_once(servers):
    cfg, _, a, b = servers
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with a.client(headers=headers) as ca, b.client(headers=headers) as cb:
        for c in (ca, cb):
            assert BUS[0] not in cited(ask(c, BUS_Q))
        r = ca.post("/api/admin/documents", files=[("files", (BUS[0], BUS[1].encode(), "text/plain"))])
        assert r.status_code in (200, 201, 202), r.text
        job = r.json()["job"]
        deadline = time.monotonic() + 120
        while (j := cb.get(f"/api/admin/jobs/{job['id']}").json())["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, j  # B sees A's job's progress in the shared table
            time.sleep(0.3)
        assert j["status"] == "done", j
        waited = wait_until_cited([ca, cb], BUS_Q, BUS[0])
        answer = ask(cb, BUS_Q)
        assert "七点二十分" in answer["answer"]
        assert waited < 10  # each server looks once a second
        assert {d["source"] for d in cb.get("/api/admin/documents").json()} >= {BUS[0]}

    from kb.store import open_database
    from kb.store.documents import JobRow

    db = open_database(cfg)
    try:
        with db.session() as s:
            row = s.scalar(select(JobRow).where(JobRow.id == job["id"]))
            assert row.owner.split(":")[1] == str(a.proc.pid)  # run by A, the server it was sent to
            assert row.status == "done" and row.started_at is not None
            assert s.scalars(select(JobRow.id).where(JobRow.status.in_(("queued", "running")))).all() == []
    finally:
        db.close()


def test_kb_ingest_in_a_shell_is_served_by_both(servers):
    cfg, config, a, b = servers
    (cfg.corpus_dir / GYM[0]).write_text(GYM[1], encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("KB_CONFIG", "KB_DATA_DIR")}
    done = subprocess.run([sys.executable, "-m", "kb.cli", "ingest", "--config", str(config), "-q"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with a.client() as ca, b.client() as cb:
        wait_until_cited([ca, cb], GYM_Q, GYM[0], timeout=15)
        assert "十二点" in ask(ca, GYM_Q)["answer"] and BUS[0] in cited(ask(cb, BUS_Q))


def test_the_latency_bench_of_servers_runs_small(servers, pg_cluster):
    from kb.bench_servers import run

    _, config, _, _ = servers
    res = run(pg_cluster.create_database(), requests=4, config=config, warmup=1)
    assert res["one_server_sqlite"]["n"] == res["two_servers_postgresql"]["n"] == 4
    assert res["p50_ratio"] > 0 and res["target_p50_ratio"] == 1.10
