"""A real PostgreSQL server for the tests, and the store on both databases.

One cluster serves the whole test session: the first process that needs it (a pytest-xdist
worker, or pytest alone) makes it (`jackline.testing.postgres`) under a file lock, in a folder
the session's first process named (`pytest_configure` in conftest: the workers inherit it
through the environment). The session's first process stops it and removes the folder at the
end. Each test that asks gets a database of its own, dropped after it, so no test sees another's
rows.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from jackline import database, migrations
from jackline.store import Store
from jackline.testing import postgres as pg
from jackline.testing.postgres import Cluster, dump

__all__ = ["Cluster", "dump"]

FOLDER_ENV = "JACKLINE_TEST_POSTGRES"
"""The session's cluster folder, named by its first process and inherited by the workers."""


def name_folder() -> None:
    """Called once by the session's first process: where the cluster will be if a test needs it."""
    if FOLDER_ENV not in os.environ:
        os.environ[FOLDER_ENV] = tempfile.mkdtemp(prefix="jackline-pg-")


def stop_cluster() -> None:
    """Called by the session's first process at its end: stop the cluster, remove its folder."""
    folder = os.environ.get(FOLDER_ENV)
    if folder and Path(folder).is_dir():
        pg.stop(Path(folder))


def cluster() -> Cluster:
    """The session's cluster, made by the first process to ask."""
    folder = Path(os.environ[FOLDER_ENV])
    with _locked(folder / "lock"):
        port_file = folder / "port"
        if not port_file.exists():
            started = time.monotonic()
            port = pg.start(folder).port
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


@pytest.fixture(scope="session")
def postgres() -> Cluster:
    return cluster()


BEFORE_DROP: dict[str, list[Callable[[], None]]] = {}
"""What must end before a test's database is dropped, by its URL: the workers a project started
on it (`before_drop`). Pytest ends a test's fixtures in the reverse order it made them, and a test
that names the project before the database would otherwise drop the database under its workers,
which then spend their stop on a database that is gone."""


def before_drop(url: str, stop: Callable[[], None]) -> None:
    BEFORE_DROP.setdefault(url, []).append(stop)


@pytest.fixture
def pg_url(postgres: Cluster) -> Iterator[str]:
    """A PostgreSQL database of the test's own, empty, as a `JACKLINE_DATABASE_URL`."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = postgres.create(name)
    yield url
    for stop in BEFORE_DROP.pop(url, []):
        stop()
    database.dispose_all()  # this process's pools for it
    postgres.drop(name)


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
