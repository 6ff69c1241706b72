"""Find web boilerplate ("noise") in documents copied from Chinese document-sharing sites.

The cleaner never rewrites text. :func:`find_noise` returns the spans of the original text that
are noise, so that downstream stages can chunk only the remaining text while keeping exact
offsets into ``Document.text``. :func:`clean_text` applies the spans (for tests and debugging).

All rules live in :data:`RULES`. Each rule is a regular expression applied with ``finditer`` over
the whole text; a few rules additionally carry an ``accept`` predicate that vets each candidate
match (for checks a regex cannot express, such as character density).

Rules are written once, in Simplified Chinese; :func:`_zh` widens every Chinese character of a
pattern into a class holding its Traditional variants (via OpenCC), so each rule covers both
scripts. Punctuation is written as explicit classes holding both the half-width and full-width
forms.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import opencc

from ingest.models import Noise

__all__ = ["RULES", "Rule", "clean_text", "find_noise"]


@dataclass(frozen=True)
class Rule:
    """One cleaning rule.

    ``pattern`` is applied with ``finditer`` over the whole text; every non-empty match is a
    noise span. If ``accept`` is given, a match only counts when ``accept(text, match)`` is true.
    """

    name: str
    description: str
    pattern: re.Pattern[str]
    accept: Callable[[str, re.Match[str]], bool] | None = None


# --------------------------------------------------------------------------------------------
# Simplified/Traditional expansion
# --------------------------------------------------------------------------------------------

_CONVERTERS = tuple(opencc.OpenCC(cfg) for cfg in ("s2t", "s2tw", "s2hk", "t2s"))


def _is_han(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def _han_variants(run: str) -> list[list[str]]:
    """For each character of a run of Han characters, its script variants (itself first).

    The whole run is converted too (when the conversion keeps its length), so phrase-level
    choices such as 联系 -> 聯繫 are picked up as well as the character-level ones.
    """
    variants = [[ch] for ch in run]
    for conv in _CONVERTERS:
        whole = conv.convert(run)
        candidates = [whole] if len(whole) == len(run) else []
        candidates.append(
            "".join(c if len(c) == 1 else o for o, c in ((ch, conv.convert(ch)) for ch in run))
        )
        for cand in candidates:
            for i, ch in enumerate(cand):
                if ch not in variants[i]:
                    variants[i].append(ch)
    return variants


def _zh(pattern: str) -> str:
    """Widen each Han character of a regex source into a class of its script variants.

    ``"下载"`` becomes ``"下[载載]"``; inside an existing character class the variants are simply
    appended. Escapes are copied untouched.
    """
    out: list[str] = []
    in_class = False
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if _is_han(ch):
            j = i
            while j < n and _is_han(pattern[j]):
                j += 1
            for chars in _han_variants(pattern[i:j]):
                if in_class:
                    out.append("".join(chars))
                elif len(chars) == 1:
                    out.append(chars[0])
                else:
                    out.append("[" + "".join(chars) + "]")
            i = j
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            out.append(ch)
            # a leading "^" or "]" belongs to the class body
            if i + 1 < n and pattern[i + 1] == "^":
                out.append("^")
                i += 1
            if i + 1 < n and pattern[i + 1] == "]":
                out.append("]")
                i += 1
            i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _compile(pattern: str, flags: int = re.MULTILINE) -> re.Pattern[str]:
    return re.compile(_zh(pattern), flags)


# --------------------------------------------------------------------------------------------
# Shared pieces (regex source, Simplified; expanded by _zh at compile time)
# --------------------------------------------------------------------------------------------

_HAN = r"\u3400-\u9fff\uf900-\ufaff"
_COLON = r"[:：]"
_SP = r"[ \t\u3000]"  # horizontal whitespace (incl. ideographic space)
_BULLET = rf"(?:[-*•·●▪◆■－]{_SP}*)"  # optional list bullet at the start of a line
_DASH = r"[-—–－]"
_EOL = r"[ \t\u3000]*(?:\n|\Z)"  # end of a whole-line match, taking the newline with it
_MMDD = r"(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"


def _line(body: str, max_len: int | None = None) -> str:
    """A whole line that contains ``body`` somewhere (optionally at most ``max_len`` chars)."""
    cap = rf"(?=[^\n]{{0,{max_len}}}$)" if max_len else ""
    return rf"^{cap}[^\n]*?(?:{body})[^\n]*(?:\n|\Z)"


# --------------------------------------------------------------------------------------------
# 1. download / preview / copyright notices
# --------------------------------------------------------------------------------------------

_DOWNLOAD_PHRASES = [
    r"当前文档最多预览",
    r"最多(?:可以)?预览[^\n]{0,4}页",
    r"下载(?:文档|本文档|后)?查看全文",
    r"下载(?:文档|后)?(?:可)?阅读全文",
    r"下载收益归作者所有",
    r"由(?:会员|用户|网友)上传分享",
    rf"上传分享[,，]?{_SP}*免费在线阅读",
    rf"^{_SP}*免费在线阅读",
    rf"免费在线阅读[,，]{_SP}*更多",
    r"本文档由(?:用户|会员|网友)上传",
    r"版权归属(?:用户|会员|上传者)",
    r"对本文档(?:的)?版权有争议",
    r"付费完成后未能成功下载",
    r"下载前请仔细阅读文档",
    r"文件下载后无此问题",
    r"查看预览时可能会显示错乱",
    r"内容与标题不符可向本站投诉",
    rf"如(?:有|若)侵权[,，]?{_SP}*请联系(?:我们|本站|网站|管理员)?删除",
    r"本站仅提供存储空间",
]
_DOWNLOAD_WHOLE_LINES = (
    r"(?:下载文档|下载本文档|立即下载|免费下载|点击下载|下载全文|展开全文|阅读全文|查看全文"
    r"|资源描述|文档描述|文档介绍)"
)

_DOWNLOAD_NOTICE = Rule(
    name="download_notice",
    description=(
        "Whole lines of document-site download/preview/copyright boilerplate "
        "(当前文档最多预览五页, 下载文档查看全文, 此文档下载收益归作者所有, 由会员上传分享, "
        "本文档由用户上传..., 付费完成后未能成功下载..., a bare 下载文档 / 资源描述: line)."
    ),
    pattern=_compile(
        _line("|".join(_DOWNLOAD_PHRASES), max_len=240)
        + rf"|^{_SP}*{_BULLET}?{_DOWNLOAD_WHOLE_LINES}{_SP}*{_COLON}?{_EOL}"
    ),
)

# --------------------------------------------------------------------------------------------
# 1b. 温馨提示 block: header + numbered items about downloads/copyright/customer service
# --------------------------------------------------------------------------------------------

_TIP_KEYWORDS = r"下载|版权|客服|付费|预览|上传|投诉|侵权|本站|文库|积分|下载券|会员|退款"
_LIST_NUM = r"(?:\d{1,2}|[一二三四五六七八九十]{1,2}|[(（]\d{1,2}[)）])"
_TIP_ITEM = rf"{_SP}*{_LIST_NUM}{_SP}*[.、．)）:：]?[^\n]*?(?:{_TIP_KEYWORDS})[^\n]*(?:\n|\Z)"

_DOWNLOAD_TIPS = Rule(
    name="download_tips",
    description=(
        "A 温馨提示/溫馨提示 header line followed by numbered items that talk about "
        "downloads, copyright, 客服, 付费, 本站... (items are recognised by those keywords)."
    ),
    pattern=_compile(
        rf"^{_SP}*{_BULLET}?温馨提示{_SP}*{_COLON}?{_SP}*\n(?:{_SP}*\n)*(?:{_TIP_ITEM})+"
    ),
)

# --------------------------------------------------------------------------------------------
# 2. file facts: "格式:docx", "大小:184.00 KB", "页数:8页", "ID:21082182", "时间:2018-10-19"
# --------------------------------------------------------------------------------------------

_EXT = r"\.?(?i:docx?|pdf|pptx?|xlsx?|txt|wps|rtf|zip|rar|7z|html?|md|epub|caj|mobi|csv|et|dps)\b"
_SIZE = rf"\d+(?:\.\d+)?{_SP}*(?:(?i:[KMGT]i?B|[KMG]|bytes?)\b|字节)"
_INT = r"\d{1,7}"
_DATE = (
    rf"\d{{4}}{_SP}*[-/.年]{_SP}*\d{{1,2}}{_SP}*[-/.月]{_SP}*\d{{1,2}}{_SP}*日?"
    rf"(?:{_SP}*\d{{1,2}}[:：]\d{{2}}(?:[:：]\d{{2}})?)?"
)
_IDV = r"[A-Za-z0-9_-]*\d[A-Za-z0-9_-]*"

# "strong" facts are unmistakable even alone on a line
_STRONG_FACT = (
    rf"(?:(?:文件|文档|资源)?格式|(?:文件|文档|资源)?类型){_SP}*{_COLON}{_SP}*{_EXT}"
    rf"|(?:文件|文档|资源)?大小{_SP}*{_COLON}{_SP}*{_SIZE}"
    rf"|(?:文档|总)?页数{_SP}*{_COLON}{_SP}*{_INT}{_SP}*页?"
    rf"|(?:文档|资源)?(?i:ID){_SP}*{_COLON}{_SP}*{_IDV}"
)
# "weak" facts only count next to other facts (a lone 时间:2018-10-19 may be real content)
_WEAK_FACT = (
    rf"(?:上传|发布|更新|创建)?(?:时间|日期){_SP}*{_COLON}{_SP}*{_DATE}"
    rf"|(?:下载|浏览|阅读|收藏|点赞|评论)(?:次数|量|数)?{_SP}*{_COLON}{_SP}*{_INT}{_SP}*次?"
    rf"|字数{_SP}*{_COLON}{_SP}*{_INT}{_SP}*字?"
    rf"|(?:价格|售价|下载积分|积分|下载券|金币|贡献值){_SP}*{_COLON}{_SP}*[¥￥]?{_SP}*\d+(?:\.\d+)?"
    rf"{_SP}*(?:元|积分|下载券|金币|点)?"
)
_FACT = rf"(?:{_STRONG_FACT}|{_WEAK_FACT})"
_FACT_SEP = rf"(?:{_SP}+|{_SP}*[|｜,，;；/]{_SP}*)"
_FACT_LINE = rf"{_SP}*{_BULLET}?{_FACT}(?:{_FACT_SEP}{_FACT})*{_SP}*"

_FILE_FACTS = Rule(
    name="file_facts",
    description=(
        "Metadata lines of a document page (optionally '- ' bulleted): 格式:docx, 大小:184.00 KB, "
        "页数:8页/文档页数:8, ID:21082182 alone; 时间/日期/下载/浏览/价格... only in a block "
        "with other metadata lines (blank lines between allowed)."
    ),
    pattern=_compile(
        rf"^(?:{_FACT_LINE}(?:\n(?:{_SP}*\n)*{_FACT_LINE})+"  # block of >= 2 lines
        rf"|{_SP}*{_BULLET}?{_FACT}(?:{_FACT_SEP}{_FACT})+{_SP}*"  # >= 2 facts on one line
        rf"|{_SP}*{_BULLET}?(?:{_STRONG_FACT}){_SP}*"  # one strong fact
        rf")$\n?"
    ),
)

# --------------------------------------------------------------------------------------------
# 3. page markers
# --------------------------------------------------------------------------------------------

_PAGE = rf"第{_SP}?\d{{1,4}}{_SP}?页"

_PAGE_MARKER = Rule(
    name="page_marker",
    description=(
        "Preview page markers: whole lines '<title>_第1页', lines holding only 第N页 "
        "(optionally '/共M页'), '- N -' or 'Page N of M' lines, and embedded runs of two or more "
        "第N页 (第3页第4页第5页). A single 第3页 inside a sentence is kept."
    ),
    pattern=_compile(
        rf"^[^\n]{{0,120}}?[_＿]{_PAGE}{_EOL}"
        rf"|^{_SP}*{_DASH}?{_SP}*(?:{_PAGE}{_SP}*)+(?:[/,，]{_SP}*共{_SP}?\d{{1,4}}{_SP}?页)?"
        rf"{_SP}*{_DASH}?{_EOL}"
        rf"|^{_SP}*{_DASH}{_SP}*\d{{1,4}}{_SP}*{_DASH}{_EOL}"
        rf"|^{_SP}*(?i:page){_SP}*\d{{1,4}}{_SP}*(?:(?i:of)|/){_SP}*\d{{1,4}}{_EOL}"
        rf"|{_PAGE}(?:{_SP}*{_PAGE})+"
    ),
)

# --------------------------------------------------------------------------------------------
# 3b. page index of split previews: "\n\n2、完成企业的..." continuing a cut-off sentence
# --------------------------------------------------------------------------------------------

_PAGE_INDEX_RE = re.compile(r"(?<=[^\s。.!?！？;；:：\"”’)）》】…]\n\n)(\d{1,3})、(?=[^\n]{100,})")


@lru_cache(maxsize=8)
def _page_index_numbers(text: str) -> frozenset[int]:
    return frozenset(int(m.group(1)) for m in _PAGE_INDEX_RE.finditer(text))


def _accept_page_index(text: str, m: re.Match[str]) -> bool:
    """Only a series counts: another page index numbered N-1 or N+1 must exist."""
    n = int(m.group(1))
    numbers = _page_index_numbers(text)
    return n - 1 in numbers or n + 1 in numbers


_PAGE_INDEX = Rule(
    name="page_index",
    description=(
        "The 'N、' that split-preview sites put at the start of each page: a long paragraph "
        "after a blank line whose previous paragraph stops mid-sentence (no closing punctuation), "
        "and only when consecutive numbers form a series. Only the 'N、' itself is noise."
    ),
    pattern=_PAGE_INDEX_RE,
    accept=_accept_page_index,
)

# --------------------------------------------------------------------------------------------
# 4. related-article link lists
# --------------------------------------------------------------------------------------------

_RELATED_HEADER = (
    rf"{_SP}*{_BULLET}?(?:【[^】\n]{{1,80}}】{_SP}*|\[[^\]\n]{{1,80}}\]{_SP}*)?"
    r"(?:相关(?:文章|推荐|阅读|文档|内容|资料|范文|链接|搜索|专题)|热门(?:文章|推荐|阅读|文档)"
    r"|推荐(?:阅读|文章|文档|内容)|猜你喜欢|延伸阅读|精彩推荐|精选文章"
    r"|更多(?:相关)?(?:文章|推荐|阅读|范文))"
    rf"{_SP}*{_COLON}?"
)
# a link title ending in a date (MM-DD or YYYY-MM-DD), without sentence punctuation
_RELATED_LINK = (
    rf"{_SP}*{_BULLET}?(?=[^\n]*?[{_HAN}][^\n]*?[{_HAN}])[^\n,，。;；]{{1,60}}?"
    rf"[{_HAN}A-Za-z?？!！)）》」\"”](?:\d{{4}}-)?{_MMDD}"
)

_RELATED_LINKS = Rule(
    name="related_links",
    description=(
        "Related-article lists: a header line (【title】相关文章:, 相關推薦, 推荐阅读, 猜你喜欢...) "
        "and short link-title lines ending in a date MM-DD (什么是營銷管理?08-17)."
    ),
    pattern=_compile(rf"^(?:{_RELATED_HEADER}|{_RELATED_LINK}){_SP}*$\n?"),
)

# --------------------------------------------------------------------------------------------
# 5. timestamp garbage
# --------------------------------------------------------------------------------------------

_TIME_OF_DAY = r"\d{1,2}[:：]\d{2}(?:[:：]\d{2})?|\d{1,2}[时時]\d{1,2}分(?:\d{1,2}秒)?"
_TIME_OF_DAY_RE = re.compile(_TIME_OF_DAY)
_EN_MONTHS = (
    r"Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?"
)
_DT_TOKEN_RE = re.compile(
    rf"(?i:{_EN_MONTHS}|[AP]\.?M\.?)|星期[一二三四五六日天]|[周週][一二三四五六日天]|礼拜[一二三四五六日天]"
    r"|禮拜[一二三四五六日天]|[\d年月日时時分秒:：.,，/\-\s]"
)
_DT_FAMILIES = (
    re.compile(
        r"\d{1,4}\s*年\s*\d{1,2}\s*月|\d{1,2}\s*月\s*\d{1,2}\s*日|星期|[周週][一二三四五六日天]|[礼禮]拜"
    ),
    re.compile(rf"(?i:\b(?:{_EN_MONTHS})\b|\d\s*[AP]\.?M\b)"),
    re.compile(r"\d{1,2}[时時]\d{1,2}分"),
    re.compile(r"\d{1,4}[./]\d{1,2}[./]\d{1,4}"),
)


def _accept_timestamp(text: str, m: re.Match[str]) -> bool:
    """A line of date/time fragments: >= 2 times of day, >= 60% of its characters are
    date/time tokens, and the same moment appears in >= 2 notations (CJK date, English
    month/AM-PM, 时分 time, dotted/slashed numeric date) - which a real schedule line lacks."""
    line = m.group().strip()
    if not line or len(_TIME_OF_DAY_RE.findall(line)) < 2:
        return False
    covered = sum(len(t.group()) for t in _DT_TOKEN_RE.finditer(line))
    if covered / len(line) < 0.6:
        return False
    return sum(1 for fam in _DT_FAMILIES if fam.search(line)) >= 2


_TIMESTAMP_GARBAGE = Rule(
    name="timestamp_garbage",
    description=(
        "Whole lines dominated by date/time fragments (a site's clock widget dumped into the "
        "text): >= 2 times of day, >= 60% date/time characters, several date notations mixed."
    ),
    pattern=re.compile(rf"^(?=(?:[^\n]*?(?:{_TIME_OF_DAY})){{2}})[^\n]+(?:\n|\Z)", re.MULTILINE),
    accept=_accept_timestamp,
)

# --------------------------------------------------------------------------------------------
# 6. site names and site boilerplate sentences
# --------------------------------------------------------------------------------------------

# Han chars that, right before 网, make a common noun rather than a site name
# (互联网, 物联网, 局域网, 以太网, 因特网, 万维网, 蜘蛛网, 电网 ...)
_SITE_NAME_BODY = rf"[{_HAN}A-Za-z0-9]{{2,12}}?(?:(?<![联域太特维蛛电])网|文库)"
_SITE_NAME = Rule(
    name="site_name",
    description=(
        "A short site name ending in 网/網/文库/文庫 wrapped in hyphens or brackets and embedded "
        "in the text: -全球品牌網-, 【xx文库】, [xx网]. Only the wrapped name is noise."
    ),
    pattern=_compile(
        rf"{_DASH}{_SP}?{_SITE_NAME_BODY}{_SP}?{_DASH}"
        rf"|【{_SITE_NAME_BODY}】|\[{_SITE_NAME_BODY}\]|「{_SITE_NAME_BODY}」"
    ),
)

_SENTENCE_START = r"(?<![^\n。!?！？;； \t\u3000])"
_SITE_BOILERPLATE = Rule(
    name="site_boilerplate",
    description=(
        "Site boilerplate inside a paragraph: '更多相关内容在...-天天文库' and the editor's "
        "sentence '下面是小编帮大家整理的...希望可以帮助到有需要的朋友。' (that sentence only, up to "
        "and including its 。)."
    ),
    pattern=_compile(
        rf"[,，]?{_SP}*更多(?:相关)?(?:内容|文章|资料|范文|精彩内容)(?:在|请|见|访问|尽在|请访问)"
        rf"[^\n。]{{0,40}}?(?:文库|网|站)"
        rf"|{_SENTENCE_START}(?:下面|以下|接下来|这里|这是|本文)[^\n。!?！？]{{0,6}}?小编"
        rf"[^\n。!?！？]{{0,200}}[。!！]"
    ),
)

# --------------------------------------------------------------------------------------------
# 7. anti-scraping marks: a stray "." or "'" between two Han characters (的.信息系统)
# --------------------------------------------------------------------------------------------

_INJECTED_MARK = Rule(
    name="injected_mark",
    description=(
        "A lone half-width '.' or apostrophe injected between two Han characters by copy-protection "
        "scripts (的.信息系統, 中的'重要性). Real Chinese text never puts these there."
    ),
    pattern=re.compile(rf"(?<=[{_HAN}])[.'](?=[{_HAN}])"),
)

# --------------------------------------------------------------------------------------------
# 8. Markdown furniture: front matter, table rules, lines that are only navigation links
# --------------------------------------------------------------------------------------------

_FRONT_MATTER = Rule(
    name="front_matter",
    description="YAML front matter at the very start of a Markdown file (---\\ntitle: …\\n---): metadata, not text.",
    pattern=re.compile(r"\A\ufeff?---[ \t]*\n(?:[^\n]*\n){0,60}?---[ \t]*(?:\n|\Z)"),
)

_TABLE_RULE = Rule(
    name="table_rule",
    description="A Markdown table's separator row (|---|:---:|): layout, not text.",
    pattern=re.compile(r"(?m)^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)*\|?[ \t]*$"),
    accept=lambda text, m: "|" in m.group(),  # a bare --- is a thematic break or a heading's underline
)

_NAV_LINKS = Rule(
    name="nav_links",
    description=(
        "A line made only of Markdown links and separators ([返回章节目录](./index.md) | "
        "[返回首页](../README.md)): navigation between pages, not content."
    ),
    pattern=re.compile(r"(?m)^[ \t]*\[[^\]\n]{1,40}\]\([^)\n]{1,200}\)(?:[ \t]*[|｜·/,，、>»][ \t]*\[[^\]\n]{1,40}\]\([^)\n]{1,200}\))*[ \t]*$"),
)

RULES: tuple[Rule, ...] = (
    _DOWNLOAD_NOTICE,
    _DOWNLOAD_TIPS,
    _FILE_FACTS,
    _PAGE_MARKER,
    _PAGE_INDEX,
    _RELATED_LINKS,
    _TIMESTAMP_GARBAGE,
    _SITE_NAME,
    _SITE_BOILERPLATE,
    _INJECTED_MARK,
    _FRONT_MATTER,
    _TABLE_RULE,
    _NAV_LINKS,
)


def find_noise(text: str, rules: Sequence[Rule] = RULES) -> list[Noise]:
    """Spans of ``text`` that are noise, sorted, with overlapping/adjacent spans merged.

    A merged span's ``rule`` joins the distinct rule names with ``+`` in order of appearance.
    """
    hits: list[tuple[int, int, str]] = []
    for rule in rules:
        for m in rule.pattern.finditer(text):
            if m.end() <= m.start():
                continue
            if rule.accept is not None and not rule.accept(text, m):
                continue
            hits.append((m.start(), m.end(), rule.name))
    hits.sort()

    merged: list[tuple[int, int, list[str]]] = []
    for start, end, name in hits:
        if merged and start <= merged[-1][1]:
            prev_start, prev_end, names = merged[-1]
            if name not in names:
                names.append(name)
            merged[-1] = (prev_start, max(prev_end, end), names)
        else:
            merged.append((start, end, [name]))
    return [Noise(start, end, "+".join(names)) for start, end, names in merged]


def clean_text(text: str, noise: Sequence[Noise]) -> str:
    """``text`` with the given noise spans removed (spans may be unsorted or overlapping)."""
    parts: list[str] = []
    pos = 0
    for span in sorted(noise, key=lambda s: (s.start, s.end)):
        if span.start > pos:
            parts.append(text[pos : span.start])
        pos = max(pos, span.end)
    parts.append(text[pos:])
    return "".join(parts)
