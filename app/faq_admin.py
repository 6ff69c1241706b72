"""The trainers' FAQ tools: admin JSON routes under ``/api/admin/faq/`` (thin adapters over
``service.faq``) and the page ``/trainers`` (plain HTML/JS/CSS from ``app/static/faq.*``).

Every route needs a logged-in account of role ``trainer`` or ``admin`` (``app.auth``: the
session cookie, with its CSRF token on every change) or an API key of scope ``admin``
(``Authorization: Bearer``): 401 without a login, 403 for another role or an ``ask`` key; the
page sends a visitor who is not logged in to ``/login?next=/trainers``. The public chat and
``/api/ask`` stay open regardless (unless ``app.chat_login``). Each change is recorded in the
entry's edit history as ``web:<account>`` (or ``key:<key name>``).

Errors are JSON ``{"detail": message}``: unknown entry 404, invalid input 400/422, a
suggestion run already going 409, a damaged FAQ database 503.

No ``from __future__ import annotations`` here: FastAPI must see the local ``Actor``
dependency alias in the route signatures as an object, not as a string."""

import html
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from app.auth import Principal, require_role
from app.render import fill_template, json_for_html
from kb.faq.store import STATUSES
from kb.service import KnowledgeService

TEMPLATE = Path(__file__).resolve().parent / "static" / "faq.html"
PREFIX = "/api/admin/faq"

MAX_QUESTION = 500
MAX_ANSWER = 20_000
MAX_TOPIC = 100
MAX_ALTS = 50
MAX_CITATIONS = 50
MAX_SUGGEST = 200

Status = Literal["candidate", "approved", "rejected", "flagged", "merged"]
assert set(Status.__args__) == set(STATUSES)  # the store and this adapter agree

Question = Annotated[StrictStr, Field(max_length=MAX_QUESTION)]
EntryId = Annotated[int, PathParam(ge=1, le=2**62, description="FAQ entry id")]

EXPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EntryCreate(Strict):
    question: StrictStr = Field(min_length=1, max_length=MAX_QUESTION)
    answer: StrictStr = Field(default="", max_length=MAX_ANSWER)
    topic: StrictStr = Field(default="", max_length=MAX_TOPIC)
    alt_questions: list[Question] = Field(default_factory=list, max_length=MAX_ALTS)
    citations: list[dict[str, Any]] | None = Field(
        default=None, max_length=MAX_CITATIONS,
        description="exact slices of the current documents: source, start, end, quote, title, section",
    )


class EntryEdit(Strict):
    """Only the fields given are changed."""

    question: StrictStr | None = Field(default=None, min_length=1, max_length=MAX_QUESTION)
    answer: StrictStr | None = Field(default=None, max_length=MAX_ANSWER)
    topic: StrictStr | None = Field(default=None, max_length=MAX_TOPIC)
    alt_questions: list[Question] | None = Field(default=None, max_length=MAX_ALTS)
    citations: list[dict[str, Any]] | None = Field(default=None, max_length=MAX_CITATIONS)


class MergeRequest(Strict):
    keep_id: StrictInt = Field(ge=1, description="the entry that stays")
    other_id: StrictInt = Field(ge=1, description="the entry folded into it (becomes 'merged')")
    answer: StrictStr | None = Field(default=None, max_length=MAX_ANSWER,
                                     description="the merged answer; default: both answers' lines")


class SuggestRequest(Strict):
    limit: StrictInt | None = Field(default=None, ge=1, le=MAX_SUGGEST)
    sources: list[Literal["usage", "documents"]] = Field(
        default_factory=lambda: ["usage", "documents"], min_length=1, max_length=2,
    )


def _call(fn, *args, **kwargs):
    """``service.faq`` errors as HTTP: unknown entry 404, a message for the trainer 400."""
    try:
        return fn(*args, **kwargs)
    except KeyError as e:
        raise HTTPException(404, str(e.args[0]) if e.args else "unknown FAQ entry") from None
    except ValueError as e:
        raise HTTPException(400, str(e) or "invalid request") from None


