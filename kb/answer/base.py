"""The answer contract shared by every answerer and every adapter, and the parts an answerer
works with (``AnswerParts``, built by ``kb.service.KnowledgeService`` and handed in)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kb.embed.base import Embedder
    from kb.index import KnowledgeIndex
    from kb.query import QueryProcessor
    from kb.retriever import HybridRetriever
    from kb.segment import Segmenter

NOT_COVERED = "知识库中没有找到相关内容。"
PART_NOT_COVERED = "（关于“{}”，知识库中没有找到相关内容。）"  # a part of a question the documents do not address


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


@dataclass(frozen=True)
class AnswerParts:
    """What an answerer works with, and nothing else of the service."""

    index: KnowledgeIndex  # passages, their sentence units and vectors, documents
    retriever: HybridRetriever  # the question's passages
    segmenter: Segmenter  # BM25 tokens of the question; its jieba tokenizer for the scope guard
    embedder: Embedder  # embeds the suggested questions
    queries: QueryProcessor  # its glossary groups count as known words
    starters: tuple[str, ...] = ()  # the chat's starter questions, suggested first on a refusal


class Answerer(Protocol):
    """Turns a question into an ``Answer``. Extractive by default; a generative answerer can
    sit behind the same interface (it must still return exact-slice citations)."""

    id: str

    def answer(self, question: str, resolved: str) -> Answer: ...
