"""One process: the HTTP API, the OpenAI-compatible API (``/v1``), the MCP server (``/mcp``),
the embeddable page, the document viewer, the trainers' FAQ page (``/trainers``,
``/api/admin/faq``) and the Gradio chat (mounted at ``/``), all over one ``KnowledgeService``
loaded once."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import gradio as gr
import uvicorn
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from app.accounts import make_accounts_router
from app.api import install_error_handlers, make_router
from app.auth import Auth, install_auth
from app.chat import build_chat
from app.chat_layout import CHAT_CSS, chat_theme
from app.docs import install_docs
from app.documents_admin import make_documents_router, upload_body_limit
from app.embed import make_embed_router
from app.faq_admin import make_faq_admin_router
from app.feedback import open_feedback_store
from app.guard import Guard
from app.keys import AccessGate
from app.mcp_server import PATH as MCP_PATH
from app.mcp_server import McpEndpoint
from app.openai_api import PREFIX as OPENAI_PREFIX
from app.openai_api import error_shape as openai_error_shape
from app.openai_api import install_openai_schema, make_openai_router
from app.viewer import make_viewer_router
from kb.config import Config, ConfigError
from kb.service import KnowledgeService
from kb.watch import IndexWatcher

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_PREFIX = "/kb-static"
MAX_BODY_BYTES = 1_000_000  # request bodies above this are refused (413), on every route
CHAT_CONCURRENCY = 4  # chat questions answered at once (the API has its own thread pool)


def _check_origins(name: str, origins: tuple[str, ...]) -> list[str]:
    """Origins go into response headers: refuse anything that could smuggle extra directives."""
    out = []
    for o in origins:
        if not isinstance(o, str) or not o or any(ch in o for ch in " \t\r\n;,"):
            raise ValueError(f"app.{name}: {o!r} is not a single origin (e.g. https://intranet.example.com)")
        out.append(o)
    return out


ADMIN_TOKEN_GONE = ("app.admin_token (or KB_ADMIN_TOKEN) is no longer used: trainers and admins log in "
                    "with their own accounts. Remove it from the config and the environment, and create the "
                    "first admin with: kb user add NAME --role admin")


def create_app(config: Config, service: KnowledgeService | None = None) -> FastAPI:
    """The whole web application. ``service`` is loaded from ``config`` when not given."""
    if config.app.admin_token:
        raise ConfigError(ADMIN_TOKEN_GONE)
    embed_origins = _check_origins("embed_origins", tuple(config.app.embed_origins)) or ["'none'"]
    cors_origins = _check_origins("cors_origins", tuple(config.app.cors_origins))
    service = service or KnowledgeService(config)
    feedback = open_feedback_store(config)  # created on first use; an old feedback.sqlite3 is imported
    mcp = McpEndpoint(service, MAX_BODY_BYTES)

    watcher = IndexWatcher(service)  # a new index on disk (any server's job, kb ingest) is served

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        watcher.start()
        try:
            async with mcp.lifespan():  # the MCP session manager's task group
                yield
        finally:
            watcher.stop()

    app = FastAPI(
        title=config.app.title,
        summary="Cited answers over the knowledge base: ask, search, documents, feedback; "
                "OpenAI-compatible chat completions under /v1; an MCP server at /mcp.",
        version="1",
        docs_url=None,  # served from this machine by app.docs, not from a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.feedback = feedback
    install_error_handlers(app)
    auth = Auth(config)  # accounts, sessions and keys; the database is opened on first use
    install_auth(app, auth)
    shapes = {OPENAI_PREFIX + "/": openai_error_shape}

    if config.app.require_key or config.app.chat_login:
        # innermost: API keys or a login on /v1, /mcp, /api/ask, /api/search, /api/documents; with
        # chat_login also the chat, /embed and the viewer
        app.add_middleware(AccessGate, auth=auth, routes=lambda: app.routes, shapes=shapes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type", "Authorization"],  # no credentials: cookies stay same-site
        max_age=600,
    )
    # outermost: body limits, closed Gradio file routes, security headers, 405s
    app.add_middleware(Guard, max_body=MAX_BODY_BYTES, frame_ancestors=embed_origins,
                       routes=lambda: app.routes, shapes=shapes,
                       body_limits={"/api/admin/documents": upload_body_limit(config)})
    install_docs(app, config.app.title)
    install_openai_schema(app)
    app.include_router(make_router(service, feedback))
    app.include_router(make_openai_router(service))  # /v1/chat/completions, /v1/models
    app.add_route(MCP_PATH, mcp, include_in_schema=False)  # streamable HTTP (GET, POST, DELETE)
    app.include_router(make_embed_router(service, STATIC_PREFIX, embed_origins))
    app.include_router(make_faq_admin_router(service, STATIC_PREFIX))  # /trainers, /api/admin/faq
    app.include_router(make_accounts_router(config, STATIC_PREFIX))  # /login, /logout, /admin/users
    app.include_router(make_viewer_router(service, STATIC_PREFIX))
    app.include_router(make_documents_router(service, STATIC_PREFIX))  # /admin, /api/admin/documents, /jobs
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="kb-static")

    blocks = build_chat(service, feedback).queue(default_concurrency_limit=CHAT_CONCURRENCY)
    return gr.mount_gradio_app(
        app, blocks, path="/", theme=chat_theme(), css=CHAT_CSS,
        footer_links=[], run_history=False, ssr_mode=False, show_error=False,
    )


def serve(config: Config, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Load the service, then serve until interrupted."""
    app = create_app(config)
    print(f"serving {config.app.title} on http://{host}:{port}/  (API docs: /docs, embed: /embed, "
          f"OpenAI-compatible: /v1, MCP: /mcp{', API key required' if config.app.require_key else ''}"
          f"{', login required for the chat' if config.app.chat_login else ''}; login: /login)")
    uvicorn.run(app, host=host, port=port, log_level="info")
