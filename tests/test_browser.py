"""The chat page and /embed in a real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright): starters, answers with citations, highlighted passages, escaping of hostile
document text, feedback that survives a restart, and no request to any other host."""

from __future__ import annotations

import http.server
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
from conftest_app import (
    ADMIN_TOKEN,
    CORPUS,
    STARTERS,
    XSS_IMG,
    XSS_SCRIPT,
    LiveServer,
    free_port,
    tiny_config,
)

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[1] / "screenshots"
TIMEOUT = 20_000  # ms


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: install Debian's chromium (make browser-deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LiveServer(tiny_config(tmp_path_factory.mktemp("browser"))) as live:
        yield live


class Watched:
    """A page that records every request and every dialog (alert/confirm) it raises."""

    def __init__(self, browser, base: str, width: int = 1280, height: int = 900):
        self.base = base
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT)
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", self._dialog)

    def _dialog(self, d) -> None:
        self.dialogs.append(d.message)
        d.dismiss()

    def assert_only_own_host(self) -> None:
        own = urlsplit(self.base).netloc
        outside = [u for u in self.requests
                   if not u.startswith(("data:", "blob:")) and urlsplit(u).netloc != own]
        assert self.requests and not outside, outside

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser, server):
    pages: list[Watched] = []

    def make(**kw) -> Watched:
        w = Watched(browser, server.url, **kw)
        pages.append(w)
        return w

    yield make
    for w in pages:
        w.close()


def document_text(base: str, source: str) -> str:
    return httpx.get(f"{base}/api/documents/{quote(source)}", timeout=10).json()["text"]


def mark_is_a_slice(base: str, mark_text: str) -> bool:
    texts = [document_text(base, s) for s in CORPUS]
    return bool(mark_text.strip()) and any(mark_text in t for t in texts)


# -- the Gradio chat ------------------------------------------------------------------------

def ask_in_chat(page, question: str) -> None:
    box = page.locator("#kb-input textarea")
    box.fill(question)
    box.press("Enter")


def last_answer(page):
    return page.locator("[data-testid=bot]").last


def test_chat_starter_answer_and_citation(watched, server):
    w = watched()
    page = w.page
    page.goto(server.url + "/")
    page.locator(".kb-side button", has_text=STARTERS[0]).click()
    answer = last_answer(page)
    answer.locator("details.kb-cite").first.wait_for()
    assert "[1]" in answer.inner_text()
    assert answer.locator(".kb-ref").count() >= 1
    cite = answer.locator("details.kb-cite").first
    assert cite.locator(".kb-doc").inner_text() == "员工手册"
    cite.locator("summary").click()
    mark = cite.locator(".kb-passage mark.kb-hl")
    mark.wait_for(state="visible")
    assert mark_is_a_slice(server.url, mark.inner_text())
    assert cite.locator(".kb-where").inner_text().count("字") >= 2  # where it sits
    passage = cite.locator(".kb-passage").inner_text()
    assert len(passage) > len(mark.inner_text())  # shown inside its surrounding text
    # "在全文中查看" opens the whole document with the span highlighted
    href = cite.locator("a.kb-open").get_attribute("href")
    page.goto(server.url + href)
    hit = page.locator("mark#kb-hit")
    hit.wait_for(state="visible")
    assert mark_is_a_slice(server.url, hit.inner_text())
    page.go_back()
    page.locator("#kb-chatbot").wait_for()
    # a screenshot of an answered question with its citation open
    page.locator(".kb-side button", has_text=STARTERS[1]).click()
    answer = last_answer(page)
    answer.locator("details.kb-cite").first.wait_for()
    answer.locator("details.kb-cite summary").first.click()
    answer.locator("details.kb-cite[open] mark.kb-hl").first.wait_for(state="visible")
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "chat.png"), full_page=True)
    assert not w.dialogs
    w.assert_only_own_host()


def test_chat_refusal_offers_related_questions_and_clear(watched, server):
    w = watched()
    page = w.page
    page.goto(server.url + "/")
    ask_in_chat(page, "公司食堂几点开饭？")
    answer = last_answer(page)
    answer.wait_for()
    assert "知识库中没有找到相关内容" in answer.inner_text()
    assert answer.locator("details.kb-cite").count() == 0
    options = page.locator("#kb-chatbot button.option")
    options.first.wait_for()
    assert 1 <= options.count() <= 3
    suggested = options.first.inner_text().strip()
    options.first.click()
    page.locator("[data-testid=user]", has_text=suggested).wait_for()
    page.locator("[data-testid=bot] details.kb-cite").first.wait_for()
    page.get_by_role("button", name="清空对话").click()
    page.locator("[data-testid=bot]").first.wait_for(state="detached")
    assert page.locator("[data-testid=user]").count() == 0
    w.assert_only_own_host()


