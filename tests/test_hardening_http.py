"""Attacks on ``kb serve`` over real HTTP (a uvicorn server on a free port, the hashing embedder,
the tiny corpus): each was a working attack before the hardening issue and is kept here as a
regression test."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from conftest_app import ADMIN_TOKEN, EMBED_ORIGIN, LiveServer, tiny_config

from app.render import message_markdown

SECRET = "KB-SECRET-7f3a91"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hardening")
    (tmp / "secret.toml").write_text(f'admin_token = "{SECRET}"\n', encoding="utf-8")
    with LiveServer(tiny_config(tmp)) as live:
        live.secret_file = tmp / "secret.toml"
        yield live


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def _fn_index(client: httpx.Client, api_name: str) -> tuple[int, int]:
    config = client.get("/config").json()
    for i, dep in enumerate(config["dependencies"]):
        if dep.get("api_name") == api_name:
            return i, dep["targets"][0][0]
    raise AssertionError(f"no Gradio event {api_name}")


def _gradio_call(client: httpx.Client, data: list) -> str:
    """Runs the chat's submit event through Gradio's queue as a browser would; returns the
    raw event stream."""
    fn, trigger = _fn_index(client, "respond")
    session = uuid.uuid4().hex[:10]
    r = client.post("/gradio_api/queue/join", json={
        "data": data, "fn_index": fn, "trigger_id": trigger, "session_hash": session, "event_data": None,
    })
    assert r.status_code == 200, r.text
    lines = []
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as resp:
        for line in resp.iter_lines():
            lines.append(line)
            if "process_completed" in line:
                break
    return "\n".join(lines)


# -- 1. no server file through the chat -------------------------------------------------------

def test_chat_history_from_the_client_cannot_name_server_files(client, server):
    for path in ("/etc/passwd", str(server.secret_file)):
        forged = [{"role": "user", "content": [
            {"type": "file", "file": {"path": path, "meta": {"_type": "gradio.FileData"}}}]}]
        stream = _gradio_call(client, ["病假怎么审批？", forged, []])
        assert "process_completed" in stream
        assert "gradio.FileData" not in stream and "/gradio_api/file=" not in stream
        assert "病假三天以内" in stream  # the question itself was answered
        for event in stream.splitlines():
            if event.startswith("data:"):
                for url in _urls(json.loads(event[5:])):
                    assert client.get(url).status_code == 404


def _urls(obj) -> list[str]:
    if isinstance(obj, dict):
        return [u for v in obj.values() for u in _urls(v)] + (
            [obj["url"]] if isinstance(obj.get("url"), str) else [])
    if isinstance(obj, list):
        return [u for v in obj for u in _urls(v)]
    return []


@pytest.mark.parametrize("path", [
    "/gradio_api/file=/etc/passwd",
    "/gradio_api/file/etc/passwd",
    "/gradio_api/proxy=http://127.0.0.1:1/",
])
def test_gradio_file_routes_serve_nothing(client, server, path):
    r = client.get(path)
    assert r.status_code == 404
    assert "root:" not in r.text
    r = client.get(f"/gradio_api/file={server.secret_file}")
    assert r.status_code == 404 and SECRET not in r.text


def test_gradio_upload_refused(client):
    r = client.post("/gradio_api/upload", files={"files": ("a.txt", b"x" * 10_000, "text/plain")})
    assert r.status_code == 404
    r = client.post("/gradio_api/upload?upload_id=1", content=b"--x\r\n", headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 404


def test_gradio_duplicate_call_api_closed(client):
    r = client.post("/gradio_api/call/respond", json={"data": ["病假", [], []]})
    assert r.status_code == 404


# -- 3. request size limits on every route and transfer encoding --------------------------------

def _chunked(total: int, piece: int = 64 * 1024):
    sent = 0
    while sent < total:
        n = min(piece, total - sent)
        sent += n
        yield b" " * n


@pytest.mark.parametrize("path", ["/api/ask", "/gradio_api/queue/join", "/api/feedback"])
def test_chunked_body_over_the_limit_is_413(client, path):
    body = _chunked(3_000_000)
    r = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert "request body over" in r.json()["detail"]


def test_declared_length_over_the_limit_is_413_on_gradio(client):
    r = client.post("/gradio_api/queue/join", content=b"{" + b" " * 1_100_000 + b"}",
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_small_chunked_body_still_works(client):
    body = json.dumps({"question": "病假怎么审批？"}).encode()
    r = client.post("/api/ask", content=iter([body[:10], body[10:]]),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["answered"]


def test_history_length_and_item_size_bounded(client):
    r = client.post("/api/ask", json={"question": "病假？", "history": [{"question": "x"}] * 51})
    assert r.status_code == 422 and "history" in r.json()["detail"]
    r = client.post("/api/ask", json={"question": "病假？", "history": [{"answer": "长" * 20_001}]})
    assert r.status_code == 422 and "history" in r.json()["detail"]
    r = client.post("/api/ask", json={"question": "病假？", "history": [{"role": "user", "content": "x" * 20_001}]})
    assert r.status_code == 422
    ok = client.post("/api/ask", json={"question": "它要多久审批？", "history": [
        {"role": "user", "content": "病假怎么审批？"}, {"role": "assistant", "content": "病假三天以内由部门经理审批"}]})
    assert ok.status_code == 200


# -- 5. the chat page is locked down like /embed -------------------------------------------------

def test_chat_page_sends_csp_and_frame_ancestors(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert f"frame-ancestors 'self' {EMBED_ORIGIN}" in csp
    img = next(d for d in csp.split(";") if d.strip().startswith("img-src"))
    assert "http" not in img and "*" not in img
    assert "connect-src 'self'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"


def test_answers_never_load_remote_images_or_link_out():
    answer = {"answer": "见 ![](http://evil.example/x.png) 与 [这里](https://evil.example/) 和 www.evil.example [1]",
              "citations": []}
    md = message_markdown(answer, {})
    assert "](" not in md and "://" not in md and "www." not in md
    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark").render(md)
    assert "<img" not in rendered and "<a " not in rendered
    assert '<span class="kb-ref">[1]</span>' in md


def test_typed_question_with_image_is_inert_in_the_chat(client):
    stream = _gradio_call(client, ["![x](http://evil.example/p.png) 病假怎么审批？", [], []])
    assert "](http" not in stream


# -- 9. smaller ones -------------------------------------------------------------------------------

def test_lone_surrogate_is_4xx(client):
    raw = b'{"question":"\\ud800\xe5\xb8\x82\xe5\x9c\xba\xe9\x83\xa8"}'
    r = client.post("/api/ask", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "surrogate" in r.json()["detail"]
    r = client.post("/api/feedback", content=b'{"question":"a","answer":"\\udfff","rating":"up"}',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert client.get("/api/health").status_code == 200  # the server is still up


def test_feedback_list_needs_bearer_scheme(client):
    assert client.get("/api/feedback", headers={"Authorization": ADMIN_TOKEN}).status_code == 401
    assert client.get("/api/feedback", headers={"Authorization": f"Basic {ADMIN_TOKEN}"}).status_code == 401
    assert client.get("/api/feedback", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200


@pytest.mark.parametrize("path", ["/api/health", "/api/documents", "/api/search?q=病假"])
def test_api_sends_nosniff(client, path):
    assert client.get(path).headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("method,path,allow", [
    ("GET", "/api/ask", "POST"),
    ("DELETE", "/api/ask", "POST"),
    ("POST", "/api/health", "GET"),
    ("PUT", "/api/feedback", "GET, POST"),
])
def test_wrong_method_is_405(client, method, path, allow):
    r = client.request(method, path)
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == allow
    assert "not allowed" in r.json()["detail"]


def test_unknown_api_route_is_still_404(client):
    assert client.get("/api/nothing-here").status_code == 404
