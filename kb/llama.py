"""The knowledge base as a llama-index retriever.

``KnowledgeBaseRetriever`` wraps the one :class:`~kb.service.KnowledgeService` (hybrid BM25 +
dense search over the persisted index) behind llama-index's ``BaseRetriever``, so the knowledge
base can feed any llama-index query engine, agent or postprocessor::

    from kb.config import load_config
    from kb.llama import KnowledgeBaseRetriever, offline_query_engine

    retriever = KnowledgeBaseRetriever.from_config(load_config(None), k=5)
    nodes = retriever.retrieve("市场部经理的职责有哪些")
    nodes[0].node.metadata["source"], nodes[0].node.start_char_idx   # exact citation offsets

Each hit becomes a ``TextNode`` whose text is the original passage (``hit.quote``, i.e. the
document's text sliced ``[start:end]``), whose id is the chunk id and whose metadata carries the
source, title, section path, offsets and the BM25 / dense ranks.

Nothing here reads llama-index's global ``Settings`` LLM or embedding model (which default to a
hosted model): retrieval goes through the service's own embedder, and
:func:`offline_query_engine` hands the synthesizer an explicit placeholder LLM for response modes
that never call one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llama_index.core.callbacks import CallbackManager
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import (
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)

from kb.hits import Hit
from kb.retriever import MODES

if TYPE_CHECKING:
    from llama_index.core.query_engine import RetrieverQueryEngine

    from kb.config import Config
    from kb.service import KnowledgeService

# metadata that locates a passage but means nothing to a language model or an embedder
_MACHINE_KEYS = [
    "chunk_id", "start", "end", "bm25_rank", "dense_rank", "bm25_score", "dense_score",
    "rerank_score", "also_in",
]  # fmt: skip


def hit_to_node(hit: Hit) -> NodeWithScore:
    """One search hit as a llama-index node with its score."""
    metadata: dict[str, Any] = {
        "source": hit.source,
        "title": hit.title,
        "section": hit.section,
        "chunk_id": hit.chunk_id,
        "start": hit.start,
        "end": hit.end,
        "bm25_rank": hit.bm25_rank,
        "dense_rank": hit.dense_rank,
        "bm25_score": hit.bm25_score,
        "dense_score": hit.dense_score,
        "rerank_score": hit.rerank_score,
        "also_in": [{"source": s, "start": a, "end": b} for s, a, b in hit.also_in],
    }
    node = TextNode(
        id_=hit.chunk_id,
        text=hit.quote,
        metadata=metadata,
        start_char_idx=hit.start,
        end_char_idx=hit.end,
        excluded_llm_metadata_keys=list(_MACHINE_KEYS),
        excluded_embed_metadata_keys=list(_MACHINE_KEYS),
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=hit.source)},
    )
    return NodeWithScore(node=node, score=hit.score)


class KnowledgeBaseRetriever(BaseRetriever):
    """llama-index retriever over a :class:`~kb.service.KnowledgeService`.

    ``k`` hits per query; ``mode`` is ``"hybrid"`` (default), ``"bm25"`` or ``"dense"``.
    Empty or over-long questions raise :class:`kb.service.BadQuestion`, as in the service."""

    def __init__(
        self,
        service: KnowledgeService,
        k: int = 5,
        mode: str = "hybrid",
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown search mode {mode!r}: use one of {', '.join(MODES)}")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.service = service
        self.k = k
        self.mode = mode
        # an explicit manager: the base class would otherwise fall back to the global Settings
        super().__init__(callback_manager=callback_manager or CallbackManager(), verbose=verbose)

    @classmethod
    def from_config(cls, config: Config, **kwargs: Any) -> KnowledgeBaseRetriever:
        """Open the service for ``config`` (building its index when missing) and wrap it."""
        from kb.service import KnowledgeService

        return cls(KnowledgeService(config, progress=False), **kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.service.search(query_bundle.query_str, k=self.k, mode=self.mode)
        return [hit_to_node(h) for h in hits]


def offline_query_engine(
    retriever: BaseRetriever, response_mode: str = "context_only"
) -> RetrieverQueryEngine:
    """A ``RetrieverQueryEngine`` that needs no language model: ``"context_only"`` answers with
    the retrieved passages themselves, ``"no_text"`` with nothing (read ``source_nodes``).

    The synthesizer is built directly: llama-index's ``get_response_synthesizer`` drops the
    ``llm`` argument for these two modes, and the synthesizer's constructor then resolves the
    global ``Settings.llm`` (a hosted model by default, an ImportError offline). An explicit
    ``MockLLM`` is passed instead; these modes never call it."""
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.response_synthesizers.context_only import ContextOnly
    from llama_index.core.response_synthesizers.no_text import NoText

    synthesizers = {"context_only": ContextOnly, "no_text": NoText}
    if response_mode not in synthesizers:
        raise ValueError(
            f"response mode {response_mode!r} needs a language model: use 'context_only' or "
            "'no_text', or build a RetrieverQueryEngine with your own LLM"
        )
    callback_manager = getattr(retriever, "callback_manager", None) or CallbackManager()
    synthesizer = synthesizers[response_mode](llm=MockLLM(), callback_manager=callback_manager)
    return RetrieverQueryEngine(
        retriever, response_synthesizer=synthesizer, callback_manager=callback_manager
    )


__all__ = ["KnowledgeBaseRetriever", "hit_to_node", "offline_query_engine"]
