"""The data-access layer (kb.store): Alembic migrations run when a database is opened, and the
API key store (hashed keys, verification, scopes, revocation, last use). Every test taking ``db``
runs twice: on SQLite and on a real PostgreSQL server (``conftest_pg``)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select, text, update

from kb.config import ConfigError, load_config
from kb.store import (
    Database,
    DuplicateKey,
    KeyStore,
    StoreError,
    UnknownKey,
    database_url,
    open_key_store,
)
from kb.store.db import current_revision, head_revision
from kb.store.models import ApiKey, Base


@pytest.fixture
def db(store_url):
    d = Database(store_url)
    yield d
    d.close()


@pytest.fixture
def keys(db):
    return KeyStore(db, touch_interval_s=0)


# -- migrations ----------------------------------------------------------------------------------

def test_opening_an_empty_database_migrates_it_and_a_second_open_is_a_no_op(tmp_path):
    path = tmp_path / "new" / "kb.sqlite3"  # the folder is made too
    first = Database(f"sqlite:///{path}")
    assert first.applied == ["0001", "0002", "0003", "0100", "0200"]
    assert current_revision(first.engine) == head_revision() == "0200"
    assert {"api_keys", "alembic_version"} <= set(inspect(first.engine).get_table_names())
    KeyStore(first).add("kept", "ask")
    first.close()
    mtime = path.stat().st_mtime_ns

    second = Database(f"sqlite:///{path}")
    assert second.applied == []
    assert [k.name for k in KeyStore(second).list()] == ["kept"]
    with second.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["0200"]
    second.close()
    assert path.stat().st_mtime_ns == mtime  # nothing written by the second open


def test_an_empty_postgresql_database_is_migrated_once_even_by_servers_opening_it_at_once(pg_database):
    import threading

    opened: list[Database] = []
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            opened.append(Database(pg_database))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(len(d.applied) for d in opened) == [0, 0, len(_revisions())]  # one of them migrated
    assert current_revision(opened[0].engine) == head_revision()
    assert {"api_keys", "users", "sessions", "audit_log", "feedback", "faq_entries", "faq_edits", "ask_log",
            "faq_meta", "documents", "jobs", "alembic_version"} <= set(inspect(opened[0].engine).get_table_names())
    assert Database(pg_database).applied == []


def _revisions() -> list[str]:
    from alembic.script import ScriptDirectory

    from kb.store.db import _alembic_config

    return [s.revision for s in ScriptDirectory.from_config(_alembic_config()).walk_revisions()]


def test_models_match_the_migrations(db):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_importing_the_store_touches_no_database(tmp_path, monkeypatch):
    import importlib

    import kb.store

    monkeypatch.chdir(tmp_path)
    importlib.reload(kb.store)
    assert list(tmp_path.iterdir()) == []


def test_database_url_default_and_config(tmp_path):
    cfg = load_config(None, data_dir=tmp_path / "data")
    assert cfg.database_url == "" and cfg.app.require_key is False
    assert database_url(cfg) == f"sqlite:///{tmp_path / 'data' / 'kb.sqlite3'}"
    other = load_config(None, database_url=f"sqlite:///{tmp_path / 'other.db'}", app__require_key=True)
    assert database_url(other).endswith("other.db") and other.app.require_key is True
    (tmp_path / "bad.toml").write_text("database_url = 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="database_url"):
        load_config(tmp_path / "bad.toml")
    (tmp_path / "bad2.toml").write_text('[app]\nrequire_keys = true\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="require_keys: unknown setting"):
        load_config(tmp_path / "bad2.toml")


def test_a_bad_database_url_is_one_clear_error(tmp_path):
    with pytest.raises(StoreError, match="not a database URL"):
        Database("not a url")
    with pytest.raises(StoreError):
        Database("nosuchdialect://x/y")
    (tmp_path / "junk.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot be opened"):
        Database(f"sqlite:///{tmp_path / 'junk.sqlite3'}")


# -- keys ----------------------------------------------------------------------------------------

def test_the_key_is_stored_only_as_its_hash(db, keys):
    key = keys.add("hr-portal", "ask")
    assert key.startswith("kb-") and len(key) >= 40
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM api_keys")).mappings().all()
    assert len(rows) == 1
    row = rows[0]
    assert key not in [str(v) for v in row.values()]
    assert not any(key[8:20] in str(v) for v in row.values())  # not even a large part of it
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["prefix"] == key[:8]
    (listed,) = keys.list()
    assert key not in repr(listed) and key not in str(listed.to_dict())


def test_verify_scopes_and_wrong_keys(keys):
    ask = keys.add("portal", "ask")
    admin = keys.add("ops", "admin")
    assert keys.verify(ask, "ask").name == "portal"
    assert keys.verify(ask, "admin") is None  # an ask key is not an admin key
    assert keys.verify(admin, "ask").name == "ops" and keys.verify(admin, "admin").name == "ops"
    for wrong in ("", None, "kb-", ask + "x", ask[:-1], ask.upper(), "x" * 10_000, "\ud800"):
        assert keys.verify(wrong, "ask") is None, wrong
    with pytest.raises(ValueError):
        keys.verify(ask, "root")


def test_keys_are_random_and_distinct(keys):
    made = {keys.add(f"k{i}", "ask") for i in range(20)}
    assert len(made) == 20 and len({k[:8] for k in made}) > 15


def test_revoke(keys):
    key = keys.add("temp", "ask")
    assert keys.verify(key) is not None
    revoked = keys.revoke("temp")
    assert revoked.revoked and revoked.revoked_at is not None
    assert keys.verify(key) is None
    again = keys.revoke("temp")  # no change
    assert again.revoked_at == revoked.revoked_at
    (listed,) = keys.list()
    assert listed.revoked and listed.name == "temp"
    with pytest.raises(UnknownKey, match="no key named 'nobody'"):
        keys.revoke("nobody")


def test_names_and_scopes(keys):
    keys.add("hr-portal", "ask")
    with pytest.raises(DuplicateKey, match="exists"):
        keys.add("hr-portal", "admin")
    keys.revoke("hr-portal")
    with pytest.raises(DuplicateKey, match="revoked"):
        keys.add("hr-portal", "ask")
    for bad in ("", "has space", "x" * 65, "a/b", "a\nb"):
        with pytest.raises(ValueError, match="key name"):
            keys.add(bad, "ask")
    with pytest.raises(ValueError, match="scope"):
        keys.add("fine", "root")
    assert keys.add("培训部.portal_2@hr", "admin").startswith("kb-")  # Chinese names are fine


def test_last_use_is_recorded(db):
    keys = KeyStore(db, touch_interval_s=0)
    key = keys.add("bot", "ask")
    assert keys.get("bot").last_used_at is None
    before = datetime.now(UTC)
    used = keys.verify(key)
    assert used.last_used_at is not None and used.last_used_at >= before - timedelta(seconds=1)
    stored = keys.get("bot").last_used_at
    assert stored == used.last_used_at and stored.tzinfo is not None
    assert keys.verify(key).last_used_at >= stored


def test_last_use_is_written_at_most_once_per_interval(db):
    keys = KeyStore(db, touch_interval_s=3600)
    key = keys.add("busy", "ask")
    first = keys.verify(key).last_used_at
    assert keys.verify(key).last_used_at == first == keys.get("busy").last_used_at
    with db.session() as s:  # an hour ago: written again
        s.execute(update(ApiKey).where(ApiKey.name == "busy").values(last_used_at=first - timedelta(hours=2)))
    assert keys.verify(key).last_used_at > first


def test_a_second_store_on_the_same_database_sees_revocations(tmp_path, store_url):
    """The CLI and the server are two processes with two engines on one database."""
    cfg = load_config(None, data_dir=tmp_path / "data", database_url=store_url)
    server, cli = open_key_store(cfg), open_key_store(cfg)
    key = cli.add("shared", "ask")
    assert server.verify(key) is not None
    cli.revoke("shared")
    assert server.verify(key) is None
    with server.db.session() as s:
        assert s.scalar(select(ApiKey.revoked_at).where(ApiKey.name == "shared")) is not None


def test_a_missing_driver_is_named_with_its_install_line():
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("psycopg2 is installed here: no missing driver to show")
    with pytest.raises(StoreError, match=r'driver is not installed.*pip install -e "\.\[postgres\]"'):
        Database("postgresql+psycopg2://kb@/kb?host=/nowhere")


def test_databases_of_one_postgresql_url_share_one_engine_until_the_last_closes(pg_database):
    first, second = Database(pg_database), Database(pg_database)
    assert first.engine is second.engine and first.engine.pool._pre_ping
    KeyStore(first).add("shared", "ask")
    first.close()
    first.close()  # twice: counted once
    assert [k.name for k in KeyStore(second).list()] == ["shared"]  # still usable
    second.close()
    third = Database(pg_database)  # a new engine after the last one closed
    assert third.engine is not second.engine and [k.name for k in KeyStore(third).list()] == ["shared"]
    third.close()
