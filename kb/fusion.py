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


def zscore(scores: Mapping[int, float]) -> dict[int, float]:
    """Standard scores (mean 0, unit deviation); a constant ranking maps to 0.0 for every entry.

    Unlike min-max, a retriever whose scores barely differ (dense cosines of 0.85-0.88 for
    every candidate) does not get stretched to the full range and so cannot outvote a retriever
    that separates its candidates clearly."""
    if not scores:
        return {}
    values = list(scores.values())
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    if sd == 0:
        return {d: 0.0 for d in scores}
    return {d: (s - mean) / sd for d, s in scores.items()}


NORMALISERS = {"zscore": zscore, "minmax": minmax}


def weighted(
    score_maps: Sequence[Mapping[int, float]], weights: Sequence[float], normalise: str = "minmax"
) -> dict[int, float]:
    """Weighted sum of normalised scores (``normalise``: "minmax" or "zscore"). A document
    missing from a ranking gets that ranking's lowest normalised score."""
    norm = NORMALISERS[normalise]
    fused: dict[int, float] = {}
    total = sum(weights) or 1.0
    all_docs = {d for scores in score_maps for d in scores}
    for scores, w in zip(score_maps, weights, strict=True):
        normed = norm(scores)
        floor = min(normed.values(), default=0.0)
        for d in all_docs:
            fused[d] = fused.get(d, 0.0) + w * normed.get(d, floor) / total
    return fused


def top(fused: Mapping[int, float], n: int) -> list[tuple[int, float]]:
    """The ``n`` best ``(doc, score)`` pairs, best first, ties broken by doc id."""
    return sorted(fused.items(), key=lambda x: (-x[1], x[0]))[:n]
