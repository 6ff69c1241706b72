"""Optional reranking of fused hits with a cross-encoder (off by default: no offline Chinese
cross-encoder ships on PyPI; point ``retrieval.reranker`` at a local folder or hub name)."""

from __future__ import annotations

from typing import Protocol


class Reranker(Protocol):
    id: str

    def score(self, query: str, passages: list[str]) -> list[float]: ...


class CrossEncoderReranker:
    """sentence-transformers ``CrossEncoder`` from a model name or local path."""

    def __init__(self, model: str, max_length: int = 512):
        from sentence_transformers import CrossEncoder

        self._model = CrossEncoder(model, device="cpu", max_length=max_length)
        self.id = f"cross-encoder:{model}"

    def score(self, query: str, passages: list[str]) -> list[float]:
        if not passages:
            return []
        scores = self._model.predict([(query, p) for p in passages], show_progress_bar=False)
        return [float(s) for s in scores]


def make_reranker(name: str) -> Reranker | None:
    return CrossEncoderReranker(name) if name else None
