"""``kb ingest --executor ray`` (kb.executors.ray) on real Ray clusters started by the tests.

A module-wide cluster of two nodes on this machine (a head and one worker node, each its own
raylet and one CPU, advertised on a loopback address) built with Ray's own cluster utilities,
whose processes are stopped by their ids when the module ends (``ray stop`` would stop every
Ray process on the machine). Over a tiny corpus with the hashing embedder: the index built
through Ray equals the local one (documents, chunks and offsets, sentence units, vectors,
BM25 and hybrid results, the manifest but for the executor and timings); a second Ray ingest
after one file changed sends only that file and embeds only its new texts; corrupt files are
named with the local reasons; a worker lost mid-job is retried, an embedder failing on the
cluster stops the ingest with one line and the previous index keeps serving; ``kb ingest
--executor ray`` without an address starts (and stops) its own cluster. The missing-package
error is tested without Ray.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import LEAVE, hashing_config, write_tiny_corpus

from kb.cli import main

pytestmark = pytest.mark.ray

RAY_REASON = 'the ray package is not installed (the optional extra: pip install -e ".[ray]")'
NODE_IP = "127.0.0.2"  # the clusters' traffic stays on this machine's loopback
QUERIES = ["病假怎么请", "报销流程", "市场部经理的职责", "加班费"]
EDIT = "三、调休\n调休须在加班后一个月内申请，由部门经理审批。\n"


def _need_ray() -> None:
    pytest.importorskip("ray", reason=RAY_REASON)
    pytest.importorskip("ray.data", reason=RAY_REASON)


# -- the cluster ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_env():
    """Ray's settings for the whole module: a token of its own (nothing written to ~/.ray), no
    usage statistics."""
    names = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_USAGE_STATS_ENABLED")
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
                       "RAY_USAGE_STATS_ENABLED": "0"})
    yield
    for n, v in saved.items():
        if v is None:
            os.environ.pop(n, None)
        else:
            os.environ[n] = v


@pytest.fixture(scope="module")
def ray_cluster(ray_env):
    """The address of a two-node cluster (head + worker node) on this machine."""
    _need_ray()
    from ray.cluster_utils import Cluster

    # short: Ray's socket paths live under it (a Unix socket path has at most 107 bytes)
    temp = Path(tempfile.mkdtemp(prefix="kbray-", dir="/tmp"))
    # Ray writes the cluster's address to /tmp/ray/ray_current_cluster whatever temp_dir says,
    # and fails where that folder does not exist yet (a machine that never ran Ray)
    Path("/tmp/ray").mkdir(exist_ok=True)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "node_ip_address": NODE_IP, "temp_dir": str(temp)})
    try:
        cluster.add_node(num_cpus=1, node_ip_address=NODE_IP)
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        cluster.shutdown()  # kills the processes it started, by their ids
        shutil.rmtree(temp, ignore_errors=True)


# -- helpers --------------------------------------------------------------------------------------
def _corpus(folder: Path, bad: bool = True) -> Path:
    """The tiny corpus plus a docx and an HTML page (parsed on the nodes too) and, with
    ``bad``, a .docx that is not a zip and a binary .txt."""
    import docx

    write_tiny_corpus(folder)
    d = docx.Document()
    d.add_heading("印章管理办法", level=1)
    d.add_paragraph("公司印章由行政部统一保管，用印须填写用印申请单。")
    d.add_heading("一、合同章", level=2)
    d.add_paragraph("合同章的使用须经法务部审核合同文本后方可盖章。")
    d.save(folder / "印章管理.docx")
    (folder / "培训.html").write_text(
        "<html><head><title>新员工培训</title></head><body><nav>首页 | 关于</nav><main>"
        "<h1>新员工培训</h1><p>新员工入职第一周参加公司制度培训，培训结束后进行考试。</p>"
        "<ul><li>考试合格后转入部门培训</li><li>不合格者补考一次</li></ul></main></body></html>",
        encoding="utf-8")
    if bad:
        (folder / "损坏.docx").write_bytes(b"this is not a zip file at all\n" * 10)
        (folder / "数据.txt").write_bytes(bytes(range(256)) * 16)
    return folder


def _config(root: Path, corpus: Path, **overrides):
    return hashing_config(root / "data", corpus, **overrides)


def _ray_config(root: Path, corpus: Path, address: str, **overrides):
    return _config(root, corpus, ingest__executor="ray", ingest__ray_address=address, **overrides)


def _ingest(cfg, executor=None):
    from kb.service import run_ingest

    return run_ingest(cfg, progress=False, executor=executor)


def _config_file(folder: Path, corpus: Path, data: Path, extra: str = "") -> Path:
    """A config file for the command line: the hashing embedder over ``corpus``."""
    path = folder / "kb.toml"
    path.write_text(f'corpus_dir = "{corpus}"\ndata_dir = "{data}"\n[embedder]\nbackend = "hashing"\n'
                    f'[answer]\nmin_confidence = 0.3\n{extra}', encoding="utf-8")
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _snapshot(index: Path) -> dict:
    real = Path(os.path.realpath(index))
    manifest = json.loads((real / "manifest.json").read_text(encoding="utf-8"))
    return {
        "documents": _lines(real / "documents.jsonl"),
        "chunks": _lines(real / "chunks.jsonl"),
        "units": _lines(real / "units.jsonl"),
        "outline": _lines(real / "outline.jsonl"),
        "words": (real / "words.txt").read_text(encoding="utf-8"),
        "hashes": json.loads((real / "hashes.json").read_text()),
        "vectors": np.load(real / "vectors.npy"),
        "unit_vectors": np.load(real / "unit_vectors.npy"),
        "manifest": manifest,
    }


def _assert_same_index(ray_cfg, local_cfg) -> None:
    """The Ray-built index equals the local one: files exactly, vectors to float tolerance,
    the manifest but for executor and timings, BM25 and hybrid results."""
    from kb.bench_ray import index_differences
    from kb.service import KnowledgeService

    assert index_differences(ray_cfg.index_path, local_cfg.index_path) == []  # the bench's check
    a, b = _snapshot(ray_cfg.index_path), _snapshot(local_cfg.index_path)
    for part in ("documents", "chunks", "units", "outline", "words", "hashes"):
        assert a[part] == b[part], part
    for part in ("vectors", "unit_vectors"):
        assert a[part].shape == b[part].shape and len(a[part]) > 0
        np.testing.assert_allclose(a[part], b[part], atol=1e-6)
    assert a["manifest"]["executor"] == "ray" and b["manifest"]["executor"] == "local"
    def same_part(m: dict) -> dict:  # all but the executor and the timings
        out = {k: v for k, v in m.items() if k not in ("executor", "build", "built_at")}
        if "calibration" in out:
            out["calibration"] = {k: v for k, v in out["calibration"].items() if k != "seconds"}
        return out

    assert same_part(a["manifest"]) == same_part(b["manifest"])
    ray_svc = KnowledgeService(ray_cfg, build_if_missing=False, progress=False)
    local_svc = KnowledgeService(local_cfg, build_if_missing=False, progress=False)
    for q in QUERIES:
        for mode in ("bm25", "hybrid"):
            got = [(h.source, h.start, h.end, round(h.score, 5)) for h in ray_svc.search(q, k=5, mode=mode)]
            want = [(h.source, h.start, h.end, round(h.score, 5)) for h in local_svc.search(q, k=5, mode=mode)]
            assert got == want and got, (q, mode)


@pytest.fixture(scope="module")
def built(tmp_path_factory, ray_cluster):
    """The same corpus ingested locally and through the cluster (each into its own index)."""
    from kb.executors import make_executor

    root = tmp_path_factory.mktemp("ray-equal")
    corpus = _corpus(root / "corpus")
    local_cfg = _config(root / "local", corpus)
    local_result, _ = _ingest(local_cfg)
    ray_cfg = _ray_config(root / "ray", corpus, ray_cluster)
    import kb.executors.ray as ray_executor

    round_bytes, ray_executor.ROUND_BYTES = ray_executor.ROUND_BYTES, 40_000  # several parse jobs
    try:
        with make_executor(ray_cfg, progress=False) as executor:
            ray_result, _ = _ingest(ray_cfg, executor)
    finally:
        ray_executor.ROUND_BYTES = round_bytes
    return {"root": root, "corpus": corpus, "local": (local_cfg, local_result),
            "ray": (ray_cfg, ray_result), "stats": executor.stats}


# -- the tests ------------------------------------------------------------------------------------
def test_ray_index_equals_local(built):
    ray_cfg, ray_result = built["ray"]
    local_cfg, local_result = built["local"]
    _assert_same_index(ray_cfg, local_cfg)
    stats = built["stats"]
    assert stats.nodes == 2  # the head and the worker node
    assert stats.files == len(local_result.processed) + len(local_result.skipped) == 7
    n = _snapshot(local_cfg.index_path)["manifest"]["counts"]["embedded"]
    # every text missing from the (empty) cache was embedded in the parse jobs' embedding stage,
    # none was left for an embedding job of its own
    assert stats.texts == 0 and stats.texts_with_parse >= n > 0
    assert sum(w.items for w in stats.embed_workers.values()) == stats.texts_with_parse
    assert sorted(ray_result.processed) == sorted(local_result.processed)


def test_files_are_sent_in_rounds_of_bounded_bytes():
    _need_ray()
    from kb.executors.ray import _rounds

    files = [("a", "a", 5), ("b", "b", 5), ("c", "c", 20), ("d", "d", 1)]
    assert _rounds(files, 10) == [files[:2], files[2:3], files[3:]]  # a larger file alone
    assert _rounds([], 10) == []


def test_bad_files_on_a_worker_are_named_with_the_local_reasons(built):
    _, ray_result = built["ray"]
    _, local_result = built["local"]
    got = {s.source: s.reason for s in ray_result.skipped}
    assert got == {s.source: s.reason for s in local_result.skipped}
    assert got["损坏.docx"].startswith("corrupt docx: not a zip file")
    assert got["数据.txt"] == "binary file (not text)"
    assert {"印章管理.docx", "培训.html", LEAVE} <= set(ray_result.records)  # the rest ingests


def test_second_ray_ingest_sends_and_embeds_only_the_changed_file(built, tmp_path, ray_cluster, capsys):
    """Through the command line (--ray-address), over a copy of the Ray-built index; the same
    edit ingested locally over a copy of the local index embeds as many texts and gives the
    same index."""
    corpus = tmp_path / "corpus"
    shutil.copytree(built["corpus"], corpus)
    for bad in ("损坏.docx", "数据.txt"):
        (corpus / bad).unlink()
    with open(corpus / LEAVE, "a", encoding="utf-8") as fh:
        fh.write(EDIT)
    ray_root, local_root = tmp_path / "ray", tmp_path / "local"
    shutil.copytree(built["ray"][0].data_dir, ray_root / "data", symlinks=True)
    shutil.copytree(built["local"][0].data_dir, local_root / "data", symlinks=True)
    cfg_file = _config_file(tmp_path, corpus, ray_root / "data")

    assert main(["ingest", "--config", str(cfg_file), "-q", "--ray-address", ray_cluster]) == 0
    out = capsys.readouterr().out
    assert "documents:  5 (1 new or changed, 4 unchanged, 0 removed)" in out
    assert "executor:   ray (" in out and "1 files parsed" in out

    local_result, local_manifest = _ingest(_config(local_root, corpus))
    assert local_result.processed == [LEAVE]
    ray_cfg = _config(ray_root, corpus)
    ray_manifest = _snapshot(ray_cfg.index_path)["manifest"]
    embedded = ray_manifest["counts"]["embedded"]
    assert embedded == local_manifest["counts"]["embedded"]
    assert 0 < embedded < ray_manifest["counts"]["units"]  # only the changed file's new texts
    assert f"embedded:   {embedded} texts now" in out
    assert "texts embedded by 1 actor" in out
    _assert_same_index(ray_cfg, _config(local_root, corpus))


class _DyingOnce:
    """The hashing embedder, whose process exits the first time it embeds (a lost worker);
    ``marker`` remembers that it happened."""

    def __init__(self, marker: str):
        from kb.embed.hashing import HashingEmbedder

        self._inner = HashingEmbedder()
        self.id, self.dim, self.marker = self._inner.id, self._inner.dim, marker

    def embed_queries(self, texts):
        return self._inner.embed_queries(texts)

    def embed_passages(self, texts):
        if not os.path.exists(self.marker):
            Path(self.marker).write_text("died")
            os._exit(1)
        return self._inner.embed_passages(texts)


class _Failing(_DyingOnce):
    def embed_passages(self, texts):
        raise ValueError("model file damaged")


class _AlwaysDying(_DyingOnce):
    def embed_passages(self, texts):
        os._exit(1)


def _by_value():
    """Workers cannot import this test module: ship its classes by value."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_worker_lost_mid_job_is_retried(tmp_path, ray_cluster, caplog):
    from kb.executors.ray import RayExecutor

    _by_value()
    corpus = write_tiny_corpus(tmp_path / "corpus")
    marker = tmp_path / "died"
    cfg = _ray_config(tmp_path / "ray", corpus, ray_cluster, answer__calibrate=False)
    executor = RayExecutor(ray_cluster, make_embedder=functools.partial(_DyingOnce, str(marker)),
                           progress=False)
    with caplog.at_level(logging.WARNING, logger="kb.executors.ray"), executor:
        _ingest(cfg, executor)
    assert marker.exists()  # the embedding actor of the parse job died...
    # ...the files not returned yet were parsed again and their texts embedded afterwards
    assert "a Ray worker was lost while parsing and embedding" in caplog.text
    local = _config(tmp_path / "local", corpus, answer__calibrate=False)
    _ingest(local)
    _assert_same_index(cfg, local)


