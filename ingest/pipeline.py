"""The ingest stage as one function: corpus folder in, documents and chunks out.

Load (detect encoding / extract text) -> clean (find noise spans) -> chunk (structure-aware,
exact offsets) -> mark near-duplicates. Unchanged documents (same bytes, same cleaning rules and
chunk settings) are reused from the previous run; bad files are reported and skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ingest.chunk import ChunkSettings, Heading
from ingest.clean import RULES
from ingest.dedup import mark_duplicates
from ingest.loaders import SUPPORTED_SUFFIXES
from ingest.models import Chunk, Document, Skipped
from ingest.worker import FileLimits, FileOutcome, run_files

log = logging.getLogger(__name__)

# why a file of the corpus that an administrator disabled is not in the index
DISABLED_REASON = "disabled by an administrator (kept in the corpus, not indexed)"

# ``on_file(source, state, detail)``: what happens to each file of an ingest, as it happens.
# States: "excluded" (disabled), "reused" (unchanged), "queued" (to be parsed), then "parsed"
# (detail: its chunk count) or "skipped" (detail: the reason).
FileEvent = Callable[[str, str, str], None]


@dataclass
class DocRecord:
    document: Document
    chunks: list[Chunk]
    noise_chars: int = 0
    outline: list[Heading] = field(default_factory=list)  # the document's headings as a tree


@dataclass
class IngestResult:
    records: dict[str, DocRecord]  # by source, sorted
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[Skipped] = field(default_factory=list)  # read, with something to report (bad bytes replaced)
    processed: list[str] = field(default_factory=list)  # new or changed, (re)chunked now
    reused: list[str] = field(default_factory=list)  # unchanged since the previous run
    removed: list[str] = field(default_factory=list)  # gone since the previous run
    duplicates: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    doc_timings: dict[str, dict[str, float]] = field(default_factory=dict)  # source -> stage -> s
    fingerprint: str = ""

    @property
    def chunks(self) -> list[Chunk]:
        """All chunks, near-duplicates included (those carry ``dup_of``)."""
        return [c for r in self.records.values() for c in r.chunks]

    @property
    def kept_chunks(self) -> list[Chunk]:
        return [c for c in self.chunks if not c.dup_of]

    @property
    def characters(self) -> int:
        return sum(len(r.document.text) for r in self.records.values())


def ingest_fingerprint(settings: ChunkSettings) -> str:
    """Identity of the loaders, cleaning rules and chunker (their code) and the chunk settings:
    a change to any of them re-chunks every document on the next ingest."""
    import ingest.chunk
    import ingest.clean
    import ingest.loaders

    rules = [(r.name, r.pattern.pattern, r.pattern.flags) for r in RULES]
    code = hashlib.sha256()
    for module in (ingest.chunk, ingest.clean, ingest.loaders):
        code.update(Path(module.__file__).read_bytes())
    raw = json.dumps(
        {"rules": rules, "chunking": settings.as_dict(), "code": code.hexdigest()}, ensure_ascii=False
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _skip_reason(entry: os.DirEntry, corpus_real: Path) -> str:
    """Why a directory entry under the corpus is not read ("" when it is a file to read)."""
    try:
        if entry.is_symlink():
            target = Path(os.path.realpath(entry.path))
            if not target.exists():
                return "dangling symbolic link (its target does not exist)"
            if not target.is_relative_to(corpus_real):
                return "symbolic link to a path outside the corpus folder (not read)"
            if target.is_dir():
                return "symbolic link to a folder (not followed; its files are read where they are)"
        info = os.stat(entry.path)  # follows a link that stays inside the corpus
    except OSError as e:
        return f"cannot read: {e.strerror or e}"
    if stat.S_ISREG(info.st_mode):
        return ""
    kinds = {stat.S_ISFIFO: "a named pipe (FIFO)", stat.S_ISSOCK: "a socket",
             stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
    kind = next((name for test, name in kinds.items() if test(info.st_mode)), "not a regular file")
    return f"not a regular file: {kind}"


def list_files(corpus: Path) -> tuple[list[Path], list[Skipped]]:
    """Every regular, non-hidden file under ``corpus`` (sorted by relative path), and the
    entries that are not read with their reason: symbolic links that leave the corpus or
    dangle, links to folders, FIFOs, sockets, devices, unreadable folders. Nothing outside the
    corpus folder is ever listed; links are never followed out of it."""
    corpus = Path(corpus)
    corpus_real = Path(os.path.realpath(corpus))
    files: list[Path] = []
    skipped: list[Skipped] = []
    folders = [corpus]
    while folders:
        folder = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as e:
            rel = folder.relative_to(corpus).as_posix()
            skipped.append(Skipped(rel + "/", f"cannot read folder: {e.strerror or e}"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            rel = path.relative_to(corpus).as_posix()
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                folders.append(path)
                continue
            reason = _skip_reason(entry, corpus_real)
            if reason:
                skipped.append(Skipped(rel, reason))
            else:
                files.append(path)
    files.sort(key=lambda p: p.relative_to(corpus).as_posix())
    skipped.sort(key=lambda s: s.source)
    return files, skipped


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ingest_corpus(
    corpus: Path,
    settings: ChunkSettings,
    previous: dict[str, DocRecord] | None = None,
    previous_fingerprint: str = "",
    max_bytes: int = 50 * 1024 * 1024,
    progress: bool = True,
    limits: FileLimits | None = None,
    exclude: Collection[str] = (),
    on_file: FileEvent | None = None,
    parse_files: Callable[..., None] | None = None,
) -> IngestResult:
    """Ingest every supported file under ``corpus``.

    ``previous`` holds the records of the last run (by source); a document whose bytes hash the
    same, under the same fingerprint, is reused without being loaded or chunked again.
    ``limits`` bound each file's size, unpacked size, parse time and memory; without them,
    files are parsed in this process (no time or memory bound). Sources in ``exclude``
    (documents an administrator disabled) are not read: they are listed as skipped with
    ``DISABLED_REASON`` and, when they were indexed before, as removed. ``on_file`` hears of
    each file as it is reused, queued, parsed or skipped (see ``FileEvent``). ``parse_files``
    parses the new and changed files (the shape of ``ingest.worker.run_files``, the default: an
    executor's ``parse``, ``kb.executors``)."""
    corpus = Path(corpus)
    if not corpus.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {corpus}")
    limits = limits or FileLimits(max_bytes=max_bytes, workers=0)
    fingerprint = ingest_fingerprint(settings)
    reusable = previous if previous and previous_fingerprint == fingerprint else {}
    result = IngestResult(records={}, fingerprint=fingerprint)
    timings = {"load": 0.0, "clean": 0.0, "chunk": 0.0, "dedup": 0.0}
    files, result.skipped = list_files(corpus)
    excluded = set(exclude)
    tell = on_file or (lambda source, state, detail: None)
    outcomes: dict[str, FileOutcome] = {}
    reused: dict[str, DocRecord] = {}
    todo: list[tuple[str, str]] = []
    for path in files:
        source = path.relative_to(corpus).as_posix()
        if source in excluded:
            outcomes[source] = FileOutcome(source, skipped=DISABLED_REASON)
            tell(source, "excluded", DISABLED_REASON)
            continue
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            outcomes[source] = FileOutcome(source, skipped=f"unsupported file type {path.suffix or '(none)'}")
            continue
        old = reusable.get(source)
        if old is not None:
            try:
                same = file_sha256(path) == old.document.sha256
            except OSError:
                same = False
            if same:
                reused[source] = old
                tell(source, "reused", "")
                continue
        todo.append((source, str(path)))
        tell(source, "queued", "")
    t_parse = time.perf_counter()
    with tqdm(total=len(todo), desc="parse", unit="doc", disable=not progress or not todo, leave=False) as bar:
        def done(outcome: FileOutcome) -> None:
            outcomes[outcome.source] = outcome
            if outcome.skipped:
                log.warning("skipped %s: %s", printable(outcome.source), outcome.skipped)
                tell(outcome.source, "skipped", outcome.skipped)
            else:
                tell(outcome.source, "parsed", str(len(outcome.chunks or [])))
            bar.update(1)

        (parse_files or run_files)(todo, corpus, settings, limits, done)
    wall = time.perf_counter() - t_parse
    for path in files:
        source = path.relative_to(corpus).as_posix()
        if source in reused:  # the previous record itself, not a copy
            result.records[source] = reused[source]
            result.reused.append(source)
            continue
        o = outcomes[source]
        if o.skipped:
            result.skipped.append(Skipped(source, o.skipped))
        else:
            for stage, seconds in (o.seconds or {}).items():
                timings[stage] += seconds
            result.doc_timings[source] = dict(o.seconds or {})
            for note in o.document.notes:
                result.notes.append(Skipped(source, note))
            result.records[source] = DocRecord(o.document, o.chunks, o.noise_chars, o.outline or [])
            result.processed.append(source)
    result.skipped.sort(key=lambda s: s.source)
    timings["parse_wall"] = wall
    if previous:
        result.removed = sorted(set(previous) - set(result.records))
    t0 = time.perf_counter()
    result.duplicates = mark_duplicates(result.chunks)
    timings["dedup"] = time.perf_counter() - t0
    result.timings = timings
    return result


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(name: str) -> str:
    """A file name safe to print on a terminal: control characters (ANSI escapes among them)
    and bidirectional overrides shown as ``\\xNN`` / ``\\uNNNN`` instead of acting."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), name)
