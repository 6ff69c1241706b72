"""What trainers do to entries: edit, approve, reject, merge, flag, and the document check
after a re-ingest. Functions over a ``FaqStore`` (and the current documents where citations
must be verified), so the CLI can run them without loading a model."""

from __future__ import annotations

import logging
import re

from ingest.models import Document
from kb.faq.citations import recheck, topic_of
from kb.faq.store import FaqEntry, FaqStore, faq_store, now

log = logging.getLogger(__name__)
_MARK = re.compile(r"\[(\d+)\]")


def markers(answer: str) -> list[int]:
    """Citation numbers used in an answer, in order of first use."""
    return list(dict.fromkeys(int(m) for m in _MARK.findall(answer)))


def renumber(answer: str, citations: list[dict]) -> tuple[str, list[dict]]:
    """Citations numbered 1.. in order of first use in ``answer`` (unused ones after, in their
    order), and the answer's markers rewritten to match."""
    used = markers(answer)
    by_n = {c["n"]: c for c in citations}
    order = [n for n in used if n in by_n] + [c["n"] for c in citations if c["n"] not in used]
    new = {old: i for i, old in enumerate(order, start=1)}
    text = _MARK.sub(lambda m: f"[{new.get(int(m.group(1)), int(m.group(1)))}]", answer)
    return text, [{**by_n[old], "n": new[old]} for old in order]


def validate_answer(answer: str, citations: list[dict]) -> None:
    """The answer contract for a curated answer: non-empty, and every [n] has a citation."""
    if not answer.strip():
        raise ValueError("the answer is empty: write one before approving")
    ns = {c["n"] for c in citations}
    dangling = [n for n in markers(answer) if n not in ns]
    if dangling:
        raise ValueError(f"the answer cites [{dangling[0]}] but there is no citation {dangling[0]}")
    if citations and not markers(answer):
        raise ValueError("the answer has citations but no [n] marker: mark which sentence each supports")


def edit(store: FaqStore, entry_id: int, *, question: str | None = None, answer: str | None = None,
         topic: str | None = None, alt_questions: list[str] | None = None,
         citations: list[dict] | None = None, actor: str = "") -> FaqEntry:
    """Change an entry's text. An approved entry must keep satisfying the answer contract."""
    entry = store.require(entry_id)
    changes = {k: v for k, v in {
        "question": question, "answer": answer, "topic": topic,
        "alt_questions": alt_questions, "citations": citations,
    }.items() if v is not None}
    if entry.status == "approved" and ("answer" in changes or "citations" in changes):
        validate_answer(changes.get("answer", entry.answer), changes.get("citations", entry.citations))
    return store.update(entry_id, actor=actor, **changes)


def approve(store: FaqStore, entry_id: int, documents: dict[str, Document], actor: str = "") -> FaqEntry:
    """Approve an entry after checking its citations against the current ``documents``
    (relocating quotes that moved). Citations its answer does not use are dropped."""
    entry = store.require(entry_id)
    if entry.status == "merged":
        raise ValueError(f"entry {entry_id} was merged into {entry.merged_into}: approve that one")
    rc = recheck(entry.citations, documents)
    if rc.broken:
        c = rc.broken[0]
        raise ValueError(
            f"citation [{c['n']}] no longer matches {c['source']}: edit the entry (kb faq edit) "
            f"before approving"
        )
    citations = rc.citations
    validate_answer(entry.answer, citations)
    used = set(markers(entry.answer))
    answer, citations = renumber(entry.answer, [c for c in citations if c["n"] in used])
    changes = {"status": "approved", "flag_reason": "", "citations": citations, "answer": answer,
               "approved_at": now()}
    if not entry.topic:
        changes["topic"] = topic_of(citations)
    return store.update(entry_id, actor=actor, action="approve", **changes)


def reject(store: FaqStore, entry_id: int, actor: str = "") -> FaqEntry:
    store.require(entry_id)
    return store.update(entry_id, actor=actor, action="reject", status="rejected")


def flag(store: FaqStore, entry_id: int, reason: str, citations: list[dict] | None = None,
         actor: str = "system") -> FaqEntry:
    """Take an entry out of answering until a trainer approves it again."""
    changes: dict = {"status": "flagged", "flag_reason": reason}
    if citations is not None:
        changes["citations"] = citations
    return store.update(entry_id, actor=actor, action="flag", **changes)


def merge(store: FaqStore, keep_id: int, other_id: int, actor: str = "",
          answer: str | None = None) -> FaqEntry:
    """Fold ``other`` into ``keep``: its question becomes an alt question, its citations are
    kept (renumbered after keep's; identical spans shared) and its answer lines appended
    (lines already present skipped) unless ``answer`` is given. ``other`` is marked
    ``merged`` and points at ``keep``."""
    if keep_id == other_id:
        raise ValueError("cannot merge an entry with itself")
    a, b = store.require(keep_id), store.require(other_id)
    for e in (a, b):
        if e.status == "merged":
            raise ValueError(f"entry {e.id} was already merged into {e.merged_into}")
    citations = [dict(c) for c in a.citations]
    span = {(c["source"], c["start"], c["end"]): c["n"] for c in citations}
    nxt = max((c["n"] for c in citations), default=0)
    mapping: dict[int, int] = {}
    for c in b.citations:
        key = (c["source"], c["start"], c["end"])
        if key in span:
            mapping[c["n"]] = span[key]
            continue
        nxt += 1
        mapping[c["n"]] = nxt
        span[key] = nxt
        citations.append({**c, "n": nxt})
    b_answer = _MARK.sub(lambda m: f"[{mapping.get(int(m.group(1)), int(m.group(1)))}]", b.answer)
    if answer is None:
        lines = a.answer.splitlines()
        lines += [ln for ln in b_answer.splitlines() if ln.strip() and ln not in lines]
        answer = "\n".join(lines).strip()
    alts = [q for q in dict.fromkeys([*a.alt_questions, b.question, *b.alt_questions]) if q != a.question]
    merged = store.update(
        keep_id, actor=actor, action="merge", answer=answer, citations=citations,
        alt_questions=alts, topic=a.topic or b.topic, ask_count=a.ask_count + b.ask_count,
        hits=a.hits + b.hits,
    )
    store.update(other_id, actor=actor, action="merge", status="merged", merged_into=keep_id)
    if merged.status == "approved":
        validate_answer(merged.answer, merged.citations)
    return merged


def check_entries(store: FaqStore, documents: dict[str, Document]) -> list[FaqEntry]:
    """Re-check the citations of approved and flagged entries against ``documents`` (the
    index just built or loaded). An approved entry citing a document that changed or went
    away is flagged, its offsets relocated where the quote is found again. Returns the
    entries flagged now."""
    flagged = []
    for entry in store.list(["approved", "flagged"]):
        rc = recheck(entry.citations, documents)
        if not rc.changed:
            continue
        if entry.status == "approved":
            reason = "; ".join(rc.notes) or "a cited document changed"
            flagged.append(flag(store, entry.id, reason, rc.citations))
        elif rc.citations != entry.citations:
            store.update(entry.id, actor="system", action="recheck", citations=rc.citations)
    if flagged:
        log.warning(
            "FAQ: %d approved entr%s flagged for review because a cited document changed "
            "(kb faq list --status flagged)", len(flagged), "y" if len(flagged) == 1 else "ies",
        )
    return flagged


def check_after_ingest(config, documents: dict[str, Document]) -> list[FaqEntry]:
    """The post-ingest check; nothing to do (and no database created) when there is no FAQ."""
    store = faq_store(config)
    if not store.exists:
        return []
    return check_entries(store, documents)
