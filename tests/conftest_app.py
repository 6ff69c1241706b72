"""Helpers shared by tests/test_api.py and tests/test_browser.py: a tiny Chinese corpus (one
document carries HTML/script payloads), a real uvicorn server on a free port, and accounts:
``ADMIN_TOKEN`` is an admin-scope API key every ``LiveServer`` has, ``add_user`` makes an account
and ``login`` logs an httpx client in (returning its CSRF token)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from kb.config import Config, load_config

ADMIN_TOKEN = "kb-test-admin-key"  # an admin-scope API key, seeded by LiveServer
ALLOWED_ORIGIN = "http://allowed.example"
EMBED_ORIGIN = "https://intranet.example"
STARTERS = ("请病假要走什么流程？", "差旅报销的流程是什么？", "脚本注入是什么？")
XSS_SOURCE = "网页安全.txt"
XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=alert(1)>"

CORPUS = {
    "员工手册.txt": (
        "员工手册\n"
        "第三章 考勤\n"
        "3.2 请假流程\n"
        "员工因病不能到岗的，应于当天上班前向直属主管电话或即时消息报备。\n"
        "返岗后两个工作日内在系统提交请假单，并附医院证明。\n"
        "3.3 审批权限\n"
        "病假三天以内由部门经理审批；三天以上还须人力资源部复核。\n"
        "年假须提前五个工作日申请，由部门经理审批。\n"
    ),
    "制度/报销制度.txt": (
        "差旅报销制度\n"
        "一、报销范围\n"
        "出差期间的交通费、住宿费和伙食补助可以报销。\n"
        "二、报销流程\n"
        "1、出差结束后十个工作日内填写报销单。\n"
        "2、附上发票原件和行程单，交部门经理签字。\n"
        "3、财务部审核后五个工作日内打款。\n"
    ),
    XSS_SOURCE: (
        "网页安全须知\n"
        "第一节 脚本注入\n"
        f"攻击者常在输入框中填写 {XSS_SCRIPT} 这样的脚本代码，系统必须把它当作普通文字显示。\n"
        "第二节 图片注入\n"
        f"另一种常见写法是 {XSS_IMG} ，同样必须转义后显示，绝不能执行。\n"
    ),
}


def write_corpus(folder: Path) -> Path:
    for name, text in CORPUS.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def tiny_config(tmp: Path) -> Config:
    """The hashing embedder (no model) over the tiny corpus; the refusal threshold lowered to
    suit hashing scores, which are far lower than a real model's."""
    corpus = tmp / "corpus"
    if not corpus.exists():
        write_corpus(corpus)
    return load_config(
        None,
        data_dir=tmp / "data",
        corpus_dir=corpus,
        embedder__backend="hashing",
        answer__min_confidence=0.05,
        app__starters=STARTERS,
        app__cors_origins=(ALLOWED_ORIGIN,),
        app__embed_origins=("'self'", EMBED_ORIGIN),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_admin_key(config: Config, token: str = ADMIN_TOKEN, name: str = "tests-admin") -> None:
    """An admin-scope API key that is ``token`` (kb key add makes random ones)."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from kb.store import open_database
    from kb.store.keys import key_hash
    from kb.store.models import ApiKey

    db = open_database(config)
    try:
        with db.session() as s:
            if s.scalar(select(ApiKey).where(ApiKey.name == name)) is None:
                s.add(ApiKey(name=name, scope="admin", key_hash=key_hash(token), prefix=token[:8],
                             created_at=datetime.now(UTC)))
    finally:
        db.close()


def add_user(config: Config, name: str, role: str, password: str) -> None:
    from kb.store import open_database
    from kb.store.accounts import DuplicateUser, UserStore

    db = open_database(config)
    try:
        UserStore(db).add(name, role, password)
    except DuplicateUser:
        pass
    finally:
        db.close()


def login(client: httpx.Client, name: str, password: str) -> str:
    """Log ``client`` in (the session cookie stays in its jar); returns the CSRF token and sets
    it as a default header of the client."""
    r = client.post("/api/auth/login", json={"name": name, "password": password})
    assert r.status_code == 200, (r.status_code, r.text)
    csrf = r.json()["csrf"]
    client.headers["X-CSRF-Token"] = csrf
    return csrf


class LiveServer:
    """``app.server.create_app(config)`` served by uvicorn in a thread on a free port (with the
    admin key ``ADMIN_TOKEN`` in its database)."""

    def __init__(self, config: Config, port: int | None = None, seed_key: bool = True):
        from app.server import create_app

        if seed_key:
            seed_admin_key(config)
        self.config = config
        self.app = create_app(config)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        httpx.get(self.url + "/api/health", timeout=10).raise_for_status()
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
