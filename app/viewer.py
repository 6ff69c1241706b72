"""``/view/{source}?start=&end=``: one document, escaped, with the cited span highlighted and
scrolled into view (a ``#kb-hit`` anchor, no script)."""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from app.render import document_html
from kb.service import KnowledgeService

_PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{static}/viewer.css">
</head>
<body>
<header><h1>{title}</h1><p class="meta">{meta}</p></header>
<main><pre class="doc">{body}</pre></main>
</body>
</html>
"""


def make_viewer_router(service: KnowledgeService, static_prefix: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/view/{source:path}", response_class=HTMLResponse)
    def view(
        source: str,
        start: Annotated[int | None, Query(ge=0)] = None,
        end: Annotated[int | None, Query(ge=0)] = None,
    ) -> HTMLResponse:
        doc = service.document(source)  # UnknownDocument -> 404 JSON
        meta = f"{doc.source} · {len(doc.text):,} 字"
        if start is not None and end is not None and 0 <= start <= end <= len(doc.text):
            meta += f" · 高亮：第 {start + 1:,}–{end:,} 字"
        page = _PAGE.format(
            title=html.escape(doc.title or doc.source),
            meta=html.escape(meta),
            static=static_prefix,
            body=document_html(doc.text, start, end),
        )
        return HTMLResponse(
            page,
            headers={
                "Content-Security-Policy": "default-src 'none'; style-src 'self'; "
                "frame-ancestors 'self'; base-uri 'none'; form-action 'none'",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin",
            },
        )

    return router
