"""Answer feedback (thumbs up/down and an optional comment), kept in SQLite.

The database is created on first use, never at import. A ``schema_version`` table records the
version so later changes can migrate old files instead of guessing."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from kb.sqlitedb import Database

SCHEMA_VERSION = 2
RATINGS = ("up", "down")

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE feedback (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT    NOT NULL,
        updated_at TEXT    NOT NULL,
        question   TEXT    NOT NULL,
        answer     TEXT    NOT NULL,
        citations  TEXT    NOT NULL DEFAULT '[]',
        rating     TEXT    NOT NULL CHECK (rating IN ('up', 'down')),
        comment    TEXT    NOT NULL DEFAULT '',
        channel    TEXT    NOT NULL DEFAULT ''
    );
    CREATE INDEX feedback_created ON feedback (created_at);
    """,
    # who rated: the portal's user id a widget or API client passed ('' when none)
    2: "ALTER TABLE feedback ADD COLUMN user TEXT NOT NULL DEFAULT '';",
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class FeedbackStore:
    """``add`` a rating, ``update`` it (e.g. when a comment follows the thumb), ``get``/``recent``
    to read. Safe to share between threads: one connection per call."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._db = Database(self.path, self._migrate)

    def _connect(self):
        """A connection that commits on success, rolls back on error, and is always closed."""
        return self._db.connect()

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        current = row[0] or 0
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"the feedback database has schema version {current}, newer than this program "
                f"({SCHEMA_VERSION}); upgrade the program"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            db.executescript(_MIGRATIONS[version])
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        db.commit()

    def add(
        self,
        question: str,
        answer: str,
        rating: str,
        citations: list | None = None,
        comment: str = "",
        channel: str = "",
        user: str | None = None,
    ) -> int:
        """``user``: the rater's id as the portal passed it (``''`` when none)."""
        if rating not in RATINGS:
            raise ValueError(f"rating must be one of {RATINGS}, not {rating!r}")
        now = _now()
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO feedback (created_at, updated_at, question, answer, citations,"
                " rating, comment, channel, user) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (now, now, question, answer, json.dumps(citations or [], ensure_ascii=False),
                 rating, comment or "", channel, user or ""),
            )
            return int(cur.lastrowid)

    def update(self, feedback_id: int, *, rating: str | None = None, comment: str | None = None) -> bool:
        if rating is not None and rating not in RATINGS:
            raise ValueError(f"rating must be one of {RATINGS}, not {rating!r}")
        sets, args = ["updated_at = ?"], [_now()]
        if rating is not None:
            sets.append("rating = ?")
            args.append(rating)
        if comment is not None:
            sets.append("comment = ?")
            args.append(comment)
        with self._connect() as db:
            cur = db.execute(f"UPDATE feedback SET {', '.join(sets)} WHERE id = ?", (*args, feedback_id))
            return cur.rowcount > 0

    def get(self, feedback_id: int) -> dict | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM feedback WHERE id = ?", (feedback_id,)).fetchone()
        return _row(row) if row else None

    def recent(self, limit: int = 50) -> list[dict]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM feedback ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [_row(r) for r in rows]


def _row(row: sqlite3.Row) -> dict:
    d = dict(row)
    d["citations"] = json.loads(d["citations"] or "[]")
    return d


def feedback_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / "feedback.sqlite3"
