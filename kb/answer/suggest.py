"""Questions the knowledge base can answer, made from its section headings and list leads.

Used for "related questions" when a question is refused, as FAQ candidates, and as the chat's
starter questions when the domain names none."""

from __future__ import annotations

import re
from itertools import zip_longest

from ingest.normalize import to_simplified
from kb.units import strip_marker

_PREFIX = re.compile(r"^(第[一二三四五六七八九十\d]+[篇章节部][:：]?|\d+(\.\d+)+\s*)")
_TEMPLATES = (
    (re.compile(r"(职责|职能|任务|工作内容|资料)$"), "{}有哪些？"),
    (re.compile(r"(原因|因素)$"), "{}有哪些？"),
    (re.compile(r"(区别|差异|不同)$"), "{}是什么？"),
    (re.compile(r"关系$"), "{}是怎样的？"),
    (re.compile(r"(争吵|冲突|矛盾|分歧)"), "{}的原因是什么？"),
    (re.compile(r"(协作|配合|协调|合作)之道$"), "{}是什么？"),
    (re.compile(r"(协作|配合|协调|合作)$"), "如何做好{}？"),
    (re.compile(r"(阶段|方向|趋势|标准|发展)$"), "{}是什么？"),
    (re.compile(r"(流程|步骤|程序|办法|制度|规定|要求|权限|范围|条件)$"), "{}是怎样的？"),
)


def question_for(label: str) -> str | None:
    """A natural question for a heading, or None when the heading does not suggest one."""
    text = to_simplified(strip_marker(_PREFIX.sub("", label.strip()))).strip(" :：。，,")
    text = re.sub(r"^(关于|浅谈|谈谈|论)", "", text)
    if not (4 <= len(text) <= 22) or any(ch in text for ch in "…,，;；"):
        return None
    for pattern, template in _TEMPLATES:
        if pattern.search(text):
            return template.format(text)
    return None


def _heading_questions(index) -> list[tuple[str, str]]:
    """(source, question) for the heading lines of the index (whole lines the chunker
    recognised as headings, not labels cut from long paragraphs), in document order."""
    out = []
    for i, unit in enumerate(index.units):
        if unit.kind != "heading":
            continue
        q = question_for(index.unit_text(i))
        if q:
            out.append((index.chunks[unit.chunk].source, q))
    return out


def heading_questions(index) -> list[str]:
    """Questions from the heading lines of the index, in document order, without repeats."""
    return list(dict.fromkeys(q for _, q in _heading_questions(index)))


def plain_heading_questions(index) -> list[str]:
    """A question for every heading line ("一、试用期" → "试用期是怎么规定的？"), for a corpus
    whose headings suggest none of the natural questions above."""
    out = []
    for i, unit in enumerate(index.units):
        if unit.kind != "heading":
            continue
        text = to_simplified(strip_marker(_PREFIX.sub("", index.unit_text(i).strip()))).strip(" :：。，,#")
        if 2 <= len(text) <= 16 and not any(ch in text for ch in "…,，;；？?"):
            out.append(f"{text}是怎么规定的？")
    return list(dict.fromkeys(out))


def starter_questions(index, n: int = 4) -> list[str]:
    """``n`` heading questions to start a chat with when none are configured: each document's
    first, then each one's second, and so on, so that they show what the whole corpus covers."""
    by_source: dict[str, list[str]] = {}
    seen: set[str] = set()
    for source, q in _heading_questions(index):
        if q not in seen:
            seen.add(q)
            by_source.setdefault(source, []).append(q)
    rounds = zip_longest(*by_source.values())
    return [q for row in rounds for q in row if q][:n]