def test_chat_renders_hostile_document_as_text(watched, server):
    w = watched()
    page = w.page
    page.goto(server.url + "/")
    page.locator(".kb-side button", has_text=STARTERS[2]).click()
    answer = last_answer(page)
    answer.locator("details.kb-cite").first.wait_for()
    for summary in answer.locator("details.kb-cite summary").all():
        summary.click()
    text = page.locator("#kb-chatbot").inner_text()
    assert XSS_SCRIPT in text  # the literal characters are visible
    page.get_by_text(XSS_SCRIPT).first.wait_for(state="visible")
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("#kb-chatbot script").count() == 0
    time.sleep(0.3)
    assert not w.dialogs
    # the full-document viewer escapes too
    page.goto(server.url + "/view/" + quote("网页安全.txt"))
    body = page.locator("pre.doc").inner_text()
    assert XSS_SCRIPT in body and XSS_IMG in body
    assert page.locator("img").count() == 0
    assert not w.dialogs
    w.assert_only_own_host()


def test_api_docs_page_loads_offline(watched, server):
    w = watched()
    w.page.goto(server.url + "/docs")
    try:
        import fastapi_offline  # noqa: F401
    except ImportError:
        w.page.get_by_text("/openapi.json").first.wait_for()
    else:
        w.page.get_by_text("/api/ask").first.wait_for()  # Swagger UI rendered the spec
    w.assert_only_own_host()


# -- /embed ---------------------------------------------------------------------------------

def test_embed_autosends_q_and_opens_citations(watched, server):
    w = watched(width=480, height=760)
    page = w.page
    page.goto(server.url + "/embed?q=" + quote(STARTERS[1]))
    page.locator(".kb-user", has_text=STARTERS[1]).wait_for()
    answer = page.locator(".kb-bot .kb-answer").last
    answer.wait_for()
    bubble = page.locator(".kb-bot").last
    cite = bubble.locator("details.kb-cite").first
    cite.wait_for()
    bubble.locator(".kb-ref").first.click()  # [1] in the text opens its citation
    mark = cite.locator(".kb-passage mark.kb-hl")
    mark.wait_for(state="visible")
    page.wait_for_function(
        "el => el.textContent.length > el.querySelector('mark').textContent.length",
        arg=cite.locator(".kb-passage").element_handle(),
    )
    assert mark_is_a_slice(server.url, mark.inner_text())
    assert "制度/报销制度.txt" in cite.locator(".kb-where").inner_text()
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "embed.png"))
    cite.get_by_role("button", name="查看全文").click()
    overlay = page.locator("#kb-doc")
    overlay.wait_for(state="visible")
    assert mark_is_a_slice(server.url, overlay.locator("mark").inner_text())
    page.keyboard.press("Escape")
    overlay.wait_for(state="hidden")
    assert not w.dialogs
    w.assert_only_own_host()


def test_embed_starter_hostile_text_and_refusal(watched, server):
    w = watched(width=480, height=760)
    page = w.page
    page.goto(server.url + "/embed")
    page.locator(".kb-chip", has_text=STARTERS[2]).click()
    bubble = page.locator(".kb-bot").last
    bubble.locator("details.kb-cite").first.wait_for()
    for summary in bubble.locator("details.kb-cite summary").all():
        summary.click()
    page.get_by_text(XSS_SCRIPT).first.wait_for(state="visible")
    assert page.locator("img[src='x']").count() == 0
    # a refused question shows its related questions as chips that ask
    page.locator("#kb-input").fill("公司食堂几点开饭？")
    page.locator("#kb-input").press("Enter")
    refused = page.locator(".kb-bot", has_text="知识库中没有找到相关内容")
    refused.wait_for()
    assert refused.locator("details.kb-cite").count() == 0
    chips = refused.locator(".kb-chip")
    assert 1 <= chips.count() <= 3
    n_before = page.locator(".kb-user").count()
    chips.first.click()
    page.wait_for_function(f"document.querySelectorAll('.kb-user').length > {n_before}")
    time.sleep(0.3)
    assert not w.dialogs
    w.assert_only_own_host()


