"""A server's eye on its index folder: every ``interval_s`` (1 s) a background thread compares
the index on disk with the one served (``KnowledgeService.reload_due``: two system calls, no
file read) and, when another was swapped in, serves it (``KnowledgeService.reload``: built
beside the one answering, then one reference swapped; requests never wait for it).

This is how several ``kb serve`` processes over one index folder (and one database) all serve
a new index within about a second of an ingest completing, whoever ran it: ``kb ingest`` in a
shell, or a job started from any server's documents page. An index that cannot be loaded is
logged once per generation, and the one serving goes on.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

INTERVAL_S = 1.0


class IndexWatcher:
    def __init__(self, service: Any, interval_s: float = INTERVAL_S):
        self.service = service
        self.interval_s = float(interval_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed = ""  # the generation that could not be loaded (logged once)

    def check(self) -> bool:
        """Reload when the index on disk is another than the one served; whether it switched."""
        try:
            if not self.service.reload_due():
                return False
            from kb.service import index_generation

            generation = index_generation(self.service.config.index_path)
            if generation == self._failed:
                return False
            try:
                switched = self.service.reload()
            except Exception as e:  # noqa: BLE001 - the old index keeps serving; said once
                self._failed = generation
                log.error("the index on disk cannot be loaded (%s); still serving %s", e,
                          self.service.served.index.path)
                return False
            if switched:
                log.info("serving the new index %s", self.service.served.index.path)
            return switched
        except OSError as e:  # the folder went away for a moment (a network share): next time
            log.warning("index folder not checked: %s", e)
            return False

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()

    def start(self) -> IndexWatcher:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="kb-index-watch", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


__all__ = ["IndexWatcher", "INTERVAL_S"]
