"""FAQ citations against the current documents: the contract ``text[start:end] == quote``.

Each stored citation also carries the ``sha256`` of the document it was taken from. When a
re-ingest changes or removes a cited document, ``recheck`` relocates what it can (the quote
found elsewhere in the new text: offsets updated), marks what it cannot (``missing``), and
says the entry needs a trainer's review."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ingest.models import Document

_SECTION_PREFIX = re.compile(r"^第[一二三四五六七八九十\d]+[篇章节部][:：\s]*")


def citation_from_answer(c: dict, documents: dict[str, Document]) -> dict:
    """A stored FAQ citation from an ``Answer`` citation dict: adds the document hash."""
    doc = documents.get(c["source"])
    return {
        "n": c["n"], "source": c["source"], "title": c.get("title", ""), "section": c.get("section", ""),
        "start": int(c["start"]), "end": int(c["end"]), "quote": c["quote"],
        "sha256": doc.sha256 if doc else "",
    }


def slices(c: dict, documents: dict[str, Document]) -> bool:
    doc = documents.get(c["source"])
    return doc is not None and doc.text[int(c["start"]) : int(c["end"])] == c["quote"]


def topic_of(citations: list[dict], fallback: str = "") -> str:
    """Default topic: the top level of the first citation's section path, without its
    "第一篇:" numbering; else the document title."""
    for c in citations:
        top = (c.get("section") or "").split(" > ")[0].strip()
        top = _SECTION_PREFIX.sub("", top).strip()
        if top:
            return top
        if c.get("title"):
            return c["title"]
    return fallback


@dataclass
class Recheck:
    citations: list[dict]  # updated copies
    changed: bool = False  # documents changed or removed: the entry needs review
    notes: list[str] = field(default_factory=list)

    @property
    def broken(self) -> list[dict]:
        return [c for c in self.citations if c.get("missing")]


def _relocate(quote: str, text: str, near: int) -> int:
    """Start of the occurrence of ``quote`` in ``text`` nearest to ``near``, or -1."""
    best, pos = -1, text.find(quote)
    while pos >= 0:
        if best < 0 or abs(pos - near) < abs(best - near):
            best = pos
        pos = text.find(quote, pos + 1)
    return best


def recheck(citations: list[dict], documents: dict[str, Document]) -> Recheck:
    """Compare each citation with the current documents. A citation whose document hash is
    unchanged and whose quote still slices is untouched; otherwise the document changed (or
    went away): the quote is looked up again and the offsets updated, or the citation is
    marked ``missing``."""
    out = Recheck([])
    for c in citations:
        c = dict(c)
        doc = documents.get(c["source"])
        if doc is None:
            out.changed = True
            if not c.get("missing"):
                out.notes.append(f"[{c['n']}] {c['source']} was removed")
            c["missing"] = True
            out.citations.append(c)
            continue
        same_doc = c.get("sha256") == doc.sha256
        ok = doc.text[c["start"] : c["end"]] == c["quote"]
        if same_doc and ok:
            c.pop("missing", None)
            out.citations.append(c)
            continue
        out.changed = out.changed or not same_doc or not ok
        c["sha256"] = doc.sha256
        if ok:
            c.pop("missing", None)
            out.notes.append(f"[{c['n']}] {c['source']} changed; the quote is still at {c['start']}-{c['end']}")
        else:
            pos = _relocate(c["quote"], doc.text, c["start"])
            if pos >= 0:
                out.notes.append(f"[{c['n']}] {c['source']} changed; the quote moved to {pos}-{pos + len(c['quote'])}")
                c["start"], c["end"] = pos, pos + len(c["quote"])
                c.pop("missing", None)
            else:
                out.notes.append(f"[{c['n']}] {c['source']} changed; the quote is no longer in it")
                c["missing"] = True
        out.citations.append(c)
    return out
