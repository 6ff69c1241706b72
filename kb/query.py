"""Query normalisation: script and width, question-word stripping, glossary synonyms."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ingest.normalize import normalize

# Question words and fillers new hires type; removed from the lexical query only.
QUESTION_WORDS = (
    "为什么会", "为什么", "为啥", "为何", "是什么", "什么是", "什么", "啥是", "啥", "哪些", "哪个",
    "哪儿", "哪里", "怎么办", "怎么样", "怎么", "怎样", "咋整", "咋办", "咋", "如何", "是否",
    "能否", "可以吗", "吗", "呢", "吧", "一下", "到底", "究竟", "有没有", "多少",
)
# "请" is a filler only where it opens the question ("请问…", "请介绍…"); inside a word it is
# content (请假, 申请, 申请问题) and must stay.
_POLITE = r"(?<![\u4e00-\u9fff])请(?:问|(?=说|讲|介绍|列举|解释|告诉|简述|概括|分析|比较))"
_QW = re.compile(
    "|".join([_POLITE, *sorted(map(re.escape, QUESTION_WORDS), key=len, reverse=True)])
)
_PUNCT = re.compile(r"[?？!！。,，、:：;；\"'“”‘’()（）\[\]【】<>《》…·~～]+")


def load_glossary(path: Path | None) -> list[tuple[str, ...]]:
    """Synonym groups from a TSV file (one group per line; ``#`` comments); none for ``None``
    (a domain without a glossary)."""
    if path is None:
        return []
    groups = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        terms = tuple(dict.fromkeys(normalize(t) for t in re.split(r"[\t ]+", line) if t.strip()))
        if len(terms) > 1:
            groups.append(terms)
    return groups


@dataclass(frozen=True)
class ProcessedQuery:
    original: str
    normalized: str  # Simplified, half-width: what the dense side embeds
    lexical: str  # question words stripped: what BM25 tokenises
    expansions: tuple[str, ...]  # glossary synonyms of terms found in the query


class QueryProcessor:
    def __init__(self, glossary: list[tuple[str, ...]] | None, strip_question_words: bool = True):
        self.groups = glossary or []
        self.strip = strip_question_words

    def process(self, question: str) -> ProcessedQuery:
        norm = normalize(question)
        expansions: list[str] = []
        for group in self.groups:
            if any(term in norm for term in group):
                expansions.extend(t for t in group if t not in norm)
        lexical = _QW.sub(" ", norm) if self.strip else norm
        lexical = _PUNCT.sub(" ", lexical).strip() or norm
        return ProcessedQuery(question, norm, lexical, tuple(dict.fromkeys(expansions)))
