"""The admin check for trainers' FAQ tools (web admin tab, HTTP API)."""

from __future__ import annotations

import hmac


def check_admin(config, token: str | None) -> bool:
    """True when ``token`` equals ``config.app.admin_token`` (constant-time comparison). An
    empty configured token means admin is disabled: always False. Adapters pass the bare token
    (an HTTP adapter strips "Bearer " itself)."""
    expected = config.app.admin_token or ""
    if not expected or not isinstance(token, str) or not token:
        return False
    return hmac.compare_digest(token.encode("utf-8"), expected.encode("utf-8"))


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; "" for any other scheme (a bare
    token without ``Bearer`` is not accepted)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
