"""Who may use the public side, at the door (pure ASGI, before FastAPI and Gradio).

**API keys** (``app.require_key = true``): the integration routes need ``Authorization: Bearer
<key>`` with a key of scope ``ask`` or ``admin`` (``kb key add NAME --scope ask``), or a
logged-in session (so that ``/embed`` and the pages' own calls keep working for people who
signed in at ``/login``). Guarded: ``/v1/*`` (the OpenAI-compatible API), ``/mcp`` (the MCP
server), ``/api/ask``, ``/api/search`` and ``/api/documents[/…]``.

**Chat login** (``app.chat_login = true``): those routes as above (whatever ``require_key``
says), and the pages: the Gradio chat at ``/`` (every path the application's own routes do not
have is Gradio's), ``/embed``, the viewer ``/view/…`` and ``POST /api/feedback`` need a session
or a key; a page asked for without one is redirected to ``/login?next=…``.

A missing, unknown or revoked key is 401 with ``WWW-Authenticate: Bearer``, in the OpenAI error
shape under ``/v1/`` and as ``{"detail"}`` elsewhere; a bearer header, when sent, is what is
checked (a bad key is refused even beside a good cookie). Keys and sessions are checked against
the database on every request (a revoked key or an ended session is refused at once, also by a
server that was already running); the lookups run off the event loop, and the session found is
kept for the route (``app.auth.current_principal`` does not look it up again).

Always open: ``/login``, ``/logout``, ``/api/auth/*``, ``/api/health``, ``/widget.js``, the
static files, ``/docs``; the admin pages and APIs check their own roles (``app.auth``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from urllib.parse import quote

import anyio.to_thread
from starlette.routing import Match, Mount

log = logging.getLogger(__name__)

GUARDED_EXACT = ("/mcp", "/v1", "/api/ask", "/api/search", "/api/documents")
GUARDED_PREFIXES = ("/mcp/", "/v1/", "/api/documents/")
# own routes that are part of the chat (with chat_login)
CHAT_EXACT = ("/embed", "/api/feedback")
CHAT_PREFIXES = ("/view/",)
# never gated here: logins, health, static files, docs; admin routes check roles themselves
OPEN_PREFIXES = ("/login", "/logout", "/api/auth/", "/api/health", "/kb-static/", "/widget.js",
                 "/docs", "/redoc", "/openapi.json", "/trainers", "/admin", "/api/admin/")
MISSING = "an API key is required: send 'Authorization: Bearer <key>' (kb key add NAME --scope ask)"
INVALID = "the API key is not valid (unknown, revoked, or without the ask scope)"
LOGIN = "login required: sign in at /login (or send 'Authorization: Bearer <key>')"
STATE = "kb_principal"  # app.auth reads the principal found here


def guarded(path: str) -> bool:
    path = path.rstrip("/") or "/"
    return path in GUARDED_EXACT or path.startswith(GUARDED_PREFIXES)


def _cookie(headers: dict, name: str) -> str | None:
    from http.cookies import CookieError, SimpleCookie

    raw = headers.get(b"cookie", b"").decode("latin-1")
    if not raw:
        return None
    jar = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None


class AccessGate:
    """Pure ASGI; ``auth`` is the application's ``app.auth.Auth``; ``routes`` its own routes
    (what is not one of them is the Gradio chat); ``shapes`` maps a path prefix to the error
    body of its API (default ``{"detail": message}``)."""

    def __init__(self, app, *, auth, routes: Callable[[], list] | None = None,
                 shapes: dict[str, Callable[[int, str], dict]] | None = None):
        self.app = app
        self.auth = auth
        self.routes = routes or (lambda: [])
        self.shapes = dict(shapes or {})
        self.keys_required = bool(auth.require_key or auth.chat_login)

    def _chat(self, scope) -> bool:
        path = scope.get("path", "")
        if path.startswith(OPEN_PREFIXES) or path == "/favicon.ico":
            return False
        if path in CHAT_EXACT or path.startswith(CHAT_PREFIXES):
            return not (path == "/api/feedback" and scope["method"] == "GET")  # GET: trainers' own check
        own = [r for r in self.routes() if not isinstance(r, Mount)]
        return not any(r.matches({**scope, "method": m})[0] is Match.FULL for r in own
                       for m in ("GET", "POST", "PUT", "PATCH", "DELETE"))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        api = self.keys_required and guarded(path)
        page = not api and self.auth.chat_login and self._chat(scope)
        if not (api or page):
            await self.app(scope, receive, send)
            return
        from app.auth import COOKIE, bearer_token

        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        cookie = _cookie(headers, COOKIE)
        if api and not authorization.strip() and not cookie:
            await self._reply(scope, send, 401, MISSING if not self.auth.chat_login else LOGIN)
            return
        try:
            principal = await anyio.to_thread.run_sync(self.auth.resolve, authorization, cookie)
        except Exception as e:  # noqa: BLE001 - a broken key database is a 503, never a traceback
            log.error("API key or login check failed: %s", e)
            await self._reply(scope, send, 503, "API keys and logins cannot be checked now (the account "
                              "database cannot be used); see the server log")
            return
        if principal is None:
            if page and scope["method"] in ("GET", "HEAD") and not path.startswith(("/api/", "/gradio_api/")):
                await self._redirect(scope, send)
                return
            bad_key = bool(bearer_token(authorization))
            await self._reply(scope, send, 401, INVALID if bad_key else (LOGIN if page or self.auth.chat_login
                                                                        else MISSING))
            return
        scope.setdefault("state", {})[STATE] = principal
        if principal.via == "key":
            scope["state"]["api_key"] = principal.name
        await self.app(scope, receive, send)

    async def _redirect(self, scope, send) -> None:
        target = scope.get("path", "/")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        location = "/login?next=" + quote(target, safe="")
        await send({"type": "http.response.start", "status": 303, "headers": [
            (b"location", location.encode("latin-1")), (b"cache-control", b"no-store"),
            (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    async def _reply(self, scope, send, status: int, message: str) -> None:
        path = scope.get("path", "")
        shape = next((f for prefix, f in self.shapes.items() if path.startswith(prefix)), None)
        body = json.dumps(shape(status, message) if shape else {"detail": message}, ensure_ascii=False).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="kb"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
