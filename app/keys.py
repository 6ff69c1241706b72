"""API keys at the door: with ``app.require_key = true``, the integration routes need
``Authorization: Bearer <key>`` with a key of scope ``ask`` or ``admin`` (``kb key add NAME
--scope ask``); without it they are open.

Guarded: ``/v1/*`` (the OpenAI-compatible API), ``/mcp`` (the MCP server), ``/api/ask``,
``/api/search`` and ``/api/documents[/…]``. A missing, unknown or revoked key is 401 with
``WWW-Authenticate: Bearer``, in the OpenAI error shape under ``/v1/`` and as ``{"detail"}``
elsewhere. The key is checked against the database on every request (a revoked key is refused
at once, also by a server that was already running); the lookup runs off the event loop.

Not guarded: the chat page at ``/`` (Gradio), ``/embed`` and the feedback and health routes.
The embeddable page calls ``/api/ask`` from the browser without a key, so a deployment that
turns ``require_key`` on is an API-only one for ``/embed`` and the widget; logins for the chat
come with user accounts (issue 14).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import anyio.to_thread

from kb.faq.auth import bearer_token
from kb.store import KeyStore

log = logging.getLogger(__name__)

GUARDED_EXACT = ("/mcp", "/v1", "/api/ask", "/api/search", "/api/documents")
GUARDED_PREFIXES = ("/mcp/", "/v1/", "/api/documents/")
MISSING = "an API key is required: send 'Authorization: Bearer <key>' (kb key add NAME --scope ask)"
INVALID = "the API key is not valid (unknown, revoked, or without the ask scope)"


def guarded(path: str) -> bool:
    path = path.rstrip("/") or "/"
    return path in GUARDED_EXACT or path.startswith(GUARDED_PREFIXES)


class KeyGate:
    """Pure ASGI; ``shapes`` maps a path prefix to the error body of its API (default
    ``{"detail": message}``)."""

    def __init__(self, app, *, store: KeyStore, shapes: dict[str, Callable[[int, str], dict]] | None = None):
        self.app = app
        self.store = store
        self.shapes = dict(shapes or {})

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or not guarded(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
        if not token:
            await self._reply(scope, send, 401, MISSING)
            return
        try:
            key = await anyio.to_thread.run_sync(self.store.verify, token, "ask")
        except Exception as e:  # noqa: BLE001 - a broken key database is a 503, never a traceback
            log.error("API key check failed: %s", e)
            await self._reply(scope, send, 503, "API keys cannot be checked now (the key database cannot be "
                              "used); see the server log")
            return
        if key is None:
            await self._reply(scope, send, 401, INVALID)
            return
        scope.setdefault("state", {})["api_key"] = key.name
        await self.app(scope, receive, send)

    async def _reply(self, scope, send, status: int, message: str) -> None:
        path = scope.get("path", "")
        shape = next((f for prefix, f in self.shapes.items() if path.startswith(prefix)), None)
        body = json.dumps(shape(status, message) if shape else {"detail": message}, ensure_ascii=False).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="kb"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
