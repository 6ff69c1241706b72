"""``kb eval``: retrieval and answer quality on the dev set, or retrieval on a public set.

Dev set (``eval/dev.jsonl``, see ``eval/README.md``):

* Retrieval, per setup, over the in-scope questions: hit@1/3/5/10, MRR@10, nDCG@10 and gold
  recall@10. A hit is relevant when its character range, or one of its ``also_in`` places
  (near-duplicates folded into it), overlaps a gold quote's location in the same source
  (every ``text.find`` occurrence of the quote). nDCG uses binary gains; its ideal ranking is every
  relevant retrievable chunk of that setup's index, so setups with other chunk sizes are each
  measured against what their own index could have returned.
* Answers, for the configured service: citation validity (``text[start:end] == quote``; must be
  100 %), ``[n]`` markers matching the citations, citation hit (a citation overlaps a gold quote),
  key-point coverage (each key point searched in the answer after OpenCC t2s + NFKC of both),
  and refusal precision / recall / accuracy (refused = ``answered`` false; positives = the
  out-of-scope questions). Everything is also broken down by kind, style and script.

Setups compared in one run: ``bm25``, ``dense``, ``hybrid`` (RRF), ``hybrid-weighted``,
``hybrid-noglossary``, ``hybrid-c200`` / ``hybrid-c450`` (any ``hybrid-cN``: the corpus chunked at
``max_chars`` N into ``data/cache/eval/index-cN``, reusing the main index's vectors by content hash)
and ``hybrid-rerank`` when ``retrieval.reranker`` is configured. The last four change one thing of
the configured setup (its fusion included).

Public sets (``--bench drcd|cmrc2018``): one chunk per passage in a temporary index, R@1/R@5/R@10
and MRR@10 for bm25, dense and hybrid. Passage vectors are cached in ``data/cache/bench``.

``evaluate_dev`` is the entry point for the quality-gate test; its ``summary`` holds the headline
numbers (``hit@5``, ``citation_validity``, ``refusal_accuracy``, ...).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import math
import re
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ingest.normalize import normalize
from kb.config import ROOT, Config

log = logging.getLogger(__name__)

K = 10
HIT_KS = (1, 3, 5, 10)
DEFAULT_CHUNK_SIZES = (200, 450)
DEV_PATH = ROOT / "eval" / "dev.jsonl"
GROUPS = ("kind", "style", "script", "format")
BENCH_SETUPS = ("bm25", "dense", "hybrid")


def bench_setup_names(cfg: Config) -> list[str]:
    """bm25, dense, hybrid (RRF), plus the configured setup when it is another one."""
    names = list(BENCH_SETUPS)
    own = config_setup_name(cfg)
    if own not in names and own != "hybrid-rerank":
        names.append(own)
    return names

Span = tuple[str, int, int]  # (source, start, end)


# -- metrics on ranked relevance lists (pure) -------------------------------------------------
def hit_at_k(rels: Sequence[bool], k: int) -> float:
    """1.0 when any of the first ``k`` results is relevant."""
    return 1.0 if any(rels[:k]) else 0.0


def reciprocal_rank(rels: Sequence[bool], k: int = K) -> float:
    """1 / rank of the first relevant result within the first ``k``, else 0."""
    for i, r in enumerate(rels[:k], start=1):
        if r:
            return 1.0 / i
    return 0.0


def ndcg_at_k(rels: Sequence[bool], n_relevant: int, k: int = K) -> float:
    """Binary-gain nDCG@k: ``sum rel_i / log2(i + 1)`` over the ideal, which ranks
    ``min(n_relevant, k)`` relevant results first. 0 when nothing is relevant."""
    dcg = sum(1.0 / math.log2(i + 1) for i, r in enumerate(rels[:k], start=1) if r)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(n_relevant, k) + 1))
    return dcg / ideal if ideal else 0.0


def mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def ratio(num: int, den: int) -> float | None:
    return num / den if den else None


# -- where gold quotes are, and which hits overlap them ---------------------------------------
def overlaps(a: Span, b: Span) -> bool:
    """Two character ranges of the same source share at least one character."""
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def locate(quote: str, text: str) -> list[tuple[int, int]]:
    """Every ``(start, end)`` where ``quote`` occurs in ``text`` (``text.find`` repeatedly); when
    it occurs nowhere as written, where it occurs ignoring whitespace and compatibility forms
    (NFKC: full-/half-width, Kangxi radicals), so a quote written as a reader sees a PDF's text
    finds the span of the document's text it stands for."""
    out: list[tuple[int, int]] = []
    if not quote:
        return out
    i = text.find(quote)
    while i >= 0:
        out.append((i, i + len(quote)))
        i = text.find(quote, i + 1)
    if out:
        return out
    key = _loose(quote)[0]
    if not key:
        return out
    loose, where = _loose_text(text)
    i = loose.find(key)
    while i >= 0:
        out.append((where[i], where[i + len(key) - 1] + 1))
        i = loose.find(key, i + 1)
    return out


def _loose(text: str) -> tuple[str, list[int]]:
    """``text`` NFKC-normalised, lower-cased, without whitespace; and for each of its
    characters the offset in ``text`` it came from."""
    chars: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKC", ch).lower():
            if not c.isspace():
                chars.append(c)
                where.append(i)
    return "".join(chars), where


_LOOSE_CACHE: dict[int, tuple[str, tuple[str, list[int]]]] = {}


def _loose_text(text: str) -> tuple[str, list[int]]:
    cached = _LOOSE_CACHE.get(id(text))
    if cached is None or cached[0] is not text:
        cached = (text, _loose(text))
        if len(_LOOSE_CACHE) > 256:
            _LOOSE_CACHE.clear()
        _LOOSE_CACHE[id(text)] = cached
    return cached[1]


def gold_spans(gold: Sequence[Mapping[str, str]], texts: Mapping[str, str],
               warn: Callable[[str], None] | None = None) -> list[list[Span]]:
    """For each gold entry ``{source, quote}``, its locations in ``texts`` (source -> text)."""
    out: list[list[Span]] = []
    for g in gold:
        text = texts.get(g["source"])
        spans = [(g["source"], s, e) for s, e in locate(g["quote"], text)] if text is not None else []
        if not spans and warn:
            where = "source not in the index" if text is None else "quote not found in its source"
            warn(f"{g['source']}: {where}: {g['quote'][:40]}")
        out.append(spans)
    return out


def places(hit: Any) -> list[Span]:
    """A hit's (or chunk's, or hit dict's) own range plus its ``also_in`` places."""
    if isinstance(hit, Mapping):
        own = (hit["source"], hit["start"], hit["end"])
        extra = hit.get("also_in") or []
    else:
        own = (hit.source, hit.start, hit.end)
        extra = getattr(hit, "also_in", None) or []
    out = [own]
    for a in extra:
        out.append((a["source"], a["start"], a["end"]) if isinstance(a, Mapping) else (a[0], a[1], a[2]))
    return out


def is_relevant(hit: Any, spans: Iterable[Span]) -> bool:
    spans = list(spans)
    return any(overlaps(p, g) for p in places(hit) for g in spans)


def relevance(hits: Sequence[Any], golds: Sequence[Sequence[Span]]) -> list[bool]:
    flat = [s for g in golds for s in g]
    return [is_relevant(h, flat) for h in hits]


