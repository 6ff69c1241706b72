"""What the knowledge base knows about questions, in one place.

A question is read for

- its *question words* (``QUESTION_WORDS``, ``POLITE_OPENING``): the fillers that make it a
  question (什么, 哪些, 怎么, 请问…), stripped before BM25 and before FAQ matching looks for
  its topic (``strip_question_words``);
- its *shape* (``question_shape``): the kind of answer it asks for, which decides how the
  extractive answerer picks and introduces the points (a whole list, causes, ways, both sides
  of a contrast, a definition, a fact);
- its *intent* (``intents_of``): why / how / difference / quantity / time / who, what an FAQ
  entry question must share with it to answer it;
- whether it asks for a *value* (``VALUE_QUESTION``: 多少, 几个月, 网址…), which the scope guard
  refuses when the value's subject occurs nowhere in the corpus;
- whether it asks for *several things* or for *the parts* of something (``LIST_CUE``,
  ``PARTS_CUE``), before an outline of sub-headings answers it;
- whether it is a *follow-up* (``FOLLOWUP_SWAP``, ``FOLLOWUP_POINT``, ``FOLLOWUP_PRONOUN``)
  that only makes sense with the previous turn.

Each concept has one vocabulary here, and every consumer imports it, so a word added here
changes all of them alike. Where consumers need different cuts of one concept, the words they
share are one tuple and each consumer's own words a second, named tuple beside it (``HOW`` for
both, ``HOW_SHAPE_ONLY`` for the answer's shape, ``HOW_INTENT_ONLY`` for FAQ intents): an FAQ
intent must be narrow (two questions match only with equal intents, and intent words are not
topic words), a shape may be broad (it only picks how to compose the answer).

Vocabularies are tuples of regular-expression fragments. Patterns read normalised text
(``ingest.normalize.normalize``: Simplified, half-width, lower case) unless noted. Nothing here
names what a particular corpus is about: domain words come from the domain folder
(``domains/README.md``).
"""

from __future__ import annotations

import re

from ingest.normalize import normalize

_LOOKAROUND = re.compile(r"\(\?<?[=!][^)]*\)|\\b|.\?")


def _width(fragment: str) -> int:
    """About how many characters ``fragment`` matches (lookarounds and optional characters
    left out): enough to put 怎么办 before 怎么(?!会)."""
    return len(_LOOKAROUND.sub("", fragment))


def either(*vocabularies: tuple[str, ...]) -> str:
    """One alternation of the fragments of ``vocabularies``, longest first: at a position where
    both 怎么办 and 怎么 match, a regex takes the first alternative, and removing question words
    must remove the whole word."""
    fragments = dict.fromkeys(f for v in vocabularies for f in v)
    return "|".join(sorted(fragments, key=_width, reverse=True))


# -- question words ----------------------------------------------------------------------------
# Question words and fillers new hires type, with no topic of their own: removed from the lexical
# (BM25) query and from a question before FAQ matching segments its topic words.
QUESTION_WORDS = (
    "为什么会", "为什么", "为啥", "为何", "是什么", "什么是", "什么", "啥是", "啥", "哪些", "哪个",
    "哪儿", "哪里", "怎么办", "怎么样", "怎么", "怎样", "咋整", "咋办", "咋", "如何", "是否",
    "能否", "可以吗", "吗", "呢", "吧", "一下", "到底", "究竟", "有没有", "多少",
)
QUESTION_WORDS_RE = re.compile(either(tuple(map(re.escape, QUESTION_WORDS))))
# "请" is a filler only where it opens the question ("请问…", "请介绍…"); inside a word it is
# content (请假, 申请, 申请问题) and must stay. Stripped from the retrieval query only: FAQ
# matching leaves it to ``GENERIC_WORDS``, which never count as topic words anyway.
POLITE_OPENING = r"(?<![\u4e00-\u9fff])请(?:问|(?=说|讲|介绍|列举|解释|告诉|简述|概括|分析|比较))"
_FILLERS = re.compile(POLITE_OPENING + "|" + QUESTION_WORDS_RE.pattern)


def strip_question_words(text: str) -> str:
    """``text`` (normalised) with its question words and polite opening replaced by spaces."""
    return _FILLERS.sub(" ", text)


