"""The ingest pipeline end to end on generated corpora: legacy encodings, bad files skipped with
their reason, incremental re-ingest, near-duplicate passages folded."""

from __future__ import annotations

import shutil
from pathlib import Path

import docx
import pytest
from conftest import EXPENSE, LEAVE, MARKETING, TINY_CORPUS, hashing_config, write_tiny_corpus

from ingest.chunk import ChunkSettings
from ingest.pipeline import ingest_corpus
from kb.service import KnowledgeService

SETTINGS = ChunkSettings()

GBK_TEXT = (
    "销售部工作规范\n"
    "一、客户拜访\n"
    "销售人员每周至少拜访十家重点客户，并在当天填写拜访记录。\n"
    "二、回款管理\n"
    "货款须在发货后三十天内收回，逾期由区域经理负责催收。\n"
)
BIG5_TEXT = (
    "市場部工作規範\n"
    "一、品牌推廣\n"
    "市場部每季度制定一次品牌推廣計劃，報總經理批准後執行。\n"
    "二、市場調研\n"
    "調研報告須在調研結束後十個工作日內提交銷售部參考。\n"
)


def ingest(corpus: Path, previous=None, fingerprint: str = ""):
    return ingest_corpus(corpus, SETTINGS, previous, fingerprint, progress=False)


def make_docx(path: Path, paragraphs: list[str]) -> Path:
    document = docx.Document()
    for p in paragraphs:
        document.add_paragraph(p)
    document.save(str(path))
    return path


def make_pdf(path: Path, lines: list[str]) -> Path:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    pdf = canvas.Canvas(str(path))
    pdf.setFont("STSong-Light", 14)
    for i, line in enumerate(lines):
        pdf.drawString(72, 750 - 30 * i, line)
    pdf.save()
    return path


# -- legacy encodings ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "text", "encoding", "detected"),
    [("gbk.txt", GBK_TEXT, "gbk", "gb18030"), ("big5.txt", BIG5_TEXT, "big5", "big5")],
)
def test_legacy_encoded_files_ingest_with_exact_text(tmp_path, name, text, encoding, detected):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / name).write_bytes(text.encode(encoding))
    result = ingest(corpus)
    assert result.processed == [name] and not result.skipped
    doc = result.records[name].document
    assert doc.text == text
    assert doc.encoding == detected
    chunks = result.records[name].chunks
    assert chunks
    for c in chunks:
        assert text[c.start : c.end] == c.text
    joined = "\n".join(c.text for c in chunks)
    for line in text.splitlines():
        assert line in joined
    first_rule = text.splitlines()[2]
    assert any(c.text.endswith(first_rule) and c.section.endswith(text.splitlines()[1])
               for c in chunks)  # fmt: skip


