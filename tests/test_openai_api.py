"""The OpenAI-compatible API (/v1) over real HTTP: a uvicorn server started here (the hashing
embedder, the tiny corpus of conftest_app), driven by the official ``openai`` package and by
llama-index's ``OpenAILike``, plain and streamed; API keys made by the real ``kb key`` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import openai
import pytest
from conftest_app import LiveServer, tiny_config

QUESTION = "请病假要走什么流程？"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("openai")


@pytest.fixture(scope="module")
def server(tmp):
    with LiveServer(tiny_config(tmp)) as live:
        yield live


@pytest.fixture(scope="module")
def keyed(tmp, server):
    """The same data folder (the index is reused) with ``app.require_key = true``."""
    with LiveServer(tiny_config(tmp).replace(app__require_key=True)) as live:
        yield live


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def cli_config(tmp) -> Path:
    """A config file naming the servers' data folder, for the ``kb key`` CLI."""
    path = tmp / "kb.toml"
    path.write_text(f"data_dir = {json.dumps(str(tmp / 'data'))}\n", encoding="utf-8")
    return path


def kb(*args: str, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kb.cli", *args, "--config", str(config)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def document_text(base_url: str, source: str, key: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    r = httpx.get(f"{base_url}/api/documents/{quote(source)}", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["text"]


def assert_citations_slice(base_url: str, content: str, citations: list, key: str | None = None) -> None:
    assert citations, "no citations"
    for c in citations:
        c = c if isinstance(c, dict) else c.model_dump()
        assert set(c) == {"n", "source", "title", "section", "start", "end", "quote", "score"}
        assert f"[{c['n']}]" in content
        assert document_text(base_url, c["source"], key)[c["start"]:c["end"]] == c["quote"]


def assert_openai_error(r: httpx.Response, status: int, *words: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"] and isinstance(err["type"], str)
    assert "Traceback" not in r.text and 'File "' not in r.text
    for w in words:
        assert w in err["message"], err["message"]
    return err


# -- the official openai client ------------------------------------------------------------------

def test_models_lists_the_served_model(server):
    oc = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    models = oc.models.list().data
    assert len(models) == 1
    assert models[0].id.startswith("kb:hashing") and models[0].owned_by == "kb"
    assert oc.models.retrieve(models[0].id).id == models[0].id


def test_openai_client_plain(server, client):
    oc = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    done = oc.chat.completions.create(model="kb", messages=[
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": QUESTION},
    ], temperature=0.2, max_tokens=500)
    assert done.object == "chat.completion" and done.model.startswith("kb:")
    content = done.choices[0].message.content
    assert done.choices[0].finish_reason == "stop" and done.choices[0].message.role == "assistant"
    assert done.answered is True and done.source_kind == "documents"
    assert_citations_slice(server.url, content, done.citations)
    assert any(c["source"] == "员工手册.txt" for c in done.citations)
    # the same answer /api/ask gives
    same = client.post("/api/ask", json={"question": QUESTION}).json()
    assert content == same["answer"] and done.citations == same["citations"]
    assert done.usage.completion_tokens == len(content)


def test_openai_client_streamed(server):
    oc = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    chunks = list(oc.chat.completions.create(model="kb", messages=[{"role": "user", "content": QUESTION}],
                                             stream=True))
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    final = chunks[-1]
    assert final.choices[0].finish_reason == "stop"
    assert all(ch.choices[0].finish_reason is None for ch in chunks[:-1])
    assert final.answered is True
    assert_citations_slice(server.url, content, final.citations)
    assert len(chunks) > 3  # the answer came in pieces
    plain = oc.chat.completions.create(model="kb", messages=[{"role": "user", "content": QUESTION}])
    assert content == plain.choices[0].message.content and final.citations == plain.citations


def test_stream_is_sse_ending_with_done_and_usage_on_request(client):
    with client.stream("POST", "/v1/chat/completions", json={
        "messages": [{"role": "user", "content": QUESTION}], "stream": True,
        "stream_options": {"include_usage": True},
    }) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line[6:]) for line in lines[:-1]]
    usage = events[-1]
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0
    finish = events[-2]
    assert finish["choices"][0]["finish_reason"] == "stop" and finish["citations"]
    assert {"answered", "related", "source_kind"} <= set(finish)


def test_history_resolves_follow_ups_like_api_ask(server, client):
    first = client.post("/api/ask", json={"question": "差旅报销的流程是什么？"}).json()
    messages = [{"role": "user", "content": first["question"]},
                {"role": "assistant", "content": first["answer"]},
                {"role": "user", "content": [{"type": "text", "text": "那年假呢？"}]}]
    oc = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    done = oc.chat.completions.create(model="kb", messages=messages)
    expected = client.post("/api/ask", json={"question": "那年假呢？", "history": [
        {"role": "user", "content": first["question"]}, {"role": "assistant", "content": first["answer"]}]}).json()
    assert done.choices[0].message.content == expected["answer"]
    assert done.citations == expected["citations"]