# Words of a question that carry no topic, for FAQ matching: never *hard* terms, so two questions
# may differ in them freely (question words, fillers, light verbs, words of any workplace).
GENERIC_WORDS = frozenset(
    "有 没有 哪些 哪几 几个 几点 几种 几方面 什么 是 会 能 要 该 应该 应当 需要 可以 发生 产生 出现 存在 "
    "老 总 总是 老是 经常 常常 平时 平常 一般 通常 主要 具体 都 分别 包括 包含 涉及 内容 事情 东西 情况 "
    "做 干 搞 弄 负责 工作 呢 吗 啊 吧 请问 请 说说 讲讲 介绍 告诉 我 我们 你 你们 想 知道 了解 一下 "
    "之间 两个 部门 公司 企业 的 了 与 和 跟 同 及 以及 或 还是 些 个 一些 有何 何 何种 更 更好 更加 "
    "进一步 加强 承担 日常 每天 每日 平常".split()
)
# Ways of asking what someone is responsible for that a glossary lacks, folded into its concept
# (the first term) for FAQ matching only; they never reach retrieval.
PHRASINGS: tuple[tuple[str, ...], ...] = (
    ("职责", "岗位职责", "负责什么", "负责哪些", "负责些什么", "负责的事", "做什么", "做哪些", "做些什么",
     "干哪些", "干些什么", "管什么", "管哪些"),
)

# -- what a question asks: the shared vocabularies ---------------------------------------------
WHY = ("为什么", "为啥", "为何", "原因", "因素", "根源", "怎么会", "缘故", "起因", "何故")
# how to do or fix something; 怎么会 asks why
HOW = ("怎么办", "怎么做", "怎么样才", "怎么(?!会)", "如何", "怎样", "咋整", "咋办", "咋",
       "办法", "措施", "对策", "方法", "解决", "做好", "改善", "避免")
DIFFERENCE = ("区别", "不同", "差异", "差别", "异同", "相比", r"\bvs\b")
HOW_MUCH = ("多少", "多久", "多长", "多大", "多高")
WHEN = ("什么时候", "何时", "哪一?天", "几时")
WHO = ("谁", "哪个部门", "哪个岗位", "哪个人")

# -- shapes: what kind of answer to compose ----------------------------------------------------
SHAPES = ("list", "why", "how", "difference", "definition", "fact")
# a number of items ("有哪些原因", "哪三种选择"): a list, whatever else the question asks
# ("几个小时/月/工作日" asks for a duration, not for items)
COUNT = ("哪些", "哪几", "几点", "几个(?!小时|钟头|月|工作日|星期|礼拜|季度|百分点)", "几方面", "几类",
         "几种", "列举",
         r"哪[一二两三四五六七八九十\d]+\s*[个种項项点条類类方面大块塊步]")
# asking for a list without a count: its items, steps, duties (a shape only: an FAQ question and
# its paraphrase need not both say 流程)
LIST_SHAPE = ("有什么", "流程", "步骤", "环节", "些啥", "干啥", "做啥", "啥活", "啥事",
              "什么(资料|内容|工作|任务|措施|方法|要求|信息|作用)", "职责", "职能", "任务", "内容",
              "包括", "要点", "表现")
# colloquial ways of asking what to do ("做点什么", "有啥讲究"), which FAQ matching keeps as words
HOW_SHAPE_ONLY = ("做点?什么", "抓什么", "讲究", "注意", "建议")
# asking whether two things are the same ("不就是一回事吗")
DIFFERENCE_SHAPE_ONLY = ("分别是", "一回事", "混为一谈", "等同")
DEFINITION = ("什么是", "是什么", "指什么", "含义", "定义", "意思")

_COUNT = re.compile(either(COUNT))
_DIFFERENCE_SHAPE = re.compile(either(DIFFERENCE, DIFFERENCE_SHAPE_ONLY))
SHAPE_PATTERNS: tuple[tuple[str, re.Pattern], ...] = (  # the first that matches decides
    ("difference", _DIFFERENCE_SHAPE),
    ("why", re.compile(either(WHY))),
    ("how", re.compile(either(HOW, HOW_SHAPE_ONLY))),
    ("list", re.compile(either(COUNT, LIST_SHAPE))),
    ("definition", re.compile(either(DEFINITION))),
)


