"""Cited answers: the answer contract on the tiny corpus (hashing embedder), follow-up
resolution, and real answers from the default model on the bundled corpus (``slow``)."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from conftest import CORPUS, EXPENSE, TINY_CORPUS

from ingest.normalize import script_of, to_simplified
from kb.answer import make_answerer
from kb.answer.base import NOT_COVERED
from kb.answer.followup import FollowupResolver
from kb.config import load_config
from kb.service import BadQuestion

ANSWER_KEYS = {"question", "answered", "answer", "citations", "source_kind", "related",
               "timings_ms", "resolved_question", "confidence"}  # fmt: skip
CITATION_KEYS = {"n", "source", "title", "section", "start", "end", "quote", "score"}
DOC_000 = (CORPUS / "000_33a7b961c4b11507.txt").read_text(encoding="utf-8")


def check_citations(answer: dict, texts: dict[str, str]) -> None:
    """Every citation quotes its document exactly; ``[n]`` markers and citations match."""
    for c in answer["citations"]:
        assert set(c) == CITATION_KEYS
        assert texts[c["source"]][c["start"] : c["end"]] == c["quote"], c
        assert c["quote"].strip()
    numbers = [c["n"] for c in answer["citations"]]
    assert numbers == list(range(1, len(numbers) + 1))
    used = {int(n) for n in re.findall(r"\[(\d+)\]", answer["answer"])}
    assert used == set(numbers)


def lead_line(answer: dict) -> str:
    return answer["answer"].splitlines()[0]


def with_threshold(service, min_confidence: float):
    """The service's answerer with another refusal threshold (the same index and models)."""
    settings = dataclasses.replace(service.config.answer, min_confidence=min_confidence)
    return make_answerer(settings, service.answer_parts)


# -- the contract, on the tiny corpus --------------------------------------------------------------
def test_answer_is_json_with_exact_citations(tiny_service):
    answerer = with_threshold(tiny_service, -10.0)  # always answer: the contract, not calibration
    a = answerer.answer("报销流程是什么？", "报销流程是什么？").to_dict()
    assert set(a) == ANSWER_KEYS
    assert json.loads(json.dumps(a, ensure_ascii=False)) == a
    assert a["answered"] is True and a["source_kind"] == "documents" and a["related"] == []
    assert a["citations"]
    check_citations(a, TINY_CORPUS)
    assert any(c["source"] == EXPENSE and "報銷" in c["quote"] for c in a["citations"])
    assert isinstance(a["confidence"], float)
    assert a["timings_ms"]["retrieve"] >= 0
    # each point line carries a marker
    points = [ln for ln in a["answer"].splitlines() if ln.startswith("- ")]
    assert points and all(re.search(r"\[\d+\]$", p) for p in points)


def test_refusal_contract(tiny_service):
    answerer = with_threshold(tiny_service, 10.0)  # never confident enough
    a = answerer.answer("报销流程是什么？", "报销流程是什么？").to_dict()
    assert set(a) == ANSWER_KEYS
    assert json.loads(json.dumps(a, ensure_ascii=False)) == a
    assert a["answered"] is False and a["citations"] == [] and a["source_kind"] == "none"
    assert a["answer"].startswith(NOT_COVERED)
    assert not re.search(r"\[\d+\]", a["answer"])
    assert 1 <= len(a["related"]) <= 3
    assert all(isinstance(q, str) and q for q in a["related"])


def test_service_ask_resolves_and_times(tiny_service):
    a = tiny_service.ask("报销流程是什么？").to_dict()
    assert a["question"] == a["resolved_question"] == "报销流程是什么？"
    assert {"followup", "total"} <= set(a["timings_ms"])
    check_citations(a, TINY_CORPUS)


def test_traditional_question_gets_traditional_glue_on_tiny_corpus(tiny_service):
    answerer = with_threshold(tiny_service, -10.0)
    a = answerer.answer("市場部經理的職責有哪些？", "市場部經理的職責有哪些？").to_dict()
    lead = lead_line(a)
    assert script_of(lead) == "traditional" and to_simplified(lead) != lead
    check_citations(a, TINY_CORPUS)
    # quotes are the Simplified document's own text
    assert all(c["quote"] == to_simplified(c["quote"]) for c in a["citations"])


