"""The one service behind the CLI, the web chat and the HTTP API.

It loads the config, the index and the models once, and answers with one JSON-serialisable
object (see ``kb.answer.base.Answer``). The answerer and the FAQ are handed the parts they use
(``AnswerParts``, ``FaqParts``), never the service itself."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path

from ingest.models import Document
from ingest.pipeline import FileEvent, IngestResult, ingest_corpus
from ingest.worker import FileLimits
from kb import __version__
from kb.answer import make_answerer
from kb.answer.base import Answer, AnswerParts
from kb.answer.followup import FollowupResolver
from kb.answer.suggest import heading_questions, starter_questions
from kb.calibrate import bank_fingerprint, calibrate
from kb.config import DEFAULT_MIN_CONFIDENCE, Config
from kb.domain import dictionary_words
from kb.embed import make_embedder
from kb.embed.base import Embedder
from kb.executors import Executor, make_executor
from kb.faq.curate import check_after_ingest
from kb.faq.service import FaqParts, FaqService
from kb.faq.store import faq_path, faq_store
from kb.hits import Hit
from kb.index import (
    MANIFEST,
    IndexBusy,
    IndexError_,
    IndexMissing,
    KnowledgeIndex,
    build_index,
    clean_leftovers,
    index_lock,
    load_index,
    read_manifest,
    read_previous,
)
from kb.query import GENERIC_GLOSSARY, QueryProcessor, glossary_groups
from kb.rerank import make_reranker
from kb.retriever import HybridRetriever
from kb.segment import Segmenter
from kb.store.feedback import open_feedback_store

log = logging.getLogger(__name__)


class UnknownDocument(KeyError):
    pass


class BadQuestion(ValueError):
    pass


def run_ingest(
    config: Config,
    embedder: Embedder | None = None,
    segmenter: Segmenter | None = None,
    progress: bool = True,
    *,
    exclude: Collection[str] | None = None,
    on_file: FileEvent | None = None,
    on_stage: Callable[[str, str], None] | None = None,
    wait: bool = False,
    provisional_calibration: bool = False,
    executor: Executor | None = None,
) -> tuple[IngestResult, dict]:
    """Ingest ``config.corpus_dir`` into ``config.index_path`` incrementally: unchanged documents
    are not re-chunked and unchanged chunks are not re-embedded.

    ``exclude``: sources left out of the index (kept in the corpus); default, the documents an
    administrator disabled (``disabled_sources``). ``on_file`` hears of each file (see
    ``ingest.pipeline.FileEvent``), ``on_stage(stage, detail)`` of each stage: ``waiting`` (for
    another writer of the index, when ``wait``), ``parse``, ``embed`` (embedding and indexing),
    ``calibrate``, ``faq`` (checking FAQ entries). Another writer of the same index (``kb
    ingest`` in a shell, a server's job) makes it raise ``IndexBusy``, or wait with ``wait``.

    ``provisional_calibration``: when the refusal threshold would be fitted again (the documents
    changed), carry the previous index's over instead, marked ``provisional`` and under its old
    key, so that the new documents are answerable at once and the next ingest fits the threshold
    for them (what a server's job does right after: ``kb.jobs``).

    ``executor``: where files are parsed and texts embedded (``kb.executors``); default, the one
    ``config.ingest.executor`` names, closed when done."""
    stage = on_stage or (lambda name, detail: None)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(index_lock(config.index_path))
        except IndexBusy as e:
            if not wait:
                raise
            stage("waiting", str(e))
            stack.enter_context(index_lock(config.index_path, wait=True))
        removed = clean_leftovers(config.index_path)
        if removed:
            log.info("removed leftovers of interrupted ingests: %s", ", ".join(removed))
        if exclude is None:
            exclude = disabled_sources(config)
        if executor is None:
            executor = stack.enter_context(make_executor(config, progress))
        return _ingest_locked(config, embedder, segmenter, progress, exclude, on_file, stage,
                              provisional_calibration, executor)


def disabled_sources(config: Config) -> set[str]:
    """The documents an administrator disabled (``kb.store``'s documents table): kept in the
    corpus, left out of every ingest. Empty, and no database created, when there is none yet."""
    from kb.store.documents import disabled_sources as read

    return read(config)


def file_limits(config: Config) -> FileLimits:
    """The bounds every file of an ingest is read under."""
    return FileLimits(
        max_bytes=config.max_file_bytes, max_unpacked_bytes=config.max_unpacked_bytes,
        timeout_s=config.ingest.file_timeout_s, memory_mb=config.ingest.worker_memory_mb,
        workers=config.ingest.workers,
    )


def _ingest_locked(config: Config, embedder: Embedder | None, segmenter: Segmenter | None,
                   progress: bool, exclude: Collection[str] = (), on_file: FileEvent | None = None,
                   stage: Callable[[str, str], None] = lambda name, detail: None,
                   provisional: bool = False, executor: Executor | None = None) -> tuple[IngestResult, dict]:
    embedder = embedder or make_embedder(config.embedder)
    segmenter = segmenter or Segmenter(config.userdict, config.stopwords)
    previous = None
    previous_fp = ""
    cache = None
    try:
        # documents, chunks and vectors do not depend on the dictionary (BM25 is rebuilt), and
        # vectors are keyed by embedder and text: read them, not the whole index
        previous, previous_fp, cache = read_previous(config.index_path)
    except IndexMissing:
        pass
    except IndexError_ as e:
        log.info("previous index not reused: %s", e)
    stage("parse", "")
    if executor is not None:
        executor.expect(embedder, config.embedder.chunk_vectors, cache.keys() if cache else ())
    result = ingest_corpus(
        config.corpus_dir, config.chunking, previous, previous_fp,
        progress=progress, limits=file_limits(config), exclude=exclude, on_file=on_file,
        parse_files=executor.parse if executor else None,
    )
    try:
        previous_calibration = read_manifest(config.index_path).get("calibration")
    except IndexError_:
        previous_calibration = None
    key = calibration_key(config, result, embedder, segmenter)
    finish = _calibrator(config, key, previous_calibration, embedder, segmenter, progress)
    if (finish is not None and provisional and previous_calibration
            and "threshold" in previous_calibration and previous_calibration.get("key") != key):
        carried = {**previous_calibration, "provisional": True}  # its old key: the next ingest refits
        finish = lambda folder: carried  # noqa: E731
    elif finish is not None:
        fit = finish

        def finish(folder: Path) -> dict:
            stage("calibrate", "")
            return fit(folder)

    stage("embed", "")
    manifest = build_index(
        result, embedder, segmenter, config.index_path, config.chunking.as_dict(),
        flat_max=config.retrieval.flat_index_max, cache=cache, progress=progress, finish=finish,
        executor=executor, chunk_vectors=config.embedder.chunk_vectors,
    )
    # approved FAQ entries citing a changed or removed document are flagged for review; a
    # damaged FAQ database is reported, and the new index (already in place) stands
    stage("faq", "")
    try:
        check_after_ingest(config, {s: r.document for s, r in result.records.items()})
    except sqlite3.DatabaseError as e:
        log.error("FAQ entries not checked against the new index: the FAQ database %s cannot be "
                  "read (%s)", faq_path(config), e)
    return result, manifest


def answer_parts(config: Config, index: KnowledgeIndex, embedder: Embedder, segmenter: Segmenter,
                 glossary: list | None = None) -> AnswerParts:
    """What an answerer over ``index`` works with: the query processor (glossary), the hybrid
    retriever and the starter questions (the config's or the domain's, else the corpus's
    headings)."""
    glossary = glossary_groups(config.glossary, config.retrieval.generic_glossary) if glossary is None else glossary
    queries = QueryProcessor(glossary if config.retrieval.use_glossary else [], config.retrieval.strip_question_words)
    retriever = HybridRetriever(index, embedder, segmenter, queries, config.retrieval,
                                make_reranker(config.retrieval.reranker))
    starters = tuple(config.app.starters) if config.app.starters is not None else tuple(starter_questions(index))
    return AnswerParts(index=index, retriever=retriever, segmenter=segmenter, embedder=embedder,
                       queries=queries, starters=starters)


def calibration_key(config: Config, result: IngestResult, embedder: Embedder, segmenter: Segmenter) -> str:
    """What a fitted threshold depends on: the documents, the embedder, the dictionary, the
    bank, and the retrieval and answer settings."""
    parts = [result.fingerprint, sorted((s, r.document.sha256) for s, r in result.records.items()),
             embedder.id, segmenter.fingerprint, bank_fingerprint(), __version__,
             dataclasses.asdict(config.retrieval), dataclasses.asdict(config.answer), str(config.glossary),
             GENERIC_GLOSSARY.read_text(encoding="utf-8") if config.retrieval.generic_glossary else ""]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def index_calibrator(config: Config, result: IngestResult, embedder: Embedder, segmenter: Segmenter,
                     previous: dict | None = None, progress: bool = False) -> Callable[[Path], dict] | None:
    """The ``finish`` step to hand ``build_index`` for ``result``: fits the new index's refusal
    threshold (None when ``answer.calibrate`` is off). Code that builds an index itself (tests,
    benchmarks) uses this so that its index answers as one built by ``kb ingest``."""
    return _calibrator(config, calibration_key(config, result, embedder, segmenter), previous,
                       embedder, segmenter, progress)


def _calibrator(config: Config, key: str, previous: dict | None, embedder: Embedder,
                segmenter: Segmenter, progress: bool) -> Callable[[Path], dict] | None:
    """What ``build_index`` calls on the new folder to fit its refusal threshold; the previous
    index's figures when nothing they depend on changed."""
    if not config.answer.calibrate:
        return None
    if previous and previous.get("key") == key:
        return lambda folder: previous

    def fit(folder: Path) -> dict:
        if progress:
            print("calibrating the refusal threshold on probes of this corpus ...", file=sys.stderr)
        index = load_index(folder, embedder.id, segmenter.fingerprint)
        parts = answer_parts(config, index, embedder, segmenter)
        answerer = make_answerer(dataclasses.replace(config.answer, min_confidence=0.0), parts)
        res = calibrate(answerer, heading_questions(index), segmenter.words,
                        config.answer.probe_refusal_target, config.answer.max_probe_refusals,
                        DEFAULT_MIN_CONFIDENCE)
        return {**res, "key": key}

    return fit


def index_generation(path: Path) -> str:
    """Which index is at ``path``, cheaply (two system calls, nothing read): the generation
    folder its link points to and its manifest's modification time. A new ingest always
    changes it (``kb.index`` writes every index into a new generation folder and swaps the
    link), so comparing it is how a server knows a reload is due (``KnowledgeService.reload``).
    "" when there is no index."""
    real = os.path.realpath(path)
    try:
        return f"{real}@{os.stat(os.path.join(real, MANIFEST)).st_mtime_ns}"
    except OSError:
        return ""


@dataclasses.dataclass
class Served:
    """Everything that depends on one index: what a request is answered from. A reload builds
    a new one beside it and swaps the service's one reference; a request holds the one it
    started with to the end."""

    index: KnowledgeIndex
    answer_parts: AnswerParts
    answerer: object
    faq: FaqService
    generation: str

    @property
    def retriever(self) -> HybridRetriever:
        return self.answer_parts.retriever

    @property
    def queries(self) -> QueryProcessor:
        return self.answer_parts.queries

    @property
    def starters(self) -> tuple[str, ...]:
        return self.answer_parts.starters


class CurrentFaq:
    """``service.faq`` as adapters keep it: always the FAQ of the index being served, also
    after a reload (an adapter that took ``service.faq`` once keeps reaching the current one)."""

    def __init__(self, service: KnowledgeService):
        self._service = service

    def __getattr__(self, name: str):
        return getattr(self._service.served.faq, name)


class KnowledgeService:
    """Loads everything once; ``ask``, ``search`` and ``document`` are what adapters call.

    ``reload()`` switches to a newer index at ``config.index_path`` without a restart: the new
    index, answerer and FAQ are built beside the ones serving, then one reference (``served``)
    is swapped; requests already running finish on the old ones."""

    def __init__(
        self,
        config: Config,
        *,
        embedder: Embedder | None = None,
        build_if_missing: bool = True,
        progress: bool = True,
    ):
        self.config = config
        t0 = time.perf_counter()
        self.embedder = embedder or make_embedder(config.embedder)
        self.segmenter = Segmenter(config.userdict, config.stopwords)
        try:
            read_manifest(config.index_path)
        except IndexMissing:
            if not build_if_missing:
                raise
            log.info("no index at %s: building it from %s", config.index_path, config.corpus_dir)
            run_ingest(config, self.embedder, self.segmenter, progress=progress)
        self.glossary = glossary_groups(config.glossary, config.retrieval.generic_glossary)
        self.followup = FollowupResolver(config.domain.entities, self.segmenter.tokenizer)
        self._reload_lock = threading.Lock()
        self.served: Served = self._load()
        self.faq = CurrentFaq(self)
        self.reloads = 0
        self.load_seconds = time.perf_counter() - t0

    def _load(self) -> Served:
        """The index now at ``config.index_path`` and everything answered from it."""
        config = self.config
        index = load_index(config.index_path, self.embedder.id, self.segmenter.fingerprint)
        generation = index_generation(index.path)  # the folder read, even if a swap came since
        parts = answer_parts(config, index, self.embedder, self.segmenter, self.glossary)
        answerer = make_answerer(config.answer, parts)
        # curated answers; flags entries whose documents changed. A reload keeps the stores (one
        # database engine each for the life of the service)
        previous = getattr(self, "served", None)
        store = previous.faq.parts.store if previous else faq_store(config)
        feedback = previous.faq.parts.feedback if previous else open_feedback_store(config)
        faq = FaqService(FaqParts(
            index=index, segmenter=self.segmenter, embedder=self.embedder, answerer=answerer,
            glossary=self.glossary, domain_words=tuple(dictionary_words(config.userdict)),
            settings=config.faq, store=store, feedback=feedback,
        ))
        return Served(index, parts, answerer, faq, generation)

    def generation(self) -> str:
        """The generation being served (see ``index_generation``)."""
        return self.served.generation

    def reload_due(self) -> bool:
        """Whether the index on disk is another than the one served (cheap: no file read)."""
        current = index_generation(self.config.index_path)
        return bool(current) and current != self.served.generation

    def reload(self, force: bool = False) -> bool:
        """Serve the index now on disk if it is another than the one served (or ``force``).
        Returns whether it switched. The new parts are built while the old ones keep
        answering; a failure (``IndexError_``: a damaged or mismatched index) leaves the old
        ones serving and is raised. One reload at a time."""
        with self._reload_lock:
            if not force and not self.reload_due():
                return False
            t0 = time.perf_counter()
            served = self._load()
            old, self.served = self.served, served
            self.reloads += 1
            log.info("now serving the index %s (%d documents; loaded in %.2f s; was %s)", served.index.path,
                     len(served.index.documents), time.perf_counter() - t0, old.index.path)
            return True

    # what was built from the served index, as attributes (``kb.bench`` swaps some for a while)
    def _swap(self, **parts) -> None:
        self.served = dataclasses.replace(self.served, **parts)

    index = property(lambda self: self.served.index, lambda self, v: self._swap(index=v))
    answer_parts = property(lambda self: self.served.answer_parts, lambda self, v: self._swap(answer_parts=v))
    answerer = property(lambda self: self.served.answerer, lambda self, v: self._swap(answerer=v))
    retriever = property(
        lambda self: self.served.retriever,
        lambda self, v: self._swap(answer_parts=dataclasses.replace(self.served.answer_parts, retriever=v)))
    queries = property(lambda self: self.served.queries)
    starters = property(lambda self: self.served.starters)

    # -- adapters call these ------------------------------------------------------------
    def search(self, question: str, k: int = 5, mode: str = "hybrid") -> list[Hit]:
        self._check_question(question)
        return self.served.retriever.search(question, k=k, mode=mode)

    def ask(self, question: str, history: list | None = None, *, use_faq: bool = True,
            log: bool = True, user: str | None = None) -> Answer:
        """Answer ``question`` (resolving a follow-up against ``history``) with citations: from
        an approved FAQ entry when one matches (``use_faq``), else from the documents. ``log``
        records the question in the FAQ ask log, with the asker's ``user`` id when given."""
        self._check_question(question)
        served = self.served  # this request's index, answerer and FAQ, whatever a reload does
        t0 = time.perf_counter()
        resolved = self.followup.resolve(question, history or [])
        t1 = time.perf_counter()
        hit = served.faq.answer(question, resolved) if use_faq else None
        answer = hit.answer if hit else served.answerer.answer(question, resolved)
        answer.timings_ms["followup"] = round((t1 - t0) * 1000, 2)
        answer.timings_ms["total"] = round((time.perf_counter() - t0) * 1000, 2)
        if log:
            served.faq.log_question(answer, hit.entry_id if hit else None, user=user)
        return answer

    def document(self, source: str) -> Document:
        try:
            return self.served.index.documents[source]
        except KeyError:
            raise UnknownDocument(source) from None

    def documents(self) -> list[dict]:
        return [
            {"source": d.source, "title": d.title, "kind": d.kind, "chars": len(d.text)}
            for d in self.served.index.documents.values()
        ]

    def health(self) -> dict:
        served = self.served
        m = served.index.manifest
        return {
            "status": "ok",
            "documents": m["counts"]["documents"],
            "chunks": m["counts"]["retrievable_chunks"],
            "embedder": m["embedder"]["id"],
            "index_built_at": m["built_at"],
            "answerer": served.answerer.id,
        }

    def _check_question(self, question: str) -> None:
        if not isinstance(question, str) or not question.strip():
            raise BadQuestion("question is empty")
        try:
            question.encode("utf-8")
        except UnicodeEncodeError as e:
            raise BadQuestion(f"question holds an invalid character (lone surrogate at position {e.start})") from None
        if len(question) > self.config.answer.max_question_chars:
            raise BadQuestion(
                f"question is too long ({len(question)} characters; at most "
                f"{self.config.answer.max_question_chars})"
            )


def open_service(config: Config, **kwargs) -> KnowledgeService:
    return KnowledgeService(config, **kwargs)


__all__ = ["KnowledgeService", "Served", "UnknownDocument", "BadQuestion", "run_ingest", "disabled_sources",
           "index_generation", "open_service", "Path"]
