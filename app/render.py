"""Answer objects as safe HTML/Markdown for the chat page and the document viewer.

Every piece of document text goes through ``html.escape`` here: a document containing
``<script>`` shows those characters, never runs them. Pure functions, no Gradio."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

CONTEXT_CHARS = 120
_REF = re.compile(r"\[(\d{1,3})\]")


@dataclass(frozen=True)
class Passage:
    """A cited span with the text around it: ``before + span + after`` is a slice of the
    document; ``clipped_*`` say whether the document goes on beyond it."""

    before: str
    span: str
    after: str
    clipped_before: bool
    clipped_after: bool


def passage(text: str, start: int, end: int, radius: int = CONTEXT_CHARS) -> Passage:
    """The span ``text[start:end]`` with up to ``radius`` characters each side; where the
    window holds a line break, it is trimmed to whole lines so the context reads cleanly."""
    start = max(0, min(start, len(text)))
    end = max(start, min(end, len(text)))
    lo = max(0, start - radius)
    hi = min(len(text), end + radius)
    if lo > 0:
        nl = text.find("\n", lo, start)
        if nl != -1:
            lo = nl + 1
    if hi < len(text):
        nl = text.rfind("\n", end, hi)
        if nl != -1:
            hi = nl
    return Passage(text[lo:start], text[start:end], text[end:hi], lo > 0, hi < len(text))




def passage_html(text: str, start: int, end: int, radius: int = CONTEXT_CHARS) -> str:
    p = passage(text, start, end, radius)
    return (
        ("…" if p.clipped_before else "")
        + _lines(p.before)
        + f'<mark class="kb-hl">{_lines(p.span)}</mark>'
        + _lines(p.after)
        + ("…" if p.clipped_after else "")
    )


# Markdown that would load or link to something: inline links and images ``[x](url)``,
# ``![x](url)``, and the autolinks a renderer makes of bare ``http://``, ``https://``, ``www.``.
# Each is broken with an entity the browser shows as the same character, so the text reads as
# written but nothing is fetched and nothing becomes an outside link.
_INERT = (("](", "]&#40;"), ("://", ":&#47;&#47;"), ("www.", "www&#46;"), ("WWW.", "WWW&#46;"))


def inert_markdown_text(text: str) -> str:
    """Escaped text in which Markdown can make no image, link or autolink."""
    text = html.escape(text, quote=False)
    for old, new in _INERT:
        text = text.replace(old, new)
    return text


def _lines(s: str) -> str:
    """Escape (inert), then turn line breaks into <br> so the HTML stays one Markdown block."""
    return inert_markdown_text(s).replace('"', "&quot;").replace("\r\n", "\n").replace("\n", "<br>")


def escape_markdown_html(md: str) -> str:
    """Markdown whose raw HTML is shown as text: ``<`` and ``&`` are escaped, images and links
    are inert (answers never load remote resources), Markdown syntax (lists, emphasis, ``>``
    quotes at line start) is kept."""
    out = []
    for line in md.split("\n"):
        m = re.match(r"^(\s*(?:>\s*)*)(.*)$", line)
        lead, rest = m.group(1), m.group(2)
        out.append(lead + inert_markdown_text(rest))
    return "\n".join(out)


def answer_markdown(answer: dict) -> str:
    """The answer's Markdown, escaped, with its [n] markers styled as citation chips."""
    md = escape_markdown_html(answer.get("answer", ""))
    return _REF.sub(r'<span class="kb-ref">[\1]</span>', md)


def viewer_url(source: str, start: int, end: int) -> str:
    return f"/view/{quote(source)}?{urlencode({'start': start, 'end': end})}#kb-hit"


def quote_snippet(quote: str, limit: int = 28) -> str:
    """The start of a quote, on one line: it tells apart citations of one section."""
    text = " ".join(quote.split())
    return f"“{text[:limit]}…”" if len(text) > limit else f"“{text}”"


def citation_html(c: dict, doc_text: str | None, open_: bool = False) -> str:
    """One citation: number, title, section path (unless it only repeats the title) and the
    start of the quote; opening it shows the passage with the cited span highlighted in its
    surrounding text and where it sits in the document."""
    title = html.escape(c.get("title") or c["source"])
    section = html.escape(c.get("section") or "")
    if doc_text is not None and doc_text[c["start"]:c["end"]] == c["quote"]:
        body = passage_html(doc_text, c["start"], c["end"])
        pct = round(100 * c["start"] / max(1, len(doc_text)))
        where = f"第 {c['start'] + 1:,}–{c['end']:,} 字，共 {len(doc_text):,} 字（约 {pct}% 处）"
    else:  # the document is gone from the index: show the quote alone
        body = f'<mark class="kb-hl">{_lines(c["quote"])}</mark>'
        where = ""
    link = (
        f'<a class="kb-open" href="{html.escape(viewer_url(c["source"], c["start"], c["end"]))}"'
        f' target="_blank" rel="noopener">在全文中查看 ↗</a>'
        if doc_text is not None else ""
    )
    return (
        f'<details class="kb-cite"{" open" if open_ else ""}>'
        f'<summary><span class="kb-n">{int(c["n"])}</span>'
        f'<span class="kb-doc">{title}</span>'
        + (f'<span class="kb-sec">{section}</span>' if section and section != title else "")
        + f'<span class="kb-snip">{html.escape(quote_snippet(c["quote"]))}</span>'
        + "</summary>"
        f'<div class="kb-passage">{body}</div>'
        f'<div class="kb-where"><span class="kb-src">{html.escape(c["source"])}</span>'
        + (f"<span>{where}</span>" if where else "")
        + link
        + "</div></details>"
    )


def sources_html(citations: list[dict], documents: dict[str, str | None]) -> str:
    """All citations of one answer, as one line of HTML (a single Markdown HTML block)."""
    if not citations:
        return ""
    items = "".join(citation_html(c, documents.get(c["source"])) for c in citations)
    return f'<div class="kb-sources"><div class="kb-sources-title">出处</div>{items}</div>'


def message_markdown(answer: dict, documents: dict[str, str | None]) -> str:
    """The whole assistant message: the answer, then its sources."""
    parts = [answer_markdown(answer)]
    src = sources_html(answer.get("citations") or [], documents)
    if src:
        parts.append(src)
    return "\n\n".join(parts)


def document_html(text: str, start: int | None = None, end: int | None = None) -> str:
    """A whole document, escaped, with ``[start:end]`` highlighted (id ``kb-hit``)."""
    if start is None or end is None or not (0 <= start <= end <= len(text)):
        return html.escape(text)
    return (
        html.escape(text[:start])
        + f'<mark id="kb-hit" class="kb-hl">{html.escape(text[start:end])}</mark>'
        + html.escape(text[end:])
    )


def json_for_html(data: dict) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&``."""
    s = json.dumps(data, ensure_ascii=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def fill_template(template: Path, values: dict[str, str]) -> str:
    """The page at ``template`` with each ``{{name}}`` replaced by ``values[name]``, in one pass,
    so a placeholder-like string inside a value is never substituted again."""
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], template.read_text(encoding="utf-8"))
