"""The trainers' FAQ tools over real HTTP: ``/api/admin/faq/*`` and the ``/trainers`` page, on a
uvicorn server started here (hashing embedder, the tiny corpus of ``conftest_app``). Trainers
log in with their accounts (``TRAINERS``; each client holds its session cookie and sends the
CSRF token); the edit history names them. One browser test logs in on /login and drives the
page in headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
from conftest_app import ADMIN_TOKEN, CORPUS, LiveServer, add_user, login, tiny_config

from kb.service import run_ingest

API = "/api/admin/faq"
PASSWORD = "trainer-password-1"
TRAINER = "培训师"  # the default client's account
TRAINERS = (TRAINER, "王老师", "李老师", "张老师")
OUTSIDE_URL = re.compile(r"(?:https?:)?//(?!www\.w3\.org/2000/svg)[a-z0-9.-]+\.[a-z]{2,}", re.I)
HANDBOOK = "员工手册.txt"

# every admin route, with a body that would be valid for it
ROUTES = [
    ("GET", "/entries", None),
    ("GET", "/entries/1", None),
    ("POST", "/entries", {"question": "未经授权的条目？"}),
    ("PATCH", "/entries/1", {"answer": "篡改"}),
    ("POST", "/entries/1/approve", None),
    ("POST", "/entries/1/reject", None),
    ("POST", "/merge", {"keep_id": 1, "other_id": 2}),
    ("GET", "/topics", None),
    ("POST", "/suggest", {}),
    ("GET", "/usage", None),
    ("POST", "/check", None),
    ("GET", "/export?format=csv", None),
    ("POST", "/import?format=json", {"entries": [{"question": "导入的条目？"}]}),
]


def with_trainers(config):
    for name in TRAINERS:
        add_user(config, name, "trainer", PASSWORD)
    add_user(config, "只读用户", "user", PASSWORD)
    return config


_clients: dict[tuple[str, str], httpx.Client] = {}


def trainer_client(url: str, name: str = TRAINER) -> httpx.Client:
    """An httpx client of ``url`` logged in as the trainer ``name`` (kept for the module)."""
    c = _clients.get((url, name))
    if c is None:
        c = _clients[(url, name)] = httpx.Client(base_url=url, timeout=60)
        login(c, name, PASSWORD)
    return c


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LiveServer(with_trainers(tiny_config(tmp_path_factory.mktemp("faq_admin")))) as live:
        yield live
    for key in [k for k in _clients if k[0] == live.url]:
        _clients.pop(key).close()


@pytest.fixture(scope="module")
def client(server):
    return trainer_client(server.url)


def assert_error(r: httpx.Response, status: int, *words: str) -> str:
    """A JSON ``{"detail": message}`` error and nothing else (no entry data)."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str) and body["detail"], body
    assert "Traceback" not in r.text
    for w in words:
        assert w in body["detail"], body["detail"]
    return body["detail"]


def admin(client: httpx.Client, method: str, path: str, actor: str = "", headers: dict | None = None,
          **kw) -> httpx.Response:
    """An admin call with ``client``'s session, or with the session of the trainer ``actor``."""
    if actor:
        client = trainer_client(str(client.base_url).rstrip("/"), actor)
    return client.request(method, API + path, headers=headers, **kw)


def ok(r: httpx.Response, status: int = 200):
    assert r.status_code == status, (r.status_code, r.text)
    return r.json()


def ask(client: httpx.Client, question: str) -> dict:
    return ok(client.post("/api/ask", json={"question": question}))


def document_text(client: httpx.Client, source: str) -> str:
    return ok(client.get("/api/documents/" + quote(source)))["text"]


def assert_slices(client: httpx.Client, citations: list[dict]) -> None:
    assert citations
    for c in citations:
        assert document_text(client, c["source"])[c["start"]:c["end"]] == c["quote"], c


def entry_from_answer(client: httpx.Client, question: str, topic: str = "") -> dict:
    """A candidate the way a trainer would write one: the documents' answer and citations."""
    a = ask(client, question)
    assert a["answered"] and a["source_kind"] == "documents", a
    return ok(admin(client, "POST", "/entries", json={
        "question": question, "answer": a["answer"], "citations": a["citations"], "topic": topic,
    }), 201)


def entries(client: httpx.Client, **params) -> list[dict]:
    return ok(admin(client, "GET", "/entries", params=params))


# -- sign-in ------------------------------------------------------------------------------------