def gold_recall(hits: Sequence[Any], golds: Sequence[Sequence[Span]]) -> float | None:
    """Share of gold entries overlapped by at least one of ``hits``."""
    if not golds:
        return None
    return sum(1 for g in golds if any(is_relevant(h, g) for h in hits)) / len(golds)


def retrieval_scores(rels: Sequence[bool], n_relevant: int, recall: float | None = None) -> dict[str, float | None]:
    out: dict[str, float | None] = {f"hit@{k}": hit_at_k(rels, k) for k in HIT_KS}
    out["mrr@10"] = reciprocal_rank(rels, K)
    out["ndcg@10"] = ndcg_at_k(rels, n_relevant, K)
    out["recall@10"] = recall
    return out


# -- key points ----------------------------------------------------------------------------------
_SPACE = re.compile(r"\s+")


def match_key(text: str) -> str:
    """Key for key-point matching: OpenCC t2s + NFKC + lower case, whitespace removed."""
    return _SPACE.sub("", normalize(text))


def key_point_hits(answer: str, key_points: Sequence[str]) -> list[bool]:
    a = match_key(answer)
    return [bool(match_key(k)) and match_key(k) in a for k in key_points]


def key_point_coverage(answer: str, key_points: Sequence[str]) -> float | None:
    hits = key_point_hits(answer, key_points)
    return sum(hits) / len(hits) if hits else None


# -- refusal -------------------------------------------------------------------------------------
def refusal_metrics(pairs: Iterable[tuple[bool, bool]]) -> dict[str, Any]:
    """``pairs`` of (refused, out_of_scope). Positives are out-of-scope questions."""
    tp = fp = fn = tn = 0
    for refused, out_of_scope in pairs:
        if refused and out_of_scope:
            tp += 1
        elif refused:
            fp += 1
        elif out_of_scope:
            fn += 1
        else:
            tn += 1
    n = tp + fp + fn + tn
    return {
        "refusal_precision": ratio(tp, tp + fp),
        "refusal_recall": ratio(tp, tp + fn),
        "refusal_accuracy": ratio(tp + tn, n),
        "refused_out_of_scope": tp, "refused_in_scope": fp,
        "answered_out_of_scope": fn, "answered_in_scope": tn,
    }


PART_NOT_COVERED_MARK = "知识库中没有找到相关内容"  # in the line naming a part not addressed


def citation_markers_ok(answer: Mapping[str, Any]) -> bool:
    """Every ``[n]`` in the answer has a citation and every citation is used."""
    used = {int(m) for m in re.findall(r"\[(\d+)\]", answer.get("answer") or "")}
    return used == {int(c["n"]) for c in answer.get("citations") or []}


def ask_quietly(svc: Any, question: str) -> Any:
    """``svc.ask(question)`` without writing the question into the FAQ ask log (evaluation and
    benchmark questions must not show up as user questions), when the service has one."""
    try:
        params = inspect.signature(svc.ask).parameters
    except (TypeError, ValueError):
        params = {}
    return svc.ask(question, log=False) if "log" in params else svc.ask(question)


# -- the dev set ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DevQuestion:
    id: str
    question: str
    in_scope: bool
    kind: str
    style: str
    script: str
    gold: tuple[dict, ...]
    key_points: tuple[str, ...]
    uncovered: str = ""  # a two-part question: the part the documents do not address

    def group(self, name: str) -> str:
        if name == "format":  # the format of the document that answers it
            if not self.gold:
                return "out of scope"
            suffix = Path(self.gold[0]["source"]).suffix.lower().lstrip(".")
            return {"htm": "html", "markdown": "md"}.get(suffix, suffix) or "?"
        return getattr(self, name)


def load_dev(path: Path | str = DEV_PATH) -> list[DevQuestion]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: invalid JSON ({e})") from None
            out.append(DevQuestion(
                id=str(r["id"]), question=r["question"], in_scope=bool(r["in_scope"]),
                kind=r.get("kind", ""), style=r.get("style", ""), script=r.get("script", ""),
                gold=tuple(r.get("gold") or []), key_points=tuple(r.get("key_points") or []),
                uncovered=str(r.get("uncovered") or ""),
            ))
    if not out:
        raise ValueError(f"{path}: no questions")
    return out


# -- setups --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setup:
    """One retrieval configuration: a mode, overrides of the configured retrieval settings,
    optionally another chunk size and the configured reranker. ``hybrid`` and
    ``hybrid-weighted`` fix the fusion; the others change one thing of the configured setup."""

    name: str
    mode: str = "hybrid"
    retrieval: tuple[tuple[str, Any], ...] = ()
    chunk_chars: int | None = None
    rerank: bool = False

    def describe(self, cfg: Config) -> str:
        s = dataclasses.replace(cfg.retrieval, **dict(self.retrieval))
        if self.mode != "hybrid":
            return f"{self.mode} only"
        parts = [s.fusion if s.fusion != "rrf" else f"rrf k={s.rrf_k}"]
        if s.fusion == "weighted":
            parts[0] = f"weighted bm25 {s.bm25_weight:g} / dense {s.dense_weight:g}"
        parts.append("glossary" if s.use_glossary else "no glossary")
        if self.chunk_chars:
            parts.append(f"chunks max {self.chunk_chars} chars")
        if self.rerank:
            parts.append(f"rerank top {s.rerank_top} with {cfg.retrieval.reranker}")
        return ", ".join(parts)


def make_setup(name: str) -> Setup:
    fixed = {
        "bm25": Setup("bm25", mode="bm25"),
        "dense": Setup("dense", mode="dense"),
        "hybrid": Setup("hybrid", retrieval=(("fusion", "rrf"),)),
        "hybrid-weighted": Setup("hybrid-weighted", retrieval=(("fusion", "weighted"),)),
        "hybrid-noglossary": Setup("hybrid-noglossary", retrieval=(("use_glossary", False),)),
        "hybrid-rerank": Setup("hybrid-rerank", rerank=True),
    }
    if name in fixed:
        return fixed[name]
    m = re.fullmatch(r"hybrid-c(\d{2,5})", name)
    if m:
        return Setup(name, chunk_chars=int(m.group(1)))
    raise ValueError(
        f"unknown setup {name!r}: use {', '.join(fixed)} or hybrid-cN (N = chunk max_chars)"
    )


def default_setup_names(cfg: Config, chunk_sizes: Sequence[int] = DEFAULT_CHUNK_SIZES) -> list[str]:
    names = ["bm25", "dense", "hybrid", "hybrid-weighted", "hybrid-noglossary"]
    names += [f"hybrid-c{n}" for n in chunk_sizes if n != cfg.chunking.max_chars]
    names.append("hybrid-rerank")
    return names


def config_setup_name(cfg: Config) -> str:
    """The setup the configured service retrieves with."""
    if cfg.retrieval.reranker:
        return "hybrid-rerank"
    return "hybrid-weighted" if cfg.retrieval.fusion == "weighted" else "hybrid"


