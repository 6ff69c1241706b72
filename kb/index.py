"""The persisted knowledge index: documents, chunks, BM25 and FAISS, with a manifest.

Layout of an index folder::

    manifest.json     format version, app version, embedder id and dimension, dictionary hash,
                      chunking settings, document hashes, counts, vector index kind, build time
    documents.jsonl   each document's original decoded text (citations slice it)
    chunks.jsonl      every chunk, near-duplicates included (marked with dup_of)
    vectors.npy       one row per retrievable chunk (float32, L2-normalised)
    units.jsonl       sentences and list items of those chunks (what answers are made of)
    outline.jsonl     each document's headings as a tree (level, parent, section path, offsets)
    words.txt         the corpus's words and short runs of words (``Segmenter.phrases``): what a
                      question's words are matched against as words by the scope guard
    unit_vectors.npy  one row per unit
    section_vectors.npy  one row per distinct section path, when chunk vectors are made from
                      units (``chunk_vectors = "units"``)
    hashes.json       content hash of each row's embedded text: the embedding cache key
    faiss.index       exact inner product, or HNSW past ``flat_index_max`` vectors
    bm25/             bm25s index over jieba tokens

Writes are atomic: the new index is built in a sibling folder and renamed into place, so the
previous index stays loadable until the new one is complete.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import bm25s
import faiss
import numpy as np

from ingest.chunk import Heading
from ingest.models import Chunk, Document
from ingest.pipeline import DocRecord, IngestResult
from kb import __version__
from kb.embed.base import Embedder
from kb.executors.base import Executor
from kb.executors.local import LocalExecutor

# re-exported: the index's texts and cache keys are kb.inputs'
from kb.inputs import (  # noqa: F401
    CHUNK_VECTORS,
    content_hash,
    embed_input,
    embedding_plan,
    index_text,
    vector_key,
)
from kb.segment import Segmenter
from kb.units import Unit

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)

# 2: units keep numbered lists open across explanations, 一是…二是… items
# 3: each document's outline (outline.jsonl); statute articles, repaired PDF text, LF line ends
# 4: the corpus's words (words.txt) and the refusal calibration in the manifest
FORMAT_VERSION = 4
# BM25 parameters: k1 1.2 measured slightly better than bm25s' 1.5 on drcd (R@1 .916 -> .918)
BM25_K1 = 1.2
BM25_B = 0.75
MANIFEST = "manifest.json"
# How chunk vectors are made: "embedded" (each chunk embedded as a whole, then each of its
# sentences again: every character embedded about twice) or "units" (only the sentences and
# the distinct section paths are embedded; a chunk's vector is the length-weighted mean of its
# units' vectors plus SECTION_WEIGHT times its section path's vector, normalised: about half
# the embedding work). README.md ("Ingest is limited by embedding") gives its measured effect.
SECTION_WEIGHT = 0.5


class IndexError_(Exception):
    """The index cannot be used; the message says why and what to run."""


class IndexMissing(IndexError_):
    pass


class IndexMismatch(IndexError_):
    pass


def _embed_all(embedder: Embedder, groups: list[list[str]], cache: dict[str, np.ndarray],
               executor: Executor) -> list[tuple[np.ndarray, list[str], int]]:
    """Vectors for each group of ``texts``, taking cached ones by content hash; the others are
    embedded by ``executor`` in one call. Returns, per group, vectors, hashes and how many were
    embedded now."""
    out = []
    todo: list[tuple[np.ndarray, int, str]] = []  # (group's vectors, row, input)
    for texts in groups:
        inputs = [embed_input(t) for t in texts]
        hashes = [vector_key(embedder.id, t) for t in inputs]
        vectors = np.zeros((len(texts), embedder.dim), np.float32)
        missing = 0
        for i, h in enumerate(hashes):
            v = cache.get(h)
            if v is not None and v.shape == (embedder.dim,):
                vectors[i] = v
            else:
                todo.append((vectors, i, inputs[i]))
                missing += 1
        out.append((vectors, hashes, missing))
    if todo:
        new = np.asarray(executor.embed(embedder, [t for _, _, t in todo]), dtype=np.float32)
        if new.shape != (len(todo), embedder.dim):
            raise ValueError(f"the {executor.name} executor returned vectors of shape {new.shape} for "
                             f"{len(todo)} texts of dimension {embedder.dim}")
        for (vectors, i, _), v in zip(todo, new, strict=True):
            vectors[i] = v
    return out


def corpus_words(segmenter: Segmenter, texts: Iterable[str]) -> set[str]:
    """The words (and short runs of words) of every document, for matching a question's words
    as words."""
    out: set[str] = set()
    for t in texts:
        out |= segmenter.phrases(t)
    out.discard("")
    return out


@dataclass
class KnowledgeIndex:
    path: Path
    manifest: dict
    documents: dict[str, Document]
    all_chunks: list[Chunk]
    chunks: list[Chunk]  # retrievable (kept) chunks; row i of the vectors and BM25 doc i
    vectors: np.ndarray
    faiss_index: faiss.Index
    bm25: bm25s.BM25
    units: list[Unit]  # sentences and list items of the retrievable chunks
    unit_vectors: np.ndarray
    outline: dict[str, list[Heading]] = field(default_factory=dict)  # source -> headings
    words: frozenset[str] = frozenset()  # the corpus's words and short runs of words
    by_id: dict[str, Chunk] = field(default_factory=dict)
    units_of_chunk: dict[int, list[int]] = field(default_factory=dict)
    # (source, section path) -> its units in document order: what lies directly under a heading
    units_of_section: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {c.id: c for c in self.all_chunks}
        for i, u in enumerate(self.units):
            self.units_of_chunk.setdefault(u.chunk, []).append(i)
            c = self.chunks[u.chunk]
            self.units_of_section.setdefault((c.source, c.section), []).append(i)
        for ids in self.units_of_section.values():
            ids.sort(key=lambda i: self.units[i].start)

    def unit_text(self, i: int) -> str:
        u = self.units[i]
        return self.documents[self.chunks[u.chunk].source].text[u.start : u.end]

    @property
    def embedder_id(self) -> str:
        return self.manifest["embedder"]["id"]

    def records(self) -> dict[str, DocRecord]:
        """Per-document records for incremental re-ingest."""
        return _records(self.manifest, self.documents, self.all_chunks, self.outline)

    def cached_vectors(self) -> dict[str, np.ndarray]:
        return _vector_cache(self.path, self.vectors, self.unit_vectors)


def _records(manifest: dict, documents: dict[str, Document], chunks: list[Chunk],
             outline: dict[str, list[Heading]]) -> dict[str, DocRecord]:
    out = {s: DocRecord(d, [], manifest["documents"][s].get("noise_chars", 0), list(outline.get(s, [])))
           for s, d in documents.items()}
    for c in chunks:
        out[c.source].chunks.append(c)
    return out


def _read_outline(folder: Path) -> dict[str, list[Heading]]:
    out: dict[str, list[Heading]] = {}
    with open(folder / "outline.jsonl", encoding="utf-8") as fh:
        for line in fh:
            source, *fields = json.loads(line)
            out.setdefault(source, []).append(Heading(*fields))
    return out


def _vector_cache(folder: Path, vectors: np.ndarray, unit_vectors: np.ndarray) -> dict[str, np.ndarray]:
    """Vectors keyed by the hash of the embedder's id and the embedded text (``hashes.json``);
    chunk vectors made from units are keyed apart, so they never stand in for embedded ones."""
    hashes = json.loads((folder / "hashes.json").read_text())
    cache = dict(zip(hashes["chunks"], vectors, strict=True))
    cache.update(zip(hashes["units"], unit_vectors, strict=True))
    if hashes.get("sections"):
        cache.update(zip(hashes["sections"], np.load(folder / "section_vectors.npy"), strict=True))
    return cache


def chunk_vectors_from_units(chunks: list[Chunk], units: list[Unit], unit_vectors: np.ndarray,
                             section_vectors: dict[str, np.ndarray]) -> np.ndarray:
    """Each chunk's vector from its units' vectors (mean weighted by length) and its section
    path's vector (weight ``SECTION_WEIGHT``), L2-normalised."""
    dim = unit_vectors.shape[1]
    sums = np.zeros((len(chunks), dim), np.float64)
    weights = np.zeros(len(chunks), np.float64)
    for u, v in zip(units, unit_vectors, strict=True):
        w = max(1, u.end - u.start)
        sums[u.chunk] += w * v
        weights[u.chunk] += w
    out = np.zeros((len(chunks), dim), np.float32)
    for i, c in enumerate(chunks):
        v = sums[i] / weights[i] if weights[i] else np.zeros(dim)
        if c.section and c.section in section_vectors:
            v = v + SECTION_WEIGHT * section_vectors[c.section]
        norm = np.linalg.norm(v)
        out[i] = v / norm if norm > 0 else v
    return out


