"""Query normalisation: script and width, question-word stripping (the words: ``kb.question``),
glossary synonyms."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ingest.normalize import normalize
from kb.question import strip_question_words

_PUNCT = re.compile(r"[?？!！。,，、:：;；\"'“”‘’()（）\[\]【】<>《》…·~～]+")


GENERIC_GLOSSARY = Path(__file__).resolve().parent / "data" / "glossary.tsv"


def glossary_groups(domain: Path | None, generic: bool = True) -> list[tuple[str, ...]]:
    """The domain's synonym groups, then (``generic``) the shipped workplace ones."""
    groups = load_glossary(domain) + (load_glossary(GENERIC_GLOSSARY) if generic else [])
    return list(dict.fromkeys(groups))


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
        lexical = strip_question_words(norm) if self.strip else norm
        lexical = _PUNCT.sub(" ", lexical).strip() or norm
        return ProcessedQuery(question, norm, lexical, tuple(dict.fromkeys(expansions)))
