"""Per-file work (load, clean, chunk) in worker processes, each file bounded in time and memory.

One hostile file must not stall or sink an ingest: a file whose parse runs past
``timeout_s`` has its worker killed and is reported as skipped; a worker that runs out of its
``memory_mb`` address space (or crashes in a C parser) loses only that file; every other file
goes on. Workers are started with ``forkserver``, so they never inherit the parent's threads,
models or open indexes, and two of them also use both cores for parsing.

``workers=0`` runs in this process, unbounded (tests, debugging). A script that ingests with
workers must guard its top level with ``if __name__ == "__main__":``, as every program that
starts processes with ``forkserver`` or ``spawn`` must (the ``kb`` command does).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from ingest.chunk import ChunkSettings, Heading, chunk_document, document_outline
from ingest.clean import find_noise
from ingest.loaders import LoadError, load_document
from ingest.models import Chunk, Document

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileLimits:
    max_bytes: int = 50 * 1024 * 1024
    max_unpacked_bytes: int = 200 * 1024 * 1024
    timeout_s: float = 120.0
    memory_mb: int = 4096
    workers: int = 2


@dataclass
class FileOutcome:
    """What became of one file: its document and chunks, or why it was skipped."""

    source: str
    document: Document | None = None
    chunks: list[Chunk] | None = None
    noise_chars: int = 0
    skipped: str = ""
    seconds: dict[str, float] | None = None
    outline: list[Heading] | None = None


def process_file(source: str, path: str, corpus: str, settings: ChunkSettings,
                 limits: FileLimits) -> FileOutcome:
    """Load, clean and chunk one file. Expected failures come back as ``skipped``."""
    t0 = time.perf_counter()
    try:
        doc = load_document(Path(path), Path(corpus), max_bytes=limits.max_bytes,
                            max_unpacked_bytes=limits.max_unpacked_bytes)
    except LoadError as e:
        return FileOutcome(source, skipped=str(e))
    except MemoryError:
        return FileOutcome(source, skipped=f"needs more than {limits.memory_mb:,} MB to parse (not read)")
    except RecursionError:
        return FileOutcome(source, skipped="structure nested too deeply to parse")
    except OSError as e:
        return FileOutcome(source, skipped=f"cannot read file: {e.strerror or e}")
    t1 = time.perf_counter()
    try:
        noise = find_noise(doc.text)
        t2 = time.perf_counter()
        chunks = chunk_document(doc, noise, settings)
        outline = document_outline(doc, noise, settings)
    except MemoryError:
        return FileOutcome(source, skipped=f"needs more than {limits.memory_mb:,} MB to chunk (not read)")
    t3 = time.perf_counter()
    if not chunks:
        return FileOutcome(source, skipped="no content left after cleaning")
    return FileOutcome(
        source, doc, chunks, sum(n.end - n.start for n in noise),
        seconds={"load": t1 - t0, "clean": t2 - t1, "chunk": t3 - t2}, outline=outline,
    )


def _limit_memory(memory_mb: int) -> None:
    """Worker initializer: cap the address space, so a parse that balloons fails with
    MemoryError in this worker instead of taking the machine's memory."""
    try:
        import resource

        cap = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (ImportError, ValueError, OSError):  # not on this platform: time is still bounded
        pass


def _context():
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["ingest.worker"])
    return ctx


def _pool(n: int, limits: FileLimits) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=n, mp_context=_context(),
                               initializer=_limit_memory, initargs=(limits.memory_mb,))


def _kill(pool: ProcessPoolExecutor) -> None:
    for proc in list(getattr(pool, "_processes", {}).values()):
        try:
            proc.kill()
        except (OSError, AttributeError):
            pass
    pool.shutdown(wait=False, cancel_futures=True)


Task = tuple[str, str]  # (source, path)


def run_files(tasks: Iterable[Task], corpus: Path, settings: ChunkSettings, limits: FileLimits,
              on_done: Callable[[FileOutcome], None]) -> None:
    """Process every ``(source, path)``, calling ``on_done`` once per file (in completion
    order). Never raises for a file's sake."""
    tasks = list(tasks)
    if not tasks:
        return
    if limits.workers <= 0:
        for source, path in tasks:
            on_done(process_file(source, path, str(corpus), settings, limits))
        return
    queue: deque[Task] = deque(tasks)
    suspects: deque[Task] = deque()  # in flight when a worker died: retried one at a time
    while queue or suspects:
        alone = not queue
        batch = suspects if alone else queue
        n = 1 if alone else min(limits.workers, len(batch), os.cpu_count() or 1)
        pool = _pool(n, limits)
        inflight: dict[Future, tuple[Task, float]] = {}
        try:
            while batch or inflight:
                while batch and len(inflight) < n:
                    task = batch.popleft()
                    fut = pool.submit(process_file, task[0], task[1], str(corpus), settings, limits)
                    inflight[fut] = (task, time.monotonic())
                done, _ = wait(list(inflight), timeout=0.25, return_when=FIRST_COMPLETED)
                for fut in done:
                    task, started = inflight.pop(fut)
                    try:
                        outcome = fut.result()
                    except BrokenProcessPool:
                        inflight[fut] = (task, started)  # lost with the others in flight
                        raise
                    except Exception as e:  # noqa: BLE001 - a parser bug costs one file
                        log.warning("parsing %s failed: %r", task[0], e)
                        on_done(FileOutcome(task[0], skipped=f"parser error: {type(e).__name__}: {e}"[:200]))
                    else:
                        on_done(outcome)
                now = time.monotonic()
                late = [(f, t) for f, (t, started) in inflight.items() if now - started > limits.timeout_s]
                if late:
                    for fut, task in late:
                        inflight.pop(fut)
                        on_done(FileOutcome(task[0], skipped=(
                            f"took longer than {limits.timeout_s:g} s to parse (stopped; not read)")))
                    _kill(pool)
                    batch.extendleft(t for t, _ in reversed(list(inflight.values())))
                    inflight = {}
                    pool = _pool(n, limits)
        except BrokenProcessPool:
            lost = [t for t, _ in inflight.values()]
            if alone:  # it died on its own: this file is the cause
                for task in lost:
                    on_done(FileOutcome(task[0], skipped=(
                        "the parser crashed on this file (out of memory or a corrupt structure)")))
            else:
                suspects.extend(lost)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
