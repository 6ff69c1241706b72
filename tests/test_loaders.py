"""Tests for ingest.loaders: real files (bundled corpus and files generated in tmp_path)."""

from __future__ import annotations

import hashlib
import io
import logging
import re
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import docx
import pytest
from test_loader_fuzz import pdf_file

from ingest.loaders import (
    SUPPORTED_SUFFIXES,
    LoadError,
    decode_text,
    guess_title,
    load_document,
)

CORPUS = Path(__file__).resolve().parents[1] / "corpus"

TRADITIONAL = "市場部與銷售部的職責劃分，兩個部門經常發生衝突。"
SIMPLIFIED = "市场部与销售部的职责划分，两个部门经常发生冲突。"
LONG_SIMPLIFIED = (
    "第一篇:市场部与销售部的争吵\n"
    "出现争吵原因:市场发展阶段因素,设立市场部后销售部实力很强大,而市场部还没有成长起来,"
    "而企业也不明确各部门应该承担的正确职能,因此两个部门发生了冲突。\n"
)
LONG_TRADITIONAL = (
    "銷售管理與營銷管理的區別\n"
    "銷售管理是指通過銷售報價、銷售訂單、銷售發貨、退貨、銷售發票處理、客戶管理、"
    "價格管理等功能,對銷售全過程進行有效的控制和跟蹤。\n"
)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def load(tmp_path: Path, name: str, data: bytes, **kwargs: int):
    return load_document(write(tmp_path, name, data), tmp_path, **kwargs)


def load_error(tmp_path: Path, name: str, data: bytes, **kwargs: int) -> str:
    with pytest.raises(LoadError) as info:
        load(tmp_path, name, data, **kwargs)
    return str(info.value)


def make_docx(path: Path) -> Path:
    document = docx.Document()
    document.add_heading("销售部年度计划", level=1)
    document.add_paragraph("市场部负责品牌建设与市场调研。")
    table = document.add_table(rows=2, cols=2)
    for (row, col), value in {
        (0, 0): "部门",
        (0, 1): "职责",
        (1, 0): "销售部",
        (1, 1): "完成销售目标",
    }.items():
        table.cell(row, col).text = value
    document.add_paragraph("结尾段落")
    document.save(str(path))
    return path


def docx_with_body(path: Path, body_xml: str) -> Path:
    """A real python-docx file whose ``<w:body>`` content is replaced by ``body_xml``."""
    document = docx.Document()
    document.add_paragraph("placeholder")
    buffer = io.BytesIO()
    document.save(buffer)
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "word/document.xml":
                head, rest = data.decode("utf-8").split("<w:body>")
                section = rest[rest.index("<w:sectPr") :]
                data = f"{head}<w:body>{body_xml}{section}".encode()
            out.writestr(info.filename, data)
    return path


def w_paragraph(text: str, style: str = "") -> str:
    properties = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    return f"<w:p>{properties}<w:r><w:t>{text}</w:t></w:r></w:p>"


def make_pdf(path: Path) -> Path:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    pdfmetrics.registerFont(UnicodeCIDFont("MSung-Light"))
    pdf = canvas.Canvas(str(path))
    pdf.setFont("STSong-Light", 14)
    pdf.drawString(72, 750, "营销总部的三大职能")
    pdf.drawString(72, 720, "Sales 2024 市场部与销售部")
    pdf.showPage()
    pdf.setFont("MSung-Light", 14)
    pdf.drawString(72, 750, "銷售管理與營銷管理的區別")
    pdf.save()
    return path


# --------------------------------------------------------------------------- bundled corpus


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.txt")), ids=lambda p: p.name)
def test_bundled_file_text_is_exact_utf8(path: Path) -> None:
    data = path.read_bytes()
    doc = load_document(path, CORPUS)
    assert doc.text == data.decode("utf-8")
    assert doc.source == path.name
    assert doc.kind == "txt"
    assert doc.encoding == "utf-8"
    assert doc.sha256 == hashlib.sha256(data).hexdigest()


