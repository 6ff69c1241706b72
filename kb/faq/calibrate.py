"""Calibrating ``faq.match_threshold``: entry questions, paraphrases that should be answered by
them, and questions that share words with them but ask something else.

``kb faq calibrate`` loads these as approved entries into a throw-away matcher (nothing is
stored) and reports, for every (question, entry) pair, the cosine and the lexical guard's
verdict: which paraphrases pass the guard and their lowest cosine, the highest cosine of a
non-matching pair (with and without the guard), and the outcome at a range of thresholds.
"""

from __future__ import annotations

from ingest.normalize import normalize
from kb.faq.match import FaqMatcher, guard
from kb.faq.store import FaqEntry

# entry question -> (paraphrases: should match; shares words, asks something else: must not)
CASES: dict[str, tuple[list[str], list[str]]] = {
    "市场部经理的职责有哪些？": (
        ["市场部经理要负责哪些工作？", "市场部经理主要干什么？", "市场部经理的工作内容是什么？",
         "市场部门经理的职能有哪些？", "市場部經理的職責有哪些？", "市场部经理平时都做哪些事情？",
         "市场部经理的岗位职责", "市场部经理职责"],
        ["销售部经理的职责有哪些？", "市场部经理的工资有多少？", "市场部经理助理的职责有哪些？",
         "市场部经理怎么招聘？", "市场部经理和销售部经理有什么区别？", "市场部经理应该具备哪些能力？",
         "市场部有哪些岗位？"],
    ),
    "市场部和销售部为什么会发生冲突？": (
        ["市场部与销售部为什么老吵架？", "市场部和销售部产生矛盾的原因有哪些？",
         "市场部跟销售部闹矛盾的原因是什么", "为什么市场部和销售部会发生争吵？",
         "市場部和銷售部為什麼會發生衝突？", "市场部和销售部冲突的根源",
         "市场部和销售部互相看不顺眼是什么原因"],
        ["市场部和销售部的冲突怎么解决？", "市场部和财务部为什么会发生冲突？",
         "销售部和研发部为什么会有矛盾？", "市场部和销售部有什么区别？", "市场部和销售部如何配合？",
         "市场部和销售部为什么要分开设立？", "市场部和销售部发生冲突会有什么后果？"],
    ),
    "怎样让市场部和销售部更好地配合？": (
        ["市场部和销售部如何更好地协作？", "怎么让市场部跟销售部配合得更好",
         "市场部与销售部怎样加强合作？", "如何做好市场部与销售部的配合？", "怎樣讓市場部和銷售部更好地配合？"],
        ["怎样让市场部和财务部更好地配合？", "市场部和销售部为什么配合不好？",
         "怎样让销售部和研发部更好地配合？", "怎样提高市场部的工作效率？", "市场部和销售部的配合有哪些问题？"],
    ),
    "销售管理与营销管理的区别是什么？": (
        ["销售管理和营销管理有什么不同？", "营销管理跟销售管理的差别", "銷售管理與營銷管理有什麼區別？",
         "销售管理和市场营销管理的区别", "销售管理与营销管理有何差异"],
        ["销售管理包括哪些内容？", "营销管理是什么？", "市场部与销售部的区别是什么？",
         "销售管理与营销管理哪个更重要？", "营销战略与营销策略的区别是什么？"],
    ),
    "市场部的主要任务有哪些？": (
        ["市场部主要负责哪些任务？", "市场部的主要职能是什么？", "市场部门主要做哪些工作？",
         "市场部要承担哪些任务？", "市場部的主要任務有哪些？"],
        ["销售部的主要任务有哪些？", "市场部经理的主要任务有哪些？", "市场部的主要问题有哪些？",
         "市场部有多少人？", "市场部的主要任务怎么完成？"],
    ),
    "销售部日常需要提供哪些资料？": (
        ["销售部平时要提供什么资料？", "销售部需要给市场部提供哪些资料？", "销售部日常要交哪些资料",
         "銷售部日常需要提供哪些資料？", "销售部每天需要提供的资料有哪些"],
        ["市场部日常需要提供哪些资料？", "销售部日常需要做哪些工作？", "销售部需要提供多少资料？",
         "销售部的资料怎么保存？", "客户档案需要哪些资料？"],
    ),
}
THRESHOLDS = (0.93, 0.94, 0.95, 0.955, 0.96, 0.965, 0.97, 0.98)


def calibrate(service, cases: dict[str, tuple[list[str], list[str]]] | None = None) -> dict:
    """Cosines and guard verdicts for every (question, entry) pair of ``cases`` with the
    service's embedder and vocabulary; see the module docstring."""
    cases = cases or CASES
    faq = service.faq
    matcher = FaqMatcher(faq.vocab, service.embedder, faq.settings.match_threshold)
    entries = [FaqEntry(i, q, status="approved") for i, q in enumerate(cases, start=1)]
    matcher.load(entries)
    asked = [q for e in entries for q in cases[e.question][0] + cases[e.question][1]]
    vectors = dict(zip(asked, service.embedder.embed_queries([normalize(q) for q in asked]), strict=True))
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
        "embedder": service.embedder.id,
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


__all__ = ["CASES", "calibrate", "guard"]
