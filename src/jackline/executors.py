"""Which processes are alive to drive runs, known without the workflow engine.

A process that drives runs (a `jackline run`, a decision, `resume`, `serve`) claims an executor
id and holds an exclusive lock on `JACKLINE_HOME/executors/<id>.lock` for as long as it lives:
the kernel drops the lock when the process ends, however it ends (`kill -9` included). Whether
a run's driver is alive is then one non-blocking `flock` on one file, which is what lets
`jackline runs` tell a running run from an interrupted one without starting DBOS.

Team mode (`JACKLINE_DATABASE_URL` set: workers on any number of machines share one database).
A lock file says nothing about another machine, so there liveness is a heartbeat in the store:
each worker writes its row every `beat_every()` seconds from a thread of its own (`Heart`), and
an executor whose last beat is older than `dead_after()` (or that has no row: it never beat, or
left) is dead, wherever it ran. Only workers drive work in team mode; every other process
(`jackline run`, a decision, the server) enqueues, sends and follows.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO

from ulid import ULID

from jackline import paths
from jackline.errors import Refused
from jackline.models import WorkerBeat
from jackline.store import Store

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
    file is removed (reading runs leaves the folder as it is). In team mode: whether it is a
    worker whose heartbeat is fresh (`beating`)."""
    if executor == mine():
        return True
    if team():
        return beating(executor)
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


# team mode ---------------------------------------------------------------------------------

BEAT_SECONDS = 5.0
"""Seconds between two heartbeats of a worker; `JACKLINE_BEAT_SECONDS` overrides it (tests)."""
DEAD_AFTER_SECONDS = 30.0
"""Seconds without a heartbeat after which a worker is dead and its runs are taken over;
`JACKLINE_DEAD_AFTER_SECONDS` overrides it (tests). Six beats: a worker is not declared dead
for one slow write, and the runs of a dead one move on well within a minute."""


def team() -> bool:
    """Whether this is team mode: `JACKLINE_DATABASE_URL` names the database every worker,
    server and command shares (`paths.team_mode`, the one definition)."""
    return paths.team_mode()


def beat_every() -> float:
    return _seconds("JACKLINE_BEAT_SECONDS", BEAT_SECONDS)


def dead_after() -> float:
    """The bound on a heartbeat's age, at least two beats (one late write is no death)."""
    bound = _seconds("JACKLINE_DEAD_AFTER_SECONDS", DEAD_AFTER_SECONDS)
    if bound < 2 * beat_every():
        raise Refused(
            f"JACKLINE_DEAD_AFTER_SECONDS={bound:g} is less than two heartbeats "
            f"(JACKLINE_BEAT_SECONDS={beat_every():g}): a worker would be declared dead "
            "between two beats; make it at least twice the beat"
        )
    return bound


def _seconds(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise Refused(f"{name}={text!r}: give a number of seconds greater than 0, such as 5")
    return value


def lives(worker: WorkerBeat, now: float | None = None) -> bool:
    """Whether the worker's last beat is recent enough for it to be alive."""
    return (now if now is not None else time.time()) - worker.beat_at < dead_after()


def beating(executor: str, store: Store | None = None) -> bool:
    """Whether `executor` is a worker with a fresh heartbeat (read through `store`, else a
    store of its own)."""
    own = store is None
    reader = store or Store()
    try:
        return any(w.id == executor and lives(w) for w in reader.workers())
    finally:
        if own:
            reader.close()


def default_concurrency() -> int:
    """How many runs a worker takes at once unless told: one a core, and 2 GiB of memory a
    run (an agent, its checks and their services), at least one."""
    cores = os.cpu_count() or 1
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(1, min(cores, memory // (2 << 30)))


class Heart:
    """A worker's heartbeat: its row in the store, written at once and then every
    `beat_every()` seconds by a thread, until `stop`.

    A worker that finds its row gone was found dead by another (it beat too late: a machine
    paused, a disk stalled) and its runs are being taken over: it must not go on with them
    beside the worker that took them, so `on_declared_dead` is called (the worker exits)."""

    def __init__(self, record: WorkerBeat, on_declared_dead: Callable[[], None]) -> None:
        self.record = record
        self._on_declared_dead = on_declared_dead
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="jackline-heart", daemon=True)

    def start(self) -> None:
        store = Store()
        try:
            store.beat(replace(self.record, beat_at=time.time()))
        finally:
            store.close()
        self._thread.start()

    def stop(self) -> None:
        """Stop beating; the row stays until the worker forgets it (`Store.forget_worker`)."""
        self._stop.set()
        self._thread.join(timeout=beat_every() + 30)

    def _beat(self) -> None:
        store = Store()  # a connection of this thread's own
        last = time.time()
        try:
            while not self._stop.wait(beat_every()):
                try:
                    renewed = store.renew_beat(self.record.id, time.time())
                except Exception:  # noqa: BLE001 - a busy or unreachable database: try again
                    renewed = time.time() - last < dead_after()
                else:
                    last = time.time() if renewed else last
                if not renewed:  # found dead, or silent as long as the dead are
                    self._on_declared_dead()
                    return
        finally:
            store.close()
