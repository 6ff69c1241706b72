"""Logging in and out, and the admins' users, keys and audit pages: thin adapters over
``kb.store.accounts`` and ``kb.store.keys`` (``app.auth`` decides who may).

- ``GET /login`` (the page, Chinese, the chat's look), ``POST /login`` (its form: ``name``,
  ``password``, ``next``, ``csrf_token``; a wrong password re-shows the page with the error),
  ``GET /logout`` (a confirmation with a button) and ``POST /logout``;
- ``POST /api/auth/login`` (JSON ``{"name", "password"}`` → the account, its CSRF token and
  when the session ends; sets the cookie), ``POST /api/auth/logout``, ``GET /api/auth/me``;
- admins: ``/admin/users`` (the page), ``GET/POST /api/admin/users``, ``PATCH
  /api/admin/users/{name}`` (role, disabled, password), ``GET/POST /api/admin/keys``, ``POST
  /api/admin/keys/{name}/revoke``, ``GET /api/admin/audit``. Every change is in the audit log.

A login is refused with 429 and ``Retry-After`` after too many failures (``LoginLimiter``). The
login form carries its own CSRF token (a cookie of the login page, double-submitted), and a
login whose browser ``Origin`` is another site is refused.

No ``from __future__ import annotations``: FastAPI reads the route signatures.
"""

import html
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from app.auth import (
    COOKIE,
    CSRF_FIELD,
    ROLE_NAMES,
    Auth,
    Forbidden,
    Principal,
    audit,
    auth_of,
    csrf_protect,
    current_principal,
    require_role,
    same_origin,
)
from app.render import fill_template, json_for_html
from kb.store.accounts import ROLES, AccountError, User
from kb.store.keys import SCOPES, DuplicateKey, UnknownKey

STATIC = Path(__file__).resolve().parent / "static"
LOGIN_CSRF_COOKIE = "kb_login_csrf"
MAX_NAME = 64
MAX_PASSWORD = 1024


def page_csp() -> str:
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'")


