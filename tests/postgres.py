"""A real PostgreSQL server for the tests, and the store on both databases.

One cluster serves the whole test session: the first process that needs it (a pytest-xdist
worker, or pytest alone) makes it under a file lock, in a folder the session's first process
named (`pytest_configure` in conftest: the workers inherit it through the environment), with
`initdb` run as the `postgres` user when the tests run as root (initdb refuses root). It listens
on 127.0.0.1 on a free port, and on a socket in that folder; fsync is off (a crash loses the test
data, which nobody wants back). The session's first process stops it and removes the folder at
the end. Each test that asks gets a database of its own (`CREATE DATABASE ... TEMPLATE
template0`), dropped after it, so no test sees another's rows.

The binaries are Debian's (`/usr/lib/postgresql/<version>/bin`, not on PATH); `.ci/run` installs
the `postgresql` package where they are missing.
"""

from __future__ import annotations

import fcntl
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from jackline import database, migrations
from jackline.store import Store

FOLDER_ENV = "JACKLINE_TEST_POSTGRES"
"""The session's cluster folder, named by its first process and inherited by the workers."""
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # Each test's processes (the CLI's, DBOS's pools) connect to the test's database; six
    # workers at once stay far below this.
    "max_connections": "400",
    "shared_buffers": "64MB",
}


def bin_dir() -> Path:
    """The newest installed PostgreSQL's binaries."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
        "`apt-get install postgresql`, as .ci/run does"
    )


def _version(initdb: str) -> float:
    return float(Path(initdb).parents[1].name)


def name_folder() -> None:
    """Called once by the session's first process: where the cluster will be if a test needs it."""
    if FOLDER_ENV not in os.environ:
        os.environ[FOLDER_ENV] = tempfile.mkdtemp(prefix="jackline-pg-")


def stop_cluster() -> None:
    """Called by the session's first process at its end: stop the cluster, remove its folder."""
    folder = os.environ.get(FOLDER_ENV)
    if not folder or not Path(folder).is_dir():
        return
    data = Path(folder) / "data"
    if (data / "postmaster.pid").exists():
        _as_owner(folder, [str(bin_dir() / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
    shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Cluster:
    port: int
    folder: Path

    def url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        )


def cluster() -> Cluster:
    """The session's cluster, made by the first process to ask."""
    folder = Path(os.environ[FOLDER_ENV])
    with _locked(folder / "lock"):
        port_file = folder / "port"
        if not port_file.exists():
            started = time.monotonic()
            port = _make(folder)
            port_file.write_text(f"{port}\n")
            (folder / "started-in").write_text(f"{time.monotonic() - started:.2f}\n")
        return Cluster(int(port_file.read_text()), folder)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _make(folder: Path) -> int:
    """initdb and start; the port it listens on."""
    if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to `postgres`
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    data, sock = folder / "data", folder / "sock"
    _as_owner(str(folder), ["mkdir", "-p", str(sock)])
    bin_ = bin_dir()
    _as_owner(
        str(folder),
        [str(bin_ / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
         "--locale=C", "--no-sync", "--no-instructions"],
    )  # fmt: skip
    for _attempt in range(3):  # a port found free may be taken before the server binds it
        port = _free_port()
        options = " ".join(f"-c {k}={v}" for k, v in {**SETTINGS, "port": port}.items())
        started = _as_owner(
            str(folder),
            [str(bin_ / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-t", "60",
             "-o", f"{options} -k {sock}", "start"],
            check=False,
        )  # fmt: skip
        if started.returncode == 0:
            return port
    raise RuntimeError(f"PostgreSQL did not start: {(folder / 'log').read_text()[-2000:]}")


def _as_owner(folder: str, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=folder, timeout=120)
    if check and done.returncode != 0:
        raise RuntimeError(f"{argv} exited {done.returncode}: {done.stdout}{done.stderr}")
    return done


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dump(url: str) -> str:
    """Everything the database at `url` holds, as `pg_dump` writes it (to look for a byte that
    must not be stored anywhere)."""
    done = subprocess.run(
        [str(bin_dir() / "pg_dump"), "--data-only", url], capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture(scope="session")
def postgres() -> Cluster:
    return cluster()


@pytest.fixture
def pg_url(postgres: Cluster) -> Iterator[str]:
    """A PostgreSQL database of the test's own, empty, as a `JACKLINE_DATABASE_URL`."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with postgres.admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    yield postgres.url(name)
    database.dispose_all()  # this process's pools for it
    with postgres.admin() as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class Backend:
    """The store's database for one test, on one of the two databases it runs on."""

    name: str
    path: Path
    """The SQLite file (on PostgreSQL: where the audit key is kept beside)."""
    url: str | None

    def store(self) -> Store:
        return Store(self.path, url=self.url)

    def sql(self, statement: str, **params: Any) -> list[tuple[Any, ...]]:
        """Run `statement` on the database as someone with access to it would, beside the
        store (its rows, for a SELECT)."""
        with self.store().transaction() as db:
            if self.url:
                db.exec_driver_sql(f"SET LOCAL search_path TO {migrations.SCHEMA}")
            done = db.execute(text(statement), params)
            return [tuple(r) for r in done.all()] if done.returns_rows else []


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The store on SQLite, then on PostgreSQL (each test that takes it runs on both)."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    return Backend(request.param, tmp_path / "j.db", url)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str | None:
    """`JACKLINE_DATABASE_URL` for an end-to-end test: unset (SQLite in the test's home), then a
    PostgreSQL database of its own (the store's tables and DBOS's both in it)."""
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else None
