"""The default answerer: extractive, so it cannot invent.

It retrieves passages, scores their sentences and list items (units, embedded at index time)
against the question with the embedder and term overlap, picks what the question's shape asks
for (a whole list, causes, practices, both sides of a contrast: ``kb.question.question_shape``),
and composes a lead sentence plus cited points. Every point is a span of an original document;
every citation's quote is that document's text sliced ``[start:end]``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ingest.normalize import in_script, normalize, script_of
from kb.answer import outline
from kb.answer.base import NOT_COVERED, PART_NOT_COVERED, Answer, AnswerParts, Citation
from kb.answer.scope import ScopeGuard
from kb.answer.structure import ANNOUNCER, DocumentStructure
from kb.answer.suggest import heading_questions, plain_heading_questions
from kb.config import DEFAULT_MIN_CONFIDENCE, AnswerSettings
from kb.question import (
    CAUSE_LABEL,
    REMEDY_LABEL,
    VALUE_QUESTION,
    contrast_sides,
    question_parts,
    question_shape,
)
from kb.units import strip_marker

if TYPE_CHECKING:
    from kb.retriever import Retrieval

log = logging.getLogger(__name__)
_CONTRASTS = re.compile(r"[;；]|而|则|相比|相对|不同")  # a sentence setting two things against each other

# Weights and sizes, each measured on the dev set (eval/README.md, "Answer choices")
_POINT_MAX = 140  # characters of a point before it is cut to the part about the question
ALSO_SAID = "此外，资料还提到："  # before the points of other passages that follow a whole list
MAX_CITATION_CHARS = 260  # consecutive units of one document merge into one citation up to this
HUBNESS_WEIGHT = 0.25  # how much of a unit's closeness to questions in general is discounted
HUBNESS_K = 10  # ...measured over its nearest heading questions
LIST_LEXICAL_WEIGHT = 0.3  # the question's rare words in a list's label and items
LIST_NAMED_BONUS = 0.05  # a list whose name the question says in full
WRONG_KIND_PENALTY = 0.1  # a causes list for a how-question, a remedies list for a why-question
# how much the question's terms in a unit add to its similarity when points are picked (on both
# corpora's twenty question sets 0.05 gained four or five questions of 832 and lost two of the
# bundled dev set; 0.1 and 0 no better, 0.3 worse)
UNIT_LEXICAL_WEIGHT = 0.15
UNIT_RANK_PENALTY = 0.01  # per rank of the unit's passage (0.03 and 0.05 measured worse)
# a sentence that enumerates in itself ("证明应当写明劳动合同期限、解除…的日期、工作岗位…",
# "职责重点有:…;…;…") and matches the question better than any item of the best list answers a
# list question itself: the list is not taken
INLINE_ENUMERATION = re.compile(r"[、；;]")
INLINE_LIST_MARGIN = 0.01
# when the best-matching sentence is in the best passage (passage and sentence agree) and in no
# list, a list of another passage answers only when its lead or heading matches within this of
# that sentence, or one of its items within the second (measured on both corpora: workplace
# citation hit .801 -> .812 on twenty question sets, bundled unchanged)
ELSEWHERE_TOPIC_MARGIN = 0.005
ELSEWHERE_ITEM_MARGIN = 0.015


_CLAUSE = re.compile(r"[^，,；;。！？!?]*[，,；;。！？!?]*")


def shorten(text: str, limit: int = _POINT_MAX, terms: list[str] | None = None) -> str:
    """A point's display text: the unit without its list marker; when long, the window of
    clauses that best matches the question's terms, with ellipses where text was left out.
    Always a verbatim excerpt of the original, never a rewrite."""
    text = strip_marker(text).strip()
    if len(text) <= limit:
        return text
    clauses = [m.group(0) for m in _CLAUSE.finditer(text) if m.group(0)]
    if not clauses:
        return text[:limit] + "…"
    terms = [t for t in (terms or []) if len(t) >= 2]

    def hits(c: str) -> int:
        n = normalize(c)
        return sum(1 for t in terms if t in n)

    best_i = max(range(len(clauses)), key=lambda i: (hits(clauses[i]), -i))
    lo = hi = best_i
    size = len(clauses[best_i])
    while True:  # grow the window around the best clause, preferring the start of the text
        grown = False
        if lo > 0 and size + len(clauses[lo - 1]) <= limit:
            lo -= 1
            size += len(clauses[lo])
            grown = True
        if hi + 1 < len(clauses) and size + len(clauses[hi + 1]) <= limit:
            hi += 1
            size += len(clauses[hi])
            grown = True
        if not grown:
            break
    body = "".join(clauses[lo : hi + 1])
    if len(body) > limit:
        body = body[:limit]
    body = body.rstrip("，,；;：:、")
    return ("…" if lo > 0 else "") + body + ("…" if hi < len(clauses) - 1 or len(body) < len("".join(clauses[lo:hi + 1])) else "")


@dataclass(frozen=True)
class Evidence:
    retrieval: Retrieval
    tokens: list[str]  # the question's BM25 tokens
    conf: float  # ``ExtractiveAnswerer.confidence`` of the top passages
    text: str  # the top three passages' sections and text


class ExtractiveAnswerer:
    id = "extractive"

    def __init__(self, parts: AnswerParts, settings: AnswerSettings):
        self.parts = parts
        self.settings = settings
        idx = parts.index
        # document frequencies from the BM25 matrix, for weighting query-term coverage
        self._df = {}
        scores = idx.bm25.scores
        indptr = scores.get("indptr") if isinstance(scores, dict) else None
        if indptr is not None:
            for token, tid in idx.bm25.vocab_dict.items():
                if tid + 1 < len(indptr):
                    self._df[token] = int(indptr[tid + 1] - indptr[tid])
        self._n_docs = max(len(idx.chunks), 1)
        self.structure = DocumentStructure(idx)
        # a synonym counts as known when its group's written term is in the corpus (社保 where
        # the documents say 社会保险), not otherwise
        known = [t for group in parts.queries.groups if any(normalize(x) in idx.words for x in group) for t in group]
        self.scope = ScopeGuard(parts.segmenter.tokenizer, idx.words, known, bigrams=idx.bm25.vocab_dict)
        self._suggestions: list[str] | None = None
        self._suggestion_vectors: np.ndarray | None = None
        self.related(None)  # embed the suggestions now, not on the first refusal
        self._hubness = self._unit_hubness()

    def _unit_hubness(self) -> np.ndarray:
        """How close each unit is to questions in general: the mean similarity to its nearest
        sample questions (the knowledge base's own heading questions), centred. A unit written
        in general terms ("市场部和销售部矛盾,根本原因在于…") is near every question and wins
        by default; subtracting this (CSLS, Lample et al. 2018) lets the specific sentence win.
        Weight 0.25 measured on the dev set: the best unit of the top five passages is a gold
        one for .516 -> .540 of questions, citation hit .863 -> .879, nothing lost; weights of
        0.5 and more gained less or lost."""
        idx = self.parts.index
        n = len(idx.units)
        if self._suggestion_vectors is None or not len(self._suggestion_vectors) or not n:
            return np.zeros(n, np.float32)
        k = min(HUBNESS_K, len(self._suggestion_vectors))
        sims = idx.unit_vectors @ self._suggestion_vectors.T
        r = np.sort(sims, axis=1)[:, -k:].mean(axis=1)
        return (r - r.mean()).astype(np.float32)

    # -- evidence ------------------------------------------------------------------------------
    def _idf(self, token: str) -> float:
        df = self._df.get(token, 0)
        return float(np.log((self._n_docs + 1) / (df + 0.5)))

    def coverage(self, tokens: list[str], rows: list[int]) -> float:
        """IDF-weighted share of the question's terms found in the given chunks."""
        chunks = self.parts.index.chunks
        return self._idf_share(tokens, " ".join(chunks[r].section + chunks[r].text for r in rows))

    def _names_in_full(self, name: str, question: str) -> bool:
        """Every word (two characters or more) of a list's name ``name`` is in ``question``."""
        words = self.parts.segmenter.words(normalize(outline.heading_name(name)))
        return outline.names_the_question(words, normalize(question), every=True)

    def _idf_share(self, tokens: list[str], text: str) -> float:
        """IDF-weighted share of ``tokens`` (repeats count again) found in ``text``."""
        if not tokens:
            return 0.0
        t = normalize(text)
        total = sum(self._idf(x) for x in tokens)
        return sum(self._idf(x) for x in tokens if x in t) / total if total else 0.0

    @staticmethod
    def confidence(best_chunk_cos: float, coverage_top3: float, coverage_top1: float) -> float:
        """One number for "is this in the knowledge base": the dense similarity of the best
        passage plus how much of the question's (IDF-weighted) vocabulary the top passages
        contain. Weights chosen by a grid search on the dev set's in- and out-of-scope
        questions; the threshold is ``answer.min_confidence``."""
        return best_chunk_cos + 0.1 * coverage_top3 + 0.1 * coverage_top1

    def evidence(self, resolved: str) -> Evidence:
        """The question's passages and how strongly they say it is in the knowledge base."""
        retrieval = self.parts.retriever.retrieve(resolved, k=self.settings.passages)
        tokens = self.parts.segmenter.tokens(retrieval.query.lexical)
        rows = retrieval.rows
        best_chunk = max((h.dense_score for h in retrieval.hits), default=0.0)
        conf = self.confidence(best_chunk, self.coverage(tokens, rows[:3]), self.coverage(tokens, rows[:1]))
        idx = self.parts.index
        text = " ".join(idx.chunks[r].section + " " + idx.chunks[r].text for r in rows[:3])
        return Evidence(retrieval, tokens, conf, text)

    def not_addressed(self, parts: Sequence[str], evidence: Evidence) -> list[list[str]]:
        """For each part a question asks (``question_parts``), what of it the documents do not
        address (empty when they may): ``kb.answer.scope``."""
        return [self.scope.unanswerable(p) + self.scope.unaddressed(p, evidence.text) for p in parts]

    @property
    def threshold(self) -> float:
        """The evidence threshold: ``answer.min_confidence`` when set, else the one fitted for
        this index when it was built (``kb.calibrate``), else ``DEFAULT_MIN_CONFIDENCE``."""
        if self.settings.min_confidence is not None:
            return self.settings.min_confidence
        fitted = (self.parts.index.manifest.get("calibration") or {}).get("threshold")
        return float(fitted) if fitted is not None else DEFAULT_MIN_CONFIDENCE

    # -- answering -----------------------------------------------------------------------------
    def answer(self, question: str, resolved: str, _part_call: bool = False) -> Answer:
        t0 = time.perf_counter()
        parts = self.parts
        idx = parts.index
        ev = self.evidence(resolved)
        retrieval, tokens, conf = ev.retrieval, ev.tokens, ev.conf
        t1 = time.perf_counter()
        rows = retrieval.rows
        qvec = retrieval.vector
        script = script_of(question)

        # the passages' units, plus the next passage of the top three: a list introduced at the
        # end of one chunk ("以下是…的控制要点。") continues in the next
        cand_rows = list(rows)
        for r in rows[:3]:
            nxt = r + 1
            if nxt < len(idx.chunks) and nxt not in cand_rows and idx.chunks[nxt].source == idx.chunks[r].source:
                cand_rows.append(nxt)
        unit_ids = [u for r in cand_rows for u in idx.units_of_chunk.get(r, [])]
        if qvec is not None and unit_ids:
            cos = idx.unit_vectors[unit_ids] @ qvec - HUBNESS_WEIGHT * self._hubness[unit_ids]
        else:
            cos = np.zeros(len(unit_ids), np.float32)
        unit_cos = dict(zip(unit_ids, (float(c) for c in cos), strict=True))

        if not rows or conf < self.threshold:
            return self._refuse(question, resolved, script, conf, qvec, t0, t1)
        if self.settings.value_guard:
            parts_asked = [resolved] if _part_call else question_parts(resolved)
            reasons = self.not_addressed(parts_asked, ev)
            if all(reasons):
                log.info("refused %r: the documents do not address %s", resolved,
                         "、".join(w for r in reasons for w in r))
                return self._refuse(question, resolved, script, conf, qvec, t0, t1)
            if any(reasons):  # answer the parts the documents cover, name the others
                covered = "".join(p for p, r in zip(parts_asked, reasons, strict=True) if not r)
                uncovered = [p for p, r in zip(parts_asked, reasons, strict=True) if r]
                log.info("answering %r only in part: the documents do not address %s", resolved, uncovered)
                ans = self.answer(question, covered, _part_call=True)
                if ans.answered:
                    ans.answer += "\n\n" + in_script(PART_NOT_COVERED.format("”、“".join(
                        p.rstrip("？?。，,；; ") for p in uncovered)), script)
                    ans.resolved_question = resolved
                return ans

        rank_of = {r: i for i, r in enumerate(cand_rows)}
        scored = {
            u: unit_cos[u] + UNIT_LEXICAL_WEIGHT * self._overlap(tokens, idx.unit_text(u))
            - UNIT_RANK_PENALTY * rank_of[idx.units[u].chunk]
            for u in unit_ids
            if idx.units[u].kind in ("item", "sentence")
        }
        shape = question_shape(resolved)
        wrong = {"how": CAUSE_LABEL, "why": REMEDY_LABEL}.get(shape)
        if wrong is not None:  # a list of causes does not answer "how to fix it", nor the reverse
            for u in scored:
                label = idx.chunks[idx.units[u].chunk].section.rsplit(" > ", 1)[-1]
                if idx.units[u].list_id >= 0 and wrong.search(normalize(label)):
                    scored[u] -= WRONG_KIND_PENALTY
        if shape in ("list", "how"):
            # a list made of sub-headings: the outline built at ingest answers it whole
            found = outline.find_list(idx, tokens, rows, resolved, parts.segmenter.tokens)
            if found is not None and not self._named_list_in(rows[0], resolved, found.heading.label):
                answer_md, citations = outline.compose(idx, found, script)
                return Answer(
                    question=question, answered=True, answer=answer_md, citations=citations,
                    source_kind="documents", related=[],
                    timings_ms={"retrieve": round((t1 - t0) * 1000, 2),
                                "compose": round((time.perf_counter() - t1) * 1000, 2)},
                    resolved_question=resolved, confidence=round(conf, 4),
                )
        chosen: list[int]
        lead_topic = ""
        # a plain question for a value ("辞职要提前多久") is answered by the sentences that give
        # it, not by a list whose lead line carries the same words ("有下列情形之一的，…应当提前…")
        value_fact = shape == "fact" and bool(VALUE_QUESTION.search(normalize(resolved)))
        announced = (self.structure.announced(unit_cos)
                     if shape in ("list", "how", "why", "fact") and not value_fact else None)
        structured = False
        if announced:
            chosen, lead_topic = announced
            structured = True
        elif shape in ("list", "why", "how", "fact") and not value_fact:
            # a list whose heading matches the question answers it whole; for a plain fact
            # question the heading must be the very best match
            chosen, lead_topic = self._pick_list(
                scored, cand_rows, unit_cos, strict=shape in ("fact", "why"), shape=shape, tokens=tokens,
                question=resolved,
            )
            if not chosen and shape in ("list", "how"):
                # the items under the heading of a best passage that names what is asked
                found = outline.section_list(idx, rows, resolved, parts.segmenter.words)
                if found is not None and not self._enumerates_better(unit_cos, found[0], cand_rows[:3]):
                    (chosen, lead_topic), structured = found, True
            if not chosen:
                n = 4 if shape == "fact" else 5
                chosen = self._pick_sentences(scored, n, rows)
        elif value_fact:
            chosen = self._pick_sentences(scored, 4, rows)
        elif shape == "difference":
            chosen = self._pick_contrast(scored, resolved, rows)
        else:
            chosen = self._pick_sentences(scored, 3, rows)
        if not chosen:
            return self._refuse(question, resolved, script, conf, qvec, t0, t1)
        structured = structured or sum(1 for u in chosen if idx.units[u].list_id >= 0) >= 2
        own = {idx.units[u].chunk for u in chosen}
        chosen = self._ensure_top_passage(
            chosen, scored, rows, margin=self.settings.extra_margin_list if structured else None)
        # passages that only add their best sentence to a whole list: shown after it, not counted in it
        added = {idx.units[u].chunk for u in chosen} - own if structured else set()
        chosen = self.structure.with_bodies(self.structure.context(self.structure.complete(chosen), structured))
        if not structured:
            chosen = self.structure.whole_articles(chosen)
        extras = {u for u in chosen if idx.units[u].chunk in added}

        answer_md, citations = self._compose(chosen, shape, lead_topic, script, scored, tokens, extras)
        t2 = time.perf_counter()
        return Answer(
            question=question, answered=True, answer=answer_md, citations=citations,
            source_kind="documents", related=[],
            timings_ms={"retrieve": round((t1 - t0) * 1000, 2), "compose": round((t2 - t1) * 1000, 2)},
            resolved_question=resolved, confidence=round(conf, 4),
        )

    @staticmethod
    def _overlap(tokens: list[str], text: str) -> float:
        if not tokens:
            return 0.0
        t = normalize(text)
        return sum(1 for tok in tokens if tok in t) / len(tokens)

    def _pick_sentences(self, scored: dict[int, float], n: int, rows: list[int] | None = None) -> list[int]:
        """Top units by score, diverse: the best unit of the top passage first, at most three
        units from it and two from any other passage, no near-copies (unit vectors closer than
        0.95)."""
        if not scored:
            return []
        idx = self.parts.index
        order = sorted(scored, key=lambda u: -scored[u])
        best = scored[order[0]]
        if rows:
            top_units = [u for u in order if idx.units[u].chunk == rows[0] and len(idx.unit_text(u)) >= 8]
            if top_units and scored[top_units[0]] >= best - 0.08:
                order.remove(top_units[0])
                order.insert(0, top_units[0])
        chosen: list[int] = []
        per_chunk: dict[int, int] = {}
        for u in order:
            if len(chosen) >= n:
                break
            if chosen and scored[u] < best - 0.06:
                break
            cap = 3 if rows and idx.units[u].chunk == rows[0] else 2  # the best passage may say more
            if len(idx.unit_text(u)) < 8 or per_chunk.get(idx.units[u].chunk, 0) >= cap:
                continue
            v = idx.unit_vectors[u]
            if any(float(v @ idx.unit_vectors[c]) > 0.95 for c in chosen):
                continue
            chosen.append(u)
            per_chunk[idx.units[u].chunk] = per_chunk.get(idx.units[u].chunk, 0) + 1
        return chosen

    def _enumerates_better(self, unit_cos: dict[int, float], items: Sequence[int], rows: Sequence[int],
                           topic: float = 0.0) -> bool:
        """The best-matching unit, in one of ``rows``, is a sentence outside any list that
        enumerates in itself (``INLINE_ENUMERATION``) and matches better than the list's
        ``items`` and its ``topic`` line: it, not their list, answers the question."""
        idx = self.parts.index
        if not unit_cos:
            return False
        top = max(unit_cos, key=unit_cos.get)
        rival = max([unit_cos.get(u, 0.0) for u in items] + [topic])
        return (idx.units[top].list_id < 0 and idx.units[top].kind == "sentence"
                and idx.units[top].chunk in rows
                and len(INLINE_ENUMERATION.findall(idx.unit_text(top))) >= 2
                and unit_cos[top] > rival + INLINE_LIST_MARGIN)

    def _named_list_in(self, row: int, question: str, heading: str) -> bool:
        """Whether passage ``row`` holds a list whose own name the question says in full (the
        items under "1. **反馈原则**" for "反馈要遵循哪几个原则"), other than ``heading``: more
        specific than the sub-headings of that heading above the passage."""
        idx = self.parts.index
        firsts: dict[int, int] = {}
        for u in idx.units_of_chunk.get(row, []):
            if idx.units[u].list_id >= 0 and idx.units[u].kind == "item":
                firsts.setdefault(idx.units[u].list_id, u)
        topics = {self.structure.list_topic(row, u) for u in firsts.values()}
        name = outline.heading_name(heading)
        return any(t and outline.heading_name(t) != name and self._names_in_full(t, question) for t in topics)

    def _pick_list(self, scored: dict[int, float], rows: list[int], unit_cos: dict[int, float],
                   strict: bool = False, shape: str = "list", tokens: list[str] | None = None,
                   question: str = "") -> tuple[list[int], str]:
        """The list (numbered items under one heading) that best answers the question: its
        heading or lead line should match the question, and its items should too; a list
        whose own name the question says in full ("反馈原则有哪几条" over the list under
        "1. **反馈原则**") counts more."""
        idx = self.parts.index
        lists: dict[tuple[int, int], list[int]] = {}
        for u in scored:
            unit = idx.units[u]
            if unit.list_id >= 0 and unit.kind == "item":
                lists.setdefault((unit.chunk, unit.list_id), []).append(u)
        best_key, best_rank, best_score, best_topic, holds_best = None, -1.0, -1.0, 0.0, False
        top_raw = max(unit_cos.values(), default=0.0)
        distinct = list(dict.fromkeys(tokens or []))  # each of the question's terms once
        # lists in the three best passages, or right after them
        allowed = set(rows[:3]) | {r + 1 for r in rows[:3]}
        for (row, lid), members in lists.items():
            if row not in allowed or (len(members) < 2 and len(self.structure.list_units(lid, row)) < 2):
                continue  # a list of one item is no list (unless it goes on in the next chunks)
            vals = sorted((unit_cos[u] for u in members), reverse=True)
            first = min(members, key=lambda u: idx.units[u].start)
            # headings, leads and intro sentences above the list in its chunk
            above = self.structure.above(row, first)
            # headings, lead lines, announcing sentences and the sentence right above it name
            # the list; other prose above it is not about the list (it may be the answer itself)
            topic = max((unit_cos.get(u, 0.0) for i, u in enumerate(above)
                         if self.structure.names_list(u) or i == len(above) - 1), default=0.0)
            label = normalize(" ".join(idx.unit_text(u) for u in above))
            if (shape == "how" and CAUSE_LABEL.search(label)) or (shape == "why" and REMEDY_LABEL.search(label)):
                continue  # a list of causes does not answer "how to fix it", nor the reverse
            # the question's words in the list's label and items ("对外…形象…宣传" picks the
            # list of PR duties over another list in the same passage)
            lexical = self._idf_share(distinct, label + " ".join(idx.unit_text(u) for u in members))
            dense = 0.6 * max(topic, vals[0] - 0.02) + 0.4 * float(np.mean(vals[:3])) - 0.02 * rows.index(row)
            s = dense + LIST_LEXICAL_WEIGHT * lexical
            if question and self._names_in_full(self.structure.list_topic(row, first), question):
                s += LIST_NAMED_BONUS
            if s > best_rank:
                best_key, best_rank, best_score, best_topic = (row, lid), s, dense, topic
                holds_best = vals[0] >= top_raw
        if best_key is None:
            return [], ""
        if self._enumerates_better(unit_cos, lists[best_key], rows[:3], best_topic):
            return [], ""
        if strict and best_topic < top_raw - 0.005:
            return [], ""
        top_unit = max(unit_cos, key=unit_cos.get)
        if (rows and idx.units[top_unit].chunk == rows[0] and idx.units[top_unit].list_id < 0
                and best_key[0] != rows[0] and best_topic < top_raw - ELSEWHERE_TOPIC_MARGIN
                and max(unit_cos[u] for u in lists[best_key]) < top_raw - ELSEWHERE_ITEM_MARGIN):
            return [], ""  # the best passage's own sentence answers; the list elsewhere is weaker
        # the list is the answer when its heading matches about as well as anything, or when
        # it holds the single best-matching sentence
        if best_topic < top_raw - 0.015 and best_score < top_raw - 0.04 and not holds_best:
            return [], ""
        row, lid = self.structure.list_start(*best_key)
        items = self.structure.list_units(lid, row)
        return items[:14], self.structure.list_topic(row, items[0])

    def _pick_contrast(self, scored: dict[int, float], question: str, rows: list[int]) -> list[int]:
        """Contrasting points from both sides of a 区别 question: for each side the best
        sentence that has it as its subject (near the start: "销售管理是指…", "市场部的目标是…"),
        then the best general points."""
        sides = contrast_sides(question)
        base = self._pick_sentences(scored, 3, rows)
        if not sides:
            return base
        idx = self.parts.index
        chosen: list[int] = []
        # a sentence that sets the two sides against each other says the difference outright
        # ("市场部门的任务是解决…好卖的问题;销售部门的任务是解决…")
        both = [u for u in scored if all(side in normalize(idx.unit_text(u)) for side in sides)
                and _CONTRASTS.search(idx.unit_text(u))]
        if both:
            chosen.append(max(both, key=lambda u: scored[u]))
        for side in sides:
            subject = []
            for u in scored:
                head = normalize(strip_marker(idx.unit_text(u)))
                others = [o for o in sides if o != side]
                if 0 <= head.find(side) <= 3 and u not in chosen and not any(o in head[:20] for o in others):
                    subject.append(u)
            if not subject:  # no sentence about it as its subject: one that speaks of it
                subject = [u for u in scored if side in normalize(idx.unit_text(u)) and u not in chosen]
            if subject:
                chosen.append(max(subject, key=lambda u: scored[u]))
        for u in base:
            if u not in chosen:
                chosen.append(u)
        return chosen[: min(4, self.settings.max_points)]

    def _ensure_top_passage(self, chosen: list[int], scored: dict[int, float], rows: list[int],
                            margin: float | None = None) -> list[int]:
        """The best-ranked passage always contributes: when the chosen points come from
        elsewhere, its best sentence is added (it is what retrieval trusts most), to a whole
        list taken from another passage too (the list a lower passage's lead line announces
        may answer a neighbouring question, sharing its words). The next passages add their
        best sentence when it scores within ``margin`` (default ``answer.extra_margin``) of the
        best point, whole-list answers included (with ``answer.extra_margin_list``): two guides
        may each answer the question with a list of their own."""
        idx = self.parts.index
        margin = self.settings.extra_margin if margin is None else margin
        out = list(chosen)
        best = max((scored.get(u, 0.0) for u in chosen), default=0.0)
        for rank, row in enumerate(rows[: 1 + self.settings.extra_passages]):
            if any(idx.units[u].chunk == row for u in out):
                continue
            top = [u for u in scored if idx.units[u].chunk == row and len(idx.unit_text(u)) >= 8]
            if not top:
                continue
            u = max(top, key=lambda u: scored[u])
            if rank == 0:
                out.insert(0, u)
            elif scored[u] >= best - margin:
                out.append(u)
        return out

    # -- composing -----------------------------------------------------------------------------
    def _compose(self, chosen: list[int], shape: str, topic: str, script: str,
                 scored: dict[int, float], terms: list[str],
                 extras: Collection[int] = ()) -> tuple[str, list[Citation]]:
        """The answer's Markdown and its citations. ``extras``: points of other passages that
        follow a whole list under a line of their own, not counted in the list's lead."""
        idx = self.parts.index
        # points in document order within each source, sources by first appearance; extras last
        first_seen: dict[str, int] = {}
        for i, u in enumerate(chosen):
            first_seen.setdefault(idx.chunks[idx.units[u].chunk].source, i)
        ordered = sorted(
            chosen,
            key=lambda u: (u in extras, first_seen[idx.chunks[idx.units[u].chunk].source], idx.units[u].start),
        )
        # merge consecutive units of one document into one citation span
        groups: list[list[int]] = []
        for u in ordered:
            unit = idx.units[u]
            src = idx.chunks[unit.chunk].source
            if groups:
                last_u = groups[-1][-1]
                last = idx.units[last_u]
                first = idx.units[groups[-1][0]]
                text = idx.documents[src].text
                same = idx.chunks[last.chunk].source == src
                gap = text[last.end : unit.start] if same and unit.start >= last.end else "x"
                if (same and not gap.strip() and unit.end - first.start <= MAX_CITATION_CHARS
                        and (u in extras) == (last_u in extras)):
                    groups[-1].append(u)
                    continue
            groups.append([u])
        citations: list[Citation] = []
        cite_of: dict[int, int] = {}
        for n, group in enumerate(groups, start=1):
            first, last = idx.units[group[0]], idx.units[group[-1]]
            chunk = idx.chunks[first.chunk]
            doc = idx.documents[chunk.source]
            citations.append(
                Citation(
                    n=n, source=chunk.source, title=chunk.title or doc.title, section=chunk.section,
                    start=first.start, end=last.end, quote=doc.text[first.start : last.end],
                    score=round(max(scored.get(u, 0.0) for u in group), 4),
                )
            )
            for u in group:
                cite_of[u] = n
        # a point is one list item, or a run of sentences on one line of the same citation
        runs: list[list[int]] = []
        for u in ordered:
            unit = idx.units[u]
            if (runs and len(runs[-1]) == 1 and u == runs[-1][0] + 1 and self.structure.title_only(runs[-1][0])
                    and unit.kind == "sentence" and cite_of[runs[-1][0]] == cite_of[u]):
                runs[-1].append(u)  # an item's title and the sentence explaining it
                continue
            if runs and unit.kind == "sentence" and idx.units[runs[-1][-1]].kind == "sentence":
                prev = idx.units[runs[-1][-1]]
                text = idx.documents[idx.chunks[unit.chunk].source].text
                if cite_of[runs[-1][-1]] == cite_of[u] and "\n" not in text[prev.end : unit.start]:
                    runs[-1].append(u)
                    continue
            runs.append([u])
        main = [run for run in runs if run[0] not in extras]
        points: list[str] = []
        more: list[str] = []  # the extras' points
        intro = ""
        for i, run in enumerate(runs):
            first, last = idx.units[run[0]], idx.units[run[-1]]
            text = idx.documents[idx.chunks[first.chunk].source].text[first.start : last.end]
            text = re.sub(r"\s*\n\s*", " ", text)
            if i == 0 and len(main) >= 3 and self._introduces(text, main[1:]):
                # "需要把握四个原则:" introduces the points; it is not one of them, so that
                # "第二点" in a follow-up means the second principle
                intro = f"{strip_marker(text).strip()} [{cite_of[run[0]]}]"
                continue
            limit = _POINT_MAX + 40 * (len(run) - 1)
            # a list item keeps its head (its title), prose keeps the part about the question
            focus = [] if first.kind == "item" else terms
            # an item of a list nested under a chosen item is indented under it
            bullet = "  -" if self.structure.nested_under(run[0]) in chosen else "-"
            point = f"{bullet} {shorten(text, limit, focus)} [{cite_of[run[0]]}]"
            (more if run[0] in extras else points).append(point)
        lead = in_script("根据资料：", script) if intro else self._lead(shape, topic, len(points), script)
        tail = [in_script(ALSO_SAID, script), *more] if more else []
        return "\n".join([lead] + ([intro] if intro else []) + points + tail), citations

    def _introduces(self, text: str, rest: list[list[int]]) -> bool:
        """Whether ``text`` announces the points after it: it ends in a colon or names a count
        ("…以下五个方面的工作"), and the points after it are list items."""
        idx = self.parts.index
        return (len(text) <= _POINT_MAX and bool(ANNOUNCER.search(text.strip()))
                and all(idx.units[run[0]].kind == "item" for run in rest))

    @staticmethod
    def _lead(shape: str, topic: str, n: int, script: str) -> str:
        topic = normalize(topic).replace(" ", "") if topic else ""
        if shape in ("list", "why", "how") and topic:
            lead = f"关于“{topic}”，资料中列出以下{n}点："
        elif shape == "why":
            lead = "根据资料，主要原因如下："
        elif shape == "how":
            lead = "根据资料，可以从以下几方面着手："
        elif shape == "difference":
            lead = "根据资料，两者的区别主要体现在："
        elif shape == "list":
            lead = "根据资料，要点如下："
        else:
            lead = "根据资料："
        return in_script(lead, script)

    # -- refusing ------------------------------------------------------------------------------
    def _refuse(self, question: str, resolved: str, script: str, conf: float,
                qvec: np.ndarray | None, t0: float, t1: float) -> Answer:
        related = self.related(qvec, exclude=resolved, n=3)
        text = NOT_COVERED
        if related:
            text += "你可以试试这些问题："
        return Answer(
            question=question, answered=False, answer=in_script(text, script), citations=[],
            source_kind="none", related=[in_script(r, script) for r in related],
            timings_ms={"retrieve": round((t1 - t0) * 1000, 2), "compose": round((time.perf_counter() - t1) * 1000, 2)},
            resolved_question=resolved, confidence=round(conf, 4),
        )

    def suggestions(self) -> list[str]:
        """Questions the knowledge base can answer: the chat's starters plus questions made
        from section headings."""
        if self._suggestions is None:
            qs = list(self.parts.starters) + heading_questions(self.parts.index)
            # headings that suggest no natural question still name what the corpus covers
            self._suggestions = list(dict.fromkeys(qs or plain_heading_questions(self.parts.index)))
        return self._suggestions

    def related(self, qvec: np.ndarray | None, exclude: str = "", n: int = 3) -> list[str]:
        qs = self.suggestions()
        if not qs:
            return []
        if self._suggestion_vectors is None:
            self._suggestion_vectors = self.parts.embedder.embed_queries([normalize(q) for q in qs])
        if qvec is None:
            return qs[:n]
        sims = self._suggestion_vectors @ qvec
        order = np.argsort(-sims)
        ex = normalize(exclude)
        return [qs[i] for i in order if normalize(qs[i]) != ex][:n]
