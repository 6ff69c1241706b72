"""Answers read off a document's outline: a list question whose answer is a set of
sub-headings ("帮扶方案包括哪几块？" over a guide whose section "具体方案" has the sub-headings
"培训指导", "能力提升", "跟踪反馈").

The outline is the one built at ingest (``KnowledgeIndex.outline``); nothing here re-reads the
document's structure. A heading answers when it sits above one of the best passages, has two
or more sub-headings, and its own label names what the question asks about."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.chunk import Heading
from ingest.normalize import in_script, normalize
from kb.answer.base import Citation

MAX_CHILDREN = 12  # an outline list longer than this is a table of contents, not an answer
MIN_TERM_CHARS = 2  # single characters name nothing on their own


@dataclass(frozen=True)
class OutlineList:
    source: str
    heading: Heading
    children: list[Heading]
    score: float


def _hits(terms: list[str], text: str) -> int:
    t = normalize(text)
    return sum(1 for term in terms if term in t)


def find_list(index, terms: list[str], rows: list[int], top: int = 3) -> OutlineList | None:
    """The heading whose sub-headings answer a list question with content ``terms``
    (normalised question tokens), among the headings above the best ``top`` passages."""
    terms = [t for t in dict.fromkeys(normalize(x) for x in terms) if len(t) >= MIN_TERM_CHARS]
    if not terms:
        return None
    best: OutlineList | None = None
    seen: set[tuple[str, int]] = set()
    for rank, row in enumerate(rows[:top]):
        chunk = index.chunks[row]
        heads = index.outline.get(chunk.source, [])
        for i, h in enumerate(heads):
            if (chunk.source, i) in seen:
                continue
            # the heading is the passage's section or one of its ancestors
            if not (chunk.section == h.path or chunk.section.startswith(h.path + " > ")):
                continue
            seen.add((chunk.source, i))
            children = [c for c in heads if c.parent == i]
            if not 2 <= len(children) <= MAX_CHILDREN:
                continue
            own = _hits(terms, h.label)
            if not own:
                continue  # the heading itself must name what is asked about
            # its own words count most, then its ancestors', less for a lower-ranked passage
            score = 2.0 * own + _hits(terms, h.path) - 0.5 * rank + 0.01 * h.level
            if best is None or score > best.score:
                best = OutlineList(chunk.source, h, children, score)
    return best


def label_span(text: str, h: Heading) -> tuple[int, int]:
    """The span of a heading's label inside its line (without ``#`` marks), for the citation."""
    i = text.find(h.label, h.start, h.end)
    return (i, i + len(h.label)) if i >= 0 else (h.start, h.end)


def compose(index, found: OutlineList, script: str, first_n: int = 1) -> tuple[str, list[Citation]]:
    """The sub-headings as the answer's points, each citing its own heading line."""
    doc = index.documents[found.source]
    citations: list[Citation] = []
    points: list[str] = []
    for n, child in enumerate(found.children, start=first_n):
        start, end = label_span(doc.text, child)
        citations.append(Citation(n=n, source=found.source, title=doc.title, section=child.path,
                                  start=start, end=end, quote=doc.text[start:end],
                                  score=round(found.score, 4)))
        points.append(f"- {doc.text[start:end]} [{n}]")
    topic = normalize(found.heading.label).replace(" ", "")
    lead = in_script(f"关于“{topic}”，资料中分为以下{len(points)}个方面：", script)
    return "\n".join([lead, *points]), citations
