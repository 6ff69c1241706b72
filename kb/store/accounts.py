"""Accounts, their sessions, login rate limits and the audit log, over ``kb.store``'s database.

**Roles.** ``admin`` (documents, users, settings, API keys), ``trainer`` (the FAQ work) and
``user`` (only the chat, for deployments that set ``app.chat_login``). A route names the roles
it admits; admin does not silently include trainer's.

**Passwords** are hashed with argon2id (``argon2.PasswordHasher``, its default parameters: 64
MiB, 3 passes), salted per hash; a hash made with older parameters is re-hashed at the next
successful login. An unknown name is checked against a dummy hash, so a miss costs what a hit
costs and the timing does not tell which names exist.

**Sessions.** A login makes a 256-bit random token (the cookie), stored only as its SHA-256 (as
API keys: ``kb.store.keys`` says why that suffices for random tokens). It ends at its expiry
(``app.session_hours``), at logout, and for every session of an account when the account is
disabled or its password is changed. The CSRF token of a session is derived from its token
(``csrf_token``), so nothing more is stored and it changes with every login.

**Rate limit.** ``LoginLimiter``: after ``max_failures`` failed logins for one account, or
``4 × max_failures`` from one address, within ``window_s``, further attempts are refused
(``retry_after`` seconds) without checking the password. Kept in the server's memory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kb.store.db import Database
from kb.store.models import AuditEntry, UserSession
from kb.store.models import User as UserRow

ROLES = ("admin", "trainer", "user")
NAME = re.compile(r"[\w.@-]{1,64}")  # letters (Chinese too), digits, . _ - @
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_TOKEN_CHARS = 200


class AccountError(ValueError):
    """A refused account operation; the message says why and what to do."""


class UnknownUser(AccountError):
    pass


class DuplicateUser(AccountError):
    pass


def _now() -> datetime:
    return datetime.now(UTC)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: derived from its (secret) cookie token, so only a page that
    was given it by the server knows it."""
    return hashlib.sha256(b"kb-csrf\0" + session_token.encode("utf-8", "surrogatepass")).hexdigest()


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise AccountError(f"user name {name!r}: use 1 to 64 letters, digits, '.', '_', '-' or '@'")
    return name


def check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password must have at most {MAX_PASSWORD} characters")
    return password


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"role {role!r}: use one of {', '.join(ROLES)}")
    return role


@dataclass(frozen=True)
class User:
    """An account as the application sees it: never its password hash."""

    id: int
    name: str
    role: str
    created_at: datetime
    last_login_at: datetime | None
    disabled_at: datetime | None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    def to_dict(self) -> dict:
        iso = lambda t: t.isoformat(timespec="seconds") if t else None  # noqa: E731
        return {"id": self.id, "name": self.name, "role": self.role, "created_at": iso(self.created_at),
                "last_login_at": iso(self.last_login_at), "disabled_at": iso(self.disabled_at),
                "disabled": self.disabled}

    @classmethod
    def of(cls, row: UserRow) -> User:
        return cls(row.id, row.name, row.role, row.created_at, row.last_login_at, row.disabled_at)


@dataclass(frozen=True)
class SessionInfo:
    """A live session: its user and when it ends."""

    id: int
    user: User
    expires_at: datetime


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


