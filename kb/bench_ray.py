"""``make bench``'s Ray section: a cold ingest of the corpus through Ray on this machine against
the local path, in the same run.

Both build the corpus from nothing into temporary folders with the same code
(``ingest_corpus`` + ``build_index``, no refusal calibration: it runs on the driver either
way), the local one first with the service's embedder, then the Ray one as ``kb ingest
--executor ray`` does without an address: a cluster started on this machine for the ingest
(its start and stop counted), files parsed in Ray tasks, texts embedded by the actor pool.
Reported: both wall times and their ratio (the issue's target: at most 1.5x), whether the two
indexes are the same (chunks and offsets, units, vectors to 1e-5), and throughput per worker.

``python -m kb.bench_ray --corpus DIR`` runs this section alone (a small corpus proves it
works without the whole bench).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from kb.config import Config

TARGET = 1.5  # Ray wall time / local wall time, at most


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
    """Cold ingest of ``cfg.corpus_dir``, locally then through a Ray cluster started on this
    machine; ``{"skipped": why}`` without the ray package."""
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
    ray_cfg = cfg.replace(ingest__executor="ray", ingest__ray_address="")

    def build(executor: Any, out: Path) -> tuple[float, dict, Any]:
        t0 = time.perf_counter()
        result = ingest_corpus(cfg.corpus_dir, cfg.chunking, progress=False, limits=file_limits(cfg),
                               parse_files=executor.parse)
        manifest = build_index(result, embedder, segmenter, out, cfg.chunking.as_dict(),
                               flat_max=cfg.retrieval.flat_index_max, cache=None, progress=False,
                               executor=executor, chunk_vectors=cfg.embedder.chunk_vectors)
        return time.perf_counter() - t0, manifest, result

    with tempfile.TemporaryDirectory(prefix="kb-bench-ray-") as tmp:
        if progress:
            print("ray ingest: cold build through the local path ...", file=sys.stderr)
        local_s, manifest, result = build(LocalExecutor(progress=False), Path(tmp) / "local")
        if progress:
            print("ray ingest: cold build through Ray (a cluster started on this machine) ...", file=sys.stderr)
        t0 = time.perf_counter()
        executor = make_executor(ray_cfg, progress=False)
        try:
            with executor:
                _, ray_manifest, _ = build(executor, Path(tmp) / "ray")
        except ExecutorError as e:  # the rest of the bench goes on
            return {"skipped": f"the Ray ingest failed: {e}"}
        ray_s = time.perf_counter() - t0  # cluster start and stop included
        differences = index_differences(Path(tmp) / "ray", Path(tmp) / "local")
    stats = executor.stats.to_dict()
    chars = result.characters
    return {
        "documents": len(result.records), "characters": chars,
        "embedded_texts": manifest["counts"]["embedded"],
        "local_s": round(local_s, 3), "ray_s": round(ray_s, 3),
        "ratio": round(ray_s / local_s, 3) if local_s else None, "target": TARGET,
        "meets_target": bool(local_s) and ray_s / local_s <= TARGET,
        "same_index": not differences, "differences": differences,
        "local_chars_per_s": round(chars / local_s) if local_s else None,
        "ray_chars_per_s": round(chars / ray_s) if ray_s else None,
        "ray": {**stats, "cpus_started": ray_cfg.ingest.ray_cpus, "embed_actors": ray_cfg.ingest.ray_embed_actors,
                "executor_in_manifest": ray_manifest.get("executor")},
    }


def ray_lines(r: dict[str, Any]) -> list[str]:
    """The section as lines of text (the summary and the Markdown report)."""
    if "skipped" in r:
        return [f"skipped: {r['skipped']}"]
    ray = r["ray"]
    verdict = "within" if r["meets_target"] else "over"
    lines = [
        f"cold ingest of {r['documents']} documents ({r['characters']:,} characters, {r['embedded_texts']} texts "
        f"embedded): local {r['local_s']:.1f} s ({r['local_chars_per_s']:,} chars/s), Ray {r['ray_s']:.1f} s "
        f"({r['ray_chars_per_s']:,} chars/s): {r['ratio']:.2f}x the local time, {verdict} the {r['target']}x target",
        "same index as the local path: " + ("yes" if r["same_index"] else "NO (" + ", ".join(r["differences"]) + ")"),
        f"Ray: a cluster of {ray['nodes']} node(s), {ray['cpus']:g} CPUs, started in {ray['startup_s']:.1f} s; "
        f"{ray['files']} files parsed in {ray['parse_s']:.1f} s, {ray['texts']} texts embedded in "
        f"{ray['embed_s']:.1f} s by {len(ray['embed_workers'])} actor(s)",
    ]
    for kind, workers in (("parse", ray["parse_workers"]), ("embed", ray["embed_workers"])):
        for name, w in workers.items():
            unit = "files" if kind == "parse" else "texts"
            speed = f"{w['chars_per_s']:,} chars/s" if w["chars_per_s"] else "-"
            lines.append(f"  {kind} worker {name}: {w['items']} {unit}, {w['chars']:,} chars in {w['seconds']:.2f} s "
                         f"of work ({speed})")
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
    return 0 if "skipped" in res or res["same_index"] else 1


if __name__ == "__main__":
    sys.exit(main())
