"""Any sentence-transformers model, by hub name or local folder (e.g. BAAI/bge-small-zh-v1.5)."""

from __future__ import annotations

import numpy as np

from kb.embed.base import l2_normalise


class SentenceTransformerEmbedder:
    def __init__(self, model: str, batch_size: int = 16):
        if not model:
            raise ValueError(
                "embedder.model is empty: set it to a sentence-transformers model name or a "
                "local model folder (for example BAAI/bge-small-zh-v1.5)"
            )
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:  # pragma: no cover - a declared dependency
            raise RuntimeError("pip install sentence-transformers to use this embedder") from e
        self._model = SentenceTransformer(model, device="cpu")
        # sentence-transformers 6 renamed get_sentence_embedding_dimension
        dimension = getattr(self._model, "get_embedding_dimension", None)
        self.dim = int((dimension or self._model.get_sentence_embedding_dimension)())
        self.id = f"sentence-transformers:{model}"
        self.batch_size = batch_size

    def _encode(self, texts: list[str], prompt_name: str | None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        kwargs = {}
        if prompt_name and prompt_name in (getattr(self._model, "prompts", None) or {}):
            kwargs["prompt_name"] = prompt_name
        vecs = self._model.encode(
            list(texts), batch_size=self.batch_size, show_progress_bar=False, **kwargs
        )
        return l2_normalise(vecs)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, "query")

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, "document")
