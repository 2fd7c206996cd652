"""Where the store's database is, and the one engine per process that reaches it.

SQLite is the default: `jackline.db` in Jackline's home, nothing to set up. A team sets
`JACKLINE_DATABASE_URL=postgresql://user:password@host/db` (or `postgres://`, as DBOS takes it):
the store then lives in that database beside the workflow engine's tables, through the same code
(SQLAlchemy Core, psycopg 3). DBOS keeps its tables in schema `dbos`; ours are in schema
`jackline`, not in `public`: their names (`runs`, `events`, `tokens`, `live`) are common ones, a
team may point Jackline at a database that holds other things, and a schema of our own is one
thing to grant, back up or drop.

A `sqlite:///path` URL moves only DBOS's file, as it always has: the store stays in `jackline.db`
in Jackline's home (`JACKLINE_HOME`), where an installation that set such a URL already keeps its
runs, beside the audit key that signs them.

Opening a `Store` is cheap: each process makes one SQLAlchemy engine (a pool of connections) per
database and checks its migrations once (`migrations.migrate`); a `Store` borrows a connection for
each call and gives it back. A forked child drops the pools it inherited without closing them
(closing would end the parent's connections) and opens its own.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError

from jackline import migrations, paths
from jackline.errors import ConfigError
from jackline.migrations import SCHEMA

ENV = "JACKLINE_DATABASE_URL"
KEEP = 8
"""Engines a process keeps open at most: a server or a worker uses one; a test process opens a
database per test, and the oldest pools are closed rather than kept to the end."""
POOL: dict[str, Any] = {"pool_size": 20, "max_overflow": 20}
"""Connections a process keeps, and how many more it opens for a moment: each store call holds
one only while it runs, and a worker's runs write from as many threads as it runs runs. The kept
ones cover a server's requests at once (a load of 20 connections): a connection opened for a
moment is closed when it comes back, and opening one per request (on SQLite a file opened and
its journal mode read; on PostgreSQL a new server process) was a tenth of a request's time. The
pool keeps only as many as were once in use at the same time, so an idle worker holds a few."""
BUSY_SECONDS = 30
"""How long a SQLite writer waits for another's transaction before it fails."""


def configured_url() -> str | None:
    """`JACKLINE_DATABASE_URL`, if set: DBOS's database, and the store's when PostgreSQL."""
    return os.environ.get(ENV) or None


def present() -> bool:
    """Whether this process can reach a store: PostgreSQL named in its environment, or the
    SQLite file in Jackline's home. A sandboxed command has neither (its environment is
    scrubbed and the home is hidden)."""
    url = configured_url()
    if url is not None and store_url(paths.database(), url).get_backend_name() == "postgresql":
        return True
    return paths.database().is_file()


def store_url(path: Path, url: str | None) -> URL:
    """The URL of the store's database: `url` when it names PostgreSQL, else the SQLite file
    `path` (a `sqlite:` URL is DBOS's file, not the store's: see the module's docstring)."""
    if url is None:
        return _sqlite(path)
    try:
        parsed = sa.make_url(url)
    except ArgumentError:
        parsed = None
    if parsed is not None and parsed.get_backend_name() in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        return _sqlite(path)
    raise ConfigError(
        ENV,
        [
            f"{_shown(url)!r} is not a database Jackline can keep its runs in: give "
            "postgresql://user:password@host:port/database, or sqlite:///path for the engine's "
            "file (or leave it unset for SQLite in JACKLINE_HOME)"
        ],
    )


def _sqlite(path: Path) -> URL:
    return URL.create("sqlite+pysqlite", database=str(path))


def _shown(url: str) -> str:
    """The URL without its password, to name it in an error."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1]


@dataclass(frozen=True)
class Database:
    """One database as this process reaches it: its engine, and how to read and write."""

    engine: Engine
    reader: Engine
    """The engine for reads: on PostgreSQL the same pool, each statement its own transaction."""
    postgres: bool

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading, where each statement is a transaction of its own (no
        BEGIN and ROLLBACK around a lone SELECT)."""
        with self.reader.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction. On SQLite it takes the write lock up front (BEGIN IMMEDIATE),
        so two writers never deadlock upgrading a read lock; on PostgreSQL it is a plain
        transaction, and what must not interleave takes a row or advisory lock in it."""
        with self.engine.connect() as conn:
            conn.execution_options(jackline_write=True)
            with conn.begin():
                yield conn


_open: OrderedDict[str, Database] = OrderedDict()
_lock = threading.Lock()
_fork_hook: list[bool] = []


def database(url: URL) -> Database:
    """This process's `Database` for `url`, made and migrated on first use."""
    key = url.render_as_string(hide_password=False)
    with _lock:
        found = _open.get(key)
        if found is not None:
            _open.move_to_end(key)
            return found
        made = connect(url)
        migrations.migrate(made.engine)
        _open[key] = made
        while len(_open) > KEEP:
            _open.popitem(last=False)[1].engine.dispose()
    if not _fork_hook:
        os.register_at_fork(after_in_child=_after_fork)
        _fork_hook.append(True)
    return made


def dispose_all() -> None:
    """Close every pool of this process and forget that their databases were migrated: the
    next `Store` opens and checks its database as a new process would."""
    with _lock:
        while _open:
            _open.popitem()[1].engine.dispose()


def _after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    for db in _open.values():
        db.engine.dispose(close=False)


def connect(url: URL) -> Database:
    """A new `Database` for `url`, with an engine of its own (`database` keeps one a process)."""
    if url.get_backend_name() == "sqlite":
        Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": BUSY_SECONDS}, **POOL)
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return Database(engine, engine, postgres=False)
    engine = sa.create_engine(
        url, pool_pre_ping=True, connect_args={"connect_timeout": 10}, **POOL
    ).execution_options(schema_translate_map={None: SCHEMA})
    return Database(engine, engine.execution_options(isolation_level="AUTOCOMMIT"), postgres=True)


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # SQLAlchemy says BEGIN itself (`_sqlite_begin`), not the sqlite3 module, which would put
    # off the BEGIN to the first write and make it deferred. WAL lets readers go on while a run
    # writes; it stays set in the file, so only a new database's first connection sets it.
    dbapi_conn.isolation_level = None
    if dbapi_conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        _set_wal(dbapi_conn)


def use_wal(url: str) -> None:
    """Put the SQLite database `url` names (made if missing) in WAL mode, as the store's own
    are: for a database another library opens (the workflow engine's), before it does; any
    other database is left alone. A commit in WAL mode syncs the log once, where the default
    rollback journal syncs the journal and the file and removes the journal, and readers in
    other processes do not wait for writers."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return
    path = Path(parsed.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None)
    try:
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            _set_wal(conn)
    finally:
        conn.close()


def _set_wal(dbapi_conn: Any) -> None:
    """Switch a new database to WAL. The switch needs the file to itself, and SQLite fails it
    at once rather than wait (a busy handler could deadlock there): processes that open a new
    database together take turns here."""
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        try:
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_begin(conn: Connection) -> None:
    # A read opens no transaction: each of its statements reads a snapshot of its own (WAL),
    # and a read that took a transaction's read lock would only hold a writer's checkpoint up.
    if conn.get_execution_options().get("jackline_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
