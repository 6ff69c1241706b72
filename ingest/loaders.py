"""Load source files (.txt, .md, .docx, .pdf, .html) into :class:`~ingest.models.Document`.

Every expected failure (empty, binary, corrupt, undecodable, too large, unsupported) raises
:class:`LoadError` with a short human-readable reason, so callers can record a
:class:`~ingest.models.Skipped` entry instead of crashing.

Encoding detection for plain text (see :func:`decode_text`): BOMs first, then strict UTF-8,
then GB18030 and Big5 (strict). When both legacy encodings decode, the one whose text looks
most like real Chinese wins (share of common characters), with charset-normalizer as the
tie-breaker. Short Chinese snippets are where statistical detectors alone go wrong.
A UTF-8 file with only a few invalid bytes is decoded as UTF-8 with U+FFFD replacements,
reported in :attr:`Document.notes <ingest.models.Document.notes>`.

Hostile input is bounded: a .docx is checked as a zip (sizes, compression ratios) before
python-docx sees it, and docx / HTML extraction is a single linear pass that does not
recurse, however many paragraphs or nesting levels a file has.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import io
import logging
import os
import re
import stat
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import docx
import opencc
from charset_normalizer import from_bytes
from docx.document import Document as DocxDocument
from docx.oxml.ns import qn
from docx.styles import BabelFish
from lxml import etree
from pypdf import PageObject, PdfReader
from pypdf.errors import DependencyError

from ingest.models import Document
from ingest.pdftext import repair_pages

__all__ = [
    "SUPPORTED_SUFFIXES",
    "LoadError",
    "decode_text",
    "guess_title",
    "load_document",
]

SUPPORTED_SUFFIXES = {".txt", ".md", ".docx", ".pdf", ".html", ".htm"}

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_UNPACKED_BYTES = 200 * 1024 * 1024
TITLE_MAX_CHARS = 60

_BINARY_SNIFF_BYTES = 8192
_CONTROL_RATIO_LIMIT = 0.10
# C0 controls (and DEL) that never occur in text; \t \n \v \f \r are allowed.
_CONTROL_BYTES = frozenset([*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F])
# BOMs are checked longest first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_LEGACY_CANDIDATES = ("gb18030", "big5")
# Windows' Big5 (cp950) adds a few characters plain big5 lacks; used only if big5 fails.
_FALLBACKS = {"big5": "cp950"}
_UNDECODABLE = "undecodable text (tried utf-8, gb18030, big5)"
# UTF-8 with at most this share of invalid bytes (of the non-ASCII bytes) is still UTF-8.
_UTF8_BAD_BYTE_SHARE = 0.01
_ASCII_BYTES = bytes(range(0x80))
# errors="surrogateescape" turns each undecodable byte into one of these.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Below this difference in "looks like Chinese" score, ask charset-normalizer.
_SCORE_MARGIN = 0.05
_SCORE_SAMPLE_CHARS = 20000
_COMMON_PUNCT = frozenset(
    "，。、：；？！「」『』（）《》〈〉“”‘’—…·【】〔〕～％＋－＝／＜＞｜　０１２３４５６７８９"
)

_TITLE_NOISE = ("格式:", "格式：", "大小:", "大小：", "ID:", "ID：", "相關推薦", "相关推荐")
_TITLE_MIN_CHARS = 4

# A docx whose zip members add up to more than the limit, or with one member over 10 MB
# that expands more than 200:1, is refused before anything is decompressed.
_ZIP_BOMB_RATIO = 200
_ZIP_BOMB_MIN_MEMBER_BYTES = 10 * 1024 * 1024
_DOCX_MAX_MEMBERS = 10_000
_ZIP_READ_CHUNK = 1024 * 1024
_ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})  # what Word writes
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .doc and password-protected Office files
_DOCX_TITLE_STYLES = ("Title", "Heading 1")
_W_P, _W_TBL, _W_TR, _W_TC = qn("w:p"), qn("w:tbl"), qn("w:tr"), qn("w:tc")
_W_STYLE, _W_NAME, _W_VAL = qn("w:style"), qn("w:name"), qn("w:val")
_W_TYPE, _W_STYLE_ID, _W_DEFAULT = qn("w:type"), qn("w:styleId"), qn("w:default")
_W_PPR, _W_PSTYLE = qn("w:pPr"), qn("w:pStyle")
_W_TCPR, _W_VMERGE = qn("w:tcPr"), qn("w:vMerge")
_W_NUMPR, _W_NUMID, _W_ILVL, _W_OUTLINE = qn("w:numPr"), qn("w:numId"), qn("w:ilvl"), qn("w:outlineLvl")
_W_NUM, _W_ABSTRACT, _W_ABSTRACT_ID = qn("w:num"), qn("w:abstractNum"), qn("w:abstractNumId")
_W_LVL, _W_NUMFMT, _W_START = qn("w:lvl"), qn("w:numFmt"), qn("w:start")
_DOCX_HEADING = re.compile(r"^(?:Heading|heading|标题|標題)\s*(\d)$")
_CN_DIGITS = "零一二三四五六七八九十"
_ON = {"1", "true", "on"}

# <aside> is content beside the page's own (sidebars, related-article lists; readability drops
# it too), also when a site puts it inside <main>
_HTML_DROP_TAGS = frozenset((
    "script", "style", "noscript", "nav", "header", "footer", "template", "head", "title", "aside",
))  # fmt: skip
_HTML_BLOCK_TAGS = frozenset((
    "address", "article", "aside", "blockquote", "caption", "dd", "details", "div", "dl",
    "dt", "fieldset", "figcaption", "figure", "form", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "li", "main", "ol", "p", "pre", "section", "summary", "table", "td", "th", "tr",
    "ul",
))  # fmt: skip
_HTML_TITLE_TAGS = ("title", "h1")
_HTML_KEEP_WHEN_FLATTENING = _HTML_DROP_TAGS | {"br", "pre", "h1", "html", "body"}
# A start or end tag; name and attributes are bounded so that a failed match costs O(1).
_LIBXML_HINT = re.compile(r",? use XML_PARSE_HUGE option", re.I)
_HTML_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9:-]{0,40})(?=[\s/>])[^<>]{0,2000}>")
_HTML_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_HTML_SNIFF_BYTES = 4096
_LINE_BREAK = "\ue000"  # private-use sentinel marking block boundaries in HTML
_CJK = r"\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
# A source line break between two CJK characters renders as nothing, not as a space.
_CJK_SOFT_BREAK = re.compile(rf"(?<=[{_CJK}])[ \t\r\f\v]*\n\s*(?=[{_CJK}])")
_WHITESPACE = re.compile(r"\s+")


class LoadError(Exception):
    """A file could not be loaded; ``str(err)`` is a short human-readable reason."""


class _Extracted(NamedTuple):
    """What a per-format extractor returns."""

    text: str
    title: str
    encoding: str  # "" for binary formats
    notes: tuple[str, ...] = ()


# --------------------------------------------------------------------------- public API


def load_document(
    path: Path,
    root: Path,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES,
) -> Document:
    """Load ``path`` (somewhere under ``root``) into a :class:`Document`.

    ``max_bytes`` limits the file's size; ``max_unpacked_bytes`` limits what a .docx (a zip)
    may unpack to. Raises :class:`LoadError` for every expected problem with the file
    itself. Raises :class:`ValueError` if ``path`` is not inside ``root`` (a caller bug).
    """
    path, root = Path(path), Path(root)
    source = _relative_source(path, root)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoadError(f"unsupported file type {suffix or '(no suffix)'}")
    data = _read_bytes(path, max_bytes)
    if not data.strip():
        raise LoadError("empty file")
    kind = "html" if suffix == ".htm" else suffix[1:]
    extract = _EXTRACTORS[kind]
    if kind == "docx":
        extract = functools.partial(_extract_docx, max_unpacked_bytes=max_unpacked_bytes)
    extracted = extract(data, path.stem)
    return Document(
        source=source,
        text=extracted.text,
        title=extracted.title,
        kind=kind,
        encoding=extracted.encoding,
        sha256=hashlib.sha256(data).hexdigest(),
        notes=extracted.notes,
    )


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode the bytes of a text file; return ``(text, encoding name)``.

    The text is exactly the decoded characters (newlines untouched); only a BOM is removed.
    Order: BOM (utf-8-sig / utf-16 / utf-32), strict utf-8, utf-8 with a few bad bytes
    (at most 1% of the non-ASCII bytes) replaced by U+FFFD, then gb18030 and big5 (strict),
    choosing between those two by how Chinese the result looks; last, utf-8 with
    replacements if at most 1% of all bytes are bad. :func:`_decode_text` also says which
    bytes were replaced.
    Raises :class:`LoadError` for binary data or bytes no candidate decodes.
    """
    text, encoding, _notes = _decode_text(data)
    return text, encoding


