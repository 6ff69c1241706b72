"""The executor interface: where an ingest parses files and embeds texts.

An ingest hands its executor two kinds of work and keeps everything else to itself: "parse
these files" (load, clean, chunk each, under the same ``FileLimits``) and "embed these
texts" (the ones missing from the vector cache). Dedup, sentence units, BM25, FAISS, the
manifest, calibration and the atomic swap stay in ``kb.index`` and ``ingest.pipeline``, one
code path for every executor, so an index built through any of them is the same index.

Backends: ``local`` (this process and its bounded parser processes; the default, nothing to
install) and ``ray`` (a Ray cluster, the optional extra ``.[ray]``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from ingest.chunk import ChunkSettings
from ingest.worker import FileLimits, FileOutcome

# ``parse(tasks, corpus, settings, limits, on_done)``, the shape of ``ingest.worker.run_files``:
# each ``(source, path)`` parsed, ``on_done`` called once per file (in completion order), never
# raising for a file's sake.
ParseFiles = Callable[[Sequence[tuple[str, str]], Path, ChunkSettings, FileLimits,
                       Callable[[FileOutcome], None]], None]


class ExecutorError(RuntimeError):
    """The executor cannot do the work (its package is missing, its cluster cannot be reached
    or failed mid-job). One line saying why and what to do; nothing was written."""


class Executor(Protocol):
    name: str  # recorded in the manifest ("executor")

    def parse(self, tasks: Sequence[tuple[str, str]], corpus: Path, settings: ChunkSettings,
              limits: FileLimits, on_done: Callable[[FileOutcome], None]) -> None: ...

    def expect(self, embedder, chunk_vectors: str, known: Collection[str] = ()) -> None:
        """Said before ``parse``: the parsed documents will be embedded by ``embedder`` for an
        index whose ``chunk_vectors`` mode is given, and ``known`` are the vector cache's keys
        (``kb.inputs.vector_key``). An executor may embed each document's new texts as soon as
        it is parsed and serve them from ``embed``; the local one ignores it."""
        ...

    def embed(self, embedder, inputs: list[str]) -> np.ndarray:
        """Passage vectors of ``inputs`` (texts as the embedder sees them:
        ``kb.index.embed_input``), one float32 row each, in order."""
        ...

    def finished(self) -> None:
        """Said once the ingest needs nothing more from it (every vector is in), before the
        rest of the build (units, BM25, FAISS, calibration): an executor may release what it
        holds meanwhile; ``close`` waits for that."""
        ...

    def describe(self) -> str:
        """One line on what ran where (for the ``kb ingest`` summary)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc) -> None: ...
