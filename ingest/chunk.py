"""Structure-aware chunking with exact offsets.

The text is cut into *blocks* (lines, minus the noise spans the cleaner found), each block is
classified (heading, list lead, list item, body), headings build a section path, and blocks are
packed into chunks of bounded size. A chunk never crosses a noise span, so for every chunk
``document.text[chunk.start:chunk.end] == chunk.text`` and no noise is inside it.

Heading levels are assigned the way reStructuredText assigns underline styles: the first heading
style met in a document is level 1, the next new style level 2, and so on. Plain-text copies of
Chinese guidance use 第X篇, 一、, (一), 案例1: and bare title lines in many different orders, and
this keeps the section path faithful to each document's own hierarchy without a fixed ranking.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from ingest.models import Chunk, Document, Noise

_CN_NUM = "一二三四五六七八九十百零〇两"

# (style, pattern) for lines that open a section. Checked in order.
HEADING_STYLES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("part", re.compile(rf"^第[{_CN_NUM}\d]+[篇部卷编編](?![a-zA-Z])")),
    ("chapter", re.compile(rf"^第[{_CN_NUM}\d]+章")),
    ("section", re.compile(rf"^第[{_CN_NUM}\d]+[节節](?!课)")),
    # a statute's article: the unit people cite ("第十九条 …"); its paragraphs (款) and its
    # (一)(二) items belong to it
    ("article", re.compile(rf"^第[{_CN_NUM}\d]+[条條](?=[\s\u3000]|$|[^{_CN_NUM}款项項\d的规規])")),
    ("cn_num", re.compile(rf"^[{_CN_NUM}]+\s*[、.．]")),
    ("paren_cn", re.compile(rf"^[（(]\s*[{_CN_NUM}]+\s*[)）]")),
    ("case", re.compile(rf"^案例\s*[{_CN_NUM}\d]+\s*[:：、.．]?")),
)

HEADING_STYLES_BY_NAME = dict(HEADING_STYLES)

# Lines that are items of a list (never section headings).
BULLETS = "●•◆◇■□▪►▶√※★☆"
ITEM = re.compile(
    rf"^(?:\d{{1,3}}\s*[、.．)）](?!\d)|[（(]\s*\d{{1,3}}\s*[)）]|[①-⑳]|[{BULLETS}]|[-–—]\s"
    # "1制定与实施…": a number glued to the item, but not a quantity ("3大职能", "2018年")
    r"|\d{1,2}(?=[\u4e00-\u9fff])(?![年月日号个大点次名人家天周时分倍成万千百亿元种类项条步层级期届岁])"
    r")"
)

SENTENCE_END = "。！？；!?;"
CLAUSE_END = "，,、：:"
_CLOSERS = "”’\"'」』)）》】"
_SENTENCE = re.compile(rf"[^{SENTENCE_END}]*[{SENTENCE_END}]+[{_CLOSERS}]*|[^{SENTENCE_END}]+")
_CLAUSE = re.compile(rf"[^{CLAUSE_END}]*[{CLAUSE_END}]+[{_CLOSERS}]*|[^{CLAUSE_END}]+")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_LABEL_CUT = re.compile(r"[，,。；;:：!?！？]")
_STRIP = " \t\r\n\u3000\ufeff"
# a line that opens with a date ("2008年9月18日 国务院令第535号公布", "（2018年12月29日修正）")
# records when or how a text was made; it never names a section
_DATE_LINE = re.compile(r"^[（(\[]?\s*\d{4}\s*年(?:\s*\d{1,2}\s*月)?")
_ARTICLE_NO = re.compile(rf"^第[{_CN_NUM}\d]+[条條]")
MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(?=\S)")


@dataclass(frozen=True)
class ChunkSettings:
    """How text is cut. ``max_chars`` bounds an ordinary chunk; a list kept whole under its
    heading may reach ``list_max_chars``. Chosen by measurement (see ``eval/README.md``)."""

    max_chars: int = 300
    list_max_chars: int = 600
    heading_max_chars: int = 30
    label_max_chars: int = 24

    def as_dict(self) -> dict:
        return {
            "max_chars": self.max_chars,
            "list_max_chars": self.list_max_chars,
            "heading_max_chars": self.heading_max_chars,
            "label_max_chars": self.label_max_chars,
        }


@dataclass
class Block:
    start: int
    end: int
    text: str
    kind: str  # "heading" | "lead" | "item" | "body"
    style: str = ""  # heading style for headings and labelled paragraphs
    label: str = ""  # section label for headings, leads and labelled paragraphs
    after_gap: bool = False  # noise lies between the previous block and this one


@dataclass
class _Section:
    path: list[str]
    blocks: list[Block] = field(default_factory=list)


def iter_pieces(text: str, noise: list[Noise]) -> Iterator[tuple[int, int, bool]]:
    """Yield ``(start, end, after_gap)`` for each line of ``text`` with noise cut out and
    surrounding whitespace stripped. ``after_gap`` is true when noise precedes the piece."""
    spans = sorted((n.start, n.end) for n in noise)
    gap = False
    si = 0
    for line in re.finditer(r"[^\n]*(?:\n|$)", text):
        ls, le = line.start(), line.end()
        if ls == le:
            break
        cur = ls
        while si < len(spans) and spans[si][1] <= ls:
            si += 1
        j = si
        while cur < le:
            # next noise span intersecting [cur, le)
            while j < len(spans) and spans[j][1] <= cur:
                j += 1
            if j < len(spans) and spans[j][0] < le:
                ns, ne = spans[j]
                if ns > cur:
                    piece = _strip(text, cur, ns)
                    if piece:
                        yield piece[0], piece[1], gap
                        gap = False
                gap = True
                cur = max(cur, ne)
            else:
                piece = _strip(text, cur, le)
                if piece:
                    yield piece[0], piece[1], gap
                    gap = False
                cur = le


def _strip(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start] in _STRIP:
        start += 1
    while end > start and text[end - 1] in _STRIP:
        end -= 1
    if start >= end:
        return None
    if not re.search(r"[\w\u4e00-\u9fff]", text[start:end]):
        return None  # punctuation left over after noise removal
    return start, end


def make_label(text: str, max_chars: int) -> str:
    """A short section label from a line that opens a section (heading or labelled paragraph)."""
    m = _LABEL_CUT.search(text, 1)
    label = text[: m.start()] if m else text
    # "案例1:" and "第一篇:" keep what follows the colon
    if m and text[m.start()] in ":：" and len(label) <= 6:
        m2 = _LABEL_CUT.search(text, m.end())
        label = text[: m2.start()] if m2 else text
    label = label.strip(_STRIP)
    if len(label) > max_chars:
        for word in ("问题", "問題", "的关系", "的關係"):
            k = label.find(word)
            if 0 < k and k + len(word) <= max_chars + 6:
                return label[: k + len(word)]
        return label[:max_chars] + "…"
    return label


def classify(text: str, settings: ChunkSettings) -> tuple[str, str, str]:
    """Return ``(kind, style, label)`` for one block's text."""
    m = MD_HEADING.match(text)
    if m:  # Markdown "## 标题": one level per number of #, the marks left out of the label
        return "heading", f"md{len(m.group(1))}", text[m.end() :].strip(_STRIP)
    short = len(text) <= settings.heading_max_chars
    ends_sentence = text[-1] in SENTENCE_END + CLAUSE_END + "…"
    if _DATE_LINE.match(text):
        return "body", "", ""
    m = _ARTICLE_NO.match(text)
    if m and HEADING_STYLES_BY_NAME["article"].match(text):
        return "item", "article", m.group()
    for style, pattern in HEADING_STYLES:
        if pattern.match(text):
            if short and not ends_sentence:
                return "heading", style, text
            if style in ("cn_num", "paren_cn", "case", "part", "chapter", "section"):
                return "item", style, make_label(text, settings.label_max_chars)
    if ITEM.match(text):
        return "item", "", ""
    if len(text) <= settings.heading_max_chars + 10 and text[-1] in ":：":
        return "lead", "", text.rstrip(":：").strip(_STRIP)
    if short and not ends_sentence and _CJK.search(text) and not text.endswith(("”", "\"")):
        return "heading", "title", text
    return "body", "", ""


