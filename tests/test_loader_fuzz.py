"""Fuzz ingest.loaders with hostile files: each one loads as a Document or raises LoadError.

A seeded generator (no extra dependency, the same files on every run) builds about 300
files: random bytes, empty and NUL-filled files, huge lines, deep nesting, mixed encodings
and valid files of another format, each under every supported suffix; plus valid .docx /
.pdf / .html / .txt files made here and then garbled (bytes flipped, cut, inserted,
deleted), docx XML made malformed inside an intact zip, and hand-made broken PDFs.
Any exception other than LoadError is a bug, as is a Document whose text is not a str
(or not encodable as UTF-8, which the index needs).
"""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Callable
from pathlib import Path

import docx
import pytest

from ingest.loaders import SUPPORTED_SUFFIXES, LoadError, load_document

SEED = 20240917
SUFFIXES = sorted(SUPPORTED_SUFFIXES)
MAX_FILES = 300

Case = tuple[str, bytes]  # (file name, content)
Samples = dict[str, bytes]

CHINESE = "市场部负责品牌建设与市场调研，销售部负责完成销售目标。"
TRADITIONAL = "銷售管理與營銷管理的區別，兩個部門經常發生衝突。"
HTML_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>市场部职责</title>
<style>p { color: red }</style><script>var x = "<p>脚本</p>";</script></head>
<body><nav>导航</nav><h1>市场部的职责</h1><div><p>市场部负责<b>品牌</b>建设，
以及市场调研。<br>第二行</p><pre>代码 一
代码 二</pre><ul><li>第一条</li><li>第二条</li></ul>
<table><tr><td>部门</td><td>职责</td></tr></table></div><!-- 注释 --></body></html>
"""


# --------------------------------------------------------------------------- valid samples


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("销售部年度计划", level=1)
    document.add_paragraph(CHINESE)
    table = document.add_table(rows=3, cols=2)
    table.cell(0, 0).merge(table.cell(1, 0)).text = "合并单元格"
    table.cell(0, 1).text = "职责"
    table.cell(2, 0).merge(table.cell(2, 1)).text = "横向合并"
    table.cell(1, 1).add_table(rows=1, cols=1).cell(0, 0).text = "内表"
    document.add_paragraph(TRADITIONAL, style="Title")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_pdf(compress: bool) -> bytes:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pageCompression=int(compress))
    pdf.setFont("STSong-Light", 14)
    pdf.drawString(72, 750, "营销总部的三大职能")
    pdf.drawString(72, 720, "Sales 2024 市场部与销售部")
    pdf.showPage()
    pdf.setFont("Helvetica", 12)
    pdf.drawString(72, 750, "Second page")
    pdf.save()
    return buffer.getvalue()


@pytest.fixture(scope="module")
def samples() -> Samples:
    return {
        "docx": make_docx(),
        "pdf": make_pdf(compress=False),
        "pdfz": make_pdf(compress=True),
        "html": HTML_PAGE.encode("utf-8"),
        "txt": (CHINESE * 20 + "\n" + TRADITIONAL * 20).encode("utf-8"),
    }


# --------------------------------------------------------------------------- generators


def hostile_payloads(rng: random.Random, samples: Samples) -> list[Case]:
    """Content that is wrong for most or all formats, each under every suffix."""
    payloads = {
        "empty": b"",
        "whitespace": b" \r\n\t\x0b\x0c " * 50,
        "nul": bytes(4096),
        "ff": b"\xff" * 4096,
        "random-4k": rng.randbytes(4096),
        "random-64k": rng.randbytes(65536),
        "huge-cjk-line": "字".encode() * 400_000,
        "huge-ascii-line": b"a" * 1_000_000,
        "many-empty-lines": b"\n" * 500_000,
        "deep-div": b"<div>" * 100_000 + "文本".encode() + b"</div>" * 100_000,
        "deep-unclosed": b"<b><i><font>" * 50_000 + "文本".encode(),
        "deep-brackets": b"[" * 100_000 + b"<<" * 50_000,
        "mixed-encodings": (
            CHINESE.encode("utf-8")
            + CHINESE.encode("gbk")
            + TRADITIONAL.encode("big5")
            + CHINESE.encode("utf-16-le")
        ),
        "utf8-then-gbk": CHINESE.encode("utf-8") * 20 + CHINESE.encode("gbk"),
        "utf16-no-bom": (CHINESE * 10).encode("utf-16-le"),
        "utf16-bom-odd": b"\xff\xfe" + (CHINESE * 10).encode("utf-16-le") + b"\x00",
        "utf32-bom-junk": b"\xff\xfe\x00\x00" + rng.randbytes(101),
        "utf8-bom-junk": b"\xef\xbb\xbf" + rng.randbytes(200),
        "surrogates-cesu": b"\xed\xa0\x80\xed\xb0\x80" * 100 + CHINESE.encode() * 5,
        "overlong-utf8": b"\xc0\xaf\xe0\x80\xaf" * 50 + b"text",
        "control-chars": bytes(range(1, 32)) * 100,
        "fake-pdf": b"%PDF-1.7\n" + rng.randbytes(2000) + b"\n%%EOF\n",
        "fake-zip": b"PK\x03\x04" + rng.randbytes(2000),
        "fake-ole": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + rng.randbytes(2000),
        "html-bad-charset": b'<meta charset="x-unknown-42"><p>' + rng.randbytes(300) + b"</p>",
        "html-utf16-meta": b'<meta charset="utf-16"><p>' + CHINESE.encode("gbk") + b"</p>",
        "html-entities": b"<p>" + b"&#x110000;&#0;&#xD800;&amp;&bogus;&#99999999999;" * 200,
        "xml-decl": b'<?xml version="1.0" encoding="ebcdic"?><html><p>x</p></html>',
        "utf7-surrogates": b'<meta charset="utf-7"><p>+2ADcAA-+2AA-+3AA-</p>',
        "docx-bytes": samples["docx"],
        "pdf-bytes": samples["pdfz"],
        "html-bytes": samples["html"],
    }
    return [(f"{name}{suffix}", data) for name, data in payloads.items() for suffix in SUFFIXES]


def garble(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """One random corruption of ``data``: flip, cut, insert, delete or repeat bytes."""
    buffer = bytearray(data)
    kind = rng.choice(["flip", "cut", "insert", "delete", "repeat", "zero"])
    at = rng.randrange(len(buffer))
    if kind == "flip":
        for _ in range(rng.randint(1, 20)):
            buffer[rng.randrange(len(buffer))] ^= 1 << rng.randrange(8)
    elif kind == "cut":
        del buffer[at:]
    elif kind == "insert":
        buffer[at:at] = rng.randbytes(rng.randint(1, 200))
    elif kind == "delete":
        del buffer[at : at + rng.randint(1, 200)]
    elif kind == "repeat":
        buffer[at:at] = buffer[at : at + rng.randint(1, 500)] * rng.randint(2, 50)
    else:
        buffer[at : at + rng.randint(1, 200)] = bytes(min(200, len(buffer) - at))
    return kind, bytes(buffer)


def garbled_files(rng: random.Random, samples: Samples) -> list[Case]:
    """Valid files of each format with random corruptions, under their own suffix."""
    plan = {"docx": (".docx", 24), "pdf": (".pdf", 14), "pdfz": (".pdf", 10),
            "html": (".html", 12), "txt": (".txt", 8)}  # fmt: skip
    cases = []
    for sample, (suffix, count) in plan.items():
        for index in range(count):
            kind, data = garble(rng, samples[sample])
            cases.append((f"{sample}-{kind}-{index}{suffix}", data))
    return cases


def docx_with_xml(samples: Samples, replacements: dict[str, bytes | None]) -> bytes:
    """The sample docx with some members replaced (None: removed), re-zipped intact."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(samples["docx"])) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            data = replacements.get(info.filename, source.read(info.filename))
            if data is not None:
                target.writestr(info.filename, data)
    return out.getvalue()


