"""What the documents page keeps beside the corpus folder: who uploaded or replaced each document,
which are disabled, when each version was indexed (table ``documents``), and the background
ingest jobs with their progress (table ``jobs``). The files themselves stay in ``corpus_dir``;
the index stays in ``index_dir``.

Both tables are on ``kb.store.models.Base`` (that module imports this one, so the migrations and
the models are compared as one schema) and come with the migration ``0100_documents_jobs``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Integer, String, Text, delete, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Mapped, mapped_column

from kb.store.models import Base, UTCDateTime

JOB_KINDS = ("upload", "replace", "disable", "enable", "delete", "reindex")
JOB_STATUSES = ("queued", "running", "done", "failed")
MAX_ERROR = 4000


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="seconds") if t else None


class DocumentRow(Base):
    """One document of the corpus that the documents page or API touched: ``source`` is its path
    relative to the corpus folder (what citations name). Files put in the corpus another way
    (a shell, the bundled corpus) have no row until an admin acts on them."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(1000), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), default="")  # of the file as last uploaded
    size: Mapped[int] = mapped_column(Integer, default=0)
    uploaded_by: Mapped[str] = mapped_column(String(100), default="")
    uploaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    replaced_by: Mapped[str] = mapped_column(String(100), default="")
    replaced_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    disabled_by: Mapped[str] = mapped_column(String(100), default="")
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    indexed_sha256: Mapped[str] = mapped_column(String(64), default="")  # the version in the index
    indexed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class JobRow(Base):
    """A background ingest: ``progress`` is JSON (stages, files, texts embedded), ``result`` a JSON
    summary of the ingest once done, ``error`` why it failed."""

    __tablename__ = "jobs"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    stage: Mapped[str] = mapped_column(String(200), default="")
    actor: Mapped[str] = mapped_column(String(100), default="")
    documents: Mapped[str] = mapped_column(Text, default="[]")
    progress: Mapped[str] = mapped_column(Text, default="{}")
    result: Mapped[str] = mapped_column(Text, default="{}")
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # the server whose runner queued or claimed it (``kb.jobs.runner_id``: host, process, runner)
    # and when that runner last said it is alive (migration 0200)
    owner: Mapped[str] = mapped_column(String(200), default="", server_default="")
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


@dataclass(frozen=True)
class DocumentInfo:
    source: str
    sha256: str = ""
    size: int = 0
    uploaded_by: str = ""
    uploaded_at: datetime | None = None
    replaced_by: str = ""
    replaced_at: datetime | None = None
    disabled_by: str = ""
    disabled_at: datetime | None = None
    indexed_sha256: str = ""
    indexed_at: datetime | None = None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    @classmethod
    def of(cls, row: DocumentRow) -> DocumentInfo:
        return cls(row.source, row.sha256, row.size, row.uploaded_by, row.uploaded_at, row.replaced_by,
                   row.replaced_at, row.disabled_by, row.disabled_at, row.indexed_sha256, row.indexed_at)


@dataclass
class Job:
    id: int
    kind: str
    status: str
    stage: str
    actor: str
    documents: list[str]
    progress: dict[str, Any]
    result: dict[str, Any]
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, row: JobRow) -> Job:
        return cls(row.id, row.kind, row.status, row.stage, row.actor, json.loads(row.documents or "[]"),
                   json.loads(row.progress or "{}"), json.loads(row.result or "{}"), row.error,
                   row.created_at, row.started_at, row.finished_at)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "status": self.status, "stage": self.stage,
                "actor": self.actor, "documents": self.documents, "progress": self.progress,
                "result": self.result, "error": self.error, "created_at": _iso(self.created_at),
                "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at), **self.extra}


class DocumentRecords:
    """The ``documents`` table."""

    def __init__(self, db):
        self.db = db

    def all(self) -> dict[str, DocumentInfo]:
        with self.db.session() as s:
            return {r.source: DocumentInfo.of(r) for r in s.scalars(select(DocumentRow))}

    def get(self, source: str) -> DocumentInfo | None:
        with self.db.session() as s:
            row = s.scalar(select(DocumentRow).where(DocumentRow.source == source))
            return DocumentInfo.of(row) if row else None

    def _row(self, s, source: str) -> DocumentRow:
        row = s.scalar(select(DocumentRow).where(DocumentRow.source == source))
        if row is None:
            row = DocumentRow(source=source)
            s.add(row)
        return row

    def uploaded(self, source: str, sha256: str, size: int, actor: str) -> None:
        """A new document (a row left by an earlier document of the same name is started anew)."""
        with self.db.session() as s:
            s.execute(delete(DocumentRow).where(DocumentRow.source == source))
            s.add(DocumentRow(source=source, sha256=sha256, size=size, uploaded_by=actor, uploaded_at=_now()))

    def replaced(self, source: str, sha256: str, size: int, actor: str) -> None:
        with self.db.session() as s:
            row = self._row(s, source)
            row.sha256, row.size, row.replaced_by, row.replaced_at = sha256, size, actor, _now()

    def set_disabled(self, source: str, disabled: bool, actor: str, sha256: str = "") -> None:
        """``sha256``: the file's, recorded when the row has none (so that an upload of the same
        content is still known as a duplicate while the document is out of the index)."""
        with self.db.session() as s:
            row = self._row(s, source)
            row.disabled_by = actor if disabled else ""
            row.disabled_at = _now() if disabled else None
            if sha256 and not row.sha256:
                row.sha256 = sha256

    def deleted(self, source: str) -> None:
        with self.db.session() as s:
            s.execute(delete(DocumentRow).where(DocumentRow.source == source))

    def disabled_sources(self) -> set[str]:
        with self.db.session() as s:
            return set(s.scalars(select(DocumentRow.source).where(DocumentRow.disabled_at.is_not(None))))

    def mark_indexed(self, documents: dict[str, str]) -> None:
        """After an ingest: ``documents`` maps each indexed source to its file's SHA-256; a version
        not recorded as indexed yet gets the time now."""
        now = _now()
        with self.db.session() as s:
            rows = {r.source: r for r in s.scalars(select(DocumentRow))}
            for source, sha in documents.items():
                row = rows.get(source)
                if row is None:
                    s.add(DocumentRow(source=source, sha256=sha, indexed_sha256=sha, indexed_at=now))
                elif row.indexed_sha256 != sha:
                    row.indexed_sha256, row.indexed_at = sha, now