@pytest.mark.parametrize("header", [None, "", "Bearer", "Token x", f"Basic {ADMIN_TOKEN}", ADMIN_TOKEN,
                                    "Bearer kb-not-a-key"])
def test_no_login_is_401(server, header):
    headers = {} if header is None else {"Authorization": header}
    with httpx.Client(base_url=server.url, timeout=30, cookies={"kb_session": "forged"}) as anon:
        for method, path, body in ROUTES:
            r = anon.request(method, API + path, headers=headers, json=body)
            detail = assert_error(r, 401)
            assert "login" in detail or "key" in detail, detail
            assert r.headers["www-authenticate"].startswith("Bearer")


def test_wrong_role_ask_key_or_missing_csrf_is_403_and_changes_nothing(server, client, tmp_path):
    before = entries(client)
    reader = trainer_client(server.url, "只读用户")  # role user: the chat only
    ask_key = _ask_key(server.config)
    with httpx.Client(base_url=server.url, timeout=30) as keyed, \
            httpx.Client(base_url=server.url, timeout=30, cookies=client.cookies) as no_csrf:
        for method, path, body in ROUTES:
            assert_error(reader.request(method, API + path, json=body), 403, "role")
            r = keyed.request(method, API + path, json=body, headers={"Authorization": f"Bearer {ask_key}"})
            assert_error(r, 403, "admin-scope key")
            if method != "GET":  # the trainer's own cookie without the CSRF token
                assert_error(no_csrf.request(method, API + path, json=body), 403, "CSRF")
                r = client.request(method, API + path, json=body, headers={"Origin": "http://evil.example"})
                assert_error(r, 403, "cross-site")
    assert entries(client) == before
    # an admin-scope key may use the admin API (no CSRF: browsers never send it cross-site)
    r = httpx.get(server.url + API + "/entries", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)
    assert r.status_code == 200 and r.json() == before
    # the public side stays open without any login
    with httpx.Client(base_url=server.url, timeout=30) as anon:
        assert anon.post("/api/ask", json={"question": "请病假要走什么流程？"}).json()["answered"]


def _ask_key(config) -> str:
    import secrets

    from kb.store import open_key_store

    return open_key_store(config).add(f"faq-ask-{secrets.token_hex(3)}", "ask")


def test_trainers_page_sends_visitors_to_login(server):
    with httpx.Client(base_url=server.url, timeout=30) as anon:
        r = anon.get("/trainers")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Ftrainers"
        assert "培训师" not in r.text
    reader = trainer_client(server.url, "只读用户")
    r = reader.get("/trainers")
    assert r.status_code == 403 and "没有权限" in r.text


# -- suggest, edit, approve, reject, merge -------------------------------------------------------

def test_suggest_creates_candidates_from_what_people_ask(client):
    for q in ("报销款多久能到账？", "报销款多久能到账？", "怎样防止脚本注入？", "公司有班车吗？"):
        ask(client, q)
    t0 = time.perf_counter()
    added = ok(admin(client, "POST", "/suggest", json={"sources": ["usage"]}))["added"]
    assert time.perf_counter() - t0 < 30
    by_q = {e["question"]: e for e in added}
    assert {"报销款多久能到账？", "怎样防止脚本注入？", "公司有班车吗？"} <= set(by_q), list(by_q)
    drafted = by_q["报销款多久能到账？"]
    assert drafted["status"] == "candidate" and drafted["origin"] == "usage"
    assert drafted["ask_count"] == 2 and "[1]" in drafted["answer"]
    assert_slices(client, drafted["citations"])
    gap = by_q["公司有班车吗？"]  # refused: a candidate for a trainer to answer
    assert gap["origin"] == "gap" and gap["answer"] == "" and gap["citations"] == []
    listed = {e["id"] for e in entries(client, status="candidate")}
    assert {e["id"] for e in added} <= listed
    # known questions are not suggested twice; no body means both sources
    again = ok(admin(client, "POST", "/suggest"))["added"]
    assert not {e["question"] for e in again} & set(by_q)
    # validation
    assert_error(admin(client, "POST", "/suggest", json={"sources": ["rumours"]}), 422, "sources")
    assert_error(admin(client, "POST", "/suggest", json={"limit": 0}), 422, "limit")


