"""``make bench``'s live re-index section: what an administrator and the people asking see when a
document is uploaded to a running server.

On a throw-away copy of the corpus and of the current index (so nothing of the real ones is
touched and nothing already indexed is embedded again), one in-process server
(``app.server.create_app``, uvicorn on a loopback port) is asked by ``askers`` closed-loop
clients over HTTP: first for ``idle_s`` seconds with nothing else running, then while a
``pages``-page docx made here is uploaded through ``POST /api/admin/documents`` and indexed by
the background job. Two figures (issue 14's targets):

* **upload to first answer**: seconds from sending the upload to the first ``/api/ask`` answer
  citing the new document (asked every 0.2 s by one more client; target ≤ 30 s);
* **ask p95 during the re-index / idle p95**, the same askers and questions in the same run
  (target ≤ 3×).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

FACT_PAGE = 7
TOPICS = ["总则", "适用范围", "职责分工", "申请流程", "审批权限", "费用标准", "差旅住宿标准", "报销材料", "监督检查",
          "附则", "名词解释", "附录"]
QUESTION = "一线城市出差住宿标准是每晚多少元？"
FACT = "员工在一线城市出差的住宿标准为每晚六百八十元，二线城市为每晚四百五十元，超出部分由个人承担。"


def make_policy_docx(pages: int = 10) -> bytes:
    """A ``pages``-page policy in Word (a page break after each chapter, about 600 characters
    a page); the fact the benchmark asks about is on page ``FACT_PAGE`` (or the last)."""
    import docx

    document = docx.Document()
    document.add_heading("差旅与住宿管理办法（基准测试）", level=1)
    fact_page = min(FACT_PAGE, pages)
    for p in range(1, pages + 1):
        topic = TOPICS[(p - 1) % len(TOPICS)]
        document.add_heading(f"第{p}章 {topic}", level=2)
        for k in range(1, 7):
            document.add_paragraph(
                f"第{p}.{k}条 关于{topic}的第{k}项规定：各部门应当按照本办法第{p}章的要求，于每月{k + 3}日前"
                f"完成{topic}相关事项的登记和复核，由部门负责人签字确认后报人力资源部备案，逾期未报的按第{k}项处理。")
        if p == fact_page:
            document.add_paragraph(FACT)
        if p < pages:
            document.add_page_break()
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _percentiles(ms: Sequence[float]) -> dict[str, Any]:
    if not ms:
        return {"p50": None, "p95": None, "n": 0}
    a = np.asarray(ms, dtype=float)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2),
            "n": len(ms)}


def _copy_corpus(src: Path, dst: Path) -> None:
    def ignore(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if n.startswith(".")]

    shutil.copytree(src, dst, ignore=ignore, symlinks=True)


def live_reindex(cfg: Any, svc: Any, questions: Sequence[str], pages: int = 10, askers: int = 4,
                 idle_s: float = 10.0, timeout_s: float = 600.0, progress: bool = True) -> dict[str, Any]:
    """The section's figures (see the module's doc). ``svc`` lends its embedder (no second model
    load); ``questions`` are what the askers ask, in turn."""
    import httpx

    from app.server import create_app
    from kb.bench import serving
    from kb.service import KnowledgeService
    from kb.store import open_database
    from kb.store.keys import KeyStore

    say = (lambda m: print(m, file=__import__("sys").stderr, flush=True)) if progress else (lambda m: None)
    qs = [q for q in questions if q] or [QUESTION]
    tmp = Path(tempfile.mkdtemp(prefix="kb-bench-reindex-"))
    try:
        _copy_corpus(Path(cfg.corpus_dir), tmp / "corpus")
        current = Path(os.path.realpath(cfg.index_path))
        if (current / "manifest.json").exists():  # reuse it: only the new document is embedded
            shutil.copytree(current, tmp / "data" / "index")
        bcfg = cfg.replace(corpus_dir=tmp / "corpus", data_dir=tmp / "data", index_dir=None, database_url="",
                           app__require_key=False, app__chat_login=False)
        db = open_database(bcfg)
        token = KeyStore(db).add("bench", "admin")
        db.close()
        service = KnowledgeService(bcfg, embedder=svc.embedder, progress=False)
        app = create_app(bcfg, service=service)
        with serving(app) as base:
            rows: list[tuple[float, float, int]] = []  # (sent, ms, status)
            lock = threading.Lock()
            stop = threading.Event()

            def asker(offset: int) -> None:
                with httpx.Client(base_url=base, timeout=120) as c:
                    i = offset
                    while not stop.is_set():
                        q = qs[i % len(qs)]
                        i += 1
                        t0 = time.monotonic()
                        try:
                            status = c.post("/api/ask", json={"question": q}).status_code
                        except httpx.HTTPError:
                            status = -1
                        with lock:
                            rows.append((t0, 1000 * (time.monotonic() - t0), status))

            try:
                with httpx.Client(base_url=base, timeout=120) as warm:
                    for q in qs[:3]:
                        warm.post("/api/ask", json={"question": q})
                threads = [threading.Thread(target=asker, args=(k,), daemon=True) for k in range(askers)]
                say(f"live re-index: {askers} askers, {idle_s:g} s idle ...")
                t_idle = time.monotonic()
                for t in threads:
                    t.start()
                time.sleep(idle_s)
                data = make_policy_docx(pages)
                name = f"差旅与住宿管理办法-{pages}页.docx"
                say(f"live re-index: uploading a {pages}-page docx ({len(data):,} bytes) while they ask ...")
                admin = httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {token}"})
                t_up = time.monotonic()
                r = admin.post("/api/admin/documents", files=[("files", (name, data, "application/octet-stream"))])
                r.raise_for_status()
                job_id = r.json()["job"]["id"]
                first_answer_s = None
                job: dict[str, Any] = {}
                with httpx.Client(base_url=base, timeout=120) as waiting:
                    while time.monotonic() - t_up < timeout_s:
                        if first_answer_s is None:
                            a = waiting.post("/api/ask", json={"question": QUESTION}).json()
                            if any(c["source"] == name for c in a.get("citations", [])):
                                first_answer_s = time.monotonic() - t_up
                        if not job or job.get("status") not in ("done", "failed"):
                            job = admin.get(f"/api/admin/jobs/{job_id}").json()
                            if job.get("status") in ("done", "failed"):
                                t_done = time.monotonic()
                        if first_answer_s is not None and job.get("status") in ("done", "failed"):
                            break
                        if job.get("status") == "failed" or (job.get("status") == "done" and time.monotonic() - t_done > 15):
                            break  # failed, or done and still not cited after 15 s: reported as such
                        time.sleep(0.2)
                admin.close()
                stop.set()
                for t in threads:
                    t.join(120)
            finally:
                stop.set()
        if job.get("status") != "done":
            return {"error": f"the upload's job did not complete: {job.get('status')} {job.get('error', '')}".strip()}
        idle = [ms for sent, ms, _ in rows if t_idle <= sent and sent + ms / 1000 < t_up]
        during = [ms for sent, ms, _ in rows if sent >= t_up and sent + ms / 1000 <= t_done]
        stages = [[s["stage"], round((s["finished"] or s["started"]) - s["started"], 2)]
                  for s in job.get("progress", {}).get("stages", [])]
        pi, pd = _percentiles(idle), _percentiles(during)
        ratio = round(pd["p95"] / pi["p95"], 2) if pi["p95"] and pd["p95"] else None
        return {
            "pages": pages, "docx_bytes": len(data), "askers": askers, "idle_s": idle_s,
            "upload_to_first_answer_s": round(first_answer_s, 2) if first_answer_s is not None else None,
            "job_s": round(t_done - t_up, 2), "job_stages_s": stages,
            "embedded": job.get("result", {}).get("embedded"),
            "idle": pi, "during_reindex": pd, "p95_ratio": ratio,
            "errors": sum(1 for *_, s in rows if s != 200), "asks": len(rows),
            "target_upload_s": 30.0, "target_p95_ratio": 3.0,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def live_lines(lv: dict[str, Any]) -> list[str]:
    """The section as lines of text (the console summary and the Markdown report)."""
    if "error" in lv:
        return [f"live re-index: {lv['error']}"]
    up = lv["upload_to_first_answer_s"]
    ok_up = "within" if up is not None and up <= lv["target_upload_s"] else "OVER"
    ratio = lv["p95_ratio"]
    ok_ratio = "within" if ratio is not None and ratio <= lv["target_p95_ratio"] else "OVER"
    stages = ", ".join(f"{k} {v} s" for k, v in lv["job_stages_s"])
    return [
        f"upload of a {lv['pages']}-page docx ({lv['docx_bytes']:,} bytes) to the first answer citing it: "
        f"{up} s ({ok_up} the {lv['target_upload_s']:g} s target); the job took {lv['job_s']} s ({stages}; "
        f"{lv['embedded']} texts embedded)",
        f"ask p95 during the re-index {lv['during_reindex']['p95']} ms ({lv['during_reindex']['n']} asks) vs idle "
        f"{lv['idle']['p95']} ms ({lv['idle']['n']} asks), {lv['askers']} closed-loop askers: {ratio}x ({ok_ratio} "
        f"the {lv['target_p95_ratio']:g}x target); p50 {lv['during_reindex']['p50']} vs {lv['idle']['p50']} ms; "
        f"{lv['errors']} errors in {lv['asks']} asks",
    ]


__all__ = ["live_reindex", "live_lines", "make_policy_docx"]
