"""Rank fusion as pure functions over ``{doc_id: score}`` rankings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def rrf(rankings: Sequence[Sequence[int]], k: int = 60, weights: Sequence[float] | None = None) -> dict[int, float]:
    """Reciprocal rank fusion: ``sum_i w_i / (k + rank_i(d))`` with ranks starting at 1."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[int, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        for rank, doc in enumerate(ranking, start=1):
            fused[doc] = fused.get(doc, 0.0) + w / (k + rank)
    return fused


def minmax(scores: Mapping[int, float]) -> dict[int, float]:
    """Scale scores to [0, 1]; a constant ranking maps to 1.0 for every entry."""
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi == lo:
        return {d: 1.0 for d in scores}
    return {d: (s - lo) / (hi - lo) for d, s in scores.items()}


def weighted(score_maps: Sequence[Mapping[int, float]], weights: Sequence[float]) -> dict[int, float]:
    """Weighted sum of min-max normalised scores; a document missing from a ranking scores 0 there."""
    fused: dict[int, float] = {}
    total = sum(weights) or 1.0
    for scores, w in zip(score_maps, weights, strict=True):
        for d, s in minmax(scores).items():
            fused[d] = fused.get(d, 0.0) + w * s / total
    return fused


def top(fused: Mapping[int, float], n: int) -> list[tuple[int, float]]:
    """The ``n`` best ``(doc, score)`` pairs, best first, ties broken by doc id."""
    return sorted(fused.items(), key=lambda x: (-x[1], x[0]))[:n]