class JobStore:
    """The ``jobs`` table."""

    def __init__(self, db):
        self.db = db

    def create(self, kind: str, actor: str, documents: list[str], owner: str = "") -> Job:
        if kind not in JOB_KINDS:
            raise ValueError(f"job kind {kind!r}: one of {', '.join(JOB_KINDS)}")
        now = _now()
        with self.db.session() as s:
            row = JobRow(kind=kind, status="queued", stage="queued", actor=actor,
                         documents=json.dumps(documents, ensure_ascii=False), created_at=now,
                         owner=owner[:200], heartbeat_at=now if owner else None)
            s.add(row)
            s.flush()
            return Job.of(row)

    def get(self, job_id: int) -> Job | None:
        with self.db.session() as s:
            row = s.get(JobRow, job_id)
            return Job.of(row) if row else None

    def list(self, limit: int = 50, status: str | None = None) -> list[Job]:
        with self.db.session() as s:
            q = select(JobRow).order_by(JobRow.id.desc()).limit(limit)
            if status:
                q = q.where(JobRow.status == status)
            return [Job.of(r) for r in s.scalars(q)]

    def started(self, job_id: int) -> None:
        with self.db.session() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id).values(status="running", started_at=_now()))

    def claim(self, job_id: int, owner: str) -> bool:
        """Take a queued job to run it: True for exactly one caller, however many servers share
        the table (one conditional UPDATE: the database serialises them; a job already running,
        finished or failed is not taken again)."""
        now = _now()
        with self.db.session() as s:
            done = s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == "queued").values(
                status="running", started_at=now, owner=owner[:200], heartbeat_at=now))
            return done.rowcount == 1

    def heartbeat(self, owner: str) -> int:
        """``owner`` is alive: its queued and running jobs are not to be failed by another server
        starting up. Returns how many jobs it has."""
        with self.db.session() as s:
            return s.execute(update(JobRow).where(JobRow.owner == owner, JobRow.status.in_(("queued", "running")))
                             .values(heartbeat_at=_now())).rowcount

    def progress(self, job_id: int, stage: str, progress: dict[str, Any]) -> None:
        with self.db.session() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id).values(
                stage=stage[:200], progress=json.dumps(progress, ensure_ascii=False)))

    def finished(self, job_id: int, status: str, progress: dict[str, Any], result: dict[str, Any] | None = None,
                 error: str = "") -> None:
        if status not in ("done", "failed"):
            raise ValueError(f"a job finishes done or failed, not {status!r}")
        with self.db.session() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id).values(
                status=status, stage=status, finished_at=_now(), error=error[:MAX_ERROR],
                progress=json.dumps(progress, ensure_ascii=False),
                result=json.dumps(result or {}, ensure_ascii=False)))

    def abandon_unfinished(self, reason: str, alive: Callable[[JobRow], bool] | None = None) -> list[int]:
        """Jobs a stopped server left queued or running: failed with ``reason`` (the corpus
        folder holds their files; the next job indexes them). ``alive(row)``: whether the
        server that owns it still runs (``kb.jobs``: its heartbeat is recent); such jobs stay.
        Without it every unfinished job is failed (one server alone on its database)."""
        with self.db.session() as s:
            rows = s.scalars(select(JobRow).where(JobRow.status.in_(("queued", "running")))).all()
            ids = [r.id for r in rows if alive is None or not alive(r)]
            if ids:
                s.execute(update(JobRow).where(JobRow.id.in_(ids)).values(
                    status="failed", stage="failed", error=reason, finished_at=_now()))
            return ids


def disabled_sources(config: Any) -> set[str]:
    """The disabled documents of ``config``'s database; empty (and no database created) when
    the default SQLite file does not exist yet: nothing was ever disabled."""
    from kb.store.db import database_url, open_database

    url = database_url(config)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:" \
            and not Path(parsed.database).exists():
        return set()
    db = open_database(config)
    try:
        return DocumentRecords(db).disabled_sources()
    finally:
        db.close()
