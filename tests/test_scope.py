"""The value-question guard: a question asking for a value of something the corpus never names is
refused even when the rest of it matches real passages; questions about what the corpus does
name, and questions that do not ask for a value, are left to the evidence threshold."""

from __future__ import annotations

import pytest

from kb.answer.scope import ScopeGuard

CORPUS = [
    "市场部负责品牌推广和广告投放，销售部负责回款与客户关系。",
    "工会费用由企业按工资总额的百分之二拨缴。",
    "艾奇公司的销售部经理每月召开一次协调会。",
    "市場部人員的基本工資高於銷售人員。",  # Traditional
]


def vocabulary(segmenter, corpus: list[str]) -> tuple[set[str], set[str]]:
    """A corpus's words and runs of words (what ``KnowledgeIndex.words`` holds) and its BM25
    tokens (character pairs among them), as the guard is handed them."""
    words = set().union(*(segmenter.phrases(text) for text in corpus))
    return words, {t for text in corpus for t in segmenter.tokens(text)}


@pytest.fixture(scope="module")
def guard(segmenter):
    # what an index over these texts holds: its words and runs of words (words.txt), and the
    # BM25 vocabulary's character pairs
    words, bigrams = vocabulary(segmenter, CORPUS)
    return ScopeGuard(segmenter.tokenizer, words, known_terms=["考核", "KPI"], bigrams=bigrams)


@pytest.mark.parametrize(("question", "missing"), [
    ("艾奇公司的股价是多少?", ["股价"]),
    ("市场部的年终奖一般发几个月?", ["年终奖"]),
    ("長江傢俱的官方網站網址是什麼?", ["长江", "家具", "官方网站", "网址"]),  # Traditional, normalised first
    ("怎么配置公司VPN?", ["vpn"]),  # a product name the corpus never uses, whatever is asked
    ("新员工试用期多长?", ["试用期"]),  # how long ("多长" itself is not a missing subject)
])
def test_value_questions_about_unknown_things_are_unanswerable(guard, question, missing):
    assert set(missing) <= set(guard.unanswerable(question))


@pytest.mark.parametrize("question", [
    "销售部经理多久开一次协调会?",  # asks for a value, of things the corpus names
    "市场部人员的基本工资是多少?",  # 工资 is in the Traditional document as 工資
    "市场部的KPI怎么定?",  # a glossary term
    "市场部和销售部老吵架咋整?",  # colloquial nouns missing, but not a value question
    "市场部的努力和销售部的努力在见效快慢上差在哪?",  # "差在哪": how they differ, not where
    "销售部经理开协调会要做到哪几点?",  # "哪几点": which points, not what time (管理者 need not be here)
    "销售部经理最少得给我发多少工资?",  # 给我发: jieba's mis-cut "noun", no subject
    "销售部经理的工资最长能领几个月?",  # 能领: a word jieba made up around a modal verb
    "销售部经理的工资能领多长时间?",  # 多长时间 asks, it names nothing
])
def test_answerable_questions_pass(guard, question):
    assert guard.unanswerable(question) == []


@pytest.mark.slow
@pytest.mark.parametrize("question", [
    "艾奇软件公司现在的股价是多少?",
    "市场部的年终奖一般发几个月工资?",
    "怎么配置公司VPN?",
])
def test_real_value_questions_about_unknown_things_are_refused(real_service, question):
    a = real_service.ask(question).to_dict()
    assert a["answered"] is False and a["citations"] == [] and a["related"], a["answer"]


def test_a_noun_inside_a_known_term_is_that_term(segmenter):
    corpus = CORPUS + ["女职工生育享受不少于九十天的产假。"]
    words, bigrams = vocabulary(segmenter, corpus)
    bare = ScopeGuard(segmenter.tokenizer, words, bigrams=bigrams)
    assert "孩子" in bare.unanswerable("女职工生孩子有多少天产假?")  # jieba: 生|孩子
    known = ScopeGuard(segmenter.tokenizer, words, known_terms=["生育", "生孩子"], bigrams=bigrams)
    assert known.unanswerable("女职工生孩子有多少天产假?") == []  # 孩子 is 生孩子's, a synonym of 生育