def test_user_is_recorded_in_the_ask_log(server):
    from kb.faq.store import faq_store

    oc = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    oc.chat.completions.create(model="kb", messages=[{"role": "user", "content": "年假怎么申请？"}], user="emp-0042")
    rows = [(r["question"], r["user"]) for r in faq_store(server.config).asked() if r["user"] == "emp-0042"]
    assert rows == [("年假怎么申请？", "emp-0042")]
    with pytest.raises(openai.BadRequestError):
        oc.chat.completions.create(model="kb", messages=[{"role": "user", "content": "年假？"}], user="a\nb")


def test_refusal_carries_answered_false_and_related(server):
    oc = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    done = oc.chat.completions.create(model="kb", messages=[{"role": "user", "content": "公司食堂几点开饭？"}])
    assert done.answered is False and done.citations == [] and 1 <= len(done.related) <= 3


# -- llama-index's OpenAILike --------------------------------------------------------------------

def _llm(server):
    from llama_index.llms.openai_like import OpenAILike

    return OpenAILike(model="kb", api_base=server.url + "/v1", api_key="unused", is_chat_model=True,
                      context_window=8192, timeout=30, max_retries=0)


def _extra(raw) -> dict:
    return raw if isinstance(raw, dict) else raw.model_dump()


def test_llama_index_openai_like_plain(server):
    from llama_index.core.llms import ChatMessage

    r = _llm(server).chat([ChatMessage(role="user", content=QUESTION)])
    raw = _extra(r.raw)
    assert raw["answered"] is True
    assert_citations_slice(server.url, r.message.content, raw["citations"])


def test_llama_index_openai_like_streamed(server):
    from llama_index.core.llms import ChatMessage

    responses = list(_llm(server).stream_chat([ChatMessage(role="user", content=QUESTION)]))
    content = responses[-1].message.content
    assert content == "".join(r.delta or "" for r in responses)
    final = _extra(responses[-1].raw)
    assert final["choices"][0]["finish_reason"] == "stop"
    assert_citations_slice(server.url, content, final["citations"])


# -- API keys ------------------------------------------------------------------------------------

def test_keys_required_when_configured(keyed, cli_config):
    url = keyed.url
    # no key, a wrong key: 401 in each API's error shape
    r = httpx.post(url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTION}]})
    err = assert_openai_error(r, 401, "API key")
    assert err["code"] == "invalid_api_key" and r.headers["www-authenticate"].startswith("Bearer")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="kb-wrong", max_retries=0).chat.completions.create(
            model="kb", messages=[{"role": "user", "content": QUESTION}])
    for path in ("/api/search?q=报销", "/api/documents", "/v1/models"):
        assert httpx.get(url + path, headers={"Authorization": "Bearer kb-wrong"}).status_code == 401, path
    r = httpx.post(url + "/api/ask", json={"question": QUESTION})
    assert r.status_code == 401 and set(r.json()) == {"detail"}
    assert httpx.post(url + "/mcp", json={}).status_code == 401
    assert httpx.get(url + "/api/health").status_code == 200  # not guarded

    # a key made by the real CLI works
    made = kb("key", "add", "hr-portal", "--scope", "ask", config=cli_config)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("kb-") and "\n" not in key and "hr-portal" in made.stderr
    oc = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    done = oc.chat.completions.create(model="kb", messages=[{"role": "user", "content": QUESTION}])
    assert_citations_slice(url, done.choices[0].message.content, done.citations, key)
    streamed = list(oc.chat.completions.create(model="kb", messages=[{"role": "user", "content": QUESTION}],
                                               stream=True))
    assert streamed[-1].citations == done.citations
    assert httpx.post(url + "/api/ask", json={"question": QUESTION},
                      headers={"Authorization": f"Bearer {key}"}).status_code == 200

    listed = kb("key", "list", "--json", config=cli_config)
    assert listed.returncode == 0, listed.stderr
    assert key not in listed.stdout
    (row,) = [k for k in json.loads(listed.stdout) if k["name"] == "hr-portal"]
    assert row["scope"] == "ask" and row["last_used_at"] and not row["revoked"]

    # duplicate and unknown names: one line, exit 2
    dup = kb("key", "add", "hr-portal", "--scope", "admin", config=cli_config)
    assert dup.returncode == 2 and dup.stdout == "" and "exists" in dup.stderr
    assert "Traceback" not in dup.stderr and len(dup.stderr.strip().splitlines()) == 1
    unknown = kb("key", "revoke", "nobody", config=cli_config)
    assert unknown.returncode == 2 and "no key named" in unknown.stderr and "Traceback" not in unknown.stderr

    # an admin key may do what an ask key may
    admin = kb("key", "add", "ops", "--scope", "admin", config=cli_config).stdout.strip()
    assert httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {admin}"}).status_code == 200

    # revoked: refused by the running server at once
    revoked = kb("key", "revoke", "hr-portal", config=cli_config)
    assert revoked.returncode == 0, revoked.stderr
    with pytest.raises(openai.AuthenticationError):
        oc.chat.completions.create(model="kb", messages=[{"role": "user", "content": QUESTION}])
    table = kb("key", "list", config=cli_config).stdout
    assert "hr-portal" in table and "ops" in table and key not in table and admin not in table


