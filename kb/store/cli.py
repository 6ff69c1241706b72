"""``kb key add NAME --scope ask|admin`` (prints the new key, and only it, on stdout),
``kb key list`` (never the keys), ``kb key revoke NAME``; ``kb user add NAME --role
admin|trainer|user`` (the password asked twice, or ``--password-stdin``), ``kb user list``,
``passwd``, ``disable``, ``enable``; ``kb db migrate --to URL [--from URL] [--force]`` (every row
of the deployment's database into another: ``kb.store.transfer``). They open the database only:
no index, no model."""

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


# -- kb user ----------------------------------------------------------------------------------------
ROLES = ("admin", "trainer", "user")  # kb.store.accounts.ROLES


def open_user_store(cfg):
    from kb.store import open_database
    from kb.store.accounts import UserStore

    db = open_database(cfg)
    return db, UserStore(db, cfg.app.session_hours)


def read_password(args, prompt: str = "password") -> str:
    """From the first line of stdin (``--password-stdin``), or asked twice without echo."""
    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if password.endswith("\r"):
            password = password[:-1]
        if not password:
            raise ValueError("no password on stdin (one line is read)")
        return password
    import getpass

    try:
        first = getpass.getpass(f"{prompt}: ")
        second = getpass.getpass(f"{prompt} (again): ")
    except EOFError:
        raise ValueError("no password given (type it when asked, or pass it on stdin with --password-stdin)") from None
    if first != second:
        raise ValueError("the two passwords differ; nothing was changed")
    return first


def _audit_cli(db, action: str, target: str, detail=None) -> None:
    import getpass as _gp

    from kb.store.accounts import audit

    try:
        who = _gp.getuser()
    except Exception:  # noqa: BLE001 - no login name in this environment
        who = "?"
    audit(db, f"cli:{who}", action, target, detail)


def cmd_user_add(args, config_fn) -> int:
    from kb.store.accounts import check_name, check_password, check_role

    cfg = config_fn(args)
    check_name(args.name)
    check_role(args.role)
    password = check_password(read_password(args))
    db, users = open_user_store(cfg)
    user = users.add(args.name, args.role, password)
    _audit_cli(db, "user.add", user.name, {"role": user.role})
    print(f"user {user.name!r} ({user.role}) added; log in at /login", file=sys.stderr)
    return 0