class UserStore:
    """Accounts and sessions. ``session_hours``: how long a login lasts."""

    def __init__(self, db: Database, session_hours: float = 12.0):
        self.db = db
        self.session_hours = float(session_hours)
        self._ph = _hasher()
        self._dummy = self._ph.hash("no such user, a dummy to compare against")

    # -- accounts ---------------------------------------------------------------------------------
    def add(self, name: str, role: str, password: str) -> User:
        check_name(name)
        check_role(role)
        check_password(password)
        now = _now()
        try:
            with self.db.session() as s:
                if s.scalar(select(UserRow).where(UserRow.name == name)) is not None:
                    raise DuplicateUser(f"a user named {name!r} exists (kb user passwd {name} sets a new password)")
                row = UserRow(name=name, role=role, password_hash=self._ph.hash(password), created_at=now,
                              password_changed_at=now)
                s.add(row)
                s.flush()
                return User.of(row)
        except IntegrityError:
            raise DuplicateUser(f"a user named {name!r} exists") from None

    def list(self) -> list[User]:
        with self.db.session() as s:
            return [User.of(r) for r in s.scalars(select(UserRow).order_by(UserRow.name))]

    def get(self, name: str) -> User:
        with self.db.session() as s:
            return User.of(self._row(s, name))

    def count(self, role: str | None = None, active: bool = True) -> int:
        return sum(1 for u in self.list() if (role is None or u.role == role) and (not active or not u.disabled))

    @staticmethod
    def _row(s: Session, name: str) -> UserRow:
        row = s.scalar(select(UserRow).where(UserRow.name == name))
        if row is None:
            raise UnknownUser(f"no user named {name!r} (see kb user list)")
        return row

    def set_password(self, name: str, password: str) -> User:
        """A new password; every session of the account ends."""
        check_password(password)
        with self.db.session() as s:
            row = self._row(s, name)
            row.password_hash = self._ph.hash(password)
            row.password_changed_at = _now()
            self._end_sessions(s, row.id)
            return User.of(row)

    def set_disabled(self, name: str, disabled: bool) -> User:
        """Disable (every session ends, no login) or enable an account."""
        with self.db.session() as s:
            row = self._row(s, name)
            if disabled and row.disabled_at is None:
                row.disabled_at = _now()
                self._end_sessions(s, row.id)
            elif not disabled:
                row.disabled_at = None
            return User.of(row)

    def set_role(self, name: str, role: str) -> User:
        check_role(role)
        with self.db.session() as s:
            row = self._row(s, name)
            row.role = role
            return User.of(row)

    def authenticate(self, name: str, password: str) -> User | None:
        """The account when ``password`` is its password and it is enabled; else None."""
        if not isinstance(name, str) or not isinstance(password, str) or len(password) > MAX_PASSWORD:
            return None
        from argon2.exceptions import InvalidHashError, VerificationError

        with self.db.session() as s:
            row = s.scalar(select(UserRow).where(UserRow.name == name)) if NAME.fullmatch(name) else None
            try:
                self._ph.verify(row.password_hash if row is not None else self._dummy, password)
            except (VerificationError, InvalidHashError):
                return None
            if row is None or row.disabled_at is not None:
                return None
            if self._ph.check_needs_rehash(row.password_hash):
                row.password_hash = self._ph.hash(password)
            row.last_login_at = _now()
            return User.of(row)

    # -- sessions ---------------------------------------------------------------------------------
    def start_session(self, user: User, address: str = "", user_agent: str = "") -> tuple[str, SessionInfo]:
        """A new session for ``user``: (the cookie token, shown only now; the session)."""
        token = secrets.token_urlsafe(32)
        now = _now()
        with self.db.session() as s:
            row = UserSession(user_id=user.id, token_hash=token_hash(token), created_at=now,
                              expires_at=now + timedelta(hours=self.session_hours), address=address[:64],
                              user_agent=user_agent[:200])
            s.add(row)
            s.flush()
            return token, SessionInfo(row.id, user, row.expires_at)

    def session(self, token: str | None) -> SessionInfo | None:
        """The live session of a cookie token: not expired, not ended, its account enabled."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            return None
        digest = token_hash(token)
        now = _now()
        with self.db.session() as s:
            found = s.execute(select(UserSession, UserRow).join(UserRow, UserRow.id == UserSession.user_id)
                              .where(UserSession.token_hash == digest)).first()
            if found is None:
                return None
            sess, row = found
            if not hmac.compare_digest(sess.token_hash, digest):
                return None
            if sess.revoked_at is not None or sess.expires_at <= now or row.disabled_at is not None:
                return None
            return SessionInfo(sess.id, User.of(row), sess.expires_at)

    def end_session(self, token: str | None) -> bool:
        """Logout: the session of ``token`` ends (True when there was a live one)."""
        if not isinstance(token, str) or not token:
            return False
        with self.db.session() as s:
            result = s.execute(update(UserSession).where(UserSession.token_hash == token_hash(token),
                                                         UserSession.revoked_at.is_(None))
                               .values(revoked_at=_now()))
            return bool(result.rowcount)

    def expire_session(self, token: str, when: datetime | None = None) -> None:
        """Move a session's expiry (tests and admins: ``when`` default now)."""
        with self.db.session() as s:
            s.execute(update(UserSession).where(UserSession.token_hash == token_hash(token))
                      .values(expires_at=when or _now()))

    @staticmethod
    def _end_sessions(s: Session, user_id: int) -> None:
        s.execute(update(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
                  .values(revoked_at=_now()))


class LoginLimiter:
    """Failed logins counted per account and per client address in a sliding window."""

    def __init__(self, max_failures: int = 5, window_s: float = 600.0, address_factor: int = 4,
                 clock=time.monotonic):
        self.max_failures = max(1, int(max_failures))
        self.window_s = float(window_s)
        self.address_max = self.max_failures * max(1, int(address_factor))
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and now - q[0] >= self.window_s:
            q.popleft()
        return q

    def retry_after(self, name: str, address: str) -> int:
        """Seconds until a login for ``name`` from ``address`` may be tried again (0: now)."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key, limit in ((f"u:{name}", self.max_failures), (f"a:{address}", self.address_max)):
                q = self._recent(key, now)
                if len(q) >= limit:
                    wait = max(wait, self.window_s - (now - q[len(q) - limit]))
        return int(wait) + (1 if wait > int(wait) else 0)

    def failed(self, name: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            for key in (f"u:{name}", f"a:{address}"):
                self._recent(key, now).append(now)
            if len(self._failures) > 100_000:  # a flood of names: forget the quiet ones
                for key in [k for k, q in self._failures.items() if not q]:
                    del self._failures[key]

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(f"u:{name}", None)


# -- the audit log ----------------------------------------------------------------------------------
def _actor_name(actor: Any) -> str:
    """A user's name, ``key:<name>`` for an API key, or the string given."""
    if isinstance(actor, str):
        return actor
    name = getattr(actor, "actor", None) or getattr(actor, "name", None)
    return str(name) if name else str(actor)


def audit(session_or_engine: Any, actor: Any, action: str, target: str = "", detail: Any = None) -> None:
    """Record one admin action in ``audit_log``. ``session_or_engine``: a SQLAlchemy ``Session``
    (the row is added to its transaction, committed with the change it records), an ``Engine``
    or a ``kb.store.Database`` (written at once). ``actor``: a name, a ``User`` or an
    ``app.auth.Principal``; ``detail``: anything JSON can hold (or a string)."""
    text = detail if isinstance(detail, str) else json.dumps(detail if detail is not None else {},
                                                                ensure_ascii=False, default=str)
    row = AuditEntry(at=_now(), actor=_actor_name(actor)[:100], action=str(action)[:64],
                     target=str(target or "")[:500], detail=text)
    if isinstance(session_or_engine, Session):
        session_or_engine.add(row)
        return
    if isinstance(session_or_engine, Database):
        with session_or_engine.session() as s:
            s.add(row)
        return
    if isinstance(session_or_engine, Engine):
        with Session(session_or_engine) as s, s.begin():
            s.add(row)
        return
    raise TypeError(f"audit: a Session, Engine or kb.store.Database, not {type(session_or_engine).__name__}")


def audit_entries(db: Database, limit: int = 200, before_id: int | None = None, action: str | None = None,
                  actor: str | None = None) -> list[dict]:
    """The newest audit rows first (``before_id`` pages back)."""
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(max(1, min(int(limit), 1000)))
    if before_id:
        q = q.where(AuditEntry.id < int(before_id))
    if action:
        q = q.where(AuditEntry.action == action)
    if actor:
        q = q.where(AuditEntry.actor == actor)
    out = []
    with db.session() as s:
        for r in s.scalars(q):
            try:
                detail = json.loads(r.detail)
            except (TypeError, ValueError):
                detail = r.detail
            out.append({"id": r.id, "at": r.at.isoformat(timespec="seconds"), "actor": r.actor,
                        "action": r.action, "target": r.target, "detail": detail})
    return out