def test_bundled_corpus_has_five_files() -> None:
    assert len(list(CORPUS.glob("*.txt"))) == 5


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("000_33a7b961c4b11507.txt", "第一篇:市场部与销售部的争吵"),
        ("001_1affc7399647d656.txt", "某某软件公司市场部与销售部协调之道"),
        ("002_f56daec30e1164af.txt", "市场部还是销售部哪个更牛 聊聊这两个部门的那些事儿"),
        ("003_33e74751c8370314.txt", "营销总部的3大职能"),
        ("004_0178a570aaf2db53.txt", "銷售管理與營銷管理的區別"),
    ],
)
def test_bundled_titles(name: str, title: str) -> None:
    assert load_document(CORPUS / name, CORPUS).title == title


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    ("text", "encoding", "expected_encoding"),
    [
        (LONG_SIMPLIFIED, "gbk", "gb18030"),
        (LONG_SIMPLIFIED + "𠀀㐀€", "gb18030", "gb18030"),  # chars outside GBK
        (LONG_TRADITIONAL, "big5", "big5"),
        (TRADITIONAL, "big5", "big5"),  # 24 chars
        (SIMPLIFIED, "gbk", "gb18030"),  # 24 chars
        ("营销总部的3大职能", "gbk", "gb18030"),  # 9 chars
        ("銷售管理與營銷管理的區別", "big5", "big5"),  # 12 chars
        ("部門", "big5", "big5"),
        ("部门", "gbk", "gb18030"),
        (TRADITIONAL, "gbk", "gb18030"),  # Traditional characters saved as GBK
        ("銷售管理與營銷管理的區別：銷售部門負責客戶關係，營銷部門負責品牌。", "big5", "big5"),
        ("市场部与销售部的区别：销售部门负责客户关系，市场部门负责品牌。", "gbk", "gb18030"),
    ],
)
def test_legacy_chinese_encodings_decode_exactly(
    tmp_path: Path, text: str, encoding: str, expected_encoding: str
) -> None:
    data = text.encode(encoding)
    assert decode_text(data) == (text, expected_encoding)
    doc = load(tmp_path, "doc.txt", data)
    assert doc.text == text
    assert doc.encoding == expected_encoding


def test_short_samples_under_40_chars() -> None:
    big5_30 = "銷售部門與市場部門的職責劃分，兩者常常發生衝突與爭執，需要協調。"
    gbk_30 = "销售部门与市场部门的职责划分，两者常常发生冲突与争执，需要协调。"
    assert len(big5_30) < 40 and len(gbk_30) < 40
    assert decode_text(big5_30.encode("big5")) == (big5_30, "big5")
    assert decode_text(gbk_30.encode("gbk")) == (gbk_30, "gb18030")


def test_utf8_bom_is_stripped(tmp_path: Path) -> None:
    doc = load(tmp_path, "bom.md", b"\xef\xbb\xbf" + LONG_SIMPLIFIED.encode("utf-8"))
    assert doc.text == LONG_SIMPLIFIED
    assert doc.encoding == "utf-8-sig"
    assert doc.kind == "md"
    assert doc.title == "第一篇:市场部与销售部的争吵"


def test_crlf_and_cr_line_ends_become_lf(tmp_path: Path) -> None:
    """Quotes and citations never carry a raw \\r: the document's text has \\n line ends."""
    text = "营销总部的职能\r\n第一行内容\r\n\r\n第二行内容\r\n"
    for encoding in ("utf-8", "gbk"):
        doc = load(tmp_path, f"crlf-{encoding}.txt", text.encode(encoding))
        assert doc.text == text.replace("\r\n", "\n")
        assert "\r" not in doc.text
        assert doc.title == "营销总部的职能"
    doc = load(tmp_path, "cr.md", "标题一\r正文内容\r".encode())
    assert doc.text == "标题一\n正文内容\n"


def test_utf16_with_bom(tmp_path: Path) -> None:
    doc = load(tmp_path, "u16.txt", TRADITIONAL.encode("utf-16"))
    assert (doc.text, doc.encoding) == (TRADITIONAL, "utf-16")


def test_utf8_with_a_few_bad_bytes_is_utf8_with_replacements(tmp_path: Path) -> None:
    parts = [LONG_SIMPLIFIED, LONG_TRADITIONAL, LONG_SIMPLIFIED, LONG_TRADITIONAL]
    bad = [b"\xff", b"\xfe", b"\x80", b"\xc3"]  # stray, stray, lone continuation, cut lead
    data = b"".join(part.encode("utf-8") + junk for part, junk in zip(parts, bad, strict=True))
    expected = "".join(part + "\ufffd" for part in parts)
    assert decode_text(data) == (expected, "utf-8")
    doc = load(tmp_path, "mixed.txt", data)
    assert doc.text == expected
    assert doc.encoding == "utf-8"
    assert doc.notes == ("4 undecodable bytes replaced with U+FFFD (utf-8)",)
    assert doc.title == "第一篇:市场部与销售部的争吵"