_GLUED_TITLE = re.compile(r"(?<=[。！？；!?;])([\u4e00-\u9fff]{2,10})$")
_FIRST_ITEM = re.compile(r"^(?:[（(]?\s*[1一]\s*[、.．)）]|[1一](?=[\u4e00-\u9fff]))")


def _split_glued_titles(blocks: list[Block]) -> list[Block]:
    """Web copies often lose the line break before a heading: "...统一进行整合。结构层面" followed by
    "1、明确战略重点". A short fragment after the last sentence end of a line, right before a list
    that starts at 1, is split off as a title of its own (offsets stay exact)."""
    out: list[Block] = []
    for i, b in enumerate(blocks):
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        m = _GLUED_TITLE.search(b.text) if nxt is not None and not nxt.after_gap else None
        if m and b.kind in ("body", "item") and _FIRST_ITEM.match(nxt.text) and m.start(1) > 0:
            cut = b.start + m.start(1)
            head = b.text[: m.start(1)]
            out.append(Block(b.start, cut, head, b.kind, b.style, b.label, b.after_gap))
            out.append(Block(cut, b.end, m.group(1), "heading", "title", m.group(1), False))
        else:
            out.append(b)
    return out


def segment_blocks(doc: Document, noise: list[Noise], settings: ChunkSettings) -> list[Block]:
    blocks = []
    pieces = list(iter_pieces(doc.text, noise))
    # pieces per line: inline noise cuts a line into several pieces
    line_of = [doc.text.rfind("\n", 0, start) for start, _, _ in pieces]
    per_line = Counter(line_of)
    for (start, end, gap), line in zip(pieces, line_of, strict=True):
        text = doc.text[start:end]
        kind, style, label = classify(text, settings)
        if kind == "heading" and style == "title" and per_line[line] > 1:
            # a short fragment of a sentence that inline noise cut in pieces
            # ("...計劃的.制定、...的測評-全球品牌網-和選用...") is not a bare title line
            kind, style, label = "body", "", ""
        blocks.append(Block(start, end, text, kind, style, label, gap))
    blocks = _split_glued_titles(blocks)
    # a "title" line with nothing after it, or followed only by another title at the very end,
    # is body text (a closing remark), not a section of its own
    if blocks and blocks[-1].kind == "heading" and blocks[-1].style == "title":
        blocks[-1].kind = "body"
    return blocks