PAGE_HEADERS = {
    "Content-Security-Policy": page_csp(),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go to after login: never another site (``//host``, ``/\\host``, a scheme)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or any(
            ch in target for ch in "\r\n\t\\"):
        return default
    return target


def home_of(user: User) -> str:
    return {"admin": "/admin", "trainer": "/trainers"}.get(user.role, "/")


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def set_session_cookie(response: Response, request: Request, token: str, hours: float) -> None:
    response.set_cookie(COOKIE, token, max_age=int(hours * 3600), path="/", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https")


class LoginRefused(Exception):
    def __init__(self, status: int, message: str, retry_after: int = 0):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def log_in(auth: Auth, name: str, password: str, address: str, user_agent: str):
    """(token, session) for a right password; ``LoginRefused`` (401, or 429 while limited)."""
    name = (name or "").strip()
    wait = auth.limiter.retry_after(name, address)
    if wait:
        raise LoginRefused(429, f"登录失败次数过多，请 {max(1, (wait + 59) // 60)} 分钟后再试。", wait)
    user = auth.users.authenticate(name, password or "")
    if user is None:
        auth.limiter.failed(name, address)
        raise LoginRefused(401, "账户名或密码不正确。")
    auth.limiter.succeeded(name)
    return auth.users.start_session(user, address=address, user_agent=user_agent)


# -- request bodies --------------------------------------------------------------------------------
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(Strict):
    name: StrictStr = Field(min_length=1, max_length=MAX_NAME)
    password: StrictStr = Field(min_length=1, max_length=MAX_PASSWORD)


class UserCreate(Strict):
    name: StrictStr = Field(min_length=1, max_length=MAX_NAME)
    role: Literal["admin", "trainer", "user"]
    password: StrictStr = Field(min_length=1, max_length=MAX_PASSWORD)


class UserEdit(Strict):
    role: Literal["admin", "trainer", "user"] | None = None
    disabled: StrictBool | None = None
    password: StrictStr | None = Field(default=None, min_length=1, max_length=MAX_PASSWORD)


class KeyCreate(Strict):
    name: StrictStr = Field(min_length=1, max_length=64)
    scope: Literal["ask", "admin"]


assert set(ROLES) == {"admin", "trainer", "user"} and set(SCOPES) == {"ask", "admin"}

UserName = Annotated[str, PathParam(min_length=1, max_length=MAX_NAME)]


def _account_call(fn, *args):
    try:
        return fn(*args)
    except AccountError as e:
        raise HTTPException(404 if type(e).__name__ == "UnknownUser" else 400, str(e)) from None
    except UnknownKey as e:
        raise HTTPException(404, str(e)) from None
    except (DuplicateKey, ValueError) as e:
        raise HTTPException(400 if not isinstance(e, DuplicateKey) else 409, str(e)) from None


def make_accounts_router(config, static_prefix: str) -> APIRouter:
    title = config.app.title
    login_template = STATIC / "login.html"
    logout_template = STATIC / "logout.html"
    users_template = STATIC / "users.html"
    router = APIRouter()
    api = APIRouter(prefix="/api/auth", tags=["accounts"])
    admin = APIRouter(prefix="/api/admin", tags=["users and keys"])
    Admin = Annotated[Principal, Depends(require_role("admin"))]

    def login_page(request: Request, *, status: int = 200, error: str = "", name: str = "", target: str = "",
                   notice: str = "", retry_after: int = 0) -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        body = fill_template(login_template, {
            "title": html.escape(f"登录 · {title}"),
            "app_title": html.escape(title),
            "static": static_prefix,
            "csrf": html.escape(token),
            "next": html.escape(target),
            "name": html.escape(name),
            "error": html.escape(error),
            "error_hidden": "" if error else "hidden",
            "notice": html.escape(notice),
            "notice_hidden": "" if notice else "hidden",
        })
        headers = dict(PAGE_HEADERS)
        if retry_after:
            headers["Retry-After"] = str(retry_after)
        response = HTMLResponse(body, status_code=status, headers=headers)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, path="/login", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    # -- the pages -----------------------------------------------------------------------------
    @router.get("/login", include_in_schema=False)
    async def login_form(request: Request, next: str = "") -> Response:  # noqa: A002
        p = await current_principal(request)
        notice = ""
        if request.query_params.get("out"):
            notice = "你已退出登录。"
        elif p is not None and p.via == "session":
            notice = f"你已以 {p.name}（{ROLE_NAMES.get(p.role, p.role)}）登录；可以换个账户登录。"
        return login_page(request, target=safe_next(next, ""), notice=notice)

    @router.post("/login", include_in_schema=False)
    async def login_submit(request: Request) -> Response:
        auth = auth_of(request)
        form = await request.form()
        field = lambda k: v if isinstance(v := form.get(k), str) else ""  # noqa: E731
        name, password, target = field("name").strip()[:MAX_NAME], field("password")[:MAX_PASSWORD], field("next")
        target = safe_next(target, "")
        sent, expected = field(CSRF_FIELD), request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not same_origin(request) or not sent or not expected or not secrets.compare_digest(sent, expected):
            return login_page(request, status=403, name=name, target=target,
                              error="页面已过期或来自其他网站，请重新输入后登录。")
        if not name or not password:
            return login_page(request, status=400, name=name, target=target, error="请输入账户名和密码。")
        try:
            token, session = await run_in_threadpool(log_in, auth, name, password, client_address(request),
                                                     request.headers.get("user-agent", ""))
        except LoginRefused as e:
            return login_page(request, status=e.status, name=name, target=target, error=e.message,
                              retry_after=e.retry_after)
        response = RedirectResponse(target or home_of(session.user), status_code=303,
                                    headers={"Cache-Control": "no-store"})
        set_session_cookie(response, request, token, auth.session_hours)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    @router.get("/logout", include_in_schema=False)
    async def logout_form(request: Request) -> Response:
        p = await current_principal(request)
        if p is None or p.via != "session":
            return RedirectResponse("/login", status_code=303)
        body = fill_template(logout_template, {
            "title": html.escape(f"退出登录 · {title}"), "app_title": html.escape(title),
            "static": static_prefix, "csrf": html.escape(p.csrf), "name": html.escape(p.name),
        })
        return HTMLResponse(body, headers=PAGE_HEADERS)

    @router.post("/logout", include_in_schema=False, dependencies=[Depends(csrf_protect)])
    async def logout_submit(request: Request) -> Response:
        await run_in_threadpool(auth_of(request).users.end_session, request.cookies.get(COOKIE))
        response = RedirectResponse("/login?out=1", status_code=303)
        clear_session_cookie(response, request)
        return response

    # -- the JSON API ----------------------------------------------------------------------------
    @api.post("/login", summary="Log in: sets the session cookie; returns the account and its CSRF token")
    async def api_login(request: Request, req: LoginRequest) -> JSONResponse:
        auth = auth_of(request)
        if not same_origin(request):
            raise Forbidden("cross-site login refused (its Origin is not this site)")
        try:
            token, session = await run_in_threadpool(log_in, auth, req.name, req.password, client_address(request),
                                                     request.headers.get("user-agent", ""))
        except LoginRefused as e:
            detail = "too many failed logins; try again later" if e.status == 429 else "wrong name or password"
            headers = {"Retry-After": str(e.retry_after)} if e.retry_after else None
            return JSONResponse({"detail": detail}, status_code=e.status, headers=headers)
        from kb.store.accounts import csrf_token

        response = JSONResponse({"user": session.user.to_dict(), "csrf": csrf_token(token),
                                 "expires_at": session.expires_at.isoformat(timespec="seconds")})
        set_session_cookie(response, request, token, auth.session_hours)
        return response

    @api.post("/logout", summary="End this session", status_code=204, dependencies=[Depends(csrf_protect)])
    async def api_logout(request: Request) -> Response:
        await run_in_threadpool(auth_of(request).users.end_session, request.cookies.get(COOKIE))
        response = Response(status_code=204)
        clear_session_cookie(response, request)
        return response

    @api.get("/me", summary="The logged-in account (or the API key) and the session's CSRF token")
    async def me(request: Request) -> dict:
        p = await current_principal(request)
        if p is None:
            from app.auth import AuthRequired

            raise AuthRequired()
        out = {**p.to_dict(), "csrf": p.csrf or None}
        if p.user is not None:
            out["user"] = p.user.to_dict()
        return out

    # -- admins: users, keys, audit -------------------------------------------------------------------
    @admin.get("/users", summary="Accounts")
    def list_users(request: Request, who: Admin) -> list[dict]:
        return [u.to_dict() for u in auth_of(request).users.list()]

    @admin.post("/users", summary="Add an account", status_code=201)
    def add_user(request: Request, who: Admin, req: UserCreate) -> dict:
        auth = auth_of(request)
        user = _account_call(auth.users.add, req.name.strip(), req.role, req.password)
        audit(auth.db, who, "user.add", user.name, {"role": user.role})
        return user.to_dict()

    @admin.patch("/users/{name}", summary="Change an account's role, disable or enable it, reset its password")
    def edit_user(request: Request, who: Admin, name: UserName, req: UserEdit) -> dict:
        auth = auth_of(request)
        users = auth.users
        user = _account_call(users.get, name)
        if req.role is None and req.disabled is None and req.password is None:
            raise HTTPException(400, "nothing to change: give role, disabled or password")
        losing_admin = user.role == "admin" and not user.disabled and (
            req.disabled or (req.role is not None and req.role != "admin"))
        if losing_admin and users.count("admin") <= 1:
            raise HTTPException(400, "this is the last active admin: add another admin first")
        if req.password is not None:
            user = _account_call(users.set_password, name, req.password)
            audit(auth.db, who, "user.passwd", name)
        if req.role is not None and req.role != user.role:
            old = user.role
            user = _account_call(users.set_role, name, req.role)
            audit(auth.db, who, "user.role", name, {"from": old, "to": req.role})
        if req.disabled is not None and req.disabled != user.disabled:
            user = _account_call(users.set_disabled, name, req.disabled)
            audit(auth.db, who, "user.disable" if req.disabled else "user.enable", name)
        return user.to_dict()

    @admin.get("/keys", summary="API keys (never the keys themselves)")
    def list_keys(request: Request, who: Admin) -> list[dict]:
        return [k.to_dict() for k in auth_of(request).keys.list()]

    @admin.post("/keys", summary="Create an API key: the key is in this answer only", status_code=201)
    def add_key(request: Request, who: Admin, req: KeyCreate) -> JSONResponse:
        auth = auth_of(request)
        token = _account_call(auth.keys.add, req.name, req.scope)
        audit(auth.db, who, "key.add", req.name, {"scope": req.scope})
        return JSONResponse({**auth.keys.get(req.name).to_dict(), "key": token}, status_code=201,
                            headers={"Cache-Control": "no-store"})

    @admin.post("/keys/{name}/revoke", summary="Revoke an API key (refused from the next request on)")
    def revoke_key(request: Request, who: Admin, name: Annotated[str, PathParam(min_length=1, max_length=64)]) -> dict:
        auth = auth_of(request)
        key = _account_call(auth.keys.revoke, name)
        audit(auth.db, who, "key.revoke", name)
        return key.to_dict()

    @admin.get("/audit", summary="The audit log of admin actions, newest first")
    def audit_log(
        request: Request, who: Admin,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
        before: Annotated[int | None, Query(ge=1, description="entries with a smaller id (paging)")] = None,
        action: Annotated[str | None, Query(max_length=64)] = None,
        actor: Annotated[str | None, Query(max_length=100)] = None,
    ) -> list[dict]:
        from kb.store.accounts import audit_entries

        return audit_entries(auth_of(request).db, limit=limit, before_id=before, action=action, actor=actor)

    @router.get("/admin/users", include_in_schema=False)
    def users_page(request: Request, who: Admin) -> HTMLResponse:
        settings = {"title": title, "me": who.name, "csrf": who.csrf, "roles": list(ROLES),
                    "roleNames": ROLE_NAMES, "scopes": list(SCOPES),
                    "now": datetime.now(UTC).isoformat(timespec="seconds")}
        body = fill_template(users_template, {
            "title": html.escape(f"用户与密钥 · {title}"), "static": static_prefix,
            "config": json_for_html(settings),
        })
        return HTMLResponse(body, headers=PAGE_HEADERS)

    router.include_router(api)
    router.include_router(admin)
    return router
