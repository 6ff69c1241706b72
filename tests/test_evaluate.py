"""kb.evaluate and kb.benchdata on tiny data: metric values computed by hand, the overlap rule,
key-point matching across scripts, the public-set loaders, and end-to-end runs with the
model-free ``hashing`` embedder."""

from __future__ import annotations

import json
import math
from argparse import Namespace
from pathlib import Path

import pytest

from kb.benchdata import Passage, ingest_records, load_bench, load_passages, load_queries
from kb.config import load_config
from kb.evaluate import (
    citation_markers_ok,
    evaluate_bench,
    evaluate_dev,
    gold_recall,
    gold_spans,
    hit_at_k,
    is_relevant,
    key_point_coverage,
    key_point_hits,
    locate,
    main,
    make_setup,
    ndcg_at_k,
    overlaps,
    reciprocal_rank,
    refusal_metrics,
    relevance,
)
from kb.hits import Hit

# -- metrics ---------------------------------------------------------------------------------------


def test_hit_at_k():
    rels = [False, False, True, False]
    assert hit_at_k(rels, 1) == 0.0
    assert hit_at_k(rels, 2) == 0.0
    assert hit_at_k(rels, 3) == 1.0
    assert hit_at_k(rels, 10) == 1.0
    assert hit_at_k([], 5) == 0.0


def test_reciprocal_rank():
    assert reciprocal_rank([True, True]) == 1.0
    assert reciprocal_rank([False, False, False, True]) == 0.25
    assert reciprocal_rank([False] * 10 + [True]) == 0.0  # rank 11 is outside @10
    assert reciprocal_rank([False, False, True], k=2) == 0.0


def test_ndcg_by_hand():
    # relevant at ranks 2 and 4, two relevant chunks exist:
    # DCG = 1/log2(3) + 1/log2(5) = 0.63093 + 0.43068 = 1.06161
    # IDCG = 1/log2(2) + 1/log2(3) = 1.63093  ->  nDCG = 0.65092
    assert ndcg_at_k([False, True, False, True, False], n_relevant=2) == pytest.approx(0.65092, abs=1e-4)
    # perfect ranking
    assert ndcg_at_k([True, True, False], n_relevant=2) == pytest.approx(1.0)
    # three relevant chunks exist but only one was found at rank 1: 1 / (1 + 0.63093 + 0.5)
    assert ndcg_at_k([True, False, False], n_relevant=3) == pytest.approx(1 / 2.13093, abs=1e-4)
    # the ideal is capped at k results
    assert ndcg_at_k([True] * 3, n_relevant=50, k=3) == pytest.approx(1.0)
    assert ndcg_at_k([False, False], n_relevant=0) == 0.0
    assert ndcg_at_k([False, True], n_relevant=1) == pytest.approx(1 / math.log2(3))


def test_refusal_metrics_by_hand():
    # (refused, out_of_scope): 2 correct refusals, 1 wrong refusal, 1 missed, 4 correct answers
    pairs = [(True, True), (True, True), (True, False), (False, True)] + [(False, False)] * 4
    m = refusal_metrics(pairs)
    assert m["refusal_precision"] == pytest.approx(2 / 3)
    assert m["refusal_recall"] == pytest.approx(2 / 3)
    assert m["refusal_accuracy"] == pytest.approx(6 / 8)
    assert refusal_metrics([(False, False)])["refusal_precision"] is None  # nothing refused: undefined


def test_citation_markers():
    ok = {"answer": "a [1]\nb [2] [1]", "citations": [{"n": 1}, {"n": 2}]}
    unused = {"answer": "a [1]", "citations": [{"n": 1}, {"n": 2}]}
    dangling = {"answer": "a [3]", "citations": [{"n": 1}]}
    assert citation_markers_ok(ok)
    assert not citation_markers_ok(unused)
    assert not citation_markers_ok(dangling)


# -- overlap -----------------------------------------------------------------------------------------


def _hit(source: str, start: int, end: int, also_in=()) -> Hit:
    return Hit(chunk_id=f"{source}#{start}-{end}", source=source, title="", section="", start=start,
               end=end, quote="", score=1.0, also_in=list(also_in))


def test_overlaps():
    assert overlaps(("a", 0, 10), ("a", 9, 20))
    assert overlaps(("a", 5, 6), ("a", 0, 100))
    assert not overlaps(("a", 0, 10), ("a", 10, 20))  # touching is not overlapping
    assert not overlaps(("a", 0, 10), ("b", 0, 10))


def test_locate_every_occurrence():
    assert locate("市场", "市场部和市场") == [(0, 2), (4, 6)]
    assert locate("销售", "市场部") == []
    assert locate("", "abc") == []