def parse_setups(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    names = [s.strip() for s in value.split(",")] if isinstance(value, str) else list(value)
    names = [n for n in names if n]
    for n in names:
        make_setup(n)  # validates
    return names or None


class QueryCache:
    """Wraps an embedder so each distinct query text is embedded once per run (setups share
    the query vectors; passages go to the wrapped embedder)."""

    def __init__(self, embedder: Any):
        self.inner = embedder
        self.id = embedder.id
        self.dim = embedder.dim
        self._cache: dict[str, np.ndarray] = {}
        self.seconds = 0.0
        self.embedded = 0

    def prime(self, texts: Sequence[str], batch: int = 32) -> None:
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for i in range(0, len(todo), batch):
            part = todo[i : i + batch]
            t0 = time.perf_counter()
            vecs = self.inner.embed_queries(part)
            self.seconds += time.perf_counter() - t0
            self.embedded += len(part)
            self._cache.update(zip(part, np.asarray(vecs, np.float32), strict=True))

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        self.prime(texts)
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed_passages(texts)


def _retriever(svc: Any, index: Any, setup: Setup, embedder: Any, reranker: Any) -> Any:
    from kb.query import QueryProcessor, glossary_groups
    from kb.retriever import HybridRetriever

    cfg = svc.config
    settings = dataclasses.replace(cfg.retrieval, **dict(setup.retrieval))
    glossary = glossary_groups(cfg.glossary, settings.generic_glossary) if settings.use_glossary else []
    queries = QueryProcessor(glossary, settings.strip_question_words)
    return HybridRetriever(index, embedder, svc.segmenter, queries, settings,
                           reranker if setup.rerank else None)


def chunk_variant_settings(cfg: Config, max_chars: int):
    """The config's chunk settings at another ``max_chars``; the list limit scales with it."""
    base = cfg.chunking
    list_max = max(max_chars, round(base.list_max_chars * max_chars / max(base.max_chars, 1)))
    return dataclasses.replace(base, max_chars=max_chars, list_max_chars=list_max)


def variant_index(svc: Any, max_chars: int, progress: bool = False) -> tuple[Any, dict]:
    """The corpus indexed at another chunk size, in ``data/cache/eval/index-c<N>``; vectors of
    the main index and of the previous variant build are reused by content hash."""
    from ingest.pipeline import ingest_corpus
    from kb.index import IndexError_, build_index, load_index
    from kb.service import file_limits

    cfg = svc.config
    settings = chunk_variant_settings(cfg, max_chars)
    path = cfg.data_dir / "cache" / "eval" / f"index-c{max_chars}"
    cache = svc.index.cached_vectors()
    previous, previous_fp = None, ""
    try:
        old = load_index(path, svc.embedder.id, svc.segmenter.fingerprint)
        previous, previous_fp = old.records(), old.manifest.get("ingest_fingerprint", "")
        cache.update(old.cached_vectors())
    except IndexError_:
        pass
    result = ingest_corpus(cfg.corpus_dir, settings, previous, previous_fp,
                           progress=False, limits=file_limits(cfg))
    manifest = build_index(result, svc.embedder, svc.segmenter, path, settings.as_dict(),
                           flat_max=cfg.retrieval.flat_index_max, cache=cache, progress=progress,
                           chunk_vectors=cfg.embedder.chunk_vectors)
    return load_index(path, svc.embedder.id, svc.segmenter.fingerprint), manifest


# -- dev-set evaluation --------------------------------------------------------------------------
def _say(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _aggregate(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, float | None]:
    return {k: mean(r.get(k) for r in rows) for k in keys}


RETRIEVAL_KEYS = [f"hit@{k}" for k in HIT_KS] + ["mrr@10", "ndcg@10", "recall@10"]
ANSWER_KEYS = ["citation_hit", "key_point_coverage"]


def evaluate_retrieval(svc: Any, questions: Sequence[DevQuestion], setup: Setup, embedder: Any,
                       reranker: Any = None, index: Any = None,
                       warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One setup on the in-scope questions: aggregate metrics, hit@5 by group, per question."""
    index = index or svc.index
    retriever = _retriever(svc, index, setup, embedder, reranker)
    texts = {s: d.text for s, d in index.documents.items()}
    chunk_places = [places(c) for c in index.chunks]
    per_q = []
    seconds = 0.0
    for q in questions:
        if not q.in_scope:
            continue
        golds = gold_spans(q.gold, texts, warn)
        flat = [s for g in golds for s in g]
        n_rel = sum(1 for ps in chunk_places if any(overlaps(p, g) for p in ps for g in flat))
        t0 = time.perf_counter()
        hits = retriever.search(q.question, k=K, mode=setup.mode)
        seconds += time.perf_counter() - t0
        rels = relevance(hits, golds)
        row = {"id": q.id, "kind": q.kind, "style": q.style, "script": q.script,
               "format": q.group("format"), "first_relevant": next((i for i, r in enumerate(rels, 1) if r), None),
               "relevant_chunks": n_rel}
        row.update(retrieval_scores(rels, n_rel, gold_recall(hits, golds)))
        per_q.append(row)
    out: dict[str, Any] = {"status": "ok", "questions": len(per_q)}
    out.update(_aggregate(per_q, RETRIEVAL_KEYS))
    out["ms_per_query"] = round(1000 * seconds / max(len(per_q), 1), 2)
    out["hit@5_by"] = {
        g: {v: mean(r["hit@5"] for r in per_q if r[g] == v) for v in sorted({r[g] for r in per_q})}
        for g in GROUPS
    }
    out["per_question"] = per_q
    return out


def evaluate_answers(svc: Any, questions: Sequence[DevQuestion], progress: bool = False,
                     warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Ask every question through the service and score the answers."""
    texts = {s: d.text for s, d in svc.index.documents.items()}
    rows = []
    n_cit = n_valid = 0
    latencies = []
    for i, q in enumerate(questions, 1):
        if progress and (i % 20 == 0 or i == len(questions)):
            _say(True, f"  answers: {i}/{len(questions)}")
        t0 = time.perf_counter()
        try:
            a = ask_quietly(svc, q.question).to_dict()
        except Exception as e:  # one broken answer must not hide the others
            if warn:
                warn(f"{q.id}: ask failed: {type(e).__name__}: {e}")
            a = {"answered": False, "answer": "", "citations": [], "error": str(e)}
        latencies.append(1000 * (time.perf_counter() - t0))
        cits = a.get("citations") or []
        valid = [texts.get(c["source"], "\x00")[c["start"] : c["end"]] == c["quote"] for c in cits]
        n_cit += len(cits)
        n_valid += sum(valid)
        if not all(valid) and warn:
            warn(f"{q.id}: {len(valid) - sum(valid)} citation(s) are not exact slices")
        row: dict[str, Any] = {
            "id": q.id, "question": q.question, "kind": q.kind, "style": q.style, "script": q.script, "format": q.group("format"),
            "in_scope": q.in_scope,
            "answered": bool(a.get("answered")), "citations": len(cits),
            "citations_valid": all(valid), "markers_ok": citation_markers_ok(a),
            "citation_hit": None, "key_point_coverage": None, "key_point_coverage_quotes": None,
        }
        if q.in_scope:
            golds = [s for g in gold_spans(q.gold, texts) for s in g]
            row["citation_hit"] = 1.0 if any(is_relevant(c, golds) for c in cits) else 0.0
            row["key_point_coverage"] = key_point_coverage(a.get("answer") or "", q.key_points)
            with_quotes = (a.get("answer") or "") + "\n" + "\n".join(c["quote"] for c in cits)
            row["key_point_coverage_quotes"] = key_point_coverage(with_quotes, q.key_points)
            row["missing_key_points"] = [
                k for k, hit in zip(q.key_points, key_point_hits(a.get("answer") or "", q.key_points), strict=True)
                if not hit
            ]
        if q.uncovered:  # the answer says which part the documents do not address
            row["uncovered_named"] = bool(a.get("answered")) and PART_NOT_COVERED_MARK in normalize(a.get("answer") or "")
        rows.append(row)
    ins = [r for r in rows if r["in_scope"]]
    out: dict[str, Any] = {
        "questions": len(rows),
        "citations": n_cit,
        "citation_validity": ratio(n_valid, n_cit),
        "markers_consistent": mean(1.0 if r["markers_ok"] else 0.0 for r in rows),
        "citation_hit": mean(r["citation_hit"] for r in ins),
        "citation_hit_answered": mean(r["citation_hit"] for r in ins if r["answered"]),
        "key_point_coverage": mean(r["key_point_coverage"] for r in ins),
        "key_point_coverage_answered": mean(r["key_point_coverage"] for r in ins if r["answered"]),
        "key_point_coverage_quotes": mean(r["key_point_coverage_quotes"] for r in ins),
        "answered_in_scope_rate": mean(1.0 if r["answered"] else 0.0 for r in ins),
        "ask_ms_p50": round(float(np.percentile(latencies, 50)), 2) if latencies else None,
        "ask_ms_p95": round(float(np.percentile(latencies, 95)), 2) if latencies else None,
    }
    out.update(refusal_metrics((not r["answered"], not r["in_scope"]) for r in rows))
    two_part = [r for r in rows if "uncovered_named" in r]
    out["two_part"] = len(two_part)
    out["two_part_named"] = sum(r["uncovered_named"] for r in two_part)
    out["per_question"] = rows
    return out


def _breakdown(questions: Sequence[DevQuestion], retrieval: Mapping[str, Any] | None,
               answers: Mapping[str, Any] | None) -> dict[str, dict[str, dict[str, Any]]]:
    ret = {r["id"]: r for r in (retrieval or {}).get("per_question", [])}
    ans = {r["id"]: r for r in (answers or {}).get("per_question", [])}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for g in GROUPS:
        out[g] = {}
        for v in sorted({q.group(g) for q in questions}):
            qs = [q for q in questions if q.group(g) == v]
            rrows = [ret[q.id] for q in qs if q.id in ret]
            arows = [ans[q.id] for q in qs if q.id in ans]
            cell: dict[str, Any] = {"n": len(qs), "in_scope": sum(q.in_scope for q in qs)}
            cell.update(_aggregate(rrows, ["hit@1", "hit@5", "mrr@10", "ndcg@10"]))
            if arows:
                cell.update(_aggregate([r for r in arows if r["in_scope"]], ANSWER_KEYS))
                cell["refusal_accuracy"] = refusal_metrics(
                    (not r["answered"], not r["in_scope"]) for r in arows)["refusal_accuracy"]
            out[g][v] = cell
    return out


def evaluate_dev(
    service_or_config: Any,
    setups: str | Sequence[str] | None = None,
    dev_path: Path | str | None = None,
    answers: bool = True,
    progress: bool = False,
    chunk_sizes: Sequence[int] = DEFAULT_CHUNK_SIZES,
) -> dict[str, Any]:
    """Evaluate retrieval setups and the answers of the configured service on the dev set.

    ``service_or_config``: a ``KnowledgeService`` or a ``Config`` (the service is built, and
    its index too when missing). ``setups``: names or a comma-separated string (default: all,
    see ``default_setup_names``). Returns a JSON-serialisable dict; ``summary`` holds
    ``hit@5``, ``mrr@10``, ``ndcg@10`` (the configured setup, or the first one evaluated),
    ``citation_validity``, ``citation_hit``, ``key_point_coverage``, ``refusal_precision``,
    ``refusal_recall`` and ``refusal_accuracy`` (``None`` when not measured or undefined)."""
    from kb.rerank import make_reranker
    from kb.service import KnowledgeService

    t_start = time.perf_counter()
    if isinstance(service_or_config, Config):
        svc = KnowledgeService(service_or_config, progress=progress)
    else:
        svc = service_or_config
    cfg: Config = svc.config
    dev_path = Path(dev_path or DEV_PATH)
    questions = load_dev(dev_path)
    names = parse_setups(setups) or default_setup_names(cfg, chunk_sizes)
    warnings: list[str] = []

    def warn(msg: str) -> None:
        if msg not in warnings:
            warnings.append(msg)

    embedder = QueryCache(svc.embedder)
    if any(make_setup(n).mode != "bm25" for n in names):
        embedder.prime([normalize(q.question) for q in questions if q.in_scope])
    results: dict[str, Any] = {}
    reranker = None
    variants: dict[int, Any] = {}
    for name in names:
        setup = make_setup(name)
        entry: dict[str, Any] = {"description": setup.describe(cfg), "mode": setup.mode}
        results[name] = entry
        index = svc.index
        if setup.rerank:
            if not cfg.retrieval.reranker:
                entry.update(status="not configured", description="retrieval.reranker is empty")
                continue
            try:
                reranker = reranker or make_reranker(cfg.retrieval.reranker)
            except Exception as e:
                entry.update(status=f"error: {type(e).__name__}: {e}")
                warn(f"{name}: reranker {cfg.retrieval.reranker!r} could not be loaded: {e}")
                continue
        if setup.chunk_chars:
            if setup.chunk_chars not in variants:
                _say(progress, f"building the index at chunk size {setup.chunk_chars} ...")
                t0 = time.perf_counter()
                variants[setup.chunk_chars] = variant_index(svc, setup.chunk_chars)
                m = variants[setup.chunk_chars][1]
                _say(progress, f"  {m['counts']['retrievable_chunks']} chunks, {m['counts']['embedded']} texts "
                               f"embedded, {time.perf_counter() - t0:.1f}s")
            index, manifest = variants[setup.chunk_chars]
            entry["chunks"] = manifest["counts"]["retrievable_chunks"]
            entry["build_seconds"] = manifest["build"]["total"]
        else:
            entry["chunks"] = len(svc.index.chunks)
        _say(progress, f"retrieval: {name}")
        entry.update(evaluate_retrieval(svc, questions, setup, embedder, reranker, index, warn))

    default = config_setup_name(cfg)
    evaluated = [n for n in names if results[n].get("status") == "ok"]
    main_setup = default if default in evaluated else (evaluated[0] if evaluated else None)
    ans = None
    if answers:
        _say(progress, f"answers: asking {len(questions)} questions ...")
        ans = evaluate_answers(svc, questions, progress, warn)
    main_ret = results.get(main_setup) if main_setup else None
    summary = {k: (main_ret or {}).get(k) for k in ("hit@1", "hit@5", "mrr@10", "ndcg@10")}
    for k in ("citation_validity", "markers_consistent", "citation_hit", "key_point_coverage",
              "refusal_precision", "refusal_recall", "refusal_accuracy"):
        summary[k] = (ans or {}).get(k)
    return {
        "dev": str(dev_path),
        "questions": len(questions),
        "in_scope": sum(q.in_scope for q in questions),
        "out_of_scope": sum(not q.in_scope for q in questions),
        "config": {
            "embedder": svc.embedder.id, "index": str(cfg.index_path), "chunks": len(svc.index.chunks),
            "chunking": cfg.chunking.as_dict(), "fusion": cfg.retrieval.fusion,
            "reranker": cfg.retrieval.reranker or None, "answerer": getattr(svc.answerer, "id", "?"),
            "min_confidence": cfg.answer.min_confidence,
        },
        "config_setup": default,
        "main_setup": main_setup,
        "setups": results,
        "answers": ans,
        "breakdown": _breakdown(questions, main_ret, ans),
        "summary": summary,
        "warnings": warnings,
        "query_embedding": {"texts": embedder.embedded, "seconds": round(embedder.seconds, 2)},
        "seconds": round(time.perf_counter() - t_start, 1),
    }


# -- public benchmark --------------------------------------------------------------------------
class _PassageVectorsOnly:
    """An embedder for benchmark indexes: queries go to the real model; passages never reach
    it (chunk vectors come from the cache) and sentence units get zero vectors, since only the
    answerer reads them and public sets are measured on retrieval alone."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.id = inner.id
        self.dim = inner.dim

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return np.zeros((len(texts), self.dim), np.float32)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80]


def cached_vectors(embed: Callable[[list[str]], np.ndarray], dim: int, inputs: Sequence[str], cache_file: Path,
                   progress: bool = True, batch: int = 64, checkpoint_seconds: float = 120.0,
                   what: str = "passages") -> tuple[np.ndarray, dict[str, Any]]:
    """Vectors of ``inputs`` (already normalised) by ``embed``, from ``cache_file`` when present.
    Otherwise they are embedded with a measured time estimate printed first and checkpoints
    every ``checkpoint_seconds`` (an interrupted run resumes from ``<file>.partial.npy``)."""
    info: dict[str, Any] = {"cache": str(cache_file), what: len(inputs)}
    if cache_file.exists():
        vectors = np.load(cache_file)
        if vectors.shape == (len(inputs), dim):
            info.update(cached=True, seconds=0.0)
            return vectors, info
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    partial = cache_file.with_suffix(".partial.npy")
    vectors = np.zeros((len(inputs), dim), np.float32)
    done = 0
    if partial.exists():
        old = np.load(partial)
        if old.ndim == 2 and old.shape[1] == dim and len(old) <= len(inputs):
            vectors[: len(old)] = old
            done = len(old)
    t_start = time.perf_counter()
    last_save = t_start
    chars_done = 0
    total_chars = sum(len(t) for t in inputs[done:])
    _say(progress, f"embedding {len(inputs) - done} {what} ({total_chars:,} characters) into {cache_file.name}"
                   + (f", resuming after {done}" if done else ""))
    i = done
    while i < len(inputs):
        part = list(inputs[i : i + batch])
        vectors[i : i + len(part)] = embed(part)
        i += len(part)
        chars_done += sum(len(t) for t in part)
        elapsed = time.perf_counter() - t_start
        if progress and (i - done == len(part) or time.perf_counter() - last_save >= checkpoint_seconds or i == len(inputs)):
            rate = elapsed / max(chars_done, 1)
            left = rate * (total_chars - chars_done)
            _say(True, f"  {i}/{len(inputs)} {what}, {1000 * rate:.2f} ms/char, ~{left / 60:.1f} min left"
                       + (f" (expected total ~{rate * total_chars / 60:.1f} min)" if i - done == len(part) else ""))
        if time.perf_counter() - last_save >= checkpoint_seconds and i < len(inputs):
            np.save(partial, vectors[:i])
            last_save = time.perf_counter()
    np.save(cache_file, vectors)
    if partial.exists():
        partial.unlink()
    seconds = time.perf_counter() - t_start
    info.update(cached=False, seconds=round(seconds, 1),
                ms_per_char=round(1000 * seconds / max(total_chars, 1), 3) if total_chars else None)
    return vectors, info


def evaluate_bench(config: Config, name: str, limit: int | None = None,
                   setups: str | Sequence[str] | None = None, progress: bool = True,
                   root: Path | None = None, embedder: Any = None) -> dict[str, Any]:
    """Retrieval on a public set: one chunk per passage, a temporary index, R@k and MRR@10."""
    from kb.benchdata import ingest_records, load_bench, texts_digest
    from kb.embed import make_embedder
    from kb.index import build_index, embed_input, index_text, load_index, vector_key
    from kb.query import QueryProcessor, glossary_groups
    from kb.retriever import HybridRetriever
    from kb.segment import Segmenter

    t_start = time.perf_counter()
    names = parse_setups(setups) or bench_setup_names(config)
    for n in names:
        s = make_setup(n)
        if s.chunk_chars or s.rerank:
            raise ValueError(f"setup {n!r} does not apply to a public set (one chunk per passage)")
    bench = load_bench(name, limit, root)
    if not bench.queries:
        raise ValueError(f"{bench.folder}: no queries")
    embedder = embedder or make_embedder(config.embedder)
    segmenter = Segmenter(config.userdict, config.stopwords)
    result = ingest_records(bench.passages)
    chunks = result.kept_chunks
    inputs = [embed_input(index_text(c)) for c in chunks]
    cache_file = (config.data_dir / "cache" / "bench"
                  / f"{name}-{_slug(embedder.id)}-{texts_digest(inputs)}.npy")
    vectors, embed_info = cached_vectors(embedder.embed_passages, embedder.dim, inputs, cache_file, progress)
    cache = {vector_key(embedder.id, t): v for t, v in zip(inputs, vectors, strict=True)}
    warnings: list[str] = []
    known = {c.source for c in chunks}
    missing = sum(1 for q in bench.queries if not set(q.gold) & known)
    if missing:
        warnings.append(f"{missing} queries have no gold passage among the passages (counted as misses)")
    with tempfile.TemporaryDirectory(prefix=f"kb-bench-{name}-") as tmp:
        _say(progress, f"indexing {len(chunks)} passages (BM25 segmentation) ...")
        t0 = time.perf_counter()
        manifest = build_index(result, _PassageVectorsOnly(embedder), segmenter, Path(tmp) / "index",
                               {"one_chunk_per_passage": True},
                               flat_max=config.retrieval.flat_index_max, cache=cache, progress=False)
        index = load_index(Path(tmp) / "index", embedder.id, segmenter.fingerprint)
        t_index = time.perf_counter() - t0
        qcache = QueryCache(embedder)
        qtexts = list(dict.fromkeys(normalize(q.question) for q in bench.queries))  # what the retriever embeds
        qfile = config.data_dir / "cache" / "bench" / f"{name}-queries-{_slug(embedder.id)}-{texts_digest(qtexts)}.npy"
        t0 = time.perf_counter()
        qvecs, q_info = cached_vectors(embedder.embed_queries, embedder.dim, qtexts, qfile, progress, what="queries")
        qcache._cache.update(zip(qtexts, qvecs, strict=True))
        q_info["seconds"] = round(time.perf_counter() - t0, 1)
        setups_out: dict[str, Any] = {}
        for n in names:
            setup = make_setup(n)
            settings = dataclasses.replace(config.retrieval, **dict(setup.retrieval))
            gl = glossary_groups(config.glossary, settings.generic_glossary) if settings.use_glossary else []
            retr = HybridRetriever(index, qcache, segmenter, QueryProcessor(gl, settings.strip_question_words),
                                   settings, None)
            _say(progress, f"retrieval: {n}")
            rows = []
            t0 = time.perf_counter()
            for q in bench.queries:
                hits = retr.search(q.question, k=K, mode=setup.mode)
                gold = set(q.gold)
                rels = [h.source in gold for h in hits]
                rows.append({"R@1": hit_at_k(rels, 1), "R@5": hit_at_k(rels, 5), "R@10": hit_at_k(rels, 10),
                             "MRR@10": reciprocal_rank(rels, K)})
            dt = time.perf_counter() - t0
            setups_out[n] = {"description": setup.describe(config), "status": "ok", "queries": len(rows),
                             **_aggregate(rows, ["R@1", "R@5", "R@10", "MRR@10"]),
                             "ms_per_query": round(1000 * dt / len(rows), 2)}
    return {
        "bench": name, "folder": str(bench.folder), "passages": len(bench.passages),
        "characters": bench.characters, "queries": len(bench.queries),
        "limit": limit, "embedder": embedder.id, "vector_index": manifest["vector_index"],
        "embedding": embed_info, "index_seconds": round(t_index, 1),
        "query_embedding": {"texts": len(qtexts), **q_info},
        "setups": setups_out, "warnings": warnings,
        "seconds": round(time.perf_counter() - t_start, 1),
    }


# -- reports -------------------------------------------------------------------------------------
def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def text_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    cells = [list(header)] + [[fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = []
    for j, r in enumerate(cells):
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def dev_retrieval_rows(res: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    header = ["setup", "hit@1", "hit@3", "hit@5", "hit@10", "MRR@10", "nDCG@10", "recall@10", "chunks", "ms/q"]
    rows = []
    for name, s in res["setups"].items():
        label = name + (" *" if name == res.get("config_setup") else "")
        if s.get("status") != "ok":
            rows.append([label, s.get("status")] + [""] * (len(header) - 2))
            continue
        rows.append([label] + [s[k] for k in RETRIEVAL_KEYS] + [s.get("chunks"), s.get("ms_per_query")])
    return header, rows


ANSWER_ROWS = (
    ("citation validity (text[start:end] == quote)", "citation_validity"),
    ("[n] markers match citations", "markers_consistent"),
    ("citation hit (in-scope)", "citation_hit"),
    ("citation hit (in-scope, answered)", "citation_hit_answered"),
    ("key-point coverage in answer (in-scope)", "key_point_coverage"),
    ("key-point coverage in answer (answered)", "key_point_coverage_answered"),
    ("key-point coverage in answer + quotes", "key_point_coverage_quotes"),
    ("answered (in-scope)", "answered_in_scope_rate"),
    ("refusal precision", "refusal_precision"),
    ("refusal recall", "refusal_recall"),
    ("refusal accuracy", "refusal_accuracy"),
    ("ask latency p50 ms", "ask_ms_p50"),
    ("ask latency p95 ms", "ask_ms_p95"),
)


def dev_markdown(res: Mapping[str, Any], chart: str | None) -> str:
    c = res["config"]
    out = [
        f"# Evaluation: {Path(res['dev']).stem} set",
        "",
        f"- dev set: `{Path(res['dev']).name}`, {res['questions']} questions "
        f"({res['in_scope']} in scope, {res['out_of_scope']} out of scope)",
        f"- index: `{c['index']}`, {c['chunks']} chunks, chunking {c['chunking']}",
        f"- embedder: `{c['embedder']}`; fusion {c['fusion']}; reranker {c['reranker'] or 'not configured'}; "
        f"answerer {c['answerer']} (min_confidence {c['min_confidence']})",
        f"- run: {time.strftime('%Y-%m-%d %H:%M')}, {res['seconds']} s",
        "",
        "## Retrieval (in-scope questions, k = 10)",
        "",
        "A hit is relevant when it (or a near-duplicate place in its `also_in`) overlaps a gold quote. "
        "`*` = the setup the configured service uses. nDCG's ideal ranking holds every relevant "
        "chunk of that setup's own index. ms/q excludes query embedding (cached across setups).",
        "",
    ]
    header, rows = dev_retrieval_rows(res)
    out.append(md_table(header, rows))
    out.append("")
    out += ["| setup | description |", "|---|---|"]
    out += [f"| {n} | {s['description']} |" for n, s in res["setups"].items()]
    ok = {n: s for n, s in res["setups"].items() if s.get("status") == "ok"}
    if ok:
        styles = sorted({v for s in ok.values() for v in s["hit@5_by"]["style"]})
        scripts = sorted({v for s in ok.values() for v in s["hit@5_by"]["script"]})
        out += ["", "### hit@5 by question style and script", ""]
        out.append(md_table(["setup"] + styles + scripts,
                            [[n] + [s["hit@5_by"]["style"].get(v) for v in styles]
                             + [s["hit@5_by"]["script"].get(v) for v in scripts] for n, s in ok.items()]))
    ans = res.get("answers")
    if ans:
        out += ["", f"## Answers (configured service; {ans['citations']} citations in {ans['questions']} answers)", ""]
        out.append(md_table(["metric", "value"], [[label, ans.get(k)] for label, k in ANSWER_ROWS]))
        out += ["", f"Refusals: {ans['refused_out_of_scope']} of {res['out_of_scope']} out-of-scope questions refused; "
                    f"{ans['refused_in_scope']} of {res['in_scope']} in-scope questions refused; "
                    f"{ans['answered_out_of_scope']} out-of-scope questions answered."]
    main = res.get("main_setup")
    out += ["", f"## Breakdown (retrieval: {main}; answers: configured service)"]
    for g, groups in res["breakdown"].items():
        out += ["", f"### by {g}", ""]
        out.append(md_table(
            [g, "n", "in scope", "hit@1", "hit@5", "MRR@10", "nDCG@10", "cite hit", "key points", "refusal acc"],
            [[v, cell["n"], cell["in_scope"], cell.get("hit@1"), cell.get("hit@5"), cell.get("mrr@10"),
              cell.get("ndcg@10"), cell.get("citation_hit"), cell.get("key_point_coverage"),
              cell.get("refusal_accuracy")] for v, cell in groups.items()]))
    out += ["", "## Misses", ""]
    if main and main in ok:
        missed = [r for r in ok[main]["per_question"] if not r["hit@5"]]
        out.append(f"In-scope questions with no relevant hit in the top 5 ({main}): "
                   + (", ".join(f"{r['id']} ({r['style']})" for r in missed) or "none"))
    if ans:
        wrong_refusals = [r["id"] for r in ans["per_question"] if r["in_scope"] and not r["answered"]]
        wrong_answers = [r["id"] for r in ans["per_question"] if not r["in_scope"] and r["answered"]]
        no_cite = [r["id"] for r in ans["per_question"] if r["in_scope"] and r["answered"] and not r["citation_hit"]]
        out.append("")
        out.append(f"- in-scope questions refused: {', '.join(wrong_refusals) or 'none'}")
        out.append(f"- out-of-scope questions answered: {', '.join(wrong_answers) or 'none'}")
        out.append(f"- answered in-scope questions citing no gold passage: {', '.join(no_cite) or 'none'}")
    if res.get("warnings"):
        out += ["", "## Warnings", ""] + [f"- {w}" for w in res["warnings"]]
    if chart:
        out += ["", f"![retrieval by setup]({chart})"]
    return "\n".join(out) + "\n"


def bench_rows(res: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    header = ["setup", "R@1", "R@5", "R@10", "MRR@10", "ms/q"]
    return header, [[n, s["R@1"], s["R@5"], s["R@10"], s["MRR@10"], s["ms_per_query"]]
                    for n, s in res["setups"].items()]


BENCH_REFERENCE = {
    "drcd": "plain BM25 (bm25s, jieba): R@1 .871 / R@5 .966 / MRR@10 .913; with OpenCC t2s before "
            "jieba R@1 .893 / R@5 .979 / MRR@10 .931",
    "cmrc2018": "plain BM25 (bm25s, jieba): R@1 .967 / R@5 .990 / MRR@10 .978",
}


def bench_markdown(res: Mapping[str, Any], chart: str | None) -> str:
    e = res["embedding"]
    emb = "from cache" if e.get("cached") else f"{e.get('seconds')} s ({e.get('ms_per_char')} ms/char)"
    out = [
        f"# Evaluation: public set `{res['bench']}`",
        "",
        f"- {res['passages']:,} passages ({res['characters']:,} characters), one chunk per passage; "
        f"{res['queries']:,} queries" + (f" (seeded sample, --limit {res['limit']})" if res.get("limit") else ""),
        f"- embedder `{res['embedder']}`; passage vectors {emb}; vector index {res['vector_index']}; "
        f"index build {res['index_seconds']} s; query vectors "
        + ("from cache" if res["query_embedding"].get("cached") else f"{res['query_embedding']['seconds']} s")
        + f" for {res['query_embedding']['texts']:,} distinct queries",
        f"- run: {time.strftime('%Y-%m-%d %H:%M')}, {res['seconds']} s",
        "",
        "R@k = share of queries with a gold passage in the top k. ms/q excludes query embedding.",
        "",
    ]
    header, rows = bench_rows(res)
    out.append(md_table(header, rows))
    out += ["", "| setup | description |", "|---|---|"]
    out += [f"| {n} | {s['description']} |" for n, s in res["setups"].items()]
    if res["bench"] in BENCH_REFERENCE:
        out += ["", f"Reference (`../shared/bench/README.md`, up to 2,000 queries): {BENCH_REFERENCE[res['bench']]}."]
    if res.get("warnings"):
        out += ["", "## Warnings", ""] + [f"- {w}" for w in res["warnings"]]
    if chart:
        out += ["", f"![retrieval by setup]({chart})"]
    return "\n".join(out) + "\n"


def write_chart(path: Path, title: str, setups: Sequence[str], metrics: Mapping[str, Sequence[float | None]]) -> Path:
    """Grouped bars: one group per setup, one bar per metric (ASCII labels only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(metrics), 1)
    width = 0.8 / n
    x = np.arange(len(setups))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(setups) + 2), 4.2))
    for j, (label, values) in enumerate(metrics.items()):
        vals = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(x + (j - (n - 1) / 2) * width, vals, width, label=label)
        for b, v in zip(bars, values, strict=True):
            if v is not None:
                ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 0.01, f"{v:.2f}",
                        ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_xticks(x, setups, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=n, loc="upper center", bbox_to_anchor=(0.5, -0.22))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _jsonable(res: Any) -> Any:
    return json.loads(json.dumps(res, ensure_ascii=False, default=str))