def question_shape(question: str) -> str:
    """One of ``SHAPES``: "list" when the question asks for a number of items ("有哪些原因/区别/
    措施" wants the list), else the first of ``SHAPE_PATTERNS`` that matches, else "fact"."""
    q = normalize(question)
    if _COUNT.search(q):
        return "list"
    for shape, pattern in SHAPE_PATTERNS:
        if pattern.search(q):
            return shape
    return "fact"


# Words with which the label above a list says what it lists: causes, or remedies. A list of
# causes does not answer a how-question, nor a list of remedies a why-question. (They read a
# document's labels, not questions, hence their own, narrower sets.)
CAUSE_LABEL = re.compile(either(("原因", "因素", "为什么", "根源")))
REMEDY_LABEL = re.compile(either(("措施", "办法", "方法", "对策", "解决", "如何", "怎样")))

_CONTRAST_OPENING = re.compile(r"^(请问|请|说说|讲讲)")
_SIDES = re.compile(r"(.{2,12}?)(?:和|与|跟|同|及|对比|vs|VS)(.{2,12}?)(?:的|之间|有|在|相比|比较|区别|不同|差异|差别|哪|不就|是不是|是一回事|$)")


def contrast_sides(question: str) -> tuple[str, str] | None:
    """The two things a 区别 question contrasts, e.g. ("市场部", "销售部"), also from keywords
    ("市场部 销售部 区别")."""
    q = _CONTRAST_OPENING.sub("", normalize(question))
    terms = [t for t in q.split() if not _DIFFERENCE_SHAPE.search(t)]
    if len(q.split()) >= 2 and len(terms) >= 2:
        return (terms[0], terms[1]) if terms[0] != terms[1] else None
    m = _SIDES.search(q)
    if not m:
        return None
    a, b = m.group(1).strip(" ,"), m.group(2).strip(" ,")
    return (a, b) if a and b and a != b else None


# -- intents: what an FAQ entry must share -----------------------------------------------------
# handling or coping with something, an intent like the other how-words; as a shape it would
# turn "…的处理流程" from a list into a how-question
HOW_INTENT_ONLY = ("处理", "应对")
# comparing, asking which is better
DIFFERENCE_INTENT_ONLY = ("对比", "比较", "哪个更")
INTENTS: tuple[tuple[str, str], ...] = (
    ("why", either(WHY)),
    ("how", either(HOW, HOW_INTENT_ONLY)),
    ("difference", either(DIFFERENCE, DIFFERENCE_INTENT_ONLY)),
    ("quantity", either(HOW_MUCH)),
    ("time", either(WHEN)),
    ("who", either(WHO)),
)
_INTENT_RES = tuple((name, re.compile(p)) for name, p in INTENTS)
INTENT_WORDS = re.compile("|".join(p for _, p in INTENTS))  # any intent's words, to remove them


def intents_of(text: str) -> frozenset[str]:
    """The intents of ``text`` (any script): the names of ``INTENTS`` whose words it has."""
    n = normalize(text)
    return frozenset(name for name, rx in _INTENT_RES if rx.search(n))


def intent_named_by(term: str) -> str | None:
    """The intent that ``term`` (normalised) is itself a word of ("原因" -> "why"), if any: a
    glossary group headed by it names that intent rather than a topic."""
    return next((name for name, rx in _INTENT_RES if rx.fullmatch(term)), None)


# -- values ------------------------------------------------------------------------------------
# asks for a value (an amount, a date, a place, an address) rather than an explanation; "差在哪"
# asks how things differ, not where
VALUE = (*HOW_MUCH, *WHEN, r"(?<!哪)几(?:个|天|月|年|岁|倍|次|成|号|点|楼|钱)", "百分之几", "什么比例",
         "哪个(?:城市|国家|省|地方|网站)", "哪里", "(?<![差别同])在哪", "价格", "价钱", "网址",
         "电话", "地址", "股价")
