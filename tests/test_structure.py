"""Document structure over a real (hashing-embedder) index: lists followed across chunks and past
their explanations, where a list starts, what an announcing line or a question in a document
brings, and the sentences a chosen sentence needs around it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import hashing_config

from kb.answer.structure import DocumentStructure
from kb.config import load_config
from kb.service import KnowledgeService

# long enough that the chunker (max 120 characters here) splits the list over several chunks
DOC = (
    "部门协作指南\n"
    "对内业务的管理工作主要包括以下四个方面的工作\n"
    "1.营销目标的制定根据企业发展要求、市场动态、历史销售数据等,综合确定企业年度、季度、月度的营销目标。\n"
    "目标制定的科学合理是检验销售部工作有效性的一个重要指标。\n"
    "2.营销计划的制定营销目标一般自上而下分解下达,而营销计划则一般自下而上上报,由销售部汇总。\n"
    "3.业务流程处理主要是指对一线销售签回的销售订单与合同,由销售部负责做好相关的订单评估核算。\n"
    "4.预算与费用管理工作销售部的费用管理工作主要是两项:一是会同财务部门做好费用预算;二是及时对客户应付款项进行核销。\n"
    "请问:两个部门沟通不力有哪些表现呢?\n"
    "信息沟通不畅,方案制订脱节。\n"
    "因此两个部门互相指责。\n"
    "其结果是资源浪费。\n"
)


@pytest.fixture(scope="module")
def structure(tmp_path_factory) -> DocumentStructure:
    tmp = tmp_path_factory.mktemp("structure")
    corpus = tmp / "corpus"
    corpus.mkdir()
    (corpus / "guide.txt").write_text(DOC, encoding="utf-8")
    cfg = hashing_config(tmp / "data", corpus, chunking__max_chars=120, chunking__list_max_chars=120)
    return KnowledgeService(cfg, progress=False).answerer.structure


def unit_of(structure: DocumentStructure, prefix: str) -> int:
    idx = structure.index
    return next(i for i in range(len(idx.units)) if idx.unit_text(i).startswith(prefix))


def texts(structure: DocumentStructure, units: list[int]) -> list[str]:
    return [structure.index.unit_text(u)[:6] for u in units]


def service_over(tmp_path: Path, name: str, text: str, **overrides) -> KnowledgeService:
    """A hashing-embedder service over a one-document corpus."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / name).write_text(text, encoding="utf-8")
    return KnowledgeService(hashing_config(tmp_path / "data", corpus, **overrides), progress=False)


_ARTICLE_20 = "第二十条 额外支付的一个月工资，按照该劳动者上一个月的工资标准确定。\n\n"
_ARTICLE_26 = ("第二十六条 有下列情形之一的，用人单位应当提前三十日通知劳动者本人：\n"
               "（一）劳动者患病，医疗期满后不能从事原工作的；\n（二）劳动者不能胜任工作的。\n\n")
_ARTICLE_30 = "第三十条 劳动者可以随时通知用人单位解除劳动合同。\n"


def articles_over(tmp_path: Path, text: str) -> tuple[KnowledgeService, dict[str, int], list[int]]:
    """A service over one statute of short articles, one chunk each: the chunk row of each
    article by its number, and the two items of 第二十六条."""
    svc = service_over(tmp_path, "条例.txt", text, chunking__max_chars=60)
    idx = svc.index
    rows = {}
    for r, c in enumerate(idx.chunks):
        number = idx.documents[c.source].text[c.start:c.end].split(" ", 1)[0]
        rows.setdefault(number, r)
    items = [u for u in idx.units_of_chunk[rows["第二十六条"]] if idx.units[u].kind == "item"]
    assert len(items) == 2
    return svc, rows, items


def test_the_list_is_split_over_chunks(structure):
    rows = {structure.index.units[unit_of(structure, p)].chunk for p in ("1.营销目标", "4.预算")}
    assert len(rows) == 2  # otherwise the tests below prove nothing


def test_list_followed_across_chunks_past_explanations_and_nested_items(structure):
    first = structure.index.units[unit_of(structure, "1.营销目标")]
    items = structure.list_units(first.list_id, first.chunk)
    assert texts(structure, items) == ["1.营销目标", "2.营销计划", "3.业务流程", "4.预算与费"]


def test_a_list_found_midway_starts_at_its_first_item(structure):
    last = structure.index.units[unit_of(structure, "4.预算")]
    row, list_id = structure.list_start(last.chunk, last.list_id)
    assert texts(structure, structure.list_units(list_id, row))[0] == "1.营销目标"


def test_an_announcing_line_brings_the_list(structure):
    announcer = unit_of(structure, "对内业务的管理工作")
    assert texts(structure, structure.following(announcer))[:2] == ["1.营销目标", "2.营销计划"]