def test_edit_persists_and_is_recorded(client):
    e = entry_from_answer(client, "病假要向谁报备？")
    edited = ok(admin(client, "PATCH", f"/entries/{e['id']}", actor="王老师", json={
        "question": "生病不能上班要向谁报备？", "answer": "应于当天上班前向直属主管报备 [1]。",
        "topic": "考勤", "alt_questions": ["病假找谁报备？", "  ", "生病了告诉谁？"],
    }))
    assert edited["question"] == "生病不能上班要向谁报备？" and edited["topic"] == "考勤"
    assert edited["alt_questions"] == ["病假找谁报备？", "生病了告诉谁？"]
    got = ok(admin(client, "GET", f"/entries/{e['id']}"))
    assert got["answer"] == "应于当天上班前向直属主管报备 [1]。"
    assert got["citations"] == e["citations"]  # untouched by a text edit
    edits = [h for h in got["history"] if h["action"] == "edit"]
    assert {h["field"] for h in edits} == {"question", "answer", "topic", "alt_questions"}
    assert {h["actor"] for h in edits} == {"web:王老师"}
    assert any(t["topic"] == "考勤" for t in ok(admin(client, "GET", "/topics")))
    assert [x["id"] for x in entries(client, topic="考勤")] == [e["id"]]
    # bad edits are 4xx with a message, and change nothing
    assert_error(admin(client, "PATCH", f"/entries/{e['id']}", json={}), 400, "nothing to change")
    assert_error(admin(client, "PATCH", f"/entries/{e['id']}", json={"question": "   "}), 400, "question")
    assert_error(admin(client, "PATCH", f"/entries/{e['id']}", json={"question": ""}), 422, "question")
    assert_error(admin(client, "PATCH", f"/entries/{e['id']}", json={"status": "approved"}), 422, "status")
    assert_error(admin(client, "PATCH", f"/entries/{e['id']}", json={"answer": 5}), 422, "answer")
    assert_error(admin(client, "PATCH", f"/entries/{e['id']}", json={"citations": [{"source": HANDBOOK}]}),
                 400, "citation 1")
    bad_quote = dict(e["citations"][0], quote="文档里没有这句话")
    assert_error(admin(client, "PATCH", f"/entries/{e['id']}", json={"citations": [bad_quote]}),
                 400, "no such quote")
    assert_error(admin(client, "PATCH", "/entries/999999", json={"answer": "x"}), 404, "999999")
    assert_error(admin(client, "GET", "/entries/abc"), 422, "entry_id")
    assert_error(admin(client, "GET", "/entries/0"), 422, "entry_id")
    assert_error(admin(client, "GET", "/entries", params={"status": "pending"}), 422, "status")
    assert ok(admin(client, "GET", f"/entries/{e['id']}"))["question"] == "生病不能上班要向谁报备？"


def test_approved_entry_answers_with_its_citations(client):
    question = "年假要提前多久申请？"
    e = entry_from_answer(client, question)
    assert ask(client, question)["source_kind"] == "documents"  # not yet approved
    approved = ok(admin(client, "POST", f"/entries/{e['id']}/approve"))
    assert approved["status"] == "approved" and approved["approved_at"]
    assert approved["citations"] and approved["topic"]
    assert_slices(client, approved["citations"])
    a = ask(client, question)
    assert a["answered"] and a["source_kind"] == "faq", a
    assert a["answer"] == approved["answer"]
    key = ("source", "start", "end", "quote")
    assert [[c[k] for k in key] for c in a["citations"]] == [[c[k] for k in key] for c in approved["citations"]]
    assert e["id"] in {x["id"] for x in entries(client, status="approved")}
    assert ok(admin(client, "GET", f"/entries/{e['id']}"))["hits"] >= 1
    # an approved entry keeps the answer contract
    assert_error(admin(client, "PATCH", f"/entries/{e['id']}", json={"answer": ""}), 400, "empty")
    assert_error(admin(client, "PATCH", f"/entries/{e['id']}", json={"answer": "见 [7]"}), 400, "[7]")
    # an entry without an answer cannot be approved; an unknown one is 404
    empty = ok(admin(client, "POST", "/entries", json={"question": "食堂几点开门？"}), 201)
    assert_error(admin(client, "POST", f"/entries/{empty['id']}/approve"), 400, "empty")
    assert_error(admin(client, "POST", "/entries/999999/approve"), 404)


