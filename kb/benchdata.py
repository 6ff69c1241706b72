"""Public retrieval benchmarks: loading them and turning their passages into an index.

The sets live outside the repository (``../shared/bench/<name>``, or ``$KB_BENCH_DIR/<name>``),
one folder per set, in one of two shapes:

* ``passages.jsonl`` ``{"id", "text", "title"}`` and ``queries.jsonl``
  ``{"id", "question", "gold_passage_ids": [...], "answers": [...]}`` (the converted sets), or
* BEIR: ``corpus.jsonl`` ``{"_id", "title", "text"}``, ``queries.jsonl`` ``{"_id", "text"}`` and
  ``qrels/<split>.tsv`` (or ``qrels.tsv``) with ``query-id  corpus-id  score`` rows.

Each passage becomes one document holding exactly one chunk (the whole passage), so a hit's
``source`` is the passage id. No file loaders, cleaning or chunking are involved: the set is
measured on retrieval alone, the same way for every setup.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ingest.models import Chunk, Document
from ingest.pipeline import DocRecord, IngestResult
from kb.config import ROOT

BENCH_SETS = ("drcd", "cmrc2018")
DISTRACTORS = "crud20k"


@dataclass(frozen=True)
class Passage:
    id: str
    text: str
    title: str = ""


@dataclass(frozen=True)
class BenchQuery:
    id: str
    question: str
    gold: tuple[str, ...]  # relevant passage ids
    answers: tuple[str, ...] = ()


@dataclass
class BenchSet:
    name: str
    folder: Path
    passages: list[Passage]
    queries: list[BenchQuery] = field(default_factory=list)

    @property
    def characters(self) -> int:
        return sum(len(p.text) for p in self.passages)


def bench_dir() -> Path:
    """Folder holding the public sets: ``$KB_BENCH_DIR`` or ``<repo>/../shared/bench``."""
    env = os.environ.get("KB_BENCH_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "bench"


def _jsonl(path: Path) -> Iterable[dict]:
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: invalid JSON ({e})") from None


def load_passages(folder: Path) -> list[Passage]:
    """Passages of a set folder (either shape), in file order, empty texts dropped."""
    folder = Path(folder)
    if (folder / "passages.jsonl").exists():
        rows = ((str(r["id"]), r.get("text") or "", r.get("title") or "") for r in _jsonl(folder / "passages.jsonl"))
    elif (folder / "corpus.jsonl").exists():
        rows = ((str(r["_id"]), r.get("text") or "", r.get("title") or "") for r in _jsonl(folder / "corpus.jsonl"))
    else:
        raise FileNotFoundError(f"no passages.jsonl or corpus.jsonl in {folder}")
    out: list[Passage] = []
    seen: set[str] = set()
    for pid, text, title in rows:
        if not text.strip():
            continue
        if pid in seen:
            raise ValueError(f"{folder}: passage id {pid!r} appears twice")
        seen.add(pid)
        out.append(Passage(pid, text, title))
    return out


def _qrels(folder: Path) -> dict[str, list[str]]:
    files = [folder / "qrels.tsv"] if (folder / "qrels.tsv").exists() else sorted((folder / "qrels").glob("*.tsv"))
    if not files:
        raise FileNotFoundError(f"no qrels.tsv or qrels/*.tsv in {folder}")
    rel: dict[str, list[str]] = {}
    for f in files:
        with open(f, encoding="utf-8", newline="") as fh:
            for row in csv.reader(fh, delimiter="\t"):
                if len(row) < 2 or row[0] in ("query-id", "query_id", "qid"):
                    continue
                score = float(row[2]) if len(row) > 2 and row[2].strip() else 1.0
                if score > 0:
                    rel.setdefault(row[0], []).append(row[1])
    return rel


def load_queries(folder: Path, limit: int | None = None, seed: int = 0) -> list[BenchQuery]:
    """Queries with at least one gold passage. With ``limit``, a seeded random sample of that
    many (kept in file order), so a small run still spreads over the whole set."""
    folder = Path(folder)
    path = folder / "queries.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no queries.jsonl in {folder}")
    out: list[BenchQuery] = []
    if (folder / "passages.jsonl").exists():
        for r in _jsonl(path):
            gold = tuple(str(g) for g in r.get("gold_passage_ids") or [])
            if gold and (r.get("question") or "").strip():
                out.append(BenchQuery(str(r["id"]), r["question"], gold, tuple(r.get("answers") or [])))
    else:
        rel = _qrels(folder)
        for r in _jsonl(path):
            qid = str(r["_id"])
            if rel.get(qid) and (r.get("text") or "").strip():
                out.append(BenchQuery(qid, r["text"], tuple(rel[qid])))
    if limit is not None and 0 <= limit < len(out):
        keep = sorted(random.Random(seed).sample(range(len(out)), limit))
        out = [out[i] for i in keep]
    return out


def load_bench(name: str, limit: int | None = None, root: Path | None = None) -> BenchSet:
    """A set by folder name under ``bench_dir()`` (or ``root``)."""
    folder = Path(root or bench_dir()) / name
    if not folder.is_dir():
        raise FileNotFoundError(
            f"benchmark folder not found: {folder} (set KB_BENCH_DIR to the folder holding {name}/)"
        )
    passages = load_passages(folder)
    queries = load_queries(folder, limit) if (folder / "queries.jsonl").exists() else []
    return BenchSet(name, folder, passages, queries)


def ingest_records(records: Iterable[Passage | tuple[str, str, str]]) -> IngestResult:
    """An ``IngestResult`` of one document per record, each a single chunk spanning the whole
    text (no loaders, cleaning, chunking or near-duplicate folding). ``records`` holds
    ``Passage`` objects or ``(id, title, text)`` tuples. ``build_index`` accepts the result."""
    result = IngestResult(records={}, fingerprint="bench-one-chunk-per-passage")
    for rec in records:
        pid, title, text = (rec.id, rec.title, rec.text) if isinstance(rec, Passage) else rec
        if not text.strip():
            continue
        if pid in result.records:
            raise ValueError(f"passage id {pid!r} appears twice")
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        doc = Document(source=pid, text=text, title=title, kind="txt", encoding="utf-8", sha256=sha)
        chunk = Chunk(id=f"{pid}#0-{len(text)}", source=pid, title=title, section="",
                      start=0, end=len(text), text=text)
        result.records[pid] = DocRecord(doc, [chunk])
        result.processed.append(pid)
    result.records = dict(sorted(result.records.items()))
    result.timings = {"load": 0.0, "clean": 0.0, "chunk": 0.0, "dedup": 0.0}
    return result


def texts_digest(texts: Iterable[str]) -> str:
    """Short hash of a sequence of texts (cache keys)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


__all__ = [
    "BENCH_SETS", "DISTRACTORS", "Passage", "BenchQuery", "BenchSet", "bench_dir", "load_passages",
    "load_queries", "load_bench", "ingest_records", "texts_digest",
]
