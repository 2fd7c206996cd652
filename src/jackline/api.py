"""The verbs. Every surface (CLI now; web, Slack, MCP later) parses its input, calls one function
here, and renders the answer. Policy lives here and below, never in a surface.

The engine (and with it DBOS) is imported only by the verbs that drive a workflow, so reading
runs stays fast and works without the engine.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ulid import ULID

from jackline import blueprints, paths
from jackline import config as cfg
from jackline import git as g
from jackline.errors import ConfigError, NotFound, Refused
from jackline.forge import local as forge
from jackline.guard.audit import AuditLog, Event
from jackline.guard.redact import Redactor, resolve
from jackline.models import FINAL, Run
from jackline.review import owner_refusal
from jackline.store import Store
from jackline.workspaces import remove as remove_workspace

OnEvent = Callable[[str, Event], None]


def whoami() -> str:
    return os.environ.get("JACKLINE_USER") or getpass.getuser()


def validate(repo: Path) -> cfg.JacklineConfig:
    return cfg.load(g.toplevel(repo))


def submit(
    task: str,
    repo: Path,
    agent: str | None = None,
    blueprint: str | None = None,
    by: str | None = None,
    wait: bool = True,
    on_event: OnEvent | None = None,
) -> Run:
    """Record a run and start its workflow; with `wait`, drive it until it rests."""
    if not task.strip():
        raise Refused("the task is empty; say what the agent should do")
    root = g.toplevel(repo)
    config = cfg.load(root)
    agent_name = agent or "default"
    if agent_name not in config.agents:
        if not config.agents:
            raise ConfigError(
                str(root / cfg.FILENAME),
                ["agents: no agent configured; add [agents.default] with a command"],
            )
        known = ", ".join(sorted(config.agents))
        raise NotFound(f"no agent {agent_name!r} in {root / cfg.FILENAME}; configured: {known}")
    for name, ref in config.agents[agent_name].secrets.items():
        resolve(ref, f"{root / cfg.FILENAME}: agents.{agent_name}.secrets.{name}")
    if config.sandbox.mode == "bubblewrap":
        from jackline.sandbox import bubblewrap

        bubblewrap.check()  # refuses, saying how to install it, where it cannot start
    bp = blueprints.get(blueprint or config.blueprint.name)
    try:
        g.rev(root, config.project.main)
    except Exception:
        raise ConfigError(
            str(root / cfg.FILENAME),
            [f"project.main: branch {config.project.main!r} has no commit in {root}"],
        ) from None
    ulid = str(ULID()).lower()
    run_id = f"run-{ulid}"
    now = time.time()
    run = Run(
        id=run_id,
        task=task.strip(),
        repo=str(root),
        agent=agent_name,
        blueprint=bp.name,
        status="queued",
        branch=f"agent/{_slug(task)}-{ulid[-6:]}",
        submitted_by=by or whoami(),
        created_at=now,
        updated_at=now,
    )
    store = Store()
    store.insert_run(run)
    AuditLog(store, Redactor.from_environment()).record(
        run_id,
        "submitted",
        task=run.task,
        agent=agent_name,
        blueprint=bp.name,
        by=run.submitted_by,
        config=config.model_dump(mode="json"),
    )
    from jackline import engine

    engine.start(run_id, bp.name, config.blueprint.max_rounds)
    if wait:
        engine.drive([run_id], on_event)
    return store.get_run(run_id)


def _slug(task: str) -> str:
    words = re.findall(r"[a-z0-9]+", task.lower())
    slug = ""
    for w in words:
        if len(slug) + len(w) + 1 > 40:
            break
        slug = f"{slug}-{w}" if slug else w
    return slug or "task"


# reading ----------------------------------------------------------------------------------


def runs(status: str | None = None, limit: int = 100) -> list[Run]:
    return Store().list_runs(status, limit)


def get(run_id: str) -> Run:
    return Store().get_run(run_id)


def events(run_id: str, after: int = 0) -> list[Event]:
    store = Store()
    run = store.get_run(run_id)
    return AuditLog(store, Redactor({})).read(run.id, after)


def rounds(run_id: str) -> list[dict[str, Any]]:
    return [e.data for e in events(run_id) if e.kind == "round"]


def findings(run_id: str) -> list[dict[str, Any]]:
    """The latest scan's findings, block first (empty before the scan has run)."""
    scans = [e.data for e in events(run_id) if e.kind == "scan"]
    return list(scans[-1]["findings"]) if scans else []


