"""The HTTP API: a thin adapter over ``KnowledgeService`` and ``FeedbackStore``.

Every error is JSON ``{"detail": "<message>"}`` with a 4xx status for bad input and a 500
without a traceback for anything unexpected."""

from __future__ import annotations

import json
import logging
import sqlite3
import unicodedata
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.auth import require_role
from app.feedback import FeedbackStore
from kb.service import BadQuestion, KnowledgeService, UnknownDocument

log = logging.getLogger(__name__)

MAX_HISTORY_TURNS = 50
MAX_K = 50
MAX_COMMENT_CHARS = 2000
MAX_ANSWER_CHARS = 50_000
MAX_TURN_CHARS = 20_000  # one history turn's question, answer or content
MAX_CITATIONS = 100


def no_surrogates(value: str) -> str:
    """Text must be encodable: a lone surrogate (``"\\ud800"`` in JSON) is refused here, as a
    422, instead of failing later when the text is written or logged."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"text holds an invalid character (lone surrogate at position {e.start})") from None
    return value


Text = Annotated[StrictStr, AfterValidator(no_surrogates)]

MAX_USER_CHARS = 128


def valid_user(value: str) -> str:
    """A portal's user id as passed by the widget or an API client: at most
    ``MAX_USER_CHARS`` characters, none of them a control, format or line-separator character
    (it is stored and shown to trainers, so it must read as one plain line)."""
    if len(value) > MAX_USER_CHARS:
        raise ValueError(f"user must be at most {MAX_USER_CHARS} characters")
    bad = next((ch for ch in value if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")), None)
    if bad is not None:
        raise ValueError(f"user holds a control character (U+{ord(bad):04X})")
    return value.strip()


UserId = Annotated[StrictStr, AfterValidator(no_surrogates), AfterValidator(valid_user)]
USER_DOC = (f"the portal's id of the person asking (optional, at most {MAX_USER_CHARS} characters, "
            "no control characters); recorded in the ask log and with feedback")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessagePart(BaseModel):
    """One part of a multimodal message; only text parts are read."""

    model_config = ConfigDict(extra="ignore")
    type: Text = Field(default="text", max_length=20)
    text: Text = Field(default="", max_length=MAX_TURN_CHARS)


class HistoryTurn(BaseModel):
    """A previous turn: a ``{"question","answer","citations"}`` pair or a ``{"role","content"}``
    message. Other keys are ignored; every text is bounded."""

    model_config = ConfigDict(extra="ignore")
    question: Text | None = Field(default=None, max_length=MAX_TURN_CHARS)
    answer: Text | None = Field(default=None, max_length=MAX_TURN_CHARS)
    role: Literal["user", "assistant", "system"] | None = None
    content: Text | list[MessagePart] | None = Field(default=None, max_length=MAX_TURN_CHARS)
    citations: list[dict[str, Any]] | None = Field(default=None, max_length=MAX_CITATIONS)


class AskRequest(Strict):
    question: Text = Field(description="the question; 1 to max_question_chars characters")
    history: list[HistoryTurn] | None = Field(
        default=None,
        max_length=MAX_HISTORY_TURNS,
        description='previous turns, as {"question","answer","citations"} pairs or '
        '{"role","content"} messages; used to resolve follow-up questions',
    )
    user: UserId | None = Field(default=None, description=USER_DOC)

    def history_dicts(self) -> list[dict] | None:
        if self.history is None:
            return None
        return [t.model_dump(exclude_none=True) for t in self.history]


class FeedbackRequest(Strict):
    question: Text = Field(min_length=1, max_length=10_000)
    answer: Text = Field(max_length=MAX_ANSWER_CHARS)
    citations: list[dict[str, Any]] | None = Field(default=None, max_length=MAX_CITATIONS)
    rating: Literal["up", "down"]
    comment: Text = Field(default="", max_length=MAX_COMMENT_CHARS)
    user: UserId | None = Field(default=None, description=USER_DOC)


class FeedbackCreated(BaseModel):
    id: int


class DocumentOut(BaseModel):
    source: str
    title: str
    kind: str
    text: str


def make_router(service: KnowledgeService, feedback: FeedbackStore) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["api"])

    @router.post("/ask", summary="Answer a question with exact-quote citations")
    def ask(req: AskRequest) -> dict:
        return service.ask(req.question, history=req.history_dicts(), user=req.user or None).to_dict()

    @router.get("/search", summary="Hybrid search: the best passages for a query")
    def search(
        q: Annotated[str, Query(description="the query")],
        k: Annotated[int, Query(ge=1, le=MAX_K, description="number of hits")] = 5,
        mode: Annotated[Literal["hybrid", "bm25", "dense"], Query()] = "hybrid",
    ) -> list[dict]:
        return [h.to_dict() for h in service.search(q, k=k, mode=mode)]

    @router.get("/documents", summary="The documents in the knowledge base")
    def documents() -> list[dict]:
        return service.documents()

    @router.get("/documents/{source:path}", summary="One document's full text")
    def document(source: str) -> DocumentOut:
        d = service.document(source)
        return DocumentOut(source=d.source, title=d.title, kind=d.kind, text=d.text)

    @router.post("/feedback", summary="Rate an answer (up/down) with an optional comment")
    def add_feedback(req: FeedbackRequest) -> FeedbackCreated:
        fid = feedback.add(
            req.question, req.answer, req.rating, citations=req.citations,
            comment=req.comment, channel="api", user=req.user,
        )
        return FeedbackCreated(id=fid)

    @router.get("/feedback", summary="Recent feedback (a trainer's or admin's login, or an admin key)",
                dependencies=[Depends(require_role("trainer", "admin"))])
    def list_feedback(limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict]:
        return feedback.recent(limit)

    @router.get("/health", summary="Index and model status")
    def health() -> dict:
        return service.health()

    return router


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "request body is not valid JSON"
    parts = []
    for e in errors[:5]:
        loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path", "header")]
        where = ".".join(loc)
        if e.get("type") == "model_attributes_type" or (not loc and e.get("type") == "dict_type"):
            msg = "request body must be a JSON object"
        else:
            msg = e.get("msg", "invalid value")
        parts.append(f"{where}: {msg}" if where else msg)
    return 422, "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """JSON ``{"detail": message}`` for every error; never a traceback."""

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = _validation_message(exc)
        return JSONResponse({"detail": message}, status_code=status)

    @app.exception_handler(BadQuestion)
    async def _bad_question(request: Request, exc: BadQuestion) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(UnknownDocument)
    async def _unknown_document(request: Request, exc: UnknownDocument) -> JSONResponse:
        source = exc.args[0] if exc.args else ""
        return JSONResponse({"detail": f"unknown document: {source}"}, status_code=404)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail, ensure_ascii=False)
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(sqlite3.DatabaseError)
    async def _database(request: Request, exc: sqlite3.DatabaseError) -> JSONResponse:
        log.error("database error on %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": f"this feature's database cannot be used ({exc}); answers go on, "
                             "see the server log"}, status_code=503)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; see the server log"}, status_code=500)
