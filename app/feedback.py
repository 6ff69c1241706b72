"""Answer feedback for the web chat and the HTTP API: the store lives in the data-access layer
(``kb.store.feedback``: table ``feedback`` of ``database_url``); this module keeps the names
the app has always imported."""

from __future__ import annotations

from pathlib import Path

from kb.store.feedback import RATINGS, FeedbackStore, legacy_feedback_path, open_feedback_store

__all__ = ["RATINGS", "FeedbackStore", "feedback_path", "open_feedback_store"]


def feedback_path(data_dir: Path | str) -> Path:
    """Where earlier versions kept feedback (imported into the database on first use)."""
    return legacy_feedback_path(data_dir)