def test_a_one_character_noun_and_the_noun_after_it_are_one_subject(segmenter):
    corpus = CORPUS + ["女职工生育享受不少于九十天的产假。"]
    words, bigrams = vocabulary(segmenter, corpus)
    guard = ScopeGuard(segmenter.tokenizer, words, bigrams=bigrams)
    assert guard.unanswerable("女职工的陪产假能休几天?") == ["陪产假"]  # jieba: 陪|产假
    assert guard.unanswerable("女职工的产假能休几天?") == []


@pytest.mark.parametrize(("question", "why"), [
    ("帮我写首打油诗夸夸我们销售部", "帮我写"),
    ("写首打油诗夸夸我们销售部", "写首"),
    ("今天心情不太好,陪我聊聊天", "陪我聊"),
    ("講個笑話來聽聽", "讲个笑话"),  # normalised first
    ("帮我写一封辞职信吧，语气委婉一点", "帮我写"),  # a writing task
])
def test_chit_chat_and_tasks_are_no_questions_about_the_documents(guard, question, why):
    assert why in guard.unanswerable(question)


@pytest.mark.parametrize(("question", "missing"), [
    ("《营销管理》这本书讲了什么?", ["《营销管理》"]),
    ("《艾奇公司销售部协调会纪要》在哪看?", ["《艾奇公司销售部协调会纪要》"]),
])
def test_a_title_the_corpus_never_has_is_unanswerable(guard, question, missing):
    assert set(missing) <= set(guard.unanswerable(question))


@pytest.mark.parametrize("question", [
    "《市场部》的品牌推广是什么?",  # a word of the corpus in title marks
    "《艾奇公司的销售部经理》每月开几次会?",  # every pair of consecutive words is in the corpus
])
def test_a_title_the_corpus_has_is_no_reason_to_refuse(guard, question):
    assert not [w for w in guard.unanswerable(question) if w.startswith("《")]


def test_words_are_matched_as_words_not_as_characters(guard):
    assert guard.in_corpus("工会") and guard.in_corpus("费用") and guard.in_corpus("工会费用")
    assert not guard.in_corpus("会费")  # its characters are in 工会费用 (工会|费用), the word is not
    assert "会费" in guard.unanswerable("工会会费每月交多少?")
    assert guard.unanswerable("工会费用按什么比例拨缴?") == []  # 比例: the attribute asked, not a subject


def test_presence_is_read_from_the_index_vocabulary(guard):
    assert guard.in_corpus("协调会") and guard.in_corpus("工资")  # a word; a bigram of the Traditional text
    assert not guard.in_corpus("股价") and not guard.in_corpus("vpn")
    # 推广 occurs but 广会 does not, so 推广会 cannot
    assert not guard.in_corpus("推广会")
    assert guard.in_corpus("kpi")  # a glossary term


@pytest.mark.parametrize(("question", "missing"), [
    ("华为的市场部和销售部是怎么分工的?", ["华为"]),  # jieba tags 华为 as a person's name (nr)
    ("字节跳动的市场部和销售部怎么分工?", ["字节跳动"]),  # jieba cuts it apart (字节|跳动)
    ("市场部用钉钉怎么审批广告投放?", ["钉钉"]),  # a platform, not an organisation
])
def test_listed_organisations_and_platforms_the_corpus_never_names(guard, question, missing):
    assert guard.unanswerable(question) == missing


def test_a_listed_name_the_corpus_does_use_is_answerable(segmenter):
    corpus = CORPUS + ["华为的市场部负责品牌，销售部负责回款。"]
    words, bigrams = vocabulary(segmenter, corpus)
    guard = ScopeGuard(segmenter.tokenizer, words, bigrams=bigrams)
    assert guard.unanswerable("华为的市场部和销售部是怎么分工的?") == []
    # and a list handed in replaces the shipped one
    mine = ScopeGuard(segmenter.tokenizer, words, bigrams=bigrams, organisations=["艾奇公司"])
    assert mine.unanswerable("字节跳动的市场部和销售部怎么分工?") == []


def test_another_countrys_or_provinces_rules_are_unanswerable(segmenter):
    corpus = CORPUS + ["工资依照本法和其他有关法的规定支付。广东的企业也应遵守。"]
    words, bigrams = vocabulary(segmenter, corpus)
    guard = ScopeGuard(segmenter.tokenizer, words, bigrams=bigrams)
    assert "法" in words  # a word of this corpus, and the stem of 法国: no mention of France
    assert guard.unanswerable("法国的劳动法是怎么规定工资的？") == ["法国"]
    assert guard.unanswerable("英国的劳动法怎么规定工资？") == ["英国"]
    assert guard.unanswerable("广东省的企业怎么支付工资？") == []  # 广东 is in the corpus


