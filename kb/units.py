"""Answer units: the sentences and list items inside a chunk, with exact offsets.

The extractive answerer picks units; each is embedded once at index time so that scoring a
unit against a question costs a dot product, not a model call."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.chunk import (
    BULLETS,
    HEADING_STYLES,
    ITEM,
    MD_HEADING,
    SENTENCE_END,
    ChunkSettings,
    classify,
)
from ingest.models import Chunk

_SENT = re.compile(rf"[^{SENTENCE_END}]*[{SENTENCE_END}]+[”’\"」』)）》】]*|[^{SENTENCE_END}]+")
_DIGIT_MARK = r"\d{1,2}\s*[.、．)）](?!\d)"  # 1. 2、 3)
_WORD_MARK = r"[一二三四五六七八九十]是|其[一二三四五六七八九十][,，、是]|第[一二三四五六七八九十][,，、]"  # 一是 其二 第三,
_INLINE_ITEM = re.compile(rf"(?<=[:：;；。])\s*(?=(?:{_DIGIT_MARK}|{_WORD_MARK}|[{BULLETS}]))")
_ENUM_START = re.compile(rf"^(?:{_WORD_MARK})")
_DIGIT_ITEM = re.compile(rf"^\s*{_DIGIT_MARK}")
MAX_UNIT = 160
_SETTINGS = ChunkSettings()
_NUMBER = re.compile(r"^[（(]?\s*[第其]?(\d{1,3}|[一二三四五六七八九十]{1,3})")
_CN = {c: i for i, c in enumerate("一二三四五六七八九十", start=1)}


def item_number(text: str) -> int | None:
    """The number a list item starts with ("3、" -> 3, "(二)" -> 2), if any."""
    m = _NUMBER.match(text)
    if not m:
        return None
    raw = m.group(1)
    if raw.isdigit():
        return int(raw)
    if len(raw) == 1:
        return _CN.get(raw)
    if raw.startswith("十"):
        return 10 + _CN.get(raw[1], 0)
    return _CN.get(raw[0], 0) * 10 + (_CN.get(raw[-1], 0) if raw[-1] != "十" else 0)


def marker_style(text: str) -> str:
    """The kind of marker a list item starts with: "digit" (1、 1. 1)), "paren" ((1)), "cn"
    (一、 一是 第一), "circled" (①) or "bullet"; "" for none. A nested list uses another style."""
    t = text.lstrip()
    if re.match(r"\d", t):
        return "digit"
    if re.match(r"[（(]", t):
        return "paren"
    if re.match(r"[第其]?[一二三四五六七八九十]", t):
        return "cn"
    if re.match(r"[①-⑳]", t):
        return "circled"
    return "bullet" if ITEM.match(t) else ""


def follows(last: int | None, number: int | None) -> bool:
    """Whether item ``number`` continues a list whose last item was ``last``; one missing
    number is tolerated (web copies drop items: "3. … 5. …")."""
    return number is not None and last is not None and last < number <= last + 2


@dataclass(frozen=True)
class Unit:
    chunk: int  # row of the retrievable chunk
    start: int  # offsets into the document text
    end: int
    kind: str  # "heading" | "lead" | "item" | "sentence"
    list_id: int  # units of one list share it; -1 for non-list units


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    while s < e and text[s] in " \t\r\n\u3000":
        s += 1
    while e > s and text[e - 1] in " \t\r\n\u3000":
        e -= 1
    return s, e


def split_units(chunk: Chunk, row: int, first_list_id: int = 0) -> list[Unit]:
    """Units of one chunk in text order.

    Consecutive list items form one list. A numbered list stays open across the explanatory
    sentences under an item ("1.沟通的重要性:… 通过有效的沟通…。 2.共同制定目标:…"): the
    next item continues it when its number follows on. A heading or lead line closes it.
    A line that enumerates inline ("一是…;二是…;三是…", "解决方案:1.xx;2.yy") gives one item
    per enumerated part."""
    units: list[Unit] = []
    counter = first_list_id - 1  # the last list id handed out
    list_id = counter
    in_list = False
    last_number: int | None = None
    open_bullet = ""  # ...but goes on at the next item with the same bullet
    indent = 0  # of the open list's items
    outer: list[tuple[int, int | None, str, int]] = []  # the lists a nested list sits in
    pos = 0
    for line in chunk.text.split("\n"):
        ls = pos
        pos += len(line) + 1
        s, e = _trim(chunk.text, ls, ls + len(line))
        if s >= e:
            continue
        text = chunk.text[s:e]
        kind, style, _ = classify(text, _SETTINGS)
        if style == "article":
            # a statute's article is prose: its first line announces the items under it
            # ("第三十条 下列医疗费用不纳入…:") or states the rule itself
            kind = "lead" if text.rstrip()[-1:] in ":：" else "body"
        if kind in ("heading", "lead"):
            units.append(Unit(row, chunk.start + s, chunk.start + e, kind, -1))
            in_list = False
            last_number = None
            open_bullet = ""
            outer = []
            continue
        is_item = kind == "item" or bool(_ENUM_START.match(text))
        number = item_number(text) if is_item else None
        glyph = text[0] if is_item and text[0] in BULLETS else ""
        depth = s - ls  # the line's indentation
        if is_item and in_list and depth > indent:
            # an indented item under an item ("1. **反馈原则**" / "   - 及时性…"): a list of its
            # own, nested in the open one, which goes on after it
            outer.append((list_id, last_number, open_bullet, indent))
            counter += 1
            list_id, last_number, open_bullet, indent = counter, None, "", depth
            follows_on, restarted, same_bullets = True, False, True
        else:
            # an item as far left as an outer list's items is back in that list
            while is_item and outer and depth <= outer[-1][3]:
                list_id, last_number, open_bullet, indent = outer.pop()
            follows_on = follows(last_number, number)
            restarted = number is not None and last_number is not None and number <= last_number
            same_bullets = bool(glyph) and glyph == open_bullet  # "●…" again after an explanation
        if is_item and ((not in_list and not follows_on and not same_bullets) or restarted):
            counter += 1
            list_id = counter
            indent = depth
            outer = []
        if is_item:
            in_list = True
            last_number = number
            open_bullet = glyph
        elif last_number is None:
            in_list = False  # an unnumbered list ends at the first line that is not an item...
        # a line may carry an inline list ("解决方案:1.xx;2.yy;3.zz", "一是…;二是…") or
        # several sentences
        cuts = [0] + [m.start() for m in _INLINE_ITEM.finditer(text)] + [len(text)]
        pieces = []
        for a, b in zip(cuts, cuts[1:], strict=False):
            if b > a:
                pieces.append((a, b, a > 0))
        inline_list = len(pieces) > 1
        if inline_list:
            tail = text[pieces[-1][0]:].lstrip()  # the last enumerated part
            if not is_item:
                counter += 1
                list_id = counter
                outer = []
                last_number = item_number(tail)
                open_bullet = tail[0] if tail[:1] and tail[0] in BULLETS else ""
            elif marker_style(tail) == marker_style(text):
                last_number = item_number(tail)
            # else a nested enumeration inside an item ("4.费用管理主要是两项:一是…二是…")
            in_list = True
        for a, b, inline in pieces:
            seg = text[a:b]
            numbered = bool(_DIGIT_ITEM.match(seg))
            if len(seg) <= MAX_UNIT and (is_item or (inline and numbered)):
                spans = [(a, b)]
            else:
                spans = [(a + m.start(), a + m.end()) for m in _SENT.finditer(seg) if m.end() > m.start()]
            for j, (x, y) in enumerate(spans):
                xs, ys = _trim(chunk.text, s + x, s + y)
                if ys <= xs or not re.search(r"[\w\u4e00-\u9fff]", chunk.text[xs:ys]):
                    continue
                item = (is_item and j == 0) or (inline and j == 0)
                # the words before an inline list ("请问:…?我认为表现为以下三个方面:") are
                # not part of it (``inline`` is false only for the line's first piece)
                units.append(
                    Unit(row, chunk.start + xs, chunk.start + ys, "item" if item else "sentence",
                         list_id if is_item or inline else -1)
                )
    return units


def strip_marker(text: str) -> str:
    """A list item's text without its leading number or bullet (or a heading's "#" marks)."""
    m = MD_HEADING.match(text)
    if m:
        return text[m.end():]
    for _, pattern in HEADING_STYLES:
        m = pattern.match(text)
        if m:
            return text[m.end():].lstrip(" :：、.．")
    m = ITEM.match(text)
    return text[m.end():].lstrip() if m else text
