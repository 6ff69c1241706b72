"""The two SQLite files of earlier versions, imported into the data-access layer's database.

Until issue 14 the answer feedback lived in ``data/feedback.sqlite3`` (its own hand-written
migrations, schema versions 1 and 2: 2 added ``user``) and the FAQ in ``data/faq.sqlite3``
(versions 1 to 3: 2 added review flags, merges, hit counts and the ask log, 3 the ask log's
``user``). When a store first opens and finds its old file, every row of it is copied into the
store's tables, ids and timestamps as they were (a column an older version lacked gets the
default the old migration gave it), in one transaction; the file is then renamed
``<name>.imported`` and left in place. A file that cannot be read (damaged, or newer than this
program) is not renamed, and the store reports it (``DatabaseUnavailable`` naming the file):
the FAQ is off, feedback answers 503, as before.

The old files are read with Python's ``sqlite3`` (they are SQLite files whatever
``database_url`` is); the rows are written through SQLAlchemy Core, so the target may be any
database. When it is PostgreSQL, the id sequences are moved past the imported ids.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from kb.store.db import Database, DatabaseUnavailable, describe, reset_sequences
from kb.store.models import AskLog, FaqEdit, FaqEntryRow, FaqMeta, Feedback

log = logging.getLogger(__name__)

FEEDBACK_VERSION = 2  # the newest feedback.sqlite3 schema
FAQ_VERSION = 3  # the newest faq.sqlite3 schema
SUFFIX = ".imported"

# the columns each table has in the newest old schema, with the default an older file lacks
FEEDBACK_COLUMNS = {"id": None, "created_at": None, "updated_at": None, "question": None, "answer": None,
                    "citations": "[]", "rating": None, "comment": "", "channel": "", "user": ""}
ENTRY_COLUMNS = {"id": None, "question": None, "answer": "", "citations": "[]", "topic": "",
                 "status": "candidate", "alt_questions": "[]", "origin": "", "created_at": None,
                 "updated_at": None, "flag_reason": "", "merged_into": None, "hits": 0, "ask_count": 0,
                 "approved_at": ""}
EDIT_COLUMNS = {"id": None, "entry_id": None, "at": None, "action": None, "field": "", "old": None,
                "new": None, "actor": ""}
ASK_COLUMNS = {"id": None, "asked_at": None, "question": None, "answered": None, "confidence": 0.0,
               "source_kind": "", "faq_id": None, "user": ""}

_lock = threading.Lock()  # one import at a time in this process


def imported_name(path: Path) -> Path:
    return path.with_name(path.name + SUFFIX)


def _read(path: Path, what: str, newest: int, tables: dict[str, dict]) -> tuple[int, dict[str, list[dict]]]:
    """(schema version, rows per table) of an old file; a table the file's version lacks is []."""
    try:
        db = sqlite3.connect(path, timeout=10)  # not read-only: its WAL, if any, is applied
    except sqlite3.Error as e:
        raise DatabaseUnavailable(f"the old {what} database {path} cannot be opened ({e})") from None
    try:
        db.row_factory = sqlite3.Row
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = 0
        if "schema_version" in names:
            version = int(db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)
        if version > newest:
            raise DatabaseUnavailable(
                f"the old {what} database {path} has schema version {version}, newer than this program "
                f"knows ({newest}); use the version of kb that wrote it")
        out: dict[str, list[dict]] = {}
        for table, columns in tables.items():
            if table not in names:
                out[table] = []
                continue
            rows = [dict(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY rowid")]  # noqa: S608
            out[table] = [{c: r.get(c, default) for c, default in columns.items()} for r in rows]
        if "faq_meta" in names:
            row = db.execute("SELECT value FROM faq_meta WHERE key = 'revision'").fetchone()
            out["revision"] = [{"value": int(row[0]) if row and str(row[0]).lstrip("-").isdigit() else 0}]
        return version, out
    except sqlite3.DatabaseError as e:
        raise DatabaseUnavailable(f"the old {what} database {path} cannot be read ({e}); move it away, or "
                                  "restore a good copy, to go on") from None
    finally:
        db.close()


def _move_sequence(conn, table: Table) -> None:
    """PostgreSQL: the id sequence past the imported ids (SQLite needs nothing)."""
    reset_sequences(conn, [table])


def _rename(path: Path) -> None:
    target = imported_name(path)
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{SUFFIX}.{n}")
    path.rename(target)
    for extra in ("-wal", "-shm"):
        side = path.with_name(path.name + extra)
        if side.exists():
            side.rename(target.with_name(target.name + extra))
    log.warning("imported %s into the database; the old file is kept as %s", path, target)


def _import(db: Database, path: Path, what: str, newest: int, tables: dict[Table, dict],
            after=None) -> dict[str, int]:
    with _lock:
        if not path.exists():
            return {}  # imported meanwhile (another store of this process)
        _, rows = _read(path, what, newest, {t.name: cols for t, cols in tables.items()})
        counts: dict[str, int] = {}
        if not any(rows[t.name] for t in tables):  # an empty file (or one never written): nothing to keep
            _rename(path)
            return {t.name: 0 for t in tables}
        try:
            with db.engine.begin() as conn:
                for table in tables:
                    if conn.execute(select(func.count()).select_from(table)).scalar():
                        raise DatabaseUnavailable(
                            f"the old {what} database {path} was not imported: {describe(db.url)} already "
                            f"holds {table.name} rows; move the old file away (or rename it to "
                            f"{imported_name(path).name}) if they are its rows")
                for table in tables:
                    if rows[table.name]:
                        conn.execute(insert(table), rows[table.name])
                    counts[table.name] = len(rows[table.name])
                    _move_sequence(conn, table)
                if after is not None:
                    after(conn, rows)
        except SQLAlchemyError as e:
            raise DatabaseUnavailable(f"the old {what} database {path} could not be imported into "
                                      f"{describe(db.url)}: {str(e).splitlines()[0]}") from None
        try:
            _rename(path)
        except OSError as e:  # imported, but still in place: the next open would refuse (rows exist)
            log.error("imported %s but could not rename it (%s); rename it to %s", path, e,
                      imported_name(path).name)
        return counts


def import_feedback(db: Database, path: Path | str) -> dict[str, int]:
    """Every row of an old ``feedback.sqlite3`` into ``db``; {table: rows} ({} when no file)."""
    path = Path(path)
    if not path.exists():
        return {}
    return _import(db, path, "feedback", FEEDBACK_VERSION, {Feedback.__table__: FEEDBACK_COLUMNS})


def import_faq(db: Database, path: Path | str) -> dict[str, int]:
    """Every entry, edit and logged question of an old ``faq.sqlite3`` into ``db``; the FAQ
    revision counter goes past the old one (caches built on the old file are stale)."""
    path = Path(path)
    if not path.exists():
        return {}

    def revision(conn, rows) -> None:
        old = (rows.get("revision") or [{"value": 0}])[0]["value"]
        meta = FaqMeta.__table__
        where = meta.c.key == "revision"
        current = conn.execute(select(meta.c.value).where(where)).scalar() or 0
        conn.execute(update(meta).where(where).values(value=max(int(current), int(old)) + 1))

    tables = {FaqEntryRow.__table__: ENTRY_COLUMNS, FaqEdit.__table__: EDIT_COLUMNS, AskLog.__table__: ASK_COLUMNS}
    return _import(db, path, "FAQ", FAQ_VERSION, tables, after=revision)
