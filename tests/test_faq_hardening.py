"""Hardening of the FAQ exports and the ask log: what anonymous askers typed must not run in
the programs that open an export (CSV formulas in a spreadsheet, HTML or remote images in a
rendered handbook), and the ask log must not keep it forever."""

from __future__ import annotations

import csv
import io
import re

import pytest
from conftest import MARKETING
from markdown_it import MarkdownIt

from kb.faq import store as store_module
from kb.faq.exchange import FORMULA_START, export_entries, import_entries, to_markdown
from kb.faq.store import FaqEntry, FaqStore, days_ago, faq_store
from kb.service import KnowledgeService

DUTIES = "市场部经理的职责有哪些？"
HYPERLINK = '=HYPERLINK("http://evil","x")'


@pytest.fixture
def store(tmp_path) -> FaqStore:
    return FaqStore(tmp_path / "faq.sqlite3")


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def _asked(store: FaqStore) -> set[str]:
    return {r["question"] for r in store.asked()}


# -- CSV: no cell a spreadsheet would run as a formula ----------------------------------------------
TRICKY = {  # field -> text that starts like a formula (or like an already neutralised one)
    "question": HYPERLINK,
    "answer": "- 制定营销策略 [1]\n- 协调合作 [1]",  # an ordinary list answer starts with "-"
    "topic": "@SUM(A1:A9)",
    "flag_reason": "+cmd|' /C calc'!A0",
    "origin": "'=already quoted",  # kept exactly: one quote added on export, one removed on import
}
TRICKY_ALTS = ["=1+1", "\t=1+1", "\r=1+1", "''@x", "'", "普通的问法？"]


def test_csv_export_neutralises_formulas_and_imports_back_exactly(store, tmp_path):
    cites = [{"n": 1, "source": MARKETING, "title": "=标题", "section": "-章节", "start": 0, "end": 3,
              "quote": "=A1"}]
    store.add(FaqEntry(None, citations=cites, alt_questions=TRICKY_ALTS, hits=0, **TRICKY), keep_times=True)
    store.add(FaqEntry(None, "年假怎么申请？", "提前五个工作日申请。", topic="考勤", origin="manual"))
    original = [e.to_dict() for e in store.list()]

    text = export_entries(store, "csv")
    rows = _cells(text)
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_START), cell
    header, first = rows[0], dict(zip(rows[0], rows[1], strict=True))
    assert header[1] == "question"
    assert first["question"] == "'" + HYPERLINK
    assert first["answer"] == "'" + TRICKY["answer"]
    assert first["topic"] == "'@SUM(A1:A9)" and first["flag_reason"] == "'+cmd|' /C calc'!A0"
    assert first["origin"] == "''=already quoted"
    assert first["citations"].startswith("[") and first["alt_questions"].startswith("[")  # JSON cells
    assert rows[2][1] == "年假怎么申请？"  # ordinary text is untouched

    fresh = FaqStore(tmp_path / "fresh.sqlite3")
    assert import_entries(fresh, text, "csv") == {"added": 2, "updated": 0}
    assert [e.to_dict() for e in fresh.list()] == original
    assert fresh.require(1).question == HYPERLINK and fresh.require(1).alt_questions == TRICKY_ALTS
    assert export_entries(fresh, "csv") == text


def test_a_question_from_the_ask_log_is_exported_inert(tiny_config):
    svc = KnowledgeService(tiny_config, progress=False)
    svc.ask(HYPERLINK)
    added = svc.faq.suggest_from_usage()
    assert [e["question"] for e in added] == [HYPERLINK]  # an anonymous question became a candidate
    rows = list(csv.DictReader(io.StringIO(svc.faq.export("csv"))))
    assert [r["question"] for r in rows] == ["'" + HYPERLINK]
    assert svc.faq.import_text(svc.faq.export("csv"), "csv") == {"added": 0, "updated": 1}
    assert svc.faq.get(added[0]["id"])["question"] == HYPERLINK


# -- Markdown: markup shown as text, nothing loaded ------------------------------------------------
EVIL = "<script>alert(1)</script>"
IMAGE = "![](http://evil/x.png)"


def _evil_entry(store: FaqStore) -> FaqEntry:
    answer = "\n".join([
        f"要点如下：{EVIL} {IMAGE} [1]",
        "- 第一点 [点我](http://evil/link) <img src=x onerror=alert(1)>",
        "- 第二点 `<script>` 与 &lt;script&gt;",
        "",
        "![ref]",
        "",
        "[ref]: http://evil/ref.png",
        "",
        "\\![](http://evil/backslash.png) <http://evil/autolink>",
    ])
    cites = [{"n": 1, "source": "<script>s</script>.txt", "title": f"《标题》{EVIL}", "start": 0, "end": 5,
              "section": "![s](http://evil/s.png)", "quote": f"原文{EVIL}\n{IMAGE}\n> 引文里的 [x](http://evil)"}]
    return store.add(FaqEntry(None, f"{EVIL}怎么办？\n{IMAGE}", answer, cites, f"主题{EVIL}", "approved",
                              [f"另一问法 {IMAGE}", "<iframe src=http://evil>"], "manual"))


