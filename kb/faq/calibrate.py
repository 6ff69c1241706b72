"""Calibrating ``faq.match_threshold``: entry questions, paraphrases that should be answered by
them, and questions that share words with them but ask something else. The cases belong to the
knowledge base: ``calibration.toml`` in its domain folder (``kb.domain.load_calibration``; the
bundled corpus's are in ``domains/bundled/``).

``kb faq calibrate`` loads these as approved entries into a throw-away matcher (nothing is
stored) and reports, for every (question, entry) pair, the cosine and the lexical guard's
verdict: which paraphrases pass the guard and their lowest cosine, the highest cosine of a
non-matching pair (with and without the guard), and the outcome at a range of thresholds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest.normalize import normalize
from kb.faq.match import FaqMatcher, guard
from kb.faq.store import FaqEntry

if TYPE_CHECKING:
    from kb.faq.service import FaqService

Cases = dict[str, tuple[list[str], list[str]]]  # entry question -> (should match, must not)

THRESHOLDS = (0.93, 0.94, 0.95, 0.955, 0.96, 0.965, 0.97, 0.98)


def calibrate(faq: FaqService, cases: Cases) -> dict:
    """Cosines and guard verdicts for every (question, entry) pair of ``cases`` with the FAQ's
    embedder and vocabulary; see the module docstring."""
    if not cases:
        raise ValueError("no calibration cases: write calibration.toml in the domain folder (domains/README.md)")
    embedder = faq.parts.embedder
    matcher = FaqMatcher(faq.vocab, embedder, faq.settings.match_threshold)
    entries = [FaqEntry(i, q, status="approved") for i, q in enumerate(cases, start=1)]
    matcher.load(entries)
    asked = [q for e in entries for q in cases[e.question][0] + cases[e.question][1]]
    vectors = dict(zip(asked, embedder.embed_queries([normalize(q) for q in asked]), strict=True))
    pairs = []  # (question, entry question, should match, cosine, guard ok, reason)
    for e in entries:
        pos, neg = cases[e.question]
        for q, should in [(q, True) for q in pos] + [(q, False) for q in neg]:
            for row in matcher.explain(q, vectors[q]):
                if row["entry_id"] == e.id:
                    pairs.append((q, e.question, should, row["cosine"], row["guard"], row["reason"]))
                elif should:  # a paraphrase of one entry is a non-match for every other entry
                    pairs.append((q, entries[row["entry_id"] - 1].question, False, row["cosine"],
                                  row["guard"], row["reason"]))
    positives = [p for p in pairs if p[2]]
    negatives = [p for p in pairs if not p[2]]
    guarded_pos = [p for p in positives if p[4]]
    guarded_neg = [p for p in negatives if p[4]]
    table = []
    for t in THRESHOLDS:
        table.append({
            "threshold": t,
            "paraphrases_matched": sum(1 for p in positives if p[4] and p[3] >= t),
            "paraphrases": len(positives),
            "false_matches": sum(1 for p in negatives if p[4] and p[3] >= t),
            "false_matches_without_guard": sum(1 for p in negatives if p[3] >= t),
            "non_matching_pairs": len(negatives),
        })
    return {
        "embedder": embedder.id,
        "threshold": faq.settings.match_threshold,
        "entries": len(entries),
        "paraphrases": len(positives),
        "negative_pairs": len(negatives),
        "guard_pass_paraphrases": len(guarded_pos),
        "guard_pass_negatives": len(guarded_neg),
        "min_cosine_guarded_paraphrase": min((p[3] for p in guarded_pos), default=None),
        "max_cosine_guarded_negative": max((p[3] for p in guarded_neg), default=None),
        "max_cosine_negative": max((p[3] for p in negatives), default=None),
        "table": table,
        "guard_misses": [{"question": p[0], "entry": p[1], "cosine": p[3], "reason": p[5]}
                         for p in positives if not p[4]],
        "guard_passes_negatives": [{"question": p[0], "entry": p[1], "cosine": p[3]} for p in guarded_neg],
        "hard_negatives": sorted(
            ({"question": p[0], "entry": p[1], "cosine": p[3], "guard": p[5]} for p in negatives),
            key=lambda d: -d["cosine"])[:10],
    }


__all__ = ["Cases", "calibrate", "guard"]
