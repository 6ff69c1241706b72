"""The answer contract shared by every answerer and every adapter."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol

NOT_COVERED = "知识库中没有找到相关内容。"


@dataclass
class Citation:
    n: int
    source: str  # path relative to the corpus folder
    title: str
    section: str
    start: int  # document.text[start:end] == quote, always
    end: int
    quote: str
    score: float


@dataclass
class Answer:
    question: str
    answered: bool
    answer: str  # Markdown; every [n] has a citation and every citation is used
    citations: list[Citation] = field(default_factory=list)
    source_kind: str = "documents"  # "documents" | "faq" | "none"
    related: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    resolved_question: str = ""  # the question after follow-up resolution
    confidence: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class Answerer(Protocol):
    """Turns a question into an ``Answer``. Extractive by default; a generative answerer can
    sit behind the same interface (it must still return exact-slice citations)."""

    id: str

    def answer(self, question: str, resolved: str) -> Answer: ...
