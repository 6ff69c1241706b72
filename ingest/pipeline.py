"""The ingest stage as one function: corpus folder in, documents and chunks out.

Load (detect encoding / extract text) -> clean (find noise spans) -> chunk (structure-aware,
exact offsets) -> mark near-duplicates. Unchanged documents (same bytes, same cleaning rules and
chunk settings) are reused from the previous run; bad files are reported and skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ingest.chunk import ChunkSettings, chunk_document
from ingest.clean import RULES, find_noise
from ingest.dedup import mark_duplicates
from ingest.loaders import SUPPORTED_SUFFIXES, LoadError, load_document
from ingest.models import Chunk, Document, Skipped

log = logging.getLogger(__name__)


@dataclass
class DocRecord:
    document: Document
    chunks: list[Chunk]
    noise_chars: int = 0


@dataclass
class IngestResult:
    records: dict[str, DocRecord]  # by source, sorted
    skipped: list[Skipped] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)  # new or changed, (re)chunked now
    reused: list[str] = field(default_factory=list)  # unchanged since the previous run
    removed: list[str] = field(default_factory=list)  # gone since the previous run
    duplicates: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    fingerprint: str = ""

    @property
    def chunks(self) -> list[Chunk]:
        """All chunks, near-duplicates included (those carry ``dup_of``)."""
        return [c for r in self.records.values() for c in r.chunks]

    @property
    def kept_chunks(self) -> list[Chunk]:
        return [c for c in self.chunks if not c.dup_of]

    @property
    def characters(self) -> int:
        return sum(len(r.document.text) for r in self.records.values())


def ingest_fingerprint(settings: ChunkSettings) -> str:
    """Identity of the loaders, cleaning rules and chunker (their code) and the chunk settings:
    a change to any of them re-chunks every document on the next ingest."""
    import ingest.chunk
    import ingest.clean
    import ingest.loaders

    rules = [(r.name, r.pattern.pattern, r.pattern.flags) for r in RULES]
    code = hashlib.sha256()
    for module in (ingest.chunk, ingest.clean, ingest.loaders):
        code.update(Path(module.__file__).read_bytes())
    raw = json.dumps(
        {"rules": rules, "chunking": settings.as_dict(), "code": code.hexdigest()}, ensure_ascii=False
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def list_files(corpus: Path) -> list[Path]:
    """Every regular, non-hidden file under ``corpus``, sorted by relative path."""
    return sorted(
        p
        for p in corpus.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(corpus).parts)
    )


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ingest_corpus(
    corpus: Path,
    settings: ChunkSettings,
    previous: dict[str, DocRecord] | None = None,
    previous_fingerprint: str = "",
    max_bytes: int = 50 * 1024 * 1024,
    progress: bool = True,
) -> IngestResult:
    """Ingest every supported file under ``corpus``.

    ``previous`` holds the records of the last run (by source); a document whose bytes hash the
    same, under the same fingerprint, is reused without being loaded or chunked again."""
    corpus = Path(corpus)
    if not corpus.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {corpus}")
    fingerprint = ingest_fingerprint(settings)
    reusable = previous if previous and previous_fingerprint == fingerprint else {}
    result = IngestResult(records={}, fingerprint=fingerprint)
    timings = {"load": 0.0, "clean": 0.0, "chunk": 0.0, "dedup": 0.0}
    files = list_files(corpus)
    for path in tqdm(files, desc="ingest", unit="doc", disable=not progress, leave=False):
        source = path.relative_to(corpus).as_posix()
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            result.skipped.append(Skipped(source, f"unsupported file type {path.suffix or '(none)'}"))
            continue
        old = reusable.get(source)
        if old is not None:
            try:
                same = file_sha256(path) == old.document.sha256
            except OSError:
                same = False
            if same:
                result.records[source] = old
                result.reused.append(source)
                continue
        t0 = time.perf_counter()
        try:
            doc = load_document(path, corpus, max_bytes=max_bytes)
        except LoadError as e:
            log.warning("skipped %s: %s", source, e)
            result.skipped.append(Skipped(source, str(e)))
            continue
        except OSError as e:
            result.skipped.append(Skipped(source, f"cannot read file: {e.strerror or e}"))
            continue
        t1 = time.perf_counter()
        noise = find_noise(doc.text)
        t2 = time.perf_counter()
        chunks = chunk_document(doc, noise, settings)
        t3 = time.perf_counter()
        timings["load"] += t1 - t0
        timings["clean"] += t2 - t1
        timings["chunk"] += t3 - t2
        if not chunks:
            result.skipped.append(Skipped(source, "no content left after cleaning"))
            continue
        noise_chars = sum(n.end - n.start for n in noise)
        result.records[source] = DocRecord(doc, chunks, noise_chars)
        result.processed.append(source)
    if previous:
        result.removed = sorted(set(previous) - set(result.records))
    t0 = time.perf_counter()
    result.duplicates = mark_duplicates(result.chunks)
    timings["dedup"] = time.perf_counter() - t0
    result.timings = timings
    return result