def test_an_item_announcing_a_sub_list_brings_it(structure):
    item = unit_of(structure, "4.预算")
    assert texts(structure, structure.following(item)) == ["一是会同财务", "二是及时对客"]


def test_a_question_in_the_document_is_answered_by_what_follows(structure):
    question = unit_of(structure, "请问")
    chosen, _ = structure.announced({question: 1.0})
    assert texts(structure, chosen) == ["信息沟通不畅", "因此两个部门", "其结果是资源"]


def test_sentences_bring_what_they_refer_to_and_what_goes_on(structure):
    because = unit_of(structure, "因此两个部门")
    assert texts(structure, structure.context([because], structured=True)) == [
        "信息沟通不畅", "因此两个部门", "其结果是资源",  # 因此 refers back; 其… goes on
    ]


def test_the_next_article_of_a_statute_does_not_go_on_with_a_sentence(tmp_path: Path):
    """"第三种做法…" goes on with the sentence before it; "第二十一条 …" is the next article,
    which an answer citing the one before does not need."""
    s = service_over(tmp_path, "条例.txt",
                     "第二十条 用人单位选择额外支付劳动者一个月工资解除劳动合同的，按照该劳动者上一个月的工资标准确定。\n"
                     "第二十一条 劳动者达到法定退休年龄的，劳动合同终止。\n"
                     "企业通常有三种做法。第三种做法最常用。\n").answerer.structure
    article = unit_of(s, "第二十条")
    assert texts(s, s.context([article], structured=True)) == ["第二十条 用"]
    first = unit_of(s, "企业通常有")
    assert texts(s, s.context([first], structured=True)) == ["企业通常有三", "第三种做法最"]


def test_a_title_only_item_brings_its_explanation(tmp_path: Path):
    s = service_over(tmp_path, "a.txt", "表现为以下两个方面:\n1.信息沟通方面。\n销售部是接触市场的最前沿部门。\n"
                     "2.方案制定方面。\n方案只由市场部制定。\n").answerer.structure
    item = unit_of(s, "1.信息沟通")
    assert s.title_only(item)
    assert texts(s, s.with_bodies([item])) == ["1.信息沟通", "销售部是接触"]


NESTED = (
    "# 过程管理\n\n## 及时反馈\n\n"
    "1. **反馈原则**\n   - 及时性：问题发现即反馈\n   - 具体性：针对具体行为和结果\n   - 建设性：着眼解决方案\n"
    "2. **反馈方式**\n   - 一对一谈话\n   - 书面总结报告\n"
    "3. **反馈技巧**\n   - 注重语气和态度\n   - 强调改进方向\n\n"
    "## 结果评估\n\n评估要客观，以数据为准。\n"
)


@pytest.fixture(scope="module")
def nested(tmp_path_factory) -> KnowledgeService:
    """A Markdown guide with lists nested under labelled items, indexed with the real model
    (a few seconds: twenty short texts)."""
    tmp = tmp_path_factory.mktemp("nested")
    corpus = tmp / "corpus"
    corpus.mkdir()
    (corpus / "guide.md").write_text(NESTED, encoding="utf-8")
    cfg = load_config(None, data_dir=tmp / "data", corpus_dir=corpus, domain_dir="")
    return KnowledgeService(cfg, progress=False)


@pytest.mark.slow
def test_a_nested_list_is_named_by_the_item_it_hangs_under(nested):
    s = nested.answerer.structure
    label, first = unit_of(s, "1. **反馈原则**"), unit_of(s, "- 及时性")
    assert s.parent_item(first) == label and s.nested_under(unit_of(s, "- 建设性")) == label
    assert s.parent_item(label) is None
    assert s.above(s.index.units[first].chunk, first) == [label]
    assert s.list_topic(s.index.units[first].chunk, first) == "反馈原则"
    assert texts(s, s.sublist(label)) == ["- 及时性：", "- 具体性：", "- 建设性："]
    # a title over a nested list brings its items
    assert texts(s, s.with_bodies([label, unit_of(s, "2. **反馈方式**")])) == [
        "1. **反", "- 及时性：", "- 具体性：", "- 建设性：", "2. **反", "- 一对一谈", "- 书面总结"]


@pytest.mark.slow
def test_a_question_naming_a_nested_list_gets_its_items_and_they_slice(nested):
    a = nested.ask("反馈原则有哪几条？").to_dict()
    assert a["answered"], a["answer"]
    lines = a["answer"].splitlines()
    assert "反馈原则" in lines[0]
    assert [ln.split(" [")[0] for ln in lines[1:4]] == [
        "- 及时性：问题发现即反馈", "- 具体性：针对具体行为和结果", "- 建设性：着眼解决方案"]
    assert not any("一对一谈话" in ln for ln in lines)
    text = nested.index.documents["guide.md"].text
    for c in a["citations"]:
        assert text[c["start"] : c["end"]] == c["quote"]


