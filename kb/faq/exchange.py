"""Import and export of FAQ entries: JSON and CSV carry every field (lossless round trip; in
CSV, ``citations`` and ``alt_questions`` are JSON inside their cells), Markdown is a
handbook-ready FAQ grouped by topic with each answer's sources.

Exports carry text anyone could type (questions from the ask log become candidates), so they
are made inert for the programs that open them: a CSV cell a spreadsheet would run as a
formula gets a leading ``'`` (stripped again on import), and the Markdown handbook escapes
HTML and link/image syntax, so a renderer shows ``<script>`` as text and loads nothing."""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path

from kb.faq.store import FIELDS, SCHEMA_VERSION, STATUSES, FaqEntry, FaqStore, check_citations, now

FORMATS = ("csv", "json", "md")
_INT_FIELDS = ("hits", "ask_count")
_JSON_FIELDS = ("citations", "alt_questions")


def export_entries(store: FaqStore, fmt: str, status: str | list[str] | None = None,
                   topic: str | None = None) -> str:
    """All entries (or those with ``status``/``topic``) as CSV, JSON or Markdown text.
    Markdown defaults to approved entries: it is the handbook."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "md":
        return to_markdown(store.list(status or "approved", topic, order="id"))
    entries = store.list(status, topic, order="id")
    return to_json(entries) if fmt == "json" else to_csv(entries)


def to_json(entries: list[FaqEntry]) -> str:
    doc = {"format": "zhkb-faq", "schema_version": SCHEMA_VERSION, "exported_at": now(),
           "entries": [e.to_dict() for e in entries]}
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


# a spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _formula_like(text: str) -> bool:
    """Starts with a formula character, after any leading quotes: such text is exported with
    one more ``'``, so that import can tell an added quote from one that was there."""
    return text.lstrip("'").startswith(FORMULA_START)


def csv_cell(value: object) -> str:
    """``value`` as a CSV cell no spreadsheet evaluates: ``'`` prefixed where needed."""
    text = "" if value is None else str(value)
    return "'" + text if _formula_like(text) else text


def csv_value(cell: str) -> str:
    """The text of a cell written by ``csv_cell`` (the one added ``'`` removed)."""
    return cell[1:] if cell.startswith("'") and _formula_like(cell) else cell


def to_csv(entries: list[FaqEntry]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FIELDS)
    for e in entries:
        d = e.to_dict()
        w.writerow([
            csv_cell(json.dumps(d[k], ensure_ascii=False) if k in _JSON_FIELDS else d[k])
            for k in FIELDS
        ])
    return buf.getvalue()


def _entry_from(d: dict, where: str) -> FaqEntry:
    unknown = sorted(set(d) - set(FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}")
    if not str(d.get("question") or "").strip():
        raise ValueError(f"{where}: no question")
    d = dict(d)
    for k in _JSON_FIELDS:
        v = d.get(k)
        if isinstance(v, str):
            try:
                d[k] = json.loads(v) if v.strip() else []
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: {k} is not valid JSON ({e})") from None
    for k in ("id", "merged_into"):
        v = d.get(k)
        d[k] = int(v) if v not in (None, "") else None
    for k in _INT_FIELDS:
        d[k] = int(d.get(k) or 0)
    for k in ("answer", "topic", "origin", "flag_reason", "created_at", "updated_at", "approved_at"):
        d[k] = str(d.get(k) or "")
    d.setdefault("status", "candidate")
    d["status"] = d["status"] or "candidate"
    return FaqEntry(**{k: d[k] for k in FIELDS if k in d})


def parse(text: str, fmt: str) -> list[FaqEntry]:
    if fmt == "json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not valid JSON: {e}") from None
        rows = raw.get("entries") if isinstance(raw, dict) else raw
        if not isinstance(rows, list):
            raise ValueError("JSON import needs a list of entries (or {\"entries\": [...]})")
        return [_entry_from(r, f"entry {i}") for i, r in enumerate(rows, start=1)]
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
        return [
            _entry_from({k: csv_value(v) if isinstance(v, str) else v for k, v in r.items() if k}, f"row {i}")
            for i, r in enumerate(reader, start=2)
        ]
    raise ValueError(f"cannot import {fmt!r}: use csv or json")


