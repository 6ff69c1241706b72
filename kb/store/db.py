"""The data-access layer's database: a SQLAlchemy engine over ``config.database_url`` (default
``sqlite:///<data_dir>/kb.sqlite3``), brought to the newest schema by the Alembic migrations in
``kb/store/migrations/`` when it is opened (``open_database``), never at import.

Queries go through SQLAlchemy's ORM and Core constructs only, so pointing ``database_url`` at
PostgreSQL (``postgresql+psycopg://user:password@host/kb``; the driver is the ``postgres`` extra,
``pip install -e ".[postgres]"``) needs no code change; the same tests run on both. What differs
is in ``make_engine``: for SQLite the file's folder is created, a busy timeout set and the
journal put in WAL mode, so that the CLI and the server may read and write at once; for
PostgreSQL connections are checked before use (``pool_pre_ping``: a server restarted behind a
long-running ``kb serve`` costs no failed request) and one engine (one pool) serves every
``Database`` of that URL in the process. ``migrate`` holds a PostgreSQL advisory lock, so that
several servers started at once over one new database migrate it once. Explicit ids (the
imports of ``kb.store.legacy``, ``kb db migrate``) are followed by ``reset_sequences``.

``shared_database(url)`` is the one ``Database`` of a URL in this process (the stores that are
opened again and again, as the FAQ is at every index reload, share its engine).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_FILE = "kb.sqlite3"
MIGRATION_LOCK = 0x6B622D6462  # "kb-db": the PostgreSQL advisory lock held while migrating


class StoreError(ValueError):
    """The database cannot be used; the message names it and, where there is one, the fix."""


class DatabaseUnavailable(sqlite3.DatabaseError):
    """A store's database (or an old file being imported into it) cannot be read or written;
    the message names it. A ``sqlite3.DatabaseError`` so that the callers written for the old
    SQLite stores (the FAQ off, feedback 503, the ingest's FAQ check) catch it unchanged."""


def database_url(config: Any) -> str:
    """``config.database_url``, or the SQLite file ``kb.sqlite3`` in ``config.data_dir``."""
    url = getattr(config, "database_url", "") or ""
    return url or f"sqlite:///{Path(config.data_dir) / DEFAULT_FILE}"


# drivers of the databases the README names, and how to get them
DRIVER_HINTS = {"postgresql": 'the PostgreSQL driver: pip install -e ".[postgres]" (psycopg 3; use a '
                              'postgresql+psycopg:// URL)'}

# non-SQLite engines of this process, by URL: [engine, how many open Databases use it]
_engines: dict[tuple[int, str], list] = {}
_engines_lock = threading.Lock()


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"database_url {url!r} is not a database URL (e.g. sqlite:///data/kb.sqlite3)") from None
    backend = parsed.get_backend_name()
    if backend != "sqlite":
        # one engine (one pool) per database and process, however many stores open it; its
        # connections are closed when the last Database using it is closed
        key = _engine_key(url)
        with _engines_lock:
            held = _engines.get(key)
            if held is None:
                held = _engines[key] = [_create(parsed, {"pool_pre_ping": True, "pool_size": 5,
                                                         "max_overflow": 10, "pool_recycle": 1800}), 0]
            held[1] += 1
            return held[0]
    kwargs: dict[str, Any] = {}
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    kwargs["connect_args"] = {"timeout": 10}
    engine = _create(parsed, kwargs)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection, _record) -> None:
            cur = dbapi_connection.cursor()
            try:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            finally:
                cur.close()
    return engine


def _engine_key(url: str) -> tuple[int, str]:
    return (os.getpid(), url)


def release_engine(url: str, engine: Engine) -> None:
    """A ``Database`` of ``url`` is closed: dispose of its engine unless another still uses it."""
    key = _engine_key(url)
    with _engines_lock:
        held = _engines.get(key)
        if held is None or held[0] is not engine:
            engine.dispose()  # SQLite: each Database has its own
            return
        held[1] -= 1
        if held[1] > 0:
            return
        del _engines[key]
    engine.dispose()


def _create(parsed, kwargs: dict[str, Any]) -> Engine:
    where = parsed.render_as_string(hide_password=True)
    try:
        return create_engine(parsed, **kwargs)
    except ImportError as e:
        hint = DRIVER_HINTS.get(parsed.get_backend_name())
        raise StoreError(f"database_url {where}: its driver is not installed ({e}); install "
                         f"{hint or 'the driver this URL names'}") from None
    except ArgumentError as e:
        raise StoreError(f"database_url {where}: {e}") from None


