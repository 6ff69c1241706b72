"""The stores of every table on SQLite and on a real PostgreSQL server (``store_url`` runs each
test on both; ``conftest_pg`` starts the server): accounts, sessions and the audit log; answer
feedback; FAQ entries, their history, the revision counter and the ask log; documents and jobs
(a job is claimed once however many runners race for it; a starting server fails only the
jobs of runners that are gone); the import of the old SQLite files with the id sequences moved
past the imported ids; timestamps come back timezone-aware, Chinese text and JSON exactly."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from kb.faq.store import FaqEntry, FaqStore
from kb.store import Database
from kb.store.accounts import DuplicateUser, UserStore, audit, audit_entries
from kb.store.documents import DocumentRecords, JobRow, JobStore
from kb.store.feedback import FeedbackStore

CITES = [{"n": 1, "source": "员工手册.txt", "title": "员工手册", "section": "3.2 请假流程", "start": 12,
          "end": 40, "quote": "员工因病不能到岗的，应于当天上班前向直属主管电话报备。"}]


@pytest.fixture
def db(store_url):
    d = Database(store_url)
    yield d
    d.close()


def test_the_backend_is_what_the_test_says(db, store_url):
    assert db.engine.dialect.name == store_url.split(":")[0].split("+")[0]


# -- accounts, sessions, audit -------------------------------------------------------------------------
def test_accounts_and_sessions(db):
    users = UserStore(db, session_hours=1)
    wang = users.add("王经理", "admin", "correct-horse-1")
    users.add("li", "trainer", "correct-horse-2")
    with pytest.raises(DuplicateUser):
        users.add("王经理", "user", "correct-horse-3")
    assert [u.name for u in users.list()] == sorted(["王经理", "li"])
    assert users.authenticate("王经理", "wrong-password") is None
    logged = users.authenticate("王经理", "correct-horse-1")
    assert logged.last_login_at is not None and logged.last_login_at.tzinfo is not None

    token, info = users.start_session(wang, "10.0.0.1", "pytest")
    assert info.expires_at.tzinfo is not None
    assert timedelta(minutes=59) < info.expires_at - datetime.now(UTC) <= timedelta(hours=1)
    assert users.session(token).user.name == "王经理"
    second, _ = users.start_session(wang)
    users.set_password("王经理", "correct-horse-9")  # every session of the account ends
    assert users.session(token) is None and users.session(second) is None
    token, _ = users.start_session(users.get("王经理"))
    users.expire_session(token)
    assert users.session(token) is None
    token, _ = users.start_session(users.get("li"))
    assert users.end_session(token) and not users.end_session(token)
    token, _ = users.start_session(users.get("li"))
    users.set_disabled("li", True)
    assert users.session(token) is None and users.authenticate("li", "correct-horse-2") is None
    assert users.set_disabled("li", False).disabled_at is None
    assert users.set_role("li", "admin").role == "admin" and users.count("admin") == 2


def test_the_audit_log(db):
    with db.session() as s:
        audit(s, "王经理", "user.add", "li", {"role": "trainer", "备注": "新同事"})
    audit(db, "key:ops", "key.revoke", "hr-portal", "plain text")
    audit(db.engine, "cli:root", "document.delete", "制度/旧.txt")
    rows = audit_entries(db)
    assert [r["action"] for r in rows] == ["document.delete", "key.revoke", "user.add"]  # newest first
    assert rows[2]["detail"] == {"role": "trainer", "备注": "新同事"} and rows[1]["detail"] == "plain text"
    assert [r["action"] for r in audit_entries(db, before_id=rows[0]["id"], actor="key:ops")] == ["key.revoke"]
    assert datetime.fromisoformat(rows[0]["at"]).tzinfo is not None


# -- feedback ------------------------------------------------------------------------------------------
def test_feedback(db):
    store = FeedbackStore(db)
    first = store.add("病假怎么请？", "当天上班前报备 [1]。", "up", citations=CITES, channel="chat", user="emp-7")
    second = store.add("食堂几点开？", "知识库中没有找到相关内容", "down", comment="没说清楚", channel="api")
    assert second > first
    got = store.get(first)
    assert got["citations"] == CITES and got["user"] == "emp-7" and got["question"] == "病假怎么请？"
    assert store.update(first, rating="down", comment="补充：要附证明") and not store.update(10_000, rating="up")
    assert store.get(first)["rating"] == "down" and store.get(first)["comment"] == "补充：要附证明"
    assert [r["id"] for r in store.recent(10)] == [second, first]
    assert [r["question"] for r in store.thumbs_down()] == ["病假怎么请？", "食堂几点开？"]
    with pytest.raises(ValueError):
        store.add("问", "答", "sideways")


# -- the FAQ -------------------------------------------------------------------------------------------
def test_faq_entries_history_revision_and_ask_log(db):
    faq = FaqStore(db)
    assert faq.revision() == 0
    a = faq.add(FaqEntry(None, "病假怎么请？", "当天上班前报备 [1]。", CITES, topic="考勤", status="approved",
                         alt_questions=["生病了怎么请假？"], origin="manual"), actor="web:王老师")
    b = faq.add(FaqEntry(None, "班车几点发车？", origin="gap"))
    assert b.id > a.id and faq.revision() == 2
    changed = faq.update(a.id, actor="cli", answer="当天上班前向主管报备 [1]。", topic="考勤 · 病假")
    assert changed.answer.startswith("当天上班前向主管") and faq.revision() == 3
    history = faq.history(a.id)
    assert [(h["action"], h["field"]) for h in history] == [("create", ""), ("edit", "answer"), ("edit", "topic")]
    assert history[1]["old"] == "当天上班前报备 [1]。" and history[0]["new"]["citations"] == CITES
    assert [e.id for e in faq.list("approved")] == [a.id] and [e.id for e in faq.list(topic="")] == [b.id]
    assert faq.topics() == sorted([("", 1), ("考勤 · 病假", 1)])
    faq.count_hit(a.id)
    faq.count_hit(a.id)
    assert faq.require(a.id).hits == 2 and [e.id for e in faq.list(order="hits")][0] == a.id
    assert faq.get(a.id).citations == CITES and faq.get(a.id).alt_questions == ["生病了怎么请假？"]

    old = (datetime.now(UTC) - timedelta(days=40)).isoformat(timespec="seconds")
    faq.log_question("四十天前？", False, at=old)
    faq.log_question("病假怎么请？", True, 0.97, "faq", a.id, user="emp-9")
    asked = faq.asked()
    assert [q["question"] for q in asked] == ["病假怎么请？", "四十天前？"]
    assert asked[0]["answered"] == 1 and asked[0]["confidence"] == pytest.approx(0.97) and asked[0]["user"] == "emp-9"
    assert faq.clear_log(before=(datetime.now(UTC) - timedelta(days=30)).isoformat(timespec="seconds")) == 1
    assert [q["question"] for q in faq.asked()] == ["病假怎么请？"]


def test_an_entry_added_with_its_id_moves_the_sequence_on(db):
    faq = FaqStore(db)
    faq.add(FaqEntry(41, "导入的问题？", origin="import"))
    assert faq.add(FaqEntry(None, "新问题？")).id == 42  # no collision with the explicit id
    with pytest.raises(ValueError, match="exists already"):
        faq.add(FaqEntry(41, "又一个？"))


def test_a_long_topic_is_cut_to_the_column(db):
    faq = FaqStore(db)
    long = "很长的主题" * 60  # 300 characters: PostgreSQL refuses what SQLite would keep
    e = faq.add(FaqEntry(None, "问？", topic=long))
    assert faq.require(e.id).topic == long[:200]
    assert faq.update(e.id, topic="短" + long).topic == ("短" + long)[:200]


def test_the_revision_counter_counts_every_change_from_many_threads(db):
    faq = FaqStore(db)
    entry = faq.add(FaqEntry(None, "并发？"))

    def edit(n: int) -> None:
        for i in range(5):
            faq.update(entry.id, answer=f"回答 {n}-{i}")

    threads = [threading.Thread(target=edit, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert faq.revision() == 1 + 20 and len(faq.history(entry.id)) == 21


# -- documents and jobs --------------------------------------------------------------------------------
def test_document_records(db):
    docs = DocumentRecords(db)
    docs.uploaded("制度/报销制度.docx", "a" * 64, 1234, "王经理")
    docs.replaced("制度/报销制度.docx", "b" * 64, 2345, "key:ops")
    docs.set_disabled("员工手册.txt", True, "王经理", sha256="c" * 64)
    assert docs.disabled_sources() == {"员工手册.txt"}
    docs.mark_indexed({"制度/报销制度.docx": "b" * 64, "新.txt": "d" * 64})
    got = docs.all()
    assert set(got) == {"制度/报销制度.docx", "员工手册.txt", "新.txt"}
    rec = got["制度/报销制度.docx"]
    assert (rec.sha256, rec.size, rec.uploaded_by, rec.replaced_by, rec.indexed_sha256) == \
        ("b" * 64, 2345, "王经理", "key:ops", "b" * 64)
    assert rec.uploaded_at.tzinfo is not None and rec.indexed_at >= rec.uploaded_at
    docs.set_disabled("员工手册.txt", False, "王经理")
    docs.deleted("新.txt")
    assert docs.disabled_sources() == set() and docs.get("新.txt") is None


def test_jobs_progress_and_results(db):
    jobs = JobStore(db)
    job = jobs.create("upload", "王经理", ["制度/报销制度.docx"], owner="host:1:a")
    assert job.status == "queued" and job.documents == ["制度/报销制度.docx"] and job.created_at.tzinfo
    assert jobs.claim(job.id, "host:1:a")
    jobs.progress(job.id, "embed", {"stage": "embed", "files": {"制度/报销制度.docx": {"state": "parsed"}}})
    assert jobs.get(job.id).progress["files"]["制度/报销制度.docx"]["state"] == "parsed"
    jobs.finished(job.id, "done", {"stage": "done"}, {"documents": 3, "skipped": []})
    done = jobs.get(job.id)
    assert done.status == "done" and done.result == {"documents": 3, "skipped": []} and done.finished_at.tzinfo
    failed = jobs.create("reindex", "cli", [])
    jobs.finished(failed.id, "failed", {}, error="x" * 10_000)
    assert len(jobs.get(failed.id).error) == 4000
    assert [j.id for j in jobs.list()] == [failed.id, job.id] and [j.id for j in jobs.list(status="done")] == [job.id]


def test_a_job_is_claimed_by_exactly_one_of_several_racing_runners(db, store_url):
    """Two servers' runners (here threads, each with its own engine) race for the same queued
    jobs: each job is taken once."""
    others = [Database(store_url) for _ in range(3)]
    try:
        stores = [JobStore(d) for d in (db, *others)]
        ids = [stores[0].create("upload", "t", [f"{i}.txt"]).id for i in range(10)]
        won: dict[int, list[int]] = {i: [] for i in ids}
        barrier = threading.Barrier(len(stores))

        def race(n: int) -> None:
            barrier.wait()
            for job_id in ids:
                if stores[n].claim(job_id, f"host:{n}:r"):
                    won[job_id].append(n)

        threads = [threading.Thread(target=race, args=(n,)) for n in range(len(stores))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(len(winners) == 1 for winners in won.values()), won
        with db.session() as s:
            owners = {r.id: r.owner for r in s.scalars(select(JobRow))}
        assert all(owners[i] == f"host:{won[i][0]}:r" for i in ids)
        assert not stores[1].claim(ids[0], "host:1:r")  # a running job is not taken again
    finally:
        for d in others:
            d.close()


def test_a_starting_server_fails_only_the_jobs_of_runners_that_are_gone(db):
    import os

    from kb.jobs import _HOST, runner_alive

    jobs = JobStore(db)
    now = datetime.now(UTC)
    other_host_live = jobs.create("upload", "a", [], owner="elsewhere:123:aa")
    other_host_silent = jobs.create("upload", "a", [], owner="elsewhere:124:bb")
    dead_here = jobs.create("upload", "a", [], owner=f"{_HOST}:999999999:cc")  # no such process
    this_process_stopped = jobs.create("upload", "a", [], owner=f"{_HOST}:{os.getpid()}:dd")
    no_owner = jobs.create("upload", "a", [])  # queued by a version without owners
    finished = jobs.create("upload", "a", [], owner="elsewhere:124:bb")
    jobs.finished(finished.id, "done", {})
    with db.session() as s:
        s.execute(update(JobRow).where(JobRow.id == other_host_silent.id).values(heartbeat_at=now - timedelta(hours=1)))
    abandoned = jobs.abandon_unfinished("interrupted", alive=lambda r: runner_alive(r.owner, r.heartbeat_at))
    assert sorted(abandoned) == sorted([other_host_silent.id, dead_here.id, this_process_stopped.id, no_owner.id])
    assert jobs.get(other_host_live.id).status == "queued" and jobs.get(finished.id).status == "done"
    assert jobs.get(dead_here.id).error == "interrupted"
    assert jobs.heartbeat("elsewhere:123:aa") == 1


# -- the old SQLite files, imported into either database ------------------------------------------------
def test_old_files_are_imported_and_new_ids_follow_the_imported_ones(db, tmp_path):
    from test_legacy_import import old_faq, old_feedback

    from kb.store.legacy import import_faq, import_feedback

    old_fb = old_feedback(tmp_path / "feedback.sqlite3", 2)  # ids 1, 2, 5
    old = old_faq(tmp_path / "faq.sqlite3", 3)  # entries 1, 3; edits 1, 2; asked 1, 4
    feedback = FeedbackStore(db, legacy=tmp_path / "feedback.sqlite3")
    faq = FaqStore(db, legacy=tmp_path / "faq.sqlite3")
    assert sorted(feedback.recent(10), key=lambda r: r["id"]) == old_fb
    assert [e.id for e in faq.list()] == [1, 3] and faq.revision() == 8
    assert json.dumps(faq.require(1).citations, ensure_ascii=False) == old["entries"][0]["citations"]
    assert [(a["id"], a["asked_at"], a["user"]) for a in sorted(faq.asked(), key=lambda r: r["id"])] == \
        [(a["id"], a["asked_at"], a["user"]) for a in old["asked"]]
    # the sequences were moved past the imported ids: new rows get the next ones
    assert feedback.add("新问题", "新回答", "up") == 6
    assert faq.add(FaqEntry(None, "新条目？")).id == 4
    assert faq.log_question("新问题？", True) == 5
    assert max(h["id"] for h in faq.history(4)) == 3  # the edits' sequence too
    assert not (tmp_path / "feedback.sqlite3").exists() and (tmp_path / "faq.sqlite3.imported").exists()
    assert import_feedback(db, tmp_path / "feedback.sqlite3") == {} and import_faq(db, Path("nothing")) == {}


def test_a_database_at_0100_with_jobs_is_upgraded_keeping_them(store_url):
    """Migration 0200 (jobs.owner, jobs.heartbeat_at) on a database that already holds jobs."""
    from alembic import command
    from sqlalchemy import text

    from kb.store.db import (
        _alembic_config,
        current_revision,
        head_revision,
        make_engine,
        release_engine,
    )

    engine = make_engine(store_url)
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0100")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO jobs (kind, status, stage, actor, documents, progress, result, error, "
                              "created_at) VALUES ('upload', 'done', 'done', '王经理', '[\"a.txt\"]', '{}', '{}', '', "
                              ":t)"), {"t": datetime(2026, 12, 1, 8, 0, tzinfo=UTC)})
        assert current_revision(engine) == "0100"
    finally:
        release_engine(store_url, engine)
    db = Database(store_url)
    try:
        assert db.applied[-1] == head_revision() and "0200" in db.applied
        (job,) = JobStore(db).list()
        assert (job.actor, job.documents, job.status) == ("王经理", ["a.txt"], "done")
        with db.session() as s:
            row = s.get(JobRow, job.id)
            assert row.owner == "" and row.heartbeat_at is None
        assert JobStore(db).create("reindex", "t", []).id == job.id + 1
    finally:
        db.close()
