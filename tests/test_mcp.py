"""The MCP server at /mcp over real HTTP, driven by the official SDK's own client
(``streamable_http_client`` + ``ClientSession``): initialize, list the tools, call each; the
citations and hits slice their documents exactly; API keys when ``app.require_key``."""

from __future__ import annotations

from urllib.parse import quote

import anyio
import httpx
import httpx2
import pytest
from conftest_app import LiveServer, tiny_config
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from kb.store import open_key_store

QUESTION = "请病假要走什么流程？"


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("mcp")


@pytest.fixture(scope="module")
def server(tmp):
    with LiveServer(tiny_config(tmp)) as live:
        yield live


@pytest.fixture(scope="module")
def keyed(tmp, server):
    cfg = tiny_config(tmp).replace(app__require_key=True)
    with LiveServer(cfg) as live:
        live.key = open_key_store(cfg).add("agent", "ask")
        yield live


def session_run(url: str, work, key: str | None = None):
    """Runs ``await work(session)`` in an initialized MCP client session; returns its result and
    the initialize result."""

    async def main():
        headers = {"Authorization": f"Bearer {key}"} if key else None
        # the SDK's transport takes an httpx2 client (its HTTP library) for headers
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http, \
                streamable_http_client(url + "/mcp", http_client=http) as (read, write), \
                ClientSession(read, write) as session:
            init = await session.initialize()
            return await work(session), init

    return anyio.run(main)


def leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in leaves(e)]
    return [exc]


def document_text(server, source: str) -> str:
    return httpx.get(f"{server.url}/api/documents/{quote(source)}", timeout=30).json()["text"]


def test_initialize_and_list_tools(server):
    async def work(s):
        return await s.list_tools()

    tools, init = session_run(server.url, work)
    assert init.server_info.name == "kb"
    by_name = {t.name: t for t in tools.tools}
    assert set(by_name) == {"search", "ask", "get_document"}
    assert set(by_name["search"].input_schema["properties"]) == {"query", "k"}
    assert set(by_name["get_document"].input_schema["properties"]) == {"source", "start", "end"}
    assert by_name["get_document"].input_schema["required"] == ["source"]
    ask_out = by_name["ask"].output_schema
    assert {"answer", "answered", "citations", "related"} <= set(ask_out["properties"])


def test_ask_returns_text_and_citations_that_slice(server):
    async def work(s):
        return await s.call_tool("ask", {"question": QUESTION})

    result, _ = session_run(server.url, work)
    assert not result.is_error
    a = result.structured_content
    assert a["answered"] is True and a["citations"]
    text = result.content[0].text
    assert text.startswith(a["answer"])  # the answer, then its numbered sources
    for c in a["citations"]:
        assert f"[{c['n']}]" in a["answer"] and f"[{c['n']}] {c['source']}" in text
        assert document_text(server, c["source"])[c["start"]:c["end"]] == c["quote"]
    api = httpx.post(server.url + "/api/ask", json={"question": QUESTION}, timeout=30).json()
    assert a["answer"] == api["answer"] and a["citations"] == api["citations"]


def test_search_and_get_document_slice(server):
    async def work(s):
        found = await s.call_tool("search", {"query": "报销流程 发票", "k": 2})
        slices = []
        for h in found.structured_content["hits"]:
            slices.append(await s.call_tool("get_document", {"source": h["source"], "start": h["start"],
                                                             "end": h["end"]}))
        whole = await s.call_tool("get_document", {"source": "制度/报销制度.txt"})
        return found, slices, whole

    (found, slices, whole), _ = session_run(server.url, work)
    hits = found.structured_content["hits"]
    assert 1 <= len(hits) <= 2 and hits[0]["source"] == "制度/报销制度.txt"
    for h, got in zip(hits, slices, strict=True):
        assert not got.is_error
        assert got.structured_content["text"] == h["quote"] == document_text(server, h["source"])[h["start"]:h["end"]]
    w = whole.structured_content
    assert w["text"] == document_text(server, "制度/报销制度.txt") and w["start"] == 0 and w["end"] == w["length"]


def test_tool_errors_are_results_not_crashes(server):
    async def work(s):
        return [
            await s.call_tool("get_document", {"source": "nope.txt"}),
            await s.call_tool("get_document", {"source": "制度/报销制度.txt", "start": 5, "end": 2}),
            await s.call_tool("get_document", {"source": "制度/报销制度.txt", "end": 10**6}),
            await s.call_tool("search", {"query": "报销", "k": 0}),
            await s.call_tool("ask", {"question": "问" * 600}),
            await s.call_tool("ask", {"question": "   "}),
        ]

    results, _ = session_run(server.url, work)
    assert all(r.is_error for r in results)
    texts = [r.content[0].text for r in results]
    assert "unknown document" in texts[0] and "out of range" in texts[1] and "out of range" in texts[2]
    assert "too long" in texts[4] and "empty" in texts[5]
    assert not any("Traceback" in t for t in texts)


def test_key_required_when_configured(keyed):
    r = httpx.post(keyed.url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                   headers={"Accept": "application/json, text/event-stream"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    r = httpx.post(keyed.url + "/mcp", json={}, headers={"Authorization": "Bearer kb-wrong"})
    assert r.status_code == 401
    with pytest.raises(BaseExceptionGroup) as refused:  # the SDK's client: its task group's error
        session_run(keyed.url, lambda s: s.list_tools(), key="kb-wrong")
    assert any(isinstance(e, MCPError) for e in leaves(refused.value))

    async def work(s):
        return await s.call_tool("ask", {"question": QUESTION})

    result, _ = session_run(keyed.url, work, key=keyed.key)
    assert not result.is_error and result.structured_content["citations"]


def test_dns_rebinding_guard_and_body_limit(server):
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    r = httpx.post(server.url + "/mcp", json=init, headers={**headers, "Host": "evil.example"})
    assert r.status_code == 421
    r = httpx.post(server.url + "/mcp", json=init, headers={**headers, "Origin": "http://evil.example"})
    assert r.status_code == 403
    r = httpx.post(server.url + "/mcp", json=init, headers=headers)
    assert r.status_code == 200, r.text
    big = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "' + b"x" * 1_100_000 + b'"}}'
    r = httpx.post(server.url + "/mcp", content=big, headers=headers)
    assert r.status_code == 413
