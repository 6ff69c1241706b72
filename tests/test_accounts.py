"""Accounts over real HTTP (uvicorn on a free port, hashing embedder): the login form and API
(right and wrong password, rate limit, expiry, logout), CSRF (a cross-site form post, a post
without the token), roles (a trainer cannot reach the admins' routes), API keys of each scope on
the admin API, the admins' users/keys/audit API, the chat behind a login (``app.chat_login``)
and keys (``app.require_key``) together, and ``kb user`` as a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest_app import ADMIN_TOKEN, LiveServer, add_user, login, tiny_config

from kb.config import ConfigError, load_config

ADMIN, TRAINER, READER = "管理员", "培训师", "读者"
PASSWORD = "correct-horse-1"
ROOT = Path(__file__).resolve().parents[1]


def accounts(config):
    for name, role in ((ADMIN, "admin"), (TRAINER, "trainer"), (READER, "user")):
        add_user(config, name, role, PASSWORD)
    return config


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LiveServer(accounts(tiny_config(tmp_path_factory.mktemp("accounts")))) as live:
        yield live


def client(server, **kw) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, **kw)


def form_token(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def form_login(c: httpx.Client, name: str, password: str, next_: str = "") -> httpx.Response:
    page = c.get("/login", params={"next": next_} if next_ else None)
    assert page.status_code == 200
    return c.post("/login", data={"name": name, "password": password, "next": next_,
                                  "csrf_token": form_token(page.text)})


def session_token(c: httpx.Client) -> str:
    return c.cookies["kb_session"]


# -- logging in and out ------------------------------------------------------------------------------
def test_login_form_right_and_wrong_password(server):
    with client(server) as c:
        page = c.get("/login")
        assert "<h2>登录</h2>" in page.text and page.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in page.headers["content-security-policy"]
        r = form_login(c, TRAINER, "wrong-password")
        assert r.status_code == 401 and "账户名或密码不正确" in r.text
        assert "kb_session" not in c.cookies
        assert f'value="{TRAINER}"' in r.text  # the name stays filled in, the password does not
        r = form_login(c, "无此人", PASSWORD)
        assert r.status_code == 401 and "账户名或密码不正确" in r.text  # the same message: names are not told

        r = form_login(c, TRAINER, PASSWORD, next_="/trainers")
        assert r.status_code == 303 and r.headers["location"] == "/trainers"
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("kb_session="))
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        assert "Max-Age=43200" in cookie and "Secure" not in cookie  # 12 h; http here, so not Secure
        me = c.get("/api/auth/me").json()
        assert me["name"] == TRAINER and me["role"] == "trainer" and me["via"] == "session" and me["csrf"]
        assert c.get("/trainers").status_code == 200

    with client(server) as c:  # default landing page by role; a next= of another site is ignored
        r = form_login(c, ADMIN, PASSWORD, next_="//evil.example/x")
        assert r.status_code == 303 and r.headers["location"] == "/admin"


def test_login_api_and_logout(server):
    with client(server) as c:
        assert c.post("/api/auth/login", json={"name": TRAINER, "password": "nope"}).status_code == 401
        csrf = login(c, TRAINER, PASSWORD)
        token = session_token(c)
        del c.headers["X-CSRF-Token"]
        r = c.post("/api/auth/logout")  # no CSRF token: refused, still logged in
        assert r.status_code == 403 and "CSRF" in r.json()["detail"]
        assert c.get("/api/auth/me").status_code == 200
        assert c.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
        assert "kb_session" not in c.cookies
    with client(server, cookies={"kb_session": token}) as old:  # the ended session is refused
        assert old.get("/api/auth/me").status_code == 401
        r = old.get("/trainers")
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")

    with client(server) as c:  # the form's logout: a page with a button, then POST with the token
        form_login(c, TRAINER, PASSWORD)
        page = c.get("/logout")
        assert page.status_code == 200 and TRAINER in page.text
        r = c.post("/logout", data={"csrf_token": form_token(page.text)})
        assert r.status_code == 303 and r.headers["location"] == "/login?out=1"
        assert c.get("/api/auth/me").status_code == 401
        assert "你已退出登录" in c.get("/login?out=1").text


def test_session_expiry(server):
    from kb.store import open_database
    from kb.store.accounts import UserStore

    with client(server) as c:
        login(c, TRAINER, PASSWORD)
        assert c.get("/api/admin/faq/entries").status_code == 200
        UserStore(open_database(server.config)).expire_session(session_token(c))
        r = c.get("/api/admin/faq/entries")
        assert r.status_code == 401 and "login" in r.json()["detail"]
        assert c.get("/trainers").status_code == 303


def test_login_is_rate_limited_per_account_and_per_address(tmp_path):
    cfg = accounts(tiny_config(tmp_path))
    add_user(cfg, "另一个", "trainer", PASSWORD)
    with LiveServer(cfg) as live, httpx.Client(base_url=live.url, timeout=30) as c:
        for _ in range(5):
            assert c.post("/api/auth/login", json={"name": TRAINER, "password": "wrong"}).status_code == 401
        r = c.post("/api/auth/login", json={"name": TRAINER, "password": PASSWORD})  # even the right one
        assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 600
        r = form_login(c, TRAINER, PASSWORD)
        assert r.status_code == 429 and "登录失败次数过多" in r.text and r.headers["retry-after"]
        # another account from the same address still may (the address allows 4x as many)
        assert c.post("/api/auth/login", json={"name": "另一个", "password": PASSWORD}).status_code == 200
        # the address: 20 failures over any names, then every login from it waits
        for i in range(15):  # 5 + 15 = 20 (the refused attempts above are not counted)
            c.post("/api/auth/login", json={"name": f"猜{i}", "password": "x"})
        r = c.post("/api/auth/login", json={"name": ADMIN, "password": PASSWORD})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


# -- CSRF ------------------------------------------------------------------------------------------
def test_csrf_refuses_cross_site_posts_and_posts_without_the_token(server):
    with client(server) as c:
        csrf = login(c, ADMIN, PASSWORD)
        del c.headers["X-CSRF-Token"]
        body = {"name": "未授权", "role": "trainer", "password": "whatever-123"}
        # no token
        r = c.post("/api/admin/users", json=body)
        assert r.status_code == 403 and "CSRF" in r.json()["detail"]
        # the token, but another site's page (a browser sends its Origin, or at least a Referer)
        r = c.post("/api/admin/users", json=body, headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
        assert r.status_code == 403 and "cross-site" in r.json()["detail"]
        r = c.post("/api/admin/users", json=body, headers={"X-CSRF-Token": csrf,
                                                           "Referer": "http://evil.example/page"})
        assert r.status_code == 403
        # a cross-site HTML form posting the logout (a form cannot set headers; it does not know the token)
        r = c.post("/logout", data={"csrf_token": "guessed"}, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403 and c.get("/api/auth/me").status_code == 200
        r = c.post("/logout", data={"csrf_token": "guessed"})
        assert r.status_code == 403 and c.get("/api/auth/me").status_code == 200
        assert "未授权" not in {u["name"] for u in c.get("/api/admin/users").json()}
        # with the token, from this site: accepted
        r = c.post("/api/admin/users", json=body, headers={"X-CSRF-Token": csrf, "Origin": server.url})
        assert r.status_code == 201
    with client(server) as c:  # the login form itself: its token, and not from another site
        page = c.get("/login")
        r = c.post("/login", data={"name": TRAINER, "password": PASSWORD, "csrf_token": form_token(page.text)},
                   headers={"Origin": "http://evil.example"})
        assert r.status_code == 403 and "kb_session" not in c.cookies
        r = c.post("/login", data={"name": TRAINER, "password": PASSWORD, "csrf_token": "forged"})
        assert r.status_code == 403 and "kb_session" not in c.cookies
        r = c.post("/api/auth/login", json={"name": TRAINER, "password": PASSWORD},
                   headers={"Origin": "http://evil.example"})
        assert r.status_code == 403


# -- roles and keys ---------------------------------------------------------------------------------
ADMIN_ROUTES = [("GET", "/api/admin/users", None), ("POST", "/api/admin/users",
                 {"name": "x1", "role": "trainer", "password": "password-123"}),
                ("PATCH", f"/api/admin/users/{READER}", {"disabled": True}), ("GET", "/api/admin/keys", None),
                ("POST", "/api/admin/keys", {"name": "k1", "scope": "ask"}),
                ("POST", "/api/admin/keys/tests-admin/revoke", None), ("GET", "/api/admin/audit", None)]


def test_a_trainer_cannot_reach_the_admins_routes(server):
    with client(server) as c:
        login(c, TRAINER, PASSWORD)
        for method, path, body in ADMIN_ROUTES:
            r = c.request(method, path, json=body)
            assert r.status_code == 403 and "role admin" in r.json()["detail"], (path, r.text)
        page = c.get("/admin/users")
        assert page.status_code == 403 and "没有权限" in page.text and "培训师" in page.text
    with client(server) as c:
        login(c, READER, PASSWORD)  # role user: neither the admins' nor the trainers' routes
        assert c.get("/api/admin/users").status_code == 403
        assert c.get("/api/admin/faq/entries").status_code == 403
        assert c.get("/api/feedback").status_code == 403


def test_the_admin_api_with_keys_of_each_scope(server):
    from kb.store import open_key_store

    keys = open_key_store(server.config)
    ask_key, admin_key = keys.add("scope-ask", "ask"), keys.add("scope-admin", "admin")
    revoked = keys.add("scope-revoked", "admin")
    keys.revoke("scope-revoked")
    with client(server) as c:
        for path in ("/api/admin/users", "/api/admin/audit", "/api/admin/faq/entries", "/api/feedback"):
            assert c.get(path, headers={"Authorization": f"Bearer {admin_key}"}).status_code == 200, path
            r = c.get(path, headers={"Authorization": f"Bearer {ask_key}"})
            assert r.status_code == 403 and "admin-scope key" in r.json()["detail"], path
            for header in ({}, {"Authorization": f"Bearer {revoked}"}, {"Authorization": "Bearer kb-unknown"},
                           {"Authorization": admin_key}):
                r = c.get(path, headers=header)
                assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), (path, header)
        # a change with an admin key needs no CSRF token (browsers never send the header cross-site)
        r = c.post("/api/admin/keys", json={"name": "by-key", "scope": "ask"},
                   headers={"Authorization": f"Bearer {admin_key}"})
        assert r.status_code == 201 and r.json()["key"].startswith("kb-")
        audit = c.get("/api/admin/audit", headers={"Authorization": f"Bearer {admin_key}"}).json()
        assert audit[0]["actor"] == "key:scope-admin" and audit[0]["action"] == "key.add"


def test_admins_manage_accounts_and_keys_and_every_change_is_audited(server):
    with client(server) as admin, client(server) as newcomer:
        login(admin, ADMIN, PASSWORD)
        r = admin.post("/api/admin/users", json={"name": "新同事", "role": "trainer", "password": "first-pass-1"})
        assert r.status_code == 201 and r.json()["role"] == "trainer" and "password" not in r.text
        assert admin.post("/api/admin/users", json={"name": "新同事", "role": "trainer",
                                                    "password": "first-pass-1"}).status_code == 400
        assert admin.post("/api/admin/users", json={"name": "短", "role": "trainer",
                                                    "password": "short"}).status_code == 400
        assert admin.post("/api/admin/users", json={"name": "<b>x</b>", "role": "trainer",
                                                    "password": "long-enough-1"}).status_code == 400
        login(newcomer, "新同事", "first-pass-1")
        # disabling ends the account's sessions at once
        assert admin.patch("/api/admin/users/新同事", json={"disabled": True}).json()["disabled"]
        assert newcomer.get("/api/auth/me").status_code == 401
        assert newcomer.post("/api/auth/login", json={"name": "新同事", "password": "first-pass-1"}).status_code == 401
        assert not admin.patch("/api/admin/users/新同事", json={"disabled": False}).json()["disabled"]
        # a reset password: the old one no longer works
        assert admin.patch("/api/admin/users/新同事", json={"password": "second-pass-2"}).status_code == 200
        assert newcomer.post("/api/auth/login", json={"name": "新同事", "password": "first-pass-1"}).status_code == 401
        login(newcomer, "新同事", "second-pass-2")
        assert admin.patch("/api/admin/users/无此人", json={"disabled": True}).status_code == 404
        # the last active admin cannot be disabled or demoted
        r = admin.patch(f"/api/admin/users/{ADMIN}", json={"disabled": True})
        assert r.status_code == 400 and "last active admin" in r.json()["detail"]
        # a key: shown once, works, revoked: refused
        r = admin.post("/api/admin/keys", json={"name": "hr-portal", "scope": "admin"})
        key = r.json()["key"]
        assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
        listed = {k["name"]: k for k in admin.get("/api/admin/keys").json()}
        assert key not in str(listed) and listed["hr-portal"]["prefix"] == key[:8]
        assert httpx.get(server.url + "/api/admin/users", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert admin.post("/api/admin/keys/hr-portal/revoke").json()["revoked"]
        assert httpx.get(server.url + "/api/admin/users", headers={"Authorization": f"Bearer {key}"}).status_code == 401
        assert admin.post("/api/admin/keys/nope/revoke").status_code == 404

        audit = admin.get("/api/admin/audit").json()
        mine = [(a["action"], a["target"]) for a in audit if a["actor"] == ADMIN][::-1]
        assert mine[-6:] == [("user.add", "新同事"), ("user.disable", "新同事"), ("user.enable", "新同事"),
                             ("user.passwd", "新同事"), ("key.add", "hr-portal"), ("key.revoke", "hr-portal")]
        assert all(a["at"] for a in audit) and audit[0]["id"] > audit[-1]["id"]  # newest first
        assert admin.get("/api/admin/audit", params={"action": "key.revoke"}).json()[0]["target"] == "hr-portal"

        page = admin.get("/admin/users")
        assert page.status_code == 200 and "用户与密钥" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert admin.headers["X-CSRF-Token"] in page.text
        assert ".innerHTML" not in admin.get("/kb-static/users.js").text


# -- the chat behind a login, and API keys ----------------------------------------------------------
def test_chat_login_gates_the_chat_embed_and_ask_api(tmp_path):
    cfg = accounts(tiny_config(tmp_path)).replace(app__chat_login=True)
    from kb.store import open_key_store

    ask_key = open_key_store(cfg).add("portal", "ask")
    q = {"question": "请病假要走什么流程？"}
    with LiveServer(cfg) as live, httpx.Client(base_url=live.url, timeout=30) as anon:
        for page in ("/", "/embed", "/view/员工手册.txt"):
            r = anon.get(page)
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), page
        for method, path in (("POST", "/api/ask"), ("GET", "/api/search?q=请假"), ("GET", "/api/documents"),
                             ("POST", "/api/feedback"), ("POST", "/gradio_api/queue/join"),
                             ("POST", "/v1/chat/completions")):
            r = anon.request(method, path, json={})
            assert r.status_code == 401, (path, r.status_code)
        r = anon.get("/config")  # Gradio's own routes are the chat too
        assert r.status_code == 303 and "components" not in r.text
        for path in ("/login", "/api/health", "/widget.js", "/kb-static/login.css", "/docs"):
            assert anon.get(path).status_code == 200, path
        # an ask key (integrations) or a login (people)
        assert anon.post("/api/ask", json=q, headers={"Authorization": f"Bearer {ask_key}"}).json()["answered"]
        with httpx.Client(base_url=live.url, timeout=30) as person:
            form_login(person, READER, PASSWORD)
            assert person.get("/").status_code == 200 and person.get("/embed").status_code == 200
            assert person.post("/api/ask", json=q).json()["answered"]
            assert person.get("/config").status_code == 200


def test_require_key_is_satisfied_by_a_login_so_embed_keeps_working(tmp_path):
    cfg = accounts(tiny_config(tmp_path)).replace(app__require_key=True)
    q = {"question": "请病假要走什么流程？"}
    with LiveServer(cfg) as live, httpx.Client(base_url=live.url, timeout=30) as anon:
        assert anon.get("/").status_code == 200 and anon.get("/embed").status_code == 200  # pages open
        r = anon.post("/api/ask", json=q)
        assert r.status_code == 401 and "API key" in r.json()["detail"]
        assert anon.post("/api/ask", json=q, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200
        with httpx.Client(base_url=live.url, timeout=30) as person:
            login(person, READER, PASSWORD)
            assert person.post("/api/ask", json=q).json()["answered"]  # what /embed's script does
            assert person.get("/api/search", params={"q": "请假"}).status_code == 200


def test_the_admin_token_setting_is_refused_with_the_command_to_run(tmp_path):
    from app.server import create_app

    cfg = tiny_config(tmp_path).replace(app__admin_token="old-token")
    with pytest.raises(ConfigError, match="kb user add NAME --role admin"):
        create_app(cfg)
    env = {**os.environ, "KB_ADMIN_TOKEN": "old-token", "KB_DATA_DIR": str(tmp_path / "data")}
    r = subprocess.run([sys.executable, "-m", "kb.cli", "serve", "--port", "1"], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "kb user add NAME --role admin" in r.stderr and "Traceback" not in r.stderr


# -- kb user ----------------------------------------------------------------------------------------
def kb(tmp_path, *args, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "KB_DATA_DIR": str(tmp_path / "data")}
    env.pop("KB_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "kb.cli", "user", *args], input=stdin, env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_kb_user_commands(tmp_path):
    r = kb(tmp_path, "add", "王老师", "--role", "trainer", "--password-stdin", stdin="first-pass-1\n")
    assert r.returncode == 0 and "王老师" in r.stderr and r.stdout == ""
    r = kb(tmp_path, "add", "admin1", "--role", "admin", stdin="admin-pass-1\nadmin-pass-1\n")  # asked twice
    assert r.returncode == 0, r.stderr
    r = kb(tmp_path, "add", "typo", "--role", "admin", stdin="admin-pass-1\nadmin-pass-2\n")
    assert r.returncode == 2 and "differ" in r.stderr and "Traceback" not in r.stderr
    for args, stdin, words in (
        (("add", "王老师", "--role", "trainer", "--password-stdin"), "another-pass-1\n", "exists"),
        (("add", "short", "--role", "trainer", "--password-stdin"), "short\n", "at least 8"),
        (("add", "bad name", "--role", "trainer", "--password-stdin"), "long-enough-1\n", "user name"),
        (("add", "empty", "--role", "trainer", "--password-stdin"), "", "no password"),
        (("passwd", "nobody", "--password-stdin"), "long-enough-1\n", "no user named 'nobody'"),
        (("disable", "nobody"), "", "no user named"),
        (("disable", "admin1"), "", "last active admin"),
    ):
        r = kb(tmp_path, *args, stdin=stdin)
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = kb(tmp_path, "add", "x", "--role", "boss", "--password-stdin", stdin="long-enough-1\n")
    assert r.returncode == 2 and "invalid choice" in r.stderr

    r = kb(tmp_path, "list", "--json")
    import json

    users = {u["name"]: u for u in json.loads(r.stdout)}
    assert set(users) == {"王老师", "admin1"} and users["王老师"]["role"] == "trainer"
    assert "hash" not in r.stdout and "first-pass-1" not in r.stdout
    assert "王老师" in kb(tmp_path, "list").stdout

    cfg = load_config(None, data_dir=tmp_path / "data")
    from kb.store import open_database
    from kb.store.accounts import UserStore

    users_store = UserStore(open_database(cfg))
    token, _ = users_store.start_session(users_store.get("王老师"))
    assert kb(tmp_path, "passwd", "王老师", "--password-stdin", stdin="second-pass-2\n").returncode == 0
    assert users_store.session(token) is None  # a new password ends the sessions
    assert users_store.authenticate("王老师", "second-pass-2") and not users_store.authenticate("王老师", "first-pass-1")
    assert kb(tmp_path, "disable", "王老师").returncode == 0
    assert users_store.authenticate("王老师", "second-pass-2") is None
    assert kb(tmp_path, "enable", "王老师").returncode == 0
    assert users_store.authenticate("王老师", "second-pass-2") is not None
    from kb.store.accounts import audit_entries

    actions = [a["action"] for a in audit_entries(open_database(cfg))][::-1]
    assert actions == ["user.add", "user.add", "user.passwd", "user.disable", "user.enable"]