def cmd_user_list(args, config_fn) -> int:
    _, users = open_user_store(config_fn(args))
    found = users.list()
    if args.json:
        print(json.dumps([u.to_dict() for u in found], ensure_ascii=False, indent=2))
        return 0
    if not found:
        print("no users yet: kb user add NAME --role admin", file=sys.stderr)
        return 0
    import unicodedata

    def width(text: str) -> int:  # a Chinese character takes two columns
        return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)

    rows = [("name", "role", "created", "last login", "disabled")]
    rows += [(u.name, u.role, _when(u.created_at), _when(u.last_login_at), _when(u.disabled_at)) for u in found]
    widths = [max(width(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c + " " * (w - width(c)) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_user_passwd(args, config_fn) -> int:
    from kb.store.accounts import check_password

    cfg = config_fn(args)
    db, users = open_user_store(cfg)
    users.get(args.name)  # an unknown name is refused before asking
    users.set_password(args.name, check_password(read_password(args, "new password")))
    _audit_cli(db, "user.passwd", args.name)
    print(f"password of {args.name!r} changed; its sessions have ended", file=sys.stderr)
    return 0


def cmd_user_disable(args, config_fn, disabled: bool) -> int:
    db, users = open_user_store(config_fn(args))
    user = users.get(args.name)
    if disabled and user.role == "admin" and not user.disabled and users.count("admin") <= 1 and not args.force:
        raise ValueError(f"{args.name!r} is the last active admin; add another first (or pass --force)")
    users.set_disabled(args.name, disabled)
    _audit_cli(db, "user.disable" if disabled else "user.enable", args.name)
    print(f"user {args.name!r} {'disabled (its sessions have ended)' if disabled else 'enabled'}", file=sys.stderr)
    return 0


def add_user_commands(sub, common: Callable[[argparse.ArgumentParser], None], config_fn) -> None:
    p = sub.add_parser("user", help="accounts for the admin and trainers' pages (and the chat with app.chat_login)")
    usub = p.add_subparsers(dest="user_command", required=True)

    q = usub.add_parser("add", help="create an account (asks for its password twice)")
    common(q)
    q.add_argument("name", help="the login name: letters (Chinese too), digits, . _ - @")
    q.add_argument("--role", choices=ROLES, required=True,
                   help="admin: documents, users, keys, settings; trainer: the FAQ; user: the chat only")
    q.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    q.set_defaults(func=lambda a: cmd_user_add(a, config_fn))

    q = usub.add_parser("list", help="the accounts: name, role, created, last login, disabled")
    common(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=lambda a: cmd_user_list(a, config_fn))

    q = usub.add_parser("passwd", help="set a new password (its sessions end)")
    common(q)
    q.add_argument("name")
    q.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    q.set_defaults(func=lambda a: cmd_user_passwd(a, config_fn))

    q = usub.add_parser("disable", help="refuse an account's logins and end its sessions")
    common(q)
    q.add_argument("name")
    q.add_argument("--force", action="store_true", help="also the last active admin")
    q.set_defaults(func=lambda a: cmd_user_disable(a, config_fn, True))

    q = usub.add_parser("enable", help="allow a disabled account to log in again")
    common(q)
    q.add_argument("name")
    q.set_defaults(func=lambda a: cmd_user_disable(a, config_fn, False))


# -- kb db --------------------------------------------------------------------------------------------
def cmd_db_migrate(args, config_fn) -> int:
    from kb.faq.store import faq_path
    from kb.store.db import database_url, describe
    from kb.store.feedback import legacy_feedback_path
    from kb.store.legacy import import_faq, import_feedback
    from kb.store.transfer import copy_database

    cfg = config_fn(args)
    source = args.source or database_url(cfg)
    imported: list[str] = []

    def old_files(db) -> None:  # what the server would import on first use, so that nothing stays behind
        if args.source:
            return
        for path, importer in ((legacy_feedback_path(cfg.data_dir), import_feedback), (faq_path(cfg), import_faq)):
            if path.exists():
                importer(db, path)
                imported.append(str(path))

    counts = copy_database(source, args.to, force=args.force, before=old_files)
    for path in imported:
        print(f"imported the old file {path} into {describe(source)} first", file=sys.stderr)
    width = max(len(t) for t in counts)
    for table, n in counts.items():
        print(f"{table.ljust(width)}  {n}")
    from sqlalchemy.engine import make_url

    url = make_url(args.to)
    shown = url.render_as_string(hide_password=True)
    print(f"copied {sum(counts.values())} rows of {len(counts)} tables from {describe(source)} into "
          f"{describe(args.to)}; to use it, set in the config{' (the password for ***)' if url.password else ''}:"
          f"\n  database_url = \"{shown}\"", file=sys.stderr)
    return 0


def add_db_commands(sub, common: Callable[[argparse.ArgumentParser], None], config_fn) -> None:
    p = sub.add_parser("db", help="the database: copy a deployment into another (SQLite to PostgreSQL)")
    dsub = p.add_subparsers(dest="db_command", required=True)

    q = dsub.add_parser("migrate", help="copy every row of this deployment's database into another (e.g. "
                                         "PostgreSQL), after creating its schema")
    common(q)
    q.add_argument("--to", required=True, metavar="URL",
                   help="the target database, e.g. postgresql+psycopg://kb:secret@db.internal/kb")
    q.add_argument("--from", dest="source", metavar="URL",
                   help="the source database (default: the config's database_url, i.e. data/kb.sqlite3)")
    q.add_argument("--force", action="store_true", help="replace the rows of a target that is not empty")
    q.set_defaults(func=lambda a: cmd_db_migrate(a, config_fn))