def test_mostly_ascii_with_a_stray_byte(tmp_path: Path) -> None:
    data = b"Sales handbook\n" + b"plain ascii text. " * 20 + b"caf\xe9\n"
    doc = load(tmp_path, "notes.md", data)
    assert doc.text.endswith("caf\ufffd\n")
    assert doc.notes == ("1 undecodable byte replaced with U+FFFD (utf-8)",)


def test_utf8_bom_with_bad_bytes_keeps_bom_encoding(tmp_path: Path) -> None:
    data = codecs_bom_utf8() + (LONG_SIMPLIFIED * 3).encode("utf-8") + b"\xff"
    doc = load(tmp_path, "bom.txt", data)
    assert doc.text == LONG_SIMPLIFIED * 3 + "\ufffd"
    assert doc.encoding == "utf-8-sig"
    assert doc.notes == ("1 undecodable byte replaced with U+FFFD (utf-8-sig)",)


def codecs_bom_utf8() -> bytes:
    return "\ufeff".encode()


@pytest.mark.parametrize(
    ("text", "encoding", "expected_encoding"),
    [
        (LONG_SIMPLIFIED * 20, "gb18030", "gb18030"),
        (LONG_TRADITIONAL * 20, "big5", "big5"),
        (LONG_SIMPLIFIED, "gbk", "gb18030"),
        (LONG_TRADITIONAL, "big5", "big5"),
    ],
    ids=["gb18030-long", "big5-long", "gbk-short", "big5-short"],
)
def test_legacy_files_are_not_taken_for_broken_utf8(
    tmp_path: Path, text: str, encoding: str, expected_encoding: str
) -> None:
    doc = load(tmp_path, "legacy.txt", text.encode(encoding))
    assert (doc.text, doc.encoding, doc.notes) == (text, expected_encoding, ())


def test_clean_files_have_no_notes(tmp_path: Path) -> None:
    assert load(tmp_path, "ok.txt", LONG_SIMPLIFIED.encode("utf-8")).notes == ()
    assert load_document(make_docx(tmp_path / "plan.docx"), tmp_path).notes == ()


def test_html_with_a_few_bad_utf8_bytes(tmp_path: Path) -> None:
    body = "".join(f"<p>{line}</p>" for line in LONG_SIMPLIFIED.splitlines() * 3)
    data = f"<html><body>{body}</body></html>".encode().replace(b"</p>", b"\xff</p>", 1)
    doc = load(tmp_path, "page.html", data)
    assert doc.text.splitlines()[0] == "第一篇:市场部与销售部的争吵\ufffd"
    assert doc.encoding == "utf-8"
    assert doc.notes == ("1 undecodable byte replaced with U+FFFD (utf-8)",)


def test_markdown_heading_title(tmp_path: Path) -> None:
    doc = load(tmp_path, "notes.md", "# 市场部工作手册\n\n正文内容。\n".encode())
    assert doc.text == "# 市场部工作手册\n\n正文内容。\n"
    assert doc.title == "市场部工作手册"


def test_source_is_relative_posix_path(tmp_path: Path) -> None:
    path = write(tmp_path, "sub/dir/Note.TXT", LONG_SIMPLIFIED.encode("utf-8"))
    doc = load_document(path, tmp_path)
    assert doc.source == "sub/dir/Note.TXT"
    assert doc.kind == "txt"


# --------------------------------------------------------------------------- docx / pdf / html


def test_docx_paragraphs_and_table(tmp_path: Path) -> None:
    doc = load_document(make_docx(tmp_path / "plan.docx"), tmp_path)
    assert doc.text == (
        "# 销售部年度计划\n市场部负责品牌建设与市场调研。\n部门\n职责\n销售部\n完成销售目标\n结尾段落"
    )
    assert doc.title == "销售部年度计划"
    assert (doc.kind, doc.encoding) == ("docx", "")


def test_docx_merged_cells_appear_once(tmp_path: Path) -> None:
    document = docx.Document()
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "合并表头单元格"
    table.cell(1, 0).text = "左下角"
    table.cell(1, 1).text = "右下角"
    document.save(str(tmp_path / "merged.docx"))
    doc = load_document(tmp_path / "merged.docx", tmp_path)
    assert doc.text == "合并表头单元格\n左下角\n右下角"