def test_reject(client):
    question = "停车位怎么申请？"
    e = entry_from_answer(client, question)
    rejected = ok(admin(client, "POST", f"/entries/{e['id']}/reject", actor="李老师"))
    assert rejected["status"] == "rejected"
    assert e["id"] in {x["id"] for x in entries(client, status="rejected")}
    assert e["id"] not in {x["id"] for x in entries(client, status="candidate")}
    assert ask(client, question)["source_kind"] != "faq"
    history = ok(admin(client, "GET", f"/entries/{e['id']}"))["history"]
    assert any(h["action"] == "reject" and h["actor"] == "web:李老师" for h in history)
    assert_error(admin(client, "POST", "/entries/999999/reject"), 404)


def test_merge(client):
    keep = entry_from_answer(client, "生病了怎么请假？", topic="考勤")
    other = entry_from_answer(client, "病假超过三天由谁审批？")
    merged = ok(admin(client, "POST", "/merge", json={"keep_id": keep["id"], "other_id": other["id"]}))
    assert merged["id"] == keep["id"] and merged["topic"] == "考勤"
    assert "病假超过三天由谁审批？" in merged["alt_questions"]
    spans = {(c["source"], c["start"], c["end"]) for c in merged["citations"]}
    assert {(c["source"], c["start"], c["end"]) for c in keep["citations"] + other["citations"]} == spans
    assert_slices(client, merged["citations"])
    gone = ok(admin(client, "GET", f"/entries/{other['id']}"))
    assert gone["status"] == "merged" and gone["merged_into"] == keep["id"]
    assert other["id"] in {x["id"] for x in entries(client, status="merged")}
    # the merged entry can be approved and then answers the folded-in question too
    ok(admin(client, "POST", f"/entries/{keep['id']}/approve"))
    a = ask(client, "病假超过三天由谁审批？")
    assert a["source_kind"] == "faq"
    # bad merges
    assert_error(admin(client, "POST", "/merge", json={"keep_id": keep["id"], "other_id": keep["id"]}), 400, "itself")
    assert_error(admin(client, "POST", "/merge", json={"keep_id": keep["id"], "other_id": other["id"]}), 400, "merged")
    assert_error(admin(client, "POST", "/merge", json={"keep_id": keep["id"], "other_id": 999999}), 404)
    assert_error(admin(client, "POST", "/merge", json={"keep_id": "1", "other_id": 2}), 422, "keep_id")


def test_usage_shows_clusters_and_gaps(client):
    for q in ("出差的哪些费用可以报销？", "出差的哪些费用可以报销？", "公司食堂几点开饭？"):
        ask(client, q)
    ok(client.post("/api/feedback", json={"question": "报销需要附上哪些材料？", "answer": "……",
                                          "rating": "down", "comment": "没说要不要原件"}))
    u = ok(admin(client, "GET", "/usage"))
    clusters = {c["question"]: c for c in u["clusters"]}
    assert clusters["出差的哪些费用可以报销？"]["count"] >= 2
    assert clusters["出差的哪些费用可以报销？"]["answered"] >= 2
    gaps = {g["question"]: g for g in u["gaps"]}
    assert gaps["公司食堂几点开饭？"]["refused"] >= 1
    assert gaps["报销需要附上哪些材料？"]["thumbs_down"] == 1
    assert "没说要不要原件" in gaps["报销需要附上哪些材料？"]["comments"]
    assert len(ok(admin(client, "GET", "/usage", params={"limit": 1}))["clusters"]) == 1
    assert_error(admin(client, "GET", "/usage", params={"limit": 0}), 422, "limit")


# -- export / import -----------------------------------------------------------------------------

