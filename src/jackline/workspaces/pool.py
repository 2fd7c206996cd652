"""The warm pool: workspaces made ahead of time from the current snapshot, so a run starts at once.

`[pool] size = N` keeps N workspaces ready per repository under `~/.jackline/pool/<repo>/`. Each
is a workspace from the snapshot (an overlay, or a copy) on a placeholder branch, with a small
JSON record beside it; a run claims one by removing its record under the pool's lock, renames
the branch, catches up with main, and the pool refills in a thread of the same process
(`refill_soon`) while the run's agent works: no new process, so no second start and import of
Jackline per run. A process waits for its refills before it exits (`finish_refills`). A workspace
made for an older snapshot is replaced when the pool warms.

A warm workspace comes with its own services (`[services.NAME]`, see `services`) already running
and ready, so the run that takes it waits for neither set-up nor a database to start.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from ulid import ULID

from jackline import paths
from jackline.config import JacklineConfig, load, seconds
from jackline.errors import Refused
from jackline.git import git, rev, toplevel
from jackline.sandbox import bubblewrap
from jackline.workspaces import Workspace, remove, revive, services
from jackline.workspaces import snapshot as snap
from jackline.workspaces.providers import provider_for
from jackline.workspaces.snapshot import RunSetup, Snapshot


@dataclass(frozen=True)
class Slot:
    id: str
    path: str
    branch: str
    method: str
    snapshot: str
    """The snapshot's key."""
    commit: str
    created: float


def directory(repo: Path) -> Path:
    digest = hashlib.sha1(str(repo.resolve()).encode()).hexdigest()[:12]
    return paths.home() / "pool" / f"{repo.resolve().name}-{digest}"