def test_docx_vertical_merge_and_nested_table(tmp_path: Path) -> None:
    document = docx.Document()
    table = document.add_table(rows=3, cols=2)
    table.cell(0, 0).merge(table.cell(2, 0)).text = "竖向合并"
    table.cell(0, 1).text = "右上"
    inner = table.cell(1, 1).add_table(rows=1, cols=2)
    inner.cell(0, 0).text = "内表左"
    inner.cell(0, 1).text = "内表右"
    table.cell(2, 1).text = "右下"
    document.save(str(tmp_path / "nested.docx"))
    doc = load_document(tmp_path / "nested.docx", tmp_path)
    assert doc.text == "竖向合并\n右上\n内表左\n内表右\n右下"


def test_docx_vertical_merge_continuation_in_first_row(tmp_path: Path) -> None:
    # python-docx raises ValueError looking for the cell above; the text is still there.
    cell = "<w:tc><w:tcPr><w:vMerge/></w:tcPr>" + w_paragraph("首行续接单元格") + "</w:tc>"
    path = docx_with_body(tmp_path / "vmerge.docx", f"<w:tbl><w:tr>{cell}</w:tr></w:tbl>")
    assert load_document(path, tmp_path).text == "首行续接单元格"


def test_docx_title_style_beats_heading_and_ignores_tables(tmp_path: Path) -> None:
    cell = f"<w:tc>{w_paragraph('表格里的标题样式', 'Title')}</w:tc>"
    body = (
        w_paragraph("一级标题段落", "Heading1")
        + f"<w:tbl><w:tr>{cell}</w:tr></w:tbl>"
        + w_paragraph("   ", "Title")
        + w_paragraph("文档  真正的标题", "Title")
    )
    doc = load_document(docx_with_body(tmp_path / "styled.docx", body), tmp_path)
    assert doc.text == "# 一级标题段落\n表格里的标题样式\n   \n# 文档  真正的标题"  # headings as Markdown writes them
    assert doc.title == "文档 真正的标题"


def test_docx_unknown_style_id_is_the_default_style(tmp_path: Path) -> None:
    body = w_paragraph("未知样式的段落", "NoSuchStyle") + w_paragraph("一级标题内容", "Heading1")
    doc = load_document(docx_with_body(tmp_path / "unknown.docx", body), tmp_path)
    assert doc.title == "一级标题内容"


def test_docx_with_40000_paragraphs(tmp_path: Path) -> None:
    # Loaded in about 2 s; the per-paragraph style lookup used to take minutes.
    count = 40_000
    paragraphs = [w_paragraph(f"第{i}段内容") for i in range(count)]
    paragraphs[20_000] = w_paragraph("中间的文档标题", "Title")
    paragraphs[30_000] = w_paragraph("后面的一级标题", "Heading1")
    path = docx_with_body(tmp_path / "long.docx", "".join(paragraphs))
    doc = load_document(path, tmp_path)
    lines = doc.text.split("\n")
    assert len(lines) == count
    assert lines[0] == "第0段内容"
    assert lines[20_000] == "# 中间的文档标题"
    assert lines[30_000] == "# 后面的一级标题"
    assert lines[-1] == f"第{count - 1}段内容"
    assert doc.title == "中间的文档标题"


def test_pdf_with_cjk_cid_fonts(tmp_path: Path) -> None:
    doc = load_document(make_pdf(tmp_path / "report.pdf"), tmp_path)
    assert "营销总部的三大职能" in doc.text
    assert "Sales 2024 市场部与销售部" in doc.text
    assert "銷售管理與營銷管理的區別" in doc.text  # second page, Traditional font
    assert doc.title == "营销总部的三大职能"
    assert (doc.kind, doc.encoding) == ("pdf", "")


def test_pdf_with_bad_offsets_loads_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, recwarn: pytest.WarningsRecorder
) -> None:
    data = make_pdf(tmp_path / "full.pdf").read_bytes()
    header_end = data.index(b"\n") + 1
    shifted = data[:header_end] + b"%padding that breaks every xref offset\n" + data[header_end:]
    with caplog.at_level(logging.DEBUG):
        doc = load(tmp_path, "shifted.pdf", shifted)
    assert "营销总部的三大职能" in doc.text
    assert not [r for r in caplog.records if r.name.startswith("pypdf")]
    assert not [w for w in recwarn if "pypdf" in str(w.filename)]


