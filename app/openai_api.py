"""The OpenAI-compatible chat API: ``POST /v1/chat/completions`` and ``GET /v1/models``, a thin
adapter over ``KnowledgeService.ask`` for clients that speak OpenAI (the ``openai`` package,
llama-index's ``OpenAILike``, LangChain, agent frameworks).

- **Question and history.** The last ``user`` message is the question; the ``user`` and
  ``assistant`` messages before it are the history its follow-ups are resolved against (the
  last ``MAX_HISTORY_TURNS`` of them). ``system``/``developer`` and tool messages are ignored:
  the answers are extractive and come from the documents only. Text content parts are read,
  others (images) ignored.
- **Answer and citations.** ``choices[0].message.content`` is the answer Markdown, as
  ``/api/ask`` gives it, with its ``[n]`` markers. The citations (``n, source, title, section,
  start, end, quote, score``; the document's text ``[start:end]`` is ``quote``), ``answered``,
  ``related`` and ``source_kind`` are extra top-level fields of the completion object, and of
  the streamed chunk that carries ``finish_reason: "stop"`` (the last one before ``data:
  [DONE]`` unless ``stream_options.include_usage`` asks for the usage chunk after it).
- **Streaming.** ``stream: true`` gives server-sent events, ``data: {chat.completion.chunk}``
  lines: the role, the answer in pieces (a sentence or line each), the finishing chunk, then
  ``data: [DONE]``. The answer is found before the first byte is sent, so an error is still a
  plain JSON error with its status.
- **Model.** One model: ``kb:<embedder id>`` (``GET /v1/models``); ``"kb"`` is accepted as its
  alias, and an omitted ``model`` means it. Another name is refused with 404
  ``model_not_found`` naming the one served (a client configured for another server should
  fail loudly, not be answered by this one).
- **Ignored parameters.** ``temperature``, ``max_tokens``, ``top_p``, ``stop``, ``seed``,
  ``tools`` … are accepted and have no effect; ``n`` other than 1 is refused.
- **User.** OpenAI's ``user`` (the end user's id) is recorded with the question in the ask log,
  as ``/api/ask``'s ``user`` is.
- **Usage** counts characters (there is no tokenizer: a Chinese character is about a token).
- **Errors** are ``{"error": {"message", "type", "param", "code"}}`` with a 4xx status (400
  for malformed JSON, wrong types and missing user message, 401 for a missing or wrong key when
  ``app.require_key`` is on, 404 for an unknown model, 405, 413), never a traceback.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api import MAX_HISTORY_TURNS, MAX_TURN_CHARS, USER_DOC, Text, UserId
from kb.service import BadQuestion, KnowledgeService

log = logging.getLogger(__name__)

PREFIX = "/v1"
MODEL_ALIAS = "kb"
MAX_MESSAGES = 500  # the body limit (1 MB) bounds them too
_PIECE = re.compile(r"[^。！？；!?;\n]*(?:[。！？；!?;]+(?:\[\d+\])*\n*|\n+|$)")


# -- errors --------------------------------------------------------------------------------------
_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
          404: "invalid_request_error", 405: "invalid_request_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error", 503: "server_error"}
_CODES = {401: "invalid_api_key", 404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


class OpenAIError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> dict:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": _TYPES.get(status, "server_error" if status >= 500 else
                                                              "invalid_request_error"),
                      "param": param, "code": code or _CODES.get(status)}}


def error_shape(status: int, message: str) -> dict:
    """For the layers in front of the API (``Guard``, ``KeyGate``) under ``/v1/``."""
    return error_body(status, message)


def _error(status: int, message: str, *, param: str | None = None, code: str | None = None,
           headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param=param, code=code), status_code=status, headers=headers)


_LOC_PART = re.compile(r"\w+")  # field names and list indexes, not pydantic's union tags


def _validation_error(exc: RequestValidationError, content_type: str) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return _error(400, "the request body is not valid JSON")
    parts: list[str] = []
    param = None
    for e in errors[:5]:
        loc = [str(x) for x in e.get("loc", ()) if x != "body" and _LOC_PART.fullmatch(str(x))]
        where = ".".join(loc)
        param = param or where or None
        if e.get("type") in ("model_attributes_type", "dict_type") and not loc:
            msg = ("the request body must be a JSON object" if "json" in content_type else
                   "send the request body as JSON (Content-Type: application/json)")
        elif e.get("type") == "missing" and not loc:
            msg = "the request body is empty: send a JSON object with messages"
        else:
            msg = e.get("msg", "invalid value")
        part = f"{where}: {msg}" if where else msg
        if part not in parts:
            parts.append(part)
    return _error(400, "; ".join(parts) or "invalid request", param=param)


class OpenAIRoute(APIRoute):
    """A route whose every error is in the OpenAI shape (the application's own handlers give
    ``{"detail"}``, which OpenAI clients cannot read)."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request):
            try:
                return await handler(request)
            except RequestValidationError as e:
                return _validation_error(e, request.headers.get("content-type", "").lower())
            except OpenAIError as e:
                return _error(e.status, e.message, param=e.param, code=e.code)
            except BadQuestion as e:
                return _error(400, str(e), param="messages")
            except StarletteHTTPException as e:
                return _error(e.status_code, str(e.detail), headers=e.headers)
            except Exception:
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                return _error(500, "internal error; see the server log")

        return route