def handoff_text(run: Run) -> str | None:
    if run.handoff and Path(run.handoff).exists():
        return Path(run.handoff).read_text()
    return None


def as_json(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "task": run.task,
        "status": run.status,
        "branch": run.branch,
        "rounds": run.rounds,
        "handoff": run.handoff,
        "repo": run.repo,
        "agent": run.agent,
        "blueprint": run.blueprint,
        "submitted_by": run.submitted_by,
        "base_sha": run.base_sha,
        "head_sha": run.head_sha,
        "merge_sha": run.merge_sha,
        "workspace": run.workspace,
        "reason": run.reason,
        "blocking": run.blocking,
        "warnings": run.warnings,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
    }


# review -----------------------------------------------------------------------------------


def approve(
    run_id: str, by: str | None = None, message: str = "", on_event: OnEvent | None = None
) -> Run:
    run, config = _reviewable(run_id)
    by = by or whoami()
    if by == run.submitted_by and not config.review.allow_self_approval:
        raise Refused(
            f"{by} submitted {run.id} and cannot approve it; another person must "
            "(or set [review] allow_self_approval = true)"
        )
    refusal = owner_refusal(run, config, by)
    if refusal:
        blocking = [f for f in findings(run.id) if f["level"] == "block"]
        listed = "; ".join(
            f"{f['rule']} {f.get('file') or ''}{':' + str(f['line']) if f.get('line') else ''}".strip()
            for f in blocking[:5]
        )
        raise Refused(f"{refusal} (findings: {listed})" if listed else refusal)
    refusal = forge.landing_refusal(Path(run.repo), config.project.main)
    if refusal:
        raise Refused(f"cannot merge {run.id}: {refusal}")
    return _decide(run, {"kind": "approve", "by": by, "message": message}, on_event)


def request_changes(
    run_id: str, message: str, by: str | None = None, on_event: OnEvent | None = None
) -> Run:
    if not message.strip():
        raise Refused("say what should change: -m TEXT is the agent's feedback")
    run, _ = _reviewable(run_id)
    return _decide(
        run, {"kind": "request_changes", "by": by or whoami(), "message": message}, on_event
    )


def reject(
    run_id: str, by: str | None = None, message: str = "", on_event: OnEvent | None = None
) -> Run:
    run, _ = _reviewable(run_id)
    return _decide(run, {"kind": "reject", "by": by or whoami(), "message": message}, on_event)


def _reviewable(run_id: str) -> tuple[Run, cfg.JacklineConfig]:
    store = Store()
    run = store.get_run(run_id)
    if run.status != "awaiting_review":
        raise Refused(f"{run.id} is {run.status}; only a run awaiting review takes a decision")
    submitted = store.events(run.id, kind="submitted")
    return run, cfg.parse(json.loads(submitted[0]["data"])["config"])


def _decide(run: Run, decision: dict[str, str], on_event: OnEvent | None) -> Run:
    from jackline import engine

    engine.decide(run.id, decision)
    engine.drive([run.id], on_event, after_decision=True)
    return get(run.id)


# clean ------------------------------------------------------------------------------------


def clean(run_ids: list[str] | None = None, dry_run: bool = False) -> list[dict[str, Any]]:
    """Remove the workspaces that finished runs keep for inspection (failed, blocked).

    A run that is still live (running, awaiting review) keeps its workspace; naming one is refused.
    """
    store = Store()
    if run_ids:
        runs = [store.get_run(r) for r in run_ids]
        live = [r for r in runs if r.status not in FINAL]
        if live:
            names = ", ".join(f"{r.id} ({r.status})" for r in live)
            raise Refused(f"{names} still needs its workspace; reject it first")
    else:
        runs = [r for r in store.list_runs(limit=100_000) if r.status in FINAL]
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
            AuditLog(store, Redactor({})).record(run.id, "cleanup", removed=run.workspace)
    return removed


