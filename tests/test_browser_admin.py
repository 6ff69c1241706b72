"""The documents page in a real headless Chromium (Debian's /usr/bin/chromium, Playwright): an
admin logs in, uploads a docx and a PDF made here with the file picker, watches the job finish,
asks in the chat and opens the new docx's citation, disables the document (no longer cited),
deletes it (gone); hostile file names and text stay text; a trainer cannot reach the page."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from conftest_app import LiveServer, add_user
from test_browser import ARGS, CHROMIUM, SHOTS, TIMEOUT, Watched, ask_in_chat, last_answer
from test_documents_admin import (
    DOCX,
    DOCX_QUESTION,
    PDF,
    admin_config,
    docx_bytes,
    pdf_bytes,
)

pytestmark = pytest.mark.browser

HOSTILE_NAME = "<img src=x onerror=alert(1)>.md"
HOSTILE_TEXT = "# <script>alert(2)</script>标题\n正文里有 <b onmouseover=alert(3)>粗体</b> 和 &amp; 符号。\n"


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
    cfg = admin_config(tmp_path_factory.mktemp("browser-admin"))
    with LiveServer(cfg) as live:
        add_user(cfg, "hr-admin", "admin", "admin-pass-123")
        add_user(cfg, "trainer1", "trainer", "trainer-pass-123")
        yield live


def log_in(page, base: str, name: str, password: str, target: str = "/admin") -> None:
    page.goto(f"{base}/login?next={target}")
    page.fill("#lg-name", name)
    page.fill("#lg-password", password)
    page.click("#lg-submit")


def row(page, source: str):
    return page.locator(f'#ad-table tbody tr[data-source="{source}"]')


def wait_job_done(page, kind: str, source: str) -> None:
    """The job card of this kind ("上传", "停用", "删除" …) for ``source`` says done."""
    card = page.locator("#ad-jobs .ad-job", has_text=f"{kind}：{source}").first
    card.locator("[data-status=done]").wait_for(timeout=60_000)


def test_admin_uploads_asks_disables_and_deletes(browser, server):
    w = Watched(browser, server.url)
    page = w.page
    try:
        log_in(page, server.url, "hr-admin", "admin-pass-123")
        page.wait_for_url("**/admin")
        page.locator("#ad-table tbody tr").first.wait_for()
        assert "文档管理" in page.title()

        page.set_input_files("#ad-files", files=[
            {"name": DOCX, "mimeType": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
             "buffer": docx_bytes()},
            {"name": PDF, "mimeType": "application/pdf", "buffer": pdf_bytes()},
        ])
        page.locator("#ad-results li.ok", has_text=DOCX).wait_for()
        page.locator("#ad-results li.ok", has_text=PDF).wait_for()
        wait_job_done(page, "上传", DOCX)
        job = page.locator("#ad-jobs .ad-job").first
        assert "已完成" in job.inner_text() and DOCX in job.inner_text()
        row(page, DOCX).locator(".ad-indexed").wait_for()
        assert "已索引" in row(page, PDF).inner_text()
        assert "tests-admin" not in row(page, DOCX).inner_text() and "hr-admin" in row(page, DOCX).inner_text()

        # open it: text, outline, chunks
        row(page, DOCX).locator("button[data-op=open]").click()
        page.locator("#ad-detail").wait_for(state="visible")
        assert "两天" in page.locator("#ad-d-text").inner_text()
        meta = page.locator("#ad-d-meta").inner_text()
        assert DOCX in meta and " 块" in meta and "object" not in meta
        page.click("#ad-detail .fq-tabs button[data-tab=chunks]")
        assert page.locator("#ad-d-chunks .ad-chunk").count() >= 1
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "admin-documents.png"), full_page=True)

        # ask in the chat: cited from the new docx, and the citation opens the passage
        page.goto(server.url + "/")
        ask_in_chat(page, DOCX_QUESTION)
        answer = last_answer(page)
        answer.locator("details.kb-cite").first.wait_for()
        cite = answer.locator("details.kb-cite", has_text="远程办公").first
        cite.locator("summary").click()
        mark = cite.locator(".kb-passage mark.kb-hl")
        mark.wait_for(state="visible")
        assert "远程办公" in mark.inner_text()
        href = cite.locator("a.kb-open").get_attribute("href")
        assert href.startswith("/view/")
        page.goto(server.url + href)
        hit = page.locator("mark#kb-hit")
        hit.wait_for(state="visible")
        assert hit.inner_text() in docx_text(server)

        # disable it: no longer cited
        page.goto(server.url + "/admin")
        row(page, DOCX).locator("button[data-op=disable]").click()
        row(page, DOCX).locator(".ad-disabled").wait_for()
        wait_job_done(page, "停用", DOCX)
        page.goto(server.url + "/")
        ask_in_chat(page, DOCX_QUESTION)
        page.wait_for_function("() => document.querySelectorAll('[data-testid=bot]').length >= 1")
        answer = last_answer(page)
        answer.locator("p, details").first.wait_for()
        page.wait_for_timeout(300)
        assert "远程办公制度" not in answer.inner_text()

        # delete it: gone from the list
        page.goto(server.url + "/admin")
        delete = row(page, DOCX).locator("button[data-op=delete]")
        delete.click()
        assert delete.inner_text() == "确认删除"
        delete.click()
        row(page, DOCX).wait_for(state="detached")
        wait_job_done(page, "删除", DOCX)
        assert not (server.config.corpus_dir / DOCX).exists()
        assert w.dialogs == []
        w.assert_only_own_host()
    finally:
        w.close()


def docx_text(server) -> str:
    return server.app.state.service.document(DOCX).text if DOCX in server.app.state.service.index.documents \
        else ""


def test_hostile_names_and_text_dropped_on_the_page_are_shown_as_text(browser, server, tmp_path):
    w = Watched(browser, server.url)
    page = w.page
    try:
        log_in(page, server.url, "hr-admin", "admin-pass-123")
        page.wait_for_url("**/admin")
        page.locator("#ad-table tbody tr").first.wait_for()
        path = tmp_path / "hostile.md"
        path.write_text(HOSTILE_TEXT, encoding="utf-8")
        # dropped on the page (drag and drop), not picked
        data = page.evaluate_handle(
            """([name, b64]) => { const dt = new DataTransfer();
                 const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                 dt.items.add(new File([bytes], name, {type: "text/markdown"})); return dt; }""",
            [HOSTILE_NAME, base64.b64encode(path.read_bytes()).decode()])
        page.dispatch_event("#ad-drop", "drop", {"dataTransfer": data})
        wait_job_done(page, "上传", HOSTILE_NAME)
        r = row(page, HOSTILE_NAME)
        r.locator(".ad-indexed").wait_for()
        assert HOSTILE_NAME in r.inner_text()
        assert "<script>alert(2)</script>标题" in r.inner_text()  # the title, as text
        r.locator("button[data-op=open]").click()
        page.locator("#ad-detail").wait_for(state="visible")
        assert "<b onmouseover=alert(3)>" in page.locator("#ad-d-text").inner_text()
        assert page.locator("#ad-detail b, #ad-table img, #ad-detail script").count() == 0
        assert w.dialogs == []
    finally:
        w.close()


def test_a_trainer_cannot_reach_the_documents_page(browser, server):
    w = Watched(browser, server.url)
    page = w.page
    try:
        log_in(page, server.url, "trainer1", "trainer-pass-123", target="/trainers")
        page.wait_for_url("**/trainers")
        response = page.goto(server.url + "/admin")
        assert response.status == 403
        assert "没有权限" in page.content()
        assert page.locator("#ad-table").count() == 0
    finally:
        w.close()


def test_the_page_without_a_login_goes_to_the_login_form(browser, server):
    w = Watched(browser, server.url)
    try:
        w.page.goto(server.url + "/admin")
        w.page.wait_for_url("**/login?next=%2Fadmin")
        assert w.page.locator("#lg-name").count() == 1
    finally:
        w.close()


_ = Path, TIMEOUT