def test_export_csv_and_reimport_round_trips(client):
    e = entry_from_answer(client, "报销需要附上哪些材料？", topic="报销")
    r = admin(client, "GET", "/export", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert re.fullmatch(r'attachment; filename="faq-\d{8}\.csv"', r.headers["content-disposition"])
    exported = r.content
    assert exported.startswith("\ufeff".encode())  # spreadsheet programs read it as UTF-8
    rows = list(csv.DictReader(io.StringIO(exported.decode("utf-8-sig"))))
    assert len(rows) == len(entries(client)) and rows
    row = next(x for x in rows if int(x["id"]) == e["id"])
    assert json.loads(row["citations"]) == e["citations"] and row["topic"] == "报销"

    # the same file back: every entry updated in place, nothing changes
    res = ok(admin(client, "POST", "/import", params={"format": "csv"}, content=exported,
                   headers={"Content-Type": "text/csv"}))
    assert res == {"added": 0, "updated": len(rows)}
    assert admin(client, "GET", "/export", params={"format": "csv"}).content == exported

    # edited in a spreadsheet (saved as GB18030) with one new row: the edit and the row arrive
    row["answer"] = "发票原件和行程单 [1]，交部门经理签字。"
    new = {k: "" for k in rows[0]} | {"question": "报销单交给谁签字？", "answer": "交部门经理签字。"}
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows([row, new])
    res = ok(admin(client, "POST", "/import", params={"format": "csv"}, content=buf.getvalue().encode("gb18030")))
    assert res == {"added": 1, "updated": 1}
    assert ok(admin(client, "GET", f"/entries/{e['id']}"))["answer"] == row["answer"]
    added = [x for x in entries(client) if x["question"] == "报销单交给谁签字？"]
    assert len(added) == 1 and added[0]["origin"] == "import" and added[0]["status"] == "candidate"

    # JSON export re-imports too; Markdown is the handbook of approved entries
    doc = ok(admin(client, "GET", "/export", params={"format": "json"}))
    assert doc["format"] == "zhkb-faq" and len(doc["entries"]) == len(rows) + 1
    res = ok(admin(client, "POST", "/import", params={"format": "json"}, content=json.dumps(doc).encode()))
    assert res == {"added": 0, "updated": len(rows) + 1}
    md = admin(client, "GET", "/export", params={"format": "md", "status": "approved"})
    assert md.headers["content-type"].startswith("text/markdown")
    for x in entries(client, status="approved"):
        assert f"### {x['question']}" in md.text
    assert "报销单交给谁签字？" not in md.text  # a candidate is not in the handbook

    # a bad file writes nothing
    count = len(entries(client))
    bad = buf.getvalue().replace('"question"', "question").replace("报销单交给谁签字？", "")
    assert_error(admin(client, "POST", "/import", params={"format": "csv"}, content=bad.encode()), 400, "no question")
    assert_error(admin(client, "POST", "/import", params={"format": "json"}, content=b"{not json"), 400, "JSON")
    assert_error(admin(client, "POST", "/import", params={"format": "csv"}, content=b"  "), 400, "empty")
    assert_error(admin(client, "POST", "/import", params={"format": "xlsx"}, content=b"x"), 422, "format")
    assert_error(admin(client, "GET", "/export", params={"format": "pdf"}), 422, "format")
    assert len(entries(client)) == count


# -- flagged after a document changes ------------------------------------------------------------

def test_changed_document_flags_its_entry_after_reingest(tmp_path):
    cfg = with_trainers(tiny_config(tmp_path))
    question = "请病假要走什么流程？"
    with LiveServer(cfg) as live:
        c = trainer_client(live.url)
        e = entry_from_answer(c, question)
        assert HANDBOOK in {x["source"] for x in e["citations"]}
        ok(admin(c, "POST", f"/entries/{e['id']}/approve"))
        assert ask(c, question)["source_kind"] == "faq"
    doc = Path(cfg.corpus_dir) / HANDBOOK
    doc.write_text(CORPUS[HANDBOOK].replace("员工手册\n", "员工手册（2025 年修订）\n前言：本手册适用于全体员工。\n"),
                   encoding="utf-8")
    run_ingest(cfg, progress=False)
    with LiveServer(cfg) as live:
        c = trainer_client(live.url)
        flagged = entries(c, status="flagged")
        assert [x["id"] for x in flagged] == [e["id"]]
        assert HANDBOOK in flagged[0]["flag_reason"]
        assert_slices(c, flagged[0]["citations"])  # quotes relocated in the new text
        assert ask(c, question)["source_kind"] != "faq"  # not served until reviewed
        assert ok(admin(c, "POST", "/check"))["flagged"] == []  # already flagged
        # the trainer reviews and approves it again
        ok(admin(c, "POST", f"/entries/{e['id']}/approve"))
        assert ask(c, question)["source_kind"] == "faq"


# -- the page ------------------------------------------------------------------------------------

def test_trainers_page_is_self_contained_and_linked_from_the_chat(client):
    r = client.get("/trainers")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["cache-control"] == "no-store"
    assert not OUTSIDE_URL.search(r.text)
    assert ADMIN_TOKEN not in r.text and "kb_session" not in r.text  # the cookie stays HttpOnly
    assert client.headers["X-CSRF-Token"] in r.text  # the page's own CSRF token, for its calls
    for asset in ("/kb-static/faq.js", "/kb-static/faq.css"):
        assert asset in r.text
        a = client.get(asset)
        assert a.status_code == 200 and not OUTSIDE_URL.search(a.text)
    assert ".innerHTML" not in client.get("/kb-static/faq.js").text  # text goes in as text
    assert 'href=\\"/trainers\\"' in client.get("/config").text  # the chat sidebar links it
    paths = client.get("/openapi.json").json()["paths"]
    assert f"{API}/entries/{{entry_id}}/approve" in paths and f"{API}/import" in paths


CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[1] / "screenshots"


@pytest.mark.browser
def test_trainers_page_sign_in_and_approve(server, client):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: install Debian's chromium (make browser-deps)")
    from playwright.sync_api import sync_playwright

    target = entry_from_answer(client, "差旅报销的流程是什么？")
    entry_from_answer(client, "出差的哪些费用可以报销？", topic="报销")
    ok(admin(client, "POST", "/entries", json={"question": "公司有班车吗？"}), 201)
    requests: list[str] = []
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
            page.set_default_timeout(20_000)
            page.on("request", lambda r: requests.append(r.url))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(server.url + "/trainers")  # not logged in: the login page
            page.wait_for_url("**/login?next=%2Ftrainers")

            # a wrong password: a Chinese error, still the login page, no session cookie
            page.locator("#lg-name").fill("张老师")
            page.locator("#lg-password").fill("not-the-password")
            page.locator("#lg-submit").click()
            error = page.locator("#lg-error")
            error.wait_for(state="visible")
            assert "账户名或密码不正确" in error.inner_text()
            assert "/login" in page.url
            assert not [c for c in page.context.cookies() if c["name"] == "kb_session"]

            # the right one: the trainers' page, the list grouped by topic, candidates first
            page.locator("#lg-name").fill("张老师")
            page.locator("#lg-password").fill(PASSWORD)
            page.locator("#lg-submit").click()
            page.wait_for_url("**/trainers")
            cookie = next(c for c in page.context.cookies() if c["name"] == "kb_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
            assert page.evaluate("document.cookie").find("kb_session") == -1
            assert "张老师" in page.locator("#fq-who").inner_text()
            row = page.locator(f".fq-row[data-id='{target['id']}']")
            row.wait_for()
            assert page.locator(".fq-group-title", has_text="报销").count() >= 1
            assert page.locator("[data-status=candidate] .fq-count").inner_text() == str(
                len(entries(client, status="candidate")))

            # open the entry: its question, answer and citations (source · section · quote)
            row.click()
            page.locator("#fq-q").wait_for(state="visible")
            assert page.locator("#fq-q").input_value() == target["question"]
            assert page.locator("#fq-a").input_value() == target["answer"]
            cites = page.locator("#fq-cite-list .fq-cite")
            assert cites.count() == len(target["citations"])
            first = target["citations"][0]
            assert cites.first.locator(".fq-quote").inner_text() == first["quote"]
            assert first["source"] in cites.first.inner_text()

            # edit the topic and approve: saved, approved, answering from the FAQ
            page.locator("#fq-topic").fill("差旅报销")
            page.locator("#fq-approve").click()
            page.locator("#fq-ed-status.fq-approved").wait_for()
            page.locator("#fq-toast", has_text="已批准").wait_for()
            got = ok(admin(client, "GET", f"/entries/{target['id']}"))
            assert got["status"] == "approved" and got["topic"] == "差旅报销"
            assert {h["actor"] for h in got["history"] if h["action"] == "approve"} == {"web:张老师"}
            assert ask(client, target["question"])["source_kind"] == "faq"
            assert page.locator(f".fq-row[data-id='{target['id']}']").count() == 0  # left the candidates
            page.locator("[data-status=approved]").click()
            page.locator(f".fq-row[data-id='{target['id']}']").wait_for()
            page.locator("[data-status=all]").click()  # every entry, grouped by topic
            page.locator(f".fq-row.on[data-id='{target['id']}'] .fq-approved").wait_for()
            page.locator("#fq-toast").wait_for(state="hidden")
            SHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SHOTS / "trainers.png"))

            # signing out ends the session: the page sends back to the login page
            page.locator("#fq-signout").click()
            page.wait_for_url("**/login?out=1")
            page.locator("#lg-notice", has_text="你已退出登录").wait_for()
            page.goto(server.url + "/trainers")
            page.wait_for_url("**/login?next=%2Ftrainers")
        finally:
            browser.close()
    assert not dialogs
    own = urlsplit(server.url).netloc
    outside = [u for u in requests if not u.startswith(("data:", "blob:")) and urlsplit(u).netloc != own]
    assert requests and not outside, outside