@pytest.mark.parametrize("question", ["", "   ", "问" * 501])
def test_bad_questions_are_rejected(tiny_service, question):
    with pytest.raises(BadQuestion):
        tiny_service.ask(question)


# -- follow-up resolution --------------------------------------------------------------------------
MANAGER_ANSWER = (
    "关于“市场部经理的职责”，资料中列出以下3点：\n"
    "- 全面计划、安排、管理市场部工作; [1]\n"
    "- 制定营销策略和营销计划,拟订并监督执行市场规划与预算; [1]\n"
    "- 协调部门内部与其他部门之间的合作关系; [1]"
)


def chat(*turns: str) -> list[dict]:
    roles = ("user", "assistant")
    return [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]


# the bundled domain's follow-up entities (domains/bundled/domain.toml)
resolve_followup = FollowupResolver(load_config(None).domain.entities).resolve


def test_followup_swaps_the_entity():
    history = chat("市场部的职责有哪些？", "……")
    assert resolve_followup("那销售部呢?", history) == "销售部的职责有哪些？"
    assert resolve_followup("那銷售部呢？", history) == "销售部的职责有哪些？"


def test_followup_points_to_a_numbered_point():
    history = chat("市场部经理的职责有哪些？", MANAGER_ANSWER)
    assert resolve_followup("第二点具体说说", history) == "制定营销策略和营销计划,拟订并监督执行市场规划与预算;"
    assert resolve_followup("第3条呢", history) == "协调部门内部与其他部门之间的合作关系;"
    # a point the answer does not have is not invented
    assert resolve_followup("第九点具体说说", history) == "第九点具体说说"


def test_followup_pronoun_takes_both_entities():
    history = chat("市场部和销售部为什么会发生冲突？", "……")
    assert resolve_followup("它们的考核有什么不同", history) == "市场部和销售部的考核有什么不同"


def test_followup_accepts_question_answer_pairs():
    history = [{"question": "市场部经理的职责有哪些？", "answer": MANAGER_ANSWER}]
    assert resolve_followup("第一点具体说说", history) == "全面计划、安排、管理市场部工作;"


@pytest.mark.parametrize(
    ("previous", "question", "resolved"),
    [
        # no entity listed: the previous question's noun with the same head character is swapped
        ("病假须提前几天申请？", "那年假呢？", "年假须提前几天申请？"),
        ("住宿费可以报销多少？", "那交通费呢？", "交通费可以报销多少？"),
        # ...and with none of the same kind, the new one is added to the previous question
        ("病假须提前几天申请？", "那加班呢？", "加班 病假须提前几天申请？"),
        # "它" refers to the previous question's noun phrase when it has exactly one
        ("病假须提前几天申请？", "它需要谁审批？", "病假需要谁审批？"),
        ("员工请病假要走什么流程？", "它需要谁审批？", "它需要谁审批？"),  # three: ambiguous, left
    ],
)
def test_followup_without_entities_uses_noun_phrases(segmenter, previous, question, resolved):
    resolver = FollowupResolver((), segmenter.tokenizer)
    assert resolver.resolve(question, chat(previous, "……")) == resolved


@pytest.mark.parametrize(
    "question", ["销售管理和营销管理的区别是什么？", "营销总部有哪三大职能？"]
)
def test_standalone_questions_are_left_alone(question):
    history = chat("市场部和销售部为什么会发生冲突？", MANAGER_ANSWER)
    assert resolve_followup(question, history) == question
    assert resolve_followup("那销售部呢?", []) == "那销售部呢?"


# -- real answers (default model, bundled corpus) --------------------------------------------------
CHECKED_QUESTIONS = [
    "市场部经理的职责有哪些？",
    "市场部和销售部为什么会发生冲突？",
    "怎样让市场部和销售部更好地配合？",
    "銷售管理與營銷管理有什麼區別？",
    "营销总部有哪三大职能？",
    "市场部要销售部日常提供哪些资料？",
    "市场部 销售部 管理层面 整合措施",
    "市场部跟销售部老吵架咋整?",
]


@pytest.fixture(scope="module")
def texts(real_service):
    return {s: d.text for s, d in real_service.index.documents.items()}