# -- bad files are skipped, the rest ingests -------------------------------------------------------
def test_bad_files_are_skipped_with_their_reason(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "corpus")
    make_docx(corpus / "good.docx", ["市场部周报制度", "市场部每周五下午提交本周工作周报。"])
    make_pdf(corpus / "good.pdf", ["销售部月报制度", "销售部每月五日前提交上月销售报表。"])
    (corpus / "corrupt.docx").write_bytes(b"PK\x03\x04 this is not really a zip archive" * 20)
    truncated = make_pdf(tmp_path / "full.pdf", ["营销总部的三大职能"]).read_bytes()
    (corpus / "truncated.pdf").write_bytes(truncated[: len(truncated) // 2])
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "binary.txt").write_bytes(bytes(range(256)) * 16)
    (corpus / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)

    result = ingest(corpus)

    reasons = {s.source: s.reason for s in result.skipped}
    assert set(reasons) == {"corrupt.docx", "truncated.pdf", "empty.txt", "binary.txt", "image.png"}
    assert reasons["corrupt.docx"].startswith("corrupt docx: ")
    assert reasons["truncated.pdf"].startswith("corrupt pdf: ")
    assert reasons["empty.txt"] == "empty file"
    assert reasons["binary.txt"] == "binary file (not text)"
    assert reasons["image.png"] == "unsupported file type .png"
    good = {LEAVE, EXPENSE, MARKETING, "good.docx", "good.pdf"}
    assert set(result.records) == good
    assert sorted(result.processed) == sorted(good)
    texts = {s: "\n".join(c.text for c in r.chunks) for s, r in result.records.items()}
    assert "市场部每周五下午提交本周工作周报。" in texts["good.docx"]
    assert "销售部每月五日前提交上月销售报表。" in texts["good.pdf"]
    for rec in result.records.values():
        for c in rec.chunks:
            assert rec.document.text[c.start : c.end] == c.text


def test_missing_corpus_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus folder not found"):
        ingest(tmp_path / "nope")


# -- incremental re-ingest -------------------------------------------------------------------------
def test_reingest_touches_only_what_changed(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "corpus")
    first = ingest(corpus)
    assert sorted(first.processed) == sorted(TINY_CORPUS) and not first.reused

    same = ingest(corpus, first.records, first.fingerprint)
    assert same.processed == [] and sorted(same.reused) == sorted(TINY_CORPUS)
    assert same.removed == []
    assert [c.id for c in same.chunks] == [c.id for c in first.chunks]

    added = "第三章 出差\n出差须提前三天提交出差申请。\n"
    (corpus / LEAVE).write_text(TINY_CORPUS[LEAVE] + added, encoding="utf-8")
    (corpus / MARKETING).unlink()
    edited = ingest(corpus, same.records, same.fingerprint)
    assert edited.processed == [LEAVE]
    assert edited.reused == [EXPENSE]
    assert edited.removed == [MARKETING]
    assert MARKETING not in edited.records
    assert not any(c.source == MARKETING for c in edited.chunks)
    leave = edited.records[LEAVE]
    assert leave.document.text.endswith(added)
    assert any("出差须提前三天提交出差申请。" in c.text for c in leave.chunks)
    # the unchanged document is the previous record itself, not a re-chunked copy
    assert edited.records[EXPENSE] is same.records[EXPENSE]


def test_other_chunk_settings_rechunk_everything(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "corpus")
    first = ingest(corpus)
    other = ingest_corpus(corpus, ChunkSettings(max_chars=120), first.records, first.fingerprint,
                          progress=False)  # fmt: skip
    assert other.fingerprint != first.fingerprint
    assert sorted(other.processed) == sorted(TINY_CORPUS) and not other.reused


# -- near-duplicates -------------------------------------------------------------------------------
SHARED = (
    "市场部与销售部要建立每周例会制度，双方共同分析上周的销售数据和市场反馈，明确下周的推广重点。"
    "会后由市场部整理会议纪要，抄送销售部各区域经理。"
)


def test_near_duplicate_passages_are_folded(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a_协作制度.txt").write_text(
        "部门协作制度\n一、例会\n" + SHARED + "\n二、考核\n考核由人力资源部每季度组织一次。\n",
        encoding="utf-8",
    )
    # the copy differs in its headings and punctuation width only
    (corpus / "b_转载.txt").write_text(
        "转载文章\n一、会议\n" + SHARED.replace("，", ",") + "\n三、其他\n其他事项另行通知。\n",
        encoding="utf-8",
    )
    result = ingest(corpus)
    assert result.duplicates == 1
    dups = [c for c in result.chunks if c.dup_of]
    assert len(dups) == 1
    dup = dups[0]
    kept = next(c for c in result.chunks if c.id == dup.dup_of)
    assert dup.source == "b_转载.txt" and kept.source == "a_协作制度.txt"
    assert kept.also_in == [(dup.source, dup.start, dup.end)]
    assert dup not in result.kept_chunks and kept in result.kept_chunks

    svc = KnowledgeService(hashing_config(tmp_path / "data", corpus), progress=False)
    hits = svc.search("市场部和销售部每周例会分析销售数据", k=5)
    with_passage = [h for h in hits if "每周例会制度" in h.quote]
    assert len(with_passage) == 1
    hit = with_passage[0]
    assert hit.source == "a_协作制度.txt"
    assert hit.also_in == [("b_转载.txt", dup.start, dup.end)]
    other = svc.document("b_转载.txt").text
    assert "每周例会制度" in other[dup.start : dup.end]


def test_unrelated_passages_are_not_folded(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(write_tiny_corpus(tmp_path / "src"), corpus)
    result = ingest(corpus)
    assert result.duplicates == 0
    assert all(not c.dup_of and not c.also_in for c in result.chunks)
