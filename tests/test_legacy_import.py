"""Today's files upgrade keeping every row: ``data/feedback.sqlite3`` (schema versions 1 and 2)
and ``data/faq.sqlite3`` (versions 1, 2 and 3), written here with the DDL the old hand-written
migrations ran (copied verbatim from the last version that had them), are imported into the
one database (``kb.sqlite3``) on first use: ids and timestamps kept, columns an old version
lacked get the old defaults, the file renamed ``*.imported``; a damaged or newer file is left in
place and its feature reports it (the chat goes on)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from conftest_app import ADMIN_TOKEN, LiveServer, tiny_config

from kb.faq.store import FaqStore, days_ago, faq_store
from kb.store.db import DatabaseUnavailable
from kb.store.feedback import FeedbackStore, open_feedback_store

# -- the old schemas, as app/feedback.py and kb/faq/store.py created them -----------------------------
FEEDBACK_V1 = """
CREATE TABLE feedback (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    question   TEXT    NOT NULL,
    answer     TEXT    NOT NULL,
    citations  TEXT    NOT NULL DEFAULT '[]',
    rating     TEXT    NOT NULL CHECK (rating IN ('up', 'down')),
    comment    TEXT    NOT NULL DEFAULT '',
    channel    TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX feedback_created ON feedback (created_at);
"""
FEEDBACK_V2 = "ALTER TABLE feedback ADD COLUMN user TEXT NOT NULL DEFAULT '';"

FAQ_V1 = """
CREATE TABLE faq_entries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    question      TEXT NOT NULL,
    answer        TEXT NOT NULL DEFAULT '',
    citations     TEXT NOT NULL DEFAULT '[]',
    topic         TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL DEFAULT 'candidate',
    alt_questions TEXT NOT NULL DEFAULT '[]',
    origin        TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX faq_entries_status ON faq_entries (status);
CREATE TABLE faq_edits (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id INTEGER NOT NULL,
    at       TEXT NOT NULL,
    action   TEXT NOT NULL,
    field    TEXT NOT NULL DEFAULT '',
    old      TEXT,
    new      TEXT,
    actor    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX faq_edits_entry ON faq_edits (entry_id);
"""
FAQ_V2 = """
ALTER TABLE faq_entries ADD COLUMN flag_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE faq_entries ADD COLUMN merged_into INTEGER;
ALTER TABLE faq_entries ADD COLUMN hits INTEGER NOT NULL DEFAULT 0;
ALTER TABLE faq_entries ADD COLUMN ask_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE faq_entries ADD COLUMN approved_at TEXT NOT NULL DEFAULT '';
CREATE INDEX faq_entries_topic ON faq_entries (topic);
CREATE TABLE ask_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    asked_at    TEXT NOT NULL,
    question    TEXT NOT NULL,
    answered    INTEGER NOT NULL,
    confidence  REAL NOT NULL DEFAULT 0,
    source_kind TEXT NOT NULL DEFAULT '',
    faq_id      INTEGER
);
CREATE INDEX ask_log_asked ON ask_log (asked_at);
CREATE TABLE faq_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO faq_meta (key, value) VALUES ('revision', '0');
"""
FAQ_V3 = "ALTER TABLE ask_log ADD COLUMN user TEXT NOT NULL DEFAULT '';"

FEEDBACK_STEPS = {1: FEEDBACK_V1, 2: FEEDBACK_V2}
FAQ_STEPS = {1: FAQ_V1, 2: FAQ_V2, 3: FAQ_V3}
CITES = [{"n": 1, "source": "员工手册.txt", "title": "员工手册", "section": "3.2 请假流程", "start": 3,
          "end": 9, "quote": "第三章 考勤"}]


def old_file(path: Path, steps: dict[int, str], version: int) -> sqlite3.Connection:
    """A file at ``version`` of the old schema, as the old runner left it (schema_version rows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for v in range(1, version + 1):
        db.executescript(steps[v])
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (v,))
    db.commit()
    return db


def old_feedback(path: Path, version: int) -> list[dict]:
    """Three rows (ids 1, 2 and 5: deleted ids stay unused), as the old store wrote them."""
    db = old_file(path, FEEDBACK_STEPS, version)
    cols = "id, created_at, updated_at, question, answer, citations, rating, comment, channel"
    rows = [
        (1, "2024-01-01T08:00:00+00:00", "2024-01-01T08:01:00+00:00", "老问题一", "老回答一",
         json.dumps(CITES, ensure_ascii=False), "up", "", "chat"),
        (2, "2024-02-01T08:00:00+00:00", "2024-02-01T08:00:00+00:00", "老问题二", "老回答二", "[]", "down",
         "没说清楚", "api"),
        (5, "2024-03-01T08:00:00+00:00", "2024-03-02T08:00:00+00:00", "老问题五", "老回答五", "[]", "down", "", "chat"),
    ]
    for r in rows:
        extra = ", user" if version >= 2 else ""
        db.execute(f"INSERT INTO feedback ({cols}{extra}) VALUES ({', '.join('?' * (len(r) + bool(extra)))})",
                   (*r, "emp-7") if extra else r)
    db.commit()
    out = [dict(zip(cols.split(", "), r, strict=True)) | {"user": "emp-7" if version >= 2 else ""} for r in rows]
    db.close()
    for o in out:
        o["citations"] = json.loads(o["citations"])
    return out


def old_faq(path: Path, version: int) -> dict:
    """Entries (ids 1, 3), their edits and, from version 2, logged questions and a revision."""
    db = old_file(path, FAQ_STEPS, version)
    base = "id, question, answer, citations, topic, status, alt_questions, origin, created_at, updated_at"
    entries = [
        (1, "病假怎么请？", "当天上班前报备 [1]。", json.dumps(CITES, ensure_ascii=False), "考勤", "approved",
         json.dumps(["生病了怎么请假？"], ensure_ascii=False), "manual", "2024-01-01T00:00:00+00:00",
         "2024-01-05T00:00:00+00:00"),
        (3, "班车几点发车？", "", "[]", "", "candidate", "[]", "gap", "2024-02-01T00:00:00+00:00",
         "2024-02-01T00:00:00+00:00"),
    ]
    for e in entries:
        db.execute(f"INSERT INTO faq_entries ({base}) VALUES ({', '.join('?' * len(e))})", e)
    if version >= 2:
        db.execute("UPDATE faq_entries SET flag_reason = '[1] 员工手册.txt changed', hits = 4, ask_count = 2,"
                   " approved_at = '2024-01-04T00:00:00+00:00' WHERE id = 1")
        db.execute("UPDATE faq_entries SET merged_into = 1, status = 'merged' WHERE id = 3")
        db.execute("UPDATE faq_meta SET value = '7' WHERE key = 'revision'")
    edits = [(1, 1, "2024-01-01T00:00:00+00:00", "create", "", None, '{"question": "病假怎么请？"}', "cli"),
             (2, 1, "2024-01-05T00:00:00+00:00", "edit", "answer", '""', '"当天上班前报备 [1]。"', "web:王老师")]
    for e in edits:
        db.execute("INSERT INTO faq_edits (id, entry_id, at, action, field, old, new, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", e)
    asked = []
    if version >= 2:
        cols = "id, asked_at, question, answered, confidence, source_kind, faq_id"
        # recent: the ask log keeps faq.log_retention_days (180) days, pruned when the store opens
        asked = [(1, days_ago(3), "病假怎么请？", 1, 0.97, "faq", 1),
                 (4, days_ago(2), "食堂几点开？", 0, 0.12, "none", None)]
        for a in asked:
            extra = ", user" if version >= 3 else ""
            db.execute(f"INSERT INTO ask_log ({cols}{extra}) VALUES ({', '.join('?' * (len(a) + bool(extra)))})",
                       (*a, "emp-9") if extra else a)
    db.commit()
    db.row_factory = sqlite3.Row
    rows = {"entries": [dict(r) for r in db.execute("SELECT * FROM faq_entries ORDER BY id")],
            "edits": [dict(r) for r in db.execute("SELECT * FROM faq_edits ORDER BY id")],
            "asked": [dict(r) for r in db.execute("SELECT * FROM ask_log ORDER BY id")] if version >= 2 else []}
    db.close()
    return rows


# -- feedback ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [1, 2])
def test_feedback_file_of_each_version_is_imported_keeping_every_row(tmp_path, version):
    cfg = tiny_config(tmp_path)
    legacy = Path(cfg.data_dir) / "feedback.sqlite3"
    expected = old_feedback(legacy, version)

    store = open_feedback_store(cfg)
    got = sorted(store.recent(100), key=lambda r: r["id"])
    assert got == expected  # ids, timestamps, text, citations, channel; user '' before version 2
    assert not legacy.exists() and legacy.with_name("feedback.sqlite3.imported").exists()
    assert (Path(cfg.data_dir) / "kb.sqlite3").exists()

    new_id = store.add("新问题", "新回答", "up", user="emp-1")
    assert new_id == 6  # after the old ids: an id is never reused
    again = open_feedback_store(cfg)  # a second open imports nothing more
    assert [r["id"] for r in sorted(again.recent(100), key=lambda r: r["id"])] == [1, 2, 5, 6]
    assert [r["question"] for r in again.thumbs_down()] == ["老问题二", "老问题五"]


def test_a_newer_or_damaged_feedback_file_is_named_and_left_in_place(tmp_path):
    cfg = tiny_config(tmp_path)
    legacy = Path(cfg.data_dir) / "feedback.sqlite3"
    db = old_file(legacy, FEEDBACK_STEPS, 2)
    db.execute("INSERT INTO schema_version (version) VALUES (9)")
    db.commit()
    db.close()
    with pytest.raises(DatabaseUnavailable, match=r"feedback\.sqlite3 has schema version 9, newer"):
        open_feedback_store(cfg).recent()
    assert legacy.exists()
    legacy.write_bytes(b"not a database at all " * 100)
    with pytest.raises(DatabaseUnavailable, match=r"feedback\.sqlite3 cannot be read"):
        open_feedback_store(cfg).add("问", "答", "up")
    assert legacy.exists()


# -- the FAQ ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [1, 2, 3])
def test_faq_file_of_each_version_is_imported_keeping_every_row(tmp_path, version):
    cfg = tiny_config(tmp_path)
    legacy = Path(cfg.data_dir) / "faq.sqlite3"
    old = old_faq(legacy, version)

    store = faq_store(cfg)
    entries = [e.to_dict() for e in store.list(order="id")]
    assert [e["id"] for e in entries] == [1, 3]
    for got, was in zip(entries, old["entries"], strict=True):
        for k, v in was.items():  # every old column, exactly (JSON columns as JSON)
            assert (json.dumps(got[k], ensure_ascii=False) if k in ("citations", "alt_questions") else got[k]) == v, k
    if version == 1:  # the defaults version 2 gave the columns it added
        assert (entries[0]["hits"], entries[0]["flag_reason"], entries[0]["merged_into"]) == (0, "", None)
    else:
        assert entries[0]["hits"] == 4 and entries[1]["merged_into"] == 1
    history = store.history(1)
    assert [(h["id"], h["at"], h["action"], h["actor"]) for h in history] == [
        (e["id"], e["at"], e["action"], e["actor"]) for e in old["edits"]]
    asked = sorted(store.asked(), key=lambda r: r["id"])
    assert [(a["id"], a["asked_at"], a["question"], a["answered"], a["confidence"], a["faq_id"], a["user"])
            for a in asked] == [(a["id"], a["asked_at"], a["question"], a["answered"], a["confidence"],
                                 a["faq_id"], a.get("user", "")) for a in old["asked"]]
    assert store.revision() == (8 if version >= 2 else 1)  # past the old counter: caches are stale
    assert not legacy.exists() and legacy.with_name("faq.sqlite3.imported").exists()

    # goes on from there: new ids after the old ones, a second open imports nothing
    assert store.log_question("新问题？", True, user="emp-1") > (4 if version >= 2 else 0)
    assert faq_store(cfg).require(1).question == "病假怎么请？"
    assert len(faq_store(cfg).list()) == 2


def test_the_server_serves_the_old_files_rows(tmp_path):
    cfg = tiny_config(tmp_path)
    old_feedback(Path(cfg.data_dir) / "feedback.sqlite3", 2)
    old_faq(Path(cfg.data_dir) / "faq.sqlite3", 3)
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with LiveServer(cfg) as live, httpx.Client(base_url=live.url, timeout=30, headers=auth) as c:
        fb = c.get("/api/feedback").json()
        assert [r["id"] for r in fb] == [5, 2, 1] and fb[2]["citations"] == CITES
        entries = c.get("/api/admin/faq/entries", params={"order": "id"}).json()
        assert [e["id"] for e in entries] == [1, 3]
        assert c.get("/api/admin/faq/entries/1").json()["history"][1]["actor"] == "web:王老师"
        gaps = {g["question"] for g in c.get("/api/admin/faq/usage").json()["gaps"]}
        assert {"食堂几点开？", "老问题二"} <= gaps  # the old refused question and thumbs-down
    assert sorted(p.name for p in Path(cfg.data_dir).glob("*.imported")) == [
        "faq.sqlite3.imported", "feedback.sqlite3.imported"]


def test_damaged_old_files_turn_their_feature_off_and_the_chat_goes_on(tmp_path):
    cfg = tiny_config(tmp_path)
    data = Path(cfg.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    (data / "faq.sqlite3").write_bytes(b"this is not a database" * 200)
    (data / "feedback.sqlite3").write_bytes(b"nor is this" * 200)
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with LiveServer(cfg) as live, httpx.Client(base_url=live.url, timeout=30) as c:
        r = c.post("/api/ask", json={"question": "请病假要走什么流程？"})
        assert r.status_code == 200 and r.json()["answered"]
        r = c.get("/api/admin/faq/entries", headers=auth)
        assert r.status_code == 503 and "faq.sqlite3" in r.json()["detail"]
        r = c.post("/api/feedback", json={"question": "q", "answer": "a", "rating": "up"})
        assert r.status_code == 503 and "feedback.sqlite3" in r.json()["detail"] and "Traceback" not in r.text
        # accounts and keys live in kb.sqlite3 and go on working
        assert c.get("/api/admin/users", headers=auth).status_code == 200
    assert (data / "faq.sqlite3").exists() and (data / "feedback.sqlite3").exists()


def test_a_store_on_a_plain_file_needs_no_config(tmp_path):
    """Tests and tools may point a store at one SQLite file; it is created on first write."""
    path = tmp_path / "sub" / "fb.sqlite3"
    store = FeedbackStore(path)
    assert not path.exists()
    fid = store.add("问", "答", "up", citations=[{"n": 1}])
    assert store.update(fid, rating="down", comment="补充")
    assert FeedbackStore(path).get(fid)["comment"] == "补充"
    faq = FaqStore(tmp_path / "faq-only.sqlite3")
    assert not faq.exists and faq.list() == [] and faq.exists