def test_relevance_with_also_in():
    text = {"a.txt": "甲乙丙丁戊己庚辛壬癸" * 3, "b.txt": "子丑寅卯"}
    warnings: list[str] = []
    golds = gold_spans([{"source": "a.txt", "quote": "丙丁戊"}, {"source": "b.txt", "quote": "不存在"},
                        {"source": "c.txt", "quote": "x"}], text, warnings.append)
    assert golds[0] == [("a.txt", 2, 5), ("a.txt", 12, 15), ("a.txt", 22, 25)]
    assert golds[1] == [] and golds[2] == []
    assert len(warnings) == 2 and "not found" in warnings[0] and "not in the index" in warnings[1]
    far = _hit("a.txt", 5, 12)  # ends exactly where the second occurrence starts
    inside = _hit("a.txt", 10, 14)
    folded = _hit("b.txt", 0, 4, also_in=[("a.txt", 20, 23)])  # a near-duplicate of a.txt[20:23]
    other = _hit("b.txt", 0, 4)
    assert relevance([far, inside, folded, other], golds) == [False, True, True, False]
    # hit dicts (Hit.to_dict, citations) work the same way
    assert is_relevant(folded.to_dict(), golds[0])
    assert is_relevant({"source": "a.txt", "start": 0, "end": 3}, golds[0])
    assert gold_recall([inside], golds) == pytest.approx(1 / 3)


# -- key points ------------------------------------------------------------------------------------


def test_key_points_across_scripts():
    answer = "市場部負責品牌推廣與市場調研，並為銷售部提供支持。ＫＰＩ考核由人力資源部制訂。"
    assert key_point_hits(answer, ["品牌推广", "市场调研", "kpi考核", "回款任务"]) == [True, True, True, False]
    assert key_point_coverage(answer, ["品牌推广", "回款任务"]) == 0.5
    assert key_point_coverage("市场部 负责\n品牌推广", ["市场部负责"]) == 1.0  # whitespace ignored
    assert key_point_coverage(answer, []) is None


# -- public-set loaders ----------------------------------------------------------------------------


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


BENCH_PASSAGES = [
    ("p1", "长城", "长城是中国古代的军事防御工程，修筑历史可上溯到西周时期。"),
    ("p2", "黄河", "黄河是中国第二长河，发源于青藏高原巴颜喀拉山脉。"),
    ("p3", "熊猫", "大熊猫是中国特有物种，主要栖息在四川、陕西和甘肃的山区。"),
    ("p4", "茶", "茶叶起源于中国，唐代陆羽著有世界上第一部茶学专著《茶经》。"),
]
BENCH_QUERIES = [
    ("q1", "长城的修筑历史可以上溯到什么时期？", ["p1"]),
    ("q2", "黃河發源於哪裡？", ["p2"]),  # Traditional question, Simplified passage
    ("q3", "大熊猫主要栖息在哪些省份的山区？", ["p3"]),
    ("q4", "世界上第一部茶学专著是什么？", ["p4"]),
    ("q5", "没有标注答案的问题", []),
]


@pytest.fixture()
def bench_root(tmp_path: Path) -> Path:
    root = tmp_path / "bench"
    _write_jsonl(root / "tiny" / "passages.jsonl",
                 [{"id": i, "title": t, "text": x} for i, t, x in BENCH_PASSAGES] + [{"id": "empty", "title": "", "text": " "}])
    _write_jsonl(root / "tiny" / "queries.jsonl",
                 [{"id": i, "question": q, "gold_passage_ids": g, "answers": []} for i, q, g in BENCH_QUERIES])
    beir = root / "tinybeir"
    _write_jsonl(beir / "corpus.jsonl", [{"_id": i, "title": t, "text": x} for i, t, x in BENCH_PASSAGES])
    _write_jsonl(beir / "queries.jsonl", [{"_id": i, "text": q} for i, q, _ in BENCH_QUERIES])
    (beir / "qrels").mkdir()
    (beir / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{i}\t{g[0]}\t1\n" for i, _, g in BENCH_QUERIES if g),
        encoding="utf-8")
    return root


def test_loaders_both_shapes(bench_root: Path):
    for name in ("tiny", "tinybeir"):
        passages = load_passages(bench_root / name)
        assert [p.id for p in passages] == ["p1", "p2", "p3", "p4"]  # the blank passage is dropped
        queries = load_queries(bench_root / name)
        assert [(q.id, q.gold) for q in queries] == [("q1", ("p1",)), ("q2", ("p2",)), ("q3", ("p3",)), ("q4", ("p4",))]
    sample = load_queries(bench_root / "tiny", limit=2)
    assert len(sample) == 2 and sample == load_queries(bench_root / "tiny", limit=2)  # seeded
    assert load_bench("tiny", root=bench_root).characters == sum(len(x) for _, _, x in BENCH_PASSAGES)
    with pytest.raises(FileNotFoundError):
        load_bench("missing", root=bench_root)


