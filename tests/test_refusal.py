"""Refusal that holds on any corpus (kb.answer.scope, kb.calibrate): on tiny corpora built here,
questions the documents do not address are refused even when they share characters or words
with them; a two-part question gets the covered part and a line naming the other; each index
gets its own fitted threshold, recorded in its manifest and the ingest summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kb.calibrate import fit_threshold, load_bank
from kb.service import KnowledgeService, run_ingest
from tests.conftest import hashing_config

ROOT = Path(__file__).resolve().parents[1]

RULES = {
    "员工手册.md": (
        "# 员工手册\n\n"
        "## 一、试用期\n\n"
        "劳动合同期限三年以上的，试用期最长不得超过六个月。试用期工资不得低于本单位相同岗位最低档工资的百分之八十。\n\n"
        "## 二、工会经费\n\n"
        "工会费用由企业按每月全部职工工资总额的百分之二拨缴，用于职工活动。\n\n"
        "## 三、加班\n\n"
        "延长工作时间每日不得超过三小时，每月不得超过三十六小时。\n\n"
        "## 四、年休假\n\n"
        "职工累计工作已满1年不满10年的，年休假5天；已满10年不满20年的，年休假10天。\n"
    ),
}


def _service(tmp_path: Path, **overrides) -> KnowledgeService:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in RULES.items():
        (corpus / name).write_text(text, encoding="utf-8")
    cfg = hashing_config(tmp_path / "data", corpus, domain_dir="", **overrides)
    run_ingest(cfg, progress=False)
    return KnowledgeService(cfg, progress=False)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    # a threshold of 0 answers everything the evidence reaches: what is refused here is refused
    # by what the documents do not address, not by similarity
    return _service(tmp_path_factory.mktemp("refusal"), answer__min_confidence=0.0)


@pytest.mark.parametrize("question", [
    "工会会费每个月交多少钱？",  # 会费: its characters are in 工会费用 (工会|费用), the word is not
    "明年试用期会不会延长到一年？",  # a prediction no passage speaks of
    "2027年的加班上限是多少小时？",  # a year no passage names
    "我还剩几天年休假？",  # one's own records
    "深圳的试用期最长多久？",  # a place the documents never name
    "公司的股票代码是多少？",  # a value of something never mentioned
    "今年公司年会在哪里开？",  # a date-bound event
    "腾讯的试用期最长多久？",  # another organisation's rules
    "以后试用期会不会延长到一年？",  # 以后 on its own: a prediction
    "帮我写一封申请加班的邮件",  # a writing task
])
def test_what_the_documents_do_not_address_is_refused(guarded, question):
    a = guarded.ask(question, log=False)
    assert a.answered is False, a.answer
    assert a.citations == []
    assert a.answer.startswith("知识库中没有找到相关内容")
    assert a.related and all(isinstance(r, str) and r for r in a.related)


@pytest.mark.parametrize(("question", "expected"), [
    ("工会费用按什么比例拨缴？", "百分之二"),
    ("试用期最长多久？", "六个月"),
    ("每个月加班最多几个小时？", "三十六小时"),
    ("工作满10年年休假有几天？", "10天"),
    # 以后 after an event is "after it", no prediction: answered from what holds
    ("工作满10年以后年休假会增加到几天？", "10天"),
])
def test_what_they_do_address_is_answered(guarded, question, expected):
    a = guarded.ask(question, log=False)
    assert a.answered, a.answer
    assert any(expected in c.quote for c in a.citations)
    doc = guarded.document(a.citations[0].source).text
    assert all(doc[c.start : c.end] == c.quote for c in a.citations)


def test_a_refusal_is_in_the_question_script(guarded):
    a = guarded.ask("明年試用期會不會延長到一年？", log=False)
    assert a.answered is False
    assert a.answer.startswith("知識庫中沒有找到相關內容")


def test_a_two_part_question_gets_the_covered_part_and_names_the_other(guarded):
    a = guarded.ask("试用期最长多久？公司年会在哪里开？", log=False)
    assert a.answered, a.answer
    assert any("六个月" in c.quote for c in a.citations)
    assert "（关于“公司年会在哪里开”，知识库中没有找到相关内容。）" in a.answer
    assert not any("年会" in c.quote for c in a.citations)


def test_a_question_whose_parts_are_all_uncovered_is_refused(guarded):
    a = guarded.ask("明年工资会不会涨？今年年会在哪开？", log=False)
    assert a.answered is False and a.citations == []


def test_the_threshold_is_fitted_per_index_and_recorded(tmp_path):
    svc = _service(tmp_path, answer__min_confidence=None)
    cal = svc.index.manifest["calibration"]
    assert cal["in_scope_probes"] > 0 and cal["out_of_scope_probes"] > 0
    assert 0.0 <= cal["in_scope_refused"] <= 1.0 and 0.0 <= cal["out_of_scope_refused"] <= 1.0
    # a bank question the corpus names everything of is left out (年休假, 试用期 are here)
    assert cal["bank_left_out"] >= 0
    assert svc.answerer.threshold == cal["threshold"]
    # hashing similarities are on their own scale: the fitted threshold sits on it, so that an
    # unrelated question is refused and a question of the corpus answered
    assert svc.ask("红烧肉怎么做好吃？", log=False).answered is False
    assert svc.ask("试用期最长多久？", log=False).answered is True
    # nothing changed: the figures are reused, not fitted again
    _, again = run_ingest(svc.config, progress=False)
    assert again["calibration"] == cal


def test_an_explicit_threshold_wins_over_the_fitted_one(tmp_path):
    svc = _service(tmp_path, answer__min_confidence=0.42)
    assert "calibration" in svc.index.manifest
    assert svc.answerer.threshold == 0.42


def test_calibration_can_be_turned_off(tmp_path):
    svc = _service(tmp_path, answer__min_confidence=None, answer__calibrate=False)
    assert "calibration" not in svc.index.manifest
    assert svc.answerer.threshold == 0.90  # DEFAULT_MIN_CONFIDENCE


def test_ingest_summary_names_the_fitted_threshold(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in RULES.items():
        (corpus / name).write_text(text, encoding="utf-8")
    cfg = tmp_path / "kb.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\ncorpus_dir = "{corpus}"\ndomain_dir = ""\n'
                   '[embedder]\nbackend = "hashing"\n', encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "kb.cli", "ingest", "--config", str(cfg), "-q"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("refusal:"))
    manifest = json.loads((tmp_path / "data" / "index" / "manifest.json").read_text(encoding="utf-8"))
    assert f"threshold {manifest['calibration']['threshold']:.4f}" in line
    assert "in-scope probes" in line and "out-of-scope" in line


def test_the_bank_is_large_and_in_both_scripts():
    bank = load_bank()
    assert len(bank) >= 400 and len(set(bank)) == len(bank)
    assert sum(1 for q in bank if any(ch in q for ch in "薪資請嗎們幾這麼樣")) >= 40  # Traditional


def test_fit_threshold_on_hand_made_lists():
    # out-of-scope probes at .1 … 1.0; 80% of them fall below .82
    out = [i / 10 for i in range(1, 11)]
    fit = fit_threshold([0.95, 0.97, 0.99, 1.0], out, [False] * 4, [False] * 10, 0.8, 0.2, 0.5)
    assert 0.8 <= fit.threshold <= 0.9
    assert fit.in_refused == 0.0 and fit.out_refused == 0.8
    # ...lowered where it would refuse more than 20% of the in-scope probes
    ins = [0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99, 1.0]
    fit = fit_threshold(ins, out, [False] * 10, [False] * 10, 0.8, 0.2, 0.5)
    assert fit.threshold <= 0.6 and fit.in_refused <= 0.2
    # probes the scope guard refuses anyway do not move it, and count as refused
    fit = fit_threshold([1.0], [0.99, 0.1, 0.2, 0.3, 0.4, 0.5], [False], [True] + [False] * 5, 0.8, 0.2, 0.5)
    assert fit.threshold <= 0.5  # the .99 probe, refused by the guard, does not raise it
    assert fit.out_refused == round(5 / 6, 4)  # itself, and the four below the threshold (.42)
    # nothing to fit on: the default
    assert fit_threshold([], [], [], [], 0.8, 0.2, 0.5).threshold == 0.5


# -- with the real model, on both development corpora -------------------------------------------
@pytest.mark.slow
def test_real_indexes_carry_their_own_fitted_thresholds(real_service, workplace_service):
    a = real_service.index.manifest["calibration"]
    b = workplace_service.index.manifest["calibration"]
    assert a["threshold"] != b["threshold"]  # fitted per corpus, not one number carried over
    for cal in (a, b):
        assert 0.8 < cal["threshold"] < 1.0
        assert cal["out_of_scope_refused"] >= 0.85 and cal["in_scope_refused"] <= 0.2


@pytest.mark.slow
@pytest.mark.parametrize("question", [
    "2027年的加班费标准是多少？",
    "明年试用期规定会不会调整？",
    "我还剩几天年假？",
    "深圳的最低工资标准是多少？",
])
def test_real_questions_no_document_addresses_are_refused(real_service, workplace_service, question):
    for svc in (real_service, workplace_service):
        a = svc.ask(question, log=False)
        assert a.answered is False and a.citations == [], (svc.config.corpus_dir, a.answer)
        assert a.related


@pytest.mark.slow
def test_real_two_part_question_on_the_statutes(workplace_service):
    a = workplace_service.ask("试用期最长多久？深圳的最低工资是多少？", log=False)
    assert a.answered
    assert any("六个月" in c.quote for c in a.citations)
    assert "（关于“深圳的最低工资是多少”，知识库中没有找到相关内容。）" in a.answer
