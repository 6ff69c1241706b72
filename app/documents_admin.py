"""The documents page (``/admin``) and the admin documents API, thin adapters over
``kb.library.DocumentLibrary`` (the corpus folder and its records) and ``kb.jobs.JobRunner``
(background re-indexing that the chat never waits for).

- ``GET /api/admin/documents``: every document (``id``, title, file, format, size, chunks,
  status ``indexed`` / ``pending`` / ``skipped`` (with ``reason``) / ``disabled``, indexed at,
  uploaded by).
- ``POST /api/admin/documents``: multipart, one or more files in the field ``files``. Each file
  is taken or refused on its own: 202 with ``accepted``, ``refused`` (each ``{file, status,
  reason}``: 400 bad name, 409 duplicate or existing name, 413 too large, 415 unsupported type,
  422 empty, corrupt or unreadable) and the ``job`` that indexes the accepted ones; when every
  file is refused, the answer is that 4xx (400 when they differ) with the same lists.
- ``GET /api/admin/documents/{id}``: one document with its parsed ``text``, ``outline`` and
  ``chunks`` (``text[start:end]`` each) and its viewer link.
- ``PUT /api/admin/documents/{id}``: multipart ``file``, a new version (same type).
- ``PATCH /api/admin/documents/{id}``: ``{"enabled": false}`` disables (kept, not retrieved),
  ``true`` enables.
- ``DELETE /api/admin/documents/{id}``: the file is removed; it leaves the index with the job.
- ``GET /api/admin/jobs`` and ``GET /api/admin/jobs/{id}``: status ``queued`` / ``running`` /
  ``done`` / ``failed``, the stage (``waiting for another ingest`` while ``kb ingest`` holds the
  index), per-file and per-stage progress, the error of a failed job.

Every route needs an admin: a session of role ``admin`` (state changes also carry the session's
CSRF token: ``X-CSRF-Token``) or an admin-scope API key (``app.auth.require_role``). Changes
are written to the audit log. Errors are ``{"detail": message}``.

No ``from __future__ import annotations``: FastAPI reads the dependency aliases.
"""

import html
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, HTTPException, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, StrictBool

from app.auth import Principal, audit, csrf_protect, require_role
from app.render import fill_template, json_for_html
from kb.library import MAX_FILES, UPLOAD_SUFFIXES, DocumentLibrary, Refused, UnknownDocumentId
from kb.service import KnowledgeService

log = logging.getLogger(__name__)

TEMPLATE = Path(__file__).resolve().parent / "static" / "admin.html"
PREFIX = "/api/admin"
PAGE = "/admin"
MULTIPART_OVERHEAD = 1_000_000  # the request body of an upload may exceed max_file_bytes by this


def upload_body_limit(config: Any) -> int:
    """The largest request body an upload may send (the rest of the app stays at its 1 MB): one
    file at the size limit, and the multipart framing around it. The page sends a selection of
    files in as many requests as it takes."""
    return int(config.max_file_bytes) + MULTIPART_OVERHEAD


def page_csp() -> str:
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'")