def _sections(blocks: list[Block]) -> list[_Section]:
    """Group blocks into sections; each carries the section path in force for its blocks.

    A statute's article (第X条) opens a section that holds its own text and everything after it
    (paragraphs, (一)(二) items) until the next article or heading."""
    levels: dict[str, int] = {}
    stack: list[tuple[int, str, str]] = []  # (level, label, style)
    lead: str = ""
    seen_items_under_lead = False
    sections: list[_Section] = []
    pending_headings: list[Block] = []

    def path() -> list[str]:
        p = [label for _, label, _ in stack]
        return p + ([lead] if lead else [])

    def in_article() -> bool:
        return bool(stack) and stack[-1][2] == "article"

    for b in blocks:
        if b.kind == "item" and b.style in ("cn_num", "paren_cn") and in_article():
            b = Block(b.start, b.end, b.text, "item", "", "", b.after_gap)  # an item of the article
        if b.kind == "heading" or (b.kind == "item" and b.style):
            level = levels.setdefault(b.style, len(levels) + 1)
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, b.label, b.style))
            lead, seen_items_under_lead = "", False
            if b.kind == "heading":
                pending_headings.append(b)
                continue
            sections.append(_Section(path(), pending_headings + [b]))
            pending_headings = []
            if b.style != "article":
                # a labelled paragraph (e.g. "一、X的关系:...") is its own section
                stack.pop()
            continue
        if b.kind == "lead":
            lead, seen_items_under_lead = b.label, False
            sections.append(_Section(path(), pending_headings + [b]))
            pending_headings = []
            continue
        if b.kind == "item":
            seen_items_under_lead = True
        elif lead and seen_items_under_lead:
            lead, seen_items_under_lead = "", False  # the list under the lead has ended
            sections.append(_Section(path(), []))
        if pending_headings or not sections or sections[-1].path != path():
            sections.append(_Section(path(), pending_headings))
            pending_headings = []
        sections[-1].blocks.append(b)
    if pending_headings:
        sections.append(_Section(path(), pending_headings))
    return [s for s in sections if s.blocks]


