"""Hostile corpora and unlucky operators against the real ``kb`` command (a subprocess, the
hashing embedder): symlinks out of the corpus, FIFOs, files that stall a parser, crash
leftovers, two ingests at once, damaged index and database files, bad config, a closed pipe.
Each was a failure before the hardening issue."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_tiny_corpus
from test_cli import HASHING_TOML, kb

from kb.index import index_lock, load_index, read_manifest

SECRET = "KB-SECRET-d41d8c"


@pytest.fixture
def ws(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "corpus")
    config = tmp_path / "kb.toml"
    config.write_text(HASHING_TOML, encoding="utf-8")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.toml").write_text(f'admin_token = "{SECRET}"\n', encoding="utf-8")
    return {"root": tmp_path, "corpus": corpus, "config": config, "index": tmp_path / "index",
            "outside": outside}


def run(ws, *args, config=None, stdin=None):
    return kb(*args, "--index", str(ws["index"]), "--corpus", str(ws["corpus"]),
              config=config or ws["config"], stdin=stdin, cwd=ws["root"])


def skipped_lines(out: str) -> dict[str, str]:
    lines = {}
    for line in out.splitlines():
        if line.startswith("  - "):
            name, _, reason = line[4:].partition(": ")
            lines[name] = reason
    return lines


def indexed_text(ws) -> str:
    return (Path(os.path.realpath(ws["index"])) / "documents.jsonl").read_text(encoding="utf-8")


# -- 2. nothing outside the corpus is read ----------------------------------------------------------

def test_symlinks_out_of_the_corpus_fifos_and_dangling_links_are_named_not_read(ws):
    c = ws["corpus"]
    os.symlink("/etc/passwd", c / "passwd.txt")
    os.symlink(ws["outside"] / "secret.toml", c / "config.txt")
    os.symlink(ws["outside"], c / "linked-folder")
    os.symlink(c / "nowhere.txt", c / "dangling.txt")
    os.mkfifo(c / "pipe.txt")
    (c / "sub").mkdir()
    os.symlink(c / "考勤制度.txt", c / "sub" / "inside-link.txt")  # stays inside: read
    out = run(ws, "ingest", "-q")
    assert out.returncode == 0, out.stderr
    skipped = skipped_lines(out.stdout)
    assert "outside the corpus" in skipped["passwd.txt"]
    assert "outside the corpus" in skipped["config.txt"]
    assert "outside the corpus" in skipped["linked-folder"]
    assert "dangling" in skipped["dangling.txt"]
    assert "FIFO" in skipped["pipe.txt"]
    text = indexed_text(ws)
    assert SECRET not in text and "root:x:0:0" not in text
    docs = load_index(ws["index"]).documents
    assert "sub/inside-link.txt" in docs and "passwd.txt" not in docs


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their mode")
def test_unreadable_folder_is_named(ws):
    locked = ws["corpus"] / "locked"
    locked.mkdir()
    (locked / "a.txt").write_text("内容", encoding="utf-8")
    locked.chmod(0)
    try:
        out = run(ws, "ingest", "-q")
    finally:
        locked.chmod(0o755)
    assert out.returncode == 0
    assert "cannot read folder" in skipped_lines(out.stdout)["locked/"]


def test_control_characters_in_file_names_are_printed_escaped(ws):
    (ws["corpus"] / "\x1b[31mred\x1b[0m.docx").write_bytes(b"not a zip")
    out = run(ws, "ingest", "-q")
    assert out.returncode == 0
    assert "\x1b" not in out.stdout
    assert "\\x1b[31mred\\x1b[0m.docx" in out.stdout


# -- 4. one file cannot stall an ingest --------------------------------------------------------------

def test_a_file_past_the_parse_time_limit_is_stopped_and_the_rest_goes_on(ws):
    big = ws["corpus"] / "huge.html"
    row = "<p>" + "员工手册规定的请假流程说明。" * 20 + "</p>\n"
    big.write_text("<html><body>" + row * 60_000 + "</body></html>", encoding="utf-8")
    cfg = ws["root"] / "slow.toml"
    cfg.write_text(HASHING_TOML + "\n[ingest]\nfile_timeout_s = 0.3\nworkers = 2\n", encoding="utf-8")
    out = run(ws, "ingest", "-q", config=cfg)
    assert out.returncode == 0, out.stderr
    assert "took longer than 0.3 s" in skipped_lines(out.stdout)["huge.html"]
    docs = load_index(ws["index"]).documents
    assert "考勤制度.txt" in docs and "huge.html" not in docs


def test_a_file_past_the_memory_limit_loses_only_itself(ws):
    (ws["corpus"] / "big.txt").write_text("请假流程说明。\n" * 3_000_000, encoding="utf-8")  # ~ 27 MB
    cfg = ws["root"] / "mem.toml"
    cfg.write_text(HASHING_TOML + "\n[ingest]\nworker_memory_mb = 900\nfile_timeout_s = 300\n", encoding="utf-8")
    out = run(ws, "ingest", "-q", config=cfg)
    assert out.returncode == 0, out.stderr
    reason = skipped_lines(out.stdout).get("big.txt", "")
    assert "MB" in reason or "crashed" in reason, out.stdout
    assert "考勤制度.txt" in load_index(ws["index"]).documents


# -- 7. clear messages instead of tracebacks ---------------------------------------------------------

def test_damaged_faiss_index_is_named(ws):
    assert run(ws, "ingest", "-q").returncode == 0
    (Path(os.path.realpath(ws["index"])) / "faiss.index").write_bytes(b"garbage" * 100)
    out = run(ws, "search", "请假")
    assert out.returncode == 2
    assert "faiss.index" in out.stderr and "kb ingest" in out.stderr
    assert "Traceback" not in out.stderr


def test_full_disk_during_ingest_is_one_line_and_keeps_the_previous_index(ws):
    assert run(ws, "ingest", "-q").returncode == 0
    before = read_manifest(ws["index"])["built_at"]
    (ws["corpus"] / "新文件.txt").write_text("新的规定：加班需要提前申请。\n", encoding="utf-8")
    code = (
        "import errno, sys, numpy\n"
        "def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device', str(a[0]))\n"
        "numpy.save = full\n"
        "from kb.cli import main\n"
        f"sys.exit(main(['ingest', '-q', '--index', {str(ws['index'])!r}, '--corpus', {str(ws['corpus'])!r}]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env["KB_CONFIG"] = str(ws["config"])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=ws["root"], timeout=120)
    assert out.returncode == 2
    assert "no space left" in out.stderr and "Traceback" not in out.stderr
    assert read_manifest(ws["index"])["built_at"] == before
    assert not list(ws["root"].glob(".index.building-*"))
    assert "新文件.txt" not in load_index(ws["index"]).documents


@pytest.mark.parametrize("toml,words", [
    ("[app]\nadmin_tokn = 'x'\n", ["app.admin_tokn", "unknown setting", "admin_token"]),
    ("[retrievl]\nfusion = 'rrf'\n", ["retrievl", "unknown setting"]),
    ("[embedder]\nbatch_size = 'big'\n", ["embedder.batch_size", "integer"]),
    ("[app]\ncors_origins = 'https://x.example'\n", ["app.cors_origins", "tuple"]),
    ("[answer\n", ["not valid TOML"]),
])
def test_bad_config_is_one_line_naming_the_key(ws, toml, words):
    cfg = ws["root"] / "bad.toml"
    cfg.write_text(toml, encoding="utf-8")
    out = run(ws, "search", "请假", config=cfg)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    for w in words:
        assert w in out.stderr, out.stderr
    assert str(cfg) in out.stderr


def test_closed_pipe_is_not_a_traceback(ws):
    assert run(ws, "ingest", "-q").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env["KB_CONFIG"] = str(ws["config"])
    questions = "\n".join(["请假流程", "报销", "审批"] * 200) + "\n"
    cmd = (f"{sys.executable} -m kb.cli search --jsonl --index {ws['index']} --corpus {ws['corpus']}"
           " | head -n 1")
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], input=questions, capture_output=True,
                         text=True, env=env, cwd=ws["root"], timeout=120)
    assert len(out.stdout.splitlines()) == 1
    assert "Traceback" not in out.stderr and "BrokenPipeError" not in out.stderr


def test_damaged_faq_database_degrades_the_faq_not_the_service(ws):
    from conftest_app import ADMIN_TOKEN, LiveServer

    from kb.config import load_config

    assert run(ws, "ingest", "-q").returncode == 0
    data = ws["root"] / "data"
    data.mkdir(exist_ok=True)
    (data / "faq.sqlite3").write_bytes(b"this is not a database" * 200)
    again = run(ws, "ingest", "-q")  # the ingest goes on, and says why the FAQ was not checked
    assert again.returncode == 0 and "Traceback" not in again.stderr
    assert "FAQ database" in again.stderr and "faq.sqlite3" in again.stderr
    cfg = load_config(ws["config"], index_dir=ws["index"], corpus_dir=ws["corpus"])
    import httpx

    with LiveServer(cfg) as live:
        r = httpx.post(live.url + "/api/ask", json={"question": "请病假要走什么流程？"}, timeout=30)
        assert r.status_code == 200 and r.json()["answered"]
        r = httpx.get(live.url + "/api/admin/faq/entries", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)
        assert r.status_code == 503 and "faq.sqlite3" in r.json()["detail"]


# -- 8. crash leftovers and two writers ---------------------------------------------------------------

def test_leftovers_are_cleaned_and_a_stale_old_index_is_never_served(ws):
    assert run(ws, "ingest", "-q").returncode == 0
    root = ws["root"]
    building = root / ".index.building-99999"  # a kill in the write phase
    building.mkdir()
    (building / "manifest.json").write_text("{}")
    stale = root / ".index.old-424242"  # what the earlier two-rename swap could leave
    stale.mkdir()
    for f in Path(os.path.realpath(ws["index"])).iterdir():
        if f.is_file():
            (stale / f.name).write_bytes(f.read_bytes())
    (ws["corpus"] / "市场部职责.md").unlink()  # a document is deleted ...
    os.unlink(ws["index"])  # ... and the operator deletes the index
    out = run(ws, "search", "市场部经理的职责", "--json")
    assert out.returncode == 0, out.stderr  # rebuilt from the corpus as it is now
    assert "市场部职责.md" not in out.stdout  # the deleted document did not come back
    assert not building.exists() and not stale.exists()
    gens = sorted(p.name for p in root.glob(".index.gen-*"))
    assert len(gens) <= 2
    assert Path(os.path.realpath(ws["index"])).name in gens


def test_a_second_ingest_on_the_same_index_is_refused_while_one_runs(ws):
    assert run(ws, "ingest", "-q").returncode == 0
    with index_lock(ws["index"]):
        out = run(ws, "ingest", "-q")
    assert out.returncode == 2
    assert "being written by" in out.stderr and "Traceback" not in out.stderr
    assert run(ws, "ingest", "-q").returncode == 0  # the lock is gone with its holder


def test_reingest_swaps_atomically_and_keeps_one_previous_generation(ws):
    for i in range(4):
        (ws["corpus"] / f"追加{i}.txt").write_text(f"第{i}条补充规定：加班须提前申请。\n", encoding="utf-8")
        assert run(ws, "ingest", "-q").returncode == 0
    assert ws["index"].is_symlink()
    assert len(list(ws["root"].glob(".index.gen-*"))) == 2
    manifest = json.loads((ws["index"] / "manifest.json").read_text())
    assert "追加3.txt" in manifest["documents"]


def test_feedback_database_damage_is_a_503_with_a_message(ws):
    from conftest_app import LiveServer

    from kb.config import load_config

    assert run(ws, "ingest", "-q").returncode == 0
    data = ws["root"] / "data"
    data.mkdir(exist_ok=True)
    (data / "feedback.sqlite3").write_bytes(b"garbage" * 500)
    cfg = load_config(ws["config"], index_dir=ws["index"], corpus_dir=ws["corpus"])
    import httpx

    with LiveServer(cfg) as live:
        r = httpx.post(live.url + "/api/feedback", json={"question": "q", "answer": "a", "rating": "up"}, timeout=30)
        assert r.status_code == 503 and "Traceback" not in r.text
        assert httpx.post(live.url + "/api/ask", json={"question": "请病假要走什么流程？"}, timeout=30).status_code == 200
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(data / "feedback.sqlite3").execute("select * from feedback").fetchall()
