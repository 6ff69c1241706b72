"""Data shared by the ingest stages: documents, noise spans, chunks and the ingest report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Document:
    """One decoded source document.

    ``text`` is the original decoded text (for .txt/.md exactly the file's characters; for
    .docx/.pdf/.html the extracted text). Every offset elsewhere in the system points into it.
    """

    source: str  # path relative to the corpus folder, with forward slashes
    text: str
    title: str
    kind: str  # "txt", "md", "docx", "pdf", "html"
    encoding: str  # detected encoding for text files, "" for binary formats
    sha256: str  # hash of the file's bytes
    # what the loader had to repair, e.g. "4 undecodable bytes replaced with U+FFFD (utf-8)"
    notes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what the loader had to repair (e.g. undecodable bytes replaced)


@dataclass(frozen=True)
class Noise:
    """A span of ``Document.text`` that a cleaning rule marked as noise."""

    start: int
    end: int
    rule: str


@dataclass
class Chunk:
    """A retrievable passage: ``document.text[start:end] == text`` always holds."""

    id: str  # stable: "<source>#<start>-<end>"
    source: str
    title: str
    section: str  # section path, e.g. "第二篇:市场部与销售部关系 > 市场部的主要任务"
    start: int
    end: int
    text: str
    # other places (source, start, end) carrying a near-identical passage
    also_in: list[tuple[str, int, int]] = field(default_factory=list)
    dup_of: str = ""  # id of the chunk kept in its place when this one is a near-duplicate

    def to_dict(self) -> dict:
        d = asdict(self)
        d["also_in"] = [list(x) for x in self.also_in]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Chunk:
        d = dict(d)
        d["also_in"] = [tuple(x) for x in d.get("also_in", [])]
        return cls(**d)


@dataclass(frozen=True)
class Skipped:
    """A file that could not be ingested, and why."""

    source: str
    reason: str
