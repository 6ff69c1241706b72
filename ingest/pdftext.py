"""Repair what PDF text extraction does to Chinese, page by page.

- **Look-alike code points**: fonts that map glyphs to Kangxi radicals (⼯ U+2F2F for 工), CJK
  radicals-supplement forms (⺠ for 民, ⻔ for 门), CJK compatibility ideographs and Latin
  ligatures (ﬁ) are mapped to the characters they stand for: NFKC for the ranges it covers,
  Unicode's EquivalentUnifiedIdeograph data for the radicals-supplement forms it does not.
- **Running headers and footers**: a line that recurs (digits aside) near the top or bottom
  of most pages — the print date and title, the page URL and "1/5", bare page numbers — is the
  page's furniture, not text, and is dropped.
- **Lines broken at the page width**: a line that ends mid-sentence and runs (nearly) to the
  page's right margin is joined to the next one, also across a page break, unless the next line
  opens a structural unit (第X章/条, (一), 1., a bullet).

The repaired text is the document's text: offsets point into it and the viewer shows it.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

# CJK Radicals Supplement forms NFKC leaves alone, and the ideograph each is equivalent to
# (Unicode EquivalentUnifiedIdeograph.txt): the simplified-form radicals fonts use for
# common characters.
RADICALS_SUPPLEMENT = {
    "\u2e86": "冂", "\u2e8a": "卜", "\u2e95": "彐", "\u2e9f": "母", "\u2ea0": "民", "\u2ea7": "牛",
    "\u2eaa": "疋", "\u2eae": "竹", "\u2eb7": "羊", "\u2ebc": "月", "\u2ec4": "西", "\u2ec6": "角",
    "\u2ec8": "讠", "\u2ec9": "贝", "\u2ecb": "车", "\u2ecd": "辶", "\u2ecf": "阝", "\u2ed1": "長",
    "\u2ed3": "长", "\u2ed4": "门", "\u2ed6": "阝", "\u2ed7": "雨", "\u2eda": "页", "\u2edb": "风",
    "\u2edc": "飞", "\u2edd": "食", "\u2ee0": "饣", "\u2ee2": "马", "\u2ee4": "鬼", "\u2ee5": "鱼",
    "\u2ee6": "鸟", "\u2ee7": "卤", "\u2ee8": "麦", "\u2ee9": "黄", "\u2eec": "齐", "\u2eee": "齿",
    "\u2ef0": "龙", "\u2ef3": "龟",
}
_LOOKALIKE = re.compile("[\u2e80-\u2eff\u2f00-\u2fdf\uf900-\ufaff\ufb00-\ufb06]")

SENTENCE_END = "。！？；!?;：:…"
_CLOSERS = "”’\"'」』)）》】"
# a line that opens a unit of its own is never joined to the line before it
_OPENS_UNIT = re.compile(
    r"^(?:第[一二三四五六七八九十百零〇两\d]+[编編章节節条條款]|[（(][一二三四五六七八九十\d]+[)）]"
    r"|[一二三四五六七八九十]+[、.．]|\d{1,3}[、.．)）]|[●•◆■□▪►※★☆\-–—*]|#)"
)
_EDGE_LINES = 3  # lines at each end of a page where headers and footers sit
_DIGITS = re.compile(r"\d+")
_PAGE_NUMBER = re.compile(r"^(?:[-–—\s]*\d{1,4}[-–—\s]*|第\s*\d+\s*页(?:\s*/?\s*共\s*\d+\s*页)?|\d+\s*/\s*\d+|page\s*\d+(?:\s*of\s*\d+)?)$", re.I)
_FULL_LINE = 0.8  # a line this share of the page's longest lines reaches its right margin


def fix_lookalikes(text: str) -> tuple[str, int]:
    """``text`` with look-alike code points replaced; also how many were replaced."""
    count = 0

    def repl(m: re.Match[str]) -> str:
        nonlocal count
        ch = m.group()
        fixed = RADICALS_SUPPLEMENT.get(ch) or unicodedata.normalize("NFKC", ch)
        if fixed != ch:
            count += 1
        return fixed

    return _LOOKALIKE.sub(repl, text), count


def _key(line: str) -> str:
    return _DIGITS.sub("#", " ".join(line.split()))


def _edge_keys(lines: list[str]) -> dict[int, tuple[str, int, str]]:
    """For each line near the top or bottom of a page, its key: the side, how far from the
    edge, and its text with digits masked ("第 3 页" and "第 4 页" are one line)."""
    out: dict[int, tuple[str, int, str]] = {}
    for i in range(min(_EDGE_LINES, len(lines))):
        out[i] = ("top", i, _key(lines[i]))
    for j in range(min(_EDGE_LINES, len(lines))):
        i = len(lines) - 1 - j
        out.setdefault(i, ("bottom", j, _key(lines[i])))
    return out


def furniture(pages: list[list[str]]) -> set[tuple[str, int, str]]:
    """Edge keys that recur on at least half the pages (two or more): headers and footers sit
    at the same place on every page, body text does not."""
    if len(pages) < 2:
        return set()
    seen: Counter[tuple[str, int, str]] = Counter()
    for lines in pages:
        seen.update({k for k in _edge_keys(lines).values() if k[2]})
    need = max(2, (len(pages) + 1) // 2)
    return {k for k, n in seen.items() if n >= need}


def _ends_sentence(line: str) -> bool:
    s = line.rstrip().rstrip(_CLOSERS)
    return not s or s[-1] in SENTENCE_END


def _width(line: str) -> float:
    """Display width: CJK and full-width characters count 2, others 1."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