def slots(repo: Path) -> list[Slot]:
    """The warm workspaces of this repository, oldest first."""
    found = []
    for record in sorted(directory(repo).glob("*.json")):
        try:
            found.append(Slot(**json.loads(record.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(found, key=lambda s: s.created)


def warm(
    repo: Path,
    config: JacklineConfig,
    run_setup: RunSetup,
    size: int | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> list[Slot]:
    """Fill the pool to `size` (default `[pool] size`) for main's current snapshot, building the
    snapshot first if it is missing or stale; replace workspaces made for an older one."""
    size = config.pool.size if size is None else size
    for k in snap.sweep_builds():
        say(f"removed the half-built snapshot {k} a crashed builder left")
    current = fresh_snapshot(repo, config, run_setup, say)
    maker = provider_for(config.workspace.shared)
    with _locked(repo):
        for old in [s for s in slots(repo) if s.snapshot != current.key]:
            _discard(old)
            say(f"removed warm workspace {old.id} (snapshot {old.snapshot} is stale)")
        need = size - len(slots(repo))
    made = []
    for _ in range(max(0, need)):
        slot_id = str(ULID()).lower()
        dest = directory(repo) / slot_id
        started = time.monotonic()
        ws = maker.create_from(current, f"jackline/warm-{slot_id}", dest)
        try:
            started_services = services.ensure(dest, config)
        except services.ServiceFailed:
            remove(dest)
            raise
        slot = Slot(
            slot_id, str(dest), ws.branch, ws.method, current.key, current.commit, time.time()
        )
        (directory(repo) / f"{slot_id}.json").write_text(json.dumps(asdict(slot)))
        made.append(slot)
        named = (
            f", services {', '.join(x.name for x in started_services)}" if started_services else ""
        )
        took = time.monotonic() - started
        say(f"warm workspace {slot_id} ready ({ws.method}{named}, {took:.2f}s)")
    return made


def setup_for(repo: Path) -> tuple[Path, JacklineConfig, RunSetup]:
    """The repository's root, config and set-up runner for pool work outside a run; refused
    without the sandbox, whose fixed workspace path is what makes a snapshot reusable."""
    root = toplevel(repo)
    config = load(root)
    if config.sandbox.mode != "bubblewrap":
        raise Refused(
            'snapshots and the warm pool need the sandbox (`[sandbox] mode = "bubblewrap"`): '
            "set-up writes paths that hold only where the sandbox shows every workspace"
        )
    bubblewrap.check()
    logs = paths.logs() / "pool" / time.strftime("%Y%m%d-%H%M%S")
    return root, config, snap.default_setup(config, logs)


def refresh(
    repo: Path,
    config: JacklineConfig,
    run_setup: RunSetup,
    say: Callable[[str], None] = lambda _: None,
) -> tuple[Snapshot, list[Slot]]:
    """Build (or find) the snapshot for main's tip, then refill the pool for it."""
    tip = rev(repo, config.project.main)
    say(f"snapshot of {config.project.main} at {tip[:10]}")
    built = snap.build(repo, tip, config, run_setup)
    return built, warm(repo, config, run_setup, say=say)


def fresh_snapshot(
    repo: Path,
    config: JacklineConfig,
    run_setup: RunSetup,
    say: Callable[[str], None] = lambda _: None,
) -> Snapshot:
    """Main's snapshot (`snapshot.current`: reused while set-up inputs are unchanged), rebuilt at
    main's tip when it is older than `[pool] refresh_every`."""
    current = snap.current(repo, config.project.main, config, run_setup)
    limit = config.pool.refresh_every
    if limit and time.time() - current.created > seconds(limit):
        tip = rev(repo, config.project.main)
        if current.commit != tip:
            say(f"snapshot {current.key} is older than {limit}; rebuilding at {tip[:10]}")
            current = snap.build(repo, tip, config, run_setup)
    say(f"snapshot {current.key} ready")
    return current


def take(repo: Path, branch: str) -> Workspace | None:
    """Claim the oldest warm workspace for a run on `branch`, or None if the pool is empty."""
    with _locked(repo):
        ready = slots(repo)
        if not ready:
            return None
        slot = ready[0]
        (directory(repo) / f"{slot.id}.json").unlink()
    path = Path(slot.path)
    revive(path)
    git(path, "branch", "-m", slot.branch, branch)
    return Workspace(path, branch, rev(path, "HEAD"), f"{slot.method}+pool")


_refills: dict[Path, threading.Thread] = {}
_again: set[Path] = set()
_owed: dict[str, tuple[Path, threading.Timer]] = {}
"""Refills runs owe, by run (`refill_after_agent`)."""
_refills_lock = threading.Lock()


def refill_soon(repo: Path) -> None:
    """Refill the pool of `repo` in a thread of this process, without delaying the caller: a run
    that took a warm workspace goes on to its agent while the next one is made. A refill asked
    for while one is under way runs again after it (the first counted what was missing before
    the second run took its workspace)."""
    key = repo.resolve()
    with _refills_lock:
        running = _refills.get(key)
        if running is not None and running.is_alive():
            _again.add(key)
            return
        thread = threading.Thread(target=_refill, args=(key,), name="pool-refill", daemon=True)
        _refills[key] = thread
    thread.start()


REFILL_LATEST = 10.0
"""Seconds a refill owed by a run waits at most for that run's agent to start."""


def refill_after_agent(run_id: str, repo: Path) -> None:
    """Refill the pool of `repo` once run `run_id` has its agent starting (`agent_starting`),
    or after `REFILL_LATEST` seconds, whichever comes first. Made at once, the next workspace
    was made while this run went on to its agent, and on two cores the two met (as typed, to
    the agent's first instruction, 10 interleaved runs each: 356 ms then, 339 ms now)."""
    timer = threading.Timer(REFILL_LATEST, agent_starting, args=(run_id,))
    timer.daemon = True
    with _refills_lock:
        before = _owed.get(run_id)
        _owed[run_id] = (repo, timer)
    if before is not None:  # the run took a workspace again: one refill, the later timer
        before[1].cancel()
    timer.start()


def agent_starting(run_id: str) -> None:
    """Run `run_id` starts its agent: the refill it owes starts now (see `refill_after_agent`)."""
    with _refills_lock:
        owed = _owed.pop(run_id, None)
    if owed is not None:
        owed[1].cancel()
        refill_soon(owed[0])


def finish_refills(say: Callable[[str], None] = lambda _: None, timeout: float = 600) -> None:
    """Wait for this process's refills to end, before the process does (the refills its runs
    still owe start now): a refill cut off would leave a half-made workspace behind. Says so
    when it has to wait."""
    with _refills_lock:
        owing = list(_owed)
    for run_id in owing:
        agent_starting(run_id)
    with _refills_lock:
        running = [t for t in _refills.values() if t.is_alive()]
    if not running:
        return
    say("waiting for the warm pool to refill…")
    deadline = time.monotonic() + timeout
    for thread in running:
        thread.join(max(0.0, deadline - time.monotonic()))


def _refill(repo: Path) -> None:
    """`warm` until no run asked for another refill meanwhile; what it says, and a failure with
    its traceback, go to `logs/pool.log` (as `jackline pool warm` would print them)."""
    log = paths.logs() / "pool.log"
    log.parent.mkdir(parents=True, exist_ok=True)

    def say(line: str) -> None:
        with log.open("a") as out:
            out.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {repo.name}: {line}\n")

    while True:
        try:
            warm(*setup_for(repo), say=say)
        except Exception:  # noqa: BLE001 - a refill that fails leaves the pool short, not the run
            say(f"refilling the pool failed:\n{traceback.format_exc()}")
        with _refills_lock:
            if repo not in _again:
                return
            _again.discard(repo)


def drain(repo: Path) -> list[Slot]:
    """Remove every warm workspace of this repository."""
    with _locked(repo):
        gone = slots(repo)
        for slot in gone:
            _discard(slot)
    return gone


def _discard(slot: Slot) -> None:
    (Path(slot.path).parent / f"{slot.id}.json").unlink(missing_ok=True)
    remove(Path(slot.path))


@contextmanager
def _locked(repo: Path) -> Iterator[None]:
    where = directory(repo)
    where.mkdir(parents=True, exist_ok=True)
    with (where / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
