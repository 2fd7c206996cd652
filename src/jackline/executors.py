"""Which processes are alive to drive runs, known without the workflow engine.

A process that drives runs (a `jackline run`, a decision, `resume`, `serve`) claims an executor
id and holds an exclusive lock on `JACKLINE_HOME/executors/<id>.lock` for as long as it lives:
the kernel drops the lock when the process ends, however it ends (`kill -9` included). Whether
a run's driver is alive is then one non-blocking `flock` on one file, which is what lets
`jackline runs` tell a running run from an interrupted one without starting DBOS.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import IO

from ulid import ULID

from jackline import paths

_mine: dict[str, tuple[str, IO[str]]] = {}


def claim() -> str:
    """This process's executor id, locked for as long as the process lives (made once)."""
    if "executor" in _mine:
        return _mine["executor"][0]
    folder = paths.home() / "executors"
    folder.mkdir(parents=True, exist_ok=True)
    executor = f"{socket.gethostname()}-{os.getpid()}-{ULID()}"
    lock = open(folder / f"{executor}.lock", "w")  # noqa: SIM115 - held for life
    fcntl.flock(lock, fcntl.LOCK_EX)
    _mine["executor"] = (executor, lock)
    return executor


def mine() -> str | None:
    return _mine["executor"][0] if "executor" in _mine else None


def release() -> None:
    """Let go of this process's executor: its lock file goes, so it plainly is gone."""
    if "executor" not in _mine:
        return
    _, lock = _mine.pop("executor")
    Path(lock.name).unlink(missing_ok=True)
    lock.close()


def alive(executor: str, reap: bool = False) -> bool:
    """Whether the process that claimed `executor` still lives; with `reap`, a dead one's lock
    file is removed (reading runs leaves the folder as it is)."""
    if executor == mine():
        return True
    lock = _lock_file(executor)
    try:
        f = open(lock)  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    if reap:
        lock.unlink(missing_ok=True)
    return False


def _lock_file(executor: str) -> Path:
    # An executor id is ours (hostname-pid-ulid), but it is read back from a database: a name
    # with a path in it is no lock file of ours.
    return paths.home() / "executors" / f"{Path(executor).name}.lock"
