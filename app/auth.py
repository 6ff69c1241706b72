"""Who is asking, for the web application: accounts' sessions (cookies) and API keys (bearer),
as FastAPI dependencies for the routes, and the audit log.

Use in a router::

    from app.auth import audit, csrf_protect, current_user, require_role

    @router.post("/api/admin/documents")
    def upload(who: Annotated[Principal, Depends(require_role("admin"))], ...):
        ...
        audit(request, who, "document.upload", name, {"bytes": size})

- ``current_user(request) -> User | None``: the logged-in account (session cookie), else None.
- ``current_principal(request) -> Principal | None``: that, or the API key of an
  ``Authorization: Bearer`` header.
- ``require_role(*roles)``: a dependency returning the ``Principal``. A session whose account
  has one of ``roles``, or an API key of scope ``admin`` (accepted wherever ``"admin"`` is one of
  the roles); no login (or a bad, expired or revoked one) is 401 and a page (a GET outside
  ``/api/``) redirects to ``/login?next=…`` instead; the wrong role or an ``ask`` key is 403. A
  state-changing request (POST, PUT, PATCH, DELETE) made with the session cookie must also pass
  ``csrf_protect`` (it is checked here, so routes need not add it).
- ``require_ask_access``: the chat's rule: a session (any role) or an ``ask``/``admin`` key when
  ``app.chat_login`` or ``app.require_key`` is on; else anyone (returns None for nobody).
- ``csrf_protect``: for a cookie-authenticated POST/PUT/PATCH/DELETE: the session's CSRF token in
  the ``X-CSRF-Token`` header (or the form field ``csrf_token``), and an ``Origin`` (else
  ``Referer``) of this very site when the browser sends one. Requests with a bearer key are
  exempt (browsers do not add that header cross-site). Refusal: 403.
- ``audit(target_db, actor, action, target, detail)``: one row in the audit log.

Pages get the CSRF token from ``GET /api/auth/me`` (``csrf``) or from their own HTML (the
server fills it in); the cookie itself is HttpOnly, SameSite=Lax, Secure over https.

No ``from __future__ import annotations``: FastAPI reads the dependency signatures.
"""

import hmac
import logging
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from kb.store.accounts import ROLES, LoginLimiter, SessionInfo, User, UserStore, csrf_token
from kb.store.accounts import audit as _audit
from kb.store.db import Database, StoreError
from kb.store.keys import Key, KeyStore

log = logging.getLogger(__name__)

COOKIE = "kb_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_STATE = "kb_principal"  # request.state / scope["state"] key of the resolved principal
_NOBODY = object()

