"""What an index embeds for its chunks, in one place for ``kb.index.build_index`` and for an
executor that embeds each document's texts as soon as it is parsed (``kb.executors.ray``).

Light on purpose (no FAISS, no BM25): Ray's parse tasks import it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from ingest.models import Chunk
from ingest.normalize import normalize
from kb.units import Unit, split_units

CHUNK_VECTORS = ("embedded", "units")


def index_text(chunk: Chunk) -> str:
    """What is embedded and tokenised for a chunk: its section path, then its text."""
    return f"{chunk.section}\n{chunk.text}" if chunk.section else chunk.text


def embed_input(text: str) -> str:
    """Text as the embedder sees it: Simplified, half-width (measured to help e5 on both
    scripts; see ../shared/docs/offline-models.md)."""
    return normalize(text)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def vector_key(embedder_id: str, text: str) -> str:
    """The vector cache's key of an embedder input."""
    return content_hash(embedder_id + "\x00" + text)


def embedding_plan(chunks: Sequence[Chunk], docs: Mapping[str, str],
                   chunk_vectors: str) -> tuple[list[Unit], list[list[str]]]:
    """The units of ``chunks`` and the groups of texts an index embeds for them: chunk texts
    and unit texts, or (``chunk_vectors = "units"``) unit texts and section paths. ``docs``:
    each source's document text."""
    if chunk_vectors not in CHUNK_VECTORS:
        raise ValueError(f"unknown chunk_vectors {chunk_vectors!r}: use one of {', '.join(CHUNK_VECTORS)}")
    units: list[Unit] = []
    last_list = -1  # the highest list id handed out so far: each chunk's lists number on from it
    for row, c in enumerate(chunks):
        mine = split_units(c, row, first_list_id=last_list + 1)
        last_list = max([last_list, *(u.list_id for u in mine)])
        units.extend(mine)
    unit_texts = [docs[chunks[u.chunk].source][u.start : u.end] for u in units]
    if chunk_vectors == "units":
        return units, [unit_texts, sorted({c.section for c in chunks if c.section})]
    return units, [[index_text(c) for c in chunks], unit_texts]


def embedding_inputs(chunks: Sequence[Chunk], docs: Mapping[str, str], chunk_vectors: str) -> list[str]:
    """Every embedder input ``embedding_plan`` gives for ``chunks``, in order."""
    _, groups = embedding_plan(chunks, docs, chunk_vectors)
    return [embed_input(t) for g in groups for t in g]
