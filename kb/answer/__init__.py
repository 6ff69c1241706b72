"""Answerers: one interface (``base.Answerer``), one module per implementation, each given
the parts it uses (``base.AnswerParts``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kb.answer.base import Answer, Answerer, AnswerParts, Citation

if TYPE_CHECKING:
    from kb.config import AnswerSettings


def make_answerer(settings: AnswerSettings, parts: AnswerParts) -> Answerer:
    if settings.answerer == "extractive":
        from kb.answer.extractive import ExtractiveAnswerer

        return ExtractiveAnswerer(parts, settings)
    raise ValueError(f"unknown answerer {settings.answerer!r}: use 'extractive'")


__all__ = ["Answer", "AnswerParts", "Answerer", "Citation", "make_answerer"]
