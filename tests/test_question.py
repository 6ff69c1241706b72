"""Question knowledge (kb/question.py): shapes, intents, value questions and question words come
from one vocabulary per concept, so a word of it reaches every consumer alike (the answer's
shape and the FAQ intent, the value guard and the FAQ's quantity/time intents, retrieval's
stripping and FAQ matching's), in Simplified and Traditional script."""

from __future__ import annotations

import re

import pytest

from ingest.normalize import normalize, to_traditional
from kb.faq.match import Vocabulary
from kb.query import QueryProcessor
from kb.question import (
    DIFFERENCE,
    HOW,
    HOW_MUCH,
    INTENT_WORDS,
    QUESTION_WORDS,
    VALUE_QUESTION,
    WHEN,
    WHY,
    contrast_sides,
    intent_named_by,
    intents_of,
    question_shape,
)

_PLAIN = re.compile(r"[\u4e00-\u9fff]+")


def words(vocabulary: tuple[str, ...]) -> list[str]:
    """The fragments of a vocabulary that are plain words (not patterns)."""
    return [w for w in vocabulary if _PLAIN.fullmatch(w)]


def both_scripts(text: str) -> list[str]:
    return list(dict.fromkeys([text, to_traditional(text)]))


@pytest.mark.parametrize(("question", "shape"), [
    ("市场部经理的职责有哪些？", "list"),
    ("营销部门和销售部门冲突过大时,总经理有哪三种选择?", "list"),
    ("市场部和销售部为什么会发生冲突？", "why"),
    ("市场部跟销售部老吵架咋整?", "how"),
    ("有什么办法让两个部门少吵架?", "how"),
    ("日常操作上能做点什么?", "how"),
    ("带团队平时说话上有啥讲究?", "how"),
    ("销售管理和营销管理有什么区别？", "difference"),
    ("营销和销售不就是一回事吗?", "difference"),
    ("什么是双轨制管理?", "definition"),
    ("艾奇公司设立市场部后出现了什么矛盾?", "fact"),
    # Traditional script reads the same vocabulary
    ("市場部經理的職責有哪些？", "list"),
    ("市場部和銷售部為什麼會發生衝突？", "why"),
    ("市場部跟銷售部老吵架怎麼辦?", "how"),
    ("銷售管理與營銷管理有什麼區別？", "difference"),
    ("什麼是雙軌制管理?", "definition"),
])
def test_question_shapes(question, shape):
    assert question_shape(question) == shape


@pytest.mark.parametrize(("question", "sides"), [
    ("销售管理和营销管理有什么区别？", ("销售管理", "营销管理")),
    ("营销和销售不就是一回事吗?", ("营销", "销售")),
    ("市场部 销售部 区别", ("市场部", "销售部")),
    ("銷售管理與營銷管理有什麼區別？", ("销售管理", "营销管理")),
])
def test_contrast_sides(question, sides):
    assert contrast_sides(question) == sides


@pytest.mark.parametrize(("vocabulary", "name"), [(WHY, "why"), (HOW, "how"), (DIFFERENCE, "difference")])
def test_a_shared_word_gives_the_same_shape_and_intent(vocabulary, name):
    for word in words(vocabulary):
        for question in both_scripts(f"这个问题{word}？"):
            assert question_shape(question) == name, question
            assert intents_of(question) == {name}, question


@pytest.mark.parametrize(("vocabulary", "intent"), [(HOW_MUCH, "quantity"), (WHEN, "time")])
def test_a_value_word_is_a_value_question_and_an_intent(vocabulary, intent):
    for word in [*words(vocabulary), "哪天", "哪一天"] if intent == "time" else words(vocabulary):
        for question in both_scripts(f"试用期{word}？"):
            assert VALUE_QUESTION.search(normalize(question)), question
            assert intent in intents_of(question), question


@pytest.mark.parametrize(("question", "value"), [
    ("新员工试用期多长?", True),
    ("新員工試用期多長?", True),
    ("市场部的年终奖一般发几个月?", True),
    ("長江傢俱的官方網站網址是什麼?", True),
    ("劳动合同法实施条例几时施行?", True),
    ("市场部和销售部差在哪?", False),  # how they differ, not where
    ("市场部经理的职责有哪些？", False),
])
def test_value_questions(question, value):
    assert bool(VALUE_QUESTION.search(normalize(question))) is value


def test_words_that_name_an_intent_in_the_glossary():
    assert [intent_named_by(w) for w in ("原因", "办法", "区别", "为什么", "职责", "市场部")] == [
        "why", "how", "difference", "why", None, None]


def test_intent_words_are_removed_whole():
    # longest first: 怎么样才 and 咋整 go whole, not 怎么 and 咋 leaving 样才 and 整
    assert INTENT_WORDS.sub(" ", "怎么样才能少吵架").split() == ["能少吵架"]
    assert INTENT_WORDS.sub(" ", "老吵架咋整").split() == ["老吵架"]
    assert INTENT_WORDS.sub(" ", "冲突怎么会发生").split() == ["冲突", "发生"]


@pytest.fixture(scope="module")
def vocabulary(segmenter):
    passages = ["市场部负责品牌推广。", "销售部负责回款。", "财务部负责报销。"]
    return Vocabulary(segmenter, [("原因", "因素")], [], passages)


def test_question_words_are_stripped_for_retrieval_and_ignored_by_faq_matching(vocabulary):
    queries = QueryProcessor(None)
    for word in QUESTION_WORDS:
        for question in both_scripts(f"品牌推广{word}"):
            assert queries.process(question).lexical == "品牌推广", question
            assert vocabulary.terms(question).hard == {"品牌推广"}, question  # never a topic word
    # "请" opens a question, but inside a word it is content
    assert queries.process("请问品牌推广是什么").lexical == "品牌推广"
    assert queries.process("申请品牌推广").lexical == "申请品牌推广"


def test_a_glossary_group_headed_by_an_intent_word_is_an_intent(vocabulary):
    assert vocabulary.terms("品牌推广的因素").intents == {"why"}
    assert vocabulary.terms("品牌推广的起因").intents == {"why"}
