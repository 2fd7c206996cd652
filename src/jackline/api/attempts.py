"""Parallel attempts: one task given to several agents (or one agent several times) at once,
each a run of its own on its own workspace; one comparison a reviewer picks from; the others
are closed once one is chosen and merged.

An attempt is an ordinary run: it is driven, scanned, reviewed and merged as any other, by
whichever process or worker takes it. What makes runs attempts is one group id they share
(`Run.attempts`), written with each record, so a reader finds the group from any of them.
"""

from __future__ import annotations

from pathlib import Path

from ulid import ULID

from jackline import artifacts, handoff
from jackline.errors import Refused
from jackline.models import Attempt, Origin, Run
from jackline.store import Store
from jackline.verbs import OnEvent

MAX_ATTEMPTS = 8
"""Attempts at one task at most: each holds a workspace and an agent's spend."""


def submit_attempts(
    task: str,
    repo: Path | str,
    agents: list[str],
    attempts: int = 1,
    blueprint: str | None = None,
    by: str | None = None,
    wait: bool = True,
    on_event: OnEvent | None = None,
    origin: Origin = Origin.AUTOMATIC,
    priority: int = 0,
) -> list[Run]:
    """Submit `attempts` runs of `task` (at least one per agent named; the agents taken in
    turn, the project's default where none is named), as one group; with `wait`, drive them
    all until each rests. `origin` and `priority` as `submit` takes them."""
    count = max(attempts, len(agents), 1)
    if count > MAX_ATTEMPTS:
        raise Refused(f"{count} attempts asked for; at most {MAX_ATTEMPTS} run at once")
    if attempts < 1:
        raise Refused(f"--attempts {attempts}: give 1 or more")
    from jackline.api.submission import submit

    group = f"attempts-{str(ULID()).lower()}"
    names = [agents[i % len(agents)] if agents else None for i in range(count)]
    runs = [
        submit(
            task,
            repo,
            name,
            blueprint,
            by,
            wait=False,
            attempts=group,
            origin=origin,
            priority=priority,
        )
        for name in names
    ]
    if wait:
        from jackline import engine
        from jackline.api.submission import following_stopped

        try:
            engine.drive([r.id for r in runs], on_event)
        except KeyboardInterrupt:  # each goes on from where it is (resumed, or on the workers)
            raise following_stopped([r.id for r in runs]) from None
    store = Store()
    try:
        return store.attempts(group)
    finally:
        store.close()


def compare(run: Run) -> list[Attempt]:
    """The attempts of `run`'s group side by side (none for a run on its own)."""
    if not run.attempts:
        return []
    from jackline.api.reading import rounds

    store = Store()
    try:
        group = store.attempts(run.attempts)
        changes = {r.id: store.get_artifact(r.id, artifacts.CHANGE) for r in group}
    finally:
        store.close()
    return [_attempt(r, rounds(r.id), changes[r.id]) for r in group]


def _attempt(run: Run, done: list[dict[str, object]], change: bytes | None) -> Attempt:
    last = done[-1] if done else None
    checks = "-" if last is None else "pass" if last.get("passed") else "fail"
    added = removed = 0
    for line in (change or b"").decode(errors="replace").splitlines():
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return Attempt(
        run=run.id,
        agent=run.agent,
        status=run.status,
        rounds=run.rounds,
        checks=checks,
        files=len(run.paths),
        added=added,
        removed=removed,
        blocking=run.blocking,
        warnings=run.warnings,
        spend=run.spend,
        seconds=round(run.worked_seconds, 1),
    )


def comparison_markdown(run: Run) -> str:
    """The group's comparison as a section of each attempt's handoff ("" for a run alone)."""
    found = compare(run)
    return handoff.attempts_markdown(run.id, found) if found else ""


def close_others(chosen: Run, by: str) -> list[Run]:
    """Once `chosen` is merged, cancel every other attempt of its group that has not ended:
    their agents stop, their workspaces are kept, each says which attempt was chosen."""
    from jackline.api.review import CANCELLABLE, cancel

    store = Store()
    try:
        others = [r for r in store.attempts(chosen.attempts) if r.id != chosen.id]
    finally:
        store.close()
    closed = []
    for other in others:
        if other.status not in CANCELLABLE:  # ended, or landing
            continue
        try:
            closed.append(cancel(other.id, by=by, message=f"attempt {chosen.id} was chosen"))
        except Refused:  # it ended (or began landing) meanwhile: it says so itself
            continue
    return closed