def test_pdf_without_text(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.write(str(tmp_path / "scan.pdf"))
    with pytest.raises(LoadError, match=r"no extractable text \(scanned pdf\?\)"):
        load_document(tmp_path / "scan.pdf", tmp_path)


def encrypted_pdf(tmp_path: Path, name: str, user_password: str, algorithm: str) -> Path:
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=str(make_pdf(tmp_path / "plain.pdf")))
    writer.encrypt(user_password=user_password, owner_password="x", algorithm=algorithm)
    writer.write(str(tmp_path / name))
    return tmp_path / name


@pytest.mark.parametrize("algorithm", ["AES-128", "AES-256", "RC4-128"])
def test_encrypted_pdf_with_empty_user_password_loads(tmp_path: Path, algorithm: str) -> None:
    doc = load_document(encrypted_pdf(tmp_path, "open.pdf", "", algorithm), tmp_path)
    assert "营销总部的三大职能" in doc.text
    assert doc.title == "营销总部的三大职能"


@pytest.mark.parametrize("algorithm", ["AES-128", "AES-256", "RC4-128"])
def test_encrypted_pdf_with_user_password_is_refused(tmp_path: Path, algorithm: str) -> None:
    path = encrypted_pdf(tmp_path, "locked.pdf", "secret", algorithm)
    with pytest.raises(LoadError, match=r"^encrypted pdf \(password required\)$"):
        load_document(path, tmp_path)


def test_aes_pdf_without_cryptography_says_so(tmp_path: Path) -> None:
    path = encrypted_pdf(tmp_path, "aes.pdf", "", "AES-128")
    script = (
        "import sys\n"
        "sys.modules['cryptography'] = sys.modules['Crypto'] = None  # both AES providers gone\n"
        "from ingest.loaders import LoadError, load_document\n"
        "try:\n"
        f"    load_document({str(path)!r}, {str(tmp_path)!r})\n"
        "except LoadError as exc:\n"
        "    print(exc)\n"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "encrypted pdf: needs the cryptography package", result.stderr


def pdf_with_objects(objects: list[bytes]) -> bytes:
    """A hand-made PDF: objects numbered from 1 (the first is the catalog), a valid xref."""
    return pdf_file(objects, b"<< /Root 1 0 R /Size %d >>" % (len(objects) + 1))


def stream(data: bytes) -> bytes:
    return b"<< /Length %d >>\nstream\n%s\nendstream" % (len(data), data)


def test_pdf_text_with_surrogates_is_valid_unicode(tmp_path: Path) -> None:
    # A ToUnicode map may give lone or paired UTF-16 surrogates; they cannot be UTF-8.
    cmap = (
        b"begincmap 1 begincodespacerange <00> <FF> endcodespacerange\n"
        b"3 beginbfchar <41> <D800> <42> <DC00> <43> <DC00> endbfchar endcmap"
    )
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R >>"
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>"
    )
    data = pdf_with_objects(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            page,
            stream(b"BT /F1 12 Tf 20 100 Td (Text ABC) Tj ET"),
            font,
            stream(cmap),
        ]
    )
    doc = load(tmp_path, "surrogates.pdf", data)
    assert "\U00010000\ufffd" in doc.text  # the pair joined, the lone one replaced
    doc.text.encode("utf-8")
    assert doc.notes == ("1 lone surrogate replaced with U+FFFD (pdf text)",)


def test_html_declared_utf7_with_lone_surrogates(tmp_path: Path) -> None:
    page = b'<meta charset="utf-7"><p>+XgJXOg-+2ADcAA-+2AA-end</p>'  # 市场, a pair, a lone one
    doc = load(tmp_path, "u7.html", page)
    assert doc.text == "市场\U00010000\ufffdend"
    assert doc.notes == ("1 lone surrogate replaced with U+FFFD (utf-7)",)


HTML = """<!DOCTYPE html>
<html><head>
<meta http-equiv="Content-Type" content="text/html; charset=gb2312">
<title>市场部与销售部 - 管理文库</title>
<style>body { color: red; } .secret-style {}</style>
<script>var secret = "脚本内容不应出现";</script>
</head>
<body>
<nav>首页 | 导航栏</nav><header>站点页眉</header>
<h1>市场部的职责</h1>
<div><p>市场部负责<b>品牌</b>建设，
以及市场调研。</p>
<ul><li>第一条</li><li>第二条</li></ul></div>
<noscript>请启用脚本</noscript><!-- 注释 -->
<table><tr><td>部门</td><td>职责</td></tr></table>
<footer>版权所有</footer>
</body></html>
"""