def test_ingest_records_one_chunk_per_passage():
    result = ingest_records([Passage("b", "乙文本", "乙"), ("a", "甲", "甲的文本"), ("c", "", "  ")])
    assert list(result.records) == ["a", "b"]
    for source, rec in result.records.items():
        (chunk,) = rec.chunks
        assert chunk.source == source
        assert rec.document.text[chunk.start : chunk.end] == chunk.text == rec.document.text
    with pytest.raises(ValueError):
        ingest_records([("a", "", "x"), ("a", "", "y")])


def test_evaluate_bench_end_to_end(bench_root: Path, tmp_path: Path):
    cfg = load_config(None, data_dir=tmp_path / "data", embedder__backend="hashing")
    res = evaluate_bench(cfg, "tiny", root=bench_root, progress=False)
    assert res["passages"] == 4 and res["queries"] == 4
    for name in ("bm25", "dense", "hybrid"):
        s = res["setups"][name]
        assert s["R@5"] == 1.0  # 4 passages: every gold passage is in the top 5
    assert res["setups"]["bm25"]["R@1"] == 1.0  # each question shares its key words with its passage
    assert res["embedding"]["cached"] is False
    again = evaluate_bench(cfg, "tiny", root=bench_root, progress=False)
    assert again["embedding"]["cached"] is True  # passage vectors come from data/cache/bench
    assert again["query_embedding"]["cached"] is True  # and so do query vectors
    assert set(again["setups"]) == set(res["setups"])
    if cfg.retrieval.fusion == "weighted":  # the configured setup is measured too
        assert "hybrid-weighted" in res["setups"]
    assert again["setups"]["hybrid"]["MRR@10"] == res["setups"]["hybrid"]["MRR@10"]
    with pytest.raises(ValueError):
        evaluate_bench(cfg, "tiny", root=bench_root, setups="hybrid-c200", progress=False)


# -- the dev set end to end ------------------------------------------------------------------------

DOC_A = """市场部的职责
1、负责市场调研与分析,收集竞争对手和行业的信息。
2、制定品牌推广策略,策划广告宣传和公关活动。
3、为销售部提供市场支持、培训资料和销售工具。

销售部的职责
1、完成公司下达的销售目标和回款任务。
2、维护客户关系,开发新的经销商和销售渠道。
"""
DOC_B = """部門衝突的原因
兩個部門的考核機制不同,市場部看品牌影響力,銷售部看當月業績,因此經常發生爭吵。
解決辦法是建立共同的目標,定期召開聯席會議,互相換位思考。
"""
DOC_C = """新员工入职培训
新员工入职第一周参加公司制度培训,了解报销流程、考勤制度和信息安全规定。
"""

DEV = [
    {"id": "t1", "question": "市场部负责哪些工作?", "in_scope": True, "kind": "list", "style": "near_exact",
     "script": "simplified",
     "gold": [{"source": "a.txt", "quote": "负责市场调研与分析,收集竞争对手和行业的信息。"},
              {"source": "a.txt", "quote": "制定品牌推广策略,策划广告宣传和公关活动。"}],
     "key_points": ["市场调研", "品牌推广"]},
    {"id": "t2", "question": "销售部的职责是完成销售目标和回款吗", "in_scope": True, "kind": "fact",
     "style": "near_exact", "script": "simplified",
     "gold": [{"source": "a.txt", "quote": "完成公司下达的销售目标和回款任务。"}], "key_points": ["回款任务"]},
    {"id": "t3", "question": "兩個部門的考核機制為什麼不同", "in_scope": True, "kind": "why", "style": "keyword",
     "script": "traditional",
     "gold": [{"source": "b.txt", "quote": "兩個部門的考核機制不同"}], "key_points": ["考核机制"]},
    {"id": "t4", "question": "新员工入职培训要了解哪些制度", "in_scope": True, "kind": "list", "style": "near_exact",
     "script": "simplified",
     "gold": [{"source": "c.txt", "quote": "了解报销流程、考勤制度和信息安全规定"}], "key_points": ["考勤制度"]},
    {"id": "t5", "question": "今天北京的天气怎么样", "in_scope": False, "kind": "fact", "style": "colloquial",
     "script": "simplified", "gold": [], "key_points": []},
]


