"""Load source files (.txt, .md, .docx, .pdf, .html) into :class:`~ingest.models.Document`.

Every expected failure (empty, binary, corrupt, undecodable, too large, unsupported) raises
:class:`LoadError` with a short human-readable reason, so callers can record a
:class:`~ingest.models.Skipped` entry instead of crashing.

Encoding detection for plain text (see :func:`decode_text`): BOMs first, then strict UTF-8,
then GB18030 and Big5 (strict). When both legacy encodings decode, the one whose text looks
most like real Chinese wins (share of common characters), with charset-normalizer as the
tie-breaker. Short Chinese snippets are where statistical detectors alone go wrong.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import logging
import os
import re
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import docx
import opencc
from bs4 import BeautifulSoup
from charset_normalizer import from_bytes
from docx.document import Document as DocxDocument
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph
from pypdf import PageObject, PdfReader

from ingest.models import Document

__all__ = [
    "SUPPORTED_SUFFIXES",
    "LoadError",
    "decode_text",
    "guess_title",
    "load_document",
]

SUPPORTED_SUFFIXES = {".txt", ".md", ".docx", ".pdf", ".html", ".htm"}

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
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
# Below this difference in "looks like Chinese" score, ask charset-normalizer.
_SCORE_MARGIN = 0.05
_SCORE_SAMPLE_CHARS = 20000
_COMMON_PUNCT = frozenset(
    "，。、：；？！「」『』（）《》〈〉“”‘’—…·【】〔〕～％＋－＝／＜＞｜　０１２３４５６７８９"
)

_TITLE_NOISE = ("格式:", "格式：", "大小:", "大小：", "ID:", "ID：", "相關推薦", "相关推荐")
_TITLE_MIN_CHARS = 4

_HTML_DROP_TAGS = (
    "script", "style", "noscript", "nav", "header", "footer", "template", "head", "title",
)  # fmt: skip
_HTML_BLOCK_TAGS = (
    "address", "article", "aside", "blockquote", "caption", "dd", "details", "div", "dl",
    "dt", "fieldset", "figcaption", "figure", "form", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "li", "main", "ol", "p", "pre", "section", "summary", "table", "td", "th", "tr",
    "ul",
)  # fmt: skip
_HTML_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_HTML_SNIFF_BYTES = 4096
_LINE_BREAK = "\ue000"  # private-use sentinel marking block boundaries in HTML
_CJK = r"\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
# A source line break between two CJK characters renders as nothing, not as a space.
_CJK_SOFT_BREAK = re.compile(rf"(?<=[{_CJK}])[ \t\r\f\v]*\n\s*(?=[{_CJK}])")
_WHITESPACE = re.compile(r"\s+")


class LoadError(Exception):
    """A file could not be loaded; ``str(err)`` is a short human-readable reason."""


# --------------------------------------------------------------------------- public API


def load_document(path: Path, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Document:
    """Load ``path`` (somewhere under ``root``) into a :class:`Document`.

    Raises :class:`LoadError` for every expected problem with the file itself.
    Raises :class:`ValueError` if ``path`` is not inside ``root`` (a caller bug).
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
    text, title, encoding = _EXTRACTORS[kind](data, path.stem)
    return Document(
        source=source,
        text=text,
        title=title,
        kind=kind,
        encoding=encoding,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode the bytes of a text file; return ``(text, encoding name)``.

    The text is exactly the decoded characters (newlines untouched); only a BOM is removed.
    Order: BOM (utf-8-sig / utf-16 / utf-32), strict utf-8, then gb18030 and big5 (strict),
    choosing between those two by how Chinese the result looks.
    Raises :class:`LoadError` for binary data or bytes no candidate decodes.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text = _try_decode(data, encoding)
            if text is not None:
                return text, encoding
    _reject_binary(data)
    text = _try_decode(data, "utf-8")
    if text is not None:
        return text, "utf-8"
    decoded = _decode_candidates(data)
    if not decoded:
        raise LoadError(_UNDECODABLE)
    encoding = _pick_most_chinese(data, decoded)
    return decoded[encoding], encoding


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


def _extract_plain(data: bytes, stem: str) -> tuple[str, str, str]:
    """.txt / .md: decoded text, guessed title, detected encoding."""
    text, encoding = decode_text(data)
    if not text.strip():
        raise LoadError("empty file")
    return text, guess_title(_strip_markdown_heading(text), stem), encoding


def _strip_markdown_heading(text: str) -> str:
    """Drop leading '#' marks so '# 标题' yields the title '标题'."""
    return re.sub(r"(?m)^[ \t]{0,3}#{1,6}[ \t]+", "", text)


def _extract_docx(data: bytes, stem: str) -> tuple[str, str, str]:
    """.docx: paragraphs and table cells (row by row) joined by newlines."""
    try:
        document = docx.Document(io.BytesIO(data))
        lines = list(_docx_lines(document))
        styled_title = _docx_styled_title(document)
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip/xml/part errors all mean "corrupt"
        raise LoadError(f"corrupt docx: {_short_reason(exc)}") from exc
    text = "\n".join(lines)
    if not text.strip():
        raise LoadError("no extractable text (empty docx)")
    return text, styled_title or guess_title(text, stem), ""


def _docx_lines(container: DocxDocument | _Cell) -> Iterator[str]:
    """Paragraph texts and table cell texts in document order (nested tables included)."""
    for block in container.iter_inner_content():
        if isinstance(block, Paragraph):
            yield block.text
        elif isinstance(block, Table):
            yield from _docx_table_lines(block)


def _docx_table_lines(table: Table) -> Iterator[str]:
    """Non-empty cell texts row by row; merged cells are emitted once."""
    # Holding the <w:tc> elements keeps their lxml proxies (and so their identity) alive.
    seen: set[object] = set()
    for row in table.rows:
        for cell in row.cells:
            if cell._tc in seen:
                continue
            seen.add(cell._tc)
            yield from (line for line in _docx_lines(cell) if line.strip())


def _docx_styled_title(document: DocxDocument) -> str:
    """Text of the first paragraph styled 'Title' (or else 'Heading 1'), if any."""
    for style in ("Title", "Heading 1"):
        for paragraph in document.paragraphs:
            name = paragraph.style.name if paragraph.style is not None else ""
            if name == style and paragraph.text.strip():
                return _WHITESPACE.sub(" ", paragraph.text).strip()[:TITLE_MAX_CHARS]
    return ""


def _extract_pdf(data: bytes, stem: str) -> tuple[str, str, str]:
    """.pdf: page texts joined by newlines."""
    _check_pdf_envelope(data)
    with _quiet_pypdf():
        try:
            reader = PdfReader(io.BytesIO(data))
            _unlock_pdf(reader)
            pages = [_pdf_page_text(page) for page in reader.pages]
        except LoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - pypdf raises many unrelated types
            raise LoadError(f"corrupt pdf: {_short_reason(exc)}") from exc
    if not pages:
        raise LoadError("empty pdf (no pages)")
    text = "\n".join(pages)
    if not text.strip():
        raise LoadError("no extractable text (scanned pdf?)")
    return text, guess_title(text, stem), ""


def _check_pdf_envelope(data: bytes) -> None:
    """Reject files without a PDF header or end marker (e.g. truncated downloads)."""
    if b"%PDF-" not in data[:1024]:
        raise LoadError("corrupt pdf: missing %PDF header")
    if b"%%EOF" not in data[-2048:]:
        raise LoadError("corrupt pdf: truncated (no %%EOF marker)")


def _unlock_pdf(reader: PdfReader) -> None:
    """Open encrypted PDFs that use an empty user password; refuse the others."""
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


def _extract_html(data: bytes, stem: str) -> tuple[str, str, str]:
    """.html / .htm: visible text (one line per block), <title> or first <h1>, encoding."""
    markup, encoding = _decode_html(data)
    try:
        soup = BeautifulSoup(markup, "html.parser")
        title = _html_title(soup)
        text = _html_visible_text(soup)
    except Exception as exc:  # noqa: BLE001 - parser failures mean malformed input
        raise LoadError(f"malformed html: {_short_reason(exc)}") from exc
    if not text:
        raise LoadError("no visible text in html")
    return text, title or guess_title(text, stem), encoding


def _decode_html(data: bytes) -> tuple[str, str]:
    """Decode HTML bytes: BOM, then a declared ``<meta charset>``, then detection."""
    if any(data.startswith(bom) for bom, _ in _BOMS):
        return decode_text(data)
    declared = _declared_charset(data)
    if declared:
        _reject_binary(data)
        for name in filter(None, (declared, _FALLBACKS.get(declared))):
            text = _try_decode(data, name)
            if text is not None:
                return text, name
    return decode_text(data)


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


def _html_title(soup: BeautifulSoup) -> str:
    """Text of ``<title>``, else of the first ``<h1>``; "" when neither has text."""
    for tag in (soup.find("title"), soup.find("h1")):
        if tag is not None:
            title = _WHITESPACE.sub(" ", tag.get_text(" ")).strip()
            if title:
                return title[:TITLE_MAX_CHARS].rstrip()
    return ""


def _html_visible_text(soup: BeautifulSoup) -> str:
    """Visible text with block elements on their own lines and blank lines removed."""
    for tag in soup.find_all(_HTML_DROP_TAGS):
        tag.decompose()
    for tag in soup.find_all("pre"):
        for string in tag.find_all(string=True):
            string.replace_with(string.replace("\n", _LINE_BREAK))
    for tag in soup.find_all("br"):
        tag.replace_with(_LINE_BREAK)
    for tag in soup.find_all(_HTML_BLOCK_TAGS):
        tag.insert_before(_LINE_BREAK)
        tag.insert_after(_LINE_BREAK)
    raw = _CJK_SOFT_BREAK.sub("", soup.get_text(""))
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
