"""Tests for ingest.clean: each rule on small examples, negatives, and the bundled corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.clean import RULES, Rule, clean_text, find_noise
from ingest.models import Noise

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
RULES_BY_NAME = {r.name: r for r in RULES}


def spans(text: str, rule: str | None = None) -> list[str]:
    """The noise substrings found in ``text`` (by one rule, or by all rules)."""
    rules = [RULES_BY_NAME[rule]] if rule else RULES
    return [text[n.start : n.end] for n in find_noise(text, rules)]


def cleaned(text: str) -> str:
    return clean_text(text, find_noise(text))


# ------------------------------------------------------------------------------------------
# API basics
# ------------------------------------------------------------------------------------------


def test_rules_are_named_and_unique():
    names = [r.name for r in RULES]
    assert len(names) == len(set(names))
    assert all(isinstance(r, Rule) and r.name and r.description for r in RULES)


def test_find_noise_merges_and_sorts():
    text = "甲\n- 格式:docx\n- 大小:1.5 MB\n乙"
    noise = find_noise(text)
    assert noise == [Noise(2, text.index("乙"), "file_facts")]
    assert clean_text(text, noise) == "甲\n乙"


def test_clean_text_handles_overlapping_unsorted_spans():
    text = "0123456789"
    noise = [Noise(5, 8, "b"), Noise(1, 3, "a"), Noise(2, 4, "c")]
    assert clean_text(text, noise) == "0489"


def test_merged_rule_names_are_joined():
    text = "正文\n资源描述:\n《某文档》由会员上传分享,免费在线阅读,更多相关内容在学术论文-天天文库\n正文二"
    noise = find_noise(text)
    assert len(noise) == 1
    assert set(noise[0].rule.split("+")) == {"download_notice", "site_boilerplate"}
    assert clean_text(text, noise) == "正文\n正文二"


def test_no_noise_in_plain_text():
    assert find_noise("") == []
    assert find_noise("市场部负责品牌建设,销售部负责回款。") == []


# ------------------------------------------------------------------------------------------
# 1. download notices and 温馨提示 block
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "当前文档最多预览五页,下载文档查看全文",
        "當前文檔最多預覽五頁，下載文檔查看全文",
        "此文档下载收益归作者所有",
        "此文檔下載收益歸作者所有",
        "下载文档",
        "- 下載文檔",
        "资源描述:",
        "資源描述：",
        "《某管理制度》由会员上传分享,免费在线阅读",
        "免费在线阅读",
        "本文档由用户上传,版权归属用户,xx文库负责整理代发布。",
        "如果您对本文档版权有争议请及时联系客服。",
        "付费完成后未能成功下载的用户请联系客服处理。",
        "付費完成後未能成功下載的用戶請聯繫客服處理。",
    ],
)
def test_download_notice_lines(line):
    text = f"第一段内容。\n{line}\n第二段内容。"
    assert spans(text, "download_notice") == [line + "\n"]
    assert cleaned(text) == "第一段内容。\n第二段内容。"


def test_download_notice_at_end_without_newline():
    text = "正文。\n此文档下载收益归作者所有"
    assert spans(text, "download_notice") == ["此文档下载收益归作者所有"]
    assert cleaned(text) == "正文。\n"


@pytest.mark.parametrize(
    "header, items",
    [
        (
            "温馨提示:",
            [
                "1. 部分包含数学公式或PPT动画的文件,查看预览时可能会显示错乱或异常,请放心下载。",
                "2. 本文档由用户上传,版权归属用户。",
                "3. 下载前请仔细阅读文档内容,若出现内容与标题不符可向本站投诉处理。",
                "4. 付费完成后未能成功下载的用户请联系客服处理。",
            ],
        ),
        (
            "溫馨提示：",
            [
                "1、部分文件預覽時可能顯示錯亂，下載後無此問題。",
                "2、如對版權有爭議請聯繫客服。",
            ],
        ),
    ],
)
def test_download_tips_block(header, items):
    block = "\n".join([header, *items]) + "\n"
    text = "上一段的最后一句。\n" + block + "下一段。"
    assert spans(text, "download_tips") == [block]
    assert cleaned(text) == "上一段的最后一句。\n下一段。"


def test_tips_header_with_unrelated_items_is_kept():
    text = "温馨提示:\n1. 请各部门于周五前提交月度报表。\n2. 会议室需提前预约。\n"
    assert find_noise(text) == []


# ------------------------------------------------------------------------------------------
# 2. file facts
# ------------------------------------------------------------------------------------------


def test_file_facts_bulleted_block():
    facts = "- 格式:docx\n- 大小:184.00 KB\n- 文档页数:8\n"
    text = "某某公司协调之道\n" + facts + "部门之间的沟通协调案例"
    assert spans(text, "file_facts") == [facts]
    assert cleaned(text) == "某某公司协调之道\n部门之间的沟通协调案例"


def test_file_facts_block_with_blank_lines_traditional_fullwidth():
    facts = "ID：21082182\n\n大小：64.50 KB\n\n頁數：8頁\n\n時間：2018-10-19\n"
    text = "標題\n\n" + facts + "\n正文開始"
    assert spans(text, "file_facts") == [facts]
    assert cleaned(text) == "標題\n\n\n正文開始"


@pytest.mark.parametrize(
    "line", ["格式:docx", "格式：PDF", "大小:64.50 KB", "页数:8页", "ID:21082182"]
)
def test_file_facts_single_strong_line(line):
    text = f"标题\n{line}\n正文"
    assert spans(text, "file_facts") == [line + "\n"]


def test_file_facts_lone_weak_line_is_kept():
    # a lone date line may be real content (e.g. a meeting notice)
    text = "会议通知\n时间:2018-10-19\n地点:三楼会议室\n"
    assert find_noise(text) == []


# ------------------------------------------------------------------------------------------
# 3. page markers and split-preview page indexes
# ------------------------------------------------------------------------------------------


def test_page_marker_title_lines():
    markers = "营销总部的职能_第1页\n营销总部的职能_第2页\n"
    text = "营销总部的职能\n" + markers + "正文"
    assert spans(text, "page_marker") == [markers]
    assert cleaned(text) == "营销总部的职能\n正文"


def test_page_marker_traditional_title_line():
    text = "正文一\n銷售管理的區別_第3頁\n正文二"
    assert spans(text, "page_marker") == ["銷售管理的區別_第3頁\n"]


def test_page_marker_embedded_run():
    text = "提供考核信息与资料。第3页第4页第5页(二)对外客户管理工作"
    assert spans(text, "page_marker") == ["第3页第4页第5页"]
    assert cleaned(text) == "提供考核信息与资料。(二)对外客户管理工作"


def test_page_marker_embedded_run_traditional():
    text = "提供考核資料。第3頁第4頁(二)對外客戶管理"
    assert spans(text) == ["第3頁第4頁"]


@pytest.mark.parametrize("line", ["第3页", "第 12 页 / 共 40 页", "- 7 -", "Page 2 of 9"])
def test_page_marker_line_on_its_own(line):
    text = f"上文。\n{line}\n下文。"
    assert spans(text, "page_marker") == [line + "\n"]
    assert cleaned(text) == "上文。\n下文。"


def test_page_index_series():
    para = "管理工作包括以下内容,销售部负责" * 8  # a long paragraph, cut mid-sentence
    text = f"标题\n\n1、{para}\n\n2、{para}\n\n3、{para}"
    assert spans(text, "page_index") == ["1、", "2、", "3、"]
    assert cleaned(text) == f"标题\n\n{para}\n\n{para}\n\n{para}"


def test_page_index_needs_a_series_and_a_cut_sentence():
    para = "市场部负责品牌建设与市场调研工作" * 8
    # a single numbered long paragraph after a heading: not a series
    assert spans(f"第二章 销售管理\n\n1、{para}。", "page_index") == []
    # previous paragraph ends with a full stop: a real numbered list
    assert spans(f"说明如下。\n\n1、{para}。\n\n2、{para}。", "page_index") == []


# ------------------------------------------------------------------------------------------
# 4. related-article lists
# ------------------------------------------------------------------------------------------


def test_related_links_header_and_links_traditional():
    block = (
        "【銷售管理與營銷管理的區別】相關文章:\n"
        "什么是營銷管理?08-17\n"
        "人事管理與人力資源管理的區別03-17\n"
        "營銷管理的案例分析04-01"
    )
    text = "3.從現代營銷觀念的角度來看,銷售管理應服從于營銷管理。\n" + block
    assert spans(text, "related_links") == [block]
    assert cleaned(text) == "3.從現代營銷觀念的角度來看,銷售管理應服從于營銷管理。\n"


@pytest.mark.parametrize("header", ["- 相關推薦", "相关推荐", "相关文章：", "- 相关阅读:"])
def test_related_links_header_alone(header):
    text = f"{header}\n销售管理与营销管理的区别\n正文"
    assert spans(text, "related_links") == [header + "\n"]
    assert cleaned(text) == "销售管理与营销管理的区别\n正文"


def test_related_links_standalone_title_with_date():
    text = "正文第一段。\n绩效管理与绩效考核的区别03-02\n正文第二段。"
    assert spans(text, "related_links") == ["绩效管理与绩效考核的区别03-02\n"]


# ------------------------------------------------------------------------------------------
# 5. timestamp garbage
# ------------------------------------------------------------------------------------------

GARBAGE = (
    "M2020年4月17日星期五21:54:384.17.202021:5421:54:3820.4.179时54分9时54分38秒"
    "Apr. 17, 2017 April 20209:54:38 PM21:54:38。"
)


def test_timestamp_garbage_line():
    text = "同时发展一条拉轨道。\n" + GARBAGE + "\n下一篇"
    assert spans(text, "timestamp_garbage") == [GARBAGE + "\n"]
    assert cleaned(text) == "同时发展一条拉轨道。\n下一篇"


def test_timestamp_garbage_traditional():
    line = "2021年3月5日星期五10:15:303.5.202110:1510時15分30秒Mar. 5, 2021 10:15:30 AM"
    assert spans(f"正文\n{line}\n", "timestamp_garbage") == [line + "\n"]


@pytest.mark.parametrize(
    "line",
    [
        "2020年4月17日 9:00-10:30",  # a schedule line: one date notation only
        "4月17日(星期五)9:00-11:30 报到",
        "会议于2020年4月17日9:00开始,11:30结束,请准时参加。",
    ],
)
def test_timestamp_real_schedule_kept(line):
    assert find_noise(f"会议安排\n{line}\n") == []


# ------------------------------------------------------------------------------------------
# 6. site names and site boilerplate
# ------------------------------------------------------------------------------------------


def test_site_name_hyphen_wrapped():
    text = "销售人员的测评-全球品牌網-和选用"
    assert spans(text, "site_name") == ["-全球品牌網-"]
    assert cleaned(text) == "销售人员的测评和选用"
    assert cleaned("銷售人員的測評-全球品牌网-和選用") == "銷售人員的測評和選用"


@pytest.mark.parametrize("name", ["【某某文库】", "【某某文庫】", "[某某网]", "-学习啦网-"])
def test_site_name_bracketed(name):
    text = f"管理制度{name}的主要内容"
    assert spans(text, "site_name") == [name]
    assert cleaned(text) == "管理制度的主要内容"


def test_site_name_common_nouns_kept():
    text = "从PC-移动互联网-物联网的演进,以及企业-局域网-外网的划分"
    assert find_noise(text) == []


def test_site_boilerplate_more_content():
    text = "《营销职能》由会员上传分享,免费在线阅读,更多相关内容在学术论文-天天文库"
    assert ",更多相关内容在学术论文-天天文库" in spans(text, "site_boilerplate")
    embedded = "以上是全部内容,更多相关内容在管理文库。"
    assert spans(embedded, "site_boilerplate") == [",更多相关内容在管理文库"]
    assert cleaned(embedded) == "以上是全部内容。"


def test_site_boilerplate_editor_sentence_simplified():
    text = (
        "营销管理是指企业为实现经营目标而进行的控制。"
        "下面是小编帮大家整理的销售管理与营销管理的区别,希望可以帮助到有需要的朋友。\n正文"
    )
    assert spans(text, "site_boilerplate") == [
        "下面是小编帮大家整理的销售管理与营销管理的区别,希望可以帮助到有需要的朋友。"
    ]
    assert cleaned(text) == "营销管理是指企业为实现经营目标而进行的控制。\n正文"


def test_site_boilerplate_editor_sentence_traditional():
    sentence = (
        "下面是小編幫大家整理的銷售管理與營銷管理的區別,供大家參考借鑒,希望可以幫助到有需要的朋友。"
    )
    text = "營銷管理是指企業的控制。" + sentence + "\n銷售管理與營銷管理的區別 篇1"
    assert spans(text, "site_boilerplate") == [sentence]
    assert cleaned(text) == "營銷管理是指企業的控制。\n銷售管理與營銷管理的區別 篇1"


# ------------------------------------------------------------------------------------------
# 7. injected anti-copy marks
# ------------------------------------------------------------------------------------------


def test_injected_marks():
    text = "以客戶群配置服務的.信息系統,年度銷售計劃的.制定,組合中的'重要性"
    assert spans(text, "injected_mark") == [".", ".", "'"]
    assert cleaned(text) == "以客戶群配置服務的信息系統,年度銷售計劃的制定,組合中的重要性"


def test_injected_marks_leave_numbering_and_english_alone():
    text = "1.建立定期沟通机制;Mr. Wang's team;5.长远利益"
    assert find_noise(text) == []


# ------------------------------------------------------------------------------------------
# negatives: real content that looks similar
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "详见第3页的表格。",
        "本报告第3页和第4页列出了考核指标。",
        "2018年成立了市场部,当年销售额增长30%。",
        "1、市场发展阶段因素,设立市场部后销售部实力很强大。",
        "第一篇:市场部与销售部的争吵\n市场部与销售部的争吵\n出现争吵原因:",
        "销售部职责是:\n1制定与实施销售及货款回收综合计划",
        "格式:统一使用公司模板\n大小:以A4纸为准",
        "本平台提供免费在线阅读与下载服务,用户可按需选择。",
        "我们建立了营销信息系统,覆盖全国销售网络。",
        "市场部VS销售部",
        "5.长远利益和短期利益:",
        "《营销管理》这本书里有个观点。",
        "相关部门应配合市场部完成调研。",
    ],
)
def test_real_content_is_kept(text):
    assert find_noise(text) == [], spans(text)


# ------------------------------------------------------------------------------------------
# the bundled corpus
# ------------------------------------------------------------------------------------------

CORPUS_FILES = sorted(CORPUS.glob("*.txt"))

MUST_GO = [
    "当前文档最多预览五页",
    "下载文档查看全文",
    "此文档下载收益归作者所有",
    "温馨提示",
    "格式:docx",
    "大小:184.00 KB",
    "文档页数:8",
    "营销总部的3大职能_第1页",
    "第3页第4页第5页",
    "相关文章",
    "相關文章",
    "什么是營銷管理?08-17",
    "星期五21:54:38",
    "全球品牌網",
    "天天文库",
    # more noise present in the corpus
    "大小:64.50 KB",
    "ID:21082182",
    "时间:2018-10-19",
    "资源描述",
    "由会员上传分享",
    "相關推薦",
    "下面是小編",
    "的.信息系統",
    "中的'重要性",
    "Apr. 17, 2017",
]

# real content next to the noise (after cleaning, the neighbours may be joined)
MUST_STAY = {
    "000": [
        "第一篇:市场部与销售部的争吵",
        "1、市场发展阶段因素,设立市场部后销售部实力很强大",
        "第五篇:销售部与市场部的区别",
        "3办事处与企业往来事项的处理",
    ],
    "001": [
        "某某软件公司市场部与销售部协调之道\n部门之间的沟通协调案例案例背景",
        "同时发展一条拉轨道。",
        "双轨制管理就是在帮助公司建立一条推轨道",
        "5.建立良好的沟通渠道",
    ],
    "002": [
        "市场部还是销售部哪个更牛 聊聊这两个部门的那些事儿",
        "六、市场部与销售部的未来发展趋势",
    ],
    "003": [
        "营销总部的3大职能\n\n营销总部的3大职能",
        "营销总部的3大职能在企业整个的营销体系中",
        "会同HR部",
        "门考核评定,提供考核信息与资料。(二)对外客户管理工作",
        "如果市场部职能是\n\n完成企业的市场视野",
        "按照彼得•德鲁克的观点",
        "客户分类的动态维护某企业是国内知名的专",
        "第二节销售部的龙身职能",
    ],
    "004": [
        "銷售管理與營銷管理的區別\n銷售管理是指",
        "銷售人員的測評和選用",
        "對建立、發展、完善與目標顧客的交換關系的營銷方案進行的分析、設計、實施與控制。\n",
        "以客戶群配置服務的信息系統",
        "銷售管理與營銷管理的區別 篇1",
        "3.從現代營銷觀念的角度來看,銷售管理應服從于營銷管理。",
    ],
}


# Upper bound of the removed fraction per file, to catch a runaway rule. 003 is a short
# preview page wrapped in site chrome (about 18% of it is genuine noise); the others stay
# well under 15%.
MAX_REMOVED = {"000": 0.01, "001": 0.03, "002": 0.01, "003": 0.22, "004": 0.12}


def test_corpus_is_present():
    assert [p.name[:3] for p in CORPUS_FILES] == sorted(MUST_STAY)


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name[:3])
def test_corpus_noise_removed_content_kept(path):
    text = path.read_text(encoding="utf-8")
    noise = find_noise(text)
    out = clean_text(text, noise)

    for s in MUST_GO:
        assert s not in out, f"noise survived: {s!r}"
    for s in MUST_STAY[path.name[:3]]:
        assert s in out, f"content lost: {s!r}"

    # spans are sorted, disjoint, non-adjacent and inside the text
    for a, b in zip(noise, noise[1:], strict=False):
        assert a.end < b.start
    assert all(0 <= n.start < n.end <= len(text) for n in noise)

    removed = sum(n.end - n.start for n in noise)
    assert removed == len(text) - len(out)
    assert removed <= MAX_REMOVED[path.name[:3]] * len(text), f"{removed} of {len(text)} removed"


def test_corpus_noise_is_found_where_expected():
    """The noisy files really produce noise (a dead rule set would pass the test above)."""
    removed = {}
    for path in CORPUS_FILES:
        text = path.read_text(encoding="utf-8")
        removed[path.name[:3]] = sum(n.end - n.start for n in find_noise(text))
    assert removed["000"] == 0 and removed["002"] == 0
    assert all(removed[k] > 0 for k in ("001", "003", "004"))


def test_markdown_furniture_is_noise_and_content_is_not():
    text = ("---\ntitle: 员工手册\ndate: 2024-03-02\n---\n# 请假制度\n"
            "[返回章节目录](./index.md) | [返回首页](../README.md)\n"
            "病假须附证明，详见[附件](./a.md)。\n| 假别 | 天数 |\n| --- | :---: |\n| 年假 | 5 |\n\n---\n结语\n")
    noise = find_noise(text)
    assert {n.rule for n in noise} == {"front_matter", "nav_links", "table_rule"}
    kept = clean_text(text, noise)
    assert "title:" not in kept and "返回首页" not in kept and "| --- |" not in kept
    # a link inside a sentence, table cells and a thematic break are content
    for part in ("详见[附件](./a.md)。", "| 假别 | 天数 |", "| 年假 | 5 |", "\n---\n结语"):
        assert part in kept