def malformed_docx(rng: random.Random, samples: Samples) -> list[Case]:
    """Intact zips whose XML is malformed, hostile or deeply nested."""
    with zipfile.ZipFile(io.BytesIO(samples["docx"])) as archive:
        document = archive.read("word/document.xml")
        styles = archive.read("word/styles.xml")
    head, rest = document.split(b"<w:body>")
    tail = rest[rest.index(b"<w:sectPr") :]

    def body(xml: bytes) -> dict[str, bytes | None]:
        return {"word/document.xml": head + b"<w:body>" + xml + tail}

    paragraph = "<w:p><w:r><w:t>段落</w:t></w:r></w:p>".encode()
    variants: dict[str, dict[str, bytes | None]] = {
        "no-document": {"word/document.xml": None},
        "no-styles": {"word/styles.xml": None},
        "no-content-types": {"[Content_Types].xml": None},
        "empty-document": {"word/document.xml": b""},
        "not-xml": {"word/document.xml": "这不是XML".encode()},
        "unclosed": {"word/document.xml": document[: len(document) // 2]},
        "entity-bomb": {
            "word/document.xml": b'<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
            + b"".join(b"<!ENTITY a%d '%s'>" % (i + 1, b"&a%d;" % i * 10) for i in range(8))
            + b"]>"
            + document[document.index(b"<w:document") :].replace(b"\xe6\xae\xb5", b"&a8;", 1)
        },
        "bad-style-attrs": {
            "word/styles.xml": styles.replace(b'w:type="paragraph"', b'w:type="bogus"', 3)
            .replace(b'w:default="1"', b'w:default="maybe"')
            .replace(b"<w:name ", b"<w:name w:bogus='1' ", 5)
        },
        "styles-garbage": {"word/styles.xml": rng.randbytes(500)},
        "pstyle-no-val": body(b"<w:p><w:pPr><w:pStyle/></w:pPr><w:r><w:t>x</w:t></w:r></w:p>"),
        "vmerge-first-row": body(
            b"<w:tbl><w:tr><w:tc><w:tcPr><w:vMerge/></w:tcPr>"
            + paragraph
            + b"</w:tc></w:tr></w:tbl>"
        ),
        "vmerge-bogus": body(
            b'<w:tbl><w:tr><w:tc><w:tcPr><w:vMerge w:val="sideways"/><w:gridSpan w:val="-3"/>'
            + b"</w:tcPr>"
            + paragraph
            + b"</w:tc></w:tr></w:tbl>"
        ),
        "nested-tables-80": body(
            b"<w:tbl><w:tr><w:tc>" * 80 + paragraph + b"</w:tc></w:tr></w:tbl>" * 80
        ),
        "nested-tables-2000": body(
            b"<w:tbl><w:tr><w:tc>" * 2000 + paragraph + b"</w:tc></w:tr></w:tbl>" * 2000
        ),
        "many-paragraphs": body(paragraph * 20_000),
        "huge-run": body(b"<w:p><w:r><w:t>" + "字".encode() * 500_000 + b"</w:t></w:r></w:p>"),
        "foreign-elements": body(b"<w:sdt><w:sdtContent>" + paragraph + b"</w:sdtContent></w:sdt>"),
        "bomb-ratio": body(b"<w:p><w:r><w:t>" + b"a" * (11 * 1024 * 1024) + b"</w:t></w:r></w:p>"),
    }
    cases = [(f"{name}.docx", docx_with_xml(samples, parts)) for name, parts in variants.items()]
    for index in range(10):  # random garbling of the XML inside an intact zip
        _kind, xml = garble(rng, document)
        cases.append(
            (f"garbled-xml-{index}.docx", docx_with_xml(samples, {"word/document.xml": xml}))
        )
    return cases


def pdf_file(objects: list[bytes], trailer: bytes = b"<< /Root 1 0 R /Size 9 >>") -> bytes:
    """A PDF with the given objects (numbered from 1), a correct xref table and trailer."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n%s\nstartxref\n%d\n%%%%EOF\n" % (trailer, xref)
    return bytes(out)


def broken_pdfs(rng: random.Random, samples: Samples) -> list[Case]:
    """Hand-made PDFs with loops, absurd values and deep nesting."""
    catalog = b"<< /Type /Catalog /Pages 2 0 R >>"
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>"
    text = b"BT /F1 12 Tf 20 100 Td (Hello) Tj ET"
    stream = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text)
    variants = {
        "pages-loop": [catalog, b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"],
        "kids-self": [catalog, b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>", page],
        "huge-count": [catalog, b"<< /Type /Pages /Kids [3 0 R] /Count 999999999 >>", page, stream],
        "deep-array": [catalog, b"<< /Type /Pages /Kids [" + b"[" * 5000 + b"] >>"],
        "deep-dict": [catalog, b"<< /A " * 5000 + b">>" * 5000],
        "bad-length": [
            catalog,
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            page,
            b"<< /Length 999999 >>\nstream\n" + text + b"\nendstream",
        ],
        "no-font": [catalog, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", page, stream],
        "contents-loop": [
            catalog,
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /Contents [3 0 R 4 0 R] >>",
            stream,
        ],
        "random-objects": [catalog, rng.randbytes(300), rng.randbytes(300)],
        "surrogate-tounicode": [
            catalog,
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length 30 >>\nstream\nBT /F1 12 Tf (ABCBA) Tj ET\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R >>",
            b"<< /Length 90 >>\nstream\nbegincmap 2 beginbfchar <41> <D800> <42> <DFFF>"
            b" endbfchar endcmap\nendstream",
        ],
        "bad-filter": [
            catalog,
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            page,
            b"<< /Length 10 /Filter /FlateDecode >>\nstream\n" + rng.randbytes(10) + b"\nendstream",
        ],
    }
    return [(f"{name}.pdf", pdf_file(objects)) for name, objects in variants.items()]


FAMILIES: dict[str, Callable[[random.Random, Samples], list[Case]]] = {
    "hostile-payloads": hostile_payloads,
    "garbled-files": garbled_files,
    "malformed-docx": malformed_docx,
    "broken-pdfs": broken_pdfs,
}


# --------------------------------------------------------------------------- the checks


def problem_with(path: Path, root: Path) -> str:
    """Empty when ``load_document`` gives a sane Document or raises LoadError, else the bug."""
    try:
        doc = load_document(path, root)
    except LoadError as exc:
        return "" if str(exc) else "LoadError without a reason"
    except Exception as exc:  # noqa: BLE001 - exactly what this test is looking for
        return f"{type(exc).__name__}: {exc}"[:300]
    if not isinstance(doc.text, str) or not isinstance(doc.title, str):
        return f"text/title not str: {type(doc.text).__name__}/{type(doc.title).__name__}"
    if not isinstance(doc.notes, tuple):
        return f"notes not a tuple: {doc.notes!r}"
    try:
        (doc.text + doc.title).encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"text not encodable as UTF-8: {exc}"
    return ""


@pytest.mark.parametrize("family", FAMILIES)
def test_hostile_files_load_or_raise_load_error(
    tmp_path: Path, samples: Samples, family: str
) -> None:
    cases = FAMILIES[family](random.Random(f"{SEED}-{family}"), samples)
    problems = []
    for index, (name, data) in enumerate(cases):
        path = tmp_path / f"{index:03d}-{name}"
        path.write_bytes(data)
        problem = problem_with(path, tmp_path)
        if problem:
            problems.append(f"{path.name}: {problem}")
        path.unlink()
    assert not problems, "\n".join(problems)


def test_fuzz_corpus_is_bounded_and_covers_every_suffix(samples: Samples) -> None:
    names = [
        name
        for family, generate in FAMILIES.items()
        for name, _ in generate(random.Random(f"{SEED}-{family}"), samples)
    ]
    assert len(names) <= MAX_FILES
    assert {Path(name).suffix for name in names} == SUPPORTED_SUFFIXES
