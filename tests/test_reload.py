"""Live re-indexing, below HTTP: ingest leaves disabled documents out (``exclude``, and the
documents table when not given), reports each file and stage, waits for another writer of the
index when asked, and ``KnowledgeService.reload`` swaps to a new index in one step, keeping the
old one for requests that started on it and when the new one cannot be loaded."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import EXPENSE, LEAVE, MARKETING

from ingest.pipeline import DISABLED_REASON
from kb.index import IndexBusy, index_lock
from kb.service import KnowledgeService, index_generation, run_ingest
from kb.store import open_database
from kb.store.documents import DocumentRecords

NEW = "出差补贴.md"
NEW_TEXT = "# 出差补贴标准\n出差补贴每天一百二十元，按实际出差天数计算，随报销单一并发放。\n"
QUESTION = "出差补贴每天多少钱？"


@pytest.fixture
def svc(tiny_config):
    return KnowledgeService(tiny_config, progress=False)


def cited(answer) -> set[str]:
    return {c.source for c in answer.citations}


def test_exclude_leaves_a_document_out_and_says_why(tiny_config):
    run_ingest(tiny_config, progress=False, exclude=())
    events: list[tuple[str, str]] = []
    result, manifest = run_ingest(tiny_config, progress=False, exclude={LEAVE},
                                  on_file=lambda s, state, d: events.append((s, state)))
    assert LEAVE not in manifest["documents"] and set(manifest["documents"]) == {EXPENSE, MARKETING}
    assert {"source": LEAVE, "reason": DISABLED_REASON} in manifest["skipped"]
    assert result.removed == [LEAVE]
    assert (LEAVE, "excluded") in events and (EXPENSE, "reused") in events
    assert (tiny_config.corpus_dir / LEAVE).exists()  # kept in the corpus


def test_disabled_documents_in_the_database_are_left_out_by_kb_ingest_too(tiny_config):
    # no database yet: nothing disabled, and none is created by reading
    run_ingest(tiny_config, progress=False)
    assert not (tiny_config.data_dir / "kb.sqlite3").exists()
    db = open_database(tiny_config)
    DocumentRecords(db).set_disabled(MARKETING, True, "admin")
    db.close()
    _, manifest = run_ingest(tiny_config, progress=False)  # what `kb ingest` calls
    assert MARKETING not in manifest["documents"]


def test_stages_and_files_are_reported(tiny_config):
    stages, files = [], {}
    (tiny_config.corpus_dir / NEW).write_text(NEW_TEXT, encoding="utf-8")
    (tiny_config.corpus_dir / "坏文件.pdf").write_bytes(b"not a pdf at all")
    run_ingest(tiny_config, progress=False, on_stage=lambda s, d: stages.append(s),
               on_file=lambda s, state, d: files.__setitem__(s, (state, d)))
    assert stages[:2] == ["parse", "embed"] and stages[-1] == "faq"
    assert files[NEW][0] == "parsed" and int(files[NEW][1]) >= 1
    assert files["坏文件.pdf"][0] == "skipped" and "pdf" in files["坏文件.pdf"][1]


def test_a_second_writer_waits_for_the_lock_when_asked(tiny_config):
    run_ingest(tiny_config, progress=False)
    stages: list[tuple[str, str]] = []
    done = threading.Event()
    with index_lock(tiny_config.index_path):  # as `kb ingest` in a shell holds it
        with pytest.raises(IndexBusy):
            run_ingest(tiny_config, progress=False)
        t = threading.Thread(target=lambda: (run_ingest(
            tiny_config, progress=False, wait=True, on_stage=lambda s, d: stages.append((s, d))), done.set()))
        t.start()
        time.sleep(0.5)
        assert stages and stages[0][0] == "waiting" and "being written by" in stages[0][1]
        assert not done.is_set()
    t.join(60)
    assert done.is_set() and [s for s, _ in stages][1] == "parse"


def test_reload_switches_to_the_new_index_and_is_cheap_when_nothing_changed(svc, tiny_config):
    before = svc.generation()
    assert before == index_generation(tiny_config.index_path)
    assert svc.reload() is False and svc.generation() == before
    old = svc.served
    assert NEW not in cited(svc.ask(QUESTION, log=False))

    (tiny_config.corpus_dir / NEW).write_text(NEW_TEXT, encoding="utf-8")
    run_ingest(tiny_config, svc.embedder, svc.segmenter, progress=False)
    assert svc.reload_due()
    assert NEW not in cited(svc.ask(QUESTION, log=False))  # still the old index until the reload
    assert svc.reload() is True
    assert svc.generation() != before and not svc.reload_due()
    answer = svc.ask(QUESTION, log=False)
    assert NEW in cited(answer)
    doc = svc.document(NEW).text
    assert all(doc[c.start:c.end] == c.quote for c in answer.citations if c.source == NEW)
    # a request that began on the old index finishes on it: its parts are untouched
    assert NEW not in old.index.documents and old.answerer.answer(QUESTION, QUESTION).citations is not None
    assert svc.faq.parts.index is svc.index  # the FAQ follows the served index
    assert svc.faq.parts.store is old.faq.parts.store  # on the same database connection pool


def test_a_new_index_that_cannot_load_leaves_the_old_one_serving(svc, tiny_config):
    before = svc.ask("年假须提前几个工作日申请？", log=False)
    assert before.answered and LEAVE in cited(before)
    (tiny_config.corpus_dir / NEW).write_text(NEW_TEXT, encoding="utf-8")
    run_ingest(tiny_config, svc.embedder, svc.segmenter, progress=False)
    real = index_generation(tiny_config.index_path).rsplit("@", 1)[0]
    (tiny_config.index_path.parent / real / "faiss.index").write_bytes(b"broken")
    served = svc.served
    with pytest.raises(Exception, match="damaged"):
        svc.reload()
    assert svc.served is served
    assert svc.ask("年假须提前几个工作日申请？", log=False).answer == before.answer


def test_a_provisional_threshold_is_carried_over_then_fitted(tiny_config):
    cfg = tiny_config.replace(answer__min_confidence=None)  # the fitted threshold is used
    _, first = run_ingest(cfg, progress=False)
    assert "threshold" in first["calibration"] and not first["calibration"].get("provisional")
    (cfg.corpus_dir / NEW).write_text(NEW_TEXT, encoding="utf-8")
    stages: list[str] = []
    _, quick = run_ingest(cfg, progress=False, provisional_calibration=True, on_stage=lambda s, d: stages.append(s))
    assert NEW in quick["documents"] and "calibrate" not in stages
    assert quick["calibration"]["provisional"] and quick["calibration"]["threshold"] == first["calibration"]["threshold"]
    assert quick["calibration"]["key"] == first["calibration"]["key"]  # so the next ingest fits it
    stages.clear()
    _, fitted = run_ingest(cfg, progress=False, on_stage=lambda s, d: stages.append(s))
    assert "calibrate" in stages and not fitted["calibration"].get("provisional")
    assert fitted["calibration"]["key"] != first["calibration"]["key"]
    assert fitted["counts"]["embedded"] == 0  # the second pass only calibrates


def test_a_job_answers_with_the_carried_threshold_first_then_fits_it(tiny_config):
    from kb.jobs import JobRunner
    from kb.store.documents import JobStore

    cfg = tiny_config.replace(answer__min_confidence=None)
    svc = KnowledgeService(cfg, progress=False)
    db = open_database(cfg)
    runner = JobRunner(svc, JobStore(db), DocumentRecords(db), watch_interval_s=60).start()
    try:
        (cfg.corpus_dir / NEW).write_text(NEW_TEXT, encoding="utf-8")
        job = runner.submit("upload", "tester", [NEW])
        assert runner.wait_idle(120)
        job = runner.get(job.id)
        assert job.status == "done", job.error
        assert [s["stage"] for s in job.progress["stages"]] == ["parse", "embed", "faq", "reload", "calibrate", "reload"]
        assert not svc.index.manifest["calibration"].get("provisional")
        assert NEW in svc.index.documents and svc.reloads == 2
    finally:
        runner.stop()
        db.close()
