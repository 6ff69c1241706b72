"""Executors: where an ingest parses files and embeds texts. One small interface
(``base.Executor``), one module per backend, a factory that picks by the config's
``[ingest] executor``."""

from __future__ import annotations

from kb.config import Config
from kb.executors.base import Executor, ExecutorError
from kb.executors.local import LocalExecutor

INSTALL_HINT = 'pip install -e ".[ray]"'


def ray_missing() -> str:
    """Why the Ray executor cannot run here ("" when it can)."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as e:
        return (f"the ray executor needs the ray package, which is not installed ({e.name or 'ray'}): "
                f"{INSTALL_HINT}")
    return ""


def make_executor(config: Config, progress: bool = True) -> Executor:
    """The executor ``config.ingest.executor`` names. The Ray one connects to its cluster only
    when there is work for it (an unchanged corpus starts nothing); a missing ``ray`` package is
    an ``ExecutorError`` now, before anything is read."""
    if config.ingest.executor == "local":
        return LocalExecutor(progress)
    if config.ingest.executor == "ray":
        missing = ray_missing()
        if missing:
            raise ExecutorError(missing)
        from kb.executors.ray import RayExecutor

        return RayExecutor.from_config(config, progress)
    raise ValueError(f"unknown ingest.executor {config.ingest.executor!r}: use 'local' or 'ray'")


def with_executor(config: Config, executor: str | None, ray_address: str | None) -> Config:
    """``config`` with the command line's ``--executor`` and ``--ray-address`` applied: an
    address alone means the ray executor."""
    if ray_address is not None and executor is None:
        executor = "ray"
    if ray_address and executor == "local":
        raise ValueError("--ray-address is for --executor ray (the local executor uses no cluster)")
    changes = {}
    if executor is not None:
        changes["ingest__executor"] = executor
    if ray_address is not None:
        changes["ingest__ray_address"] = ray_address
    return config.replace(**changes) if changes else config


__all__ = ["Executor", "ExecutorError", "LocalExecutor", "make_executor", "ray_missing", "with_executor",
           "INSTALL_HINT"]
