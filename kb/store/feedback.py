"""Answer feedback (thumbs up/down and an optional comment) in the data-access layer's database
(table ``feedback``). The rows of an old ``data/feedback.sqlite3`` are imported when the store
is first used (``kb.store.legacy``). Nothing is created before something is written or read.

A database that cannot be used raises ``DatabaseUnavailable`` naming it (the HTTP API answers
503 with that message; the chat goes on)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import insert, select, update

from kb.store.db import LazyDatabase, database_url
from kb.store.legacy import import_feedback
from kb.store.models import Feedback

RATINGS = ("up", "down")
T = TypeVar("T")
_table = Feedback.__table__


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _row(row: Any) -> dict:
    d = dict(row)
    d["citations"] = json.loads(d["citations"] or "[]")
    return d


class FeedbackStore:
    """``add`` a rating, ``update`` it (e.g. when a comment follows the thumb), ``get``/``recent``
    to read, ``thumbs_down`` for the FAQ's gaps. ``target``: a ``kb.store.Database``, a database
    URL, or a SQLite file; ``legacy``: an old feedback file to import first. Safe to share
    between threads."""

    def __init__(self, target: Any, legacy: Path | str | None = None):
        self._db = LazyDatabase(target, "feedback", legacy, import_feedback)

    @property
    def path(self) -> str:
        """The database as messages name it."""
        return self._db.name

    @property
    def exists(self) -> bool:
        return self._db.exists

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        with self._db.begin() as conn:
            yield conn

    def _run(self, fn: Callable[[Any], T]) -> T:
        with self._connect() as conn:
            return fn(conn)

    def add(self, question: str, answer: str, rating: str, citations: list | None = None, comment: str = "",
            channel: str = "", user: str | None = None) -> int:
        """``user``: the rater's id as the portal passed it (``''`` when none)."""
        if rating not in RATINGS:
            raise ValueError(f"rating must be one of {RATINGS}, not {rating!r}")
        now = _now()
        values = {"created_at": now, "updated_at": now, "question": question, "answer": answer,
                  "citations": json.dumps(citations or [], ensure_ascii=False), "rating": rating,
                  "comment": comment or "", "channel": channel, "user": user or ""}
        return self._run(lambda c: int(c.execute(insert(_table).values(**values)).inserted_primary_key[0]))

    def update(self, feedback_id: int, *, rating: str | None = None, comment: str | None = None) -> bool:
        if rating is not None and rating not in RATINGS:
            raise ValueError(f"rating must be one of {RATINGS}, not {rating!r}")
        values: dict[str, Any] = {"updated_at": _now()}
        if rating is not None:
            values["rating"] = rating
        if comment is not None:
            values["comment"] = comment
        return self._run(lambda c: c.execute(update(_table).where(_table.c.id == int(feedback_id))
                                             .values(**values)).rowcount > 0)

    def get(self, feedback_id: int) -> dict | None:
        row = self._run(lambda c: c.execute(select(_table).where(_table.c.id == int(feedback_id)))
                        .mappings().first())
        return _row(row) if row else None

    def recent(self, limit: int = 50) -> list[dict]:
        rows = self._run(lambda c: c.execute(select(_table).order_by(_table.c.id.desc()).limit(int(limit)))
                         .mappings().all())
        return [_row(r) for r in rows]

    def thumbs_down(self) -> list[dict]:
        """Thumbs-down ratings as the FAQ's usage reads them (gaps), oldest first; [] when there
        is no database yet."""
        if not self.exists:
            return []
        rows = self._run(lambda c: c.execute(
            select(_table.c.question, _table.c.comment, _table.c.created_at)
            .where(_table.c.rating == "down").order_by(_table.c.id)).all())
        return [{"question": q, "comment": cm or "", "asked_at": t, "thumbs_down": True, "answered": True}
                for q, cm, t in rows]


def legacy_feedback_path(data_dir: Path | str) -> Path:
    """Where earlier versions kept feedback (imported on first use, then ``*.imported``)."""
    return Path(data_dir) / "feedback.sqlite3"


def open_feedback_store(config: Any) -> FeedbackStore:
    """The feedback of ``config``'s database (``database_url``), importing an old
    ``<data_dir>/feedback.sqlite3`` first."""
    return FeedbackStore(database_url(config), legacy=legacy_feedback_path(config.data_dir))
