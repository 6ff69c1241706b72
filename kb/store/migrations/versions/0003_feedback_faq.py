"""Answer feedback, FAQ entries, their edit history, the ask log and the FAQ revision counter,
moved from data/feedback.sqlite3 (its schema 2) and data/faq.sqlite3 (its schema 3); the rows
of those files are imported by ``kb.store.legacy`` when the database is first opened.

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

AUTO = {"sqlite_autoincrement": True}  # ids are never reused after a delete, as in the old files


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("citations", sa.Text(), nullable=False),
        sa.Column("rating", sa.String(8), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.CheckConstraint("rating IN ('up', 'down')", name="ck_feedback_rating"),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
        **AUTO,
    )
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])
    op.create_table(
        "faq_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("citations", sa.Text(), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("alt_questions", sa.Text(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.Column("flag_reason", sa.Text(), nullable=False),
        sa.Column("merged_into", sa.Integer(), nullable=True),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("ask_count", sa.Integer(), nullable=False),
        sa.Column("approved_at", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_faq_entries"),
        **AUTO,
    )
    op.create_index("ix_faq_entries_status", "faq_entries", ["status"])
    op.create_index("ix_faq_entries_topic", "faq_entries", ["topic"])
    op.create_table(
        "faq_edits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("old", sa.Text(), nullable=True),
        sa.Column("new", sa.Text(), nullable=True),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_faq_edits"),
        **AUTO,
    )
    op.create_index("ix_faq_edits_entry_id", "faq_edits", ["entry_id"])
    op.create_table(
        "ask_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asked_at", sa.String(40), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("source_kind", sa.String(16), nullable=False),
        sa.Column("faq_id", sa.Integer(), nullable=True),
        sa.Column("user", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ask_log"),
        **AUTO,
    )
    op.create_index("ix_ask_log_asked_at", "ask_log", ["asked_at"])
    meta = op.create_table(
        "faq_meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_faq_meta"),
    )
    op.bulk_insert(meta, [{"key": "revision", "value": 0}])


def downgrade() -> None:
    for table in ("faq_meta", "ask_log", "faq_edits", "faq_entries", "feedback"):
        op.drop_table(table)
