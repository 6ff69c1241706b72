"""``/embed``: a minimal chat for an ``<iframe>``, plain HTML/JS/CSS from ``app/static/`` that
calls ``/api/ask`` and ``/api/documents``; and ``/widget.js``, the script that puts it behind a
floating button on any page.

``/embed`` takes its options from the URL, each validated here and handed to the page only as
escaped JSON (never as markup): ``q`` (a question sent on load), ``title`` (the header's title),
``user`` (the portal's user id, sent with every ask and feedback) and ``color`` (the accent
colour, ``#rgb`` or ``#rrggbb`` only). A value that fails its rule is dropped, never reflected.

Who may frame it is ``config.app.embed_origins`` (``Content-Security-Policy:
frame-ancestors``); the page itself may only load from and talk to this server. Its title,
welcome and starters are the chat page's (``service.config.app``, ``service.starters``).
``/widget.js`` itself may be loaded by any page, but the panel it opens is this ``/embed``, so
it only works on the sites ``embed_origins`` lists."""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import HTMLResponse, Response

from app.api import valid_user
from app.render import fill_template, json_for_html
from kb.service import KnowledgeService

STATIC = Path(__file__).resolve().parent / "static"
TEMPLATE = STATIC / "embed.html"
WIDGET = STATIC / "widget.js"
MAX_TITLE_CHARS = 60
COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
WIDGET_MAX_AGE = 3600  # seconds a browser may reuse /widget.js before revalidating (ETag)


def embed_csp(frame_ancestors: list[str]) -> str:
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        f"frame-ancestors {' '.join(frame_ancestors)}"
    )


def clean_title(value: str | None) -> str | None:
    """A title from the URL as one plain line: control and format characters dropped, runs of
    whitespace made one space, at most ``MAX_TITLE_CHARS`` characters; None when empty."""
    if not value:
        return None
    text = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in value)
    text = " ".join(text.split())[:MAX_TITLE_CHARS]
    return text or None


def clean_color(value: str | None) -> str | None:
    """``#rgb`` or ``#rrggbb``, else None: nothing else ever reaches a style."""
    return value.lower() if value and COLOR.fullmatch(value) else None


def clean_user(value: str | None) -> str | None:
    """The API's rule for user ids (``app.api.valid_user``); None when it fails or is empty."""
    if not value:
        return None
    try:
        return valid_user(value) or None
    except ValueError:
        return None


def clean_question(value: str | None, limit: int) -> str | None:
    """The question to send on load; the page itself refuses one over ``limit`` characters with
    a message, so only far longer text is cut here (it never reaches the page as markup)."""
    if not value or not value.strip():
        return None
    return value[: limit + 1]


def make_embed_router(service: KnowledgeService, static_prefix: str, frame_ancestors: list[str]) -> APIRouter:
    config = service.config
    router = APIRouter(include_in_schema=False)
    base_settings = {
        "title": config.app.title,
        "welcome": config.app.welcome,
        "starters": list(service.starters),
        "maxQuestionChars": config.answer.max_question_chars,
    }
    headers = {
        "Content-Security-Policy": embed_csp(frame_ancestors),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-cache",
    }
    widget = WIDGET.read_bytes()
    widget_etag = '"' + hashlib.sha256(widget).hexdigest()[:32] + '"'
    widget_headers = {
        "Cache-Control": f"public, max-age={WIDGET_MAX_AGE}",
        "ETag": widget_etag,
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "cross-origin",  # any site may load the script
    }

    @router.get("/embed", response_class=HTMLResponse)
    def embed(
        q: Annotated[str | None, Query()] = None,
        title: Annotated[str | None, Query()] = None,
        user: Annotated[str | None, Query()] = None,
        color: Annotated[str | None, Query()] = None,
    ) -> HTMLResponse:
        settings = dict(base_settings)
        settings["title"] = clean_title(title) or config.app.title
        settings["question"] = clean_question(q, config.answer.max_question_chars)
        settings["user"] = clean_user(user)
        settings["accent"] = clean_color(color)
        page = fill_template(TEMPLATE, {
            "title": html.escape(settings["title"]),
            "static": static_prefix,
            "config": json_for_html(settings),
        })
        return HTMLResponse(page, headers=headers)

    @router.get("/widget.js")
    def widget_js(if_none_match: Annotated[str | None, Header()] = None) -> Response:
        if if_none_match and widget_etag in [t.strip() for t in if_none_match.split(",")]:
            return Response(status_code=304, headers=widget_headers)
        return Response(widget, media_type="text/javascript; charset=utf-8", headers=widget_headers)

    return router
