"""Chunking of the bundled corpus: section paths, exact offsets, size bounds, where cuts fall,
noise left out; and the long-paragraph splitter."""

from __future__ import annotations

import re

import pytest
from conftest import CORPUS

from ingest.chunk import CLAUSE_END, SENTENCE_END, ChunkSettings, chunk_document, split_long
from ingest.clean import find_noise
from ingest.models import Document
from ingest.pipeline import ingest_corpus

SETTINGS = ChunkSettings()
_CLOSERS = "”’\"'」』)）》】"
NOISE = [
    "当前文档最多预览五页", "下载文档查看全文", "此文档下载收益归作者所有", "温馨提示", "格式:docx",
    "大小:184.00 KB", "文档页数:8", "营销总部的3大职能_第1页", "第3页第4页第5页", "相关文章", "相關文章",
    "什么是營銷管理?08-17", "星期五21:54:38", "全球品牌網",
]  # fmt: skip
# (noise, content just before it, content just after it): the content must survive
AROUND_NOISE = [
    ("格式:docx", "某某软件公司市场部与销售部协调之道", "部门之间的沟通协调案例"),
    ("第3页第4页第5页", "提供考核信息与资料。", "(二)对外客户管理工作"),
    ("当前文档最多预览五页", "客户分类的动态维护某企业是国内知名的专", None),
    ("相關文章", "3.從現代營銷觀念的角度來看,銷售管理應服從于營銷管理。", None),
    ("星期五21:54:38", "双轨制管理就是在帮助公司建立一条推轨道,同时发展一条拉轨道。", None),
    ("全球品牌網", "銷售人員的測評", "和選用、銷售團隊的角色"),
]


@pytest.fixture(scope="module")
def bundled():
    return ingest_corpus(CORPUS, SETTINGS, progress=False)


def chunk_with(bundled, source_prefix: str, needle: str):
    found = [
        c for c in bundled.chunks if c.source.startswith(source_prefix) and needle in c.text
    ]
    assert len(found) == 1, (needle, [c.id for c in found])
    return found[0]


@pytest.mark.parametrize(
    ("prefix", "needle", "section"),
    [
        ("000", "1)制订公司品牌战略",
         "第二篇:市场部与销售部关系 > 市场部的主要任务 > (二)作为公司的参谋机构"),
        ("000", "1、市场发展阶段因素",
         "第一篇:市场部与销售部的争吵 > 市场部与销售部的争吵 > 出现争吵原因"),
        ("000", "1)业务系统廉政稽查",
         "第二篇:市场部与销售部关系 > 市场部的主要任务 > (三)作为公司业务的监管机构"),
        ("002", "聊完了历史",
         "市场部还是销售部哪个更牛聊聊这两个部门的那些事儿 > 二、市场部与销售部的核心职能差异"),
        ("004", "(一)簡單的銷售部門階段", "銷售管理與營銷管理的區別 篇2 > (一)簡單的銷售部門階段"),
        # a fragment that inline noise cut off a sentence is not a section heading
        ("004", "和選用、銷售團隊的角色",
         "銷售管理與營銷管理的區別 篇1 > 而“銷售管理顧問”可能涉及的是"),
    ],
)  # fmt: skip
def test_section_paths_of_known_chunks(bundled, prefix, needle, section):
    assert chunk_with(bundled, prefix, needle).section == section


def test_marketing_manager_duties_stay_in_one_chunk(bundled):
    chunk = chunk_with(bundled, "000", "(一)市场部经理的职责")
    items = re.findall(r"^(\d)\)", chunk.text, re.M)
    assert items == [str(i) for i in range(1, 10)]
    assert chunk.text.startswith("(一)市场部经理的职责")
    assert chunk.text.endswith("9)完成公司领导交办的其他工作。")
    assert chunk.section.startswith(
        "第二篇:市场部与销售部关系 > 市场部的主要任务 > 二、市场部各岗位职责 > (一)市场部经理的职责"
    )


