"""prepare: the run's workspace (from the warm pool, a snapshot or a clone), its services, and the in-loop guard."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from jackline import git as g
from jackline import paths, repos, sandbox
from jackline.agents import build
from jackline.agents.preset import Preset
from jackline.events import Kind
from jackline.guard.gitwrap import install_wrapper
from jackline.guard.policy import GATES, Policy
from jackline.models import Status, StepOutcome
from jackline.steps.context import RunContext, redact_file
from jackline.steps.keeping import keep_base
from jackline.workspaces import AGENT_DIR, Workspace, kept, pool, provider, services
from jackline.workspaces import snapshot as snap
from jackline.workspaces.clone import add_excludes, exclude_setup_outputs
from jackline.workspaces.providers import provider_for
from jackline.workspaces.snapshot import SetupFailed


@dataclass(frozen=True)
class PrepareOutcome(StepOutcome):
    """The run has its workspace (its path and base commit), or why not."""

    # A failure has always been recorded without a workspace, a success without a reason.
    omit_none = True

    ok: bool
    reason: str | None = None
    workspace: str | None = None
    base: str | None = None


def prepare(run_id: str) -> PrepareOutcome:
    ctx = RunContext(run_id)
    ctx.update(status=Status.RUNNING)
    ctx.record(Kind.STEP, step="prepare")
    mode = ctx.config.sandbox.mode
    if mode == "none":
        ctx.record(Kind.WARNING, message=sandbox.NONE_WARNING)
    try:
        ws, extra = make_workspace(ctx)
        started = services.ensure(ws.path, ctx.config)
    except SetupFailed as e:
        reason = f"set-up failed: `{e.argv}` exited {e.code}"
        ctx.update(reason=reason)
        return PrepareOutcome(False, reason=reason)
    except services.ServiceFailed as e:
        reason = str(e).splitlines()[0]
        ctx.record(Kind.SERVICES, error=ctx.redact(str(e)))
        ctx.update(reason=reason)
        return PrepareOutcome(False, reason=reason)
    if started:
        extra["services"] = services.describe(started)
    ctx.record(
        Kind.WORKSPACE,
        path=str(ws.path),
        base=ws.base_sha,
        method=ws.method,
        branch=ws.branch,
        sandbox=mode,
        **extra,
    )
    arm_guard(ctx, ws.path)
    # Where it is, and the work as it starts (the base): a worker that takes the run over
    # elsewhere makes it again from what later steps keep (`moving`).
    kept.claim(ctx.store, run_id, ws.path)
    keep_base(ctx)
    return PrepareOutcome(True, workspace=str(ws.path), base=ws.base_sha)


def make_workspace(ctx: RunContext, at: str | None = None) -> tuple[Workspace, dict[str, Any]]:
    """The run's workspace. With set-up under the sandbox: from the warm pool, or made from main's
    snapshot (built first if there is none: the cold start), caught up with main. Otherwise a
    fresh clone, with set-up run in it. With `at` (a workspace made again, `steps.moving`), at
    that commit instead of main's tip, and the run's base is left as it is."""
    main = ctx.config.project.main
    repo = repos.synced(ctx.run.repo, main)  # a URL: this worker's clone, at the remote's main
    dest = paths.workspaces() / ctx.run.id
    wants_snapshot = ctx.config.workspace.setup or ctx.config.pool.size
    if not wants_snapshot or ctx.config.sandbox.mode != "bubblewrap":
        ws = provider("clone").create(repo, main, ctx.run.branch, dest)
        if at is not None:
            g.git(ws.path, "checkout", "--quiet", "-B", ctx.run.branch, at)
            ws = replace(ws, base_sha=at)
        ctx.update(workspace=str(ws.path), base_sha=ws.base_sha)
        ctx.checked = True
        snap.raise_failed(_setup_runner(ctx)(ws.path))
        exclude_setup_outputs(ws.path)
        return ws, {}
    run_setup = _setup_runner(ctx)
    started = time.monotonic()
    taken = pool.take(repo, ctx.run.branch) if ctx.config.pool.size else None
    snapshot_key = None
    if taken is None:
        current = pool.fresh_snapshot(repo, ctx.config, run_setup)
        taken = provider_for(ctx.config.workspace.shared).create_from(current, ctx.run.branch, dest)
        snapshot_key = current.key
    ws = taken
    ctx.update(workspace=str(ws.path))
    ctx.checked = True
    caught = snap.catch_up(ws, repo, main, ctx.config, run_setup, to=at)
    ws = replace(ws, base_sha=g.rev(ws.path, "HEAD"))
    ctx.update(base_sha=ws.base_sha)
    if ctx.config.pool.size:
        pool.refill_after_agent(ctx.run.id, repo)
    return ws, {
        "snapshot": snapshot_key or _snapshot_of(ws.path),
        "caught_up": caught,
        "ready_in": round(time.monotonic() - started, 3),
    }


def _setup_runner(ctx: RunContext) -> snap.RunSetup:
    """Set-up for this run (see `snapshot.default_setup`), each command recorded as it starts
    (`setup`, which progress shows: set-up may take a minute) and as it ends, redacted."""

    def watch(number: int, of: int, command: str, done: dict[str, Any] | None) -> None:
        if done is None:
            ctx.record(Kind.SETUP, number=number, of=of, command=command)
            return
        redact_file(ctx, ctx.dir / f"setup-{number}.log")
        tail = ctx.redact(done["tail"])
        ctx.command(
            "setup", command, done["exit_code"], done["duration"], tail, number=number, of=of
        )

    return snap.default_setup(ctx.config, ctx.dir, watch)


def _snapshot_of(ws: Path) -> str | None:
    record = g.gitdir_path(ws) / snap.PROVENANCE
    return json.loads(record.read_text()).get("key") if record.exists() else None


def arm_guard(ctx: RunContext, ws: Path) -> None:
    """The in-loop guard: the policy the hook and the git wrapper read and the wrapper itself
    on the agent's PATH, both in the inbox. The walls are elsewhere: the workspace's git
    directory is the harness's, out of the agent's reach (see `git.gitdir_path`); the agent gets
    a git directory of its own (`git.lay_agent_gitdir`)."""
    policy = Policy(
        main=ctx.config.project.main,
        forbidden=list(ctx.config.scope.forbidden),
        gates=list(GATES),
        workspace=str(ctx.inside if ctx.inside != ws else ws.resolve()),
    )
    ctx.hand_over("policy.json", policy.dumps())
    install_wrapper(ctx.inbox / "bin")
    if ctx.config.sandbox.mode != "bubblewrap":
        install_wrapper(ws / AGENT_DIR / "bin")
    agent = build(ctx.agent_config)
    if isinstance(agent, Preset) and agent.private:
        add_excludes(ws, agent.private)  # the preset's rules and settings: never committed
