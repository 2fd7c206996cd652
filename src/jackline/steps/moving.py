"""A run's workspace on whichever machine runs its next step.

A workspace is a folder on the machine of the worker that prepared it. When that worker dies,
another resumes the run's workflow: the steps that finished are not run again, and the next one
runs here, where the workspace may be missing, another worker's, stale, or something else.

So every step that works in the workspace takes its context from `working`: the workspace is
used only if it is this run's on this machine (`kept.not_here`: the place the run recorded, with
a token in the harness's git directory beside it, the folder not empty, never a file inside the
workspace); otherwise it is made again here the way prepare makes one (the pool, a snapshot or a
clone, at the run's base, with set-up and services), and the work the run kept after its last
finished step is applied (`rebuild`). A step that was running when its worker died starts over
from that work: what it had done is gone, as it should be.

Each step that changes the work ends with `keeping.keep_work`, which keeps it in the store.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from jackline import git as g
from jackline import paths
from jackline.errors import CommandFailed, WorkspaceLost
from jackline.events import Kind
from jackline.scans import Change
from jackline.scans import secrets as secret_scan
from jackline.steps.context import RunContext
from jackline.steps.prepare import arm_guard, make_workspace
from jackline.workspaces import kept, remove, revive, services
from jackline.workspaces.snapshot import SetupFailed

CHECKPOINTS = ("round-*/start.tree", "round-*/checks.tree", "steps/*/start.tree")
"""The trees steps record in the run's folder to start again from after a crash (`agent`,
`check`, `command`): trees of the workspace they were taken in."""


def working(run_id: str, agent: str | None = None, step: str | None = None) -> RunContext:
    """The context of a step that works in the run's workspace, which is then this run's on
    this machine: found, or made again here. `step`: the step's own name where it keeps its
    work (`keep`), so that, run again, it starts from the work before its own."""
    ctx = RunContext(run_id, agent=agent)
    if ctx.run.workspace:
        why = here(ctx)
        if why is not None:
            rebuild(ctx, step, why)
    return ctx


def here(ctx: RunContext) -> str | None:
    """Check that the run's workspace is this run's on this machine (`ctx.ws` may then be used);
    why not, if it is not. Nothing is made again: for a step that only reads it (a handoff)."""
    path = Path(ctx.run.workspace or "")
    if ctx.run.workspace and revive(path):  # an overlay after a reboot: mounted again
        ctx.record(Kind.WORKSPACE, revived=ctx.run.workspace)
    why = kept.not_here(kept.place_of(ctx.store, ctx.run.id), path, ctx.run.id)
    ctx.checked = why is None
    return why


def rebuild(ctx: RunContext, step: str | None, why: str) -> None:
    """Make the run's workspace again on this machine from the work it kept after its last
    finished step (before `step`'s own), and record that it did. A run whose work was not kept,
    or cannot be applied, fails here with the reason (`WorkspaceLost`)."""
    started = time.monotonic()
    source = kept.index_of(ctx.store, ctx.run.id).source(step)
    lost = f"the run's workspace is not usable here ({why})"
    if source is None:
        raise WorkspaceLost(f"{lost}, and the run kept no work to make it again from")
    if not source.movable:
        raise WorkspaceLost(f"{lost}, and the work of {source.step} was not kept: {source.why}")
    data = ctx.store.get_artifact(ctx.run.id, source.slot) if source.slot else None
    if source.slot and not kept.digest_matches(data, source):
        raise WorkspaceLost(f"{lost}, and the kept work of {source.step} is missing or damaged")
    previous = ctx.run.workspace
    ws = _fresh(ctx, source, lost)
    try:
        kept.apply(ws, data, source)
    except (ValueError, CommandFailed) as e:
        raise WorkspaceLost(
            f"{lost}, and its kept work does not apply: {str(e).splitlines()[0]}"
        ) from e
    restored = ctx.restore_inbox()  # before the guard is armed again: it hands over policy.json
    arm_guard(ctx, ws)
    _hand_over_again(ctx)
    forgotten = _forget_checkpoints(ctx, ws)
    # Redaction as it was: the values the scans found in this work are learnt again here (a
    # worker's run folder is its own; the values are never stored anywhere but in the work).
    found = secret_scan.scan(Change.between(ws, source.base, source.tree), ctx.known_secrets())
    ctx.remember_secrets(found.values)
    place = kept.claim(ctx.store, ctx.run.id, ws)
    ctx.record(
        Kind.WORKSPACE_REBUILT,
        path=str(ws),
        previous=previous,
        why=why,
        step=source.step,
        head=source.head,
        host=socket.gethostname(),
        by=place.by,
        seconds=round(time.monotonic() - started, 3),
        inbox_restored=restored,
        checkpoints_dropped=forgotten,
        sandbox=ctx.config.sandbox.mode,
    )


def _fresh(ctx: RunContext, source: kept.Kept, lost: str) -> Path:
    """A new workspace for the run at the work's base, made as prepare makes one, with its
    services. Whatever stands at this run's path here is no workspace to trust: removed."""
    dest = paths.workspaces() / ctx.run.id
    if dest.exists() or dest.is_symlink() or g.gitdir_path(dest).exists():
        remove(dest)
    ctx.checked = False
    try:
        ws, _ = make_workspace(ctx, at=source.base)
        services.ensure(ws.path, ctx.config)
    except (SetupFailed, services.ServiceFailed, CommandFailed) as e:
        # CommandFailed: git could not make it at the base (main was rewritten without it, say).
        raise WorkspaceLost(f"{lost}, and making it again failed: {str(e).splitlines()[0]}") from e
    return ws.path


def _hand_over_again(ctx: RunContext) -> None:
    """Without the sandbox the agent reads the inbox in the workspace: copied there again."""
    if ctx.config.sandbox.mode == "bubblewrap":
        return
    for name in ("brief.md", "feedback.md", "context.json"):
        if (ctx.inbox / name).is_file():
            ctx.hand_over(name, (ctx.inbox / name).read_text())


def _forget_checkpoints(ctx: RunContext, ws: Path) -> list[str]:
    """Drop the checkpoints that name trees the new workspace lacks: the step that runs again
    starts from the work just applied, which is where it started. One whose tree is here (the
    same files) is kept: the step then says that it starts again."""
    dropped = []
    for pattern in CHECKPOINTS:
        for checkpoint in sorted(ctx.dir.glob(pattern)):
            tree = checkpoint.read_text().strip()
            if not g.ok(ws, "cat-file", "-e", f"{tree}^{{tree}}"):
                checkpoint.unlink()
                dropped.append(str(checkpoint.relative_to(ctx.dir)))
    return dropped