def _size(path: Path) -> str:
    total = sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    for unit in ("B", "KiB", "MiB"):
        if total < 1024:
            return f"{total:.0f} {unit}"
        total //= 1024
    return f"{total:.0f} GiB"


# the warm pool -----------------------------------------------------------------------------


def _pool_setup(repo: Path) -> tuple[cfg.JacklineConfig, Any]:
    from jackline.workspaces import snapshot

    root = g.toplevel(repo)
    config = cfg.load(root)
    if config.sandbox.mode != "bubblewrap":
        raise Refused(
            'snapshots and the warm pool need the sandbox (`[sandbox] mode = "bubblewrap"`): '
            "set-up writes paths that hold only where the sandbox shows every workspace"
        )
    from jackline.sandbox import bubblewrap

    bubblewrap.check()
    logs = paths.logs() / "pool" / time.strftime("%Y%m%d-%H%M%S")
    return config, snapshot.default_setup(config, logs)


def pool_warm(
    repo: Path, size: int | None = None, say: Callable[[str], None] = lambda _: None
) -> list[dict[str, Any]]:
    """Fill the pool (`[pool] size`, or `size`) from main's current snapshot."""
    from jackline.workspaces import pool

    config, run_setup = _pool_setup(repo)
    root = g.toplevel(repo)
    return [asdict(s) for s in pool.warm(root, config, run_setup, size=size, say=say)]


def pool_refresh(repo: Path, say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Build (or find) the snapshot for main's tip, then refill the pool for it."""
    from jackline.workspaces import pool, snapshot

    config, run_setup = _pool_setup(repo)
    root = g.toplevel(repo)
    tip = g.rev(root, config.project.main)
    say(f"snapshot of {config.project.main} at {tip[:10]}")
    built = snapshot.build(root, tip, config, run_setup)
    warmed = pool.warm(root, config, run_setup, say=say)
    return {"snapshot": _snapshot_json(built), "warmed": [asdict(s) for s in warmed]}


def pool_status(repo: Path) -> dict[str, Any]:
    from jackline.workspaces import pool, snapshot

    root = g.toplevel(repo)
    config = cfg.load(root)
    origin = str(root.resolve())
    return {
        "repo": origin,
        "size": config.pool.size,
        "snapshots": [_snapshot_json(x) for x in snapshot.list_all() if str(x.origin) == origin],
        "warm": [{**asdict(x), "age": round(time.time() - x.created, 1)} for x in pool.slots(root)],
    }


def pool_clear(repo: Path) -> dict[str, Any]:
    """Remove the warm workspaces and every snapshot of this repository no workspace uses."""
    from jackline.workspaces import pool, snapshot

    root = g.toplevel(repo)
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


# resume -----------------------------------------------------------------------------------


def resume(run_id: str | None = None, on_event: OnEvent | None = None) -> list[Run]:
    """Drive on the runs whose process died. A run waiting for review waits for a person."""
    from jackline import engine

    store = Store()
    if run_id:
        run = store.get_run(run_id)
        if run.status in FINAL:
            raise Refused(f"{run.id} is {run.status}; there is nothing to resume")
        if run.status == "awaiting_review":
            raise Refused(f"{run.id} waits for a review: approve, request-changes or reject it")
        ids = engine.take_over([run.id])
        if not ids:
            raise Refused(f"{run.id} is being driven by a live process")
    else:
        candidates = [
            r for r in engine.interrupted() if store.get_run(r).status != "awaiting_review"
        ]
        ids = engine.take_over(candidates)
    engine.drive(ids, on_event)
    return [store.get_run(i) for i in ids]
