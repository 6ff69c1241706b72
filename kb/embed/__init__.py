"""Embedders: one small interface, one module per backend, a factory that picks by name."""

from kb.embed.base import Embedder
from kb.embed.factory import make_embedder

__all__ = ["Embedder", "make_embedder"]