def _read_documents_and_chunks(folder: Path) -> tuple[dict[str, Document], list[Chunk]]:
    documents = {}
    with open(folder / "documents.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            documents[d["source"]] = Document(
                source=d["source"], text=d["text"], title=d["title"], kind=d["kind"],
                encoding=d["encoding"], sha256=d["sha256"],
            )
    with open(folder / "chunks.jsonl", encoding="utf-8") as fh:
        chunks = [Chunk.from_dict(json.loads(line)) for line in fh]
    return documents, chunks


def _vector_index(vectors: np.ndarray, flat_max: int) -> tuple[faiss.Index, str]:
    dim = vectors.shape[1]
    if len(vectors) <= flat_max:
        index = faiss.IndexFlatIP(dim)
        kind = "flat-ip"
    else:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 128
        kind = "hnsw-ip-m32"
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index, kind


def build_index(
    result: IngestResult,
    embedder: Embedder,
    segmenter: Segmenter,
    out: Path,
    chunk_settings: dict,
    flat_max: int = 50_000,
    cache: dict[str, np.ndarray] | None = None,
    progress: bool = True,
    finish: Callable[[Path], dict] | None = None,
    executor: Executor | None = None,
    chunk_vectors: str = "embedded",
) -> dict:
    """Embed and index the retrievable chunks of ``result`` and write the index folder
    atomically. ``chunk_vectors``: one of ``CHUNK_VECTORS`` (how chunk vectors are made).
    Vectors found in ``cache`` (by content hash) are not embedded again.
    ``finish``, given the complete folder before it is swapped into place, returns what goes
    into the manifest under ``calibration``. ``executor`` embeds the texts the cache lacks
    (``kb.executors``; default, this process), and is named in the manifest. Returns the
    manifest, with per-stage timings under ``build``."""
    t_start = time.perf_counter()
    out = Path(out)
    chunks = result.kept_chunks
    texts = [index_text(c) for c in chunks]
    cache = cache or {}
    docs = {s: r.document.text for s, r in result.records.items()}
    units, groups = embedding_plan(chunks, docs, chunk_vectors)
    sections = groups[1] if chunk_vectors == "units" else []
    t0 = time.perf_counter()
    embedded = _embed_all(embedder, groups, cache, executor or LocalExecutor(progress))
    if executor is not None:
        executor.finished()  # the rest of the build is this process's own work
    if chunk_vectors == "units":
        (unit_vectors, unit_hashes, n_units), (section_vectors, section_hashes, n_other) = embedded
        vectors = chunk_vectors_from_units(chunks, units, unit_vectors, dict(zip(sections, section_vectors, strict=True)))
        hashes = [content_hash(f"units-mean:{SECTION_WEIGHT}\x00{embedder.id}\x00{embed_input(t)}") for t in texts]
    else:
        (vectors, hashes, n_other), (unit_vectors, unit_hashes, n_units) = embedded
        section_vectors, section_hashes = np.zeros((0, embedder.dim), np.float32), []
    t_embed = time.perf_counter() - t0
    todo = range(n_other + n_units)  # the chunks (or section paths) and units embedded now

    t0 = time.perf_counter()
    tokens = [segmenter.tokens(t) for t in texts]
    words = corpus_words(segmenter, docs.values())
    t_segment = time.perf_counter() - t0

    t0 = time.perf_counter()
    bm25 = bm25s.BM25(k1=BM25_K1, b=BM25_B)
    bm25.index(tokens or [[""]], show_progress=False)
    findex, kind = _vector_index(vectors, flat_max)
    t_index = time.perf_counter() - t0

    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        with open(tmp / "documents.jsonl", "w", encoding="utf-8") as fh:
            for source, rec in result.records.items():
                d = rec.document
                row = {"source": source, "title": d.title, "kind": d.kind, "encoding": d.encoding,
                       "sha256": d.sha256, "text": d.text}
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as fh:
            for c in result.chunks:
                fh.write(json.dumps(c.to_dict(), ensure_ascii=False) + "\n")
        np.save(tmp / "vectors.npy", vectors)
        np.save(tmp / "unit_vectors.npy", unit_vectors)
        if section_hashes:
            np.save(tmp / "section_vectors.npy", section_vectors)
        with open(tmp / "units.jsonl", "w", encoding="utf-8") as fh:
            for u in units:
                fh.write(json.dumps([u.chunk, u.start, u.end, u.kind, u.list_id]) + "\n")
        with open(tmp / "outline.jsonl", "w", encoding="utf-8") as fh:
            for source, rec in result.records.items():
                for h in rec.outline:
                    fh.write(json.dumps([source, *h.to_list()], ensure_ascii=False) + "\n")
        (tmp / "hashes.json").write_text(json.dumps({"chunks": hashes, "units": unit_hashes, "sections": section_hashes}))
        (tmp / "words.txt").write_text("\n".join(sorted(words)), encoding="utf-8")
        faiss.write_index(findex, str(tmp / "faiss.index"))
        bm25.save(str(tmp / "bm25"), show_progress=False)
        manifest = {
            "format_version": FORMAT_VERSION,
            "app_version": __version__,
            "embedder": {"id": embedder.id, "dim": embedder.dim, "chunk_vectors": chunk_vectors,
                         **({"engine": embedder.engine} if getattr(embedder, "engine", None) else {})},
            "dictionary": segmenter.fingerprint,
            "chunking": chunk_settings,
            "ingest_fingerprint": result.fingerprint,
            "vector_index": kind,
            "executor": (executor or LocalExecutor).name,
        "bm25": {"k1": BM25_K1, "b": BM25_B},
            "documents": {
                s: {"sha256": r.document.sha256, "title": r.document.title, "kind": r.document.kind,
                    "encoding": r.document.encoding, "chars": len(r.document.text),
                    "chunks": len(r.chunks), "noise_chars": r.noise_chars}
                for s, r in result.records.items()
            },
            "skipped": [{"source": s.source, "reason": s.reason} for s in result.skipped],
            "counts": {
                "documents": len(result.records),
                "chunks": len(result.chunks),
                "retrievable_chunks": len(chunks),
                "duplicates": result.duplicates,
                "skipped": len(result.skipped),
                "units": len(units),
                "embedded": len(todo),
                "sections": len(sections),
                "reused_vectors": len(units) + (len(sections) if chunk_vectors == "units" else len(chunks)) - len(todo),
            },
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build": {
                **{k: round(v, 4) for k, v in result.timings.items()},
                "embed": round(t_embed, 4),
                "segment": round(t_segment, 4),
                "index": round(t_index, 4),
            },
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2))
        if finish is not None:
            t0 = time.perf_counter()
            manifest["calibration"] = finish(tmp)
            manifest["build"]["calibrate"] = round(time.perf_counter() - t0, 4)
        manifest["build"]["total"] = round(time.perf_counter() - t_start + sum(result.timings.values()), 4)
        (tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2))
        _swap_into_place(tmp, out)
    except BaseException:
        # never leave a half-written folder behind; the previous index is untouched
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _generations(out: Path) -> list[Path]:
    """The complete index folders written for ``out``, oldest first."""
    return sorted(p for p in out.parent.glob(f".{out.name}.gen-*") if p.is_dir())


