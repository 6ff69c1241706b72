"""The documents of the knowledge base as an administrator manages them: list, upload, replace,
disable, enable, delete, open. The files live in ``config.corpus_dir`` (an upload is stored
there, under its own checked name); who did what and which documents are disabled is kept in
``kb.store.documents``; what is indexed is read from the index being served. Re-indexing is
not done here: each change returns, and the caller starts a job (``kb.jobs``).

Uploads are checked before anything reaches the corpus folder, each file on its own (the others
of the same upload go on): its name (no folder, no hidden file, no control characters, a
supported type, no existing document of that name), its size (``max_file_bytes``), its content
(parsed like an ingest parses it, in a bounded worker: empty, corrupt or undecodable files are
refused with the parser's reason) and whether the same bytes are already a document. A checked
file is written into a hidden staging folder inside the corpus (hidden entries are never
ingested) and linked into place, so an ingest never reads a half-written file and an existing
file is never overwritten by an upload.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.loaders import SUPPORTED_SUFFIXES
from ingest.pipeline import DISABLED_REASON, file_sha256, list_files
from ingest.worker import FileOutcome, run_files
from kb.config import Config
from kb.store.documents import DocumentInfo, DocumentRecords

log = logging.getLogger(__name__)

STAGING = ".kb-staging"  # inside the corpus folder: hidden, so never ingested
MAX_NAME_CHARS = 150
MAX_NAME_BYTES = 240  # most file systems allow 255 bytes a name
MAX_FILES = 50  # files in one upload
UPLOAD_SUFFIXES = (".docx", ".pdf", ".md", ".txt", ".html", ".htm")
assert set(UPLOAD_SUFFIXES) <= SUPPORTED_SUFFIXES

STATUSES = ("indexed", "pending", "skipped", "disabled")


class UnknownDocumentId(KeyError):
    pass


@dataclass(frozen=True)
class Refusal:
    """A file of an upload that was not taken, with an HTTP status for its reason."""

    file: str
    status: int
    reason: str

    def to_dict(self) -> dict:
        return {"file": self.file, "status": self.status, "reason": self.reason}


class Refused(Exception):
    def __init__(self, refusal: Refusal):
        super().__init__(refusal.reason)
        self.refusal = refusal


@dataclass(frozen=True)
class Stored:
    """A file of an upload that was taken: where it is in the corpus."""

    file: str
    source: str
    id: str
    sha256: str
    size: int

    def to_dict(self) -> dict:
        return {"file": self.file, "source": self.source, "id": self.id, "sha256": self.sha256, "size": self.size}


def document_id(source: str) -> str:
    """A document's id in the API: stable for its path in the corpus (a new version keeps it)."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def checked_name(raw: str) -> str:
    """The upload's file name as stored, or ``Refused`` (400/415) saying what is wrong with it.
    Nothing is rewritten silently: a name naming a folder (``../../etc/x.md``, ``a/b.md``), a
    hidden file, control or direction-override characters is refused, not cleaned."""
    shown = raw if isinstance(raw, str) else ""
    name = unicodedata.normalize("NFC", shown).strip()

    def refuse(reason: str, status: int = 400) -> Refused:
        return Refused(Refusal(_printable(shown) or "(no name)", status, reason))

    if not name:
        raise refuse("the file has no name")
    if "/" in name or "\\" in name:
        raise refuse("the name holds a folder path (only a plain file name is accepted)")
    bad = next((ch for ch in name if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")), None)
    if bad is not None:
        raise refuse(f"the name holds a control or formatting character (U+{ord(bad):04X})")
    if name.startswith("."):
        raise refuse("hidden file names (starting with '.') are not accepted")
    if name.endswith("."):
        raise refuse("the name ends with '.'")
    if len(name) > MAX_NAME_CHARS or len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise refuse(f"the name is too long (at most {MAX_NAME_CHARS} characters)")
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise refuse(f"unsupported file type {suffix or '(no suffix)'}: upload docx, pdf, md, txt or html", 415)
    return name


def _printable(name: str) -> str:
    from ingest.pipeline import printable

    return printable(name)[:300]


class DocumentLibrary:
    """The corpus folder, the document records and the served index, as one list of documents.

    ``service`` is the ``KnowledgeService`` (its ``served`` index says what is indexed); changes
    are serialised by one lock (two admins uploading the same name: one wins, the other is
    told)."""

    def __init__(self, config: Config, service: Any, records: DocumentRecords):
        self.config = config
        self.service = service
        self.records = records
        self.corpus = Path(config.corpus_dir)
        self._lock = threading.RLock()
        self._sha: dict[str, tuple[int, int, str]] = {}  # source -> (size, mtime_ns, sha256)

    # -- reading ------------------------------------------------------------------------------
    def _file_sha(self, source: str, path: Path) -> tuple[int, str]:
        st = path.stat()
        cached = self._sha.get(source)
        if cached and cached[:2] == (st.st_size, st.st_mtime_ns):
            return st.st_size, cached[2]
        sha = file_sha256(path)
        self._sha[source] = (st.st_size, st.st_mtime_ns, sha)
        return st.st_size, sha

    def list(self) -> list[dict]:
        """Every document: each file of the corpus folder and each document of the served index
        (one whose file was deleted stays listed, ``pending``, until a job removes it)."""
        manifest = self.service.served.index.manifest
        indexed: dict[str, dict] = manifest.get("documents", {})
        skipped = {s["source"]: s["reason"] for s in manifest.get("skipped", [])}
        built_at = manifest.get("built_at")
        records = self.records.all()
        files, unreadable = list_files(self.corpus)
        on_disk = {p.relative_to(self.corpus).as_posix(): p for p in files}
        for s in unreadable:
            skipped.setdefault(s.source, s.reason)
        out = []
        for source in sorted(set(on_disk) | set(indexed) | set(skipped)):
            out.append(self._item(source, on_disk.get(source), indexed.get(source), skipped.get(source),
                                  records.get(source), built_at))
        return out

    def _item(self, source: str, path: Path | None, doc: dict | None, skip: str | None,
              rec: DocumentInfo | None, built_at: str | None) -> dict:
        size, sha = (0, "")
        if path is not None:
            try:
                size, sha = self._file_sha(source, path)
            except OSError:
                pass
        reason = ""
        if rec is not None and rec.disabled:
            status = "disabled"
            if doc is not None:
                reason = "still answered from until the running job completes"
        elif path is None and doc is not None:
            status, reason = "pending", "deleted: leaves the index when the job completes"
        elif doc is not None and (not sha or sha == doc.get("sha256")):
            status = "indexed"
        elif doc is not None:
            status, reason = "pending", "a new version waits to be indexed (the previous one is answered from)"
        elif skip is not None and skip != DISABLED_REASON:
            status, reason = "skipped", skip
        else:
            status, reason = "pending", "waits to be indexed"
        indexed_at = None
        if doc is not None:
            if rec is not None and rec.indexed_at is not None and rec.indexed_sha256 == doc.get("sha256"):
                indexed_at = rec.indexed_at.isoformat(timespec="seconds")
            else:
                indexed_at = built_at
        suffix = Path(source).suffix.lower().lstrip(".")
        return {
            "id": document_id(source),
            "source": source,
            "title": (doc or {}).get("title") or Path(source).stem,
            "format": (doc or {}).get("kind") or ("html" if suffix == "htm" else suffix),
            "size": size,
            "chars": (doc or {}).get("chars", 0),
            "chunks": (doc or {}).get("chunks", 0),
            "status": status,
            "reason": reason,
            "indexed": doc is not None,
            "indexed_at": indexed_at,
            "uploaded_by": rec.uploaded_by if rec else "",
            "uploaded_at": rec.uploaded_at.isoformat(timespec="seconds") if rec and rec.uploaded_at else None,
            "replaced_by": rec.replaced_by if rec else "",
            "replaced_at": rec.replaced_at.isoformat(timespec="seconds") if rec and rec.replaced_at else None,
            "disabled_by": rec.disabled_by if rec else "",
            "sha256": sha or (doc or {}).get("sha256", ""),
        }

    def find(self, doc_id: str) -> dict:
        """The listed document with this id; ``UnknownDocumentId`` when there is none."""
        for item in self.list():
            if item["id"] == doc_id:
                return item
        raise UnknownDocumentId(f"no document with id {doc_id!r} (GET /api/admin/documents lists them)")

    def detail(self, doc_id: str) -> dict:
        """The listed document with, when it is indexed, its text as parsed, its outline and its
        chunks (``text[start:end]`` of each), as the served index has them (``chunks`` is then
        that list; ``chunk_count`` the list's count of the listing)."""
        item = self.find(doc_id)
        index = self.service.served.index
        doc = index.documents.get(item["source"])
        item = {**item, "chunk_count": item["chunks"], "text": None, "outline": [], "chunks": []}
        if doc is not None:
            item["text"] = doc.text
            item["outline"] = [{"start": h.start, "end": h.end, "label": h.label, "level": h.level,
                                "parent": h.parent, "path": h.path} for h in index.outline.get(doc.source, [])]
            item["chunks"] = [{"id": c.id, "section": c.section, "start": c.start, "end": c.end, "text": c.text,
                               "duplicate_of": c.dup_of, "retrievable": not c.dup_of}
                              for c in index.all_chunks if c.source == doc.source]
        return item

    # -- changing -------------------------------------------------------------------------------
    def _known_contents(self) -> dict[str, str]:
        """SHA-256 of each document's bytes -> its source: the served index's and the corpus's
        recorded (uploaded, disabled) ones."""
        out = {v.get("sha256"): s for s, v in self.service.served.index.manifest.get("documents", {}).items()}
        for rec in self.records.all().values():
            if rec.sha256 and (self.corpus / rec.source).exists():
                out.setdefault(rec.sha256, rec.source)
        return out

    def _check_content(self, staged: list[tuple[str, Path]], staging: Path) -> dict[str, str]:
        """Parse each staged file as an ingest would (bounded worker processes); name -> the
        parser's reason for each file that yields no document."""
        from kb.service import file_limits

        problems: dict[str, str] = {}

        def done(o: FileOutcome) -> None:
            if o.skipped:
                problems[o.source] = o.skipped

        run_files([(name, str(path)) for name, path in staged], staging, self.config.chunking,
                  file_limits(self.config), done)
        return problems

    def add(self, uploads: list[tuple[str, bytes]], actor: str) -> tuple[list[Stored], list[Refusal]]:
        """Store new documents; each file is taken or refused on its own."""
        if len(uploads) > MAX_FILES:
            return [], [Refusal(_printable(n), 400, f"at most {MAX_FILES} files in one upload") for n, _ in uploads]
        with self._lock:
            refused: list[Refusal] = []
            candidates: list[tuple[str, str, bytes]] = []  # (shown name, name, data)
            known = self._known_contents()
            for raw, data in uploads:
                try:
                    name = checked_name(raw)
                    self._check_bytes(name, data)
                    if (self.corpus / name).exists() or (self.corpus / name).is_symlink():
                        raise Refused(Refusal(name, 409, f"a document named {name} exists: replace it "
                                                         "(PUT /api/admin/documents/{id}) or delete it first"))
                    sha = hashlib.sha256(data).hexdigest()
                    if sha in known:
                        raise Refused(Refusal(name, 409, f"duplicate: the same content is already in the "
                                                         f"knowledge base as {known[sha]}"))
                    if any(n == name for _, n, _ in candidates):
                        raise Refused(Refusal(name, 409, "the same name twice in one upload"))
                    known[sha] = name
                    candidates.append((raw, name, data))
                except Refused as e:
                    refused.append(e.refusal)
            stored = self._store(candidates, actor, refused, replace=False)
            return stored, refused

    def replace(self, doc_id: str, raw_name: str, data: bytes, actor: str) -> Stored:
        """A new version of a document, under its own name (so its id and citations' source
        stay); the new file must be of the same type. ``Refused`` says why not."""
        with self._lock:
            item = self.find(doc_id)
            source = item["source"]
            name = checked_name(raw_name)
            old_suffix, new_suffix = Path(source).suffix.lower(), Path(name).suffix.lower()
            if old_suffix != new_suffix:
                raise Refused(Refusal(name, 415, f"{source} is a {old_suffix} file; its new version must be one "
                                                 f"too (upload a {new_suffix} as a new document instead)"))
            self._check_bytes(name, data)
            sha = hashlib.sha256(data).hexdigest()
            if sha == item["sha256"]:
                raise Refused(Refusal(name, 409, f"unchanged: this is the version of {source} already stored"))
            known = self._known_contents()
            if sha in known and known[sha] != source:
                raise Refused(Refusal(name, 409, f"duplicate: the same content is already in the knowledge "
                                                 f"base as {known[sha]}"))
            refused: list[Refusal] = []
            stored = self._store([(raw_name, source, data)], actor, refused, replace=True)
            if refused:
                raise Refused(refused[0])
            return stored[0]

    def _check_bytes(self, name: str, data: bytes) -> None:
        limit = self.config.max_file_bytes
        if len(data) > limit:
            raise Refused(Refusal(name, 413, f"too large: {len(data):,} bytes (at most {limit:,}; max_file_bytes)"))
        if not data.strip():
            raise Refused(Refusal(name, 422, "empty file"))

    def _store(self, candidates: list[tuple[str, str, bytes]], actor: str, refused: list[Refusal],
               replace: bool) -> list[Stored]:
        """Write, parse-check and move the candidates into the corpus (``name`` may hold a
        folder for a replacement: the document's own source)."""
        if not candidates:
            return []
        staging = self.corpus / STAGING / uuid.uuid4().hex
        staging.mkdir(parents=True)
        try:
            staged: list[tuple[str, Path]] = []
            for i, (_raw, name, data) in enumerate(candidates):
                path = staging / f"{i}{Path(name).suffix.lower()}"
                with open(path, "xb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                staged.append((path.name, path))
            problems = self._check_content(staged, staging)
            out = []
            for (_raw, name, data), (tmp_name, path) in zip(candidates, staged, strict=True):
                if tmp_name in problems:
                    refused.append(Refusal(name, 422, f"cannot be read: {problems[tmp_name]}"))
                    continue
                target = self.corpus / name
                if not _inside(target, self.corpus):
                    refused.append(Refusal(name, 400, "the name leads outside the corpus folder"))
                    continue
                try:
                    if replace:
                        os.replace(path, target)  # atomic: the old version or the new, never a part
                    else:
                        _link_new(path, target)
                except FileExistsError:
                    refused.append(Refusal(name, 409, f"a document named {name} exists: replace it or delete it first"))
                    continue
                except OSError as e:
                    refused.append(Refusal(name, 507 if e.errno == 28 else 500,
                                           f"cannot be stored in the corpus folder: {e.strerror or e}"))
                    continue
                sha = hashlib.sha256(data).hexdigest()
                if replace:
                    self.records.replaced(name, sha, len(data), actor)
                else:
                    self.records.uploaded(name, sha, len(data), actor)
                out.append(Stored(_printable(_raw) if _raw != name else name, name, document_id(name), sha, len(data)))
            return out
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            try:
                (self.corpus / STAGING).rmdir()
            except OSError:
                pass

    def set_enabled(self, doc_id: str, enabled: bool, actor: str) -> dict:
        """Disable (kept in the corpus, left out of the index from the next job on) or enable."""
        with self._lock:
            item = self.find(doc_id)
            self.records.set_disabled(item["source"], not enabled, actor, item["sha256"])
            return item

    def delete(self, doc_id: str, actor: str) -> dict:
        """Remove the document's file from the corpus (it leaves the index at the next job)."""
        with self._lock:
            item = self.find(doc_id)
            path = self.corpus / item["source"]
            if _inside(path, self.corpus):
                path.unlink(missing_ok=True)
            self.records.deleted(item["source"])
            self._sha.pop(item["source"], None)
            return item


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path``'s folder is ``folder`` or under it (links resolved)."""
    return Path(os.path.realpath(path.parent)).is_relative_to(os.path.realpath(folder))


def _link_new(path: Path, target: Path) -> None:
    """Put ``path`` at ``target`` only if nothing is there (``FileExistsError`` otherwise)."""
    try:
        os.link(path, target)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: exclusive create, then copy
        with open(target, "xb") as out, open(path, "rb") as src:
            shutil.copyfileobj(src, out)
    path.unlink(missing_ok=True)


__all__ = ["DocumentLibrary", "Refusal", "Refused", "Stored", "UnknownDocumentId", "checked_name", "document_id",
           "STATUSES", "UPLOAD_SUFFIXES", "MAX_FILES"]
