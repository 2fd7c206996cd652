"""This machine's side: cleaning up, the worker, the warm pool, resuming interrupted runs, the
offline copy of the vulnerability database."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jackline import config as cfg
from jackline import executors, repos
from jackline import git as g
from jackline.errors import Interrupted, Refused
from jackline.events import Kind
from jackline.guard.audit import AuditLog
from jackline.guard.redact import Redactor
from jackline.models import (
    DECIDING,
    FINAL,
    RELEASE_WAITS,
    Run,
    Status,
)
from jackline.scans import osvdb
from jackline.scans.osvdb import Progress, Updated
from jackline.store import Store
from jackline.verbs import OnEvent
from jackline.workspaces import remove as remove_workspace

if TYPE_CHECKING:
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


def work_until_stopped() -> None:
    """Block while the workflows run in this process's threads; SIGTERM stops it like Ctrl-C."""
    import signal

    def stop(signo: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return


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
    """Drive on the runs whose process died. A run waiting for review waits for a person."""
    from jackline import engine

    store = Store()
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