@pytest.mark.slow
@pytest.mark.parametrize("question", CHECKED_QUESTIONS)
def test_real_answers_cite_exactly(real_service, texts, question):
    a = real_service.ask(question).to_dict()
    assert a["answered"], a["answer"]
    assert a["source_kind"] == "documents" and a["citations"]
    check_citations(a, texts)
    assert json.loads(json.dumps(a, ensure_ascii=False)) == a


def manager_items() -> list[str]:
    block = DOC_000[DOC_000.index("(一)市场部经理的职责") : DOC_000.index("(二)市场部经理助理的职责")]
    items = re.findall(r"^(\d)\)(.+)$", block, re.M)
    assert [n for n, _ in items] == [str(i) for i in range(1, 10)]
    return [text.rstrip("。;；") for _, text in items]


@pytest.mark.slow
def test_real_list_question_gets_the_whole_list_in_order(real_service):
    a = real_service.ask("市场部经理的职责有哪些？").to_dict()
    items = manager_items()
    positions = [a["answer"].find(item) for item in items]
    assert -1 not in positions, a["answer"]
    assert positions == sorted(positions)
    quotes = "\n".join(c["quote"] for c in a["citations"])
    assert all(item in quotes for item in items)
    assert all(c["source"].startswith("000") for c in a["citations"])


@pytest.mark.slow
@pytest.mark.parametrize(("question", "parts"), [
    # an announcing lead line, then an "一是…;二是…;三是…" enumeration over two lines
    ("營銷部門和銷售部門衝突過大時,總經理有哪三種選擇?", ["一是將營銷部門重新納入銷售經理", "二是由公司的一名常務副總經理", "三是將銷售部門納入營銷經理"]),
    # an item that announces a sub-list ("…主要是两项:")
    ("销售部的费用管理工作主要是哪两项?", ["一是会同财务部门做好销售体系的费用预算", "二是会同一线销售队伍及时对客户应付款项进行核销"]),
    # an announcing line followed by prose, not by a list
    ("营销战略顾问 解决哪些问题", ["細分和選擇目標市場、定位、品牌"]),
    # "需要把握四个原则:●业务不重叠。…" with explanations under each bullet, over two chunks
    ("雙軌制管理 四個原則", ["●业务不重叠。", "●辐射一个基调。", "●共同参与方式。", "●在进程上契合。"]),
])
def test_real_announced_parts_are_answered_whole(real_service, texts, question, parts):
    a = real_service.ask(question).to_dict()
    check_citations(a, texts)
    quotes = "\n".join(c["quote"] for c in a["citations"])
    for part in parts:
        assert part in quotes, a["answer"]
        assert to_simplified(part.lstrip("●"))[:10] in to_simplified(a["answer"])  # shown without its marker


@pytest.mark.slow
def test_real_announcing_line_is_an_intro_not_a_point(real_service, texts):
    """"需要把握四个原则:" introduces the principles: the points are the four principles, so a
    follow-up's "第二点" is the second principle."""
    a = real_service.ask("雙軌制管理 四個原則").to_dict()
    check_citations(a, texts)
    lines = a["answer"].splitlines()
    assert lines[1].startswith("具体在建设双轨制管理系统时,需要把握四个原则:") and re.search(r"\[\d+\]$", lines[1])
    points = [ln for ln in lines if ln.startswith("- ")]
    assert [p[2:8] for p in points] == ["业务不重叠。", "辐射一个基调", "共同参与方式", "在进程上契合"]
    history = [{"role": "user", "content": "雙軌制管理 四個原則"}, {"role": "assistant", "content": a["answer"]}]
    follow = real_service.ask("第二点具体说说", history=history).to_dict()
    assert "辐射一个基调" in follow["resolved_question"]


@pytest.mark.slow
def test_real_question_in_an_interview_is_answered_by_what_follows_it(real_service, texts):
    # 001 has "请问:两部门沟通协作不力在实践中有哪些表现呢?宋辉:我认为表现为以下三个方面:1.信息沟通方面。…"
    a = real_service.ask("两个部门配合不到位,在实际工作里会表现成什么样?").to_dict()
    check_citations(a, texts)
    points = [line for line in a["answer"].splitlines() if line.startswith("- ")]
    titles = ["信息沟通方面。", "方案制定方面。", "销售执行方面。"]
    found = [next((i for i, p in enumerate(points) if t in p), -1) for t in titles]
    assert -1 not in found and found == sorted(found), a["answer"]
    # a title-only item brings the sentence that explains it
    assert "销售部是企业接触市场的最前沿部门" in points[found[0]]


