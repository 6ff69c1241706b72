"""What a search returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Hit:
    """One retrieved passage. ``quote`` is the original text: the document's text sliced
    ``[start:end]``. Ranks are 1-based; ``None`` means that retriever did not return it."""

    chunk_id: str
    source: str
    title: str
    section: str
    start: int
    end: int
    quote: str
    score: float
    bm25_rank: int | None = None
    dense_rank: int | None = None
    bm25_score: float = 0.0
    dense_score: float = 0.0
    rerank_score: float | None = None
    also_in: list[tuple[str, int, int]] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["also_in"] = [{"source": s, "start": a, "end": b} for s, a, b in self.also_in]
        return d
