"""API keys for integrations (the OpenAI-compatible endpoint, MCP, the HTTP API): created with a
scope, shown once, stored hashed, revocable, last use recorded.

Scopes: ``ask`` may ask, search and read documents (``/api/ask``, ``/api/search``,
``/api/documents``, ``/v1/*``, ``/mcp``); ``admin`` may do all that and the admin API.

**Why SHA-256 and not argon2.** A key is ``kb-`` followed by 32 random bytes from ``secrets``
(256 bits). A slow, salted hash (argon2, bcrypt) protects *low-entropy* secrets such as
passwords against guessing from a stolen database; 256 random bits cannot be guessed at any
hashing speed, so a stolen SHA-256 reveals nothing usable. A fast unsalted hash also lets a
request find its key by an indexed lookup on the hash (a salted hash would mean hashing the
request's key once per stored key, tens of milliseconds each with argon2), which keeps a
key check well under a millisecond on every request. (Passwords, when accounts come, are
another matter and get argon2.)

**Constant time.** The lookup is by the hash of the presented key, so its timing depends on
that hash, not on how many leading characters of a real key were right; the hashes are then
compared with ``hmac.compare_digest``, and a miss is compared against a dummy hash so that a
miss and a hit do the same work.

**Last use** is written at most once per ``touch_interval_s`` (60 s) per key, so that a busy
integration does not turn every request into a database write.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from kb.store.db import Database
from kb.store.models import ApiKey

SCOPES = ("ask", "admin")
KEY_PREFIX = "kb-"
SHOWN_PREFIX = 8  # characters of the key kept for lists: "kb-" and 5 of its 43 random ones
MAX_KEY_CHARS = 200  # a presented token longer than this is not one of ours
NAME = re.compile(r"[\w.@-]{1,64}")
_DUMMY = hashlib.sha256(b"no such key").hexdigest()


class DuplicateKey(ValueError):
    pass


class UnknownKey(ValueError):
    pass


def key_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Key:
    """A stored key as lists show it: never the key itself."""

    name: str
    scope: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def allows(self, scope: str) -> bool:
        """An ``admin`` key may do what an ``ask`` key may."""
        return not self.revoked and (self.scope == scope or self.scope == "admin")

    def to_dict(self) -> dict:
        iso = lambda t: t.isoformat(timespec="seconds") if t else None  # noqa: E731
        return {"name": self.name, "scope": self.scope, "prefix": self.prefix,
                "created_at": iso(self.created_at), "last_used_at": iso(self.last_used_at),
                "revoked_at": iso(self.revoked_at), "revoked": self.revoked}

    @classmethod
    def of(cls, row: ApiKey) -> Key:
        return cls(row.name, row.scope, row.prefix, row.created_at, row.last_used_at, row.revoked_at)


class KeyStore:
    def __init__(self, db: Database, touch_interval_s: float = 60.0):
        self.db = db
        self.touch_interval_s = touch_interval_s

    def add(self, name: str, scope: str) -> str:
        """Create a key; returns the key itself, which is not kept and cannot be shown again."""
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ValueError(f"key name {name!r}: use 1 to 64 letters, digits, '.', '_', '-' or '@'")
        if scope not in SCOPES:
            raise ValueError(f"scope {scope!r}: use one of {', '.join(SCOPES)}")
        token = KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            with self.db.session() as s:
                old = s.scalar(select(ApiKey).where(ApiKey.name == name))
                if old is not None:
                    state = " (revoked)" if old.revoked_at else ""
                    raise DuplicateKey(f"a key named {name!r} exists{state}; choose another name")
                s.add(ApiKey(name=name, scope=scope, key_hash=key_hash(token), prefix=token[:SHOWN_PREFIX],
                             created_at=_now()))
        except IntegrityError:  # added by another process between the check and the insert
            raise DuplicateKey(f"a key named {name!r} exists; choose another name") from None
        return token

    def list(self) -> list[Key]:
        with self.db.session() as s:
            return [Key.of(r) for r in s.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))]

    def get(self, name: str) -> Key:
        with self.db.session() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.name == name))
            if row is None:
                raise UnknownKey(f"no key named {name!r} (see kb key list)")
            return Key.of(row)

    def revoke(self, name: str) -> Key:
        """Revoke a key: it is refused from the next request on (also by a server already
        running). Revoking a revoked key changes nothing."""
        with self.db.session() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.name == name))
            if row is None:
                raise UnknownKey(f"no key named {name!r} (see kb key list)")
            if row.revoked_at is None:
                row.revoked_at = _now()
            return Key.of(row)

    def verify(self, token: str | None, scope: str = "ask") -> Key | None:
        """The key ``token`` is, when it exists, is not revoked and allows ``scope``; else None.
        Records its use."""
        if scope not in SCOPES:
            raise ValueError(f"scope {scope!r}: use one of {', '.join(SCOPES)}")
        if not isinstance(token, str) or not token or len(token) > MAX_KEY_CHARS:
            return None
        digest = key_hash(token)
        now = _now()
        with self.db.session() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
            if row is None:
                hmac.compare_digest(digest, _DUMMY)
                return None
            if not hmac.compare_digest(row.key_hash, digest):
                return None
            key = Key.of(row)
            if not key.allows(scope):
                return None
            last = row.last_used_at
            if last is None or (now - last).total_seconds() >= self.touch_interval_s:
                s.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
                key = Key(key.name, key.scope, key.prefix, key.created_at, now, key.revoked_at)
            return key
