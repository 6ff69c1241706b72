"""``make bench``'s Ray section: a cold ingest of the corpus through Ray on this machine against
the local path, in the same run.

Each build starts from nothing in a temporary folder with the same code (``ingest_corpus`` +
``build_index``, no refusal calibration: it runs on the driver either way). First the local
one, with the service's embedder. Then two through Ray, as ``kb ingest --executor ray`` runs:
- over a cluster already running on this machine (``--ray-address``, the deployment case: a
  head node started before the ingest, as ``ray start --head`` would, with workers at the
  driver's priority, given ``SETTLE_S`` to start its idle workers; its start is not counted,
  reaching it is);
- over a cluster the ingest starts and stops itself (no address; its start and stop counted).
Files are parsed and their texts embedded by the actor pool, in one stage of one job.
Reported: the wall times and their ratios to the local one (the issue's target: at most 1.5x),
whether each index is the local one (chunks and offsets, units, vectors to 1e-5), and
throughput per worker.

``python -m kb.bench_ray --corpus DIR`` runs this section alone (a small corpus proves it
works without the whole bench).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from kb.config import Config

TARGET = 1.5  # Ray wall time / local wall time, at most
# seconds a freshly started head node is given before the ingest: Ray starts a worker process
# per CPU with it, and they would otherwise compete with the ingest for the two cores
SETTLE_S = 5.0


def index_differences(a: Path, b: Path, atol: float = 1e-5) -> list[str]:
    """What differs between two index folders, beyond the executor and the timings ([] when
    they are the same index)."""
    ra, rb = Path(os.path.realpath(a)), Path(os.path.realpath(b))
    out = []
    for name in ("documents.jsonl", "chunks.jsonl", "units.jsonl", "outline.jsonl", "words.txt", "hashes.json"):
        if (ra / name).read_bytes() != (rb / name).read_bytes():
            out.append(name)
    for name in ("vectors.npy", "unit_vectors.npy"):
        va, vb = np.load(ra / name), np.load(rb / name)
        if va.shape != vb.shape or not np.allclose(va, vb, atol=atol):
            out.append(name)
    ma, mb = (json.loads((r / "manifest.json").read_text(encoding="utf-8")) for r in (ra, rb))
    for m in (ma, mb):  # how long fitting the threshold took is a timing too
        if isinstance(m.get("calibration"), dict):
            m["calibration"] = {k: v for k, v in m["calibration"].items() if k != "seconds"}
    for key in sorted(set(ma) | set(mb)):
        if key not in ("executor", "build", "built_at") and ma.get(key) != mb.get(key):
            out.append(f"manifest.{key}")
    return out


def ray_vs_local(cfg: Config, embedder: Any = None, segmenter: Any = None, progress: bool = True) -> dict[str, Any]:
    """Cold ingest of ``cfg.corpus_dir``, locally, then through Ray over a running cluster and
    over one started for the ingest; ``{"skipped": why}`` without the ray package."""
    from ingest.pipeline import ingest_corpus
    from kb.embed import make_embedder
    from kb.executors import ExecutorError, LocalExecutor, make_executor, ray_missing
    from kb.index import build_index
    from kb.segment import Segmenter
    from kb.service import file_limits

    missing = ray_missing()
    if missing:
        return {"skipped": missing}
    embedder = embedder or make_embedder(cfg.embedder)
    segmenter = segmenter or Segmenter(cfg.userdict, cfg.stopwords)

    def build(executor: Any, out: Path) -> tuple[dict, Any]:
        executor.expect(embedder, cfg.embedder.chunk_vectors)
        result = ingest_corpus(cfg.corpus_dir, cfg.chunking, progress=False, limits=file_limits(cfg),
                               parse_files=executor.parse)
        manifest = build_index(result, embedder, segmenter, out, cfg.chunking.as_dict(),
                               flat_max=cfg.retrieval.flat_index_max, cache=None, progress=False,
                               executor=executor, chunk_vectors=cfg.embedder.chunk_vectors)
        return manifest, result

    def through_ray(address: str, out: Path) -> dict[str, Any]:
        ray_cfg = cfg.replace(ingest__executor="ray", ingest__ray_address=address)
        t0 = time.perf_counter()
        executor = make_executor(ray_cfg, progress=False)
        try:
            with executor:
                ray_manifest, _ = build(executor, out)
        except ExecutorError as e:  # the rest of the bench goes on
            return {"failed": str(e)}
        ray_s = time.perf_counter() - t0  # reaching (or starting and stopping) the cluster included
        differences = index_differences(out, Path(tmp) / "local")
        return {"ray_s": round(ray_s, 3), "ratio": round(ray_s / local_s, 3) if local_s else None,
                "meets_target": bool(local_s) and ray_s / local_s <= TARGET,
                "same_index": not differences, "differences": differences,
                "ray_chars_per_s": round(chars / ray_s) if ray_s else None,
                "ray": {**executor.stats.to_dict(), "embed_actors": ray_cfg.ingest.ray_embed_actors,
                        "executor_in_manifest": ray_manifest.get("executor")}}

    with tempfile.TemporaryDirectory(prefix="kb-bench-ray-") as tmp:
        if progress:
            print("ray ingest: cold build through the local path ...", file=sys.stderr)
        t0 = time.perf_counter()
        manifest, result = build(LocalExecutor(progress=False), Path(tmp) / "local")
        local_s = time.perf_counter() - t0
        chars = result.characters
        runs: dict[str, Any] = {}
        if progress:
            print("ray ingest: cold build through Ray over a running cluster ...", file=sys.stderr)
        with _running_cluster(cfg.ingest.ray_cpus) as address:
            runs["running"] = through_ray(address, Path(tmp) / "ray-running")
        if progress:
            print("ray ingest: cold build through Ray, the cluster started by the ingest ...", file=sys.stderr)
        runs["started"] = through_ray("", Path(tmp) / "ray-started")
        runs["started"]["cpus_started"] = cfg.ingest.ray_cpus
    return {
        "documents": len(result.records), "characters": chars,
        "embedded_texts": manifest["counts"]["embedded"],
        "local_s": round(local_s, 3), "local_chars_per_s": round(chars / local_s) if local_s else None,
        "target": TARGET, "runs": runs,
    }


@contextmanager
def _running_cluster(cpus: int) -> Iterator[str]:
    """A head node on this machine, as an operator would have started it before the ingest
    (``RAY_worker_niceness=0 ray start --head --num-cpus N``); yields its address."""
    from ray.cluster_utils import Cluster

    from kb.executors.ray import LOCAL_NODE_IP

    # short: Ray's socket paths live under it (a Unix socket path has at most 107 bytes)
    temp = tempfile.mkdtemp(prefix="kbray-", dir="/tmp")
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": cpus or (os.cpu_count() or 1), "include_dashboard": False, "node_ip_address": LOCAL_NODE_IP,
        "temp_dir": temp, "_system_config": {"worker_niceness": 0}})
    try:
        cluster.wait_for_nodes()
        time.sleep(SETTLE_S)  # its idle workers up, as on a cluster that was started before
        yield cluster.address
    finally:
        cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


RUN_NAMES = {"running": "over a running cluster", "started": "over a cluster the ingest started"}


def ray_lines(r: dict[str, Any]) -> list[str]:
    """The section as lines of text (the summary and the Markdown report)."""
    if "skipped" in r:
        return [f"skipped: {r['skipped']}"]
    lines = [f"cold ingest of {r['documents']} documents ({r['characters']:,} characters, {r['embedded_texts']} texts "
             f"embedded): local {r['local_s']:.1f} s ({r['local_chars_per_s']:,} chars/s)"]
    for name, run in r["runs"].items():
        if "failed" in run:
            lines.append(f"Ray {RUN_NAMES[name]}: failed: {run['failed']}")
            continue
        ray = run["ray"]
        verdict = "within" if run["meets_target"] else "over"
        lines += [
            f"Ray {RUN_NAMES[name]}: {run['ray_s']:.1f} s ({run['ray_chars_per_s']:,} chars/s), {run['ratio']:.2f}x "
            f"the local time, {verdict} the {r['target']}x target; same index as the local path: "
            + ("yes" if run["same_index"] else "NO (" + ", ".join(run["differences"]) + ")"),
            f"  {ray['nodes']} node(s), {ray['cpus']:g} CPUs, reached in {ray['startup_s']:.1f} s; {ray['files']} files "
            f"parsed and {ray['texts_with_parse']} texts embedded in the same job in {ray['parse_s']:.1f} s"
            + (f"; {ray['texts']} more texts embedded in {ray['embed_s']:.1f} s" if ray["texts"] else ""),
        ]
        for kind, workers in (("parse", ray["parse_workers"]), ("embed", ray["embed_workers"])):
            for wname, w in workers.items():
                unit = "files" if kind == "parse" else "texts"
                speed = f"{w['chars_per_s']:,} chars/s" if w["chars_per_s"] else "-"
                lines.append(f"    {kind} worker {wname}: {w['items']} {unit}, {w['chars']:,} chars in "
                             f"{w['seconds']:.2f} s of work ({speed})")
    return lines


def main(argv: list[str] | None = None) -> int:
    from kb.config import load_config

    p = argparse.ArgumentParser(prog="python -m kb.bench_ray", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="TOML config file")
    p.add_argument("--corpus", help="corpus folder (default: the config's)")
    args = p.parse_args(argv)
    cfg = load_config(args.config, corpus_dir=Path(args.corpus) if args.corpus else None)
    res = ray_vs_local(cfg)
    for line in ray_lines(res):
        print(line)
    same = all(run.get("same_index", False) for run in res.get("runs", {}).values())
    return 0 if "skipped" in res or same else 1


if __name__ == "__main__":
    sys.exit(main())
