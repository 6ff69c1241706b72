"""The admin documents API over real HTTP (uvicorn on a free port, the hashing embedder, the tiny
corpus): uploads of a docx and a PDF made here are indexed by a background job and then cited
with exact offsets; disable, enable, replace and delete change what is cited without a restart
(and delete holds after one); bad files are refused by name while the good one of the same
upload goes in; 20 askers see no error while a re-index runs and switch to the new index when it
completes; a failing job leaves the old index serving and says why; a job waits for a `kb
ingest` holding the index; only admins get in."""

from __future__ import annotations

import functools
import io
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from conftest_app import ADMIN_TOKEN, CORPUS, LiveServer, add_user, login, tiny_config

from kb.index import index_lock

MAX_FILE = 200_000  # max_file_bytes of these servers

DOCX = "远程办公制度.docx"
DOCX_FACT = "员工每周可以申请远程办公两天，须提前一天在系统中提交远程办公申请。"
DOCX_QUESTION = "每周可以申请远程办公几天？"
DOCX_V2_FACT = "自明年起员工每周可以申请远程办公三天，须由部门经理批准。"
PDF = "设备领用规定.pdf"
PDF_FACT = "新员工入职当天可以领用笔记本电脑一台"
PDF_QUESTION = "新员工入职当天可以领用什么设备？"


# -- files made here ------------------------------------------------------------------------------
def make_docx(title: str, paragraphs: list[str], pages: int = 1) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    for p in range(pages):
        if pages > 1:
            document.add_heading(f"第{p + 1}节 说明", level=2)
        for text in paragraphs:
            document.add_paragraph(text)
        if pages > 1 and p < pages - 1:
            document.add_page_break()
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_pdf(lines: list[str]) -> bytes:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    pdf.setFont("STSong-Light", 14)
    for i, line in enumerate(lines):
        pdf.drawString(72, 750 - 30 * i, line)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


@functools.cache  # python-docx stamps the time into the zip: one file per fact
def docx_bytes(fact: str = DOCX_FACT) -> bytes:
    return make_docx("远程办公制度", ["第一条 远程办公的申请", fact, "第二条 远程办公期间须保持通讯畅通。"])


@functools.cache
def pdf_bytes() -> bytes:
    return make_pdf(["设备领用规定", "第一条 笔记本电脑", PDF_FACT + "，离职时归还。"])


# -- helpers --------------------------------------------------------------------------------------
def admin_config(tmp: Path):
    return tiny_config(tmp).replace(max_file_bytes=MAX_FILE, answer__calibrate=False)


def admin_client(server: LiveServer, token: str = ADMIN_TOKEN) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {token}"})


