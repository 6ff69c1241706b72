"""FAQ entries, their edit history and the ask log, in the data-access layer's database
(``kb.store``: tables ``faq_entries``, ``faq_edits``, ``ask_log``, ``faq_meta``; SQLAlchemy Core,
no SQL of one database). The rows of an old ``data/faq.sqlite3`` (any of its schema versions
1 to 3) are imported when the store is first used (``kb.store.legacy``).

Nothing is created before it is used, never at import. A database that cannot be used raises
``kb.store.db.DatabaseUnavailable`` (a ``sqlite3.DatabaseError``) naming it, or naming the old
file that could not be imported: the service turns curated answers and the ask log off.

Statuses: ``candidate`` (suggested, not yet reviewed), ``approved`` (answers questions),
``rejected``, ``flagged`` (was approved; a cited document changed, a trainer must look again)
and ``merged`` (folded into the entry named by ``merged_into``).

The ask log keeps what people typed, so it is bounded: a store opened with
``log_retention_days`` deletes logged questions older than that when it opens and then, as
questions are logged, at most once per ``PRUNE_INTERVAL_S`` per database and process (an
indexed range delete on ``asked_at``, not a scan on every insert).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from kb.store.db import LazyDatabase, database_url
from kb.store.legacy import import_faq
from kb.store.models import AskLog, FaqEdit, FaqEntryRow, FaqMeta

log = logging.getLogger(__name__)
STATUSES = ("candidate", "approved", "rejected", "flagged", "merged")
CITATION_KEYS = ("source", "start", "end", "quote", "title", "section")
EDITABLE = ("question", "answer", "topic", "alt_questions", "citations")
PRUNE_INTERVAL_S = 3600.0  # the ask log is pruned at most this often per database and process
# the entry fields as exported (kb.faq.exchange): version 3 is what faq.sqlite3's schema 3 held
SCHEMA_VERSION = 3

# when each database's ask log was last pruned in this process (time.monotonic()), by
# (database, retention): a store opened with another retention prunes at once
_pruned_at: dict[tuple[str, int], float] = {}
_pruned_lock = threading.Lock()

ENTRIES = FaqEntryRow.__table__
EDITS = FaqEdit.__table__
ASKED = AskLog.__table__
META = FaqMeta.__table__


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def days_ago(days: float) -> str:
    """The ISO time (as ``now()`` writes it) ``days`` days ago."""
    return (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")


@dataclass
class FaqEntry:
    id: int | None
    question: str
    answer: str = ""
    citations: list[dict] = field(default_factory=list)
    topic: str = ""
    status: str = "candidate"
    alt_questions: list[str] = field(default_factory=list)
    origin: str = ""  # "documents" | "usage" | "gap" | "manual" | "import"
    flag_reason: str = ""
    merged_into: int | None = None
    hits: int = 0  # questions this entry answered
    ask_count: int = 0  # how often its question was asked when it was suggested from usage
    created_at: str = ""
    updated_at: str = ""
    approved_at: str = ""

    @property
    def questions(self) -> list[str]:
        return [self.question, *self.alt_questions]

    def to_dict(self) -> dict:
        return asdict(self)


FIELDS = tuple(FaqEntry.__dataclass_fields__)
# a topic is made from a document's section path when none is given: cut to its column (SQLite
# would keep a longer one, PostgreSQL refuses it)
TOPIC_CHARS = FaqEntryRow.__table__.c.topic.type.length
_JSON_FIELDS = ("citations", "alt_questions")


def check_citations(citations: Any) -> list[dict]:
    """Citations as a list of dicts carrying at least ``CITATION_KEYS``; ``n`` renumbered 1.."""
    if not isinstance(citations, list):
        raise ValueError("citations must be a list")
    out = []
    for i, c in enumerate(citations, start=1):
        if not isinstance(c, dict):
            raise ValueError(f"citation {i} is not an object")
        missing = [k for k in CITATION_KEYS if k not in c]
        if missing:
            raise ValueError(f"citation {i} lacks {', '.join(missing)}")
        c = dict(c)
        c["start"], c["end"] = int(c["start"]), int(c["end"])
        c.setdefault("n", i)
        out.append(c)
    return out


def _entry(row: Any) -> FaqEntry:
    d = dict(row)
    for k in _JSON_FIELDS:
        d[k] = json.loads(d[k] or "[]")
    return FaqEntry(**{k: d[k] for k in FIELDS})


def _dump(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class FaqStore:
    """All reads and writes of the FAQ tables. One short transaction per call, so it is safe to
    share between threads and processes (the CLI may edit while the server answers).

    ``target``: a ``kb.store.Database``, a database URL, or a SQLite file (tests); ``legacy``:
    an old ``faq.sqlite3`` whose rows are imported before the first use."""

    def __init__(self, target: Any, log_retention_days: int = 0, prune_interval_s: float = PRUNE_INTERVAL_S,
                 legacy: Path | str | None = None):
        """``log_retention_days``: logged questions older than this are deleted (0 keeps them
        forever), at open and then at most every ``prune_interval_s`` while logging."""
        self._db = LazyDatabase(target, "FAQ", legacy, import_faq)
        self.log_retention_days = max(0, int(log_retention_days or 0))
        self.prune_interval_s = float(prune_interval_s)
        if self.exists:  # opening must not create the database
            self._maybe_prune_log()

    @property
    def path(self) -> str:
        """The database as messages name it (its file for SQLite)."""
        return self._db.name

    @property
    def exists(self) -> bool:
        """Whether there is anything to read (the database, or an old file to import)."""
        return self._db.exists

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A connection in a transaction: committed on success, rolled back on error."""
        with self._db.begin() as conn:
            yield conn

    def revision(self) -> int:
        """A counter bumped by every change to an entry: caches compare it to know they are stale."""
        with self.connect() as db:
            return int(db.execute(select(META.c.value).where(META.c.key == "revision")).scalar() or 0)

    @staticmethod
    def _bump(db) -> None:
        db.execute(update(META).where(META.c.key == "revision").values(value=META.c.value + 1))

    @staticmethod
    def _record(db, entry_id: int, action: str, field_: str = "", old: Any = None, new: Any = None,
                actor: str = "", at: str | None = None) -> None:
        db.execute(insert(EDITS).values(
            entry_id=entry_id, at=at or now(), action=action, field=field_,
            old=None if old is None else _dump(old), new=None if new is None else _dump(new), actor=actor,
        ))

    @staticmethod
    def _get_row(db, entry_id: int):
        return db.execute(select(ENTRIES).where(ENTRIES.c.id == int(entry_id))).mappings().first()

    # -- entries --------------------------------------------------------------------------------
    def add(self, entry: FaqEntry, actor: str = "", keep_times: bool = False) -> FaqEntry:
        """Insert ``entry`` (its ``id`` is kept when given and free). Returns the stored entry."""
        if not entry.question.strip():
            raise ValueError("an FAQ entry needs a question")
        if entry.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {entry.status!r}")
        entry.citations = check_citations(entry.citations)
        entry.topic = (entry.topic or "")[:TOPIC_CHARS]
        t = now()
        if not keep_times or not entry.created_at:
            entry.created_at = t
        if not keep_times or not entry.updated_at:
            entry.updated_at = t
        d = entry.to_dict()
        given_id = d["id"] is not None
        if not given_id:
            d.pop("id")
        for k in _JSON_FIELDS:
            d[k] = _dump(d[k])
        with self.connect() as db:
            if given_id and self._get_row(db, d["id"]) is not None:
                raise ValueError(f"FAQ entry {d['id']} exists already")
            entry.id = int(db.execute(insert(ENTRIES).values(**d)).inserted_primary_key[0])
            if given_id:
                from kb.store.legacy import _move_sequence

                _move_sequence(db, ENTRIES)
            self._record(db, entry.id, "create", new=entry.to_dict(), actor=actor, at=entry.created_at)
            self._bump(db)
        return entry

    def get(self, entry_id: int) -> FaqEntry | None:
        with self.connect() as db:
            row = self._get_row(db, entry_id)
        return _entry(row) if row else None

    def require(self, entry_id: int) -> FaqEntry:
        entry = self.get(entry_id)
        if entry is None:
            raise KeyError(f"no FAQ entry {entry_id}")
        return entry

    def list(self, status: str | list[str] | None = None, topic: str | None = None,
             order: str = "id") -> list[FaqEntry]:
        """Entries, optionally only those with ``status`` (one or several) and ``topic``."""
        q = select(ENTRIES)
        if status:
            statuses = [status] if isinstance(status, str) else list(status)
            bad = [s for s in statuses if s not in STATUSES]
            if bad:
                raise ValueError(f"unknown status {bad[0]!r}: use one of {', '.join(STATUSES)}")
            q = q.where(ENTRIES.c.status.in_(statuses))
        if topic is not None:
            q = q.where(ENTRIES.c.topic == topic)
        c = ENTRIES.c
        orders = {"id": (c.id,), "asked": (c.ask_count.desc(), c.id), "topic": (c.topic, c.id),
                  "hits": (c.hits.desc(), c.id)}
        q = q.order_by(*orders.get(order, (c.id,)))
        with self.connect() as db:
            return [_entry(r) for r in db.execute(q).mappings().all()]

    def topics(self) -> list[tuple[str, int]]:
        """(topic, number of entries not rejected or merged), by topic."""
        q = (select(ENTRIES.c.topic, func.count()).where(ENTRIES.c.status.not_in(("rejected", "merged")))
             .group_by(ENTRIES.c.topic).order_by(ENTRIES.c.topic))
        with self.connect() as db:
            rows = db.execute(q).all()
        return [(r[0], int(r[1])) for r in rows]

    def update(self, entry_id: int, actor: str = "", action: str = "edit", **changes: Any) -> FaqEntry:
        """Change fields of an entry; every changed field is recorded in ``faq_edits``."""
        unknown = [k for k in changes if k not in FIELDS or k in ("id", "created_at", "updated_at")]
        if unknown:
            raise ValueError(f"cannot change {', '.join(unknown)}")
        if "status" in changes and changes["status"] not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {changes['status']!r}")
        if "question" in changes and not str(changes["question"]).strip():
            raise ValueError("an FAQ entry needs a question")
        if "citations" in changes:
            changes["citations"] = check_citations(changes["citations"])
        if "alt_questions" in changes:
            changes["alt_questions"] = [q.strip() for q in changes["alt_questions"] if q and q.strip()]
        if changes.get("topic") is not None:
            changes["topic"] = str(changes["topic"])[:TOPIC_CHARS]
        t = now()
        with self.connect() as db:
            row = self._get_row(db, entry_id)
            if row is None:
                raise KeyError(f"no FAQ entry {entry_id}")
            old = _entry(row)
            values: dict[str, Any] = {}
            for k, v in changes.items():
                if getattr(old, k) == v:
                    continue
                values[k] = _dump(v) if k in _JSON_FIELDS else v
                self._record(db, old.id, action, k, getattr(old, k), v, actor, t)
            if values:
                values["updated_at"] = t
                db.execute(update(ENTRIES).where(ENTRIES.c.id == old.id).values(**values))
                self._bump(db)
            row = self._get_row(db, old.id)
        return _entry(row)

    def replace(self, entry: FaqEntry, actor: str = "") -> FaqEntry:
        """Overwrite a stored entry with ``entry`` as given, timestamps included (imports)."""
        entry.citations = check_citations(entry.citations)
        entry.topic = (entry.topic or "")[:TOPIC_CHARS]
        if entry.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {entry.status!r}")
        d = entry.to_dict()
        for k in _JSON_FIELDS:
            d[k] = _dump(d[k])
        entry_id = d.pop("id")
        with self.connect() as db:
            row = self._get_row(db, entry_id)
            if row is None:
                raise KeyError(f"no FAQ entry {entry_id}")
            old = _entry(row)
            db.execute(update(ENTRIES).where(ENTRIES.c.id == entry_id).values(**d))
            self._record(db, entry_id, "import", old=old.to_dict(), new=entry.to_dict(), actor=actor)
            self._bump(db)
        return entry

    def history(self, entry_id: int) -> list[dict]:
        with self.connect() as db:
            rows = db.execute(select(EDITS).where(EDITS.c.entry_id == int(entry_id)).order_by(EDITS.c.id)
                              ).mappings().all()
        out = []
        for r in rows:
            d = dict(r)
            for k in ("old", "new"):
                if d[k] is not None:
                    try:
                        d[k] = json.loads(d[k])
                    except json.JSONDecodeError:
                        pass
            out.append(d)
        return out

    def count_hit(self, entry_id: int) -> None:
        with self.connect() as db:
            db.execute(update(ENTRIES).where(ENTRIES.c.id == int(entry_id)).values(hits=ENTRIES.c.hits + 1))

    # -- the ask log -----------------------------------------------------------------------------
    def log_question(self, question: str, answered: bool, confidence: float = 0.0,
                     source_kind: str = "", faq_id: int | None = None, at: str | None = None,
                     user: str | None = None) -> int:
        """``user``: the asker's id as the portal passed it (``''`` when none)."""
        with self.connect() as db:
            row_id = int(db.execute(insert(ASKED).values(
                asked_at=at or now(), question=question, answered=int(bool(answered)),
                confidence=float(confidence), source_kind=source_kind, faq_id=faq_id, user=user or "",
            )).inserted_primary_key[0])
        self._maybe_prune_log()
        return row_id

    def prune_log(self) -> int:
        """Delete logged questions older than ``log_retention_days`` (none when it is 0);
        returns how many."""
        if self.log_retention_days <= 0:
            return 0
        return self.clear_log(before=days_ago(self.log_retention_days))

    def _maybe_prune_log(self) -> int:
        """``prune_log`` unless this database was pruned in this process less than
        ``prune_interval_s`` ago. A database that cannot be written is logged, never allowed
        to fail the open or the question just logged (the next call tries again)."""
        if self.log_retention_days <= 0:
            return 0
        key = (self._db.url, self.log_retention_days)
        t = time.monotonic()
        with _pruned_lock:
            last = _pruned_at.get(key)
            if last is not None and t - last < self.prune_interval_s:
                return 0
            _pruned_at[key] = t
        try:
            return self.prune_log()
        except sqlite3.Error as e:  # DatabaseUnavailable included
            with _pruned_lock:
                if _pruned_at.get(key) == t:
                    del _pruned_at[key]
            log.warning("FAQ ask log not pruned (%s): %s", self.path, e)
            return 0

    def clear_log(self, before: str | None = None) -> int:
        """Delete logged questions (all, or those asked before the ISO time ``before``)."""
        q = delete(ASKED)
        if before:
            q = q.where(ASKED.c.asked_at < before)
        with self.connect() as db:
            return int(db.execute(q).rowcount)

    def asked(self, since: str | None = None, limit: int = 20_000) -> list[dict]:
        """Logged questions, newest first."""
        q = select(ASKED)
        if since:
            q = q.where(ASKED.c.asked_at >= since)
        q = q.order_by(ASKED.c.id.desc()).limit(int(limit))
        with self.connect() as db:
            return [dict(r) for r in db.execute(q).mappings().all()]


def faq_path(config) -> Path:
    """Where earlier versions kept the FAQ (``faq.db_path``, default ``<data_dir>/faq.sqlite3``):
    imported into the database on first use, then renamed ``*.imported``."""
    return Path(config.faq.db_path) if config.faq.db_path else Path(config.data_dir) / "faq.sqlite3"


def faq_store(config) -> FaqStore:
    """The FAQ of ``config``'s database (``database_url``), with its log retention, importing
    the old ``faq_path(config)`` file first."""
    return FaqStore(database_url(config), log_retention_days=max(0, config.faq.log_retention_days),
                    legacy=faq_path(config))
