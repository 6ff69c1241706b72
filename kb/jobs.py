"""Background ingest jobs: an upload, replace, disable, enable or delete queues one; a single
worker thread runs them one at a time (``kb.service.run_ingest``: incremental, only what
changed is parsed and embedded), records their progress per stage and per file in the ``jobs``
table, and when one completes switches the service to the new index (``KnowledgeService.reload``)
without a restart. The chat and the API answer from the current index meanwhile.

Two writers never build one index at once: ``run_ingest`` holds the index's lock (``kb.index.
index_lock``), also against a ``kb ingest`` run from a shell; a job that finds it taken shows
"waiting for another ingest" and waits. A job that fails (a parser, the embedder, a full disk)
leaves the index that was serving in place (``kb.index`` writes every index beside the current
one and swaps it in only when complete) and records why.

Fitting the refusal threshold (``kb.calibrate``) takes most of a job on a real model (a minute
or more on two cores), so a job first serves the new index with the previous threshold carried
over (``provisional_calibration``): the uploaded document is answered seconds after its
embedding; then the same ingest runs again, fits the threshold for the new documents and swaps
that index in (nothing is parsed or embedded twice). The job is done after both.

Between jobs the worker checks every ``watch_interval_s`` whether the index on disk is another
than the one served (a ``kb ingest`` from a shell) and reloads it: the check is two system calls.

Several servers may share one database (and so one ``jobs`` table) and one index folder. A
server runs the jobs submitted to it; each is claimed with one conditional UPDATE
(``JobStore.claim``), so no job runs twice, and the index lock keeps two servers' ingests apart.
Every runner has an id (``runner_id``: host, process, runner) written on its jobs and a
heartbeat (every ``HEARTBEAT_S``): a server starting up fails only the unfinished jobs whose
runner is gone (of this process and not running, of a dead process on this host, or silent for
``STALE_S``), not those another server is running. The other servers serve the new index as
their own watchers (``kb.watch``, this worker's ``watch_interval_s``) see it appear.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from kb.store.documents import DocumentRecords, Job, JobStore

log = logging.getLogger(__name__)

STAGES = ("queued", "waiting", "parse", "embed", "calibrate", "faq", "reload", "done")
WAITING = "waiting for another ingest"
PROGRESS_EVERY_S = 0.5  # at most this often is the embedding count written while it climbs
JOB_NICENESS = 10  # the worker thread runs below the request threads (Linux: per thread)
HEARTBEAT_S = 10.0  # a runner says it is alive this often (its unfinished jobs' heartbeat_at)
STALE_S = 90.0  # a runner silent this long is gone: a server starting up fails its jobs

_HOST = socket.gethostname()
_live: set[str] = set()  # the runners of this process that are started and not stopped
_live_lock = threading.Lock()


def runner_id() -> str:
    """A new runner's id: ``host:pid:random``."""
    return f"{_HOST}:{os.getpid()}:{secrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def runner_alive(owner: str, heartbeat_at: Any, stale_s: float = STALE_S) -> bool:
    """Whether the runner ``owner`` (a job's) may still be running it."""
    host, _, rest = (owner or "").partition(":")
    pid, _, _token = rest.partition(":")
    if not host or not pid.isdigit():
        return False  # written by a version without owners: one server, now stopped
    if host == _HOST and int(pid) == os.getpid():
        with _live_lock:
            return owner in _live
    if host == _HOST and not _pid_alive(int(pid)):
        return False
    if heartbeat_at is None:
        return False
    from datetime import UTC, datetime

    return (datetime.now(UTC) - heartbeat_at).total_seconds() < stale_s