@pytest.mark.slow
def test_real_list_split_over_chunks_is_given_from_its_first_item(real_service, texts):
    # 003: "…主要包括以下五个方面的工作" ends one chunk; items 1-3 and 4-5 lie in the next two,
    # with a nested "一是…二是…" under item 4
    a = real_service.ask("销售部对内部业务要抓哪几块工作?").to_dict()
    check_citations(a, texts)
    heads = ["营销目标的制定", "营销计划的制定", "业务流程处理", "预算与费用管理", "一线人员的管理"]
    positions = [a["answer"].find(h) for h in heads]
    assert -1 not in positions and positions == sorted(positions), a["answer"]


@pytest.mark.slow
@pytest.mark.parametrize("question", ["市场部和销售部为什么会发生冲突？", "市场部和销售部两个部门老是互相看不顺眼,背后都有哪些原因?"])
def test_real_why_question_cites_the_quarrel_causes(real_service, question):
    # the colloquial one once drew a general 002 passage first ("…矛盾,根本原因在于高层…")
    a = real_service.ask(question).to_dict()
    causes = [c for c in a["citations"] if c["section"].endswith("出现争吵原因")]
    assert causes, a["citations"]
    quotes = "".join(c["quote"] for c in causes)
    for cause in ("市场发展阶段因素", "没有明确的职权划分", "考核机制因素"):
        assert cause in quotes


@pytest.mark.slow
def test_real_traditional_question_keeps_quotes_in_document_script(real_service, texts):
    a = real_service.ask("市場部經理的職責有哪些？").to_dict()
    lead = lead_line(a)
    assert script_of(lead) == "traditional" and to_simplified(lead) != lead
    check_citations(a, texts)
    for c in a["citations"]:  # cited from the Simplified document, quoted as written there
        assert c["source"].startswith("000") and c["quote"] == to_simplified(c["quote"])


@pytest.mark.slow
def test_real_simplified_question_quotes_traditional_document(real_service, texts):
    a = real_service.ask("销售管理和营销管理有什么区别？").to_dict()
    assert a["answered"]
    assert script_of(lead_line(a)) == "simplified"
    from_004 = [c for c in a["citations"] if c["source"].startswith("004")]
    assert from_004
    assert any(script_of(c["quote"]) == "traditional" for c in from_004)
    check_citations(a, texts)


@pytest.mark.slow
@pytest.mark.parametrize("question", ["个人所得税怎么算", "iPhone 15 多少钱"])
def test_real_out_of_scope_is_refused_with_related_questions(real_service, question):
    a = real_service.ask(question).to_dict()
    assert a["answered"] is False
    assert a["citations"] == [] and a["source_kind"] == "none"
    assert a["answer"].startswith(NOT_COVERED)
    assert 1 <= len(a["related"]) <= 3
    for related in a["related"]:  # what it suggests, it can answer
        assert real_service.ask(related).answered, related


@pytest.mark.slow
def test_real_followups_with_history(real_service, texts):
    first = real_service.ask("市场部经理的职责有哪些？").to_dict()
    history = chat(first["question"], first["answer"])

    assistant = real_service.ask("那市场部经理助理呢？", history=history).to_dict()
    assert "市场部经理助理" in assistant["resolved_question"]
    assert assistant["answered"]
    check_citations(assistant, texts)
    assert any("(二)市场部经理助理的职责" in c["section"] for c in assistant["citations"])

    second = real_service.ask("第二点具体说说", history=history).to_dict()
    assert second["resolved_question"].startswith("制定营销策略和营销计划")
    check_citations(second, texts)
    assert any("制定营销策略和营销计划" in c["quote"] for c in second["citations"])

    conflict = real_service.ask("市场部和销售部为什么会发生冲突？").to_dict()
    both = real_service.ask("它们的考核有什么不同",
                            history=chat(conflict["question"], conflict["answer"])).to_dict()  # fmt: skip
    assert both["resolved_question"] == "市场部和销售部的考核有什么不同"
    assert both["answered"]
    check_citations(both, texts)
    assert any("考核" in c["quote"] for c in both["citations"])