VALUE_QUESTION = re.compile(either(VALUE))
# the attribute a value question asks for ("按什么比例", "期限是多久"), not its subject: a rule
# gives the value ("百分之二") without naming the attribute
VALUE_ATTRIBUTES = frozenset(
    "比例 比率 金额 数额 数量 数目 时间 日期 期限 时限 天数 时长 地点 上限 下限 人数 次数 额度 幅度 "
    "标准 范围 年限 年龄 岁数 价格 价钱".split()
)
HOW_MUCH_RE = re.compile(either(HOW_MUCH))  # jieba tags "多长" a noun: it is the question, not its subject

# -- questions documents cannot answer unless a passage addresses them ------------------------
# A time the question is anchored to ("今年的年会", "明年的年假", "2027年…"): rules and guides
# state what holds, not what happens on a date, so a passage must name that time to answer it.
# 后年 / 后天 / 前年 not inside 以后 / 之后 / 之前 ("满10年以后年休假", "三天之后天数")
TIME_ANCHORS = ("今年", "明年", "去年", r"(?<![以之])前年", r"(?<![以之然最])后年", "今天", "明天", "昨天",
                r"(?<![以之然最])后天", "今晚", "本周",
                "这周", "下周", "上周", "本月", "这个月", "下个?月", "上个?月", "本季度", "这个?季度",
                "上个?季度", "下个?季度",
                "下半年", "上半年", "年底前", "最新", "实时", r"20\d\d年")
TIME_ANCHOR = re.compile(either(TIME_ANCHORS))
# A prediction: a future time with a change ("以后会不会涨", "将来会取消吗"): answerable only
# from a passage that speaks of that future (a rule "自…起施行", a plan "将于…").
# 以后 on its own or after a person is the future ("以后会不会涨", "我以后"); after an event it is
# "after that event" ("退休以后", "定下来以后"), no prediction
FUTURE_TIMES = ("明年", r"(?<![以之然最])后年", "下一年", "下个?月", "下半年", "下季度", "将来", "未来", "今后",
                r"(?:(?<![\u4e00-\u9fff])|(?<=[我你您他她咱们]))以后",
                "往后", "接下来", "到时候", "下一?次", "下一轮", "下一版")
CHANGES = ("涨", "降", "调整", "调高", "调低", "提高", "降低", "改", "变", "取消", "增加", "减少",
           "上调", "下调", "恢复", "延长", "缩短", "延迟", "推迟", "提前", "放开", "出台", "修订", "修正")
FUTURE_TIME = re.compile(either(FUTURE_TIMES))
FUTURE_QUESTION = re.compile(
    "(?:" + FUTURE_TIME.pattern + ")[^，,。；;？?]{0,12}?(?:" + either(CHANGES) + ")"
    "|会不会(?:" + either(CHANGES) + ")"
)
# A share or a length asked for ("占百分之几", "多少天内"), and what a passage giving one holds:
# a passage about the topic that gives no share or no length does not answer it.
_NUM = r"(?:\d+(?:\.\d+)?|[零〇一二两三四五六七八九十百千万半]+)"
PERCENT_ASK = re.compile(r"百分之几|百分之多少|百分比|什么比例|多大比例|多少比例|比例[^，,。；;？?]{0,4}?是多少|几成|占多少|几个点|多少个点")
PERCENT_VALUE = re.compile(r"百分之|\d\s*%|％|分之|" + _NUM + r"\s*(?:倍|成)|比例")
# a share asked as a number ("百分之多少", "几个点") is answered by a number, not by "按比例"
PERCENT_NUMBER_ASK = re.compile(r"百分之几|百分之多少|几成|几个点|多少个点|多少比例|多大比例|比例[^，,。；;？?]{0,4}?是多少")
PERCENT_NUMBER = re.compile(r"百分之" + _NUM + r"|\d\s*[%％]|" + _NUM + r"\s*分之\s*" + _NUM + "|" + _NUM + r"\s*(?:倍|成)")
DURATION_ASK = re.compile(r"多久|多长时间|多少(?:个)?(?:天|日|月|年|周|小时|工作日|分钟)|几(?:个)?(?:天|日|月|年|周|小时|工作日|分钟)"
                          r"|多少[^，,。；;？?\d]{0,6}?时间")  # "每天有多少哺乳时间"
