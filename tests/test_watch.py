"""Several servers, below HTTP: ``kb.watch.IndexWatcher`` serves an index another process built
(within about a second; an index that cannot load is logged once and the old one serves), and
job runners of two services sharing one database (SQLite and PostgreSQL) leave each other's jobs
alone: a runner starting up does not fail the job another is running, and a job claimed by one
is not run by the other."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

from kb.jobs import JobRunner
from kb.service import KnowledgeService, index_generation, run_ingest
from kb.store import Database
from kb.store.documents import DocumentRecords, JobStore
from kb.watch import IndexWatcher

NEW = "出差补贴.md"
NEW_TEXT = "# 出差补贴标准\n出差补贴每天一百二十元，按实际出差天数计算，随报销单一并发放。\n"


def test_the_watcher_serves_an_index_built_elsewhere_within_a_second(tiny_config):
    svc = KnowledgeService(tiny_config, progress=False)
    watcher = IndexWatcher(svc, interval_s=0.2).start()
    try:
        assert not watcher.check()  # nothing new: two stat calls, no reload
        (tiny_config.corpus_dir / NEW).write_text(NEW_TEXT, encoding="utf-8")
        run_ingest(tiny_config, progress=False)  # another process's ingest, as far as svc knows
        t0 = time.monotonic()
        while NEW not in svc.index.documents:
            assert time.monotonic() - t0 < 3
            time.sleep(0.05)
        assert svc.reloads == 1 and svc.generation() == index_generation(tiny_config.index_path)
    finally:
        watcher.stop()


def test_an_index_that_cannot_load_is_reported_once_and_the_old_one_serves(tiny_config, caplog):
    svc = KnowledgeService(tiny_config, progress=False)
    served = svc.served
    (tiny_config.corpus_dir / NEW).write_text(NEW_TEXT, encoding="utf-8")
    run_ingest(tiny_config, svc.embedder, svc.segmenter, progress=False)
    real = index_generation(tiny_config.index_path).rsplit("@", 1)[0]
    (tiny_config.index_path.parent / real / "faiss.index").write_bytes(b"broken")
    watcher = IndexWatcher(svc)
    with caplog.at_level(logging.ERROR, logger="kb.watch"):
        assert not watcher.check() and not watcher.check() and not watcher.check()
    assert svc.served is served
    assert len([r for r in caplog.records if "cannot be loaded" in r.getMessage()]) == 1


class SlowIngest:
    """An ingest that waits to be let go (so a job stays running)."""

    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, config, embedder, segmenter, **kw):
        self.calls += 1
        self.started.set()
        assert self.release.wait(60)
        return run_ingest(config, embedder, segmenter, **kw)


def test_two_servers_runners_leave_each_others_jobs_alone(tiny_config, store_url):
    cfg = tiny_config.replace(database_url=store_url, answer__calibrate=False)
    run_ingest(cfg, progress=False)
    one, two = KnowledgeService(cfg, progress=False), KnowledgeService(cfg, progress=False)
    db_one, db_two = Database(store_url), Database(store_url)
    slow = SlowIngest()
    first = JobRunner(one, JobStore(db_one), DocumentRecords(db_one), watch_interval_s=60, ingest=slow).start()
    second = None
    try:
        (cfg.corpus_dir / NEW).write_text(NEW_TEXT, encoding="utf-8")
        running = first.submit("upload", "admin", [NEW])
        assert slow.started.wait(30)
        queued = first.submit("reindex", "admin", [])  # waits behind the running one
        other = SlowIngest()
        other.release.set()
        second = JobRunner(two, JobStore(db_two), DocumentRecords(db_two), watch_interval_s=60,
                           ingest=other).start()  # a second server starting up
        assert second.get(running.id).status == "running" and second.get(queued.id).status == "queued"
        second._run(queued.id)  # offered a job that is not its own: it is claimed once, here
        assert other.calls == 1 and second.get(queued.id).status == "done"
        second._run(running.id)  # already running on the first server: not run again
        assert other.calls == 1
        slow.release.set()
        assert first.wait_idle(60)
        assert first.get(running.id).status == "done", first.get(running.id).error
        assert slow.calls == 1  # the queued job was not run a second time by the first server
    finally:
        slow.release.set()
        first.stop()
        if second is not None:
            second.stop()
        db_one.close()
        db_two.close()


def test_a_runner_that_stopped_has_its_unfinished_jobs_failed_by_the_next(tiny_config, store_url):
    cfg = tiny_config.replace(database_url=store_url, answer__calibrate=False)
    run_ingest(cfg, progress=False)
    svc = KnowledgeService(cfg, progress=False)
    db = Database(store_url)
    try:
        jobs = JobStore(db)
        gone = JobRunner(svc, jobs, DocumentRecords(db), watch_interval_s=60).start()
        gone.stop()
        left = jobs.create("upload", "admin", [NEW], owner=gone.id)  # queued by it, never run
        fresh = JobRunner(svc, jobs, DocumentRecords(db), watch_interval_s=60).start()
        try:
            job = jobs.get(left.id)
            assert job.status == "failed" and "interrupted" in job.error
        finally:
            fresh.stop()
    finally:
        db.close()


def test_a_runners_heartbeat_keeps_its_jobs_from_being_failed(tiny_config, monkeypatch):
    from sqlalchemy import update

    import kb.jobs as jobs_mod
    from kb.store.documents import JobRow

    monkeypatch.setattr(jobs_mod, "HEARTBEAT_S", 0.05)
    db = Database(f"sqlite:///{tiny_config.data_dir / 'kb.sqlite3'}")
    try:
        store = JobStore(db)
        owner = "elsewhere:1:x"  # another machine's runner
        job = store.create("upload", "a", [], owner=owner)
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        with db.session() as s:
            s.execute(update(JobRow).where(JobRow.id == job.id).values(heartbeat_at=an_hour_ago))
        assert not jobs_mod.runner_alive(owner, _heartbeat_at(db, job.id))  # silent for an hour: gone
        runner = JobRunner(type("Service", (), {"config": tiny_config})(), store, DocumentRecords(db))
        runner.id = owner
        beat = threading.Thread(target=runner._heartbeat, daemon=True)
        beat.start()
        time.sleep(0.3)
        runner._stopping.set()
        beat.join(5)
        assert jobs_mod.runner_alive(owner, _heartbeat_at(db, job.id))  # it beat: alive
        assert store.abandon_unfinished("x", alive=lambda r: jobs_mod.runner_alive(r.owner, r.heartbeat_at)) == []
    finally:
        db.close()


def _heartbeat_at(db, job_id):
    from kb.store.documents import JobRow

    with db.session() as s:
        return s.get(JobRow, job_id).heartbeat_at
