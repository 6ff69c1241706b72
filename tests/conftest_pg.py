"""A throw-away PostgreSQL server for the tests: ``initdb`` into a temporary folder, ``pg_ctl
start`` listening only on a unix socket in that folder (no TCP port is opened), one fresh
database per test (``pg_database``), stopped and removed at the end of the session.

The server binaries come from Debian's ``postgresql`` package (``make postgres-deps`` installs
it; ``/usr/lib/postgresql/<version>/bin``), or ``$KB_TEST_PG_BIN``. PostgreSQL refuses to run as
root, so when the tests run as root (CI does) the cluster is made and run as the ``postgres``
system user (``runuser``). ``$KB_TEST_POSTGRES_URL`` (a ``postgresql+psycopg://`` URL of a user
who may create databases) uses a server already running instead. Without binaries or the
``psycopg`` driver the tests that need PostgreSQL skip, naming what is missing.

``backend_url(request, tmp_path)`` gives a test parametrized over ``BACKENDS`` its database URL.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

BACKENDS = ("sqlite", "postgresql")
SERVER_USER = "postgres"  # who runs the server when the tests run as root
_counter = itertools.count(1)


def _pg_bin() -> Path | None:
    given = os.environ.get("KB_TEST_PG_BIN")
    if given:
        return Path(given)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(os.path.realpath(initdb)).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """A running server: ``url(name)`` of one of its databases, ``create_database()``."""

    def __init__(self, base_url: str, stop=None):
        self.base_url = base_url  # .../postgres: the maintenance database
        self._stop = stop

    def url(self, name: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.base_url).set(database=name).render_as_string(hide_password=False)

    def admin(self, sql: str) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        u = make_url(self.base_url)
        kwargs = {k: v for k, v in {"host": u.host or u.query.get("host"), "port": u.port or u.query.get("port"),
                                    "user": u.username, "password": u.password,
                                    "dbname": u.database or "postgres"}.items() if v}
        with psycopg.connect(**kwargs, autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, prefix: str = "kbtest") -> str:
        name = f"{prefix}_{os.getpid()}_{next(_counter)}"
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\'')
        return self.url(name)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


def start_cluster() -> PgCluster:
    """A new throw-away cluster (``pytest.skip`` naming what is missing)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("the PostgreSQL driver psycopg is not installed (pip install -e '.[postgres]')")
    existing = os.environ.get("KB_TEST_POSTGRES_URL")
    if existing:
        return PgCluster(existing)
    bindir = _pg_bin()
    if bindir is None or not (bindir / "initdb").exists() or not (bindir / "pg_ctl").exists():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin, "
                    "$KB_TEST_PG_BIN or PATH: install Debian's postgresql package (make postgres-deps)")
    run_as: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.skip(f"the tests run as root and PostgreSQL refuses to: no '{SERVER_USER}' system user to "
                        "run it as (Debian's postgresql package creates it)")
        if not shutil.which("runuser"):
            pytest.skip("the tests run as root and PostgreSQL refuses to: runuser (util-linux) is missing")
        run_as = ["runuser", "-u", SERVER_USER, "--"]
    root = Path(tempfile.mkdtemp(prefix="kb-pg-"))
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    data, log = root / "data", root / "server.log"
    port = _free_port()  # names the socket file only: no TCP (listen_addresses = '')

    def run(*cmd: str) -> None:
        done = subprocess.run([*run_as, *cmd], capture_output=True, text=True, timeout=120)
        if done.returncode:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"{' '.join(cmd[:2])} failed ({done.returncode}): {' | '.join(tail)}")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "kb", "--auth=trust", "-E", "UTF8",
            "--locale=C.UTF-8", "--no-sync")
        options = (f"-c listen_addresses='' -k {root} -p {port} -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=200")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start")
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"the test PostgreSQL server did not start: {e}\n{text}") from None

    def stop() -> None:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)

    return PgCluster(f"postgresql+psycopg://kb@/postgres?host={root}&port={port}", stop)


@pytest.fixture(scope="session")
def pg_cluster():
    cluster = start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_database(pg_cluster) -> str:
    """The URL of a new, empty database of the session's PostgreSQL server."""
    return pg_cluster.create_database()


def backend_url(request, tmp_path: Path, backend: str) -> str:
    """A fresh database of ``backend`` (``sqlite``: a file in ``tmp_path``; ``postgresql``: a new
    database of the session's server)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'kb.sqlite3'}"
    return request.getfixturevalue("pg_cluster").create_database()


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path) -> str:
    """A fresh, empty database URL: once on SQLite, once on PostgreSQL."""
    return backend_url(request, tmp_path, request.param)
