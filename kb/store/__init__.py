"""The data-access layer: one database (``database_url``; default the SQLite file
``<data_dir>/kb.sqlite3``) on SQLAlchemy 2, its schema kept by Alembic migrations shipped here
(``kb/store/migrations/versions/``) and applied when the store is opened, never at import.

It holds the API keys (``kb.store.keys``), accounts, sessions and the audit log
(``kb.store.accounts``), answer feedback (``kb.store.feedback``), the FAQ tables (used by
``kb.faq.store``), and the documents and jobs tables; ``kb.store.legacy`` imports the old
``feedback.sqlite3`` and ``faq.sqlite3`` files.

A schema change is a model change in ``models.py`` plus a new file in
``migrations/versions/`` (``down_revision`` = the previous one's ``revision``). To draft it
against a database at the previous revision::

    .venv/bin/python -c "from alembic import command; from kb.store.db import _alembic_config, \\
        make_engine; e = make_engine('sqlite:///data/kb.sqlite3'); c = e.connect(); \\
        command.revision(_alembic_config(c), 'what changed', autogenerate=True, rev_id='0002')"
"""

from __future__ import annotations

from typing import Any

from kb.store.db import Database, StoreError, database_url, open_database
from kb.store.keys import SCOPES, DuplicateKey, Key, KeyStore, UnknownKey


def open_key_store(config: Any) -> KeyStore:
    """The API keys of ``config``'s database (created and migrated on first use)."""
    return KeyStore(open_database(config))


__all__ = ["Database", "StoreError", "database_url", "open_database", "open_key_store", "KeyStore", "Key",
           "DuplicateKey", "UnknownKey", "SCOPES"]