def _joiner(left: str, right: str) -> str:
    """Nothing between CJK text, a space between two Latin words."""
    a, b = left[-1:], right[:1]
    return " " if a.isascii() and a.isalnum() and b.isascii() and b.isalnum() else ""


def repair_pages(pages: list[str]) -> tuple[str, tuple[str, ...]]:
    """The repaired text of a PDF's pages, and notes saying what was repaired."""
    fixed_chars = 0
    split: list[list[str]] = []
    for page in pages:
        text, n = fix_lookalikes(page)
        fixed_chars += n
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        split.append([x.rstrip() for x in lines if x.strip()])
    drop = furniture(split)
    dropped = 0
    lines: list[tuple[str, float]] = []  # (line, its page's full width)
    for page_lines in split:
        edges = _edge_keys(page_lines)
        kept = []
        for i, line in enumerate(page_lines):
            key = edges.get(i)
            if key is not None and (key in drop or _PAGE_NUMBER.match(line.strip())):
                dropped += 1
                continue
            kept.append(line)
        widths = sorted((_width(x) for x in kept), reverse=True)
        full = widths[min(len(widths) - 1, max(0, len(widths) // 10))] if widths else 0
        lines.extend((x, full) for x in kept)
    out: list[tuple[str, float]] = []
    joined = 0
    for line, full in lines:
        if out:
            prev, prev_full = out[-1]
            wide = prev_full > 0 and _width(prev) >= _FULL_LINE * prev_full
            nxt = line.lstrip()
            if wide and not _ends_sentence(prev) and not _OPENS_UNIT.match(nxt):
                out[-1] = (prev + _joiner(prev, nxt) + nxt, full)
                joined += 1
                continue
        out.append((line, full))
    notes = []
    if fixed_chars:
        notes.append(f"{fixed_chars} look-alike code point{'s' if fixed_chars != 1 else ''} (Kangxi radicals, "
                     "compatibility forms) mapped")
    if dropped:
        notes.append(f"{dropped} running header/footer line{'s' if dropped != 1 else ''} dropped")
    if joined:
        notes.append(f"{joined} line{'s' if joined != 1 else ''} broken at the page width joined")
    return "\n".join(x for x, _ in out), tuple(notes)