# -- malformed requests --------------------------------------------------------------------------

BAD_BODIES = [
    ("{not json", 400, "not valid JSON"),
    ("[]", 400, "JSON object"),
    ("", 400, "empty"),
    ('{"model": "kb"}', 400, "messages"),
    ('{"messages": []}', 400, "messages"),
    ('{"messages": "hi"}', 400, "messages"),
    ('{"messages": [{"role": "user"}]}', 400, "no text"),
    ('{"messages": [{"role": "wizard", "content": "hi"}]}', 400, "role"),
    ('{"messages": [{"role": "user", "content": 5}]}', 400, "content"),
    ('{"messages": [{"role": "assistant", "content": "hi"}]}', 400, "no user message"),
    ('{"messages": [{"role": "user", "content": "   "}]}', 400, "no text"),
    ('{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}', 400, "no text"),
    ('{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}', 400, "stream"),
    ('{"messages": [{"role": "user", "content": "hi"}], "n": 3}', 400, "n"),
    ('{"messages": [{"role": "user", "content": "\\ud800"}]}', 400, "invalid character"),
    ('{"messages": [{"role": "user", "content": "' + "问" * 600 + '"}]}', 400, "too long"),
    ('null', 400, "JSON object"),
    ('{"messages": [null]}', 400, "messages.0"),
    ('{"messages": [{"role": "user", "content": "hi"}], "model": 5}', 400, "model"),
    ('{"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}', 400, "messages.0.content"),
    ('{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}', 404, "gpt-4o"),
]


@pytest.mark.parametrize("body,status,word", BAD_BODIES)
def test_malformed_requests_are_4xx_in_openai_shape(client, body, status, word):
    r = client.post("/v1/chat/completions", content=body.encode(), headers={"content-type": "application/json"})
    assert_openai_error(r, status, word)


def test_body_not_sent_as_json_names_the_content_type(client):
    body = json.dumps({"messages": [{"role": "user", "content": QUESTION}]}).encode()
    r = client.post("/v1/chat/completions", content=body, headers={"content-type": "text/plain"})
    assert_openai_error(r, 400, "Content-Type: application/json")


def test_wrong_method_unknown_route_and_oversize_in_openai_shape(client):
    r = client.get("/v1/chat/completions")
    assert_openai_error(r, 405)
    assert r.headers["allow"] == "POST"
    assert_openai_error(client.get("/v1/embeddings"), 404, "/v1/embeddings")
    assert_openai_error(client.post("/v1/completions", json={}), 404)
    big = json.dumps({"messages": [{"role": "user", "content": "问" * 600_000}]})
    assert_openai_error(client.post("/v1/chat/completions", content=big.encode(),
                                    headers={"content-type": "application/json"}), 413)


def test_openai_client_raises_its_own_errors(server):
    oc = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        oc.chat.completions.create(model="kb", messages=[{"role": "assistant", "content": "hi"}])
    assert "no user message" in str(e.value)
    with pytest.raises(openai.NotFoundError):
        oc.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])


def test_openapi_documents_the_fields(client):
    schema = client.get("/openapi.json").json()
    assert "/v1/chat/completions" in schema["paths"] and "/v1/models" in schema["paths"]
    comps = schema["components"]["schemas"]
    for name in ("ChatCompletion", "ChatCompletionChunk"):
        assert {"citations", "answered", "related"} <= set(comps[name]["properties"]), name
    assert set(comps["CitationOut"]["properties"]) == {"n", "source", "title", "section", "start", "end",
                                                        "quote", "score"}
    post = schema["paths"]["/v1/chat/completions"]["post"]
    assert "text/event-stream" in post["responses"]["200"]["content"]


# -- the benchmark's measurement, tiny ------------------------------------------------------------

def test_bench_openai_overhead_runs(tmp, server):
    from kb.bench import openai_overhead

    out = openai_overhead(server.app.state.service, n=3)
    assert out["n"] == 3 and out["api_ask"]["n"] == 3 and out["v1_chat"]["n"] == 3
    assert isinstance(out["overhead_p50_ms"], float)
