"""FAQ entries, their edit history and the ask log, kept in SQLite.

The database is created on first use, never at import. ``schema_version`` records which of the
numbered ``MIGRATIONS`` have been applied; opening an older file applies the missing ones in
order, inside one transaction, so nothing already stored is lost.

Statuses: ``candidate`` (suggested, not yet reviewed), ``approved`` (answers questions),
``rejected``, ``flagged`` (was approved; a cited document changed, a trainer must look again)
and ``merged`` (folded into the entry named by ``merged_into``).

The ask log keeps what people typed, so it is bounded: a store opened with
``log_retention_days`` deletes logged questions older than that when it opens and then, as
questions are logged, at most once per ``PRUNE_INTERVAL_S`` per database file and process
(an indexed range delete on ``asked_at``, not a scan on every insert).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kb.sqlitedb import Database

log = logging.getLogger(__name__)
STATUSES = ("candidate", "approved", "rejected", "flagged", "merged")
CITATION_KEYS = ("source", "start", "end", "quote", "title", "section")
EDITABLE = ("question", "answer", "topic", "alt_questions", "citations")
PRUNE_INTERVAL_S = 3600.0  # the ask log is pruned at most this often per file and process

# when each database file's ask log was last pruned in this process (time.monotonic()), by
# (file, retention): a store opened with another retention prunes at once
_pruned_at: dict[tuple[str, int], float] = {}
_pruned_lock = threading.Lock()


def _v1(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE faq_entries (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            question      TEXT NOT NULL,
            answer        TEXT NOT NULL DEFAULT '',
            citations     TEXT NOT NULL DEFAULT '[]',
            topic         TEXT NOT NULL DEFAULT '',
            status        TEXT NOT NULL DEFAULT 'candidate',
            alt_questions TEXT NOT NULL DEFAULT '[]',
            origin        TEXT NOT NULL DEFAULT '',
            created_at    TEXT NOT NULL,
            updated_at    TEXT NOT NULL
        );
        CREATE INDEX faq_entries_status ON faq_entries (status);
        CREATE TABLE faq_edits (
            id       INTEGER PRIMARY KEY AUTOINCREMENT,
            entry_id INTEGER NOT NULL,
            at       TEXT NOT NULL,
            action   TEXT NOT NULL,
            field    TEXT NOT NULL DEFAULT '',
            old      TEXT,
            new      TEXT,
            actor    TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX faq_edits_entry ON faq_edits (entry_id);
        """
    )


def _v2(db: sqlite3.Connection) -> None:
    """Review flags, merges, hit counts (how often an entry answered) and the ask log."""
    for ddl in (
        "ALTER TABLE faq_entries ADD COLUMN flag_reason TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE faq_entries ADD COLUMN merged_into INTEGER",
        "ALTER TABLE faq_entries ADD COLUMN hits INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE faq_entries ADD COLUMN ask_count INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE faq_entries ADD COLUMN approved_at TEXT NOT NULL DEFAULT ''",
    ):
        db.execute(ddl)
    db.executescript(
        """
        CREATE INDEX faq_entries_topic ON faq_entries (topic);
        CREATE TABLE ask_log (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            asked_at    TEXT NOT NULL,
            question    TEXT NOT NULL,
            answered    INTEGER NOT NULL,
            confidence  REAL NOT NULL DEFAULT 0,
            source_kind TEXT NOT NULL DEFAULT '',
            faq_id      INTEGER
        );
        CREATE INDEX ask_log_asked ON ask_log (asked_at);
        CREATE TABLE faq_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO faq_meta (key, value) VALUES ('revision', '0');
        """
    )


def _v3(db: sqlite3.Connection) -> None:
    """Who asked: the portal's user id a widget or API client passed (``''`` when none)."""
    db.execute("ALTER TABLE ask_log ADD COLUMN user TEXT NOT NULL DEFAULT ''")


