"""Answers read off a document's outline: a list question whose answer is a set of
sub-headings ("帮扶方案包括哪几块？" over a guide whose section "具体方案" has the sub-headings
"培训指导", "能力提升", "跟踪反馈").

The outline is the one built at ingest (``KnowledgeIndex.outline``); nothing here re-reads the
document's structure. A heading answers when it sits above one of the best passages, has two
or more sub-headings, and its own label names what the question asks about, or the
sub-headings are, by their last word, the kind of thing a count question asks for ("分成哪几个
阶段" over "（一）初创阶段", "（二）扩张阶段")."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ingest.chunk import Heading
from ingest.normalize import in_script, normalize
from kb.answer.base import Citation
from kb.question import LIST_CUE, PARTS_CUE
from kb.units import strip_marker

MAX_CHILDREN = 12  # an outline list longer than this is a table of contents, not an answer
# a sub-heading directly over a short list ("### 短期改进措施" / "1. 建立责任意识" "2. 提升执行力")
# brings that list's items, indented under it, when there are at most this many sub-headings
# and items: the heading alone names a part, its items say what the part holds
MAX_ITEMS_UNDER = 4
MAX_CHILDREN_WITH_ITEMS = 4
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


_NAME_END = re.compile(r"[：:（(—–-]")
_LINE_BREAKS = re.compile(r"\s*\n\s*")


def heading_name(label: str) -> str:
    """What a heading names: its label up to a colon or an aside ("具体方案：搭建成长的阶梯"
    names 具体方案), without a leading number ("1. 培训指导")."""
    name = _NAME_END.split(label, 1)[0].strip() or label
    return _NUMBER.sub("", name).strip() or name


_NUMBER = re.compile(r"^(?:\d{1,3}[.、．)）]\s*|[一二三四五六七八九十]+[、.．]\s*|第[一二三四五六七八九十百\d]+[章节節篇部分]\s*)")


_NEGATORS = "不未没非无"


def said_in(word: str, question: str, name: str = "") -> bool:
    """``word`` occurs in ``question`` and is not only negated there: "达标" is not said by
    "改进不达标时…" (unless the heading's ``name`` negates it too: "不达标处理")."""
    at = question.find(word)
    while at >= 0:
        if at == 0 or question[at - 1] not in _NEGATORS or question[at - 1] + word in name:
            return True
        at = question.find(word, at + 1)
    return False


def names_the_question(name_terms: list[str], question: str, every: bool = False) -> bool:
    """The heading's name is what the question asks about: at least half of its words (two
    characters or more) are said in the question (``said_in``: not only negated); with
    ``every``, all of them."""
    words = [w for w in dict.fromkeys(normalize(t) for t in name_terms) if len(w) >= MIN_TERM_CHARS]
    name = "".join(normalize(t) for t in name_terms)
    found = sum(1 for w in words if said_in(w, question, name))
    return bool(words) and (found == len(words) if every else found * 2 >= len(words))


# the kind of thing a count question asks for: "分成哪几个阶段" -> 阶段, "有哪些原则" -> 原则
_ASKED_KIND = re.compile(r"(?:哪几|哪些|几)(?:个|种|类|大|项|条)?([\u4e00-\u9fff]{2})(?=[？?，,。；;！!\s]|$)")


def asked_kind(question: str) -> str:
    """The two-character noun a count question ends its ask with ("" when none)."""
    m = _ASKED_KIND.search(normalize(question))
    return m.group(1) if m else ""


def find_list(index, terms: list[str], rows: list[int], question: str,
              tokenize: Callable[[str], list[str]], top: int = 3) -> OutlineList | None:
    """The heading whose sub-headings answer a list ``question`` with content ``terms``
    (normalised question tokens), among the headings above the best ``top`` passages.
    ``tokenize`` gives the words of a heading's name."""
    terms = [t for t in dict.fromkeys(normalize(x) for x in terms) if len(t) >= MIN_TERM_CHARS]
    question = normalize(question)
    if not terms:
        return None
    kind = asked_kind(question)
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
            of_kind = sum(1 for c in children if heading_name(normalize(c.label)).endswith(kind)) if kind else 0
            if of_kind >= 2 and of_kind * 2 >= len(children):
                # the sub-headings are the things asked for by their kind ("演变分成哪几个阶段"
                # over "(一)简单的销售部门阶段", "(二)…阶段"): the heading need not be named
                score = 1.0 + _hits(terms, h.path) - 0.5 * rank + 0.01 * h.level
            else:
                own = _hits(terms, h.label)
                if not own or not names_the_question(tokenize(heading_name(h.label)), question):
                    continue  # the heading itself must name what is asked about
                if any(names_the_question(tokenize(heading_name(c.label)), question) for c in children):
                    continue  # the question asks about one of its parts, not for the parts
                if not (PARTS_CUE if h.parent < 0 else LIST_CUE).search(question) and not (
                        h.parent >= 0 and _spanned(index, rows[:top], chunk.source, children) >= 2):
                    # the question must ask for several things (of a document's top heading, its
                    # title, for its parts), unless the best passages lie under two or more of
                    # its sub-headings: retrieval says the answer spans its parts ("还是不达标，
                    # 接下来咋处理" over 规范流程, 合理警告, 妥善离职)
                    continue
                # its own words count most, then its ancestors', less for a lower-ranked passage
                score = 2.0 * own + _hits(terms, h.path) - 0.5 * rank + 0.01 * h.level
            if best is None or score > best.score:
                best = OutlineList(chunk.source, h, children, score)
    return best


def _spanned(index, rows: list[int], source: str, children: list[Heading]) -> int:
    """How many of ``children`` (sub-headings in ``source``) hold one of the passages ``rows``."""
    sections = [index.chunks[r].section + " > " for r in rows if index.chunks[r].source == source]
    return sum(1 for c in children if any(s.startswith(c.path + " > ") for s in sections))


def label_span(text: str, h: Heading) -> tuple[int, int]:
    """The span of a heading's label inside its line (without ``#`` marks), for the citation."""
    i = text.find(h.label, h.start, h.end)
    return (i, i + len(h.label)) if i >= 0 else (h.start, h.end)


def items_under(index, source: str, heading: Heading) -> list[int]:
    """The items of the first list directly under ``heading`` (in its own section, not in a
    deeper one), when it has at most ``MAX_ITEMS_UNDER``; else none."""
    units = index.units_of_section.get((source, heading.path), [])
    first = next((u for u in units if index.units[u].kind == "item" and index.units[u].list_id >= 0), None)
    if first is None:
        return []
    items = [u for u in units if index.units[u].list_id == index.units[first].list_id]
    return items if len(items) <= MAX_ITEMS_UNDER else []


def compose(index, found: OutlineList, script: str, first_n: int = 1) -> tuple[str, list[Citation]]:
    """The sub-headings as the answer's points, each citing its own heading line, with the
    short list right under each when there are few (``items_under``)."""
    doc = index.documents[found.source]
    citations: list[Citation] = []
    points: list[str] = []
    n = first_n
    with_items = len(found.children) <= MAX_CHILDREN_WITH_ITEMS
    for child in found.children:
        start, end = label_span(doc.text, child)
        citations.append(Citation(n=n, source=found.source, title=doc.title, section=child.path,
                                  start=start, end=end, quote=doc.text[start:end],
                                  score=round(found.score, 4)))
        points.append(f"- {doc.text[start:end]} [{n}]")
        n += 1
        for u in items_under(index, found.source, child) if with_items else []:
            unit = index.units[u]
            citations.append(Citation(n=n, source=found.source, title=doc.title, section=child.path,
                                      start=unit.start, end=unit.end, quote=doc.text[unit.start : unit.end],
                                      score=round(found.score, 4)))
            text = strip_marker(_LINE_BREAKS.sub(" ", doc.text[unit.start : unit.end])).strip()
            points.append(f"  - {text} [{n}]")
            n += 1
    topic = normalize(found.heading.label).replace(" ", "")
    lead = in_script(f"关于“{topic}”，资料中分为以下{len(found.children)}个方面：", script)
    return "\n".join([lead, *points]), citations


def section_list(index, rows: list[int], question: str, tokenize: Callable[[str], list[str]],
                 top: int = 3) -> tuple[list[int], str] | None:
    """The list of items in a best passage whose own section heading names what ``question``
    asks about ("有效解决" for "问题要真正解决掉，该怎么做"): its longest list, whole, with
    the heading's name as the topic. ``tokenize`` gives the words of a heading's name."""
    question = normalize(question)
    if not rows:
        return None
    base = index.chunks[rows[0]].section  # the best passage's section, and what lies under it
    for row in rows[:top]:
        chunk = index.chunks[row]
        if not base or not (chunk.section == base or chunk.section.startswith(base + " > ")):
            continue
        # the section's own heading, or the one above a lead line ("有效解决 > 实践建议")
        names = [p for p in (chunk.section.split(" > ") if chunk.section else [])][-2:]
        label = next((p for p in reversed(names) if names_the_question(tokenize(heading_name(p)), question)), "")
        if not label:
            continue
        lists: dict[int, list[int]] = {}
        for u in index.units_of_chunk.get(row, []):
            unit = index.units[u]
            if unit.kind == "item" and unit.list_id >= 0:
                lists.setdefault(unit.list_id, []).append(u)
        best = max(lists.values(), key=len, default=[])
        if len(best) >= 2:
            return best, heading_name(label)
    return None
