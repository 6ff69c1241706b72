"""A SQLite database file created and migrated on first use (never at import), with one short
connection per call: safe to share between threads, and between processes (the CLI may edit
while the server answers). Used by the feedback store and the FAQ store."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class Database:
    def __init__(self, path: Path | str, migrate: Callable[[sqlite3.Connection], None], wal: bool = False):
        self.path = Path(path)
        self._migrate = migrate
        self._wal = wal
        self._lock = threading.Lock()
        self._ready = False

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection that commits on success, rolls back on error, and is always closed."""
        if not self._ready:
            with self._lock:
                if not self._ready:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    db = sqlite3.connect(self.path, timeout=10)
                    try:
                        if self._wal:
                            db.execute("PRAGMA journal_mode=WAL")
                        self._migrate(db)
                    finally:
                        db.close()
                    self._ready = True
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        if self._wal:
            db.execute("PRAGMA synchronous=NORMAL")
        try:
            with db:
                yield db
        finally:
            db.close()
