"""Import and export of FAQ entries: JSON and CSV carry every field (lossless round trip; in
CSV, ``citations`` and ``alt_questions`` are JSON inside their cells), Markdown is a
handbook-ready FAQ grouped by topic with each answer's sources."""

from __future__ import annotations

import csv
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


def to_csv(entries: list[FaqEntry]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FIELDS)
    for e in entries:
        d = e.to_dict()
        w.writerow([
            json.dumps(d[k], ensure_ascii=False) if k in _JSON_FIELDS
            else "" if d[k] is None else d[k]
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
        return [_entry_from({k: v for k, v in r.items() if k}, f"row {i}") for i, r in enumerate(reader, start=2)]
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
def _quote_block(text: str) -> str:
    return "\n".join("   > " + line if line.strip() else "   >" for line in text.splitlines())


def to_markdown(entries: list[FaqEntry], title: str = "常见问题（FAQ）") -> str:
    """Entries grouped by topic (topics in order of their first entry), each question with its
    answer and, under it, its sources: document, section and the quoted passage."""
    groups: dict[str, list[FaqEntry]] = {}
    for e in entries:
        groups.setdefault(e.topic or "其他", []).append(e)
    out = [f"# {title}", ""]
    out.append(f"共 {len(entries)} 个问题，{len(groups)} 个主题。每个回答下列出它依据的原文。")
    out.append("")
    for topic, items in groups.items():
        out += [f"## {topic}", ""]
        for e in items:
            out += [f"### {e.question.strip()}", "", e.answer.strip() or "（尚无回答）", ""]
            if e.alt_questions:
                out += ["*也可以这样问：" + "；".join(e.alt_questions) + "*", ""]
            if e.citations:
                out += ["**出处**", ""]
                for c in e.citations:
                    where = f"《{c.get('title') or c['source']}》（{c['source']}）"
                    if c.get("section"):
                        where += f" · {c['section']}"
                    out.append(f"{c['n']}. {where}")
                    out.append(_quote_block(c["quote"]))
                out.append("")
    return "\n".join(out).rstrip() + "\n"
