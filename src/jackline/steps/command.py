"""command: a blueprint's deterministic step, a command in the sandbox whose changes are kept.

Unlike a check, whose changes to the work are put back, a deterministic step exists to change
the work (`ruff check --fix`, a formatter, a code generator): what it changed is kept, recorded
as its own (`changed`, `created` on its `command` event, shown in the handoff), scanned with the
rest and committed with it. It runs only in the sandbox, and what it wrote is handled as the
agent's is: never followed, run or read by the harness but as files of a tree (see `agent`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from jackline import blueprints, proc
from jackline import git as g
from jackline.events import Kind
from jackline.guard.scope import revert_forbidden
from jackline.models import Finding, StepOutcome, last_line
from jackline.scans import Change
from jackline.scans import secrets as secret_scan
from jackline.steps.check import tree_changes
from jackline.steps.context import RunContext, redact_file, remove_nested_gitdirs
from jackline.steps.keeping import keep_work, still_there
from jackline.steps.moving import working
from jackline.store import Store


def recorded_blueprint(run_id: str, name: str) -> str:
    """The blueprint the run recorded when it was submitted (a run recorded before blueprints
    were: the built-in one of its name), as `blueprints.recorded` wrote it."""
    store = Store()
    try:
        data = json.loads(store.events(run_id, kind=Kind.SUBMITTED)[0].data)
    finally:
        store.close()
    if data.get("blueprint_spec"):
        return str(data["blueprint_spec"])
    return blueprints.recorded(blueprints.built_in(name))


@dataclass(frozen=True)
class CommandOutcome(StepOutcome):
    """A deterministic step run: whether it passed its rule, and what it changed (kept)."""

    passed: bool
    changed: tuple[str, ...] = ()
    """The paths it modified or deleted."""
    created: tuple[str, ...] = ()
    reason: str = ""
    """Why it failed, the run's reason then ("" when it passed)."""


def command(run_id: str, spec: Mapping[str, object], after_round: int) -> CommandOutcome:
    """Run one deterministic step after round `after_round` (0: before any). Replayed after a
    crash, it starts again from the tree it started from, its last attempt's process ended."""
    step = blueprints.Command.model_validate(spec)
    own = f"step:{after_round}-{step.name}"
    ctx = working(run_id, step=own)
    label = f"step:{step.name}"
    keep = ctx.dir / "steps" / f"{after_round}-{step.name}"
    checkpoint = keep / "start.tree"
    if checkpoint.exists():
        proc.kill_recorded(keep / "step.pid")
        g.restore_tree(ctx.ws, checkpoint.read_text().strip())
        ctx.record(Kind.STEP, step=label, after_round=after_round, retry=True)
    else:
        keep.mkdir(parents=True, exist_ok=True)
        checkpoint.write_text(g.worktree_tree(ctx.ws) + "\n")
        ctx.record(Kind.STEP, step=label, after_round=after_round)
    before = checkpoint.read_text().strip()
    log = keep / "output.log"
    with ctx.sandboxed(label) as jail:
        done = proc.run(
            step.command, ctx.ws, ctx.env(), log, step.timeout, pidfile=keep / "step.pid", jail=jail
        )
    changed, created, blocking = _kept(ctx, step.name, before, after_round)
    redact_file(ctx, log)
    tail = ctx.redact(done.tail())
    passed = not done.timed_out and (step.pass_ == "always" or done.exit_code == 0)
    ctx.command(
        label,
        step.shown(),
        done.exit_code,
        done.duration,
        tail,
        after_round=after_round,
        passed=passed,
        changed=changed[:100],
        created=created[:100],
        timed_out=done.timed_out,
        **({"dropped_bytes": done.dropped} if done.dropped else {}),
    )
    reason = "" if passed else _reason(step, done.exit_code, done.timed_out, tail)
    if reason:  # the run fails here; a round it ends (no checks judged it) still counts
        ctx.update(reason=reason, rounds=max(ctx.run.rounds, after_round))
    keep_work(ctx, own, blocking)
    return CommandOutcome(passed, tuple(changed), tuple(created), reason)


def _kept(
    ctx: RunContext, name: str, before: str, after_round: int
) -> tuple[list[str], list[str], list[Finding]]:
    """What the step left, made safe to keep as the agent's work is (`agent`): nested
    repositories flattened, secrets it wrote or printed learned for redaction, writes to
    `[scope] forbidden` reverted. The paths it modified or deleted, those it created, and the
    block-level secrets in the work it leaves (for `keep_work`)."""
    flattened = remove_nested_gitdirs(ctx.ws)
    if flattened:
        ctx.record(
            Kind.WARNING,
            message=f"the step `{name}` left a git repository of its own at "
            f"{', '.join(flattened)}: its .git was removed (the files are kept, as files)",
            removed_repositories=flattened,
        )
    base = ctx.run.base_sha or "HEAD"
    found = secret_scan.scan(Change.of_workspace(ctx.ws, base), ctx.known_secrets())
    printed = secret_scan.scan_text_file(ctx.dir / "steps" / f"{after_round}-{name}" / "output.log")
    ctx.remember_secrets(found.values | printed)
    if printed:
        ctx.record(Kind.REDACTED, count=len(printed), where=f"the output of the step `{name}`")
    reverted = revert_forbidden(ctx.ws, base, ctx.config.scope.forbidden)
    if reverted:
        ctx.record(Kind.SCOPE, round=after_round, step=f"step:{name}", reverted=reverted)
    ctx.update(paths=sorted({*ctx.run.paths, *g.changed_paths(ctx.ws, base)}))
    changed, created = tree_changes(ctx.ws, before, g.worktree_tree(ctx.ws))
    return changed, created, still_there(found.blocking, reverted)


def _reason(step: blueprints.Command, code: int, timed_out: bool, tail: str) -> str:
    if timed_out:
        return f"the step `{step.name}` ran out of time ({step.timeout}s)"
    said = last_line(tail)
    return f"the step `{step.name}` failed (exit {code})" + (f": {said}" if said else "")