def test_embed_feedback_posts_to_api(watched, server):
    w = watched(width=480, height=760)
    page = w.page
    page.goto(server.url + "/embed?q=" + quote(STARTERS[0]))
    bubble = page.locator(".kb-bot").last
    bubble.locator("details.kb-cite").first.wait_for()
    bubble.get_by_role("button", name="有帮助").click()
    bubble.locator(".kb-comment input").fill("清楚")
    bubble.get_by_role("button", name="提交反馈").click()
    bubble.locator(".kb-thanks").wait_for()
    rows = httpx.get(server.url + "/api/feedback",
                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    assert rows[0]["rating"] == "up" and rows[0]["comment"] == "清楚"
    assert rows[0]["channel"] == "api" and rows[0]["citations"]
    w.assert_only_own_host()


class HostPage:
    """A stand-in for an intranet site: serves a page that frames ``src`` in an iframe."""

    def __init__(self, src: str):
        body = f'<!doctype html><iframe id="kb" src="{src}" width="480" height="640"></iframe>'.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def assert_framing_follows_embed_origins(browser, tmp_path, path: str, ready: str, marker: str) -> None:
    """A site listed in app.embed_origins can frame ``path`` (``ready`` appears in the frame);
    another site (same machine, other origin: localhost instead of 127.0.0.1) gets a blocked
    frame in which ``marker`` never appears."""
    port = free_port()
    host = HostPage(f"http://127.0.0.1:{port}{path}")
    allowed = f"http://127.0.0.1:{host.port}"
    cfg = tiny_config(tmp_path).replace(app__embed_origins=("'self'", allowed))
    try:
        with LiveServer(cfg, port=port) as live:
            w = Watched(browser, live.url)
            try:
                page = w.page
                page.goto(allowed + "/intranet.html")
                page.frame_locator("#kb").locator(ready).first.wait_for()  # framed and working

                page.goto(f"http://localhost:{host.port}/other.html")
                deadline = time.monotonic() + 10
                while not any(f.url.startswith("chrome-error:") for f in page.frames):
                    assert time.monotonic() < deadline, [f.url for f in page.frames]
                    page.wait_for_timeout(100)  # the browser replaces a refused frame
                framed = [f for f in page.frames if f.url.startswith(live.url)]
                assert not any(f.locator(marker).count() for f in framed), \
                    f"a site outside embed_origins could frame {path}"
                hosts = {urlsplit(u).hostname for u in w.requests}
                assert hosts <= {"127.0.0.1", "localhost"}, hosts
                assert not w.dialogs
            finally:
                w.close()
    finally:
        host.close()


def test_embed_framing_follows_embed_origins(browser, tmp_path):
    assert_framing_follows_embed_origins(browser, tmp_path, "/embed?q=" + quote(STARTERS[0]),
                                         ".kb-bot details.kb-cite", "#kb-title")


# -- feedback survives a restart --------------------------------------------------------------

def wait_for_row(db_path: Path, comment: str, timeout: float = 10) -> tuple:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db_path.exists():
            db = sqlite3.connect(db_path)
            try:
                row = db.execute(
                    "SELECT id, question, answer, citations, rating, comment FROM feedback"
                    " WHERE comment = ?", (comment,),
                ).fetchone()
            finally:
                db.close()
            if row:
                return row
        time.sleep(0.1)
    raise AssertionError(f"no feedback row with comment {comment!r} in {db_path}")


def test_chat_feedback_survives_restart(browser, tmp_path):
    cfg = tiny_config(tmp_path)
    db_path = Path(cfg.data_dir) / "kb.sqlite3"  # the one database (kb.store): feedback is a table in it
    comment = "没有提到需要哪些材料"
    with LiveServer(cfg) as live:
        w = Watched(browser, live.url)
        try:
            page = w.page
            page.goto(live.url + "/")
            page.locator(".kb-side button", has_text=STARTERS[0]).click()
            last_answer(page).locator("details.kb-cite").first.wait_for()
            page.get_by_role("button", name="Dislike").last.click()
            box = page.locator("#kb-feedback").first  # Gradio repeats a Group's id inside
            box.wait_for(state="visible")
            assert "没帮助" in box.inner_text()
            page.locator("#kb-feedback-comment textarea").fill(comment)
            page.get_by_role("button", name="提交说明").click()
            box.wait_for(state="hidden")
            row = wait_for_row(db_path, comment)
            w.assert_only_own_host()
        finally:
            w.close()
    assert row[1] == STARTERS[0] and row[4] == "down" and "[1]" in row[2]
    # a new server (new app, new store) on the same data folder still has it
    with LiveServer(cfg) as again:
        rows = httpx.get(again.url + "/api/feedback",
                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
        assert [(r["id"], r["rating"], r["comment"]) for r in rows] == [(row[0], "down", comment)]
        assert rows[0]["channel"] == "chat" and rows[0]["citations"]


# -- the chat page is locked down like /embed (hardening issue) ----------------------------------

def test_chat_page_loads_nothing_from_outside_and_breaks_no_csp(watched, server):
    w = watched()
    page = w.page
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(server.url + "/")
    ask_in_chat(page, "![x](http://evil.example/p.png) 病假三天以内谁审批？ www.evil.example")
    last_answer(page).wait_for()
    user = page.locator("[data-testid=user]").last
    assert "evil.example" in user.inner_text()  # shown as text ...
    assert user.locator("img").count() == 0 and user.locator("a").count() == 0  # ... not loaded
    time.sleep(0.3)
    assert not violations, violations
    assert not any("evil.example" in u for u in w.requests)
    w.assert_only_own_host()


def test_chat_page_framing_follows_embed_origins(browser, tmp_path):
    assert_framing_follows_embed_origins(browser, tmp_path, "/", "#kb-input textarea", "#kb-input")