def _decode(raw: bytes) -> str:
    """An uploaded file's text: UTF-8 (with or without BOM), else GB18030 (Excel on Chinese
    Windows saves CSV that way)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError:
        raise HTTPException(400, "the file is neither UTF-8 nor GB18030 text") from None


def admin_csp() -> str:
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


def make_faq_admin_router(service: KnowledgeService, static_prefix: str) -> APIRouter:
    """The admin API and the ``/trainers`` page over ``service.faq``."""
    faq = service.faq
    suggesting = threading.Lock()
    trainer = require_role("trainer", "admin")

    def admin(who: Annotated[Principal, Depends(trainer)]) -> str:
        """The actor recorded in the edit history; a damaged FAQ database is a 503 naming it."""
        if faq.unavailable:  # a damaged database: say which and why, instead of a 500
            raise HTTPException(503, faq.unavailable)
        return f"web:{who.name}" if who.via == "session" else who.actor

    Actor = Annotated[str, Depends(admin)]
    api = APIRouter(prefix=PREFIX, tags=["faq admin"])

    @api.get("/entries", summary="FAQ entries (all, or by status/topic)")
    def list_entries(
        actor: Actor,
        status: Annotated[Status | None, Query()] = None,
        topic: Annotated[str | None, Query(max_length=MAX_TOPIC)] = None,
        order: Annotated[Literal["asked", "id", "topic", "hits"], Query()] = "asked",
    ) -> list[dict]:
        return _call(faq.list, status=status, topic=topic, order=order)

    @api.get("/entries/{entry_id}", summary="One entry with its edit history")
    def get_entry(actor: Actor, entry_id: EntryId) -> dict:
        return _call(faq.get, entry_id)

    @api.post("/entries", summary="Add a candidate entry", status_code=201)
    def add_entry(actor: Actor, req: EntryCreate) -> dict:
        return _call(faq.add, req.question, answer=req.answer, citations=req.citations,
                     topic=req.topic, alt_questions=req.alt_questions, actor=actor)

    @api.patch("/entries/{entry_id}", summary="Edit question, answer, topic, alt questions, citations")
    def edit_entry(actor: Actor, entry_id: EntryId, req: EntryEdit) -> dict:
        changes = req.model_dump(exclude_none=True)
        if not changes:
            raise HTTPException(400, "nothing to change: give question, answer, topic, alt_questions or citations")
        return _call(faq.edit, entry_id, actor=actor, **changes)

    @api.post("/entries/{entry_id}/approve", summary="Approve (citations re-checked)")
    def approve(actor: Actor, entry_id: EntryId) -> dict:
        return _call(faq.approve, entry_id, actor=actor)

    @api.post("/entries/{entry_id}/reject", summary="Reject")
    def reject(actor: Actor, entry_id: EntryId) -> dict:
        return _call(faq.reject, entry_id, actor=actor)

    @api.post("/merge", summary="Fold one entry into another")
    def merge(actor: Actor, req: MergeRequest) -> dict:
        return _call(faq.merge, req.keep_id, req.other_id, actor=actor, answer=req.answer)

    @api.get("/topics", summary="Topics with their number of live entries")
    def topics(actor: Actor) -> list[dict]:
        return _call(faq.topics)

    @api.post("/suggest", summary="Store new candidates from usage and the documents (slow)")
    def suggest(actor: Actor, req: Annotated[SuggestRequest | None, Body()] = None) -> dict:
        req = req or SuggestRequest()
        if not suggesting.acquire(blocking=False):
            raise HTTPException(409, "suggestions are already being generated; try again shortly")
        try:
            added = _call(faq.suggest, limit=req.limit, sources=tuple(dict.fromkeys(req.sources)))
        finally:
            suggesting.release()
        return {"added": added}

    @api.get("/usage", summary="Most-asked question clusters and gaps (refused or thumbs-down)")
    def usage(actor: Actor, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
        return _call(faq.usage, limit=limit)

    @api.post("/check", summary="Re-check approved entries against the documents")
    def check(actor: Actor) -> dict:
        return {"flagged": _call(faq.check_documents)}

    @api.get("/export", summary="Download entries as CSV, JSON or a Markdown handbook")
    def export(
        actor: Actor,
        format: Annotated[Literal["csv", "json", "md"], Query()] = "csv",  # noqa: A002
        status: Annotated[Status | None, Query()] = None,
        topic: Annotated[str | None, Query(max_length=MAX_TOPIC)] = None,
    ) -> Response:
        text = _call(faq.export, format, status=status, topic=topic)
        if format == "csv":
            text = "\ufeff" + text  # so spreadsheet programs read the Chinese as UTF-8
        stamp = datetime.now(UTC).strftime("%Y%m%d")
        return Response(text, media_type=EXPORT_TYPES[format], headers={
            "Content-Disposition": f'attachment; filename="faq-{stamp}.{format}"',
            "Cache-Control": "no-store",
        })

    @api.post(
        "/import", summary="Import a CSV or JSON export (the request body is the file)",
        openapi_extra={"requestBody": {"content": {"text/csv": {}, "application/json": {}},
                                       "required": True}},
    )
    async def import_(
        actor: Actor,
        request: Request,
        format: Annotated[Literal["csv", "json"], Query()],  # noqa: A002
    ) -> dict:
        raw = await request.body()
        if not raw.strip():
            raise HTTPException(400, "the file is empty")
        return await run_in_threadpool(_call, faq.import_text, _decode(raw), format, actor=actor)

    # -- the page ---------------------------------------------------------------------------------
    page_router = APIRouter(include_in_schema=False)
    title = html.escape(f"培训师工作台 · {service.config.app.title}")
    headers = {
        "Content-Security-Policy": admin_csp(),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }

    @page_router.get("/trainers", response_class=HTMLResponse)
    def trainers(who: Annotated[Principal, Depends(trainer)]) -> HTMLResponse:
        settings = {
            "title": service.config.app.title,
            "api": PREFIX,
            "statuses": list(STATUSES),
            "user": who.name,
            "role": who.role,
            "csrf": who.csrf,
        }
        page = fill_template(TEMPLATE, {"title": title, "static": static_prefix, "config": json_for_html(settings)})
        return HTMLResponse(page, headers=headers)

    router = APIRouter()
    router.include_router(api)
    router.include_router(page_router)
    return router