@pytest.mark.parametrize(("question", "evidence", "unaddressed"), [
    # a length asked in days is answered by days, not by another length
    ("年假到底能休几天？", "劳动者连续工作一年以上的，享受带薪年休假。", ["几天"]),
    ("仲裁要在几天内申请？", "应当自劳动争议发生之日起六十日内提出书面申请。", []),
    ("试用期最长多久？", "试用期最长不得超过六个月。", []),
    # a share asked as a number is answered by a number, not by "按比例"
    ("养老保险单位缴费是工资的百分之多少？", "用人单位应当按照国家规定的本单位职工工资总额的比例缴纳。", ["百分之多少"]),
    ("加班工资按百分之多少算？", "支付不低于工资的百分之一百五十的工资报酬。", []),
    ("工会经费按什么比例拨缴？", "按工资总额的比例拨缴。", []),  # what share, not how much
    # a sum of money is answered by an amount, not by the rule that money is paid
    ("公司内推成功一个人奖励多少钱？", "对推荐人才的员工给予物质奖励和公开表彰。", ["多少钱"]),
    ("那笔宣传经费的钱有多少？", "公司拨出专项经费用于沟通活动。", ["钱有多少"]),
    ("年终奖一般发多少钱？", "年终奖一般为两万元左右。", []),
    # a year is answered by a year; a time asked for as 多少…时间 by a length
    ("这个说法是哪一年提出的？", "德鲁克提出营销的目的是让推销成为多余。", ["哪一年"]),
    ("这个说法是哪一年提出的？", "德鲁克在1954年提出这一观点。", []),
    ("每天有多少哺乳时间？", "用人单位不得安排其延长工作时间和夜班劳动。", ["多少哺乳时间"]),
    ("每天有多少哺乳时间？", "每天安排一小时哺乳时间。", []),
    # a count in its own unit, a person who first said something, a future revision
    ("推销日记每天至少要写多少字？", "推销员每天要写推销日记。", ["多少字"]),
    ("推销日记每天至少要写多少字？", "推销日记每天不少于三百字。", []),
    ("这个说法最早是谁提出来的？", "这一说法强调市场部与销售部的协作。", ["最早是谁"]),
    ("这个说法最早是谁提出来的？", "管理学家德鲁克提出了这一说法。", []),
    ("劳动法下一次修订会在什么时候？", "劳动法规定了劳动者的权利。", ["下一次"]),
])
def test_a_value_must_be_given_in_the_terms_asked(guard, question, evidence, unaddressed):
    assert guard.unaddressed(question, evidence) == unaddressed


def test_a_modal_adverb_of_written_rules_is_no_subject(segmenter):
    """"方可" (jieba's dictionary tags it a noun) is not something the question asks about."""
    corpus = CORPUS + ["参加基本养老保险的个人，累计缴费满十五年的，按月领取基本养老金。"]
    words, bigrams = vocabulary(segmenter, corpus)
    guard = ScopeGuard(segmenter.tokenizer, words, bigrams=bigrams)
    assert guard.unanswerable("参加基本养老保险的人员需累计缴费多少年方可按月领取养老金？") == []


@pytest.mark.parametrize(("question", "evidence", "unaddressed"), [
    ("有没有现成的满意度调查问卷模板可以直接用？", "定期开展员工满意度调查，了解员工对办公环境的看法。", ["模板"]),
    ("有没有现成的满意度调查问卷模板可以直接用？", "附件一：员工满意度调查问卷模板。", []),
    ("跟下属一对一面谈，会议纪要用啥软件记比较方便？", "一对一面谈要提前准备议题，做好会谈记录。", ["啥软件"]),
    ("推荐一个适合员工自学的在线学习平台", "公司为员工提供内部培训和导师制度。", ["推荐一个适合员工自学的在线学习平台"]),
    ("艾奇软件公司的市场部为什么会陷入低谷？", "北京艾奇软件公司后来陷入低谷。", []),  # a name, not an ask
])
def test_a_ready_made_artifact_asked_for_must_be_named_by_the_passages(guard, question, evidence, unaddressed):
    assert guard.unaddressed(question, evidence) == unaddressed
