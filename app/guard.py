"""The outermost layer of the web application (pure ASGI, in front of FastAPI and Gradio):

- **request bodies are bounded** on every route and for every transfer encoding: a declared
  ``Content-Length`` over the limit is refused at once, and a chunked body is read up to the
  limit and refused (413) as soon as it passes it, before the application sees any of it;
- **Gradio's file and upload routes are closed**: the chat produces no files and accepts none,
  so ``/gradio_api/file=…``, ``/gradio_api/upload`` and the other routes that read, fetch or
  store files (and Gradio's duplicate function-call API) answer 404;
- **security headers** on every response: ``nosniff`` everywhere, and pages without their own
  Content-Security-Policy (the Gradio chat at ``/``) get one that loads nothing from outside
  and may be framed only by ``embed_origins``;
- **a wrong method on a known route is 405** with ``Allow`` (the Gradio mount at ``/`` would
  otherwise answer 404 for it);
- **owned prefixes** (``/v1/``, the OpenAI-compatible API) are the application's own: a path
  under one that no route has is 404 here instead of falling through to the Gradio mount, and
  the errors this layer gives there are in that API's error shape (``shapes``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable, Iterable

from starlette.routing import Match, Mount

Scope = dict
Message = dict
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Gradio routes the chat never uses, each of which reads, fetches or stores files, or runs the
# chat's functions outside its page (the page itself uses /gradio_api/queue/*).
CLOSED_GRADIO = re.compile(
    r"^/gradio_api/(?:file[=/]|proxy=|upload|stream/|deep_link|dev/|run-history|runs\b"
    r"|custom_component/|call/|run/|api/|mcp\b)"
)


def chat_csp(frame_ancestors: Iterable[str]) -> str:
    """The chat page's policy: Gradio's page needs inline scripts, styles and evaluated
    templates of its own (its HTML components), but nothing may load from or talk to another
    host, and only ``frame_ancestors`` may frame it. Answer text is escaped and inert
    (``app.render``), so no script can come from a document or a question."""
    return (
        "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' blob:; "
        "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; "
        f"form-action 'self'; frame-ancestors {' '.join(frame_ancestors)}"
    )


Shape = Callable[[int, str], dict]  # (status, message) -> the JSON body of an error


def detail_shape(status: int, detail: str) -> dict:
    return {"detail": detail}


def _json(status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None,
          shape: Shape = detail_shape) -> tuple[dict, dict]:
    body = json.dumps(shape(status, detail), ensure_ascii=False).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-content-type-options", b"nosniff"),
            *(headers or []),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class Guard:
    """Wraps the whole application; ``routes`` are the application's own (for 405)."""

    def __init__(self, app: ASGIApp, *, max_body: int, frame_ancestors: list[str],
                 routes: Callable[[], list] | None = None, shapes: dict[str, Shape] | None = None,
                 body_limits: dict[str, int] | None = None):
        self.app = app
        self.max_body = max_body
        self.body_limits = dict(body_limits or {})  # path prefix -> its own limit (document uploads)
        self.csp = chat_csp(frame_ancestors).encode()
        self.routes = routes or (lambda: [])
        self.shapes = dict(shapes or {})  # owned path prefix -> error shape

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        shape = next((f for prefix, f in self.shapes.items() if path.startswith(prefix)), None)
        reply = functools.partial(self._reply, send, shape=shape or detail_shape)
        if CLOSED_GRADIO.match(path):
            await reply(404, "not found")
            return
        allowed = [] if scope["method"] in ("OPTIONS", "HEAD") else self._other_methods(scope)
        if allowed:
            await reply(405, f"method {scope['method']} not allowed; use {', '.join(allowed)}",
                        [(b"allow", ", ".join(allowed).encode())])
            return
        if shape is not None and not self._known_path(scope):
            await reply(404, f"no such endpoint: {path}")
            return
        headers = dict(scope.get("headers") or [])
        limit = next((n for prefix, n in self.body_limits.items() if path.startswith(prefix)), self.max_body)
        declared = headers.get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > limit:
            await reply(413, f"request body over {limit:,} bytes")
            return
        if scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
            body, more_disconnect = await self._read_body(receive, limit)
            if body is None:
                await reply(413, f"request body over {limit:,} bytes")
                return
            receive = _replay(body, receive, more_disconnect)
        await self.app(scope, receive, self._with_headers(send))

    async def _read_body(self, receive: Receive, limit: int) -> tuple[bytes | None, bool]:
        """The whole body, or None once it passes the limit (the rest is not read)."""
        parts, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(parts), True
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None, False
            parts.append(chunk)
            if not message.get("more_body"):
                return b"".join(parts), False

    def _other_methods(self, scope: Scope) -> list[str]:
        """Methods the application's own routes (not its mounts) accept on this path, when they
        do not accept the request's method; empty when one does, or when none has the path."""
        routes = [r for r in self.routes() if not isinstance(r, Mount)]
        if _matches(routes, scope):
            return []
        return [m for m in _METHODS if m != scope["method"] and _matches(routes, {**scope, "method": m})]

    def _known_path(self, scope: Scope) -> bool:
        """Whether one of the application's own routes (not its mounts) has this path, for any
        method."""
        routes = [r for r in self.routes() if not isinstance(r, Mount)]
        return any(_matches(routes, {**scope, "method": m}) for m in _METHODS)

    def _with_headers(self, send: Send) -> Send:
        csp = self.csp

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {k.lower() for k, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if ctype.startswith(b"text/html") and b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", csp))
                    headers.append((b"referrer-policy", b"same-origin"))
                message = {**message, "headers": headers}
            await send(message)

        return wrapped

    @staticmethod
    async def _reply(send: Send, status: int, detail: str,
                     headers: list[tuple[bytes, bytes]] | None = None, *, shape: Shape = detail_shape) -> None:
        start, body = _json(status, detail, headers, shape)
        await send(start)
        await send(body)


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _matches(routes: list, scope: Scope) -> bool:
    return any(route.matches(scope)[0] is Match.FULL for route in routes)


def _replay(body: bytes, receive: Receive, disconnected: bool) -> Receive:
    """A ``receive`` that gives the already-read body once, then waits on the real one (for the
    disconnect that streaming responses listen for)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if disconnected:
            return {"type": "http.disconnect"}
        return await receive()

    return replay