def write_dev_report(res: Mapping[str, Any], folder: Path) -> dict[str, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ok = [(n, s) for n, s in res["setups"].items() if s.get("status") == "ok"]
    name = Path(res["dev"]).stem  # "dev", or the stem of another question file ("holdout")
    chart = None
    if ok:
        chart = write_chart(folder / f"eval-{name}.png", f"{name} set retrieval ({res['in_scope']} in-scope questions)",
                            [n for n, _ in ok],
                            {m: [s[k] for _, s in ok] for m, k in
                             (("hit@1", "hit@1"), ("hit@5", "hit@5"), ("MRR@10", "mrr@10"), ("nDCG@10", "ndcg@10"))})
    md = folder / f"eval-{name}.md"
    md.write_text(dev_markdown(res, chart.name if chart else None), encoding="utf-8")
    js = folder / f"eval-{name}.json"
    js.write_text(json.dumps(_jsonable(res), ensure_ascii=False, indent=1), encoding="utf-8")
    return {"markdown": md, "json": js, **({"chart": chart} if chart else {})}


def write_bench_report(res: Mapping[str, Any], folder: Path) -> dict[str, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = list(res["setups"])
    stem = f"eval-{res['bench']}"
    chart = write_chart(folder / f"{stem}.png", f"{res['bench']} retrieval ({res['queries']} queries)", names,
                        {k: [res["setups"][n][k] for n in names] for k in ("R@1", "R@5", "MRR@10")})
    md = folder / f"{stem}.md"
    md.write_text(bench_markdown(res, chart.name), encoding="utf-8")
    js = folder / f"{stem}.json"
    js.write_text(json.dumps(_jsonable(res), ensure_ascii=False, indent=1), encoding="utf-8")
    return {"markdown": md, "json": js, "chart": chart}


def print_dev(res: Mapping[str, Any]) -> None:
    header, rows = dev_retrieval_rows(res)
    print(f"{Path(res['dev']).name}: {res['questions']} questions ({res['in_scope']} in scope); retrieval on in-scope, k=10; "
          f"* = configured setup")
    ok_names = {n for n, s in res["setups"].items() if s.get("status") == "ok"}
    print(text_table(header, [r for r, n in zip(rows, res["setups"], strict=True) if n in ok_names]))
    for n, s in res["setups"].items():
        if n not in ok_names:
            print(f"{n}: {s.get('status')} ({s.get('description')})")
    ans = res.get("answers")
    if ans:
        print()
        print(text_table(["answers (configured service)", "value"], [[label, ans.get(k)] for label, k in ANSWER_ROWS]))
    main = res.get("main_setup")
    for g, groups in res["breakdown"].items():
        print()
        print(text_table([f"by {g}", "n", "hit@5", "MRR@10", "cite hit", "key points", "refusal acc"],
                         [[v, c["n"], c.get("hit@5"), c.get("mrr@10"), c.get("citation_hit"),
                           c.get("key_point_coverage"), c.get("refusal_accuracy")] for v, c in groups.items()]))
    if main:
        print(f"(breakdown retrieval columns: {main})")
    for w in res.get("warnings", []):
        print(f"warning: {w}")


# -- several corpora side by side --------------------------------------------------------------
CORPORA_FILE = ROOT / "eval" / "corpora.toml"


def load_corpora(path: Path = CORPORA_FILE) -> dict[str, dict[str, Any]]:
    import tomllib

    with open(path, "rb") as fh:
        raw = tomllib.load(fh)
    out = {}
    for name, c in raw.items():
        out[name] = {
            "corpus": (ROOT / c["corpus"]).resolve(),
            "questions": [(ROOT / q).resolve() for q in c.get("questions", [])],
            "config": c.get("config", {}),
        }
    return out


def corpus_config(config: Config, name: str, spec: Mapping[str, Any]) -> Config:
    """``config`` pointed at corpus ``name``: its folder, its own index under the data folder
    (the bundled corpus keeps the configured index), and the corpus's config overrides."""
    changes: dict[str, Any] = {}
    if Path(spec["corpus"]).resolve() != Path(config.corpus_dir).resolve():
        changes["corpus_dir"] = Path(spec["corpus"])
        changes["index_dir"] = Path(config.data_dir) / "cache" / "eval" / f"index-{name}"
    for section, values in (spec.get("config") or {}).items():
        if isinstance(values, dict):
            changes.update({f"{section}__{k}": tuple(v) if isinstance(v, list) else v for k, v in values.items()})
        else:
            changes[section] = values
    return config.replace(**changes) if changes else config


def evaluate_corpora(config: Config, names: Sequence[str] | None = None,
                     progress: bool = False) -> dict[str, Any]:
    """Each corpus of ``eval/corpora.toml`` (or those in ``names``) with each of its question
    sets, through the configured service and setup: summary figures side by side and a
    breakdown by document format. A corpus whose folder is missing is skipped, named."""
    from kb.service import KnowledgeService, run_ingest

    t0 = time.perf_counter()
    corpora = load_corpora()
    unknown = sorted(set(names or []) - set(corpora))
    if unknown:
        raise ValueError(f"unknown corpus {unknown[0]!r}: eval/corpora.toml has {', '.join(corpora)}")
    runs: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for name, spec in corpora.items():
        if names and name not in names:
            continue
        if not Path(spec["corpus"]).is_dir():
            skipped[name] = f"corpus folder {spec['corpus']} is missing"
            continue
        cfg = corpus_config(config, name, spec)
        _say(progress, f"{name}: indexing {cfg.corpus_dir} ...")
        run_ingest(cfg, progress=False)
        svc = KnowledgeService(cfg, progress=False)
        for qpath in spec["questions"]:
            if not qpath.exists():
                skipped[f"{name}/{qpath.name}"] = f"question file {qpath} is missing"
                continue
            _say(progress, f"{name}: {qpath.relative_to(ROOT) if qpath.is_relative_to(ROOT) else qpath}")
            res = evaluate_dev(svc, setups=[config_setup_name(cfg)], dev_path=qpath, answers=True)
            runs.append({"corpus": name, "questions_file": str(qpath), "set": qpath.stem, "result": res})
    return {"runs": runs, "skipped": skipped, "seconds": round(time.perf_counter() - t0, 1)}


CORPORA_ROWS = (
    ("questions (in scope / out)", None),
    ("hit@5", "hit@5"),
    ("citation validity", "citation_validity"),
    ("citation hit", "citation_hit"),
    ("key points", "key_point_coverage"),
    ("out-of-scope refused", "oos"),
    ("in-scope refused", "ins"),
    ("two-part: uncovered part named", "two"),
)


def _corpora_cell(res: Mapping[str, Any], key: str | None) -> str:
    ans = res.get("answers") or {}
    if key is None:
        return f"{res['in_scope']} / {res['out_of_scope']}"
    if key == "oos":
        return f"{ans.get('refused_out_of_scope', 0)}/{res['out_of_scope']}"
    if key == "ins":
        return f"{ans.get('refused_in_scope', 0)}/{res['in_scope']}"
    if key == "two":
        return f"{ans.get('two_part_named', 0)}/{ans['two_part']}" if ans.get("two_part") else "-"
    return fmt(res["summary"].get(key))


def corpora_tables(out: Mapping[str, Any]) -> tuple[list[str], list[list[Any]], list[list[Any]]]:
    """The side-by-side summary (metric rows, one column per corpus/set) and the per-format rows."""
    runs = out["runs"]
    header = ["", *[f"{r['corpus']} {r['set']}" for r in runs]]
    rows = [[label, *[_corpora_cell(r["result"], key) for r in runs]] for label, key in CORPORA_ROWS]
    fmt_rows = []
    for r in runs:
        for v, c in r["result"]["breakdown"]["format"].items():
            fmt_rows.append([f"{r['corpus']} {r['set']}", v, c["n"], c.get("hit@5"), c.get("citation_hit"),
                             c.get("key_point_coverage"), c.get("refusal_accuracy")])
    return header, rows, fmt_rows


FORMAT_HEADER = ["corpus / set", "format", "n", "hit@5", "cite hit", "key points", "refusal acc"]


def print_corpora(out: Mapping[str, Any]) -> None:
    header, rows, fmt_rows = corpora_tables(out)
    print(text_table(header, rows))
    print()
    print(text_table(FORMAT_HEADER, fmt_rows))
    for name, why in out["skipped"].items():
        print(f"skipped {name}: {why}")
    for r in out["runs"]:
        res = r["result"]
        print(f"{r['corpus']} {r['set']}:")
        for label, qs in misclassified(res).items():
            print(f"  {label}: " + ("; ".join(f"{q['id']} {q.get('question', '')}" for q in qs) or "none"))
        for w in res.get("warnings", []):
            print(f"  warning: {w}")


def misclassified(res: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    """The questions a run got wrong, by how: refusals of answerable questions, answers to
    out-of-scope ones, two-part questions whose uncovered part was not named, answers citing
    no gold passage."""
    per = (res.get("answers") or {}).get("per_question", [])
    return {
        "refused in scope": [q for q in per if q["in_scope"] and not q["answered"]],
        "answered out of scope": [q for q in per if not q["in_scope"] and q["answered"]],
        "two-part, uncovered part not named": [q for q in per if q.get("uncovered_named") is False],
        "no gold citation": [q for q in per if q["in_scope"] and q["answered"] and not q["citation_hit"]],
    }


def write_corpora_report(out: Mapping[str, Any], reports: Path) -> dict[str, Path]:
    reports.mkdir(parents=True, exist_ok=True)
    header, rows, fmt_rows = corpora_tables(out)
    md = ["# Quality per corpus", "", md_table(header, rows), "", "## By document format", "",
          md_table(FORMAT_HEADER, fmt_rows), ""]
    md += [f"- skipped {n}: {w}" for n, w in out["skipped"].items()]
    md += ["", "## Misclassified questions", ""]
    for r in out["runs"]:
        md += [f"### {r['corpus']} {r['set']}", ""]
        for label, qs in misclassified(r["result"]).items():
            md.append(f"- {label}: " + ("; ".join(f"`{q['id']}` {q.get('question', '')}" for q in qs) or "none"))
        md.append("")
    paths = {"markdown": reports / "corpora.md", "json": reports / "corpora.json"}
    paths["markdown"].write_text("\n".join(md) + "\n", encoding="utf-8")
    paths["json"].write_text(json.dumps(out, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    return paths


def main(config: Config, args: Any) -> int:
    """``kb eval``: the dev set, or ``--bench NAME`` a public set; writes the report files."""
    reports = Path(getattr(args, "reports", None) or "reports")
    setups = parse_setups(getattr(args, "setups", "") or None)
    if getattr(args, "corpora", None) is not None:
        names = [n for n in args.corpora.split(",") if n and n != "all"]
        res = evaluate_corpora(config, names or None, progress=True)
        print_corpora(res)
        paths = write_corpora_report(res, reports)
    elif getattr(args, "bench", None):
        res = evaluate_bench(config, args.bench, getattr(args, "limit", None), setups, progress=True)
        header, rows = bench_rows(res)
        print(f"{res['bench']}: {res['passages']} passages, {res['queries']} queries")
        print(text_table(header, rows))
        for w in res["warnings"]:
            print(f"warning: {w}")
        paths = write_bench_report(res, reports)
    else:
        if getattr(args, "limit", None):
            print("kb eval: --limit applies to --bench only; evaluating the whole dev set", file=sys.stderr)
        res = evaluate_dev(config, setups, dev_path=getattr(args, "questions", None), progress=True)
        print_dev(res)
        paths = write_dev_report(res, reports)
    print()
    for kind, p in paths.items():
        print(f"{kind}: {p}")
    print(f"time: {res['seconds']} s")
    return 0


__all__ = [
    "hit_at_k", "reciprocal_rank", "ndcg_at_k", "overlaps", "locate", "gold_spans", "places",
    "is_relevant", "relevance", "gold_recall", "match_key", "key_point_hits", "key_point_coverage",
    "refusal_metrics", "citation_markers_ok", "load_dev", "make_setup", "evaluate_dev",
    "evaluate_bench", "evaluate_retrieval", "evaluate_answers", "main",
]