def _kept_generations(out: Path) -> set[Path]:
    """The generation ``out`` links to and the newest one before it (a server may still be
    reading it); every other generation is stale."""
    current = Path(os.path.realpath(out)) if out.is_symlink() else None
    older = [g for g in _generations(out) if g != current]
    return set(older[-1:]) | ({current} if current else set())


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Make the complete index in ``tmp`` the one at ``out`` in one atomic step.

    ``out`` is a symbolic link to a generation folder ``.<name>.gen-<time>-<pid>``; the new link
    replaces the old with ``os.replace``, so a reader sees the old index or the new one, never
    neither and never a part. The previous generation is kept (a server may be reading it);
    older ones are removed. A plain folder at ``out`` (an index written before generations)
    is moved aside first."""
    gen = out.parent / f".{out.name}.gen-{time.strftime('%Y%m%dT%H%M%S')}-{time.monotonic_ns()}-{os.getpid()}"
    os.rename(tmp, gen)
    if out.exists() and not out.is_symlink():
        legacy = out.parent / f".{out.name}.gen-0-legacy-{os.getpid()}"
        os.rename(out, legacy)
    link = out.parent / f".{out.name}.link-{os.getpid()}"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(gen.name, link)
    os.replace(link, out)
    _fsync_dir(out.parent)
    keep = _kept_generations(out)
    for g in _generations(out):
        if g not in keep:
            shutil.rmtree(g, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def clean_leftovers(out: Path) -> list[str]:
    """Remove what interrupted writes left beside ``out``: half-written ``.building-*`` folders,
    ``.old-*`` folders of the earlier two-rename swap, stray links, and generations that are
    neither current nor the one before. Call it holding the index lock. Returns what it
    removed (names)."""
    out = Path(out)
    removed = []
    keep = _kept_generations(out)
    for p in out.parent.glob(f".{out.name}.*"):
        stale = (
            p.name.startswith((f".{out.name}.building-", f".{out.name}.old-", f".{out.name}.link-"))
            or (p.name.startswith(f".{out.name}.gen-") and p not in keep)
        )
        if not stale:
            continue
        if p.is_symlink() or p.is_file():
            p.unlink(missing_ok=True)
        else:
            shutil.rmtree(p, ignore_errors=True)
        removed.append(p.name)
    return sorted(removed)


class IndexBusy(IndexError_):
    pass


@contextmanager
def index_lock(out: Path, wait: bool = False) -> Iterator[None]:
    """Held while an index is written: a second writer of the same index (another ``kb
    ingest``, a server's re-index) is refused with a message naming the holder, or waits when
    ``wait``. An advisory ``flock`` on ``.<name>.lock`` beside the index: released by the
    kernel when the holder dies, so a killed ingest never leaves it locked."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.parent / f".{out.name}.lock"
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise IndexBusy(
                f"the index at {out} is being written by {holder}; wait for it to finish and run again"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"kb ingest (pid {os.getpid()})")
        fh.flush()
        yield
    finally:
        fh.close()


def _resolve(path: Path) -> Path:
    """The folder of the current index: where the link at ``path`` points (resolved once, so
    a load reads one generation even if a swap happens meanwhile). Never a leftover."""
    return Path(os.path.realpath(path))


def read_vector_cache(path: Path) -> dict[str, np.ndarray]:
    """The vectors of an index that cannot be loaded as a whole (another format version, a
    different dictionary), keyed like ``KnowledgeIndex.cached_vectors``: by a hash of the
    embedder's id and the embedded text, so they are valid whatever else changed. Empty when
    the files are missing or unreadable: the cache only saves time."""
    path = _resolve(Path(path))
    try:
        return _vector_cache(path, np.load(path / "vectors.npy"), np.load(path / "unit_vectors.npy"))
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def read_previous(path: Path) -> tuple[dict[str, DocRecord], str, dict[str, np.ndarray]]:
    """What a re-ingest reuses from the index at ``path``, read without loading it (no BM25, no
    FAISS): the per-document records and the ingest fingerprint they were made under (empty
    when the index is of another format), and the vector cache (kept across formats and
    embedders: it is keyed by both). Raises ``IndexMissing`` when there is no index."""
    manifest = read_manifest(path)
    cache = read_vector_cache(path)
    if manifest.get("format_version") != FORMAT_VERSION:
        return {}, "", cache
    try:
        real = _resolve(Path(path))
        records = _records(manifest, *_read_documents_and_chunks(real), _read_outline(real))
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.info("previous documents not reused (%s): every document is read again", e)
        return {}, "", cache
    return records, manifest.get("ingest_fingerprint", ""), cache


def read_manifest(path: Path) -> dict:
    path = _resolve(Path(path))
    try:
        return json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexMissing(f"no index at {path}: build it with `kb ingest --index {path}`") from None
    except json.JSONDecodeError as e:
        raise IndexMismatch(f"index manifest at {path} is unreadable ({e}); rebuild it with `kb ingest --index {path}`") from None


def check_manifest(manifest: dict, path: Path, embedder_id: str | None, dictionary: str | None) -> None:
    fix = f"rebuild it with `kb ingest --index {path}`"
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatch(
            f"index at {path} has format version {manifest.get('format_version')}, this app reads "
            f"version {FORMAT_VERSION}: {fix}"
        )
    built = manifest.get("embedder", {}).get("id")
    if embedder_id and built != embedder_id:
        raise IndexMismatch(
            f"index at {path} was built with embedder {built!r} but the config uses {embedder_id!r}: "
            f"{fix} (or set [embedder] back to the one it was built with)"
        )
    if dictionary and manifest.get("dictionary") != dictionary:
        raise IndexMismatch(f"index at {path} was built with another segmentation dictionary: {fix}")


def load_index(path: Path, embedder_id: str | None = None, dictionary: str | None = None) -> KnowledgeIndex:
    """Load an index folder, refusing one built with another format, embedder or dictionary,
    and naming the damaged file of one that cannot be read."""
    path = Path(path)
    real = _resolve(path)
    manifest = read_manifest(real)
    check_manifest(manifest, path, embedder_id, dictionary)
    part = "documents.jsonl"
    try:
        documents, all_chunks = _read_documents_and_chunks(real)
        chunks = [c for c in all_chunks if not c.dup_of]
        part = "vectors.npy"
        vectors = np.load(real / part)
        part = "faiss.index"
        findex = faiss.read_index(str(real / part))
        part = "bm25"
        bm25 = bm25s.BM25.load(str(real / part), show_progress=False)
        part = "units.jsonl"
        with open(real / part, encoding="utf-8") as fh:
            units = [Unit(*json.loads(line)) for line in fh]
        part = "unit_vectors.npy"
        unit_vectors = np.load(real / part)
        part = "outline.jsonl"
        outline = _read_outline(real)
        part = "words.txt"
        words = frozenset((real / part).read_text(encoding="utf-8").split("\n"))
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, EOFError) as e:
        reason = " ".join(str(e).split())[:160] or type(e).__name__
        raise IndexMismatch(
            f"index at {path} is damaged ({part}: {reason}): rebuild it with `kb ingest --index {path}`"
        ) from None
    if len(vectors) != len(chunks) or findex.ntotal != len(chunks) or len(unit_vectors) != len(units):
        raise IndexMismatch(f"index at {path} is inconsistent (vectors and chunks differ): rebuild it with `kb ingest --index {path}`")
    return KnowledgeIndex(real, manifest, documents, all_chunks, chunks, vectors, findex, bm25, units,
                          unit_vectors, outline, words)
