"""This machine's side: cleaning up, the worker, the warm pool, resuming interrupted runs, the
offline copy of the vulnerability database."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jackline import config as cfg
from jackline import executors, paths, repos
from jackline import git as g
from jackline.errors import Interrupted, Refused
from jackline.events import Kind
from jackline.forge import github
from jackline.guard import audit
from jackline.guard.audit import AuditLog
from jackline.guard.redact import Redactor
from jackline.models import (
    DECIDING,
    FINAL,
    RELEASE_WAITS,
    ReleaseStatus,
    Run,
    Status,
    WorkerBeat,
)
from jackline.scans import osvdb
from jackline.scans.osvdb import Progress, Updated
from jackline.store import Store
from jackline.verbs import OnEvent
from jackline.workspaces import remove as remove_workspace

if TYPE_CHECKING:
    from jackline.forge.github import Setup

    pass


from jackline.api.submission import recorded_config


def clean(run_ids: list[str] | None = None, dry_run: bool = False) -> list[dict[str, Any]]:
    """Remove the workspaces that finished runs keep for inspection (failed, over budget).

    A run that is still live (running, awaiting review, blocked) keeps its workspace; naming one
    is refused.
    """
    store = Store()
    if run_ids:
        runs = [store.get_run(r) for r in run_ids]
        live = [r for r in runs if not _finished(r)]
        if live:
            names = ", ".join(f"{r.id} ({r.status})" for r in live)
            raise Refused(f"{names} still needs its workspace; reject it first")
    else:
        runs = [r for r in store.list_runs(limit=100_000) if _finished(r)]
    removed = []
    for run in runs:
        if not run.workspace or not Path(run.workspace).exists():
            continue
        size = _size(Path(run.workspace))
        removed.append(
            {"run": run.id, "status": run.status, "workspace": run.workspace, "size": size}
        )
        if not dry_run:
            remove_workspace(Path(run.workspace))
            AuditLog(store, Redactor({})).record(run.id, Kind.CLEANUP, removed=run.workspace)
    return removed


def _finished(run: Run) -> bool:
    """Ended, or blocked by an older Jackline whose workflow ended there (`waits_for_decision`)."""
    if run.status == Status.BLOCKED and run.workspace and Path(run.workspace).exists():
        return not waits_for_decision(run.id)
    return run.status in FINAL


def waits_for_decision(run_id: str) -> bool:
    """Whether the run's workflow is still under way, which a blocked run's waits for a
    decision; one of an older Jackline ended when it was blocked."""
    from jackline import engine

    return engine.under_way(run_id)


def _size(path: Path) -> str:
    total = sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    for unit in ("B", "KiB", "MiB"):
        if total < 1024:
            return f"{total:.0f} {unit}"
        total //= 1024
    return f"{total:.0f} GiB"


def worker(repos: list[Path]) -> list[dict[str, str]]:
    """Start (or take over) the scheduled loops of these repositories in this process."""
    from jackline import engine

    roots = [g.toplevel(r) for r in repos]
    for root in roots:
        cfg.load(root)  # a broken config is an error now, not a failed tick later
    return engine.keep_schedules(roots)


def team_mode() -> bool:
    """Whether workers share one database (`JACKLINE_DATABASE_URL`): runs are enqueued for
    them, and no other process drives one."""
    return executors.team()


@dataclass(frozen=True)
class Working:
    """A worker as it started."""

    schedules: list[dict[str, str]]
    """The scheduled loops it keeps (kind, repo, workflow, state)."""
    me: WorkerBeat | None = None
    """Team mode: the worker as its heartbeat says it (None: a worker of one machine, which
    keeps the schedules only)."""
    heart: executors.Heart | None = field(default=None, repr=False, compare=False)


def start_worker(
    repos: list[Path] | None,
    concurrency: int | None = None,
    workspaces: Path | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Working:
    """Start this process's worker: the repositories' schedules (default: this one's) and, in
    team mode, runs and releases from the shared queue, up to `concurrency` at once
    (`executors.default_concurrency` unless given), in workspaces under `workspaces`."""
    check_audit_key(say)
    if not executors.team():
        if concurrency is not None or workspaces is not None:
            raise Refused(
                "--concurrency and --workspaces are for team mode, where workers take runs "
                "from a shared queue: set JACKLINE_DATABASE_URL; on one machine the process "
                "that submits a run drives it, and `jackline worker` keeps the schedules"
            )
        return Working(worker(repos or [Path(".")]))
    if concurrency is not None and concurrency < 1:
        raise Refused(f"--concurrency {concurrency}: a worker takes at least 1 run at once")
    if workspaces is not None:  # `paths.workspaces()` reads it, here and in what we start
        os.environ["JACKLINE_WORKSPACES"] = str(workspaces.expanduser().resolve())
    roots = _schedule_roots(repos)
    me = _heartbeat(concurrency or executors.default_concurrency(), say)
    from jackline import engine

    engine.work()
    loops = engine.keep_schedules(roots) if roots else []
    return Working(loops, me.record, me)


def check_audit_key(say: Callable[[str], None]) -> None:
    """Before a worker or a server does anything: the audit key `JACKLINE_AUDIT_KEY` names is
    read now (a wrong one ends the process with an error, before any event is signed with
    another key); in team mode without it, `say` warns once that every machine needs the same."""
    warning = audit.team_warning(executors.team())
    if warning:
        say(warning)


def _schedule_roots(repos: list[Path] | None) -> list[Path]:
    """The repositories whose schedules a team worker keeps: those named, else the one it was
    started in, if it was started in one (a worker needs none to take runs)."""
    if repos:
        roots = [g.toplevel(r) for r in repos]
    else:
        try:
            roots = [g.toplevel(Path("."))]
        except Exception:  # noqa: BLE001 - not in a repository: no schedules of its own
            return []
    for root in roots:
        cfg.load(root)  # a broken config is an error now, not a failed tick later
    return roots


def _heartbeat(concurrency: int, say: Callable[[str], None]) -> executors.Heart:
    """This worker's heartbeat, beating before the engine takes a run from the queue."""
    import socket

    executor = executors.claim()
    now = time.time()
    record = WorkerBeat(
        executor, socket.gethostname(), os.getpid(), now, now, concurrency, str(paths.workspaces())
    )

    def declared_dead() -> None:
        # Another worker found this one silent too long and took its runs over: going on with
        # them here would do their steps twice. The commands go with it, as on a crash.
        from jackline import proc

        say(f"{executor} was found dead by another worker, which took its runs over; exiting")
        proc.halt()
        os._exit(75)

    heart = executors.Heart(record, declared_dead)
    heart.start()
    return heart


def work_until_stopped(
    working: Working | None = None, say: Callable[[str], None] = lambda _: None
) -> None:
    """Block while the workflows run in this process's threads; SIGTERM stops it like Ctrl-C.
    A team worker meanwhile claims work from the shared queue while it has room (`_claim`),
    sweeps every heartbeat for the work of dead workers (`_sweep`), and when stopped leaves at
    once (`_leave`).

    A stop is a flag the loop reads between two looks, never an exception thrown into whatever
    the loop is doing: one raised inside a database call (a sweep holding the take-over lock, a
    transaction on the queue) could leave a lock held that leaving itself then waits for. A
    second Ctrl-C or SIGTERM ends the process at once, where it is (a crash: the others take
    its work over after `dead_after`). `kill -USR1 PID` prints every thread's stack to its
    standard error: what a worker that does not stop is waiting for."""
    import faulthandler
    import signal

    stopping: list[int] = []

    def stop(signo: int, frame: Any) -> None:
        if stopping:
            raise KeyboardInterrupt
        stopping.append(signo)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with contextlib.suppress(Exception):  # no usable standard error: no stacks to print
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    heart = working.heart if working is not None else None
    if heart is None:
        while not stopping:
            time.sleep(1)
        return
    swept = 0.0
    cancels = _Cancels()
    while not stopping:
        if time.monotonic() - swept >= executors.beat_every():
            _sweep(say)
            swept = time.monotonic()
        if stopping:
            break
        cancels.look(_claim(heart.record.concurrency, say), say)
        time.sleep(CLAIM_POLL)
    say("Stopping: no more work is taken; leaving…")
    _leave(heart, say)


CLAIM_POLL = 0.5
"""Seconds between two looks of a worker with room at the shared queue."""


def _claim(concurrency: int, say: Callable[[str], None]) -> list[str]:
    """Take work from the shared queue while fewer than `concurrency` of this worker's
    workflows work (one waiting for a person does not: it costs a thread, not a machine).
    Returns the workflows that worked before this look took more."""
    from jackline import engine

    try:
        working = engine.working()
        for workflow in engine.claim(concurrency - len(working)):
            say(f"took {workflow} from the queue")
    except Exception as e:  # noqa: BLE001 - the worker goes on; it looks again
        say(f"taking work from the queue failed: {type(e).__name__}: {e}")
        return []
    return working


class _Cancels:
    """A run cancelled from another machine (a person's `jackline cancel` there, a server) has
    its workflow cancelled, so no step of it starts again; but the agent at work is a process
    on this worker's machine, which the canceller cannot reach, and it would go on until its
    step ended. So each look at the queue, the runs that worked at the last look and no
    longer do are looked at once: for a cancelled one, its agents are ended here."""

    def __init__(self) -> None:
        self._held: set[str] = set()

    def look(self, working: list[str], say: Callable[[str], None]) -> None:
        from jackline import engine
        from jackline.steps import kill_agents

        gone = self._held - set(working)
        self._held = {w for w in working if w.startswith("run-")}
        for run_id in sorted(gone):
            try:
                if engine.cancelled(run_id):
                    kill_agents(run_id)
                    say(f"{run_id} was cancelled: its agent here is ended")
            except Exception as e:  # noqa: BLE001 - the worker goes on
                say(f"ending the agent of cancelled {run_id} failed: {type(e).__name__}: {e}")


def _sweep(say: Callable[[str], None]) -> None:
    """One look for work left by the dead: their workflows back on the queue, and runs and
    releases recorded but never enqueued. A failed look is said and tried again next beat."""
    from jackline import engine

    try:
        for workflow in engine.sweep():
            say(f"took over {workflow}: its worker is dead; it goes on from its last step")
        for stranded in _enqueue_stranded():
            say(
                f"enqueued {stranded}: recorded over {executors.dead_after():g}s ago and still "
                "not on the queue (its submitter stopped before it enqueued it)"
            )
    except Exception as e:  # noqa: BLE001 - the worker goes on; the next beat looks again
        say(f"looking for work left by dead workers failed: {type(e).__name__}: {e}")


def _enqueue_stranded() -> list[str]:
    """Team mode: enqueue the runs and releases whose submitter wrote their record and died
    before it enqueued them: recorded longer ago than a worker may be silent before it is dead
    (a live submitter enqueues at once, though a loaded server starting its engine for its
    first submission may take seconds; enqueueing twice is one workflow anyway)."""
    from jackline import engine

    store = Store()
    before = time.time() - executors.dead_after()
    done = []
    for run in store.list_runs(Status.QUEUED, 100_000):
        if run.created_at < before:
            rounds = recorded_config(store, run.id).blueprint.max_rounds
            if engine.start_stranded(run.id, run.blueprint, rounds):
                done.append(run.id)
    for rel in store.list_releases(limit=100_000):
        if rel.status == ReleaseStatus.QUEUED and rel.created_at < before:
            if engine.start_stranded_release(rel.id):
                done.append(rel.id)
    store.close()
    return done


def _leave(heart: executors.Heart, say: Callable[[str], None]) -> None:
    """Stop at once and let others go on: the commands end (their steps record nothing, as on
    a crash), the engine stops taking work, and the heartbeat's row goes, so a live worker
    takes this one's runs over at its next sweep instead of after `dead_after` seconds."""
    from jackline import engine, proc
    from jackline.workspaces import pool

    pool.finish_refills(say, timeout=30)  # not cut off halfway: a half-made workspace stays
    proc.halt()
    heart.stop()
    store = Store()
    me = heart.record.id
    left = [
        r.id for r in store.list_runs(limit=100_000) if r.executor == me and r.status not in FINAL
    ]
    try:
        engine.shutdown()
    except Exception as e:  # noqa: BLE001 - its threads end with this process all the same
        say(f"stopping the engine failed: {type(e).__name__}: {e}")
    finally:
        # Whatever shutting down did (a busy database refused it under load once), this worker
        # is leaving: its row goes, or its runs would wait `dead_after` for a take-over.
        store.forget_worker(heart.record.id)
        store.close()
    if left:
        say(f"Left {len(left)} run(s) for another worker to take over: {', '.join(left)}")
    say(f"Worker {heart.record.id} stopped.")


@dataclass(frozen=True)
class WorkerState:
    """A worker as `jackline workers` shows it."""

    beat: WorkerBeat
    alive: bool
    age: float
    """Seconds since its last beat."""
    runs: tuple[str, ...]
    """The runs it drives (not ended, its name on them)."""


def workers() -> list[WorkerState]:
    """Every worker that beats or has not been found dead yet, with the runs it drives. Read
    from the store: listing workers starts no engine."""
    store = Store()
    now = time.time()
    driving: dict[str, list[str]] = {}
    for run in store.list_runs(limit=100_000):
        if run.executor and run.status not in FINAL:
            driving.setdefault(run.executor, []).append(run.id)
    found = [
        WorkerState(
            w, executors.lives(w, now), max(0.0, now - w.beat_at), tuple(driving.get(w.id, []))
        )
        for w in store.workers()
    ]
    store.close()
    return found


def _here(repo: Path | str) -> Path:
    """A repository named on this machine's command line as a working tree here: a path as
    given; a URL's clone, brought to the remote's main (the pool of a URL is this machine's)."""
    return repos.synced(repo) if isinstance(repo, str) and repos.is_url(repo) else Path(repo)


def pool_warm(
    repo: Path | str, size: int | None = None, say: Callable[[str], None] = lambda _: None
) -> list[dict[str, Any]]:
    """Fill the pool (`[pool] size`, or `size`) from main's current snapshot."""
    from jackline.workspaces import pool

    root, config, run_setup = pool.setup_for(_here(repo))
    return [asdict(s) for s in pool.warm(root, config, run_setup, size=size, say=say)]


def pool_refresh(repo: Path | str, say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Build (or find) the snapshot for main's tip, then refill the pool for it."""
    from jackline.workspaces import pool

    built, warmed = pool.refresh(*pool.setup_for(_here(repo)), say=say)
    return {"snapshot": _snapshot_json(built), "warmed": [asdict(s) for s in warmed]}


def pool_status(repo: Path | str) -> dict[str, Any]:
    from jackline.workspaces import pool, services, snapshot

    root = g.toplevel(_here(repo))
    config = cfg.load(root)
    origin = str(root.resolve())
    return {
        "repo": origin,
        "size": config.pool.size,
        "snapshots": [_snapshot_json(x) for x in snapshot.list_all() if str(x.origin) == origin],
        "warm": [
            {
                **asdict(x),
                "age": round(time.time() - x.created, 1),
                "services": services.describe(services.running(Path(x.path))),
            }
            for x in pool.slots(root)
        ],
    }


def pool_figures(root: Path) -> tuple[int, int]:
    """The warm workspaces `[pool] size` asks for in the repository whose working tree's top is
    `root`, and those ready now: what `/metrics` reports on every scrape, so read from the
    config and the pool's folder alone (no git, no snapshot listing, no service probes)."""
    from jackline.workspaces import pool

    return cfg.load(root).pool.size, len(pool.slots(root))


def pool_clear(repo: Path | str) -> dict[str, Any]:
    """Remove the warm workspaces and every snapshot of this repository no workspace uses."""
    from jackline.workspaces import pool, snapshot

    root = g.toplevel(_here(repo))
    gone = pool.drain(root)
    origin = str(root.resolve())
    removed = []
    for x in snapshot.list_all():
        if str(x.origin) == origin and not snapshot.in_use(x):
            snapshot.remove(x)
            removed.append(x.key)
    return {"warm_removed": [s.id for s in gone], "snapshots_removed": removed}


def _snapshot_json(x: Any) -> dict[str, Any]:
    return {
        "key": x.key,
        "commit": x.commit,
        "path": str(x.path),
        "created": x.created,
        "age": round(time.time() - x.created, 1),
    }


def resume(run_id: str | None = None, on_event: OnEvent | None = None) -> list[Run]:
    """Drive on the runs whose process died. A run waiting for review waits for a person. In
    team mode the work of dead workers goes back on the queue for the live ones (as their own
    sweep does), and the runs put back are followed."""
    from jackline import engine

    store = Store()
    if executors.team():
        return _resume_team(store, run_id, on_event)
    if run_id:
        run = store.get_run(run_id)
        if run.status in FINAL:
            raise Refused(f"{run.id} is {run.status}; there is nothing to resume")
        if run.status == Status.AWAITING_REVIEW:
            raise Refused(f"{run.id} waits for a review: approve, request-changes or reject it")
        if run.status == Status.BLOCKED:
            raise Refused(f"{run.id} is blocked by a secret: request-changes or reject it")
        ids = engine.take_over([run.id]) or _start_stranded([run])
        if not ids:
            raise Refused(f"{run.id} is being driven by a live process")
    else:
        # The engine's interrupted workflows are runs, releases and the worker's schedules;
        # the schedules are the worker's to take over.
        interrupted = engine.interrupted()
        candidates = [
            r
            for r in interrupted
            if r.startswith("run-") and store.get_run(r).status not in DECIDING
        ]
        ids = engine.take_over(candidates) + _start_stranded(
            store.list_runs(Status.QUEUED, 100_000)
        )
        for rel in (r for r in interrupted if r.startswith("rel-")):
            if store.get_release(rel).status not in RELEASE_WAITS and engine.take_over([rel]):
                engine.drive_release(rel, on_event)
        for rollback in (r for r in interrupted if engine.rolled_back_release(r)):
            if engine.take_over([rollback]):
                engine.drive_rollback(rollback, on_event)
    try:
        engine.drive(ids, on_event)
    except KeyboardInterrupt:
        raise Interrupted(ids) from None
    return [store.get_run(i) for i in ids]


def _resume_team(store: Store, run_id: str | None, on_event: OnEvent | None) -> list[Run]:
    from jackline import engine

    if run_id:
        run = store.get_run(run_id)
        if run.status in FINAL:
            raise Refused(f"{run.id} is {run.status}; there is nothing to resume")
    moved = engine.sweep(schedules=False) + _enqueue_stranded()
    ids = [r for r in moved if r.startswith("run-") and (run_id is None or r == run.id)]
    if run_id and not ids:
        raise Refused(
            f"{run.id} is not left by a dead worker: its worker lives, or it waits on the "
            "queue for one (`jackline workers` lists them)"
        )
    try:
        engine.drive(ids, on_event)
    except KeyboardInterrupt:
        raise Interrupted(ids, detached=True, where="on the workers") from None
    return [store.get_run(i) for i in ids]


def _start_stranded(runs: list[Run]) -> list[str]:
    """Start the workflows of queued runs whose submitter died before it started them: it
    claimed its executor before writing the record, and that executor's lock is gone (a live
    submitter is about to start it). The record and the workflow are writes to two databases;
    this makes them one act, with no guess at how long a submitter may take."""
    from jackline import engine

    store = Store()
    started = []
    for run in runs:
        if run.status != Status.QUEUED or not run.executor or executors.alive(run.executor):
            continue
        rounds = recorded_config(store, run.id).blueprint.max_rounds
        if engine.start_stranded(run.id, run.blueprint, rounds):
            started.append(run.id)
    return started


def github_setup(repo: Path, server: str) -> Setup:
    """What the repository's GitHub needs told (the webhook at `server`, its events, the
    permissions) and what its API says of it now (`forge.github.setup`, read-only)."""

    root = g.toplevel(repo)
    config = cfg.load(root)
    if config.forge.kind != "github":
        raise Refused(
            f"{root / cfg.FILENAME} has `[forge] kind = {config.forge.kind!r}`: set "
            '`kind = "github"`, `repository = "owner/name"` and `token` first'
        )
    return github.setup(config.forge, server)


def osv_update(
    repo: Path, dest: Path | None = None, url: str | None = None, progress: Progress | None = None
) -> Updated:
    """Download OSV's PyPI advisories into `dest`, else into the repository's `[scan] osv_db`
    (a relative one taken from the repository's root), replacing the old copy atomically."""
    if dest is None:
        root = g.toplevel(repo)
        configured = cfg.load(root).scan.osv_db
        if not configured:
            raise Refused(
                f"{root / cfg.FILENAME} sets no `[scan] osv_db`: pass --dest DIR, and set "
                "`[scan] osv_db` to that absolute path so the scan reads it"
            )
        dest = root / Path(configured).expanduser()
    return osvdb.update(dest, url, progress)
