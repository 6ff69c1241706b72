"""What people ask: the ask log clustered by meaning, most-asked first, and the gaps
(questions that were refused or got a thumbs-down in the web chat's feedback table)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ingest.normalize import normalize
from kb.embed.base import Embedder
from kb.faq.match import Vocabulary, guard


@dataclass
class Cluster:
    question: str  # the most-asked wording
    count: int = 0
    answered: int = 0
    refused: int = 0
    from_faq: int = 0
    thumbs_down: int = 0
    variants: dict[str, int] = field(default_factory=dict)  # wording -> times asked
    last_asked: str = ""
    comments: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "question": self.question, "count": self.count, "answered": self.answered,
            "refused": self.refused, "from_faq": self.from_faq, "thumbs_down": self.thumbs_down,
            "variants": sorted(self.variants.items(), key=lambda kv: -kv[1]),
            "last_asked": self.last_asked, "comments": self.comments,
        }


def cluster_questions(rows: list[dict], embedder: Embedder, threshold: float,
                      vocab: Vocabulary | None = None) -> list[Cluster]:
    """Greedy clustering of asked questions: distinct wordings (by normalised text) from the
    most asked down; each joins the existing cluster whose first wording it is most similar
    to when the cosine is >= ``threshold`` (and, given ``vocab``, the lexical guard agrees:
    the clusters are then questions one FAQ entry could answer), else starts a cluster.
    ``rows`` carry ``question`` and optionally ``answered``, ``source_kind``, ``asked_at``,
    ``thumbs_down``, ``comment``."""
    by_key: dict[str, list[dict]] = {}
    for r in rows:
        q = (r.get("question") or "").strip()
        if q:
            by_key.setdefault(normalize(q), []).append(r)
    keys = sorted(by_key, key=lambda k: (-len(by_key[k]), k))
    if not keys:
        return []
    vectors = embedder.embed_queries(keys)
    terms = [vocab.terms(k) for k in keys] if vocab else None
    heads: list[int] = []
    member_of: list[int] = []
    for i in range(len(keys)):
        best = -1
        if heads:
            sims = vectors[heads] @ vectors[i]
            for c in np.argsort(-sims):
                if sims[c] < threshold:
                    break
                if terms is None or guard(terms[i], terms[heads[c]]).ok:
                    best = int(c)
                    break
        if best < 0:
            heads.append(i)
            best = len(heads) - 1
        member_of.append(best)
    clusters = [Cluster("") for _ in heads]
    for i, key in enumerate(keys):
        cl = clusters[member_of[i]]
        group = by_key[key]
        wording = Counter(r["question"].strip() for r in group).most_common(1)[0][0]
        cl.variants[wording] = cl.variants.get(wording, 0) + len(group)
        for r in group:
            cl.count += 1
            if r.get("thumbs_down"):
                cl.thumbs_down += 1
                if r.get("comment"):
                    cl.comments.append(r["comment"])
            elif r.get("answered"):
                cl.answered += 1
                cl.from_faq += r.get("source_kind") == "faq"
            else:
                cl.refused += 1
            cl.last_asked = max(cl.last_asked, r.get("asked_at") or "")
    for cl in clusters:
        cl.question = max(cl.variants.items(), key=lambda kv: kv[1])[0]
    return sorted(clusters, key=lambda c: (-c.count, c.question))
