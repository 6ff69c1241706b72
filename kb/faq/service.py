"""The FAQ side of the knowledge service (``KnowledgeService.faq``): answering from approved
entries, the ask log, suggestions and curation. Every method returns JSON-serialisable data,
so the CLI, the web admin tab and the HTTP API are thin adapters over it.

It is given the parts it uses (``FaqParts``), built by ``kb.service.KnowledgeService``.
An admin adapter checks the caller's role (``app.auth.require_role``) first, then calls
``service.faq``: ``list``, ``get``, ``topics``, ``add``, ``edit``, ``approve``, ``reject``,
``merge``, ``suggest``, ``usage``, ``export``, ``import_text``, ``check_documents``,
``explain``. ``KeyError`` means an unknown entry id (404); ``ValueError`` carries a message
for the trainer (invalid input, or an answer/citation that breaks the contract)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kb.answer.base import Answer, Citation
from kb.faq import curate, exchange
from kb.faq.citations import citation_from_answer, slices, topic_of
from kb.faq.match import FaqMatcher, Match, Vocabulary
from kb.faq.store import FaqEntry, FaqStore
from kb.faq.suggest import Draft, document_questions, draft, merge_duplicates
from kb.faq.usage import cluster_questions
from kb.store.db import DatabaseUnavailable

if TYPE_CHECKING:
    from kb.answer.base import Answerer
    from kb.config import FaqSettings
    from kb.embed.base import Embedder
    from kb.index import KnowledgeIndex
    from kb.segment import Segmenter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaqParts:
    """What the FAQ works with, and nothing else of the service."""

    index: KnowledgeIndex  # documents (citations are checked against them), passages, headings
    segmenter: Segmenter  # words of questions, for the lexical guard
    embedder: Embedder  # question vectors
    answerer: Answerer  # drafts candidate answers from the documents (never from the FAQ)
    glossary: list[tuple[str, ...]]  # synonym groups: one concept each for the guard
    domain_words: tuple[str, ...]  # the user dictionary's words: always distinctive
    settings: FaqSettings
    store: FaqStore  # the FAQ tables (kb.faq.store.faq_store(config))
    feedback: Any  # the feedback store (kb.store.feedback): its thumbs_down() questions are gaps


@dataclass
class FaqHit:
    answer: Answer
    entry_id: int


class FaqService:
    """Opened by ``KnowledgeService``; checks approved entries against the loaded index at once
    (an entry citing a changed document is flagged). Nothing is created on disk until
    something is written (a question logged, an entry added)."""

    def __init__(self, parts: FaqParts):
        self.parts = parts
        self.settings = parts.settings
        # the ask log keeps what people typed: rows older than the retention are deleted
        self.store = parts.store
        self._vocab: Vocabulary | None = None
        self._matcher: FaqMatcher | None = None
        self._lock = threading.RLock()  # re-entrant: `matcher` builds `vocab` under the lock
        self.flagged_on_load: list[int] = []
        # a damaged database turns curated answers and the ask log off (logged, named), never
        # stops the service: answers from the documents go on
        self.unavailable = ""
        try:
            if self.store.exists:
                self.flagged_on_load = [e.id for e in curate.check_entries(self.store, parts.index.documents)]
        except sqlite3.DatabaseError as e:
            self.unavailable = (f"{e}; curated answers and the ask log are off until it is repaired or moved "
                                "away" if isinstance(e, DatabaseUnavailable) else
                                f"the FAQ database {self.store.path} cannot be read ({e}); curated answers "
                                "and the ask log are off until it is repaired or moved away")
            log.error("%s", self.unavailable)

    # -- matching and answering ---------------------------------------------------------------
    @property
    def vocab(self) -> Vocabulary:
        if self._vocab is None:
            with self._lock:
                if self._vocab is None:
                    p = self.parts
                    passages = [f"{c.section}\n{c.text}" for c in p.index.chunks]
                    self._vocab = Vocabulary(p.segmenter, p.glossary, p.domain_words, passages)
        return self._vocab

    @property
    def matcher(self) -> FaqMatcher:
        if self._matcher is None:
            with self._lock:
                if self._matcher is None:
                    self._matcher = FaqMatcher(self.vocab, self.parts.embedder, self.settings.match_threshold)
        return self._matcher

    def match(self, question: str) -> Match | None:
        """The approved entry that answers ``question``, if any."""
        if not self.settings.enabled or self.unavailable or not self.store.exists:
            return None
        self.matcher.ensure(self.store.revision(), lambda: self.store.list("approved"))
        return self.matcher.match(question)

    def answer(self, question: str, resolved: str) -> FaqHit | None:
        """The curated answer when ``resolved`` matches an approved entry whose citations still
        slice the current documents exactly; an entry whose citations do not is flagged and
        the question is left to the normal answerer."""
        t0 = time.perf_counter()
        m = self.match(resolved)
        if m is None:
            return None
        entry = m.entry
        docs = self.parts.index.documents
        bad = [c for c in entry.citations if not slices(c, docs)]
        if bad:
            curate.flag(self.store, entry.id, f"citation [{bad[0]['n']}] no longer matches {bad[0]['source']}")
            return None
        citations = [
            Citation(n=c["n"], source=c["source"], title=c.get("title", ""), section=c.get("section", ""),
                     start=c["start"], end=c["end"], quote=c["quote"], score=m.score)
            for c in entry.citations
        ]
        self.store.count_hit(entry.id)
        ans = Answer(
            question=question, answered=True, answer=entry.answer, citations=citations,
            source_kind="faq", related=[], resolved_question=resolved, confidence=m.score,
            timings_ms={"faq": round((time.perf_counter() - t0) * 1000, 2)},
        )
        return FaqHit(ans, entry.id)

    def log_question(self, answer: Answer, faq_id: int | None = None, user: str | None = None) -> None:
        """Record an asked question (time, answered, confidence, the asker's ``user`` id when
        given) for usage suggestions. A database that cannot be written is logged, never
        allowed to fail the answer."""
        if not (self.settings.enabled and self.settings.log_questions) or self.unavailable:
            return
        try:
            self.store.log_question(answer.question, answer.answered, answer.confidence,
                                    answer.source_kind, faq_id, user=user)
        except sqlite3.Error as e:
            log.warning("FAQ ask log not written (%s): %s", self.store.path, e)

    # -- reading ---------------------------------------------------------------------------------
    def list(self, status: str | list[str] | None = None, topic: str | None = None,
             order: str = "asked") -> list[dict]:
        """Entries as dicts; ``status`` one of candidate/approved/rejected/flagged/merged."""
        if not self.store.exists:
            return []
        return [e.to_dict() for e in self.store.list(status, topic, order)]

    def get(self, entry_id: int) -> dict:
        """One entry with its edit history (``history``: list of {at, action, field, old, new, actor})."""
        d = self.store.require(entry_id).to_dict()
        d["history"] = self.store.history(entry_id)
        return d

    def topics(self) -> list[dict]:
        return [{"topic": t, "count": n} for t, n in self.store.topics()] if self.store.exists else []

    # -- curating --------------------------------------------------------------------------------
    def add(self, question: str, answer: str = "", citations: list[dict] | None = None,
            topic: str = "", alt_questions: list[str] | None = None, actor: str = "") -> dict:
        """A new candidate written by a trainer."""
        cites = self._checked(citations or [])
        e = FaqEntry(None, question.strip(), answer, cites, topic or topic_of(cites), "candidate",
                     alt_questions or [], "manual")
        return self.store.add(e, actor=actor).to_dict()

    def edit(self, entry_id: int, *, question: str | None = None, answer: str | None = None,
             topic: str | None = None, alt_questions: list[str] | None = None,
             citations: list[dict] | None = None, actor: str = "") -> dict:
        if citations is not None:
            citations = self._checked(citations)
        return curate.edit(self.store, entry_id, question=question, answer=answer, topic=topic,
                           alt_questions=alt_questions, citations=citations, actor=actor).to_dict()

    def _checked(self, citations: list[dict]) -> list[dict]:
        """Citations given by a trainer must slice the current documents; the document hash
        is recorded with each (so a later change of the document flags the entry)."""
        from kb.faq.citations import recheck
        from kb.faq.store import check_citations

        rc = recheck(check_citations(citations), self.parts.index.documents)
        if rc.broken:
            c = rc.broken[0]
            raise ValueError(f"citation [{c['n']}]: {c['source']} has no such quote")
        return rc.citations

    def approve(self, entry_id: int, actor: str = "") -> dict:
        return curate.approve(self.store, entry_id, self.parts.index.documents, actor).to_dict()

    def reject(self, entry_id: int, actor: str = "") -> dict:
        return curate.reject(self.store, entry_id, actor).to_dict()

    def merge(self, keep_id: int, other_id: int, actor: str = "", answer: str | None = None) -> dict:
        return curate.merge(self.store, keep_id, other_id, actor, answer).to_dict()

    def check_documents(self) -> list[dict]:
        """Re-check approved entries against the loaded index; returns those flagged now."""
        if not self.store.exists:
            return []
        return [e.to_dict() for e in curate.check_entries(self.store, self.parts.index.documents)]

    # -- exchange --------------------------------------------------------------------------------
    def export(self, fmt: str, status: str | list[str] | None = None, topic: str | None = None) -> str:
        """``fmt`` "csv" | "json" (every field, all entries unless filtered) | "md" (the
        handbook: approved entries grouped by topic, with sources)."""
        return exchange.export_entries(self.store, fmt, status, topic)

    def import_text(self, text: str, fmt: str, actor: str = "import") -> dict:
        """Import CSV/JSON text; returns {"added": n, "updated": n}."""
        return exchange.import_entries(self.store, text, fmt, actor)

    # -- suggestions -----------------------------------------------------------------------------
    def _known(self) -> tuple[set[str], list[FaqEntry]]:
        from ingest.normalize import normalize

        entries = self.store.list() if self.store.exists else []
        return {normalize(q) for e in entries for q in e.questions}, entries

    def _store_drafts(self, drafts: list[Draft], limit: int | None) -> list[dict]:
        from ingest.normalize import normalize

        known, entries = self._known()
        spans = {frozenset((c["source"], c["start"], c["end"]) for c in e.citations) for e in entries if e.citations}
        out = []
        for d in drafts:
            if limit is not None and len(out) >= limit:
                break
            if any(normalize(q) in known for q in [d.question, *d.alt_questions]):
                continue
            if d.spans and d.spans in spans:
                continue
            if self.match(d.question) is not None:
                continue  # an approved entry already answers it
            e = FaqEntry(None, d.question, d.answer, d.citations, topic_of(d.citations), "candidate",
                         d.alt_questions, d.origin, ask_count=d.ask_count)
            out.append(self.store.add(e, actor="suggest").to_dict())
            known.update(normalize(q) for q in e.questions)
            if d.spans:
                spans.add(d.spans)
        return out

    def _dedupe(self, drafts: list[Draft]) -> list[Draft]:
        from ingest.normalize import normalize

        if not drafts:
            return []
        vectors = self.parts.embedder.embed_queries([normalize(d.question) for d in drafts])
        return merge_duplicates(drafts, vectors, self.vocab, self.settings.duplicate_threshold)

    def suggest_from_documents(self, limit: int | None = None) -> list[dict]:
        """Candidates from headings and list leads, answered by the documents, near-duplicates
        merged; stored as ``candidate`` entries (ones already known are skipped)."""
        drafts = [d for q in document_questions(self.parts.index) if (d := draft(self.parts, q))]
        return self._store_drafts(self._dedupe(drafts), limit)

    def usage(self, limit: int = 50) -> dict:
        """{"clusters": asked questions grouped by meaning, most-asked first; "gaps": refused
        or thumbs-down questions, grouped the same way}. Each item: question, count, answered,
        refused, from_faq, thumbs_down, variants [[wording, n]], last_asked, comments."""
        rows = self.store.asked() if self.store.exists else []
        fb = self.parts.feedback.thumbs_down() if self.parts.feedback is not None else []
        thr = self.settings.cluster_threshold
        clusters = cluster_questions(rows, self.parts.embedder, thr, self.vocab)
        gap_rows = [r for r in rows if not r["answered"]] + fb
        gaps = cluster_questions(gap_rows, self.parts.embedder, thr, self.vocab)
        return {"clusters": [c.to_dict() for c in clusters[:limit]],
                "gaps": [g.to_dict() for g in gaps[:limit]]}

    def suggest_from_usage(self, limit: int | None = None, min_count: int = 1) -> list[dict]:
        """Candidates from the ask log, most-asked first: a cluster answered by the documents
        gets a drafted answer (its other wordings become alt questions); a gap (refused or
        thumbs-down) becomes a candidate with an empty answer (origin "gap") for a trainer to
        write."""
        report = self.usage(limit=10_000)
        drafts: list[Draft] = []
        for c in report["clusters"]:
            if c["count"] < min_count or c["refused"] == c["count"] or c["from_faq"] == c["count"]:
                continue
            d = draft(self.parts, c["question"])
            if d is None:
                continue
            d.origin, d.ask_count = "usage", c["count"]
            d.alt_questions = [w for w, _ in c["variants"] if w != c["question"]][:5]
            drafts.append(d)
        for g in report["gaps"]:
            if g["count"] < min_count:
                continue
            alts = [w for w, _ in g["variants"] if w != g["question"]][:5]
            drafts.append(Draft(g["question"], "", [], 0.0, alts, "gap", g["count"]))
        drafts.sort(key=lambda d: -d.ask_count)
        return self._store_drafts(drafts, limit)

    def suggest(self, limit: int | None = None, sources: tuple[str, ...] = ("usage", "documents")) -> list[dict]:
        """New candidate entries (stored), from usage first (most-asked first), then documents."""
        out: list[dict] = []
        for source in sources:
            left = None if limit is None else limit - len(out)
            if left is not None and left <= 0:
                break
            if source == "usage":
                out += self.suggest_from_usage(left)
            elif source == "documents":
                out += self.suggest_from_documents(left)
            else:
                raise ValueError(f"unknown suggestion source {source!r}: use usage or documents")
        return out

    # -- helpers for adapters --------------------------------------------------------------------
    def explain(self, question: str) -> list[dict]:
        """Why a question does or does not match each approved entry (cosine, guard verdict)."""
        if not self.store.exists:
            return []
        self.matcher.ensure(self.store.revision(), lambda: self.store.list("approved"))
        return self.matcher.explain(question)


__all__ = ["FaqParts", "FaqService", "FaqHit", "citation_from_answer"]