def _alembic_config(connection: Any = None):
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> list[str]:
    """Upgrade the database to the newest revision; the revisions applied, oldest first (``[]``
    when it was already there: a second open reads one row and changes nothing)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    script = ScriptDirectory.from_config(_alembic_config())
    head = script.get_current_head()
    current = current_revision(engine)
    if current == head:
        return []
    try:
        pending = [s.revision for s in script.iterate_revisions(head, current)][::-1]
    except CommandError:
        raise StoreError(f"the database {engine.url.render_as_string(hide_password=True)} is at schema "
                         f"revision {current}, which this version does not know (newest here: {head}); "
                         "use the version of kb that wrote it") from None
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # several servers opening one new database at once: one migrates, the others
                # wait here, then find it at the head (the lock ends with the transaction)
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
                if MigrationContext.configure(conn).get_current_revision() == head:
                    return []
            command.upgrade(_alembic_config(conn), "head")
    except SQLAlchemyError:
        # another process (the CLI beside the server) may have migrated it meanwhile
        if current_revision(engine) != head:
            raise
        return []
    log.info("database %s migrated: %s", engine.url.render_as_string(hide_password=True), ", ".join(pending))
    return pending


class Database:
    """One engine and its sessions; opening it migrates the schema (``applied`` says what ran)."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        try:
            self.applied: list[str] = migrate(self.engine)
        except SQLAlchemyError as e:
            release_engine(url, self.engine)
            raise StoreError(f"the database {self.engine.url.render_as_string(hide_password=True)} cannot "
                             f"be opened: {e.__class__.__name__}: {str(e).splitlines()[0]}") from None
        except StoreError:
            release_engine(url, self.engine)
            raise
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._closed = False

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self._sessions.begin() as s:
            yield s

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            release_engine(self.url, self.engine)


_shared: dict[str, Database] = {}
_shared_lock = threading.Lock()


def shared_database(url: str) -> Database:
    """The one ``Database`` of ``url`` in this process (opened, and migrated, on first use)."""
    db = _shared.get(url)
    if db is None:
        with _shared_lock:
            db = _shared.get(url)
            if db is None:
                db = _shared[url] = Database(url)
    return db


def reset_sequences(conn: Any, tables: Any = None) -> None:
    """After rows were written with explicit ids: move each table's id sequence past its
    highest id (to the start when the table is empty), so that the next insert without an id
    does not collide. PostgreSQL only; SQLite takes the next id from the table itself.
    ``tables``: ``Table`` objects (default: every table of the schema with an integer ``id``)."""
    if conn.dialect.name != "postgresql":
        return
    if tables is None:
        from kb.store.models import Base

        tables = Base.metadata.sorted_tables
    for table in tables:
        if not isinstance(table, Table) or "id" not in table.c or not table.c.id.primary_key:
            continue
        seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table.name}).scalar()
        if not seq:
            continue
        top = conn.execute(select(func.max(table.c.id))).scalar()
        # setval(seq, n, true): the next id is n + 1; (seq, 1, false): the next id is 1
        conn.execute(text("SELECT setval(:s, :n, :called)"),
                     {"s": seq, "n": int(top) if top else 1, "called": bool(top)})


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for another database or an in-memory one)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def describe(url: str) -> str:
    """A database as messages name it: its file, or its URL without the password."""
    path = sqlite_file(url)
    if path is not None:
        return str(path)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def open_database(config: Any) -> Database:
    return Database(database_url(config))


def as_url(target: Any) -> str:
    """A ``Database``'s URL, a SQLAlchemy URL string, or a SQLite file (``Path`` or a string
    without ``://``) as a URL."""
    if isinstance(target, Database):
        return target.url
    if isinstance(target, str) and "://" in target:
        return target
    return f"sqlite:///{Path(target)}"


class LazyDatabase:
    """A store's database, opened (and migrated) on first use, never before: ``exists`` tells
    whether there is anything to read without creating it. ``legacy``: an old file to import
    with ``importer(db, legacy)`` before the first use (``kb.store.legacy``). Every failure is a
    ``DatabaseUnavailable`` naming the database (or the old file)."""

    def __init__(self, target: Any, what: str, legacy: Path | str | None = None, importer=None):
        self.what = what
        self.url = as_url(target)
        self._given = target if isinstance(target, Database) else None
        self.legacy = Path(legacy) if legacy else None
        self._importer = importer
        self._db: Database | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return describe(self.url)

    @property
    def exists(self) -> bool:
        if self._db is not None:
            return True
        if self.legacy is not None and self.legacy.exists():
            return True
        path = sqlite_file(self.url)
        return path is None or path.exists()

    def get(self) -> Database:
        if self._db is not None:
            return self._db
        with self._lock:
            if self._db is None:
                try:
                    db = self._given or shared_database(self.url)
                except StoreError as e:
                    raise DatabaseUnavailable(f"the {self.what} database {self.name} cannot be used ({e})") from None
                if self.legacy is not None and self._importer is not None:
                    self._importer(db, self.legacy)  # raises DatabaseUnavailable naming the old file
                self._db = db
        return self._db

    @contextmanager
    def begin(self) -> Iterator[Any]:
        """A connection in a transaction (committed on success, rolled back on error); a
        database error is a ``DatabaseUnavailable`` naming the database."""
        db = self.get()
        try:
            with db.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as e:
            raise DatabaseUnavailable(f"the {self.what} database {self.name} cannot be used "
                                      f"({str(e).splitlines()[0]})") from None