def test_actor_lost_in_an_embedding_job_is_retried(tmp_path, ray_cluster, caplog):
    """Texts not embedded with their parse (``expect`` not said) go to an embedding job of
    their own; its actor dies once, the texts not embedded yet are sent again."""
    from kb.embed.hashing import HashingEmbedder
    from kb.executors.ray import RayExecutor

    _by_value()
    marker = tmp_path / "died"
    texts = [f"第{i}条 员工请病假应当提交医院证明。" for i in range(40)]
    plain = HashingEmbedder()
    with caplog.at_level(logging.WARNING, logger="kb.executors.ray"), RayExecutor(
            ray_cluster, make_embedder=functools.partial(_DyingOnce, str(marker)), batch_size=8,
            progress=False) as executor:
        got = executor.embed(plain, texts + texts[:3])
    assert marker.exists()
    assert "a Ray worker was lost while embedding" in caplog.text
    np.testing.assert_allclose(got, plain.embed_passages(texts + texts[:3]), atol=1e-6)
    assert executor.stats.texts == 40  # each distinct text once


@pytest.mark.parametrize("embedder, while_, reason", [
    # an error in the work fails the parse job's embedding stage, and is not sent again
    (_Failing, r"parsing \d+ files and embedding their texts", "ValueError: model file damaged"),
    # a lost actor: the files are parsed again, their texts sent to an embedding job, lost again
    # after a retry
    (_AlwaysDying, r"embedding \d+ texts", "a worker was lost mid-job (ActorDiedError)"),
])
def test_failure_on_the_cluster_is_one_line_and_the_previous_index_serves(tmp_path, ray_cluster, embedder,
                                                                          while_, reason):
    from kb.executors import ExecutorError
    from kb.executors.ray import RayExecutor
    from kb.service import KnowledgeService, index_generation

    _by_value()
    corpus = write_tiny_corpus(tmp_path / "corpus")
    cfg = _ray_config(tmp_path, corpus, ray_cluster, answer__calibrate=False)
    _ingest(_config(tmp_path, corpus, answer__calibrate=False))  # the index being served
    before = index_generation(cfg.index_path)
    with open(corpus / LEAVE, "a", encoding="utf-8") as fh:
        fh.write(EDIT)
    executor = RayExecutor(ray_cluster, make_embedder=functools.partial(embedder, "unused"), progress=False,
                           retries=1)
    with pytest.raises(ExecutorError) as e, executor:
        _ingest(cfg, executor)
    message = str(e.value)
    assert re.fullmatch(rf"the Ray cluster at {re.escape(ray_cluster)} failed while {while_}: "
                        rf"{re.escape(reason)} \(nothing was written; the previous index is untouched\)",
                        message), message
    assert index_generation(cfg.index_path) == before
    assert not list(cfg.index_path.parent.glob(".index.building-*"))
    svc = KnowledgeService(cfg, build_if_missing=False, progress=False)
    assert svc.search("病假", k=1)  # the previous index still serves


