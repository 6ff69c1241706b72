"""The script widget (``/widget.js``) and the options and user id it hands to ``/embed``.

Over HTTP: the script's type and caching, ``/embed``'s URL options validated and escaped, the
``user`` field of ``/api/ask`` and ``/api/feedback`` stored (ask log, feedback) through
migrations that keep old rows. In a real headless Chromium (as tests/test_browser.py): a portal
page on another origin (a tiny static server on another port) with two widgets, one opened,
asked, its citation opened inside it, the other still closed; hostile option values that are
neither run nor applied; every request of the page and its frames goes to the two origins."""

from __future__ import annotations

import http.server
import json
import re
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
from conftest_app import ADMIN_TOKEN, STARTERS, XSS_IMG, LiveServer, tiny_config
from playwright.sync_api import expect
from test_browser import ARGS, CHROMIUM, SHOTS, TIMEOUT, mark_is_a_slice
from test_legacy_import import FAQ_V1, FAQ_V2

from app.feedback import FeedbackStore
from kb.faq.store import FaqStore, days_ago

OUTSIDE_URL = re.compile(r"(?:https?:)?//(?!www\.w3\.org/2000/svg)[a-z0-9.-]+\.[a-z]{2,}", re.I)
HOSTILE_COLOR = "red;background:url(http://evil.example/x.png)"
DEFAULT_BG = "rgb(48, 86, 211)"  # the widget's default colour, #3056d3