MIGRATIONS = {1: _v1, 2: _v2, 3: _v3}
SCHEMA_VERSION = max(MIGRATIONS)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def days_ago(days: float) -> str:
    """The ISO time (as ``now()`` writes it) ``days`` days ago."""
    return (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")


def migrate(db: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply the migrations after the file's version up to ``target``; returns the version."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    current = db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"the FAQ database has schema version {current}, newer than this program "
            f"({SCHEMA_VERSION}); upgrade the program"
        )
    for version in range(current + 1, target + 1):
        MIGRATIONS[version](db)
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    db.commit()
    return max(current, target)


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


def _entry(row: sqlite3.Row) -> FaqEntry:
    d = dict(row)
    for k in _JSON_FIELDS:
        d[k] = json.loads(d[k] or "[]")
    return FaqEntry(**{k: d[k] for k in FIELDS})


def _dump(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class FaqStore:
    """All reads and writes of the FAQ database. One short connection per call, so it is safe
    to share between threads and processes (the CLI may edit while the server answers)."""

    def __init__(self, path: Path | str, log_retention_days: int = 0,
                 prune_interval_s: float = PRUNE_INTERVAL_S):
        """``log_retention_days``: logged questions older than this are deleted (0 keeps them
        forever), at open and then at most every ``prune_interval_s`` while logging."""
        self.path = Path(path)
        self._db = Database(self.path, migrate, wal=True)
        self.log_retention_days = max(0, int(log_retention_days or 0))
        self.prune_interval_s = float(prune_interval_s)
        if self.exists:  # opening must not create the file
            self._maybe_prune_log()

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def connect(self):
        """A connection that commits on success, rolls back on error, and is always closed."""
        return self._db.connect()

    def schema_version(self) -> int:
        with self.connect() as db:
            return int(db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])

    def revision(self) -> int:
        """A counter bumped by every change to an entry: caches compare it to know they are stale."""
        with self.connect() as db:
            return int(db.execute("SELECT value FROM faq_meta WHERE key = 'revision'").fetchone()[0])

    @staticmethod
    def _bump(db: sqlite3.Connection) -> None:
        db.execute("UPDATE faq_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'revision'")

    @staticmethod
    def _record(db: sqlite3.Connection, entry_id: int, action: str, field_: str = "",
                old: Any = None, new: Any = None, actor: str = "", at: str | None = None) -> None:
        db.execute(
            "INSERT INTO faq_edits (entry_id, at, action, field, old, new, actor) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (entry_id, at or now(), action, field_,
             None if old is None else _dump(old), None if new is None else _dump(new), actor),
        )

    # -- entries --------------------------------------------------------------------------------
    def add(self, entry: FaqEntry, actor: str = "", keep_times: bool = False) -> FaqEntry:
        """Insert ``entry`` (its ``id`` is kept when given and free). Returns the stored entry."""
        if not entry.question.strip():
            raise ValueError("an FAQ entry needs a question")
        if entry.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {entry.status!r}")
        entry.citations = check_citations(entry.citations)
        t = now()
        if not keep_times or not entry.created_at:
            entry.created_at = t
        if not keep_times or not entry.updated_at:
            entry.updated_at = t
        d = entry.to_dict()
        if d["id"] is None:
            d.pop("id")
        for k in _JSON_FIELDS:
            d[k] = _dump(d[k])
        cols = ", ".join(d)
        with self.connect() as db:
            cur = db.execute(f"INSERT INTO faq_entries ({cols}) VALUES ({', '.join('?' * len(d))})", tuple(d.values()))
            entry.id = int(cur.lastrowid)
            self._record(db, entry.id, "create", new=entry.to_dict(), actor=actor, at=entry.created_at)
            self._bump(db)
        return entry

    def get(self, entry_id: int) -> FaqEntry | None:
        with self.connect() as db:
            row = db.execute("SELECT * FROM faq_entries WHERE id = ?", (int(entry_id),)).fetchone()
        return _entry(row) if row else None

    def require(self, entry_id: int) -> FaqEntry:
        entry = self.get(entry_id)
        if entry is None:
            raise KeyError(f"no FAQ entry {entry_id}")
        return entry

    def list(self, status: str | list[str] | None = None, topic: str | None = None,
             order: str = "id") -> list[FaqEntry]:
        """Entries, optionally only those with ``status`` (one or several) and ``topic``."""
        where, args = [], []
        if status:
            statuses = [status] if isinstance(status, str) else list(status)
            bad = [s for s in statuses if s not in STATUSES]
            if bad:
                raise ValueError(f"unknown status {bad[0]!r}: use one of {', '.join(STATUSES)}")
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args.extend(statuses)
        if topic is not None:
            where.append("topic = ?")
            args.append(topic)
        sql = "SELECT * FROM faq_entries"
        if where:
            sql += " WHERE " + " AND ".join(where)
        orders = {"id": "id", "asked": "ask_count DESC, id", "topic": "topic, id", "hits": "hits DESC, id"}
        sql += " ORDER BY " + orders.get(order, "id")
        with self.connect() as db:
            return [_entry(r) for r in db.execute(sql, args).fetchall()]

    def topics(self) -> list[tuple[str, int]]:
        """(topic, number of entries not rejected or merged), by topic."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT topic, COUNT(*) FROM faq_entries WHERE status NOT IN ('rejected', 'merged')"
                " GROUP BY topic ORDER BY topic"
            ).fetchall()
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
        t = now()
        with self.connect() as db:
            row = db.execute("SELECT * FROM faq_entries WHERE id = ?", (int(entry_id),)).fetchone()
            if row is None:
                raise KeyError(f"no FAQ entry {entry_id}")
            old = _entry(row)
            sets, args = [], []
            for k, v in changes.items():
                if getattr(old, k) == v:
                    continue
                sets.append(f"{k} = ?")
                args.append(_dump(v) if k in _JSON_FIELDS else v)
                self._record(db, old.id, action, k, getattr(old, k), v, actor, t)
            if sets:
                sets.append("updated_at = ?")
                args.append(t)
                db.execute(f"UPDATE faq_entries SET {', '.join(sets)} WHERE id = ?", (*args, old.id))
                self._bump(db)
            row = db.execute("SELECT * FROM faq_entries WHERE id = ?", (old.id,)).fetchone()
        return _entry(row)

    def replace(self, entry: FaqEntry, actor: str = "") -> FaqEntry:
        """Overwrite a stored entry with ``entry`` as given, timestamps included (imports)."""
        entry.citations = check_citations(entry.citations)
        if entry.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {entry.status!r}")
        d = entry.to_dict()
        for k in _JSON_FIELDS:
            d[k] = _dump(d[k])
        entry_id = d.pop("id")
        with self.connect() as db:
            row = db.execute("SELECT * FROM faq_entries WHERE id = ?", (entry_id,)).fetchone()
            if row is None:
                raise KeyError(f"no FAQ entry {entry_id}")
            old = _entry(row)
            db.execute(f"UPDATE faq_entries SET {', '.join(f'{k} = ?' for k in d)} WHERE id = ?",
                       (*d.values(), entry_id))
            self._record(db, entry_id, "import", old=old.to_dict(), new=entry.to_dict(), actor=actor)
            self._bump(db)
        return entry

    def history(self, entry_id: int) -> list[dict]:
        with self.connect() as db:
            rows = db.execute("SELECT * FROM faq_edits WHERE entry_id = ? ORDER BY id", (int(entry_id),)).fetchall()
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
            db.execute("UPDATE faq_entries SET hits = hits + 1 WHERE id = ?", (entry_id,))

    # -- the ask log -----------------------------------------------------------------------------
    def log_question(self, question: str, answered: bool, confidence: float = 0.0,
                     source_kind: str = "", faq_id: int | None = None, at: str | None = None,
                     user: str | None = None) -> int:
        """``user``: the asker's id as the portal passed it (``''`` when none)."""
        with self.connect() as db:
            cur = db.execute(
                "INSERT INTO ask_log (asked_at, question, answered, confidence, source_kind, faq_id, user)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (at or now(), question, int(bool(answered)), float(confidence), source_kind, faq_id,
                 user or ""),
            )
            row_id = int(cur.lastrowid)
        self._maybe_prune_log()
        return row_id

    def prune_log(self) -> int:
        """Delete logged questions older than ``log_retention_days`` (none when it is 0);
        returns how many."""
        if self.log_retention_days <= 0:
            return 0
        return self.clear_log(before=days_ago(self.log_retention_days))

    def _maybe_prune_log(self) -> int:
        """``prune_log`` unless this file was pruned in this process less than
        ``prune_interval_s`` ago. A database that cannot be written is logged, never allowed
        to fail the open or the question just logged (the next call tries again)."""
        if self.log_retention_days <= 0:
            return 0
        key = (str(self.path.resolve()), self.log_retention_days)
        t = time.monotonic()
        with _pruned_lock:
            last = _pruned_at.get(key)
            if last is not None and t - last < self.prune_interval_s:
                return 0
            _pruned_at[key] = t
        try:
            return self.prune_log()
        except sqlite3.Error as e:
            with _pruned_lock:
                if _pruned_at.get(key) == t:
                    del _pruned_at[key]
            log.warning("FAQ ask log not pruned (%s): %s", self.path, e)
            return 0

    def clear_log(self, before: str | None = None) -> int:
        """Delete logged questions (all, or those asked before the ISO time ``before``)."""
        with self.connect() as db:
            if before:
                return db.execute("DELETE FROM ask_log WHERE asked_at < ?", (before,)).rowcount
            return db.execute("DELETE FROM ask_log").rowcount

    def asked(self, since: str | None = None, limit: int = 20_000) -> list[dict]:
        """Logged questions, newest first."""
        sql, args = "SELECT * FROM ask_log", []
        if since:
            sql += " WHERE asked_at >= ?"
            args.append(since)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self.connect() as db:
            return [dict(r) for r in db.execute(sql, args).fetchall()]


def faq_path(config) -> Path:
    """Where the FAQ database of ``config`` lives."""
    return Path(config.faq.db_path) if config.faq.db_path else Path(config.data_dir) / "faq.sqlite3"