@pytest.fixture()
def tiny_kb(tmp_path: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in (("a.txt", DOC_A), ("b.txt", DOC_B), ("c.txt", DOC_C)):
        (corpus / name).write_text(text, encoding="utf-8")
    dev = tmp_path / "dev.jsonl"
    _write_jsonl(dev, DEV)
    # the hashing embedder's similarities are lower than the real model's: the refusal floor is
    # set for it (its confidence is ~0.04 on the weather question, >= 0.34 on the others)
    cfg = load_config(None, data_dir=tmp_path / "data", corpus_dir=corpus, embedder__backend="hashing",
                      answer__min_confidence=0.2)
    return cfg, dev


def test_evaluate_dev_end_to_end(tiny_kb, tmp_path: Path):
    cfg, dev = tiny_kb
    res = evaluate_dev(cfg, dev_path=dev)
    assert res["questions"] == 5 and res["in_scope"] == 4
    setups = res["setups"]
    assert set(setups) >= {"bm25", "dense", "hybrid", "hybrid-weighted", "hybrid-noglossary",
                           "hybrid-c200", "hybrid-c450", "hybrid-rerank"}
    assert setups["hybrid-rerank"]["status"] == "not configured"
    assert (cfg.data_dir / "cache" / "eval" / "index-c200" / "manifest.json").exists()
    bm25 = setups["bm25"]
    assert bm25["questions"] == 4
    assert bm25["hit@1"] == 1.0 and bm25["mrr@10"] == 1.0  # each question's gold chunk ranks first
    assert setups[res["main_setup"]]["mrr@10"] == 1.0
    for name, s in setups.items():
        if s["status"] == "ok":
            for key in ("hit@1", "hit@5", "mrr@10", "ndcg@10", "recall@10"):
                assert 0.0 <= s[key] <= 1.0, (name, key)
            assert s["hit@1"] <= s["hit@3"] <= s["hit@5"] <= s["hit@10"]
    ans = res["answers"]
    assert ans["questions"] == 5
    assert ans["citations"] > 0 and ans["citation_validity"] == 1.0  # exact slices
    assert ans["markers_consistent"] == 1.0
    n = ans["refused_out_of_scope"] + ans["refused_in_scope"] + ans["answered_out_of_scope"] + ans["answered_in_scope"]
    assert n == 5
    assert ans["refusal_recall"] == 1.0  # the weather question is refused
    assert ans["citation_hit"] >= 0.75 and ans["key_point_coverage"] >= 0.75
    t3 = next(r for r in ans["per_question"] if r["id"] == "t3")
    if t3["answered"]:  # a Traditional answer scored against a Simplified key point
        assert t3["key_point_coverage"] == 1.0
    s = res["summary"]
    assert s["hit@5"] == setups[res["main_setup"]]["hit@5"]
    assert s["refusal_accuracy"] == ans["refusal_accuracy"]
    assert set(res["breakdown"]) == {"kind", "style", "script", "format"}
    assert set(res["breakdown"]["format"]) <= {"txt", "md", "out of scope"}  # the tiny corpus's formats
    assert res["breakdown"]["script"]["traditional"]["n"] == 1
    assert res["warnings"] == []
    json.dumps(res)  # the whole result is JSON-serialisable


def test_eval_main_writes_reports(tiny_kb, tmp_path: Path, monkeypatch, capsys):
    cfg, dev = tiny_kb
    monkeypatch.setattr("kb.evaluate.DEV_PATH", dev)
    reports = tmp_path / "reports"
    args = Namespace(bench=None, limit=None, setups="bm25,hybrid", reports=str(reports))
    assert main(cfg, args) == 0
    out = capsys.readouterr().out
    assert "hit@5" in out and "refusal accuracy" in out
    md = (reports / "eval-dev.md").read_text(encoding="utf-8")
    assert "| bm25 |" in md and "## Answers" in md
    assert (reports / "eval-dev.png").stat().st_size > 1000
    assert json.loads((reports / "eval-dev.json").read_text(encoding="utf-8"))["questions"] == 5


def test_eval_main_runs_another_question_file(tiny_kb, tmp_path: Path, capsys):
    cfg, dev = tiny_kb
    other = tmp_path / "holdout.jsonl"
    _write_jsonl(other, DEV[:2] + DEV[4:])
    reports = tmp_path / "reports"
    args = Namespace(bench=None, limit=None, setups="bm25", reports=str(reports), questions=str(other))
    assert main(cfg, args) == 0
    assert "holdout.jsonl: 3 questions (2 in scope)" in capsys.readouterr().out
    assert json.loads((reports / "eval-holdout.json").read_text(encoding="utf-8"))["questions"] == 3
    assert (reports / "eval-holdout.md").read_text(encoding="utf-8").startswith("# Evaluation: holdout set")
    assert not (reports / "eval-dev.md").exists()


def test_setup_names():
    assert make_setup("hybrid-c250").chunk_chars == 250
    assert make_setup("bm25").mode == "bm25"
    with pytest.raises(ValueError):
        make_setup("bm42")
