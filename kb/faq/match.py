"""Does a question ask what an approved FAQ entry answers?

Two tests, both required:

1. The lexical guard (``QuestionTerms`` / ``guard``). A question is reduced to its intent
   (why / how / difference / quantity / time / who, or none) and its *hard terms*: glossary
   concepts (synonyms fold to one concept: 职责 = 职能 = 任务 = 干什么 = 负责什么 …), domain-
   dictionary words and every other word, except question fillers (``GENERIC_WORDS``: 有,
   哪些, 负责, 工作, 平时 …) and words in at least ``SOFT_DF`` of the passages, which are
   *soft*: they may differ freely (intents, fillers and question words: ``kb.question``).
   The question and the entry question (or one of its alt questions) must have the same
   intent and the same hard terms. So 销售部经理的职责 ≠ 市场部经理的职责 (销售部 for
   市场部), 市场部经理的工资 ≠ …的职责 (工资 for 职责), and …冲突怎么解决 ≠ …为什么会发生冲突
   (how for why).
2. The embedding: cosine between the normalised question and that entry question at least
   ``config.faq.match_threshold`` (calibrated by ``kb faq calibrate``; e5 cosines of related
   Chinese questions all sit in 0.93-0.99, so the cosine alone cannot tell a paraphrase from
   a question that swaps one word, but it rejects what the guard lets through by accident).

The guard runs first; the question is embedded only when some entry passes it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ingest.normalize import normalize
from kb.embed.base import Embedder
from kb.faq.store import FaqEntry
from kb.question import (
    GENERIC_WORDS,
    INTENT_WORDS,
    PHRASINGS,
    QUESTION_WORDS_RE,
    intent_named_by,
    intents_of,
)
from kb.segment import Segmenter

SOFT_DF = 0.5  # a word in at least half of the passages (部门, 公司 here) is not distinctive
_PUNCT = re.compile(r"[\s?？!！。,，、:：;；\"'“”‘’()（）\[\]【】<>《》…·~～\-—_/]+")


@dataclass(frozen=True)
class QuestionTerms:
    text: str  # normalised, punctuation removed
    intents: frozenset[str]
    hard: frozenset[str]  # "G:<concept>" for glossary concepts, else the word
    soft: frozenset[str]


class Vocabulary:
    """What the guard knows about words: glossary synonym groups, the domain dictionary, the
    segmenter, and how common each word is in the indexed passages."""

    def __init__(self, segmenter: Segmenter, glossary: list[tuple[str, ...]],
                 domain_words: Iterable[str], passages: list[str]):
        self.segmenter = segmenter
        self.concept_of: dict[str, str] = {}
        for group in [*glossary, *PHRASINGS]:
            head = group[0]
            for term in group:
                self.concept_of.setdefault(term, head)
        # glossary groups headed by an intent word (原因, 办法, 区别) name an intent, not a topic
        self._intent_of = {h: i for h in set(self.concept_of.values()) if (i := intent_named_by(h))}
        self._terms = sorted(self.concept_of, key=len, reverse=True)
        self._terms_re = re.compile("|".join(map(re.escape, self._terms))) if self._terms else None
        self.domain = frozenset(normalize(w) for w in domain_words if w.strip())
        self._raw_passages = passages
        self._passages: list[str] | None = None  # normalised on first use
        self._df: dict[str, float] = {}
        self._lock = threading.Lock()

    def df(self, word: str) -> float:
        """Share of the passages containing ``word``."""
        v = self._df.get(word)
        if v is None:
            with self._lock:
                if self._passages is None:
                    self._passages = [normalize(p) for p in self._raw_passages]
            n = sum(1 for p in self._passages if word in p)
            v = n / max(len(self._passages), 1)
            self._df[word] = v
        return v

    def is_soft(self, word: str) -> bool:
        if word in GENERIC_WORDS or len(word) < 2:
            return True
        if word in self.domain:
            return False
        return self.df(word) >= SOFT_DF

    def terms(self, question: str) -> QuestionTerms:
        text = _PUNCT.sub(" ", normalize(question)).strip()
        intents = set(intents_of(text))
        hard: set[str] = set()
        rest = text
        if self._terms_re is not None:
            def concept(m: re.Match) -> str:
                head = self.concept_of[m.group(0)]
                intent = self._intent_of.get(head)
                if intent:
                    intents.add(intent)
                else:
                    hard.add("G:" + head)
                return " "
            rest = self._terms_re.sub(concept, rest)
        rest = INTENT_WORDS.sub(" ", rest)
        rest = QUESTION_WORDS_RE.sub(" ", rest)
        soft: set[str] = set()
        stop = self.segmenter.stopwords
        for w in self.segmenter.words(rest):
            if w in stop or not w.strip():
                continue
            (soft if self.is_soft(w) else hard).add(w)
        return QuestionTerms(text, frozenset(intents), frozenset(hard), frozenset(soft))


def _present(term: str, other: QuestionTerms) -> bool:
    if term in other.hard or term in other.soft:
        return True
    return not term.startswith("G:") and term in other.text.replace(" ", "")


@dataclass(frozen=True)
class GuardResult:
    ok: bool
    reason: str  # "" when ok, else what differs


def guard(q: QuestionTerms, entry: QuestionTerms) -> GuardResult:
    """The lexical guard: same intent, same hard terms (each side's hard terms present in the
    other, as a concept, a word or a substring)."""
    if q.intents != entry.intents:
        return GuardResult(False, f"intent {sorted(q.intents)} vs {sorted(entry.intents)}")
    missing = sorted(t for t in entry.hard if not _present(t, q))
    if missing:
        return GuardResult(False, "question lacks " + ", ".join(missing))
    extra = sorted(t for t in q.hard if not _present(t, entry))
    if extra:
        return GuardResult(False, "question adds " + ", ".join(extra))
    if not entry.hard and q.text.replace(" ", "") != entry.text.replace(" ", ""):
        return GuardResult(False, "entry question has no distinctive term")
    return GuardResult(True, "")


@dataclass(frozen=True)
class Match:
    entry: FaqEntry
    variant: str  # the entry question or alt question that matched
    score: float  # cosine


class FaqMatcher:
    """Approved entries, ready to match: their question variants' terms and vectors. Rebuilt
    when ``entries_fn`` reports a new store revision."""

    def __init__(self, vocabulary: Vocabulary, embedder: Embedder, threshold: float):
        self.vocab = vocabulary
        self.embedder = embedder
        self.threshold = threshold
        self._lock = threading.Lock()
        self._revision: int | None = None
        self._variants: list[tuple[FaqEntry, str, QuestionTerms]] = []
        self._vectors = np.zeros((0, getattr(embedder, "dim", 1)), np.float32)

    def load(self, entries: list[FaqEntry], revision: int | None = None) -> None:
        variants = [
            (e, v, self.vocab.terms(v)) for e in entries for v in dict.fromkeys(e.questions) if v.strip()
        ]
        vectors = (
            self.embedder.embed_queries([normalize(v) for _, v, _ in variants])
            if variants else np.zeros((0, getattr(self.embedder, "dim", 1)), np.float32)
        )
        with self._lock:
            self._variants, self._vectors, self._revision = variants, vectors, revision

    def ensure(self, revision: int, entries_fn: Callable[[], list[FaqEntry]]) -> None:
        if revision != self._revision:
            self.load(entries_fn(), revision)

    def __len__(self) -> int:
        return len(self._variants)

    def match(self, question: str) -> Match | None:
        variants, vectors = self._variants, self._vectors
        if not variants:
            return None
        q = self.vocab.terms(question)
        passing = [i for i, (_, _, t) in enumerate(variants) if guard(q, t).ok]
        if not passing:
            return None
        qv = self.embedder.embed_queries([normalize(question)])[0]
        sims = vectors[passing] @ qv
        best = int(np.argmax(sims))
        score = float(sims[best])
        if score < self.threshold:
            return None
        entry, variant, _ = variants[passing[best]]
        return Match(entry, variant, round(score, 4))

    def explain(self, question: str, vector: np.ndarray | None = None) -> list[dict]:
        """For every approved variant: cosine, guard verdict and whether it would match (for
        `kb faq calibrate` and debugging "why did this hit"). ``vector``: the question's
        embedding, when already computed."""
        variants, vectors = self._variants, self._vectors
        if not variants:
            return []
        q = self.vocab.terms(question)
        if vector is None:
            vector = self.embedder.embed_queries([normalize(question)])[0]
        sims = vectors @ vector
        out = []
        for (entry, variant, terms), s in zip(variants, sims, strict=True):
            g = guard(q, terms)
            out.append({"entry_id": entry.id, "variant": variant, "cosine": round(float(s), 4),
                        "guard": g.ok, "reason": g.reason, "match": g.ok and s >= self.threshold})
        return sorted(out, key=lambda d: -d["cosine"])
