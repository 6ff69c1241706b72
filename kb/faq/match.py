"""Does a question ask what an approved FAQ entry answers?

Two tests, both required:

1. The lexical guard (``QuestionTerms`` / ``guard``). A question is reduced to its intent
   (why / how / difference / quantity / time / who, or none) and its *hard terms*: glossary
   concepts (synonyms fold to one concept: 职责 = 职能 = 任务 = 干什么 = 负责什么 …), domain-
   dictionary words and every other word, except question fillers (``GENERIC``: 有, 哪些,
   负责, 工作, 平时 …) and words in at least ``SOFT_DF`` of the passages, which are *soft*:
   they may differ freely. The
   question and the entry question (or one of its alt questions) must have the same intent and
   the same hard terms. So 销售部经理的职责 ≠ 市场部经理的职责 (销售部 for 市场部), 市场部经理的工资
   ≠ …的职责 (工资 for 职责), and …冲突怎么解决 ≠ …为什么会发生冲突 (how for why).
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
from kb.query import QUESTION_WORDS
from kb.segment import Segmenter

SOFT_DF = 0.5  # a word in at least half of the passages (部门, 公司 here) is not distinctive
# question phrasings the glossary lacks, folded into its concepts for matching only (the
# first term names the glossary concept; these never reach retrieval)
PHRASINGS: tuple[tuple[str, ...], ...] = (
    ("职责", "岗位职责", "负责什么", "负责哪些", "负责些什么", "负责的事", "做什么", "做哪些", "做些什么",
     "干哪些", "干些什么", "管什么", "管哪些"),
)
# question fillers and verbs that carry no topic; never hard
GENERIC = frozenset(
    "有 没有 哪些 哪几 几个 几点 几种 几方面 什么 是 会 能 要 该 应该 应当 需要 可以 发生 产生 出现 存在 "
    "老 总 总是 老是 经常 常常 平时 平常 一般 通常 主要 具体 都 分别 包括 包含 涉及 内容 事情 东西 情况 "
    "做 干 搞 弄 负责 工作 呢 吗 啊 吧 请问 请 说说 讲讲 介绍 告诉 我 我们 你 你们 想 知道 了解 一下 "
    "之间 两个 部门 公司 企业 的 了 与 和 跟 同 及 以及 或 还是 些 个 一些 有何 何 何种 更 更好 更加 "
    "进一步 加强 承担 日常 每天 每日 平常".split()
)
_INTENTS: tuple[tuple[str, str], ...] = (
    ("why", r"为什么|为啥|为何|原因|因素|根源|怎么会|缘故|起因|何故"),
    ("how", r"怎么办|怎么做|怎么样才|如何|怎样|咋整|咋办|咋|怎么(?!会)|办法|措施|对策|解决|方法|做好|改善|避免|处理|应对"),
    ("difference", r"区别|不同|差异|差别|异同|相比|对比|比较|\bvs\b|哪个更"),
    ("quantity", r"多少|多久|多长|多大|多高"),
    ("time", r"什么时候|何时|哪天|几时"),
    ("who", r"谁|哪个部门|哪个岗位|哪个人"),
)
_INTENT_RES = tuple((name, re.compile(p)) for name, p in _INTENTS)
_INTENT_ALL = re.compile("|".join(p for _, p in _INTENTS))
_QW = re.compile("|".join(sorted(map(re.escape, QUESTION_WORDS), key=len, reverse=True)))
_PUNCT = re.compile(r"[\s?？!！。,，、:：;；\"'“”‘’()（）\[\]【】<>《》…·~～\-—_/]+")
# glossary groups that name an intent rather than a topic (their terms count as intents)
_INTENT_GROUPS = {"原因": "why", "办法": "how", "区别": "difference"}


def intents_of(text: str) -> frozenset[str]:
    n = normalize(text)
    return frozenset(name for name, rx in _INTENT_RES if rx.search(n))


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
        if word in GENERIC or len(word) < 2:
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
                if head in _INTENT_GROUPS:
                    intents.add(_INTENT_GROUPS[head])
                else:
                    hard.add("G:" + head)
                return " "
            rest = self._terms_re.sub(concept, rest)
        rest = _INTENT_ALL.sub(" ", rest)
        rest = _QW.sub(" ", rest)
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