def wait_job(client: httpx.Client, job: dict, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        j = client.get(f"/api/admin/jobs/{job['id']}").json()
        if j["status"] in ("done", "failed"):
            return j
        assert time.monotonic() < deadline, j
        time.sleep(0.2)


def documents(client: httpx.Client) -> dict[str, dict]:
    r = client.get("/api/admin/documents")
    assert r.status_code == 200, r.text
    return {d["source"]: d for d in r.json()}


def ask(client: httpx.Client, question: str) -> dict:
    r = client.post("/api/ask", json={"question": question})
    assert r.status_code == 200, r.text
    return r.json()


def cited(answer: dict) -> set[str]:
    return {c["source"] for c in answer["citations"]}


def assert_exact(client: httpx.Client, answer: dict) -> None:
    for c in answer["citations"]:
        text = client.get(f"/api/documents/{quote(c['source'])}").json()["text"]
        assert text[c["start"]:c["end"]] == c["quote"]


def upload(client: httpx.Client, *files: tuple[str, bytes]) -> httpx.Response:
    return client.post("/api/admin/documents", files=[("files", (n, d, "application/octet-stream")) for n, d in files])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("docs-admin")
    with LiveServer(admin_config(tmp)) as live:
        live.tmp = tmp
        yield live


@pytest.fixture(scope="module")
def client(server):
    with admin_client(server) as c:
        yield c


# -- upload, cite, disable, enable, replace, delete ------------------------------------------------
def test_upload_docx_and_pdf_then_answers_cite_the_docx_exactly(client, server):
    before = ask(client, DOCX_QUESTION)
    assert DOCX not in cited(before)
    r = upload(client, (DOCX, docx_bytes()), (PDF, pdf_bytes()))
    assert r.status_code == 202, r.text
    body = r.json()
    assert [a["source"] for a in body["accepted"]] == [DOCX, PDF] and body["refused"] == []
    assert body["job"]["status"] in ("queued", "running") and body["job"]["kind"] == "upload"
    job = wait_job(client, body["job"])
    assert job["status"] == "done", job["error"]
    assert job["progress"]["files"][DOCX]["state"] == "parsed" and job["progress"]["files"][PDF]["state"] == "parsed"
    assert set(job["result"]["processed"]) == {DOCX, PDF}
    assert job["result"]["reused"] == len(CORPUS)  # incremental: the others were not parsed again
    assert [s["stage"] for s in job["progress"]["stages"]][:2] == ["parse", "embed"]
    assert job["actor"] == "key:tests-admin" and job["started_at"] and job["finished_at"]

    docs = documents(client)
    for name, kind in ((DOCX, "docx"), (PDF, "pdf")):
        d = docs[name]
        assert d["status"] == "indexed" and d["format"] == kind and d["chunks"] >= 1 and d["size"] > 0
        assert d["uploaded_by"] == "key:tests-admin" and d["indexed_at"]
    assert (server.config.corpus_dir / DOCX).read_bytes() == docx_bytes()  # stored in the corpus

    answer = ask(client, DOCX_QUESTION)
    assert DOCX in cited(answer)
    assert any("两天" in c["quote"] for c in answer["citations"] if c["source"] == DOCX)
    assert_exact(client, answer)
    assert PDF in cited(ask(client, PDF_QUESTION))


def test_open_a_document_text_outline_chunks_and_viewer(client):
    d = documents(client)[DOCX]
    r = client.get(f"/api/admin/documents/{d['id']}")
    assert r.status_code == 200
    full = r.json()
    assert DOCX_FACT in full["text"]
    assert full["outline"] and full["outline"][0]["label"] == "远程办公制度"
    assert full["chunks"] and all(full["text"][c["start"]:c["end"]] == c["text"] for c in full["chunks"])
    assert full["viewer"] == f"/view/{quote(DOCX)}"
    assert client.get(full["viewer"]).status_code == 200
    assert client.get("/api/admin/documents/0123456789abcdef").status_code == 404
    assert client.get("/api/admin/documents/..%2f..%2fetc").status_code in (404, 422)


def test_disable_then_enable(client, server):
    d = documents(client)[DOCX]
    r = client.patch(f"/api/admin/documents/{d['id']}", json={"enabled": False})
    assert r.status_code == 202, r.text
    assert wait_job(client, r.json()["job"])["status"] == "done"
    listed = documents(client)[DOCX]
    assert listed["status"] == "disabled" and not listed["indexed"]
    assert (server.config.corpus_dir / DOCX).exists()  # kept
    assert DOCX not in cited(ask(client, DOCX_QUESTION))
    # already disabled: nothing to do, no job
    again = client.patch(f"/api/admin/documents/{d['id']}", json={"enabled": False})
    assert again.status_code == 200 and again.json()["job"] is None
    assert client.patch(f"/api/admin/documents/{d['id']}", json={"enabled": "no"}).status_code == 422

    r = client.patch(f"/api/admin/documents/{d['id']}", json={"enabled": True})
    assert r.status_code == 202
    job = wait_job(client, r.json()["job"])
    assert job["status"] == "done" and job["kind"] == "enable"
    assert documents(client)[DOCX]["status"] == "indexed"
    answer = ask(client, DOCX_QUESTION)
    assert DOCX in cited(answer)
    assert_exact(client, answer)


def test_replace_and_faq_entries_citing_it_are_flagged(client, server):
    service = server.app.state.service
    answer = ask(client, DOCX_QUESTION)
    c = next(c for c in answer["citations"] if c["source"] == DOCX)
    entry = service.faq.add("远程办公每周几天？", answer="每周两天 [1]", citations=[c])
    service.faq.approve(entry["id"])
    d = documents(client)[DOCX]
    r = client.put(f"/api/admin/documents/{d['id']}",
                   files={"file": ("新版.docx", docx_bytes(DOCX_V2_FACT), "application/octet-stream")})
    assert r.status_code == 202, r.text
    assert r.json()["document"]["source"] == DOCX and r.json()["document"]["id"] == d["id"]
    job = wait_job(client, r.json()["job"])
    assert job["status"] == "done" and job["result"]["processed"] == [DOCX]
    answer = ask(client, DOCX_QUESTION)
    quotes = " ".join(c["quote"] for c in answer["citations"] if c["source"] == DOCX)
    assert "三天" in quotes and "两天" not in quotes
    assert_exact(client, answer)
    assert service.faq.get(entry["id"])["status"] == "flagged"
    # the same version again, another type, an unknown id
    same = client.put(f"/api/admin/documents/{d['id']}", files={"file": ("x.docx", docx_bytes(DOCX_V2_FACT))})
    assert same.status_code == 409 and "unchanged" in same.json()["detail"]
    other = client.put(f"/api/admin/documents/{d['id']}", files={"file": ("x.pdf", pdf_bytes())})
    assert other.status_code == 415
    assert client.put("/api/admin/documents/0123456789abcdef", files={"file": ("x.docx", b"x")}).status_code == 404


def test_bad_uploads_are_refused_by_name_while_the_good_one_goes_in(client, server):
    corpus = server.config.corpus_dir
    good = ("好文件.md", "# 停车规定\n员工停车位每月收费五十元，由行政部统一安排。\n".encode())
    r = upload(
        client, good,
        ("太大了.txt", ("一" * (MAX_FILE // 3 + 10)).encode()),
        ("空文件.md", b""),
        ("假装.pdf", bytes(range(256)) * 20),
        ("../../etc/x.md", "# 路径\n穿越\n".encode()),
        (".hidden.md", "# 隐藏\n文件\n".encode()),
        ("程序.exe", b"MZ\x90\x00"),
        ("手册副本.txt", CORPUS["员工手册.txt"].encode()),
        ("乱码.txt", b"\x00\x01\x02\xff\xfe" * 200),
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert [a["source"] for a in body["accepted"]] == ["好文件.md"]
    refused = {x["file"]: (x["status"], x["reason"]) for x in body["refused"]}
    assert refused["太大了.txt"][0] == 413 and "too large" in refused["太大了.txt"][1]
    assert refused["空文件.md"] == (422, "empty file")
    assert refused["假装.pdf"][0] == 422 and "pdf" in refused["假装.pdf"][1]
    assert refused["../../etc/x.md"][0] == 400 and "folder" in refused["../../etc/x.md"][1]
    assert refused[".hidden.md"][0] == 400 and "hidden" in refused[".hidden.md"][1]
    assert refused["程序.exe"][0] == 415
    assert refused["手册副本.txt"][0] == 409 and "员工手册.txt" in refused["手册副本.txt"][1]
    assert refused["乱码.txt"][0] == 422
    assert len(refused) == 8
    job = wait_job(client, body["job"])
    assert job["status"] == "done" and job["result"]["processed"] == ["好文件.md"]
    assert "好文件.md" in cited(ask(client, "员工停车位每月收费多少？"))
    # nothing of the refused files anywhere: not in the corpus, not beside it, no staging left
    names = {p.name for p in corpus.rglob("*")}
    assert not names & {"x.md", ".hidden.md", "太大了.txt", "空文件.md", "假装.pdf", "程序.exe", "手册副本.txt"}
    assert not (corpus.parent / "etc").exists() and not (server.tmp / "etc").exists()
    assert not (corpus / ".kb-staging").exists()
    # a name already taken, the same content twice: 409 each; every file refused: the 4xx itself
    r = upload(client, ("好文件.md", b"# other\ntext\n"))
    assert r.status_code == 409 and "exists" in r.json()["detail"] and r.json()["job"] is None
    r = upload(client, ("a.txt", b"same text here"), ("b.txt", b"same text here"))
    assert r.status_code == 202 and [x["file"] for x in r.json()["refused"]] == ["b.txt"]
    wait_job(client, r.json()["job"])
    r = upload(client, ("空.md", b" \n"), ("x.bin", b"1"))
    assert r.status_code == 400 and {x["status"] for x in r.json()["refused"]} == {415, 422}
    # over the upload's body limit: 413 before anything is read
    r = upload(client, ("huge.txt", b"x" * (MAX_FILE + 1_100_000)))
    assert r.status_code == 413


def test_the_audit_log_records_each_change(client):
    r = client.get("/api/admin/audit", params={"limit": 200})
    assert r.status_code == 200, r.text
    actions = Counter(e["action"] for e in r.json() if e["action"].startswith("document."))
    assert actions["document.upload"] >= 3 and actions["document.disable"] >= 1
    assert actions["document.enable"] >= 1 and actions["document.replace"] >= 1
    assert {e["target"] for e in r.json() if e["action"] == "document.replace"} == {DOCX}


def test_jobs_list_newest_first(client):
    jobs = client.get("/api/admin/jobs").json()
    assert jobs and jobs == sorted(jobs, key=lambda j: -j["id"])
    assert all(j["status"] == "done" for j in jobs)
    assert client.get("/api/admin/jobs/999999").status_code == 404


def test_a_job_waits_for_a_kb_ingest_holding_the_index(client, server):
    with index_lock(server.config.index_path):  # what `kb ingest` in a shell holds
        r = upload(client, ("等待.md", "# 等待测试\n班车每天早上七点半从总部出发。\n".encode()))
        assert r.status_code == 202
        job = r.json()["job"]
        deadline = time.monotonic() + 30
        while (j := client.get(f"/api/admin/jobs/{job['id']}").json())["stage"] != "waiting for another ingest":
            assert time.monotonic() < deadline and j["status"] != "done", j
            time.sleep(0.1)
        assert j["status"] == "running"
        assert ask(client, DOCX_QUESTION)["answered"]  # the chat goes on meanwhile
    assert wait_job(client, job)["status"] == "done"
    assert "等待.md" in cited(ask(client, "班车每天几点从总部出发？"))


def test_delete_then_gone_also_after_a_restart(client, server):
    d = documents(client)[DOCX]
    r = client.delete(f"/api/admin/documents/{d['id']}")
    assert r.status_code == 202
    assert wait_job(client, r.json()["job"])["status"] == "done"
    assert DOCX not in documents(client) and not (server.config.corpus_dir / DOCX).exists()
    assert DOCX not in cited(ask(client, DOCX_QUESTION))
    assert client.get(f"/api/documents/{quote(DOCX)}").status_code == 404
    assert client.delete(f"/api/admin/documents/{d['id']}").status_code == 404
    # a new server on the same folders: still gone, the rest still there
    with LiveServer(server.config) as again, admin_client(again) as c2:
        docs = documents(c2)
        assert DOCX not in docs and docs[PDF]["status"] == "indexed"
        assert DOCX not in cited(ask(c2, DOCX_QUESTION)) and PDF in cited(ask(c2, PDF_QUESTION))


# -- live re-index under load ----------------------------------------------------------------------
def test_twenty_askers_during_a_reindex_see_no_error_and_switch_to_the_new_index(tmp_path):
    question = "食堂午餐几点开始供应？"
    new = ("食堂管理规定.md", "# 食堂管理规定\n食堂午餐每天十一点半开始供应，到下午一点结束。\n".encode())
    with LiveServer(admin_config(tmp_path)) as live, admin_client(live) as c:
        results: list[tuple[float, float, int, bool]] = []  # (sent, answered, status, cites the new one)
        stop = threading.Event()
        lock = threading.Lock()

        def asker() -> None:
            with httpx.Client(base_url=live.url, timeout=60) as own:
                while not stop.is_set():
                    t0 = time.monotonic()
                    try:
                        r = own.post("/api/ask", json={"question": question})
                        hit = r.status_code == 200 and new[0] in cited(r.json())
                        status = r.status_code
                    except httpx.HTTPError:
                        status, hit = -1, False
                    with lock:
                        results.append((t0, time.monotonic(), status, hit))

        threads = [threading.Thread(target=asker) for _ in range(20)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        submitted = time.monotonic()
        r = upload(c, new)
        assert r.status_code == 202
        job = wait_job(c, r.json()["job"])
        switched = time.monotonic()  # the job is done only once the service serves the new index
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join(60)
    assert job["status"] == "done"
    statuses = Counter(s for _, _, s, _ in results)
    assert statuses == Counter({200: len(results)}), statuses  # 0 errors
    before = [hit for _, done, _, hit in results if done < submitted]
    during = [hit for sent, done, _, hit in results if sent > submitted and done < switched]
    after = [hit for sent, _, _, hit in results if sent > switched]
    assert before and not any(before)  # the old index answered before the job
    assert after and all(after)  # every question asked once the job completed: the new index
    assert len(results) > 40 and during is not None


def test_a_failing_job_leaves_the_old_index_serving_and_says_why(tmp_path, monkeypatch):
    with LiveServer(admin_config(tmp_path)) as live, admin_client(live) as c:
        service = live.app.state.service
        generation = service.generation()
        built = c.get("/api/health").json()["index_built_at"]

        works = service.embedder.embed_passages

        def broken(texts):  # for the job's passages (the hashing embedder's queries use it too)
            if threading.current_thread().name == "kb-jobs":
                raise RuntimeError("embedding backend exploded")
            return works(texts)

        monkeypatch.setattr(service.embedder, "embed_passages", broken)
        r = upload(c, (DOCX, docx_bytes()))
        assert r.status_code == 202
        job = wait_job(c, r.json()["job"])
        assert job["status"] == "failed" and "embedding backend exploded" in job["error"]
        assert job["stage"] == "failed" and job["finished_at"]
        assert service.generation() == generation and c.get("/api/health").json()["index_built_at"] == built
        answer = ask(c, "病假三天以上还须谁复核？")
        assert answer["answered"] and DOCX not in cited(answer)
        assert documents(c)[DOCX]["status"] == "pending"  # stored, not yet indexed
        # once the embedder works again, the next job indexes it
        monkeypatch.undo()
        r = upload(c, ("另一个.md", "# 另一个\n会议室须提前一天预订。\n".encode()))
        assert wait_job(c, r.json()["job"])["status"] == "done"
        assert DOCX in cited(ask(c, DOCX_QUESTION))


# -- who may -------------------------------------------------------------------------------------
def test_only_admins(tmp_path):
    from kb.store import open_key_store

    with LiveServer(admin_config(tmp_path)) as live:
        ask_key = open_key_store(live.config).add("portal", "ask")
        add_user(live.config, "trainer1", "trainer", "trainer-pass-123")
        add_user(live.config, "admin1", "admin", "admin-pass-123")
        with httpx.Client(base_url=live.url, timeout=30) as anon:
            assert anon.get("/api/admin/documents").status_code == 401
            assert anon.post("/api/admin/documents", files=[("files", ("a.md", b"# a\nb\n"))]).status_code == 401
            page = anon.get("/admin", follow_redirects=False)
            assert page.status_code == 303 and page.headers["location"].startswith("/login?next=%2Fadmin")
        with admin_client(live, ask_key) as asker:
            assert asker.get("/api/admin/documents").status_code == 403
            assert asker.get("/api/admin/jobs").status_code == 403
        with httpx.Client(base_url=live.url, timeout=30) as trainer:
            login(trainer, "trainer1", "trainer-pass-123")
            assert trainer.get("/api/admin/documents").status_code == 403
            assert trainer.get("/admin").status_code == 403
        with httpx.Client(base_url=live.url, timeout=30) as admin:
            csrf = login(admin, "admin1", "admin-pass-123")
            page = admin.get("/admin")
            assert page.status_code == 200 and "文档管理" in page.text and csrf in page.text
            assert "script-src 'self'" in page.headers["content-security-policy"]
            d = documents(admin)["员工手册.txt"]
            del admin.headers["X-CSRF-Token"]
            r = admin.patch(f"/api/admin/documents/{d['id']}", json={"enabled": False})
            assert r.status_code == 403 and "CSRF" in r.json()["detail"]
            r = admin.patch(f"/api/admin/documents/{d['id']}", json={"enabled": False},
                            headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
            assert r.status_code == 403
            r = admin.patch(f"/api/admin/documents/{d['id']}", json={"enabled": False}, headers={"X-CSRF-Token": csrf})
            assert r.status_code == 202
            job = wait_job(admin, r.json()["job"])
            assert job["actor"] == "admin1" and documents(admin)["员工手册.txt"]["disabled_by"] == "admin1"
            # out of the index, its content is still known: the same bytes again are a duplicate
            admin.headers["X-CSRF-Token"] = csrf
            r = upload(admin, ("手册副本.txt", CORPUS["员工手册.txt"].encode()))
            assert r.status_code == 409 and "员工手册.txt" in r.json()["detail"]


def test_an_index_written_by_kb_ingest_in_a_shell_is_served_without_a_restart(client, server):
    from kb.service import run_ingest

    (server.config.corpus_dir / "门禁.md").write_text("# 门禁管理\n访客须在前台登记并佩戴访客证。\n", encoding="utf-8")
    run_ingest(server.config, progress=False)  # what `kb ingest` does, beside the running server
    deadline = time.monotonic() + 20  # the server looks every 5 s
    while "门禁.md" not in cited(ask(client, "访客进门要做什么？")):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert documents(client)["门禁.md"]["status"] == "indexed"


def test_the_bench_hook_runs_small(tmp_path):
    from kb.bench_reindex import live_lines, live_reindex
    from kb.service import KnowledgeService

    cfg = admin_config(tmp_path)
    svc = KnowledgeService(cfg, progress=False)
    res = live_reindex(cfg, svc, ["年假须提前几个工作日申请？"], pages=2, askers=1, idle_s=0.5, progress=False)
    assert res["errors"] == 0 and res["upload_to_first_answer_s"] is not None, res
    assert res["idle"]["n"] > 0 and res["during_reindex"]["n"] > 0 and res["p95_ratio"]
    assert "first answer citing it" in live_lines(res)[0]