def test_every_chunk_is_an_exact_slice_of_its_document(bundled):
    assert len(bundled.records) == 5 and not bundled.skipped
    n = 0
    for source, rec in bundled.records.items():
        for c in rec.chunks:
            assert c.source == source
            assert rec.document.text[c.start : c.end] == c.text
            assert c.id == f"{source}#{c.start}-{c.end}"
            n += 1
    assert n > 100


def test_chunks_are_ordered_and_disjoint(bundled):
    for rec in bundled.records.values():
        for a, b in zip(rec.chunks, rec.chunks[1:], strict=False):
            assert a.end <= b.start


def test_no_chunk_exceeds_the_list_limit(bundled):
    sizes = [len(c.text) for c in bundled.chunks]
    assert max(sizes) <= SETTINGS.list_max_chars
    # only chunks holding a list may go past the ordinary limit
    for c in bundled.chunks:
        if len(c.text) > SETTINGS.max_chars:
            assert re.search(r"^\s*(?:\d{1,3}[)）、.]|[（(][一二三四五六七八九十\d]+[)）])", c.text, re.M)


def _ends_sentence(text: str, end: int) -> bool:
    """``text[:end]`` ends with sentence-ending punctuation (closing quotes allowed after it)."""
    i = end - 1
    while i >= 0 and text[i] in _CLOSERS:
        i -= 1
    return i >= 0 and text[i] in SENTENCE_END


def _sentence_around(text: str, pos: int) -> tuple[int, int]:
    """The sentence (within its line) containing the cut at ``pos``."""
    ls = text.rfind("\n", 0, pos) + 1
    le = text.find("\n", pos)
    le = len(text) if le < 0 else le
    s = max((text.rfind(p, ls, pos) for p in SENTENCE_END), default=-1)
    e = min((i for i in (text.find(p, pos, le) for p in SENTENCE_END) if i >= 0), default=le)
    return (max(s + 1, ls), e + 1 if e < le else le)


def test_splits_fall_at_sentence_or_line_ends(bundled):
    """Where one run of text was cut into several chunks (same section, nothing but whitespace
    between them), the cut is at a sentence end or a line end; the only exception is a single
    sentence longer than the limit."""
    cuts = 0
    for rec in bundled.records.values():
        text = rec.document.text
        for a, b in zip(rec.chunks, rec.chunks[1:], strict=False):
            if a.section != b.section or text[a.end : b.start].strip():
                continue
            cuts += 1
            if _ends_sentence(text, a.end) or "\n" in text[a.end : b.start] or a.end == len(text):
                continue
            s, e = _sentence_around(text, a.end)
            assert e - s > SETTINGS.max_chars, (a.id, text[a.end - 20 : a.end + 20])
    assert cuts > 20


@pytest.mark.parametrize("noise", NOISE)
def test_noise_is_in_no_chunk(bundled, noise):
    for c in bundled.chunks:
        assert noise not in c.text, c.id


@pytest.mark.parametrize(("noise", "before", "after"), AROUND_NOISE)
def test_content_around_noise_survives(bundled, noise, before, after):
    docs = [r.document for r in bundled.records.values() if noise in r.document.text]
    assert len(docs) == 1
    text = docs[0].text
    assert text.index(before) < text.index(noise)
    if after:
        assert text.index(noise) < text.index(after)
    chunks = bundled.records[docs[0].source].chunks
    for content in filter(None, (before, after)):
        assert any(content in c.text for c in chunks), content


# -- long paragraphs without sentence ends ---------------------------------------------------------
PARAGRAPH_002 = (
    "话说这市场部和销售部,可不是一天两天就有的最早啊,在企业里并没有明确的分工,都是销售负责人说了算,"
    "既管市场推广,也管产品销售后来随着市场经济的发展,企业规模越来越大,业务越来越复杂,"
    "这种\"一肩挑\"的模式就有点力不从心了就像咱们现在逛超市,商品琳琅满目,要是都堆在一起,"
    "估计您都看花眼了,得有专门负责商品陈列的(市场部)和负责收银卖货的(销售部)"
)


