"""The local executor: files parsed in bounded worker processes on this machine
(``ingest.worker.run_files``), texts embedded in this process. The default."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ingest.chunk import ChunkSettings
from ingest.worker import FileLimits, FileOutcome, run_files

BATCH = 16  # texts handed to the embedder at a time (the progress bar's step)


class LocalExecutor:
    name = "local"

    def __init__(self, progress: bool = True):
        self.progress = progress

    def parse(self, tasks: Sequence[tuple[str, str]], corpus: Path, settings: ChunkSettings,
              limits: FileLimits, on_done: Callable[[FileOutcome], None]) -> None:
        run_files(tasks, corpus, settings, limits, on_done)

    def expect(self, embedder, chunk_vectors: str, known: Collection[str] = ()) -> None:
        pass  # texts are embedded after parsing, in this process

    def embed(self, embedder, inputs: list[str]) -> np.ndarray:
        vectors = np.zeros((len(inputs), embedder.dim), np.float32)
        with tqdm(total=len(inputs), desc="embed", unit="text", disable=not self.progress or not inputs,
                  leave=False) as bar:
            for b in range(0, len(inputs), BATCH):
                vectors[b : b + BATCH] = embedder.embed_passages(inputs[b : b + BATCH])
                bar.update(len(inputs[b : b + BATCH]))
        return vectors

    def finished(self) -> None:
        pass  # nothing held

    def describe(self) -> str:
        return "local"

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
