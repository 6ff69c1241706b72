"""Alembic migrations of the data-access layer (run by ``kb.store.db.migrate``)."""
