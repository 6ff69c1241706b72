"""``kb db migrate --to URL`` as a subprocess: a SQLite deployment (``data/kb.sqlite3`` with rows
in every table, and old ``feedback.sqlite3`` / ``faq.sqlite3`` files still to import) copied into
a real PostgreSQL database keeping every row (ids, timestamps, JSON text), the target's schema
made by the migrations, its sequences moved past the copied ids; a non-empty target refused
without ``--force``; bad or unreachable targets one line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from test_legacy_import import old_faq, old_feedback

from kb.config import load_config
from kb.faq.store import FaqEntry, FaqStore
from kb.store import Database, KeyStore, database_url
from kb.store.accounts import UserStore, audit
from kb.store.documents import DocumentRecords, JobStore
from kb.store.feedback import FeedbackStore
from kb.store.models import Base

ROOT = Path(__file__).resolve().parents[1]
CITES = [{"n": 1, "source": "员工手册.txt", "title": "员工手册", "section": "3.2 请假流程", "start": 12,
          "end": 40, "quote": "员工因病不能到岗的，应于当天上班前向直属主管电话报备。"}]


def kb(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("KB_CONFIG", "KB_DATA_DIR")}
    return subprocess.run([sys.executable, "-m", "kb.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def deployment(tmp_path: Path):
    """A SQLite deployment with rows in every table (a revoked key, ended sessions, a failed job)
    and an old feedback file not yet imported."""
    data = tmp_path / "data"
    (tmp_path / "kb.toml").write_text(f'data_dir = "{data}"\n', encoding="utf-8")
    cfg = load_config(tmp_path / "kb.toml")
    old_feedback(data / "feedback.sqlite3", 2)  # ids 1, 2, 5 (imported by the migrate)
    db = Database(f"sqlite:///{data / 'kb.sqlite3'}")
    KeyStore(db).add("hr-portal", "ask")
    KeyStore(db).add("ops", "admin")
    KeyStore(db).revoke("ops")
    users = UserStore(db)
    wang = users.add("王经理", "admin", "correct-horse-1")
    users.add("li", "trainer", "correct-horse-2")
    users.start_session(wang, "10.0.0.1", "Mozilla/5.0")
    users.start_session(users.authenticate("li", "correct-horse-2"))
    audit(db, "cli:root", "user.add", "王经理", {"role": "admin", "备注": "首位"})
    faq = FaqStore(db)
    first = faq.add(FaqEntry(None, "加班怎么算？", "须事先申请 [1]。", CITES, topic="考勤", status="approved",
                             alt_questions=["加班费怎么算？"]), actor="web:王经理")
    faq.update(first.id, actor="cli", answer="须事先填写加班申请单 [1]。")
    faq.log_question("加班怎么算？", True, 0.91, "faq", first.id, user="emp-3")
    docs = DocumentRecords(db)
    docs.uploaded("制度/报销制度.docx", "a" * 64, 2048, "王经理")
    docs.set_disabled("员工手册.txt", True, "王经理", sha256="b" * 64)
    docs.mark_indexed({"制度/报销制度.docx": "a" * 64})
    jobs = JobStore(db)
    job = jobs.create("upload", "王经理", ["制度/报销制度.docx"])
    jobs.started(job.id)
    jobs.progress(job.id, "embed", {"files": {"制度/报销制度.docx": {"state": "parsed", "chunks": 3}}})
    jobs.finished(job.id, "done", {"stage": "done"}, {"documents": 4, "skipped": []})
    gap = jobs.create("reindex", "cli:root", [])  # a job id that then stays unused: ids are kept
    jobs.finished(gap.id, "failed", {}, error="磁盘已满")
    db.close()
    return cfg


def every_row(url: str) -> dict[str, list[dict]]:
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            return {t.name: [dict(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns)).mappings()]
                    for t in Base.metadata.sorted_tables}
    finally:
        db.close()


def test_a_sqlite_deployment_is_copied_into_postgresql_keeping_every_row(tmp_path, pg_database):
    cfg = deployment(tmp_path)
    source = database_url(cfg)

    r = kb("db", "migrate", "--config", str(tmp_path / "kb.toml"), "--to", pg_database, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "feedback.sqlite3" in r.stderr and "database_url = " in r.stderr
    before, after = every_row(source), every_row(pg_database)
    assert set(after) == {t.name for t in Base.metadata.sorted_tables}
    for table, rows in before.items():
        assert rows, f"the deployment has no {table} rows: the test proves less than it says"
        assert after[table] == rows, table  # every column of every row, ids and timestamps included
    assert [r["id"] for r in after["feedback"]] == [1, 2, 5]  # the old file's ids, imported first
    assert after["sessions"][0]["expires_at"].tzinfo is not None
    assert {line.split()[0] for line in r.stdout.splitlines()} == set(before)

    # PostgreSQL goes on after the copied ids (its sequences were moved), and serves the rows
    pg = Database(pg_database)
    try:
        assert FeedbackStore(pg).add("新问题", "新回答", "up") == 6
        faq = FaqStore(pg)
        assert faq.add(FaqEntry(None, "新条目？")).id == max(e["id"] for e in before["faq_entries"]) + 1
        assert faq.require(1).citations == CITES and faq.revision() == before["faq_meta"][0]["value"] + 1
        assert UserStore(pg).authenticate("王经理", "correct-horse-1").name == "王经理"
        assert KeyStore(pg).get("ops").revoked
        assert JobStore(pg).create("reindex", "t", []).id == max(j["id"] for j in before["jobs"]) + 1
        assert DocumentRecords(pg).disabled_sources() == {"员工手册.txt"}
    finally:
        pg.close()

    # a target holding rows is refused, in one line; --force replaces them with the source's
    r = kb("db", "migrate", "--config", str(tmp_path / "kb.toml"), "--to", pg_database, cwd=tmp_path)
    assert r.returncode == 2 and "not empty" in r.stderr and "--force" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = kb("db", "migrate", "--config", str(tmp_path / "kb.toml"), "--to", pg_database, "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert every_row(pg_database) == before


def test_the_rows_of_old_files_are_copied_with_the_ids_they_had(tmp_path, pg_database):
    data = tmp_path / "data"
    (tmp_path / "kb.toml").write_text(f'data_dir = "{data}"\n', encoding="utf-8")
    old_feedback(data / "feedback.sqlite3", 2)
    old = old_faq(data / "faq.sqlite3", 3)
    r = kb("db", "migrate", "--config", str(tmp_path / "kb.toml"), "--to", pg_database, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (data / "faq.sqlite3.imported").exists() and (data / "feedback.sqlite3.imported").exists()
    after = every_row(pg_database)
    assert [(e["id"], e["question"], e["citations"], e["created_at"]) for e in after["faq_entries"]] == \
        [(e["id"], e["question"], e["citations"], e["created_at"]) for e in old["entries"]]
    assert [e["id"] for e in after["faq_edits"]] == [1, 2] and [a["id"] for a in after["ask_log"]] == [1, 4]
    assert after["faq_meta"] == [{"key": "revision", "value": 8}]
    assert every_row(f"sqlite:///{data / 'kb.sqlite3'}") == after


def test_bad_targets_are_one_line_and_exit_2(tmp_path, pg_cluster):
    (tmp_path / "kb.toml").write_text(f'data_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    Database(f"sqlite:///{tmp_path / 'data' / 'kb.sqlite3'}").close()
    nowhere = pg_cluster.url("no_such_database")
    for target, words in (("not a url", "not a database URL"), (nowhere, "cannot be opened"),
                          (f"sqlite:///{tmp_path / 'data' / 'kb.sqlite3'}", "is the source")):
        r = kb("db", "migrate", "--config", str(tmp_path / "kb.toml"), "--to", target, cwd=tmp_path)
        assert r.returncode == 2, (target, r.stderr)
        assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert r.stderr.startswith("kb db: ") and "Traceback" not in r.stderr


def test_a_failed_copy_writes_nothing(tmp_path, pg_database):
    """A value PostgreSQL refuses (SQLite keeps a text longer than its column): the copy stops,
    naming the table, and the target holds no rows."""
    db = Database(f"sqlite:///{tmp_path / 'kb.sqlite3'}")
    KeyStore(db).add("fine", "ask")
    with db.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("INSERT INTO feedback (created_at, updated_at, question, answer, citations, rating, "
                          "comment, channel, user) VALUES ('t', 't', 'q', 'a', '[]', 'up', '', :c, '')"),
                     {"c": "x" * 100})  # channel is VARCHAR(32)
    db.close()
    from kb.store import StoreError
    from kb.store.transfer import copy_database, row_counts

    with pytest.raises(StoreError, match=r"table feedback.*nothing was written"):
        copy_database(f"sqlite:///{tmp_path / 'kb.sqlite3'}", pg_database)
    pg = Database(pg_database)
    try:
        assert not any(n for t, n in row_counts(pg).items() if t != "faq_meta")
    finally:
        pg.close()


def test_timestamps_survive_to_the_second_and_beyond(tmp_path, pg_database):
    """Microseconds and the UTC zone of timestamp columns are kept."""
    db = Database(f"sqlite:///{tmp_path / 'kb.sqlite3'}")
    when = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
    users = UserStore(db)
    users.add("zhao", "user", "correct-horse-1")
    token, _ = users.start_session(users.get("zhao"))
    users.expire_session(token, when + timedelta(days=1))
    db.close()
    from kb.store.transfer import copy_database

    copy_database(f"sqlite:///{tmp_path / 'kb.sqlite3'}", pg_database)
    rows = every_row(pg_database)["sessions"]
    assert rows[0]["expires_at"] == when + timedelta(days=1)
