"""Alembic's environment, run by ``kb.store.db.migrate`` with the connection to migrate in
``config.attributes["connection"]`` (the migrations run inside that connection's transaction).
It configures no logging: the application owns that."""

from __future__ import annotations

from alembic import context

from kb.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("kb.store migrations run through kb.store.db.migrate(engine), which passes a connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # ALTER TABLE on SQLite is done by copying the table
)
with context.begin_transaction():
    context.run_migrations()
