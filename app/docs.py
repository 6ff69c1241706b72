"""``/docs`` (Swagger UI) and ``/redoc`` served from this machine.

FastAPI's own pages load their scripts and fonts from a CDN, which an offline intranet cannot
reach. The ``fastapi-offline`` package ships those files; without it ``/docs`` is a short page
pointing at ``/openapi.json`` and naming the package to install (never a CDN)."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_STATIC = "/kb-docs-static"


def _offline_assets() -> Path | None:
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).resolve().parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").exists() else None


def install_docs(app: FastAPI, title: str) -> None:
    """Add ``/docs`` and ``/redoc``; build ``app`` with ``docs_url=None, redoc_url=None``."""
    openapi_url = app.openapi_url or "/openapi.json"
    assets = _offline_assets()

    if assets is None:
        page = (
            '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)} · API</title></head><body style=\"font-family:sans-serif;"
            'max-width:720px;margin:40px auto;line-height:1.7">'
            f"<h1>{html.escape(title)} · HTTP API</h1>"
            f'<p>接口说明（OpenAPI）：<a href="{openapi_url}">{openapi_url}</a></p>'
            "<p>交互式文档需要安装 <code>fastapi-offline</code>（离线的 Swagger UI 文件）："
            "<code>pip install fastapi-offline</code></p></body></html>"
        )

        @app.get("/docs", include_in_schema=False)
        def docs_fallback() -> HTMLResponse:
            return HTMLResponse(page)

        return

    app.mount(DOCS_STATIC, StaticFiles(directory=assets), name="kb-docs-static")

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} · API",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # no call to the online validator
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} · API",
            redoc_js_url=f"{DOCS_STATIC}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_STATIC}/favicon.png",
            with_google_fonts=False,
        )