__all__ = ["COOKIE", "Auth", "Principal", "User", "ROLES", "AuthRequired", "Forbidden", "audit",
           "csrf_protect", "current_principal", "current_user", "install_auth", "require_ask_access",
           "require_role"]


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: an account's session (``via == "session"``) or an API key
    (``via == "key"``; ``role`` is then ``admin`` for an admin-scope key, ``ask`` otherwise)."""

    name: str
    role: str
    via: str  # "session" | "key"
    user: User | None = None
    key: Key | None = None
    csrf: str = ""  # the session's CSRF token ("" for a key)

    @property
    def actor(self) -> str:
        """How it is written in the audit log and the FAQ edit history."""
        return self.name if self.via == "session" else f"key:{self.name}"

    def to_dict(self) -> dict:
        return {"name": self.name, "role": self.role, "via": self.via}


class AuthRequired(HTTPException):
    """401: no (valid) login; pages are redirected to /login instead."""

    def __init__(self, detail: str = "login required: sign in at /login, or send 'Authorization: Bearer <key>'"):
        super().__init__(401, detail, headers={"WWW-Authenticate": 'Bearer realm="kb"'})


class Forbidden(HTTPException):
    def __init__(self, detail: str):
        super().__init__(403, detail)


class AuthUnavailable(HTTPException):
    def __init__(self, detail: str):
        super().__init__(503, detail)


class Auth:
    """The accounts side of one application (``app.state.auth``): its database (opened on first
    use; a database that cannot be opened makes logins and admin routes 503, naming it, and the
    public chat goes on), the user and key stores and the login limiter."""

    def __init__(self, config: Any, database: Database | None = None):
        self.config = config
        self.session_hours = float(config.app.session_hours)
        self.chat_login = bool(config.app.chat_login)
        self.require_key = bool(config.app.require_key)
        self.limiter = LoginLimiter(max_failures=config.app.login_max_failures)
        self._db = database
        self._users: UserStore | None = None
        self._keys: KeyStore | None = None
        self._lock = threading.Lock()

    @property
    def db(self) -> Database:
        if self._db is None:
            with self._lock:
                if self._db is None:
                    from kb.store import open_database

                    try:
                        self._db = open_database(self.config)
                    except StoreError as e:
                        log.error("accounts unavailable: %s", e)
                        raise AuthUnavailable(f"accounts cannot be used now: {e}") from None
        return self._db

    @property
    def users(self) -> UserStore:
        if self._users is None:
            self._users = UserStore(self.db, self.session_hours)
        return self._users

    @property
    def keys(self) -> KeyStore:
        if self._keys is None:
            self._keys = KeyStore(self.db)
        return self._keys

    # -- resolving (blocking: run off the event loop) ---------------------------------------------
    def from_session(self, token: str | None) -> Principal | None:
        if not token:
            return None
        info: SessionInfo | None = self.users.session(token)
        if info is None:
            return None
        u = info.user
        return Principal(u.name, u.role, "session", user=u, csrf=csrf_token(token))

    def from_key(self, token: str) -> Principal | None:
        key = self.keys.verify(token, "ask")
        if key is None:
            return None
        return Principal(key.name, "admin" if key.scope == "admin" else "ask", "key", key=key)

    def resolve(self, authorization: str | None, cookie: str | None) -> Principal | None:
        """A bearer header wins (a bad one is nobody, whatever the cookie); else the cookie."""
        token = bearer_token(authorization)
        if token or (authorization or "").strip():
            return self.from_key(token) if token else None
        return self.from_session(cookie)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; "" for any other scheme."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def auth_of(request: Request) -> Auth:
    auth = getattr(request.app.state, "auth", None)
    if auth is None:
        raise AuthUnavailable("accounts are not set up in this application")
    return auth


async def current_principal(request: Request) -> Principal | None:
    """The session or API key of this request (looked up once per request)."""
    cached = getattr(request.state, _STATE, _NOBODY)
    if cached is not _NOBODY:
        return cached
    auth = auth_of(request)
    authorization = request.headers.get("authorization")
    cookie = request.cookies.get(COOKIE)
    principal = None
    if authorization or cookie:
        try:
            principal = await run_in_threadpool(auth.resolve, authorization, cookie)
        except HTTPException:
            raise
        except Exception as e:  # noqa: BLE001 - a broken database is a 503, never a traceback
            log.error("login check failed: %s", e)
            raise AuthUnavailable("logins cannot be checked now (the account database cannot be used); "
                                  "see the server log") from None
    setattr(request.state, _STATE, principal)
    return principal


async def current_user(request: Request) -> User | None:
    """The logged-in account of this request (its session cookie), else None."""
    p = await current_principal(request)
    return p.user if p is not None and p.via == "session" else None


def same_origin(request: Request) -> bool:
    """The browser's ``Origin`` (else ``Referer``), when it sends one, is this site."""
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if not referer:
            return True  # not a browser's cross-site request (they send Origin on POST)
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    host = request.headers.get("host", "")
    own = f"{request.url.scheme}://{host}"
    return bool(host) and origin.lower() == own.lower()


async def csrf_protect(request: Request) -> None:
    """Refuses (403) a state-changing request made with the session cookie that lacks the
    session's CSRF token or comes from another site."""
    if request.method not in UNSAFE:
        return
    p = await current_principal(request)
    if p is None or p.via != "session":
        return  # no cookie login (a bearer key, or nobody: the route's own check decides)
    if not same_origin(request):
        raise Forbidden("cross-site request refused (its Origin is not this site)")
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else ""
    if not sent or not hmac.compare_digest(sent.encode(), p.csrf.encode()):
        raise Forbidden("CSRF token missing or wrong: reload the page and try again")