@dataclass(frozen=True)
class Heading:
    """One heading of a document's outline: ``text[start:end]`` is its line, ``label`` what it
    names (the line without its Markdown marks), ``level`` its depth (1 = outermost),
    ``parent`` the index of the heading it sits under (-1 at the top), ``path`` the section
    path it opens."""

    start: int
    end: int
    label: str
    level: int
    parent: int
    path: str

    def to_list(self) -> list:
        return [self.start, self.end, self.label, self.level, self.parent, self.path]


def document_outline(doc: Document, noise: list[Noise], settings: ChunkSettings) -> list[Heading]:
    """The document's headings as a tree, from the same blocks and the same level rule the
    chunker uses (a heading style's level is the order in which the document first uses it),
    so an outline entry and the chunks under it always agree."""
    levels: dict[str, int] = {}
    stack: list[int] = []  # indexes into out
    out: list[Heading] = []
    for b in segment_blocks(doc, noise, settings):
        if b.kind != "heading":
            continue
        level = levels.setdefault(b.style, len(levels) + 1)
        while stack and out[stack[-1]].level >= level:
            stack.pop()
        parent = stack[-1] if stack else -1
        path = " > ".join([out[i].label for i in stack] + [b.label])
        out.append(Heading(b.start, b.end, b.label, level, parent, path))
        stack.append(len(out) - 1)
    return out


def split_long(text: str, base: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut ``text`` (starting at offset ``base``) into spans of at most ``max_chars``, at
    sentence ends; a sentence longer than that is cut at clause ends, and only a clause longer
    than that is cut at ``max_chars``."""
    out: list[tuple[int, int]] = []
    for m in _SENTENCE.finditer(text):
        if m.end() - m.start() <= max_chars:
            out.append((base + m.start(), base + m.end()))
            continue
        for c in _CLAUSE.finditer(text, m.start(), m.end()):
            for s in range(c.start(), c.end(), max_chars):
                out.append((base + s, base + min(s + max_chars, c.end())))
    return [span for span in out if span[1] > span[0]]


def _pack(units: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """Greedily merge adjacent spans while the merged span stays within ``limit``."""
    packed: list[tuple[int, int]] = []
    for s, e in units:
        if packed and e - packed[-1][0] <= limit:
            packed[-1] = (packed[-1][0], e)
        else:
            packed.append((s, e))
    return packed


def chunk_document(doc: Document, noise: list[Noise], settings: ChunkSettings) -> list[Chunk]:
    """Cut one document into chunks with section paths and exact offsets."""
    blocks = segment_blocks(doc, noise, settings)
    chunks: list[Chunk] = []
    for section in _sections(blocks):
        # runs of blocks not separated by noise
        runs: list[list[Block]] = [[]]
        for b in section.blocks:
            if b.after_gap and runs[-1]:
                runs.append([])
            runs[-1].append(b)
        section_path = " > ".join(section.path)
        for run in runs:
            total = run[-1].end - run[0].start
            has_items = any(b.kind == "item" for b in run)
            limit = settings.list_max_chars if has_items else settings.max_chars
            if total <= limit:
                spans = [(run[0].start, run[-1].end)]
            else:
                units: list[tuple[int, int]] = []
                for b in run:
                    if b.end - b.start <= settings.max_chars:
                        units.append((b.start, b.end))
                    else:
                        units.extend(split_long(b.text, b.start, settings.max_chars))
                spans = _pack(units, settings.max_chars)
            for s, e in spans:
                chunks.append(
                    Chunk(
                        id=f"{doc.source}#{s}-{e}",
                        source=doc.source,
                        title=doc.title,
                        section=section_path,
                        start=s,
                        end=e,
                        text=doc.text[s:e],
                    )
                )
    return chunks