def test_the_best_passage_stands_beside_a_list_taken_from_another(tmp_path: Path):
    """A whole list chosen from a lower passage still gets the best passage's best sentence
    (retrieval trusts that passage most), however it scores; a next passage scoring beyond the
    margin adds nothing, and a list from the best passage itself is left alone."""
    svc, rows, items = articles_over(tmp_path, _ARTICLE_20 + _ARTICLE_26 + _ARTICLE_30)
    answerer, idx = svc.answerer, svc.index
    top, listed, other = rows["第二十条"], rows["第二十六条"], rows["第三十条"]
    scored = {u: 0.5 for u in idx.units_of_chunk[listed]}
    scored |= {u: 0.5 - 2 * answerer.settings.extra_margin for r in (top, other) for u in idx.units_of_chunk[r]}
    got = answerer._ensure_top_passage(items, scored, [top, listed, other])
    assert [idx.units[u].chunk for u in got] == [top, listed, listed]
    assert idx.unit_text(got[0]).startswith("第二十条")
    assert answerer._ensure_top_passage(items, scored, [listed, top, other]) == items


def test_a_further_passage_follows_a_whole_list_under_a_line_of_its_own(tmp_path: Path):
    """A further passage whose best sentence scores within the list margin of the list's best
    item adds it, one beyond the margin does not; the answer shows it after the list under
    ALSO_SAID, and the lead counts only the list's items."""
    from kb.answer.extractive import ALSO_SAID

    svc, rows, items = articles_over(tmp_path, _ARTICLE_26 + _ARTICLE_30 + "\n第四十条 用人单位应当按时足额支付工资。\n")
    answerer, idx = svc.answerer, svc.index
    listed, near, far = rows["第二十六条"], rows["第三十条"], rows["第四十条"]
    scored = {u: 0.9 for u in idx.units_of_chunk[listed]}
    scored |= {u: 0.87 for u in idx.units_of_chunk[near]} | {u: 0.8 for u in idx.units_of_chunk[far]}
    got = answerer._ensure_top_passage(items, scored, [listed, near, far], margin=0.05)
    assert got[:2] == items and [idx.units[u].chunk for u in got[2:]] == [near]

    answer, citations = answerer._compose(got, "list", "解除情形", "simplified", scored, [], extras=set(got[2:]))
    lines = answer.splitlines()
    assert lines[0] == "关于“解除情形”，资料中列出以下2点："
    assert lines[1].startswith("- 劳动者患病") and lines[2].startswith("- 劳动者不能胜任")  # markers stripped
    assert lines[3] == ALSO_SAID
    assert lines[4].startswith("- 劳动者可以随时通知") and lines[4].endswith(f"[{len(citations)}]")
    text = idx.documents["条例.txt"].text
    assert all(text[c.start:c.end] == c.quote for c in citations)


def test_a_sentence_of_a_short_article_brings_its_other_paragraphs(tmp_path: Path):
    """A chosen paragraph (款) of a short statute article brings the article's other paragraphs
    (the condition and its exception); an article with (一)(二) items or one too long to cite
    whole is left as chosen."""
    from kb.answer.structure import ARTICLE_MAX_CHARS

    long_tail = "具体办法由国务院规定。" * (ARTICLE_MAX_CHARS // 10)
    svc = service_over(tmp_path, "保险法.txt",
                       "第十六条 参加基本养老保险的个人，累计缴费满十五年的，按月领取基本养老金。\n"
                       "累计缴费不足十五年的，可以缴费至满十五年。\n\n"
                       "第十七条 有下列情形之一的，可以领取补助：\n（一）因病死亡的；\n（二）非因工死亡的。\n\n"
                       f"第十八条 国家建立基本养老金正常调整机制。\n{long_tail}\n")
    s, idx = svc.answerer.structure, svc.index

    def unit(prefix: str) -> int:
        return next(i for i in range(len(idx.units)) if idx.unit_text(i).startswith(prefix))

    second = unit("累计缴费不足十五年")
    got = s.whole_articles([second])
    assert sorted(idx.unit_text(u) for u in got) == sorted(
        ["第十六条 参加基本养老保险的个人，累计缴费满十五年的，按月领取基本养老金。", "累计缴费不足十五年的，可以缴费至满十五年。"])
    lead = unit("第十七条")
    assert s.whole_articles([lead]) == [lead]  # items: the list rules decide
    adjust = unit("第十八条")
    assert s.whole_articles([adjust]) == [adjust]  # too long to cite whole