def guess_title(text: str, fallback: str) -> str:
    """Return the first meaningful line of ``text`` (max 60 chars), else ``fallback``.

    Blank lines, list/metadata lines ("- ...", "格式:", "大小:", "ID:", "相关推荐") and lines
    with fewer than 4 letters/digits/CJK characters are skipped.
    """
    for line in text.splitlines():
        candidate = _clean_title_line(line)
        if candidate:
            return candidate[:TITLE_MAX_CHARS].rstrip()
    return fallback


# --------------------------------------------------------------------------- reading


def _relative_source(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` as a POSIX string (no symlink resolution)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        absolute = Path(os.path.abspath(path))
        return absolute.relative_to(Path(os.path.abspath(root))).as_posix()


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    """Read a regular file, refusing ones larger than ``max_bytes``."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise LoadError("not a regular file")
        if info.st_size > max_bytes:
            raise LoadError(
                f"file too large ({_format_size(info.st_size)} > {_format_size(max_bytes)} limit)"
            )
        return path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or exc}") from exc


def _format_size(n: int) -> str:
    """Human-readable byte count: ``"512 bytes"``, ``"1.5 KB"``, ``"123 MB"``."""
    if n < 1024:
        return f"{n} bytes"
    value = n / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{_trim_number(value)} {unit}"
        value /= 1024
    return f"{_trim_number(value)} GB"


def _trim_number(value: float) -> str:
    """One decimal place, without a trailing ``.0``."""
    return f"{value:.1f}".removesuffix(".0")


# --------------------------------------------------------------------------- text decoding


def _decode_text(data: bytes) -> tuple[str, str, tuple[str, ...]]:
    """:func:`decode_text` plus notes on replaced bytes (``()`` for a clean decoding)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text = _try_decode(data, encoding)
            if text is not None:
                return text, encoding, ()
    _reject_binary(data)
    text = _try_decode(data, "utf-8")
    if text is not None:
        return text, "utf-8", ()
    non_ascii = len(data.translate(None, _ASCII_BYTES))
    lenient = _decode_utf8_replacing(data, max_bad=int(non_ascii * _UTF8_BAD_BYTE_SHARE))
    if lenient is not None:
        return lenient
    decoded = _decode_candidates(data)
    if decoded:
        encoding = _pick_most_chinese(data, decoded)
        return decoded[encoding], encoding, ()
    # Mostly-ASCII text with a stray byte or two: no legacy decoder wants it either.
    lenient = _decode_utf8_replacing(data, max_bad=int(len(data) * _UTF8_BAD_BYTE_SHARE))
    if lenient is None:
        raise LoadError(_UNDECODABLE)
    return lenient


def _decode_utf8_replacing(data: bytes, max_bad: int) -> tuple[str, str, tuple[str, ...]] | None:
    """UTF-8 with each invalid byte sequence replaced by U+FFFD, if ``max_bad`` bytes at most.

    Returns ``(text, encoding, notes)`` with a note counting the bad bytes, or None.
    """
    encoding = "utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8"
    bad = _ESCAPED_BYTE.subn("", data.decode(encoding, "surrogateescape"))[1]
    if bad > max_bad:
        return None
    plural = "byte" if bad == 1 else "bytes"
    note = f"{bad} undecodable {plural} replaced with U+FFFD ({encoding})"
    return data.decode(encoding, "replace"), encoding, (note,)


def _fix_surrogates(text: str, origin: str) -> tuple[str, tuple[str, ...]]:
    """Join surrogate pairs into characters and replace lone surrogates with U+FFFD.

    pypdf (from a ToUnicode map) and codecs such as utf-7 can produce surrogate code
    points, which cannot be written as UTF-8. Returns the text and a note if any changed.
    """
    if not _SURROGATE.search(text):
        return text, ()
    fixed = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    lone = fixed.count("\ufffd") - text.count("\ufffd")
    plural = "surrogate" if lone == 1 else "surrogates"
    return fixed, (f"{lone} lone {plural} replaced with U+FFFD ({origin})",) if lone else ()


def _try_decode(data: bytes, encoding: str) -> str | None:
    """Strictly decode, or return None."""
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def _reject_binary(data: bytes) -> None:
    """Raise if the start of ``data`` looks binary (NUL bytes or many control characters)."""
    head = data[:_BINARY_SNIFF_BYTES]
    if b"\x00" in head:
        raise LoadError("binary file (not text)")
    controls = sum(1 for byte in head if byte in _CONTROL_BYTES)
    if head and controls / len(head) > _CONTROL_RATIO_LIMIT:
        raise LoadError("binary file (not text)")


def _decode_candidates(data: bytes) -> dict[str, str]:
    """Strict decodings of ``data`` with each legacy Chinese encoding that succeeds."""
    decoded: dict[str, str] = {}
    for encoding in _LEGACY_CANDIDATES:
        for name in filter(None, (encoding, _FALLBACKS.get(encoding))):
            text = _try_decode(data, name)
            if text is not None:
                decoded[name] = text
                break
    return decoded


def _pick_most_chinese(data: bytes, decoded: dict[str, str]) -> str:
    """Choose the encoding whose decoding looks most like Chinese text."""
    if len(decoded) == 1:
        return next(iter(decoded))
    scores = {name: _chinese_score(text) for name, text in decoded.items()}
    ranked = sorted(scores, key=scores.__getitem__, reverse=True)
    if scores[ranked[0]] - scores[ranked[1]] >= _SCORE_MARGIN:
        return ranked[0]
    return _charset_normalizer_choice(data, list(decoded)) or ranked[0]


def _chinese_score(text: str) -> float:
    """Share of non-ASCII characters that are common Chinese characters or CJK punctuation.

    Traditional characters are mapped to Simplified (OpenCC t2s) and checked against
    GB2312 level 1 (the 3755 most common hanzi). Mis-decoded text is full of kana, box
    drawing, rare or extension characters, so it scores far lower than the right decoding.
    """
    sample = [ch for ch in text[:_SCORE_SAMPLE_CHARS] if ord(ch) > 0x7F]
    if not sample:
        return 0.0
    simplified = _t2s().convert("".join(sample))
    common = _common_hanzi()
    good = sum(1 for ch in simplified if ch in common or ch in _COMMON_PUNCT)
    return good / max(len(simplified), 1)


def _charset_normalizer_choice(data: bytes, encodings: list[str]) -> str | None:
    """charset-normalizer's best guess restricted to ``encodings``, if it has one."""
    try:
        best = from_bytes(data, cp_isolation=encodings).best()
    except Exception:  # noqa: BLE001 - a detector failure must not break loading
        return None
    if best is None:
        return None
    guess = codecs.lookup(best.encoding).name
    for name in encodings:
        if codecs.lookup(name).name == guess:
            return name
    return None


@lru_cache(maxsize=1)
def _common_hanzi() -> frozenset[str]:
    """GB2312 level-1 hanzi: rows 0xB0-0xD7, the standard's 'most common' set."""
    chars = set()
    for lead in range(0xB0, 0xD8):
        for trail in range(0xA1, 0xFF):
            ch = _try_decode(bytes((lead, trail)), "gb2312")
            if ch:
                chars.add(ch)
    return frozenset(chars)


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    """Shared Traditional-to-Simplified converter (created on first use)."""
    return opencc.OpenCC("t2s")


# --------------------------------------------------------------------------- per format


def _extract_plain(data: bytes, stem: str) -> _Extracted:
    """.txt / .md: decoded text with its line ends made ``\n`` (a CRLF or CR file's quotes
    carry no ``\r``), guessed title, detected encoding."""
    text, encoding, notes = _decode_text(data)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise LoadError("empty file")
    return _Extracted(text, guess_title(_strip_markdown_heading(text), stem), encoding, notes)


def _strip_markdown_heading(text: str) -> str:
    """Drop leading '#' marks so '# 标题' yields the title '标题'."""
    return re.sub(r"(?m)^[ \t]{0,3}#{1,6}[ \t]+", "", text)


def _extract_docx(
    data: bytes, stem: str, max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES
) -> _Extracted:
    """.docx: paragraphs and table cells (row by row) joined by newlines."""
    package = _unpack_docx(data, max_unpacked_bytes)
    try:
        document = docx.Document(io.BytesIO(package))
        lines, styled_title = _docx_content(document)
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip/xml/part errors all mean "corrupt"
        raise LoadError(f"corrupt docx: {_short_reason(exc)}") from exc
    text = "\n".join(lines)
    if not text.strip():
        raise LoadError("no extractable text (empty docx)")
    return _Extracted(text, styled_title or guess_title(text, stem), "")


def _unpack_docx(data: bytes, max_unpacked_bytes: int) -> bytes:
    """The docx re-packed uncompressed, after checking that it is a zip and not a zip bomb.

    Declared sizes are checked first (so a bomb is refused without inflating a byte), then
    every member is inflated in bounded chunks; :mod:`zipfile` never yields more than a
    member's declared size. python-docx then reads the uncompressed copy, so a member whose
    header lies cannot make it inflate more than was checked here.
    """
    if data.startswith(_OLE_MAGIC):
        raise LoadError("corrupt docx: not a zip file (password-protected, or an old .doc?)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = _docx_members(archive.infolist())
            _check_unpacked_size(members, max_unpacked_bytes)
            return _repack_stored(archive, members)
    except LoadError:
        raise
    except zipfile.BadZipFile as exc:
        if str(exc) == "File is not a zip file":
            raise LoadError("corrupt docx: not a zip file") from exc
        raise LoadError(f"corrupt docx: {_short_reason(exc)}") from exc
    except Exception as exc:  # noqa: BLE001 - zlib/struct/EOF errors: a broken zip
        raise LoadError(f"corrupt docx: {_short_reason(exc)}") from exc


def _docx_members(infos: list[zipfile.ZipInfo]) -> list[zipfile.ZipInfo]:
    """The zip's file members, the last one winning for a repeated name (as zipfile reads)."""
    if len(infos) > _DOCX_MAX_MEMBERS:
        raise LoadError(
            f"docx has {len(infos)} zip members, over the {_DOCX_MAX_MEMBERS} limit (zip bomb?)"
        )
    by_name = {info.filename: info for info in infos if not info.is_dir()}
    return list(by_name.values())


def _check_unpacked_size(members: list[zipfile.ZipInfo], limit: int) -> None:
    """Refuse a total unpacked size over ``limit``, absurd ratios and exotic compression."""
    total = sum(info.file_size for info in members)
    if total > limit:
        raise LoadError(
            f"docx unpacks to {_format_size(total)}, over the {_format_size(limit)} limit"
            " (zip bomb?)"
        )
    for info in members:
        if info.compress_type not in _ZIP_METHODS:
            raise LoadError(f"corrupt docx: unsupported zip compression ({info.compress_type})")
        if info.flag_bits & 0x1:
            raise LoadError(f"corrupt docx: encrypted zip member {info.filename}")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _ZIP_BOMB_MIN_MEMBER_BYTES and ratio > _ZIP_BOMB_RATIO:
            raise LoadError(
                f"docx member {info.filename} expands {ratio:.0f}:1 to"
                f" {_format_size(info.file_size)} (zip bomb?)"
            )


def _repack_stored(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo]) -> bytes:
    """A new zip with the same members, uncompressed, each read in bounded chunks."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as packed:
        for info in members:
            packed.writestr(info.filename, _read_member(archive, info))
    return out.getvalue()


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """Inflate one member chunk by chunk (CRC-checked by zipfile at its end)."""
    chunks = []
    with archive.open(info) as member:
        while chunk := member.read(_ZIP_READ_CHUNK):
            chunks.append(chunk)
    return b"".join(chunks)


def _docx_content(document: DocxDocument) -> tuple[list[str], str]:
    """Lines of the body in order, and the text of the first 'Title' / 'Heading 1' paragraph.

    One pass over the body XML: a top-level paragraph's style is looked up in a
    style-id -> name map built once (python-docx's ``paragraph.style`` scans the styles
    part on every call). Only top-level paragraphs can give the title, as before.

    Structure is kept in the text the way Markdown writes it: a paragraph styled Title or
    Heading N (or with an outline level) opens with ``#``…, a numbered or bulleted paragraph
    with its number as the reader sees it (``1.``, ``一、``, ``a.``) or ``-``.
    """
    style_names = _docx_paragraph_style_names(document)
    numbering = _DocxNumbering(document)
    lines: list[str] = []
    titles: dict[str, str] = {}
    for text, paragraph in _docx_lines(document.element.body):
        if paragraph is None or not text.strip():
            lines.append(text)
            continue
        style = style_names.get(_docx_style_id(paragraph)) or style_names.get(None, "")
        if style in _DOCX_TITLE_STYLES:
            titles.setdefault(style, text)
        level = _docx_heading_level(paragraph, style)
        if level:
            lines.append("#" * level + " " + text.strip())
        else:
            lines.append(numbering.marker(paragraph, _docx_style_id(paragraph)) + text)
    title = next((titles[style] for style in _DOCX_TITLE_STYLES if style in titles), "")
    return lines, _WHITESPACE.sub(" ", title).strip()[:TITLE_MAX_CHARS]


def _docx_heading_level(paragraph: etree._Element, style: str) -> int:
    """1–6 for a Title / Heading N paragraph or one with an outline level, else 0."""
    if style == "Title":
        return 1
    m = _DOCX_HEADING.match(style or "")
    if m:
        return min(6, max(1, int(m.group(1))))
    properties = paragraph.find(_W_PPR)
    outline = properties.find(_W_OUTLINE) if properties is not None else None
    value = outline.get(_W_VAL) if outline is not None else None
    if value is not None and value.isdigit() and int(value) < 9:  # 9 = body text
        return min(6, int(value) + 1)
    return 0


class _DocxNumbering:
    """The numbers Word shows before numbered paragraphs, counted as Word counts them: per
    list (``numId``) and level, a level's counter restarting when a shallower one moves on."""

    def __init__(self, document: DocxDocument):
        self.formats: dict[tuple[str, int], tuple[str, int]] = {}  # (numId, ilvl) -> (numFmt, start)
        self.counters: dict[str, list[int]] = {}
        # a style may carry the numbering itself ("List Number", "List Bullet")
        self.style_numpr: dict[str, etree._Element] = {}
        for style in document.styles.element.iterchildren(_W_STYLE):
            properties = style.find(_W_PPR)
            numpr = properties.find(_W_NUMPR) if properties is not None else None
            if numpr is not None and style.get(_W_STYLE_ID):
                self.style_numpr[style.get(_W_STYLE_ID)] = numpr
        try:
            root = document.part.numbering_part.element
        except (KeyError, NotImplementedError, AttributeError, ValueError):
            return
        abstract: dict[str, dict[int, tuple[str, int]]] = {}
        for a in root.iterchildren(_W_ABSTRACT):
            levels = {}
            for lvl in a.iterchildren(_W_LVL):
                fmt = lvl.find(_W_NUMFMT)
                levels[_int_attr(lvl, _W_ILVL, 0)] = (
                    fmt.get(_W_VAL, "decimal") if fmt is not None else "decimal",
                    _int_attr(lvl.find(_W_START), _W_VAL, 1),
                )
            abstract[a.get(qn("w:abstractNumId"), "")] = levels
        for num in root.iterchildren(_W_NUM):
            ref = num.find(_W_ABSTRACT_ID)
            levels = abstract.get(ref.get(_W_VAL, "") if ref is not None else "", {})
            for ilvl, spec in levels.items():
                self.formats[(num.get(qn("w:numId"), ""), ilvl)] = spec

    def marker(self, paragraph: etree._Element, style_id: str | None = None) -> str:
        """The number (or bullet) Word shows before ``paragraph``; "" for none."""
        properties = paragraph.find(_W_PPR)
        numpr = properties.find(_W_NUMPR) if properties is not None else None
        if numpr is None and style_id:
            numpr = self.style_numpr.get(style_id)
        if numpr is None:
            return ""
        num = numpr.find(_W_NUMID)
        num_id = num.get(_W_VAL, "") if num is not None else ""
        ilvl = min(_int_attr(numpr.find(_W_ILVL), _W_VAL, 0), 8)
        spec = self.formats.get((num_id, ilvl))
        if spec is None or num_id in ("", "0"):
            return ""
        fmt, start = spec
        counts = self.counters.setdefault(num_id, [0] * 9)
        counts[ilvl] = counts[ilvl] + 1 if counts[ilvl] else start
        for deeper in range(ilvl + 1, 9):
            counts[deeper] = 0
        indent = "  " * ilvl
        return indent + _number_marker(fmt, counts[ilvl])


def _int_attr(element: etree._Element | None, name: str, default: int) -> int:
    """An element's non-negative integer attribute, ``default`` when absent or not a number."""
    value = (element.get(name) or "").strip() if element is not None else ""
    return int(value) if value.isdigit() else default


def _number_marker(fmt: str, n: int) -> str:
    """A list number as Word shows it for ``numFmt``."""
    if fmt == "bullet":
        return "- "
    if fmt in ("none", ""):
        return ""
    if fmt in ("lowerLetter", "upperLetter"):
        letter = chr(ord("a") + (n - 1) % 26)
        return (letter.upper() if fmt == "upperLetter" else letter) + ". "
    if fmt.startswith(("chinese", "ideograph", "taiwanese", "japaneseCounting")):
        return _chinese_number(n) + "、"
    if fmt in ("decimalEnclosedParen", "decimalEnclosedFullstop"):
        return f"({n}) " if fmt == "decimalEnclosedParen" else f"{n}. "
    return f"{n}. "


def _chinese_number(n: int) -> str:
    if n <= 10:
        return _CN_DIGITS[n]
    if n < 20:
        return "十" + _CN_DIGITS[n - 10]
    if n < 100:
        return _CN_DIGITS[n // 10] + "十" + (_CN_DIGITS[n % 10] if n % 10 else "")
    return str(n)


def _docx_paragraph_style_names(document: DocxDocument) -> dict[str | None, str]:
    """Paragraph style id -> UI name ('Heading 1'); the key None maps to the default style.

    Read from the raw XML attributes, so one malformed style cannot break loading. The
    first style with an id wins and the last default wins, as in python-docx.
    """
    names: dict[str | None, str] = {}
    for style in document.styles.element.iterchildren(_W_STYLE):
        if style.get(_W_TYPE, "paragraph") != "paragraph":
            continue
        name_element = style.find(_W_NAME)
        raw_name = name_element.get(_W_VAL) if name_element is not None else None
        name = BabelFish.internal2ui(raw_name) if raw_name else ""
        names.setdefault(style.get(_W_STYLE_ID), name)
        if style.get(_W_DEFAULT, "").lower() in _ON:
            names[None] = name
    return names


def _docx_style_id(paragraph: etree._Element) -> str | None:
    """The raw ``w:pPr/w:pStyle/@w:val`` of a paragraph, None when it has none."""
    properties = paragraph.find(_W_PPR)
    style = properties.find(_W_PSTYLE) if properties is not None else None
    return style.get(_W_VAL) if style is not None else None


def _docx_lines(body: etree._Element) -> Iterator[tuple[str, etree._Element | None]]:
    """``(text, paragraph)`` for each line in document order; paragraph only at top level.

    Top-level paragraphs give a line each (blank ones included); table cells give their
    non-blank paragraph lines row by row, nested tables included, merged cells once.
    Iterative (an explicit stack of iterators), so nesting depth costs no recursion.
    """
    stack: list[Iterator[etree._Element]] = [body.iterchildren(_W_P, _W_TBL)]
    while stack:
        block = next(stack[-1], None)
        if block is None:
            stack.pop()
        elif block.tag == _W_TBL:
            stack.append(_docx_table_blocks(block))
        elif len(stack) == 1:
            yield block.text, block  # CT_P.text: the paragraph's runs and hyperlinks
        elif block.text.strip():
            yield block.text, None


def _docx_table_blocks(table: etree._Element) -> Iterator[etree._Element]:
    """Paragraphs and tables of each cell, row by row, each merged cell once.

    A vertical-merge continuation cell stands for the cell above it, so it is skipped
    (except in the first row, where there is none); a horizontal span is one ``w:tc``.
    """
    for index, row in enumerate(table.iterchildren(_W_TR)):
        for cell in row.iterchildren(_W_TC):
            if index == 0 or not _is_merge_continuation(cell):
                yield from cell.iterchildren(_W_P, _W_TBL)


def _is_merge_continuation(cell: etree._Element) -> bool:
    """True for ``<w:vMerge/>`` or ``<w:vMerge w:val="continue"/>`` in the cell's properties."""
    properties = cell.find(_W_TCPR)
    merge = properties.find(_W_VMERGE) if properties is not None else None
    return merge is not None and merge.get(_W_VAL, "continue") == "continue"


def _extract_pdf(data: bytes, stem: str) -> _Extracted:
    """.pdf: page texts repaired (look-alike code points, running headers and footers, lines
    broken at the page width; see ``ingest.pdftext``) and joined."""
    _check_pdf_envelope(data)
    with _quiet_pypdf():
        try:
            reader = PdfReader(io.BytesIO(data))
            _unlock_pdf(reader)
            pages = [_pdf_page_text(page) for page in reader.pages]
        except LoadError:
            raise
        except DependencyError as exc:  # AES without the cryptography package
            raise LoadError("encrypted pdf: needs the cryptography package") from exc
        except Exception as exc:  # noqa: BLE001 - pypdf raises many unrelated types
            raise LoadError(f"corrupt pdf: {_short_reason(exc)}") from exc
    if not pages:
        raise LoadError("empty pdf (no pages)")
    fixed = [_fix_surrogates(page, "pdf text") for page in pages]
    text, repaired = repair_pages([page for page, _ in fixed])
    if not text.strip():
        raise LoadError("no extractable text (scanned pdf?)")
    notes = tuple(dict.fromkeys(n for _, page_notes in fixed for n in page_notes)) + repaired
    return _Extracted(text, guess_title(text, stem), "", notes)


def _check_pdf_envelope(data: bytes) -> None:
    """Reject files without a PDF header or end marker (e.g. truncated downloads)."""
    if b"%PDF-" not in data[:1024]:
        raise LoadError("corrupt pdf: missing %PDF header")
    if b"%%EOF" not in data[-2048:]:
        raise LoadError("corrupt pdf: truncated (no %%EOF marker)")


def _unlock_pdf(reader: PdfReader) -> None:
    """Open encrypted PDFs that use an empty user password; refuse the others.

    AES-encrypted files need the ``cryptography`` package (pypdf raises DependencyError).
    """
    if reader.is_encrypted and not reader.decrypt(""):
        raise LoadError("encrypted pdf (password required)")


def _pdf_page_text(page: PageObject) -> str:
    """Extracted text of one pypdf page ("" if the page has none)."""
    return page.extract_text() or ""


@contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """Silence pypdf's warnings and log messages about malformed files."""
    logger = logging.getLogger("pypdf")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(previous)


def _extract_html(data: bytes, stem: str) -> _Extracted:
    """.html / .htm: visible text (one line per block), <title> or first <h1>, encoding."""
    markup, encoding, notes = _decode_html(data)
    try:
        pieces, title, parse_notes = _html_pieces_and_title(markup)
        text = _html_join(pieces)
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - parser failures mean malformed input
        raise LoadError(f"malformed html: {_short_reason(exc)}") from exc
    if not text:
        raise LoadError("no visible text in html")
    return _Extracted(text, title or guess_title(text, stem), encoding, notes + parse_notes)


def _decode_html(data: bytes) -> tuple[str, str, tuple[str, ...]]:
    """Decode HTML bytes: BOM, then a declared ``<meta charset>``, then detection."""
    if any(data.startswith(bom) for bom, _ in _BOMS):
        return _decode_text(data)
    declared = _declared_charset(data)
    if declared:
        _reject_binary(data)
        for name in filter(None, (declared, _FALLBACKS.get(declared))):
            text = _try_decode(data, name)
            if text is not None:
                text, notes = _fix_surrogates(text, name)  # utf-7 can declare them
                return text, name, notes
    return _decode_text(data)


def _declared_charset(data: bytes) -> str | None:
    """Normalised codec name from a ``<meta charset>`` / ``http-equiv`` tag, if valid."""
    match = _HTML_META_CHARSET.search(data[:_HTML_SNIFF_BYTES])
    if not match:
        return None
    try:
        name = codecs.lookup(match.group(1).decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return None
    # Browsers decode GB2312/GBK labels with the GB18030 superset.
    if name in {"gb2312", "gbk", "cp936"}:
        return "gb18030"
    if name in {"utf-16", "utf-16-le", "utf-16-be"}:  # meta cannot declare UTF-16 in ASCII
        return "utf-8"
    return name


def _html_pieces_and_title(markup: str) -> tuple[list[str], str, tuple[str, ...]]:
    """Text pieces (with line-break sentinels), the title, and notes, from lxml's tree.

    libxml2 stops at 2048 levels of nesting and drops the rest of the page. Then the page
    is parsed again with every block tag turned into a ``<br>`` and inline tags removed
    (:func:`_flatten_html`), which gives the same lines without the nesting; if even that
    is too deep (nested script/pre/h1/...), the page is refused, never silently cut short.
    """
    root, error = _parse_html(markup)
    notes: tuple[str, ...] = ()
    if error:
        root, error = _parse_html(_flatten_html(markup))
        if error:
            raise LoadError(f"malformed html: {error}")
        notes = ("html nested too deeply for lxml; block tags read as line breaks",)
    if root is None:
        return [], "", notes
    return _html_tree_pieces(root), _html_title(root), notes


def _parse_html(markup: str) -> tuple[etree._Element | None, str]:
    """lxml's tree of ``markup`` (None if empty) and the message of a fatal parser error."""
    # Bytes with an explicit encoding: a <meta charset> or <?xml encoding?> in the
    # already-decoded markup cannot make libxml2 decode it a second time.
    parser = etree.HTMLParser(
        encoding="utf-8", remove_comments=True, remove_pis=True, no_network=True, huge_tree=True
    )
    root = etree.fromstring(markup.encode("utf-8"), parser)
    fatal = [entry for entry in parser.error_log if entry.level == etree.ErrorLevels.FATAL]
    if not fatal:
        return root, ""
    return root, _LIBXML_HINT.sub("", _WHITESPACE.sub(" ", fatal[0].message)).strip()


def _flatten_html(markup: str) -> str:
    """``markup`` with block tags replaced by ``<br>`` and inline tags removed (one pass).

    Tags that carry meaning beyond a line break (dropped elements, ``<pre>``, ``<h1>``,
    ``<br>``, ``<html>``, ``<body>``) are kept as they are.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1).lower()
        if name in _HTML_KEEP_WHEN_FLATTENING:
            return match.group(0)
        return "<br>" if name in _HTML_BLOCK_TAGS else ""

    return _HTML_TAG.sub(replace, markup)


def _html_title(root: etree._Element) -> str:
    """Text of ``<title>``, else of the first ``<h1>``; "" when neither has text."""
    for tag in _HTML_TITLE_TAGS:
        element = next(root.iter(tag), None)
        if element is not None:
            title = _clean_html_title(element.itertext())
            if title:
                return title
    return ""


def _clean_html_title(strings: Iterable[str]) -> str:
    """Strings joined by spaces, whitespace collapsed, cut to the title length."""
    return _WHITESPACE.sub(" ", " ".join(strings)).strip()[:TITLE_MAX_CHARS].rstrip()


# class or id of an element that is page furniture, not content (readability's rule of thumb)
_HTML_BOILERPLATE = re.compile(
    r"breadcrumb|crumb|(?:^|[-_ ])nav|menu|footer|sidebar|related|recommend|comment|share|social"
    r"|advert|(?:^|[-_ ])ads?(?:$|[-_ ])|banner|cookie|popup|modal|subscribe|pager|pagination|toolbar",
    re.I,
)
_HTML_HEADINGS = {f"h{n}": n for n in range(1, 7)}


def _html_content_root(root: etree._Element) -> etree._Element:
    """The page's main content: its ``<main>``, ``<article>`` or ``role="main"`` element when it
    has one with text (HTML5's own markers), else the whole page."""
    for path in ("//main", "//article", "//*[@role='main']"):
        for element in root.xpath(path):
            if "".join(element.itertext()).strip():
                return element
    return root


def _is_boilerplate(node: etree._Element) -> bool:
    marks = f"{node.get('class') or ''} {node.get('id') or ''}".strip()
    return bool(marks) and bool(_HTML_BOILERPLATE.search(marks))


def _html_tree_pieces(root: etree._Element) -> list[str]:
    """Visible text pieces of the page's main content in document order, walked without
    recursion.

    Dropped elements (script, style, nav, ...) and furniture (breadcrumbs, related-article
    lists, share bars: by class or id) contribute only their tail; block elements are
    wrapped in line-break sentinels, ``<br>`` is one, and newlines inside ``<pre>`` become
    one each. Structure is kept in the text the way Markdown writes it: ``h1``–``h6`` open
    with ``#``…``######``, list items with ``-`` (``1.``, ``2.`` … in an ``<ol>``).
    """
    pieces: list[str] = []
    in_pre = 0
    counters: list[int] = []  # item numbers of the open <ol>/<ul> (0 = unordered)
    stack: list[tuple[etree._Element, bool]] = [(_html_content_root(root), False)]
    while stack:
        node, closing = stack.pop()
        tag = node.tag.lower() if isinstance(node.tag, str) else ""
        if closing or not tag or tag in _HTML_DROP_TAGS or (tag not in ("html", "body") and _is_boilerplate(node)):
            if closing and tag in _HTML_BLOCK_TAGS:
                pieces.append(_LINE_BREAK)
            if closing and tag == "pre":
                in_pre -= 1
            if closing and tag in ("ol", "ul") and counters:
                counters.pop()
            if node.tail:
                pieces.append(_html_string(node.tail, in_pre))
            continue
        if tag == "br" or tag in _HTML_BLOCK_TAGS:
            pieces.append(_LINE_BREAK)
        if tag in _HTML_HEADINGS:
            pieces.append("#" * _HTML_HEADINGS[tag] + " ")
        elif tag in ("ol", "ul"):
            start = (node.get("start") or "").strip()
            counters.append(int(start) - 1 if tag == "ol" and start.isdigit() else 0)
        elif tag == "li":
            if counters and _is_ordered(node):
                counters[-1] += 1
                pieces.append(f"{counters[-1]}. ")
            else:
                pieces.append("- ")
        if tag == "pre":
            in_pre += 1
        if node.text:
            pieces.append(_html_string(node.text, in_pre))
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node))
    return pieces


def _is_ordered(li: etree._Element) -> bool:
    parent = li.getparent()
    return parent is not None and isinstance(parent.tag, str) and parent.tag.lower() == "ol"


def _html_string(text: str, in_pre: int) -> str:
    """A text node; inside ``<pre>`` its newlines are kept as line-break sentinels."""
    return text.replace("\n", _LINE_BREAK) if in_pre else text


def _html_join(pieces: list[str]) -> str:
    """Pieces to lines: CJK soft breaks removed, whitespace collapsed, blank lines dropped."""
    raw = _CJK_SOFT_BREAK.sub("", "".join(pieces))
    lines = (_WHITESPACE.sub(" ", line).strip() for line in raw.split(_LINE_BREAK))
    return "\n".join(line for line in lines if line)


_EXTRACTORS = {
    "txt": _extract_plain,
    "md": _extract_plain,
    "docx": _extract_docx,
    "pdf": _extract_pdf,
    "html": _extract_html,
}


# --------------------------------------------------------------------------- titles & misc


def _clean_title_line(line: str) -> str:
    """The stripped line if it can serve as a title, else ""."""
    candidate = line.strip()
    if not candidate or candidate.startswith("- "):
        return ""
    if any(marker in candidate for marker in _TITLE_NOISE):
        return ""
    if sum(1 for ch in candidate if ch.isalnum()) < _TITLE_MIN_CHARS:
        return ""
    return _WHITESPACE.sub(" ", candidate)


def _short_reason(exc: BaseException, limit: int = 120) -> str:
    """One-line ``Type: message`` summary of an exception, cut to ``limit`` chars."""
    message = _WHITESPACE.sub(" ", str(exc)).strip()
    reason = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"