class CountingEmbedder:
    """The service's embedder, counting the passages it embeds for a job's progress."""

    def __init__(self, inner: Any, on_count: Callable[[int], None]):
        self._inner = inner
        self._on_count = on_count
        self.count = 0
        self.id = inner.id
        self.dim = inner.dim

    def embed_passages(self, texts: list[str]):
        out = self._inner.embed_passages(texts)
        self.count += len(texts)
        self._on_count(self.count)
        return out

    def embed_queries(self, texts: list[str]):
        return self._inner.embed_queries(texts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Progress:
    """One job's progress as the page shows it: the stages passed, the current one, each file
    of the corpus that was parsed now (or skipped, or left out as disabled), texts embedded."""

    def __init__(self, write: Callable[[str, dict], None]):
        self._write = write
        self.stage = "queued"
        self.detail = ""
        self.stages: list[dict] = []
        self.files: dict[str, dict] = {}
        self.reused = 0
        self.embedded = 0
        self._last = 0.0

    def to_dict(self) -> dict:
        return {"stage": self.stage, "detail": self.detail, "stages": self.stages, "files": self.files,
                "reused": self.reused, "embedded": self.embedded}

    def flush(self, force: bool = True) -> None:
        now = time.monotonic()
        if force or now - self._last >= PROGRESS_EVERY_S:
            self._last = now
            text = WAITING if self.stage == "waiting" else self.stage
            self._write(text, self.to_dict())

    def on_stage(self, stage: str, detail: str) -> None:
        now = time.time()
        if self.stages and self.stages[-1].get("finished") is None:
            self.stages[-1]["finished"] = round(now, 3)
        self.stage, self.detail = stage, detail
        self.stages.append({"stage": stage, "started": round(now, 3), "finished": None, "detail": detail})
        self.flush()

    def on_file(self, source: str, state: str, detail: str) -> None:
        if state == "reused":
            self.reused += 1
            return
        entry = {"state": state}
        if state == "parsed":
            entry["chunks"] = int(detail or 0)
        elif detail:
            entry["reason"] = detail
        self.files[source] = entry
        self.flush(force=state != "queued")

    def on_embedded(self, n: int) -> None:
        self.embedded = n
        self.flush(force=False)

    def close(self, stage: str) -> None:
        if self.stages and self.stages[-1].get("finished") is None:
            self.stages[-1]["finished"] = round(time.time(), 3)
        self.stage = stage


class JobRunner:
    """The queue and its one worker thread. ``submit`` returns at once with the queued job."""

    def __init__(self, service: Any, jobs: JobStore, records: DocumentRecords, *,
                 watch_interval_s: float = 5.0, ingest: Callable[..., tuple] | None = None,
                 provisional_calibration: bool = True):
        self.service = service
        self.provisional_calibration = provisional_calibration
        self.config = service.config
        self.jobs = jobs
        self.records = records
        self.watch_interval_s = watch_interval_s
        self._ingest = ingest
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0  # submitted and not finished
        self._running: int | None = None
        self.id = runner_id()  # written on the jobs it queues and runs
        self._beat: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> JobRunner:
        if self._thread is None:
            with _live_lock:
                _live.add(self.id)
            abandoned = self.jobs.abandon_unfinished(
                "interrupted: the server stopped before this job finished (its files are in the corpus; the "
                "next job indexes them)", alive=lambda row: runner_alive(row.owner, row.heartbeat_at))
            if abandoned:
                log.warning("jobs left unfinished by a stopped server marked failed: %s", abandoned)
            self._thread = threading.Thread(target=self._loop, name="kb-jobs", daemon=True)
            self._thread.start()
            self._beat = threading.Thread(target=self._heartbeat, name="kb-jobs-heartbeat", daemon=True)
            self._beat.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._beat is not None:
            self._beat.join(timeout)
            self._beat = None
        with _live_lock:
            _live.discard(self.id)

    def _heartbeat(self) -> None:
        while not self._stopping.wait(HEARTBEAT_S):
            try:
                self.jobs.heartbeat(self.id)
            except Exception as e:  # noqa: BLE001 - the database is down: say so, try again
                log.warning("job heartbeat not written: %s", e)

    # -- the API --------------------------------------------------------------------------------
    def submit(self, kind: str, actor: str, documents: list[str]) -> Job:
        job = self.jobs.create(kind, actor, documents, owner=self.id)
        with self._idle:
            self._pending += 1
        self._queue.put(job.id)
        return self._with_queue(job)

    def get(self, job_id: int) -> Job | None:
        job = self.jobs.get(job_id)
        return self._with_queue(job) if job else None

    def list(self, limit: int = 50) -> list[Job]:
        return [self._with_queue(j) for j in self.jobs.list(limit)]

    def _with_queue(self, job: Job) -> Job:
        if job.status == "queued":
            job.extra["ahead"] = sum(1 for j in self.jobs.list(200, "queued") if j.id < job.id) + (
                1 if self._running is not None else 0)
        return job

    def wait_idle(self, timeout: float = 120.0) -> bool:
        """Block until no job is queued or running (tests, the bench)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.2))
        return True

    # -- the worker -----------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), JOB_NICENESS)
        except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
            pass
        while not self._stopping.is_set():
            try:
                job_id = self._queue.get(timeout=self.watch_interval_s)
            except queue.Empty:
                self._watch()
                continue
            if job_id is None:
                break
            with self._idle:
                self._running = job_id
            try:
                self._run(job_id)
            finally:
                with self._idle:
                    self._running = None
                    self._pending -= 1
                    self._idle.notify_all()

    def _watch(self) -> None:
        """An index written by someone else (``kb ingest`` in a shell): serve it."""
        try:
            if self.service.reload():
                log.info("reloaded an index written outside this server")
        except Exception as e:  # noqa: BLE001 - the old index keeps serving; say why once per change
            log.error("the index on disk cannot be loaded (%s); still serving %s", e, self.service.served.index.path)

    def _run(self, job_id: int) -> None:
        from kb.service import run_ingest

        if not self.jobs.claim(job_id, self.id):  # failed meanwhile, or taken by another runner
            log.warning("job %d not run: it is no longer queued", job_id)
            return
        progress = Progress(lambda stage, data: self.jobs.progress(job_id, stage, data))
        embedder = CountingEmbedder(self.service.embedder, progress.on_embedded)
        ingest = self._ingest or run_ingest
        try:
            exclude = self.records.disabled_sources()
            result, manifest = ingest(
                self.config, embedder, self.service.segmenter, progress=False, exclude=exclude,
                on_file=progress.on_file, on_stage=progress.on_stage, wait=True,
                provisional_calibration=self.provisional_calibration,
            )
            self.records.mark_indexed({s: r.document.sha256 for s, r in result.records.items()})
            progress.on_stage("reload", "")
            self.service.reload()
            embedded = manifest["counts"]["embedded"]
            if (manifest.get("calibration") or {}).get("provisional"):
                # the new documents are answered from now on; the threshold is fitted for them
                # next (the same ingest again: nothing is parsed or embedded, only calibrated)
                progress.on_stage("calibrate", "the new documents are answered already; fitting the refusal "
                                               "threshold for them")
                quiet = lambda stage, detail: None  # noqa: E731 - this pass's stages are the one above
                _, manifest = ingest(self.config, embedder, self.service.segmenter, progress=False,
                                     exclude=exclude, on_stage=quiet, wait=True)
                progress.on_stage("reload", "")
                self.service.reload()
        except Exception as e:  # noqa: BLE001 - every failure is the job's, recorded; the old index serves
            log.error("job %d failed: %s\n%s", job_id, e, traceback.format_exc())
            progress.close("failed")
            self.jobs.finished(job_id, "failed", progress.to_dict(), error=_reason(e))
            return
        progress.close("done")
        c = manifest["counts"]
        summary = {
            "documents": c["documents"], "chunks": c["retrievable_chunks"], "embedded": embedded,
            "processed": result.processed, "removed": result.removed, "reused": len(result.reused),
            "skipped": [{"source": s.source, "reason": s.reason} for s in result.skipped],
            "built_at": manifest["built_at"], "generation": self.service.generation(),
            "seconds": round(sum(v for k, v in manifest.get("build", {}).items() if k == "total"), 3),
        }
        self.jobs.finished(job_id, "done", progress.to_dict(), summary)


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return f"{type(e).__name__}: {text}" if type(e).__name__ not in text else text


__all__ = ["JobRunner", "Progress", "CountingEmbedder", "STAGES", "WAITING"]