def import_entries(store: FaqStore, text: str, fmt: str, actor: str = "import") -> dict:
    """Add or overwrite entries from CSV/JSON text. An entry whose ``id`` exists is replaced
    as given (the previous version stays in ``faq_edits``); others are added, keeping their id
    and timestamps when present. Everything is validated before anything is written."""
    entries = parse(text, fmt)
    for e in entries:  # validate first: a bad row must not leave a half-imported file
        if e.status not in STATUSES:
            raise ValueError(f"entry {e.id or e.question!r}: unknown status {e.status!r}")
        check_citations(e.citations)
    added = updated = 0
    for e in entries:
        if e.id is not None and store.get(e.id) is not None:
            store.replace(e, actor=actor)
            updated += 1
        else:
            if not e.origin:
                e.origin = "import"
            store.add(e, actor=actor, keep_times=True)
            added += 1
    return {"added": added, "updated": updated}


def import_file(store: FaqStore, path: Path | str, actor: str = "import") -> dict:
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("csv", "json"):
        raise ValueError(f"{path}: import needs a .csv or .json file")
    return import_entries(store, path.read_text(encoding="utf-8-sig"), fmt, actor)


# -- the handbook --------------------------------------------------------------------------------
# backslash first of all (so an escape cannot be undone by one in the text), backticks (no code
# span, inside which the other escapes would show), brackets (no link, image or reference
# definition: `[x](url)`, `![x](url)`, `[r]: url`)
_MD_ESCAPES = str.maketrans({"\\": "\\\\", "`": "\\`", "[": "\\[", "]": "\\]"})


def md_text(text: str) -> str:
    """``text`` for the handbook, shown as text by any Markdown renderer: HTML escaped (``<``,
    ``>``, ``&``, so no tag, entity or ``<url>`` autolink) and link/image syntax broken. Line
    structure, lists and emphasis in answers are kept."""
    return html.escape(text, quote=False).translate(_MD_ESCAPES).replace("!\\[", "\\!\\[")


def _md_line(text: str) -> str:
    """One line of text (a heading, a topic, a title): newlines would end the heading."""
    return md_text(" ".join(text.split()))


def _quote_block(text: str) -> str:
    return "\n".join("   > " + md_text(line) if line.strip() else "   >" for line in text.splitlines())


def to_markdown(entries: list[FaqEntry], title: str = "常见问题（FAQ）") -> str:
    """Entries grouped by topic (topics in order of their first entry), each question with its
    answer and, under it, its sources: document, section and the quoted passage."""
    groups: dict[str, list[FaqEntry]] = {}
    for e in entries:
        groups.setdefault(e.topic or "其他", []).append(e)
    out = [f"# {_md_line(title)}", ""]
    out.append(f"共 {len(entries)} 个问题，{len(groups)} 个主题。每个回答下列出它依据的原文。")
    out.append("")
    for topic, items in groups.items():
        out += [f"## {_md_line(topic)}", ""]
        for e in items:
            out += [f"### {_md_line(e.question)}", "", md_text(e.answer.strip()) or "（尚无回答）", ""]
            if e.alt_questions:
                out += ["*也可以这样问：" + "；".join(_md_line(q) for q in e.alt_questions) + "*", ""]
            if e.citations:
                out += ["**出处**", ""]
                for c in e.citations:
                    where = f"《{_md_line(str(c.get('title') or c['source']))}》（{_md_line(str(c['source']))}）"
                    if c.get("section"):
                        where += f" · {_md_line(str(c['section']))}"
                    out.append(f"{c['n']}. {where}")
                    out.append(_quote_block(str(c["quote"])))
                out.append("")
    return "\n".join(out).rstrip() + "\n"