def test_html_visible_text_with_declared_charset(tmp_path: Path) -> None:
    doc = load(tmp_path, "page.html", HTML.encode("gbk"))
    assert doc.text == (
        "# 市场部的职责\n市场部负责品牌建设，以及市场调研。\n- 第一条\n- 第二条\n部门\n职责"
    )
    for hidden in ("secret", "脚本", "color", "导航", "页眉", "版权", "注释", "管理文库"):
        assert hidden not in doc.text
    assert doc.title == "市场部与销售部 - 管理文库"
    assert (doc.kind, doc.encoding) == ("html", "gb18030")


def test_html_main_content_and_structure(tmp_path: Path) -> None:
    """Only the page's <main>/<article> is content; breadcrumbs and related-article lists (by
    class) are not; headings and list items keep their structure the way Markdown writes it."""
    page = (
        '<html><body><div class="breadcrumb">首页 &gt; 制度</div><header>站点名称</header>'
        "<main><h2>请假流程</h2><ol><li>填写请假单</li><li>主管审批</li></ol>"
        '<ul><li>病假须附证明</li></ul><div class="related-articles"><p>相关文章：年假规定</p></div>'
        "</main><aside>广告位</aside><footer>版权</footer></body></html>"
    )
    doc = load(tmp_path, "leave.html", page.encode())
    assert doc.text == "## 请假流程\n1. 填写请假单\n2. 主管审批\n- 病假须附证明"
    page = '<body><div id="nav-menu">菜单</div><p>正文一</p><div class="share-bar">分享</div><p>正文二</p></body>'
    assert load(tmp_path, "plain.html", page.encode()).text == "正文一\n正文二"
    # an <aside> inside <main> (a related-article list without a telling class) is not content
    page = ("<main><h2>结语</h2><p>态度决定高度。</p><aside><h3>相关文章</h3><ul><li><a href='/a/2'>新员工入职须知"
            " 2024-02-18</a></li></ul></aside><p>完。</p></main>")
    assert load(tmp_path, "aside.html", page.encode()).text == "## 结语\n态度决定高度。\n完。"


def test_htm_without_charset_or_title(tmp_path: Path) -> None:
    body = f"<h1>營銷管理</h1><p>{TRADITIONAL}</p><p>第二段內容</p>"
    doc = load(tmp_path, "page.htm", body.encode("big5"))
    assert doc.text == f"# 營銷管理\n{TRADITIONAL}\n第二段內容"
    assert doc.title == "營銷管理"
    assert (doc.kind, doc.encoding) == ("html", "big5")


def test_html_br_pre_and_cjk_soft_breaks(tmp_path: Path) -> None:
    page = (
        "<p>第一行<br>第二行</p><pre>代码一\n  代码二</pre>"
        "<p>中文\n换行</p><p>English\nwords</p>尾<b>部</b>文字"
    )
    doc = load(tmp_path, "fmt.html", page.encode("utf-8"))
    assert doc.text == "第一行\n第二行\n代码一\n代码二\n中文换行\nEnglish words\n尾部文字"


def test_html_with_xml_declaration(tmp_path: Path) -> None:
    page = '<?xml version="1.0" encoding="iso-8859-1"?><html><body><p>中文内容</p></body></html>'
    assert load(tmp_path, "x.html", page.encode("utf-8")).text == "中文内容"


def test_html_with_20000_paragraphs(tmp_path: Path) -> None:
    # Well under a second; inserting line-break markers into a soup was quadratic (91 s).
    body = "".join(f"<p>第{i}段</p>" for i in range(20_000))
    doc = load(tmp_path, "many.html", f"<html><body>{body}</body></html>".encode())
    assert doc.text == "\n".join(f"第{i}段" for i in range(20_000))
    assert doc.notes == ()


def test_html_with_200000_nested_divs(tmp_path: Path) -> None:
    # Deeper than libxml2's 2048 levels: block tags are read as line breaks instead.
    depth = 200_000
    deep = "<div>" * depth + "深层文本" + "</div>" * depth
    page = f"<title>深层页面</title><p>前文</p>{deep}<p>后文</p>"
    doc = load(tmp_path, "deep.html", page.encode())
    assert doc.text == "前文\n深层文本\n后文"
    assert doc.title == "深层页面"
    assert doc.notes == ("html nested too deeply for lxml; block tags read as line breaks",)


