"""``/embed``: a minimal chat for an ``<iframe>``, plain HTML/JS/CSS from ``app/static/`` that
calls ``/api/ask`` and ``/api/documents``. ``/embed?q=...`` sends that question on load.

Who may frame it is ``config.app.embed_origins`` (``Content-Security-Policy:
frame-ancestors``); the page itself may only load from and talk to this server. Its title,
welcome and starters are the chat page's (``service.config.app``, ``service.starters``)."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from app.render import fill_template, json_for_html
from kb.service import KnowledgeService

TEMPLATE = Path(__file__).resolve().parent / "static" / "embed.html"


def embed_csp(frame_ancestors: list[str]) -> str:
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        f"frame-ancestors {' '.join(frame_ancestors)}"
    )


def make_embed_router(service: KnowledgeService, static_prefix: str, frame_ancestors: list[str]) -> APIRouter:
    config = service.config
    router = APIRouter(include_in_schema=False)
    settings = {
        "title": config.app.title,
        "welcome": config.app.welcome,
        "starters": list(service.starters),
        "maxQuestionChars": config.answer.max_question_chars,
    }
    values = {
        "title": html.escape(config.app.title),
        "static": static_prefix,
        "config": json_for_html(settings),
    }
    page = fill_template(TEMPLATE, values)
    headers = {
        "Content-Security-Policy": embed_csp(frame_ancestors),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-cache",
    }

    @router.get("/embed", response_class=HTMLResponse)
    def embed() -> HTMLResponse:
        return HTMLResponse(page, headers=headers)

    return router