DURATION_VALUE = re.compile(_NUM + r"\s*(?:个)?(?:天|日|月|年|周|星期|小时|工作日|分钟)")
# the unit a question asks a length in ("几天" days): a passage answers it with a number of
# that unit ("十五日内"), not with another length ("连续工作一年以上")
_DURATION_UNITS = {"天": "天|日|工作日", "日": "天|日|工作日", "工作日": "工作日|天|日", "月": "月",
                   "年": "年", "周": "周|星期", "小时": "小时", "分钟": "分钟|小时"}
_DURATION_UNIT_VALUES = {k: re.compile(_NUM + r"\s*(?:个)?(?:" + v + ")") for k, v in _DURATION_UNITS.items()}


def duration_value(ask: str) -> re.Pattern:
    """What a passage answering the length question ``ask`` (a ``DURATION_ASK`` match) holds:
    a number of the unit asked, or of any unit for 多久 / 多长时间."""
    unit = next((u for u in ("工作日", "小时", "分钟", "天", "日", "月", "年", "周") if ask.endswith(u)), None)
    return _DURATION_UNIT_VALUES[unit] if unit else DURATION_VALUE
# a head count ("多少人") and a day of the month ("几号交"): what passages giving one hold
COUNT_ASK = re.compile(r"(?:多少|几)(?:个|名|位)?(?:人|员工|家|名)")
COUNT_VALUE = re.compile(_NUM + r"\s*(?:个|名|位)?(?:人|家|名)")
DATE_ASK = re.compile(r"几号|几月几[日号]|哪一?天")
DATE_VALUE = re.compile(_NUM + r"\s*(?:号|日)|月底|月初|月末|年底|年初|周[一二三四五六日末]|星期[一二三四五六日天]"
                        r"|之日|当日|次日|当天|起算")  # a rule's day: "自用工之日起"
# a count in a unit of its own ("写多少字", "在几楼"): what passages giving one hold
UNIT_ASK = re.compile(r"(?:多少|几)(?:个)?(字|页|篇|楼|层|本|遍)")


def unit_value(unit: str) -> re.Pattern:
    """What a passage answering a ``UNIT_ASK`` in ``unit`` holds: a number of that unit."""
    return re.compile(_NUM + r"\s*(?:个)?" + re.escape(unit))


# who first said, wrote or made something ("最早是谁提出的", "作者是谁"): a passage answering it
# names a person
WHO_ASK = re.compile(r"谁(?:最早|最先|首先)?(?:提出|发明|创立|创造|写的|写了|说的|总结)|作者是谁|最早是谁|出自谁")
# a ready-made artifact (a template, a piece of software, a platform, a course) asked for by its
# kind: a passage answering it names that kind ("有没有现成的问卷模板", "会议纪要用啥软件记")
ARTIFACT_ASK = re.compile(
    r"(模板|范本|范文)|(?:什么|啥|哪个|哪款|哪种|哪些)(软件|软体|app|小程序|平台|网站)"
    r"|推荐[^，,。；;？?]{0,16}?(软件|软体|app|小程序|平台|网站|课程|书)")


def artifact_asked(match: re.Match) -> str:
    """The kind of artifact an ``ARTIFACT_ASK`` match asks for (模板, 软件…)."""
    return next(g for g in match.groups() if g)


# a title in book-title marks (《营销管理》): a book, law, form or journal the question names
TITLE = re.compile(r"《([^《》]{2,30})》")
# a sum of money ("多少钱", "几万块") and a year ("哪年发表的"): what passages giving one hold
AMOUNT_ASK = re.compile(r"多少钱|几块钱|多少块|多少元|多少万|几[千万]块|多少预算|多少经费|金额[^，,。；;？?]{0,3}?多少"
                        r"|多少金额|钱[^，,。；;？?]{0,3}?多少|花了多少")