class Portal:
    """A stand-in for the HR portal: a static server on its own port of 127.0.0.1 serving
    ``pages`` (path -> HTML), each with a strict Content-Security-Policy of its own that lets
    it load scripts and frames from the knowledge base only."""

    def __init__(self):
        self.pages: dict[str, str] = {}
        self.kb = ""
        pages = self.pages
        portal = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                body = pages.get(urlsplit(self.path).path)
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Security-Policy",
                                 f"default-src 'none'; script-src {portal.kb}; frame-src {portal.kb}")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def portal_page(*scripts: str, head: str = "") -> str:
    return ("<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>入职门户</title>"
            + head + "</head><body><h1>新员工入职门户</h1><p>欢迎加入公司。</p>" + "".join(scripts)
            + "</body></html>")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The portal, and the knowledge base whose embed_origins lists it."""
    portal = Portal()
    cfg = tiny_config(tmp_path_factory.mktemp("widget")).replace(
        app__embed_origins=("'self'", portal.url))
    try:
        with LiveServer(cfg) as live:
            portal.kb = live.url
            src = live.url + "/widget.js"
            portal.pages["/two.html"] = portal_page(
                f'<script src="{src}" data-position="bottom-right" data-offset-x="24" data-offset-y="30"'
                ' data-z-index="5000" data-color="#0a7d44" data-title="人事问答" data-user="emp-0042"></script>',
                f'<script src="{src}" data-position="top-left" data-color="#B42318" data-title="财务问答"'
                ' async></script>',
            )
            portal.pages["/open.html"] = portal_page(head=(  # in <head>: mounted once <body> exists
                f'<script src="{src}" data-open data-question="{STARTERS[1]}" data-position="bottom-left"'
                ' data-user="emp-7"></script>'))
            portal.pages["/hostile.html"] = portal_page(
                f'<script src="{src}" data-open="true" data-title="{XSS_IMG}" data-color="{HOSTILE_COLOR}"'
                ' data-question="&lt;script&gt;alert(2)&lt;/script&gt;差旅报销的流程是什么？"'
                ' data-z-index="1;position:static" data-offset-x="10px;top:0" data-position="center"'
                ' data-user="&lt;b&gt;x&lt;/b&gt;"></script>')
            yield portal, live
    finally:
        portal.close()


@pytest.fixture(scope="module")
def client(site):
    with httpx.Client(base_url=site[1].url, timeout=30) as c:
        yield c


def admin_feedback(client) -> list[dict]:
    return client.get("/api/feedback", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()


def ask_log(live: LiveServer, question: str) -> list[dict]:
    db = sqlite3.connect(Path(live.config.data_dir) / "kb.sqlite3")  # the one database (kb.store)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM ask_log WHERE question = ?", (question,))]
    finally:
        db.close()


def embed_config(html: str) -> dict:
    m = re.search(r'<script id="kb-config" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


# -- over HTTP --------------------------------------------------------------------------------

def test_widget_js_is_cacheable_javascript(client):
    r = client.get("/widget.js")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "max-age=" in r.headers["cache-control"] and "public" in r.headers["cache-control"]
    etag = r.headers["etag"]
    again = client.get("/widget.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.content
    js = r.text
    for banned in ("eval(", "new Function", "innerHTML", "outerHTML", "insertAdjacentHTML",
                   "document.write", "setAttribute(\"style\"", "cssText"):
        assert banned not in js, banned
    assert not OUTSIDE_URL.search(js)  # nothing loaded from elsewhere
    assert "document.currentScript" in js  # its origin comes from its own src
    assert "打开问答助手" in js and "关闭" in js


def test_embed_reflects_options_only_validated_and_escaped(client):
    r = client.get("/embed", params={"title": XSS_IMG, "q": "<script>alert(1)</script>请假",
                                     "user": "emp-0042", "color": HOSTILE_COLOR})
    assert r.status_code == 200
    html = r.text
    assert "<img" not in html and "<script>alert" not in html
    assert "<title>&lt;img src=x onerror=alert(1)&gt;</title>" in html
    cfg = embed_config(html)
    assert cfg["title"] == XSS_IMG  # as text, for textContent
    assert cfg["question"] == "<script>alert(1)</script>请假"
    assert cfg["user"] == "emp-0042"
    assert cfg["accent"] is None and "evil.example" not in html  # the colour is not applied
    assert "frame-ancestors 'self' http://127.0.0.1:" in r.headers["content-security-policy"]

    ok = embed_config(client.get("/embed", params={"color": "#0A7D44", "title": "人事\n问答\u202e"}).text)
    assert ok["accent"] == "#0a7d44" and ok["title"] == "人事 问答"
    for bad in ("red", "#12345", "#0a7d44;x:y", "rgb(1,2,3)", "#0a7d44 ", "url(x)"):
        assert embed_config(client.get("/embed", params={"color": bad}).text)["accent"] is None, bad
    long = embed_config(client.get("/embed", params={"title": "长" * 500, "user": "u" * 129}).text)
    assert long["title"] == "长" * 60 and long["user"] is None
    assert embed_config(client.get("/embed", params={"user": "a\u0000b"}).text)["user"] is None
    plain = embed_config(client.get("/embed").text)
    assert plain["question"] is None and plain["user"] is None and plain["title"]


def test_ask_with_user_is_in_the_ask_log(site, client):
    live = site[1]
    q = "病假三天以内谁审批？"
    r = client.post("/api/ask", json={"question": q, "user": "emp-0042"})
    assert r.status_code == 200 and r.json()["citations"]
    client.post("/api/ask", json={"question": q})
    assert sorted(row["user"] for row in ask_log(live, q)) == ["", "emp-0042"]
    # bounded and plain
    for bad in ("u" * 129, "a\nb", "a\u200bb", 42):
        r = client.post("/api/ask", json={"question": q, "user": bad})
        assert r.status_code == 422 and "user" in r.json()["detail"], bad


def test_feedback_with_user_is_stored(client):
    body = {"question": "请病假要走什么流程？", "answer": "报备 [1]", "rating": "down", "comment": "不全"}
    r = client.post("/api/feedback", json={**body, "user": "员工-张三"})
    assert r.status_code == 200
    rows = admin_feedback(client)
    assert rows[0]["id"] == r.json()["id"] and rows[0]["user"] == "员工-张三"
    r = client.post("/api/feedback", json=body)
    assert admin_feedback(client)[0]["user"] == ""
    r = client.post("/api/feedback", json={**body, "user": "x" * 129})
    assert r.status_code == 422


def test_feedback_database_of_version_1_gets_the_user_column_keeping_rows(tmp_path):
    path = tmp_path / "feedback.sqlite3"
    db = sqlite3.connect(path)  # the first release's schema, with a row
    db.executescript("""
        CREATE TABLE schema_version (version INTEGER NOT NULL);
        INSERT INTO schema_version (version) VALUES (1);
        CREATE TABLE feedback (
            id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            question TEXT NOT NULL, answer TEXT NOT NULL, citations TEXT NOT NULL DEFAULT '[]',
            rating TEXT NOT NULL CHECK (rating IN ('up', 'down')), comment TEXT NOT NULL DEFAULT '',
            channel TEXT NOT NULL DEFAULT '');
        CREATE INDEX feedback_created ON feedback (created_at);
        INSERT INTO feedback (created_at, updated_at, question, answer, rating, comment, channel)
            VALUES ('2024-01-01T00:00:00+00:00', '2024-01-01T00:00:00+00:00', '老问题', '老回答', 'up', '好', 'chat');
    """)
    db.close()
    store = FeedbackStore(tmp_path / "kb.sqlite3", legacy=path)  # imported on first use
    new_id = store.add("新问题", "新回答", "down", user="emp-1")
    old, new = store.get(1), store.get(new_id)
    assert (old["question"], old["comment"], old["channel"], old["user"]) == ("老问题", "好", "chat", "")
    assert new["user"] == "emp-1"
    assert not path.exists() and (tmp_path / "feedback.sqlite3.imported").exists()


def test_ask_log_of_version_2_gets_the_user_column_keeping_rows(tmp_path):
    path = tmp_path / "faq.sqlite3"
    db = sqlite3.connect(path)  # a file as the previous release wrote it (the FAQ's schema 2)
    db.executescript(FAQ_V1 + FAQ_V2 + "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                     "INSERT INTO schema_version VALUES (1); INSERT INTO schema_version VALUES (2);")
    db.execute("INSERT INTO ask_log (asked_at, question, answered, confidence, source_kind)"
               " VALUES (?, '旧问题？', 1, 0.9, 'documents')", (days_ago(1),))
    db.commit()
    db.close()
    store = FaqStore(tmp_path / "kb.sqlite3", legacy=path)
    store.log_question("新问题？", answered=True, user="emp-9")
    rows = {r["question"]: r for r in store.asked()}
    assert rows["旧问题？"]["user"] == "" and rows["旧问题？"]["confidence"] == 0.9
    assert rows["新问题？"]["user"] == "emp-9"


# -- in a real browser --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: install Debian's chromium (make browser-deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


class PortalVisit:
    """One browser context on the portal: every request of its pages and their frames (the
    context sees them all), every dialog, every console message about the CSP."""

    def __init__(self, browser, portal: Portal, live: LiveServer):
        self.portal, self.live = portal, live
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.csp: list[str] = []
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT)
        self.page.on("dialog", self._dialog)
        self.page.on("console", lambda m: self.csp.append(m.text) if "Content Security Policy" in m.text else None)

    def _dialog(self, d) -> None:
        self.dialogs.append(d.message)
        d.dismiss()

    def assert_only_the_two_hosts(self) -> None:
        allowed = {urlsplit(self.portal.url).netloc, urlsplit(self.live.url).netloc}
        outside = [u for u in self.requests
                   if not u.startswith(("data:", "blob:", "about:")) and urlsplit(u).netloc not in allowed]
        assert not outside, outside
        kb = urlsplit(self.live.url).netloc
        assert any(urlsplit(u).netloc == kb and urlsplit(u).path == "/api/ask" for u in self.requests), \
            "the frames' own requests were not recorded"

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser, site):
    visits: list[PortalVisit] = []

    def make() -> PortalVisit:
        v = PortalVisit(browser, *site)
        visits.append(v)
        return v

    yield make
    for v in visits:
        v.close()


def box(locator) -> dict:
    b = locator.bounding_box()
    assert b, "not visible"
    return b


def style(locator, prop: str) -> str:
    return locator.evaluate(f"el => getComputedStyle(el)[{json.dumps(prop)}]")


@pytest.mark.browser
def test_two_widgets_on_a_portal_page(visit, site, client):
    portal, live = site
    v = visit()
    page = v.page
    page.goto(portal.url + "/two.html")
    page.get_by_role("button", name="打开问答助手：人事问答").wait_for()
    page.get_by_role("button", name="打开问答助手：财务问答").wait_for()
    widgets = page.locator("kb-assistant-widget")
    assert widgets.count() == 2
    hr, fin = widgets.nth(0).locator("button"), widgets.nth(1).locator("button")
    assert hr.get_attribute("aria-label") == "打开问答助手：人事问答"
    # each in its own corner, colour and layer; nothing is framed before it is opened
    a, b = box(hr), box(fin)
    assert abs(1280 - 24 - (a["x"] + a["width"])) <= 1 and abs(900 - 30 - (a["y"] + a["height"])) <= 1
    assert abs(b["x"] - 20) <= 1 and abs(b["y"] - 20) <= 1
    assert style(hr, "backgroundColor") == "rgb(10, 125, 68)"
    assert style(fin, "backgroundColor") == "rgb(180, 35, 24)"
    assert style(hr, "zIndex") == "5000" and style(fin, "zIndex") == "2147483000"
    assert page.locator("iframe").count() == 0 and len(page.frames) == 1

    hr.click()
    assert page.get_by_role("button", name="关闭：人事问答").get_attribute("aria-expanded") == "true"
    assert fin.get_attribute("aria-expanded") == "false"
    panel = page.locator("iframe[title='人事问答']")
    p = box(panel)
    assert p["y"] + p["height"] <= a["y"] and abs(p["x"] + p["width"] - (a["x"] + a["width"])) <= 1
    frame = page.frame_locator("iframe[title='人事问答']")
    expect(frame.locator("#kb-title")).to_have_text("人事问答")
    assert style(frame.locator(".kb-head"), "backgroundColor") == "rgb(10, 125, 68)"

    question = "差旅报销的流程是什么？"
    frame.locator("#kb-input").fill(question)
    frame.locator("#kb-input").press("Enter")
    bubble = frame.locator(".kb-bot").last
    cite = bubble.locator("details.kb-cite").first
    cite.wait_for()
    assert "[1]" in bubble.locator(".kb-answer").inner_text()
    bubble.locator(".kb-ref").first.click()  # [1] opens its citation, inside the widget
    mark = cite.locator(".kb-passage mark.kb-hl")
    mark.wait_for(state="visible")
    assert mark_is_a_slice(live.url, mark.inner_text())
    assert "制度/报销制度.txt" in cite.locator(".kb-where").inner_text()
    cite.get_by_role("button", name="查看全文").click()  # the whole document, still inside it
    viewer = frame.locator("#kb-doc")
    viewer.wait_for(state="visible")
    assert mark_is_a_slice(live.url, viewer.locator("mark").inner_text())
    assert len(page.frames) == 2  # the document opened in the widget's own frame, no new page
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "widget.png"))

    # Escape closes the viewer, then the panel, and the focus returns to its button
    frame.locator("#kb-doc-close").focus()
    page.keyboard.press("Escape")
    viewer.wait_for(state="hidden")
    assert panel.is_visible()
    frame.locator("#kb-input").focus()
    page.keyboard.press("Escape")
    panel.wait_for(state="hidden")
    assert hr.get_attribute("aria-expanded") == "false"
    assert hr.evaluate("el => el.getRootNode().activeElement === el")

    # the feedback carries the portal's user id, and so does the ask log
    hr.click()
    frame.locator(".kb-bot").last.get_by_role("button", name="有帮助").click()
    frame.locator(".kb-bot").last.get_by_role("button", name="提交反馈").click()
    frame.locator(".kb-thanks").wait_for()
    row = admin_feedback(client)[0]
    assert (row["question"], row["rating"], row["user"]) == (question, "up", "emp-0042")
    assert "emp-0042" in [r["user"] for r in ask_log(live, question)]

    # the second widget was untouched: closed, unframed; opened, it is its own conversation
    assert page.locator("iframe").count() == 1
    fin.click()
    other = page.frame_locator("iframe[title='财务问答']")
    expect(other.locator("#kb-title")).to_have_text("财务问答")
    other.locator(".kb-chip").first.wait_for()
    assert other.locator(".kb-user").count() == 0
    assert style(other.locator(".kb-head"), "backgroundColor") == "rgb(180, 35, 24)"
    assert panel.is_visible() and frame.locator(".kb-thanks").count() == 1  # the first one kept its own
    page.get_by_role("button", name="关闭：财务问答").click()
    assert page.locator("iframe[title='财务问答']").is_hidden() and panel.is_visible()
    page.get_by_role("button", name="关闭：人事问答").click()
    assert panel.is_hidden()
    assert not v.dialogs and not v.csp, (v.dialogs, v.csp)
    v.assert_only_the_two_hosts()


@pytest.mark.browser
def test_widget_keyboard_and_open_on_load_with_a_question(visit, site):
    portal, live = site
    v = visit()
    page = v.page
    page.goto(portal.url + "/open.html")
    # data-open: framed at once; data-question: asked at once
    frame = page.frame_locator("iframe")
    frame.locator(".kb-user", has_text=STARTERS[1]).wait_for()
    frame.locator(".kb-bot details.kb-cite").first.wait_for()
    button = page.get_by_role("button", name="关闭问答助手")
    b = box(button)
    assert abs(b["x"] - 20) <= 1 and abs(900 - 20 - (b["y"] + b["height"])) <= 1  # bottom-left
    assert button.evaluate("el => el.tagName") == "BUTTON"
    # keyboard only: Tab reaches the button, Enter toggles it, Escape closes
    page.locator("h1").click()
    page.keyboard.press("Tab")
    assert button.evaluate("el => el.getRootNode().activeElement === el")
    page.keyboard.press("Enter")
    opener = page.get_by_role("button", name="打开问答助手")
    assert opener.get_attribute("aria-expanded") == "false"
    assert page.locator("iframe").is_hidden()
    page.keyboard.press("Enter")
    assert page.locator("iframe").is_visible()
    page.keyboard.press("Escape")
    assert page.locator("iframe").is_hidden()
    page.keyboard.press("Enter")  # the conversation is kept while closed
    assert frame.locator(".kb-user").count() == 1
    deadline = time.monotonic() + 10
    while not ask_log(live, STARTERS[1]):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert "emp-7" in [r["user"] for r in ask_log(live, STARTERS[1])]
    assert not v.dialogs and not v.csp
    v.assert_only_the_two_hosts()


@pytest.mark.browser
def test_hostile_widget_options_are_neither_run_nor_applied(visit, site, client):
    portal, live = site
    v = visit()
    page = v.page
    page.goto(portal.url + "/hostile.html")
    frame = page.frame_locator("iframe")
    frame.locator(".kb-bot details.kb-cite").first.wait_for()  # the question is asked, as text
    expect(frame.locator(".kb-user")).to_have_text("<script>alert(2)</script>差旅报销的流程是什么？")
    # the title is text: in the button's name, the frame's name and the embed page's header
    button = page.get_by_role("button", name="关闭：" + XSS_IMG)
    button.wait_for()
    assert page.locator("iframe").get_attribute("title") == XSS_IMG
    expect(frame.locator("#kb-title")).to_have_text(XSS_IMG)
    assert page.locator("img").count() == 0 and frame.locator("img").count() == 0
    # the colour, layer, offset and position fall back to their defaults
    assert style(button, "backgroundColor") == DEFAULT_BG
    assert style(button, "backgroundImage") == "none"
    assert style(button, "zIndex") == "2147483000" and style(button, "position") == "fixed"
    b = box(button)
    assert abs(1280 - 20 - (b["x"] + b["width"])) <= 1 and abs(900 - 20 - (b["y"] + b["height"])) <= 1
    src = page.locator("iframe").get_attribute("src")
    assert "color=" not in src and "evil" not in src
    assert style(frame.locator(".kb-head"), "backgroundImage").startswith("linear-gradient")
    time.sleep(0.3)
    assert not v.dialogs, v.dialogs
    assert not any("evil.example" in u for u in v.requests)
    # the user id is data: it travels as text, and is stored as text
    frame.locator(".kb-bot").last.get_by_role("button", name="没帮助").click()
    frame.locator(".kb-bot").last.get_by_role("button", name="提交反馈").click()
    frame.locator(".kb-thanks").wait_for()
    assert admin_feedback(client)[0]["user"] == "<b>x</b>"
    assert not v.csp, v.csp
    v.assert_only_the_two_hosts()


@pytest.mark.browser
def test_widget_outside_embed_origins_gets_no_chat(browser, site):
    """The script loads anywhere, but a site not in embed_origins gets a refused frame: the
    same portal page reached as localhost (another origin) shows the button, not the chat."""
    portal, live = site
    v = PortalVisit(browser, portal, live)
    try:
        page = v.page
        other = portal.url.replace("127.0.0.1", "localhost")
        page.goto(other + "/two.html")
        page.get_by_role("button", name="打开问答助手：人事问答").click()
        deadline = time.monotonic() + 10
        while not any(f.url.startswith("chrome-error:") for f in page.frames):
            assert time.monotonic() < deadline, [f.url for f in page.frames]
            page.wait_for_timeout(100)
        framed = [f for f in page.frames if f.url.startswith(live.url)]
        assert not any(f.locator("#kb-title").count() for f in framed)
        assert {urlsplit(u).hostname for u in v.requests} <= {"127.0.0.1", "localhost"}
    finally:
        v.close()


def test_embed_page_url_options_survive_quoting(client):
    """What the widget builds (URLSearchParams) is what /embed reads."""
    q = "市场部 & 销售部？#1"
    cfg = embed_config(client.get(f"/embed?q={quote(q)}&title={quote('A&B')}").text)
    assert cfg["question"] == q and cfg["title"] == "A&B"
