"""What the server answers again without reading the store, while nothing it depends on changed.

Every request's token is checked against the store, and `GET /api/runs` reads, checks and
encodes its runs: at twenty requests at once that was most of each request's time. On SQLite the
store says cheaply whether anything in it changed: `PRAGMA data_version`, asked on a connection
that never writes, changes whenever any other connection (of this process or another) commits
(`Version`). So the server keeps, in memory:

- who a token stands for (`Principals`), while the store has not changed and for at most
  `auth.TOUCH_EVERY` seconds, so that a token in use still has its `last_used` written; its
  expiry is checked at each use.
- the encoded answer of `GET /api/runs` for each query (`Answers`), while the store has not
  changed and every process driving a run it shows as running still lives (a process that dies
  writes nothing: `executors.alive` is asked again at each use, one lock file each).

A token revoked, a run submitted, a run that moved: each is a commit, and the next request reads
the store again. Nothing is kept where the store is PostgreSQL (team mode): there is no such cheap
question there, and every request reads the store as before.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from jackline import auth, database, executors, paths

K = TypeVar("K")
V = TypeVar("V")
KEEP = 256
"""Tokens, and answers, kept at most (the least recently used go first)."""


class Version:
    """The store's `PRAGMA data_version` on a SQLite connection of its own that never writes
    (and never makes a database where the store's file has gone: `mode=rw`)."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(
            f"file:{quote(str(path))}?mode=rw",
            uri=True,
            check_same_thread=False,
            isolation_level=None,
        )
        self._lock = threading.Lock()

    def now(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_versions: OrderedDict[tuple[Path, tuple[int, int]], Version] = OrderedDict()
_versions_lock = threading.Lock()
VERSIONS = 4
"""Stores whose version connection a process keeps (a server has one; a test process opens a
store per test, and the oldest connections are closed)."""


def _version(path: Path, inode: tuple[int, int]) -> Version:
    with _versions_lock:
        found = _versions.get((path, inode))
        if found is None:
            found = _versions[(path, inode)] = Version(path)
            while len(_versions) > VERSIONS:
                _versions.popitem(last=False)[1].close()
        _versions.move_to_end((path, inode))
        return found


Seen = tuple[str, tuple[int, int], int]
"""The store (its file's path and inode: one made anew is another store) and its version."""


def version() -> Seen | None:
    """The store and a number that changes whenever it changes; None where there is none to ask
    (the store is PostgreSQL, or its file cannot be opened): then nothing is kept."""
    path = paths.database()
    if database.configured_url() is not None:
        url = database.store_url(path, database.configured_url())
        if url.get_backend_name() != "sqlite":
            return None
    try:
        found = os.stat(path)
        inode = (found.st_dev, found.st_ino)
        return str(path), inode, _version(path, inode).now()
    except (OSError, sqlite3.Error):
        return None


@dataclass(frozen=True)
class _Principal:
    version: Seen
    principal: auth.Principal
    expires_at: float | None
    checked: float


class Principals:
    """Who each token recently checked stands for (see the module's docstring)."""

    def __init__(self) -> None:
        self._known: OrderedDict[bytes, _Principal] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str, now: Seen | None) -> auth.Principal | None:
        """Who `token` stands for, if it was checked at store version `now` less than
        `auth.TOUCH_EVERY` seconds ago and has not expired since; else None (check it)."""
        if now is None:
            return None
        key = _key(token)
        with self._lock:
            known = self._known.get(key)
        clock = time.time()
        if (
            known is None
            or known.version != now
            or not 0 <= clock - known.checked < auth.TOUCH_EVERY
            or (known.expires_at is not None and clock >= known.expires_at)
        ):
            return None
        return known.principal

    def keep(
        self, token: str, seen: Seen | None, principal: auth.Principal, expires_at: float | None
    ) -> None:
        """Remember a check of `token` that read the store at version `seen` (asked before)."""
        if seen is None:
            return
        key = _key(token)
        with self._lock:
            self._known[key] = _Principal(seen, principal, expires_at, time.time())
            self._known.move_to_end(key)
            _trim(self._known)


@dataclass(frozen=True)
class _Answer:
    version: Seen
    body: bytes
    watched: frozenset[str]
    """The executors of the runs shown as driven: the answer holds while they live."""


class Answers:
    """Encoded answers of reads, by what was asked (see the module's docstring)."""

    def __init__(self, alive: Callable[[str], bool] = executors.alive) -> None:
        self._kept: OrderedDict[tuple[object, ...], _Answer] = OrderedDict()
        self._lock = threading.Lock()
        self._alive = alive

    def get(self, asked: tuple[object, ...], now: Seen | None) -> bytes | None:
        if now is None:
            return None
        with self._lock:
            kept = self._kept.get(asked)
        if kept is None or kept.version != now:
            return None
        if not all(self._alive(executor) for executor in kept.watched):
            return None
        return kept.body

    def keep(
        self, asked: tuple[object, ...], seen: Seen | None, body: bytes, watched: Iterable[str]
    ) -> None:
        """Remember `body` as the answer to `asked`, read at store version `seen` (asked before
        the read), holding while the executors `watched` live."""
        if seen is None:
            return
        with self._lock:
            self._kept[asked] = _Answer(seen, body, frozenset(watched))
            self._kept.move_to_end(asked)
            _trim(self._kept)


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _trim(kept: OrderedDict[K, V]) -> None:
    while len(kept) > KEEP:
        kept.popitem(last=False)


PRINCIPALS = Principals()
ANSWERS = Answers()