def test_a_node_running_other_ingest_code_is_refused_by_name(tmp_path, ray_cluster, monkeypatch):
    """The driver's ingest fingerprint differs from the one each node computes for itself (as
    with another version of the project installed there): the actor parsing the block refuses
    it, naming its node, and nothing is written."""
    import kb.executors.ray as ray_executor
    from kb.executors import ExecutorError, make_executor

    corpus = write_tiny_corpus(tmp_path / "corpus")
    cfg = _ray_config(tmp_path, corpus, ray_cluster, answer__calibrate=False)
    monkeypatch.setattr(ray_executor, "ingest_fingerprint", lambda settings: "0123456789abcdef")  # the driver's only
    with pytest.raises(ExecutorError) as e, make_executor(cfg, progress=False) as executor:
        _ingest(cfg, executor)
    message = str(e.value)
    assert re.search(r"failed while parsing \d+ files and embedding their texts: RuntimeError: the ingest code "
                     r"on this node \(node [0-9a-f]{8} pid \d+\) differs from the one running kb ingest "
                     r"\(ingest fingerprint [0-9a-f]+ vs 0123456789abcdef\)", message), message
    assert not cfg.index_path.exists()


def test_unreachable_cluster_is_one_line(tmp_path, capsys):
    _need_ray()
    corpus = write_tiny_corpus(tmp_path / "corpus")
    cfg_file = _config_file(tmp_path, corpus, tmp_path / "data")
    assert main(["ingest", "-q", "--config", str(cfg_file), "--ray-address", f"{NODE_IP}:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"kb ingest: cannot reach the Ray cluster at {NODE_IP}:1") and "\n" not in err
    assert not (tmp_path / "data" / "index").exists()


def test_without_an_address_ingest_starts_its_own_cluster(tmp_path, ray_env, capsys):
    """``kb ingest --executor ray``: a local cluster for this ingest (stopped after), the same
    index as the local path."""
    _need_ray()
    import ray

    corpus = write_tiny_corpus(tmp_path / "corpus")
    cfg_file = _config_file(tmp_path, corpus, tmp_path / "ray" / "data", '[ingest]\nexecutor = "ray"\n')
    assert main(["ingest", "--config", str(cfg_file), "-q"]) == 0
    out = capsys.readouterr().out
    assert "executor:   ray (a cluster started on this machine: 1 node, 2 CPUs" in out
    assert not ray.is_initialized()  # stopped with the ingest
    local = _config(tmp_path / "local", corpus)
    _ingest(local)
    _assert_same_index(_config(tmp_path / "ray", corpus), local)


def test_the_cluster_is_let_go_once_every_vector_is_in(tmp_path, ray_cluster):
    """Calibration and the rest of the build run after the executor has started to disconnect
    (in the background); the ingest ends disconnected, with the same index as the local path."""
    import ray

    from kb.executors import make_executor
    from kb.service import run_ingest

    corpus = write_tiny_corpus(tmp_path / "corpus")
    cfg = _ray_config(tmp_path / "ray", corpus, ray_cluster)
    seen = {}
    with make_executor(cfg, progress=False) as executor:
        def stage(name, detail):
            if name == "calibrate":  # inside build_index, after the vectors
                seen["connected"], seen["stopping"] = executor._connected, executor._stopping is not None
        run_ingest(cfg, progress=False, executor=executor, on_stage=stage)
    assert seen == {"connected": False, "stopping": True}
    assert not ray.is_initialized()
    assert "files parsed on" in executor.describe()  # what ran is still reported
    local = _config(tmp_path / "local", corpus)
    _ingest(local)
    _assert_same_index(cfg, local)


# -- without Ray ----------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["flag", "config"])
def test_missing_ray_is_one_line_with_the_install_hint(tmp_path, monkeypatch, capsys, how):
    """As where the extra is not installed: ``import ray`` fails."""
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    monkeypatch.delitem(sys.modules, "kb.executors.ray", raising=False)
    corpus = write_tiny_corpus(tmp_path / "corpus")
    args = ["ingest", "-q", "--corpus", str(corpus), "--index", str(tmp_path / "index")]
    if how == "flag":
        args += ["--executor", "ray"]
    else:
        (tmp_path / "kb.toml").write_text('[ingest]\nexecutor = "ray"\n', encoding="utf-8")
        args += ["--config", str(tmp_path / "kb.toml")]
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err == ("kb ingest: the ray executor needs the ray package, which is not installed (ray): "
                   'pip install -e ".[ray]"')
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "index").exists()


def test_ray_address_with_the_local_executor_is_refused(tmp_path, capsys):
    corpus = write_tiny_corpus(tmp_path / "corpus")
    assert main(["ingest", "-q", "--corpus", str(corpus), "--index", str(tmp_path / "index"),
                 "--executor", "local", "--ray-address", "auto"]) == 2
    assert "--ray-address is for --executor ray" in capsys.readouterr().err



def test_parse_tasks_get_enough_work_to_pay_for_their_worker():
    _need_ray()
    from kb.executors.ray import BLOCK_BYTES, MAX_FILES_PER_BLOCK, _blocks

    assert _blocks([30_000] * 5, cpus=2) == 1  # a small corpus: one task, one worker start
    assert _blocks([BLOCK_BYTES] * 3, cpus=2) == 3  # 4 MiB each: one task each
    assert _blocks([1_000] * (3 * MAX_FILES_PER_BLOCK), cpus=2) == 3  # many small files: 64 a task
    assert _blocks([BLOCK_BYTES] * 50, cpus=2) == 4  # never more than two tasks per CPU
    assert _blocks([], cpus=2) == 0
