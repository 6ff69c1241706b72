"""``kb key add NAME --scope ask|admin`` (prints the new key, and only it, on stdout),
``kb key list`` (never the keys), ``kb key revoke NAME``. They open the database only: no index,
no model."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime

SCOPES = ("ask", "admin")  # kb.store.keys.SCOPES, without importing SQLAlchemy for every kb command


def open_key_store(cfg):
    from kb.store import open_key_store as open_store

    return open_store(cfg)


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC") if t else "-"


def cmd_add(args, config_fn) -> int:
    cfg = config_fn(args)
    token = open_key_store(cfg).add(args.name, args.scope)
    print(token, flush=True)
    print(f"key {args.name!r} (scope {args.scope}) created; it is shown only now: store it where the "
          "integration reads it, and send it as 'Authorization: Bearer <key>'", file=sys.stderr)
    if not cfg.app.require_key:
        print("note: app.require_key is false in this config, so the server does not ask for keys yet",
              file=sys.stderr)
    return 0


def cmd_list(args, config_fn) -> int:
    keys = open_key_store(config_fn(args)).list()
    if args.json:
        print(json.dumps([k.to_dict() for k in keys], ensure_ascii=False, indent=2))
        return 0
    if not keys:
        print("no API keys yet: kb key add NAME --scope ask", file=sys.stderr)
        return 0
    rows = [("name", "scope", "key starts", "created", "last used", "revoked")]
    rows += [(k.name, k.scope, k.prefix + "…", _when(k.created_at), _when(k.last_used_at), _when(k.revoked_at))
             for k in keys]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_revoke(args, config_fn) -> int:
    key = open_key_store(config_fn(args)).revoke(args.name)
    print(f"key {key.name!r} revoked at {_when(key.revoked_at)}", file=sys.stderr)
    return 0


def add_key_commands(sub, common: Callable[[argparse.ArgumentParser], None], config_fn) -> None:
    p = sub.add_parser("key", help="API keys for integrations (OpenAI-compatible endpoint, MCP, HTTP API)")
    ksub = p.add_subparsers(dest="key_command", required=True)

    q = ksub.add_parser("add", help="create a key and print it (shown once)")
    common(q)
    q.add_argument("name", help="what the key is for, e.g. hr-portal")
    q.add_argument("--scope", choices=SCOPES, required=True,
                   help="ask: ask, search, documents, /v1, /mcp; admin: that and the admin API")
    q.set_defaults(func=lambda a: cmd_add(a, config_fn))

    q = ksub.add_parser("list", help="the keys: name, scope, created, last used, revoked (never the key)")
    common(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=lambda a: cmd_list(a, config_fn))

    q = ksub.add_parser("revoke", help="refuse a key from now on")
    common(q)
    q.add_argument("name")
    q.set_defaults(func=lambda a: cmd_revoke(a, config_fn))