def test_deep_html_still_drops_hidden_parts_and_finds_h1(tmp_path: Path) -> None:
    page = (
        "<div>" * 5000
        + "<script>hidden()</script><nav>导航</nav><h1>深处的<b>标题</b></h1>"
        + "<span>" * 3000
        + "正文<br>第二行"
    )
    doc = load(tmp_path, "deep.htm", page.encode())
    assert doc.text == "# 深处的标题\n正文\n第二行"
    assert doc.title == "深处的标题"  # inline tags are gone, so no space where <b> was


def test_html_too_deep_even_when_flattened(tmp_path: Path) -> None:
    page = "<pre>" * 3000 + "文本"
    message = load_error(tmp_path, "pre.html", page.encode())
    assert message.startswith("malformed html: ")


def test_html_with_only_scripts(tmp_path: Path) -> None:
    message = load_error(tmp_path, "s.html", b"<script>x()</script><style>a{}</style>")
    assert message == "no visible text in html"


# --------------------------------------------------------------------------- failures


def test_corrupt_docx_random_bytes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 8
    assert load_error(tmp_path, "random.docx", data).startswith("corrupt docx: ")


def test_corrupt_docx_truncated(tmp_path: Path) -> None:
    data = make_docx(tmp_path / "full.docx").read_bytes()
    assert load_error(tmp_path, "cut.docx", data[: len(data) // 2]).startswith("corrupt docx: ")


def test_docx_zip_without_document_part(tmp_path: Path) -> None:
    path = tmp_path / "other.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not a word document")
    with pytest.raises(LoadError, match=r"^corrupt docx: "):
        load_document(path, tmp_path)


def test_docx_not_a_zip(tmp_path: Path) -> None:
    assert load_error(tmp_path, "text.docx", "这不是压缩包".encode() * 50) == (
        "corrupt docx: not a zip file"
    )


def test_old_doc_renamed_to_docx(tmp_path: Path) -> None:
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    message = load_error(tmp_path, "old.docx", ole)
    assert message.startswith("corrupt docx: not a zip file")


def test_docx_zip_bomb_over_the_unpacked_limit(tmp_path: Path) -> None:
    # The real case: 0.95 MB unpacking to 315 MB took over 240 s and 5 GB; here 3 MB > 1 MB.
    path = docx_with_body(tmp_path / "bomb.docx", w_paragraph("炸" * 1_000_000))
    assert path.stat().st_size < 100_000
    message = load_error(tmp_path, "bomb.docx", path.read_bytes(), max_unpacked_bytes=1024 * 1024)
    assert re.fullmatch(r"docx unpacks to 3\.\d MB, over the 1 MB limit \(zip bomb\?\)", message)


def test_docx_zip_bomb_by_compression_ratio(tmp_path: Path) -> None:
    path = docx_with_body(tmp_path / "ratio.docx", w_paragraph("a" * (11 * 1024 * 1024)))
    message = load_error(tmp_path, "ratio.docx", path.read_bytes())
    assert message.startswith("docx member word/document.xml expands ")
    assert message.endswith(":1 to 11 MB (zip bomb?)")


def test_docx_under_the_unpacked_limit_loads(tmp_path: Path) -> None:
    path = docx_with_body(tmp_path / "ok.docx", w_paragraph("正常内容" * 10))
    assert load_document(path, tmp_path, max_unpacked_bytes=1024 * 1024).text == "正常内容" * 10


def set_declared_size(data: bytes, name: str, size: int, crc: int) -> bytes:
    """Rewrite a member's uncompressed size and CRC in the zip's central directory (which is
    what zipfile trusts): a zip that lies about what a member inflates to."""
    out = bytearray(data)
    entry = data.index(b"PK\x01\x02")
    while True:
        name_len = struct.unpack_from("<H", out, entry + 28)[0]
        if bytes(out[entry + 46 : entry + 46 + name_len]) == name.encode():
            struct.pack_into("<I", out, entry + 16, crc)
            struct.pack_into("<I", out, entry + 24, size)
            return bytes(out)
        entry = data.index(b"PK\x01\x02", entry + 4)


def test_docx_member_lying_about_its_size(tmp_path: Path) -> None:
    # Declares 4 KB (with the CRC of those 4 KB) but inflates to 30 MB: only 4 KB is read.
    path = docx_with_body(tmp_path / "liar.docx", w_paragraph("a" * (30 * 1024 * 1024)))
    data = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive, archive.open("word/document.xml") as xml:
        prefix = xml.read(4096)
    lying = set_declared_size(data, "word/document.xml", len(prefix), zlib.crc32(prefix))
    assert load_error(tmp_path, "liar.docx", lying).startswith("corrupt docx: ")


def test_corrupt_pdf_truncated(tmp_path: Path) -> None:
    data = make_pdf(tmp_path / "full.pdf").read_bytes()
    message = load_error(tmp_path, "cut.pdf", data[: len(data) // 2])
    assert message.startswith("corrupt pdf: ")


def test_corrupt_pdf_garbage_body(tmp_path: Path) -> None:
    message = load_error(tmp_path, "junk.pdf", b"%PDF-1.4\nnot really a pdf\n%%EOF\n")
    assert message.startswith("corrupt pdf: ")


def test_not_a_pdf(tmp_path: Path) -> None:
    assert load_error(tmp_path, "fake.pdf", b"hello world " * 10).startswith("corrupt pdf: ")


@pytest.mark.parametrize("name", ["empty.txt", "empty.md", "empty.docx", "empty.pdf", "e.html"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    assert load_error(tmp_path, name, b"") == "empty file"


@pytest.mark.parametrize(
    "data",
    [b" \n\t\r\n  ", "\u3000\u3000\r\n".encode("gbk"), "\ufeff  \n".encode("utf-8")],
    ids=["ascii", "ideographic-space-gbk", "bom-only"],
)
def test_whitespace_only_file(tmp_path: Path, data: bytes) -> None:
    assert load_error(tmp_path, "blank.txt", data) == "empty file"


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.mark.parametrize(
    "data",
    [
        "正常的文字".encode() + b"\x00\x00\x00" + b"more",
        PNG,
        bytes(range(1, 9)) * 50,  # control characters, no NUL
    ],
    ids=["nul-bytes", "png", "control-chars"],
)
def test_binary_file(tmp_path: Path, data: bytes) -> None:
    assert load_error(tmp_path, "bin.txt", data) == "binary file (not text)"


def test_undecodable_bytes(tmp_path: Path) -> None:
    data = b"\x80\xff" * 20 + b" abc"
    message = load_error(tmp_path, "bad.txt", data)
    assert message == "undecodable text (tried utf-8, gb18030, big5)"


def test_oversize_file(tmp_path: Path) -> None:
    message = load_error(tmp_path, "big.txt", b"a" * 100, max_bytes=10)
    assert message == "file too large (100 bytes > 10 bytes limit)"


def test_oversize_message_in_megabytes(tmp_path: Path) -> None:
    data = b"x" * (1024 * 1024 + 512 * 1024)
    message = load_error(tmp_path, "big.md", data, max_bytes=1024 * 1024)
    assert message == "file too large (1.5 MB > 1 MB limit)"


def test_file_at_limit_loads(tmp_path: Path) -> None:
    data = LONG_SIMPLIFIED.encode("utf-8")
    assert load(tmp_path, "ok.txt", data, max_bytes=len(data)).text == LONG_SIMPLIFIED


@pytest.mark.parametrize("name", ["data.xyz", "old.doc", "noext"])
def test_unsupported_suffix(tmp_path: Path, name: str) -> None:
    suffix = Path(name).suffix or "(no suffix)"
    assert load_error(tmp_path, name, b"some content") == f"unsupported file type {suffix}"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match=r"^cannot read file"):
        load_document(tmp_path / "missing.txt", tmp_path)


def test_path_outside_root_is_a_caller_error(tmp_path: Path) -> None:
    path = write(tmp_path, "a/doc.txt", LONG_SIMPLIFIED.encode("utf-8"))
    with pytest.raises(ValueError):
        load_document(path, tmp_path / "b")


def test_supported_suffixes() -> None:
    assert SUPPORTED_SUFFIXES == {".txt", ".md", ".docx", ".pdf", ".html", ".htm"}


# --------------------------------------------------------------------------- guess_title


def test_guess_title_skips_noise_lines() -> None:
    text = "\n- 相關推薦\n格式:docx\n大小:184.00 KB\nID:21082182\n第一\n  真正的标题在这里  \n正文"
    assert guess_title(text, "fallback") == "真正的标题在这里"


def test_guess_title_cuts_to_60_chars() -> None:
    line = "长" * 100
    assert guess_title(line, "x") == "长" * 60


def test_guess_title_fallback() -> None:
    assert guess_title("\n\n- 项目\n相关推荐\n短\n", "file-stem") == "file-stem"
