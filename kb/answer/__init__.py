"""Answerers: one interface (``base.Answerer``), one module per implementation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kb.answer.base import Answer, Answerer, Citation

if TYPE_CHECKING:
    from kb.config import AnswerSettings
    from kb.service import KnowledgeService


def make_answerer(settings: AnswerSettings, service: KnowledgeService) -> Answerer:
    if settings.answerer == "extractive":
        from kb.answer.extractive import ExtractiveAnswerer

        return ExtractiveAnswerer(service, settings)
    raise ValueError(f"unknown answerer {settings.answerer!r}: use 'extractive'")


__all__ = ["Answer", "Answerer", "Citation", "make_answerer"]