def comma_paragraph(min_chars: int) -> str:
    """A 002-like paragraph: commas only, no sentence end, at least ``min_chars`` long."""
    return ",".join([PARAGRAPH_002] * (min_chars // len(PARAGRAPH_002) + 1))


@pytest.mark.parametrize("max_chars", [80, 300])
def test_split_long_comma_paragraph_cuts_at_clause_ends(max_chars):
    text = comma_paragraph(3 * max_chars)
    base = 1000
    spans = split_long(text, base, max_chars)
    assert len(spans) > 3
    # contiguous, complete, within the limit
    assert spans[0][0] == base and spans[-1][1] == base + len(text)
    for (_, e), (s, _) in zip(spans, spans[1:], strict=False):
        assert e == s
    for s, e in spans:
        assert 0 < e - s <= max_chars
        piece = text[s - base : e - base]
        assert not re.search(f"[{re.escape(SENTENCE_END)}]", piece)
    # every cut but the last end is right after a clause mark
    for _, e in spans[:-1]:
        assert text[e - base - 1] in CLAUSE_END


def test_split_long_prefers_sentence_ends():
    s1 = "市场部负责品牌建设。"
    s2 = "销售部负责把产品卖出去，还要及时回款！"
    spans = split_long(s1 + s2, 0, 25)
    assert spans == [(0, len(s1)), (len(s1), len(s1) + len(s2))]


def test_split_long_hard_cuts_only_an_overlong_clause():
    clause = "甲" * 70
    spans = split_long(clause + "，短句。", 0, 30)
    assert [e - s for s, e in spans] == [30, 30, 11, 3]  # "甲"*70 + "，" hard-cut; "短句。"
    assert all(e - s <= 30 for s, e in spans)


def test_comma_paragraph_document_chunks_within_limit():
    paragraph = comma_paragraph(900)
    text = "市场部与销售部的那些事儿\n\n一、起源与发展\n\n" + paragraph + "\n"
    doc = Document("x.txt", text, "x", "txt", "utf-8", "0")
    chunks = chunk_document(doc, find_noise(text), SETTINGS)
    body = [c for c in chunks if PARAGRAPH_002[:10] in c.text]
    assert len(body) >= 3
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert len(c.text) <= SETTINGS.max_chars
        assert c.section == "市场部与销售部的那些事儿 > 一、起源与发展"
    for a in body[:-1]:
        assert text[a.end - 1] in CLAUSE_END
    # nothing of the paragraph is lost
    assert "".join(c.text for c in body).endswith(paragraph.rstrip())


def test_numbered_heading_levels_nest():
    text = (
        "第一章 总则\n"
        "一、目的\n"
        "为规范市场部与销售部的协作，特制定本制度。\n"
        "二、范围\n"
        "本制度适用于公司全体营销人员。\n"
        "第二章 职责\n"
        "(一)市场部\n"
        "负责品牌建设和市场调研。\n"
    )
    doc = Document("制度.txt", text, "制度", "txt", "utf-8", "0")
    sections = {c.text.splitlines()[-1]: c.section for c in chunk_document(doc, [], SETTINGS)}
    assert sections["为规范市场部与销售部的协作，特制定本制度。"] == "第一章 总则 > 一、目的"
    assert sections["本制度适用于公司全体营销人员。"] == "第一章 总则 > 二、范围"
    assert sections["负责品牌建设和市场调研。"] == "第二章 职责 > (一)市场部"


def test_markdown_headings_nest_by_level_without_marks():
    text = (
        "# 员工手册\n"
        "## 考勤\n"
        "员工应按时上下班。\n"
        "### 请假流程\n"
        "请假须提前在系统提交申请。\n"
        "## 报销\n"
        "差旅费凭发票报销。\n"
    )
    doc = Document("手册.md", text, "员工手册", "md", "utf-8", "0")
    sections = {c.text.splitlines()[-1]: c.section for c in chunk_document(doc, [], SETTINGS)}
    assert sections["员工应按时上下班。"] == "员工手册 > 考勤"
    assert sections["请假须提前在系统提交申请。"] == "员工手册 > 考勤 > 请假流程"
    assert sections["差旅费凭发票报销。"] == "员工手册 > 报销"