def require_role(*roles: str):
    """A dependency admitting a session of one of ``roles``, or an admin-scope key when
    ``"admin"`` is one of them (or when ``roles`` is empty: any logged-in account)."""
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise ValueError(f"unknown role {bad[0]!r}: use {', '.join(ROLES)}")
    wanted = frozenset(roles)

    async def dependency(request: Request) -> Principal:
        p = await current_principal(request)
        if p is None:
            raise AuthRequired()
        if p.via == "key":
            if p.role != "admin" or (wanted and "admin" not in wanted):
                raise Forbidden(f"the API key {p.name!r} has scope {p.key.scope if p.key else p.role}; "
                                "this needs an admin-scope key (kb key add NAME --scope admin)")
            return p
        if wanted and p.role not in wanted:
            raise Forbidden(f"your account ({p.name}, role {p.role}) may not do this; it needs the role "
                            + " or ".join(sorted(wanted)))
        await csrf_protect(request)
        return p

    dependency.__name__ = f"require_role_{'_'.join(roles) or 'any'}"
    return dependency


async def require_ask_access(request: Request) -> Principal | None:
    """The chat's and the ask API's rule (also enforced at the door by ``app.keys.AccessGate``)."""
    auth = auth_of(request)
    p = await current_principal(request)
    if (auth.chat_login or auth.require_key) and p is None:
        raise AuthRequired("login required: sign in at /login, or send 'Authorization: Bearer <key>' "
                           "(kb key add NAME --scope ask)")
    return p


def audit(target_db: Any, actor: Any, action: str, target: str = "", detail: Any = None) -> None:
    """One audit-log row: ``target_db`` a SQLAlchemy ``Session`` (written with its transaction),
    an ``Engine``, a ``kb.store.Database``, or a ``Request``/``FastAPI`` app (its accounts'
    database); ``actor`` a ``Principal``, ``User`` or name."""
    if isinstance(target_db, Request):
        target_db = auth_of(target_db).db
    elif isinstance(target_db, FastAPI):
        target_db = target_db.state.auth.db
    _audit(target_db, actor, action, target, detail)


# -- errors: pages are sent to the login page, APIs get JSON ----------------------------------------
def is_page(request: Request) -> bool:
    path = request.url.path
    return request.method in ("GET", "HEAD") and not path.startswith(("/api/", "/v1", "/mcp"))


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?next=" + quote(target, safe="")


FORBIDDEN_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>没有权限</title>
<link rel="stylesheet" href="/kb-static/login.css"></head><body class="lg-body"><main class="lg-main">
<section class="lg-card"><h1>没有权限</h1><p class="lg-muted">当前账户（{name}，{role}）无权访问此页面。</p>
<p><a href="/">返回问答</a> · <a href="/logout">换个账户登录</a></p></section></main></body></html>"""

ROLE_NAMES = {"admin": "管理员", "trainer": "培训师", "user": "普通用户", "ask": "API 密钥"}


def install_auth(app: FastAPI, auth: Auth) -> None:
    """``app.state.auth`` and the handlers that turn a missing login on a page into a redirect."""
    import html

    app.state.auth = auth

    @app.exception_handler(AuthRequired)
    async def _login(request: Request, exc: AuthRequired):
        if is_page(request):
            return RedirectResponse(login_url(request), status_code=303, headers={"Cache-Control": "no-store"})
        return JSONResponse({"detail": exc.detail}, status_code=401, headers=exc.headers)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden):
        p = getattr(request.state, _STATE, None)
        if is_page(request) and isinstance(p, Principal):
            body = FORBIDDEN_PAGE.format(name=html.escape(p.name), role=ROLE_NAMES.get(p.role, p.role))
            return HTMLResponse(body, status_code=403, headers={"Cache-Control": "no-store"})
        return JSONResponse({"detail": exc.detail}, status_code=403)