# -- request -------------------------------------------------------------------------------------
class ContentPart(BaseModel):
    """One part of a message's content; only ``text`` parts are read."""

    model_config = ConfigDict(extra="ignore")
    type: Text = Field(default="text", max_length=40)
    text: Text | None = Field(default=None, max_length=MAX_TURN_CHARS)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # name, tool_calls, refusal …
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Text | list[ContentPart] | None = Field(default=None, max_length=MAX_TURN_CHARS)

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text or "" for p in self.content or [] if p.type in ("text", "input_text"))


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: StrictBool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request. Generation parameters (``temperature``,
    ``max_tokens``, ``top_p``, ``stop``, ``tools`` …) are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")
    model: Text | None = Field(default=None, max_length=200,
                               description='"kb" or the id GET /v1/models lists; omitted: that one')
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES,
                                        description="the conversation; the last user message is the question")
    stream: StrictBool = Field(default=False, description="server-sent events of chat.completion.chunk")
    stream_options: StreamOptions | None = None
    n: StrictInt | None = Field(default=None, ge=1, le=1, description="only 1")
    user: UserId | None = Field(default=None, description=USER_DOC + " (OpenAI's end-user id)")


# -- response ------------------------------------------------------------------------------------
class CitationOut(BaseModel):
    n: int = Field(description="the number of the [n] marker in the content")
    source: str = Field(description="the document, as GET /api/documents/{source} names it")
    title: str
    section: str = Field(description="the section path, e.g. 第一章 请假 > 一、病假")
    start: int = Field(description="offset in the document's text: text[start:end] == quote")
    end: int
    quote: str = Field(description="the exact passage cited")
    score: float


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str = Field(description="the answer (Markdown) with its [n] citation markers")
    refusal: None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class Usage(BaseModel):
    """Characters, not tokens (no tokenizer here; a Chinese character is about one token)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


_CITATIONS = "the citation objects of the [n] markers in the content (kb extension)"
_ANSWERED = "false when the documents do not answer the question (the content then says so) (kb extension)"
_RELATED = "questions the knowledge base can answer, to offer as follow-ups (kb extension)"
_SOURCE_KIND = '"documents", "faq" (an approved FAQ entry) or "none" (kb extension)'


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None
    citations: list[CitationOut] = Field(description=_CITATIONS)
    answered: bool = Field(description=_ANSWERED)
    related: list[str] = Field(description=_RELATED)
    source_kind: str = Field(description=_SOURCE_KIND)


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: Literal["stop"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed answer. The chunk with ``finish_reason: "stop"``
    carries ``citations``, ``answered``, ``related`` and ``source_kind``."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    citations: list[CitationOut] | None = Field(default=None, description=_CITATIONS + "; on the finishing chunk")
    answered: bool | None = Field(default=None, description=_ANSWERED + "; on the finishing chunk")
    related: list[str] | None = Field(default=None, description=_RELATED + "; on the finishing chunk")
    source_kind: str | None = Field(default=None, description=_SOURCE_KIND + "; on the finishing chunk")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="when the index was built (Unix time)")
    owned_by: str = "kb"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# -- the adapter ---------------------------------------------------------------------------------
def model_id(service: KnowledgeService) -> str:
    return f"{MODEL_ALIAS}:{service.health()['embedder']}"


def _built_at(service: KnowledgeService) -> int:
    try:
        return int(datetime.strptime(service.health()["index_built_at"], "%Y-%m-%dT%H:%M:%S%z").timestamp())
    except (KeyError, TypeError, ValueError):
        return 0


def question_and_history(messages: list[ChatMessage]) -> tuple[str, list[dict]]:
    """The last user message's text, and the user/assistant messages before it as history."""
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
    if last is None:
        raise OpenAIError(400, "no user message: the last message with role 'user' is the question",
                          param="messages")
    question = messages[last].text().strip()
    if not question:
        raise OpenAIError(400, "the last user message has no text", param=f"messages.{last}.content")
    history = [{"role": m.role, "content": m.text()} for m in messages[:last] if m.role in ("user", "assistant")]
    return question, history[-MAX_HISTORY_TURNS:]


