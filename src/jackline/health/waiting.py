"""What waits for a person: runs awaiting review, oldest first. Releases awaiting go and expired
flags are added by the API layer, which knows those modules."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from jackline.health.records import Item, span
from jackline.models import Run, Status
from jackline.review import open_blocking
from jackline.store import Store

OVERDUE = 86400
"""Seconds after which a run waiting for review is called overdue."""


def runs(repo: Path, store: Store, now: datetime) -> list[Item]:
    names = {str(repo), str(repo.resolve())}
    waiting = [r for r in store.list_runs(Status.AWAITING_REVIEW, limit=10_000) if r.repo in names]
    if not waiting:
        return [Item("waiting", "runs", "ok", "no run awaits review")]
    # updated_at is when the run came to rest at review (a refused merge also sets it).
    return [_item(r, now) for r in sorted(waiting, key=lambda r: r.updated_at)]


def _item(run: Run, now: datetime) -> Item:
    age = now.timestamp() - run.updated_at
    overdue = "overdue: " if age > OVERDUE else ""
    task = run.task.splitlines()[0]
    task = task if len(task) <= 80 else task[:79] + "…"
    left = open_blocking(run)
    findings = (
        f"; {left} block-level finding(s) no owner accepted: an owner approves" if left else ""
    )
    detail = (
        f"submitted by {run.submitted_by}, branch {run.branch}{findings}\n"
        f"jackline show {run.id}, then approve, request-changes or reject it"
    )
    summary = f"{overdue}awaiting review for {span(age)}: {task}"
    return Item("waiting", run.id, "attention", summary, detail)
