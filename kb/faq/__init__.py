"""Curated FAQ: suggestions from the documents and from what people ask, a reviewed store of
entries (SQLite, migrated, every edit recorded), import/export, and answering from approved
entries before the documents.

Modules: ``store`` (SQLite), ``match`` (lexical guard + embedding), ``citations`` (the
exact-slice contract, re-checks after re-ingest), ``curate`` (edit/approve/reject/merge/flag),
``suggest`` and ``usage`` (candidates), ``exchange`` (CSV/JSON/Markdown), ``service``
(``FaqService``, what adapters call: ``KnowledgeService.faq``), ``auth`` (admin token), ``cli``.
"""

from kb.faq.store import SCHEMA_VERSION, STATUSES, FaqEntry, FaqStore, faq_path

__all__ = ["SCHEMA_VERSION", "STATUSES", "FaqEntry", "FaqStore", "faq_path"]
