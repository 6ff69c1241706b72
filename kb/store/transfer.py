"""``kb db migrate --to URL``: copy a deployment's database (by default the SQLite file
``<data_dir>/kb.sqlite3``) into another one, typically PostgreSQL, keeping every row: ids,
timestamps, the JSON held in text columns, byte for byte.

The source is first brought to the newest schema (as any open does) and the old
``feedback.sqlite3`` / ``faq.sqlite3`` files, when still there, are imported into it (as the
server would on first use), so nothing is left behind. The target is migrated by Alembic to the
same schema, then must be empty (the FAQ revision row the migration seeds aside) unless
``force``, which deletes its rows first. Every table is copied in one transaction on the target,
parents before children, in batches; afterwards PostgreSQL's id sequences are moved past the
copied ids (``reset_sequences``) and the row counts of source and target are compared. A failure
writes nothing and is one ``StoreError`` naming the table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from kb.store.db import Database, StoreError, describe, reset_sequences

BATCH = 1000


def _tables():
    from kb.store.models import Base

    return list(Base.metadata.sorted_tables)  # parents (users) before children (sessions)


def _is_seed(table, conn) -> bool:
    """The FAQ revision row migration 0003 puts in every new database: not the user's data."""
    if table.name != "faq_meta":
        return False
    rows = conn.execute(select(table.c.key, table.c.value)).all()
    return [tuple(r) for r in rows] == [("revision", 0)]


def row_counts(db: Database) -> dict[str, int]:
    with db.engine.connect() as conn:
        return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar() or 0) for t in _tables()}


def copy_database(source: str, target: str, *, force: bool = False,
                  before: Callable[[Database], Any] | None = None) -> dict[str, int]:
    """Copy every row of ``source`` into ``target`` (URLs); {table: rows copied}. ``before(db)``
    runs on the opened source first (the CLI imports the old files there)."""
    if source == target:
        raise StoreError(f"the target is the source database ({describe(source)}); give another --to")
    src = Database(source)
    try:
        if before is not None:
            try:
                before(src)
            except sqlite3.DatabaseError as e:  # an old file that cannot be imported: named in e
                raise StoreError(str(e)) from None
        dst = Database(target)
        try:
            return _copy(src, dst, force)
        finally:
            dst.close()
    finally:
        src.close()


def _copy(src: Database, dst: Database, force: bool) -> dict[str, int]:
    tables = _tables()
    where = describe(dst.url)
    copied: dict[str, int] = {}
    current = ""
    try:
        with src.engine.connect() as read, dst.engine.begin() as write:
            held = [t.name for t in tables
                    if write.execute(select(func.count()).select_from(t)).scalar() and not _is_seed(t, write)]
            if held and not force:
                raise StoreError(f"the target database {where} is not empty ({', '.join(held)} hold rows); "
                                 "pass --force to replace its rows with the source's")
            for t in reversed(tables):  # children first
                write.execute(delete(t))
            for t in tables:
                current = t.name
                order = list(t.primary_key.columns) or list(t.c)
                result = read.execution_options(stream_results=True).execute(select(t).order_by(*order))
                n = 0
                for batch in result.mappings().partitions(BATCH):
                    write.execute(insert(t), [dict(r) for r in batch])
                    n += len(batch)
                copied[t.name] = n
            current = ""
            reset_sequences(write, tables)
    except SQLAlchemyError as e:
        what = f" (table {current})" if current else ""
        raise StoreError(f"copying into {where} failed{what}, nothing was written: "
                         f"{e.__class__.__name__}: {str(getattr(e, 'orig', None) or e).splitlines()[0]}") from None
    counts = row_counts(dst)
    wrong = {t: (copied[t], counts[t]) for t in copied if copied[t] != counts[t]}
    if wrong:
        raise StoreError(f"copied into {where} but the row counts differ: {wrong}")
    return copied


__all__ = ["copy_database", "row_counts"]