AMOUNT_VALUE = re.compile(_NUM + r"\s*(?:元|块|万|千|百|亿|美元|美金|港币|欧元|日元)|[¥￥$]\s*\d")
YEAR_ASK = re.compile(r"哪一?年|什么年份|哪个年份|几几年|何年")
YEAR_VALUE = re.compile(r"\d{4}\s*年|[一二三四五六七八九〇零]{4}\s*年|\d{2,4}\s*年代|[一二三四五六七八九十]+十年代")
# A ranking or a figure of the moment ("现在排第一的品牌是哪家"): a real-time fact
REALTIME_QUESTION = re.compile(r"(?:现在|目前|当前|如今|最新)[^，,。；;？?]{0,12}?(?:排名|排第|第一|最大|最多|最高|最低|哪家)")
# Chit-chat and tasks that are no question about the documents: a poem, a joke, someone to chat
# with, writing or translating on the asker's behalf ("帮我写一封辞职信")
CHITCHAT = re.compile(r"写(?:一)?首|作(?:一)?首|打油诗|讲(?:一)?个笑话|说(?:一)?个笑话|陪我聊|聊聊天|陪我说说话"
                      r"|(?:帮|替|给)我(?:写|起草|拟|润色|翻译)")
# Personal records no document holds: what is left of *my* leave, *my* badge number.
PERSONAL_QUESTION = re.compile(
    r"我(?:们)?(?:的)?[^，,。；;？?]{0,8}?(?:还剩|剩下|剩余|余额|还有几|还有多少)"
    r"|我的(?:工号|账号|帐号|密码|工资条|工资卡|考勤记录|打卡记录|绩效结果|绩效分数|绩效评分|"
    r"社保缴纳记录|缴费记录|排名|编号|档案编号|员工编号)"
    r"|我的[^，,。；;？?]{0,10}?(?:账户|帐户)[^，,。；;？?]{0,6}?(?:多少|余额|几)"
)


def question_parts(question: str) -> list[str]:
    """The separately asked parts of a question ("试用期多久？年会在哪里开？", "…，另外…"):
    clauses ending in a question mark, or joined by 另外/还有/以及/同时; one part when it asks
    one thing. Parts keep their text as typed."""
    pieces = [p.strip() for p in _PART_SPLIT.split(question) if p and p.strip()]
    parts = [p for p in pieces if len(_CJK_CHARS.findall(p)) >= 4]
    return parts if len(parts) >= 2 else [question]


_PART_SPLIT = re.compile(r"(?<=[？?])|[；;]|[，,]\s*(?:另外|还有|以及|同时|再就是|顺便问一?下)")
_CJK_CHARS = re.compile(r"[\u4e00-\u9fff]")


# -- lists and parts, for answers read off an outline ------------------------------------------
# a question asking for the parts of something ("分为哪几个方面", "哪几块"): what a document's
# title is answered with
PARTS = ("方面", "部分", "几块", "几类", "几种", "几个", "哪几", "分为", "分成", "类型", "维度", "板块", "组成")
PARTS_CUE = re.compile(either(PARTS))
# a question asking for several things: what a heading's sub-headings answer
LIST_CUE = re.compile(either(PARTS, ("哪些", "包括", "包含", "有什么", "都有")))

# -- questions inside documents ----------------------------------------------------------------
# a sentence of a document that asks ("…如何才能…呢", an interview's question); reads the
# document's own text, so Traditional 嗎 too
ASKS = re.compile(r"([?？]|[呢吗嗎][\"”」]?)\s*$")

# -- follow-ups (Simplified, not otherwise normalised) -----------------------------------------
# "那销售部呢?": the same question about something else (group 1)
FOLLOWUP_SWAP = re.compile(r"^(?:那么?|那个|还有|再说说|再问一下)?\s*(.{2,12}?)\s*(?:呢|怎么样|如何|又如何|的呢)[?？。!！]*$")
# "第二点具体说说": a point of the previous answer (group 1, a numeral)
FOLLOWUP_POINT = re.compile(r"第\s*([一二两三四五六七八九十\d]+)\s*[点條条个個项項]")
# words referring back to what the previous question named
FOLLOWUP_PRONOUN = re.compile(r"(它们|他们|她们|它|两者|二者|两个部门|这两个部门|这两者|双方|这个|那个|其)")
# what may refer to a single noun phrase found by part-of-speech tagging ("这个" more often
# means the problem just described than a noun of the question)
FOLLOWUP_SINGULAR = re.compile(r"它(?!们)")