def pieces(text: str) -> list[str]:
    """The answer cut after each sentence end or line break; joined, they are ``text``."""
    out = [p for p in _PIECE.findall(text) if p]
    return out if "".join(out) == text else [text]


def _usage(question: str, history: list[dict], answer: str) -> Usage:
    prompt = len(question) + sum(len(t["content"]) for t in history)
    return Usage(prompt_tokens=prompt, completion_tokens=len(answer), total_tokens=prompt + len(answer))


def _sse(obj: dict) -> str:
    return "data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n\n"


def stream_events(answer: dict, *, cid: str, created: int, model: str, usage: Usage | None) -> Iterator[str]:
    """The SSE lines of a streamed answer, ending with ``data: [DONE]``."""
    base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": None}

    def chunk(delta: dict, finish: str | None = None, **extra: Any) -> str:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                     **extra})

    yield chunk({"role": "assistant", "content": ""})
    for piece in pieces(answer["answer"]):
        yield chunk({"content": piece})
    yield chunk({}, "stop", citations=answer["citations"], answered=answer["answered"],
                related=answer["related"], source_kind=answer["source_kind"])
    if usage is not None:
        yield _sse({**base, "choices": [], "usage": usage.model_dump()})
    yield "data: [DONE]\n\n"


def make_openai_router(service: KnowledgeService) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["openai"], route_class=OpenAIRoute)
    served = model_id(service)
    created_at = _built_at(service)

    def check_model(name: str | None) -> None:
        if name not in (None, "", MODEL_ALIAS, served):
            raise OpenAIError(404, f"the model {name!r} does not exist here; this server has one model: "
                              f"{served!r} (or {MODEL_ALIAS!r})", param="model", code="model_not_found")

    @router.get("/models", summary="The one model served (OpenAI-compatible)")
    def models() -> ModelList:
        return ModelList(data=[ModelCard(id=served, created=created_at)])

    @router.get("/models/{name:path}", summary="One model (OpenAI-compatible)")
    def model(name: str) -> ModelCard:
        check_model(name)
        return ModelCard(id=served, created=created_at)

    @router.post(
        "/chat/completions",
        summary="A cited answer, OpenAI-compatible (plain or streamed)",
        response_model=ChatCompletion,
        responses={200: {"description": "a chat.completion object, or with stream: true server-sent events "
                                        "(data: {chat.completion.chunk} lines, then data: [DONE])",
                         "content": {"text/event-stream": {"schema": {
                             "$ref": "#/components/schemas/ChatCompletionChunk"}}}},
                   400: {"description": "malformed request (OpenAI error object)"},
                   401: {"description": "missing or invalid API key (app.require_key)"},
                   404: {"description": "unknown model"}},
    )
    def chat_completions(req: ChatCompletionRequest):
        check_model(req.model)
        question, history = question_and_history(req.messages)
        answer = service.ask(question, history=history, user=req.user or None).to_dict()
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        usage = _usage(question, history, answer["answer"])
        if req.stream:
            include = bool(req.stream_options and req.stream_options.include_usage)
            events = stream_events(answer, cid=cid, created=created, model=served, usage=usage if include else None)
            return StreamingResponse(events, media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return ChatCompletion(
            id=cid, created=created, model=served, usage=usage,
            choices=[Choice(message=AssistantMessage(content=answer["answer"]))],
            citations=[CitationOut(**c) for c in answer["citations"]], answered=answer["answered"],
            related=answer["related"], source_kind=answer["source_kind"],
        )

    return router


def install_openai_schema(app: FastAPI) -> None:
    """Adds ``ChatCompletionChunk`` (the streamed events' schema, which no route returns as
    JSON) to the application's OpenAPI components."""
    default = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = default()
        _, defs = models_json_schema([(ChatCompletionChunk, "serialization")],
                                     ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, value in defs.get("$defs", {}).items():
            components.setdefault(name, value)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