PAGE_HEADERS = {
    "Content-Security-Policy": page_csp(),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class EnabledChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: StrictBool


class AdminDocuments:
    """The library and the job runner of one application, opened on first use (or at startup):
    their database is the data-access layer's (``kb.store``); one that cannot be opened makes
    these routes 503, naming it, while the chat goes on."""

    def __init__(self, service: KnowledgeService):
        self.service = service
        self._lock = threading.Lock()
        self._library: DocumentLibrary | None = None
        self.runner = None
        self.db = None

    def open(self) -> "AdminDocuments":
        if self._library is None:
            with self._lock:
                if self._library is None:
                    from kb.jobs import JobRunner
                    from kb.store import StoreError, open_database
                    from kb.store.documents import DocumentRecords, JobStore

                    try:
                        self.db = open_database(self.service.config)
                    except StoreError as e:
                        raise HTTPException(503, f"documents cannot be managed now: {e}") from None
                    records = DocumentRecords(self.db)
                    self.runner = JobRunner(self.service, JobStore(self.db), records).start()
                    self._library = DocumentLibrary(self.service.config, self.service, records)
        return self

    @property
    def library(self) -> DocumentLibrary:
        return self.open()._library

    def close(self) -> None:
        if self.runner is not None:
            self.runner.stop()
        if self.db is not None:
            self.db.close()


def _with_links(item: dict) -> dict:
    item = dict(item)
    item["viewer"] = f"/view/{quote(item['source'])}" if item.get("indexed") else None
    return item


def _refusal_response(refused: list[dict], accepted: list[dict] | None = None) -> JSONResponse:
    codes = {r["status"] for r in refused}
    status = codes.pop() if len(codes) == 1 else 400
    detail = "; ".join(f"{r['file']}: {r['reason']}" for r in refused)
    return JSONResponse({"detail": detail, "accepted": accepted or [], "refused": refused, "job": None},
                        status_code=status)


def make_documents_router(service: KnowledgeService, static_prefix: str) -> APIRouter:
    """``/admin`` and ``/api/admin/documents``, ``/api/admin/jobs``; ``router.state`` (the
    ``AdminDocuments``) is reachable as ``router.admin_documents``."""
    state = AdminDocuments(service)

    @asynccontextmanager
    async def lifespan(_app) -> AsyncIterator[None]:
        try:
            await run_in_threadpool(state.open)  # the job worker starts with the server
        except HTTPException as e:
            log.error("%s", e.detail)
        yield
        await run_in_threadpool(state.close)

    Admin = Annotated[Principal, Depends(require_role("admin"))]
    guarded = [Depends(csrf_protect)]  # also checked by require_role for cookie sessions
    api = APIRouter(prefix=PREFIX, tags=["documents admin"], dependencies=guarded)
    config = service.config

    def job_dict(job) -> dict:
        return job.to_dict() if job is not None else None

    def submit(kind: str, who: Principal, sources: list[str]):
        return state.open().runner.submit(kind, who.actor, sources)

    def find(doc_id: str) -> dict:
        try:
            return state.library.find(doc_id)
        except UnknownDocumentId as e:
            raise HTTPException(404, str(e.args[0])) from None

    DocId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$", description="a document's id (from the list)")]

    @api.get("/documents", summary="The documents: status, size, chunks, who uploaded them")
    def list_documents(who: Admin) -> list[dict]:
        return [_with_links(d) for d in state.library.list()]

    @api.post("/documents", summary="Upload documents (multipart field 'files'); each is taken or refused",
              status_code=202)
    async def upload(request: Request, who: Admin,
                     files: Annotated[list[UploadFile], File(description="docx, pdf, md, txt or html")]) -> Any:
        limit = config.max_file_bytes
        if len(files) > MAX_FILES:
            raise HTTPException(400, f"at most {MAX_FILES} files in one upload ({len(files)} sent)")
        uploads = [(f.filename or "", await f.read(limit + 1)) for f in files]
        stored, refused = await run_in_threadpool(state.library.add, uploads, who.actor)
        refused_d = [r.to_dict() for r in refused]
        if not stored:
            return _refusal_response(refused_d)
        job = await run_in_threadpool(submit, "upload", who, [s.source for s in stored])
        for s in stored:
            await run_in_threadpool(audit, request, who, "document.upload", s.source,
                                    {"bytes": s.size, "sha256": s.sha256, "job": job.id})
        return {"accepted": [s.to_dict() for s in stored], "refused": refused_d, "job": job_dict(job)}

    @api.get("/documents/{doc_id}", summary="One document: its text as parsed, its outline and its chunks")
    def get_document(who: Admin, doc_id: DocId) -> dict:
        try:
            return _with_links(state.library.detail(doc_id))
        except UnknownDocumentId as e:
            raise HTTPException(404, str(e.args[0])) from None

    @api.put("/documents/{doc_id}", summary="Replace a document with a new version (multipart field 'file')",
             status_code=202)
    async def replace(request: Request, who: Admin, doc_id: DocId,
                      file: Annotated[UploadFile, File(description="the new version, of the same type")]) -> Any:
        data = await file.read(config.max_file_bytes + 1)
        try:
            stored = await run_in_threadpool(state.library.replace, doc_id, file.filename or "", data, who.actor)
        except UnknownDocumentId as e:
            raise HTTPException(404, str(e.args[0])) from None
        except Refused as e:
            return _refusal_response([e.refusal.to_dict()])
        job = await run_in_threadpool(submit, "replace", who, [stored.source])
        await run_in_threadpool(audit, request, who, "document.replace", stored.source,
                                {"bytes": stored.size, "sha256": stored.sha256, "job": job.id})
        return {"document": stored.to_dict(), "job": job_dict(job)}

    @api.patch("/documents/{doc_id}", summary="Disable (kept, not retrieved) or enable a document")
    async def set_enabled(request: Request, who: Admin, doc_id: DocId, change: EnabledChange) -> Any:
        item = await run_in_threadpool(find, doc_id)
        if (item["status"] == "disabled") != (not change.enabled):
            await run_in_threadpool(state.library.set_enabled, doc_id, change.enabled, who.actor)
            kind = "enable" if change.enabled else "disable"
            job = await run_in_threadpool(submit, kind, who, [item["source"]])
            await run_in_threadpool(audit, request, who, f"document.{kind}", item["source"], {"job": job.id})
            return JSONResponse({"document": _with_links(await run_in_threadpool(find, doc_id)),
                                 "job": job_dict(job)}, status_code=202)
        return {"document": _with_links(item), "job": None}  # already so: nothing to do

    @api.delete("/documents/{doc_id}", summary="Delete a document (its file; it leaves the index)",
                status_code=202)
    async def delete(request: Request, who: Admin, doc_id: DocId) -> Any:
        try:
            item = await run_in_threadpool(state.library.delete, doc_id, who.actor)
        except UnknownDocumentId as e:
            raise HTTPException(404, str(e.args[0])) from None
        job = await run_in_threadpool(submit, "delete", who, [item["source"]])
        await run_in_threadpool(audit, request, who, "document.delete", item["source"],
                                {"sha256": item["sha256"], "job": job.id})
        return {"document": item, "job": job_dict(job)}

    @api.get("/jobs", summary="Recent ingest jobs, newest first")
    def list_jobs(who: Admin) -> list[dict]:
        return [j.to_dict() for j in state.open().runner.list(50)]

    @api.get("/jobs/{job_id}", summary="One ingest job: status, stage, per-file progress, error")
    def get_job(who: Admin, job_id: Annotated[int, PathParam(ge=1, le=2**62)]) -> dict:
        job = state.open().runner.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job.to_dict()

    page_router = APIRouter(include_in_schema=False)

    @page_router.get(PAGE, response_class=HTMLResponse)
    def page(who: Admin) -> HTMLResponse:
        settings = {
            "title": config.app.title, "me": who.name, "csrf": who.csrf, "api": PREFIX,
            "maxFileBytes": config.max_file_bytes, "uploadBodyLimit": upload_body_limit(config),
            "maxFiles": MAX_FILES, "suffixes": list(UPLOAD_SUFFIXES),
        }
        body = fill_template(TEMPLATE, {
            "title": html.escape(f"文档管理 · {config.app.title}"), "static": static_prefix,
            "config": json_for_html(settings),
        })
        return HTMLResponse(body, headers=PAGE_HEADERS)

    router = APIRouter(lifespan=lifespan)
    router.include_router(api)
    router.include_router(page_router)
    router.admin_documents = state
    return router