def test_markdown_handbook_escapes_markup_and_links(store):
    _evil_entry(store)
    md = export_entries(store, "md")
    assert "<script" not in md and "<img" not in md and "<iframe" not in md and "<http" not in md
    assert not re.search(r"(?<!\\)!\[[^\]]*\]\(http", md)
    assert not re.search(r"(?<!\\)\[[^\]]*(?<!\\)\]\(http", md)  # no link either

    for renderer in (MarkdownIt(), MarkdownIt("commonmark", {"html": True}).enable("table")):
        rendered = renderer.render(md)
        for tag in ("<script", "<img", "<iframe", "<a "):
            assert tag not in rendered, (tag, rendered)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered  # shown as text
        assert "![](http://evil/x.png)" in rendered  # the image syntax shown as text
        assert "&amp;lt;script&amp;gt;" in rendered  # an entity in the text stays literal
    # the handbook stays a handbook: headings, lists, sources and the [n] markers
    rendered = MarkdownIt().render(md)
    assert "<h1>常见问题（FAQ）</h1>" in rendered
    assert "<h2>主题&lt;script&gt;alert(1)&lt;/script&gt;</h2>" in rendered
    assert "<h3>&lt;script&gt;alert(1)&lt;/script&gt;怎么办？ ![](http://evil/x.png)</h3>" in rendered
    assert "<li>第一点 [点我](http://evil/link)" in rendered and "[1]" in rendered
    assert "<strong>出处</strong>" in rendered and "<blockquote>" in rendered


def test_markdown_escaping_keeps_plain_text_readable():
    e = FaqEntry(1, "年假怎么申请？", "须提前五个工作日申请 [1]。\n- **注意**：病假除外", [
        {"n": 1, "source": "考勤/年假制度.txt", "title": "年假制度", "section": "一、申请", "start": 0,
         "end": 4, "quote": "提前五日\n书面申请"}], "考勤", "approved")
    md = to_markdown([e])
    assert "### 年假怎么申请？" in md and "## 考勤" in md
    assert "- **注意**：病假除外" in md
    assert "1. 《年假制度》（考勤/年假制度.txt） · 一、申请" in md
    assert "   > 提前五日\n   > 书面申请" in md
    rendered = MarkdownIt().render(md)
    assert "须提前五个工作日申请 [1]。" in rendered and "<strong>注意</strong>" in rendered


# -- the ask log is bounded by faq.log_retention_days ----------------------------------------------
def _log_old_and_recent(store: FaqStore) -> None:
    store.log_question("四十天前？", True, 0.9, "documents", at=days_ago(40))
    store.log_question("十天前？", False, 0.1, "none", at=days_ago(10))


def _an_hour_passes() -> None:
    """As if the last prune of every file had been an hour ago (no clock is patched)."""
    with store_module._pruned_lock:
        for key in store_module._pruned_at:
            store_module._pruned_at[key] -= store_module.PRUNE_INTERVAL_S


def test_logging_deletes_rows_older_than_the_retention(tmp_path):
    path = tmp_path / "faq.sqlite3"
    store = FaqStore(path, log_retention_days=30)
    store.log_question("开始", True)
    _log_old_and_recent(store)
    _an_hour_passes()
    store.log_question("新问题？", True)
    assert _asked(store) == {"开始", "十天前？", "新问题？"}


def test_the_log_is_pruned_at_open_and_then_at_most_once_an_hour(tmp_path):
    path = tmp_path / "faq.sqlite3"
    forever = FaqStore(path)  # 0 (the default for a bare store): keep everything
    _log_old_and_recent(forever)
    forever.log_question("今天？", True)
    assert _asked(FaqStore(path, log_retention_days=0)) == {"四十天前？", "十天前？", "今天？"}

    store = FaqStore(path, log_retention_days=30)  # opening prunes
    assert _asked(store) == {"十天前？", "今天？"}
    store.log_question("晚到的旧问题？", True, at=days_ago(40))
    store.log_question("又一个？", True)
    assert "晚到的旧问题？" in _asked(store)  # no DELETE on every insert
    _an_hour_passes()
    store.log_question("一小时后？", True)
    assert _asked(store) == {"十天前？", "今天？", "又一个？", "一小时后？"}
    assert store.prune_log() == 0

    # opening a store does not create its file
    missing = FaqStore(tmp_path / "none.sqlite3", log_retention_days=30)
    assert not missing.exists and missing.prune_log() == 0


def test_the_service_honours_log_retention_days(tiny_config):
    assert tiny_config.faq.log_retention_days == 180  # the default
    keep = tiny_config.replace(faq__log_retention_days=0)
    _log_old_and_recent(faq_store(keep))
    svc = KnowledgeService(keep, progress=False)
    svc.ask(DUTIES)
    _an_hour_passes()
    svc.ask(DUTIES)
    assert _asked(svc.faq.store) == {"四十天前？", "十天前？", DUTIES}  # 0: nothing deleted

    bounded = tiny_config.replace(faq__log_retention_days=30)
    svc = KnowledgeService(bounded, progress=False)  # the store opens: the old row goes
    assert _asked(svc.faq.store) == {"十天前？", DUTIES}
    svc.faq.store.log_question("四十天前？", True, at=days_ago(40))
    _an_hour_passes()
    svc.ask("年假怎么申请？")  # a new question is logged: the old row goes
    assert _asked(svc.faq.store) == {"十天前？", DUTIES, "年假怎么申请？"}
