"""The knowledge base as a llama-index retriever (tiny corpus, hashing embedder, no LLM)."""

from __future__ import annotations

import pytest
from conftest import EXPENSE, LEAVE, TINY_CORPUS
from llama_index.core import Settings
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from kb.llama import KnowledgeBaseRetriever, offline_query_engine
from kb.service import BadQuestion


@pytest.fixture
def retriever(tiny_service):
    return KnowledgeBaseRetriever(tiny_service, k=3)


def assert_no_global_models():
    """llama-index's global LLM and embedding model were never resolved (they default to a
    hosted model, which offline means an ImportError or a network call)."""
    assert Settings._llm is None
    assert Settings._embed_model is None


def test_retrieve_returns_nodes_with_exact_offsets(retriever, tiny_service):
    nodes = retriever.retrieve("病假要向谁报备")
    assert len(nodes) == 3
    assert all(isinstance(n, NodeWithScore) and isinstance(n.node, TextNode) for n in nodes)
    top = nodes[0]
    meta = top.node.metadata
    assert meta["source"] == LEAVE
    assert meta["section"] == "员工考勤制度 > 第一章 请假 > 一、病假"
    assert meta["title"] == "员工考勤制度"
    assert "直属主管电话报备" in top.node.text
    for n in nodes:
        m = n.node.metadata
        doc = tiny_service.document(m["source"]).text
        assert doc[m["start"] : m["end"]] == n.node.text == TINY_CORPUS[m["source"]][m["start"] : m["end"]]
        assert (n.node.start_char_idx, n.node.end_char_idx) == (m["start"], m["end"])
        assert n.node.node_id == m["chunk_id"] == f"{m['source']}#{m['start']}-{m['end']}"
        assert n.node.ref_doc_id == m["source"]
        assert m["bm25_rank"] is not None or m["dense_rank"] is not None
        assert isinstance(n.score, float)
    assert [n.score for n in nodes] == sorted((n.score for n in nodes), reverse=True)
    assert_no_global_models()


def test_nodes_match_service_hits(retriever, tiny_service):
    hits = tiny_service.search("报销流程是什么", k=3)
    nodes = retriever.retrieve(QueryBundle("报销流程是什么"))
    assert [n.node.node_id for n in nodes] == [h.chunk_id for h in hits]
    assert [n.score for n in nodes] == [h.score for h in hits]
    assert nodes[0].node.metadata["source"] == EXPENSE


def test_llm_sees_text_and_place_but_not_offsets(retriever):
    node = retriever.retrieve("报销流程是什么")[0].node
    shown = node.get_content(metadata_mode=MetadataMode.LLM)
    assert node.text in shown and node.metadata["section"] in shown
    assert "bm25_rank" not in shown and "start:" not in shown


def test_modes_and_k(tiny_service):
    bm25 = KnowledgeBaseRetriever(tiny_service, k=2, mode="bm25").retrieve("加班费怎么计算")
    assert len(bm25) <= 2
    assert all(n.node.metadata["dense_rank"] is None for n in bm25)
    assert bm25[0].node.metadata["section"].endswith("第二章 加班")
    with pytest.raises(ValueError, match="unknown search mode"):
        KnowledgeBaseRetriever(tiny_service, mode="fuzzy")
    with pytest.raises(ValueError):
        KnowledgeBaseRetriever(tiny_service, k=0)


def test_empty_question_is_refused(retriever):
    with pytest.raises(BadQuestion):
        retriever.retrieve("  ")


def test_query_engine_without_llm(retriever):
    engine = offline_query_engine(retriever, response_mode="no_text")
    assert isinstance(engine, RetrieverQueryEngine)
    response = engine.query("报销流程是什么")
    assert not response.response
    assert response.source_nodes[0].node.metadata["source"] == EXPENSE
    assert [n.node.node_id for n in response.source_nodes] == [
        n.node.node_id for n in retriever.retrieve("报销流程是什么")
    ]
    assert_no_global_models()


def test_context_only_engine_answers_with_the_passages(retriever):
    response = offline_query_engine(retriever).query("报销流程是什么")
    for n in response.source_nodes:
        assert n.node.text in str(response)
    assert "財務部審核後五個工作日內打款。" in str(response)
    assert_no_global_models()
    with pytest.raises(ValueError, match="needs a language model"):
        offline_query_engine(retriever, response_mode="compact")


def test_plugs_into_a_hand_built_retriever_query_engine(retriever):
    from llama_index.core.llms import MockLLM
    from llama_index.core.response_synthesizers.no_text import NoText

    engine = RetrieverQueryEngine(retriever, response_synthesizer=NoText(llm=MockLLM()))
    response = engine.query("市场调研多久做一次")
    top = response.source_nodes[0].node
    assert "市场调研每季度开展一次" in top.text
    assert TINY_CORPUS[top.metadata["source"]][top.start_char_idx : top.end_char_idx] == top.text
    assert_no_global_models()
