"""agent: one round of the agent in the sandbox, measured (what it changed, how it ended) and redacted."""

from __future__ import annotations

import os
import shlex
from dataclasses import asdict, dataclass
from typing import Any

from jackline import budgets, context, proc, safeio
from jackline import config as cfg
from jackline import git as g
from jackline.agents import Brief, build
from jackline.agents.preset import Preset
from jackline.events import Kind
from jackline.guard.scope import revert_forbidden
from jackline.models import AgentRound, StepOutcome, Transcript
from jackline.scans import Change
from jackline.scans import secrets as secret_scan
from jackline.steps.context import RunContext, redact_file, remove_nested_gitdirs, worked
from jackline.steps.keeping import keep_work, still_there
from jackline.steps.moving import working
from jackline.workspaces import pool


@dataclass(frozen=True)
class AgentOutcome(StepOutcome):
    """One round of the agent, as the harness measured it."""

    exit_code: int
    duration: float
    reverted: tuple[str, ...] = ()
    """Its writes to `[scope] forbidden`, reverted."""
    touched: tuple[str, ...] = ()
    """Every path that differs from the run's base after the round."""
    problem: str | None = None
    """What was wrong with the round (`AgentRound.problem`)."""
    ran: bool = True
    """Whether another round could build on it (`AgentRound.ran`; a round recorded before
    this was measured ran)."""


def agent(run_id: str, round_no: int, name: str | None = None) -> AgentOutcome:
    """One round of the run's agent, or of the agent `name` a blueprint's step names."""
    ctx = working(run_id, agent=name, step=f"agent:{round_no}")
    keep = ctx.dir / f"round-{round_no}"
    checkpoint = keep / "start.tree"
    if checkpoint.exists():
        # This round was interrupted: stop what the last attempt started, and start the round
        # again from exactly the files it started from.
        proc.kill_recorded(keep / "agent.pid")
        g.restore_tree(ctx.ws, checkpoint.read_text().strip())
        ctx.record(Kind.STEP, step="agent", round=round_no, retry=True)
    else:
        keep.mkdir(parents=True, exist_ok=True)  # hydrate made it, unless on another machine
        checkpoint.write_text(g.worktree_tree(ctx.ws) + "\n")
        ctx.record(Kind.STEP, step="agent", round=round_no)
    feedback = ctx.inbox / "feedback.md"
    brief = Brief(
        ctx.given("brief.md"),
        (ctx.inbox / "brief.md").read_text(),
        round_no,
        ctx.given("feedback.md") if feedback.exists() else None,
        feedback.read_text() if feedback.exists() else None,
    )
    log = keep / "agent.log"
    log.unlink(missing_ok=True)
    given = _with_time_left(ctx)
    runner = build(given)
    if isinstance(runner, Preset):
        _write_native_rules(ctx, runner, brief, round_no)
    env = ctx.env(with_secrets=True)
    env["PATH"] = f"{ctx.given('bin')}{os.pathsep}{env.get('PATH', os.defpath)}"
    env["JACKLINE_POLICY"] = str(ctx.given("policy.json"))
    pool.agent_starting(run_id)  # the workspace it took is made again now, not on its way here
    with ctx.sandboxed("agent") as jail:
        result = runner.run(brief, ctx.ws, env, log, jail=jail)
    _flatten_repositories(ctx, f"agent (round {round_no})")
    # Before anything of this round is stored: learn the secrets the agent wrote into files or
    # printed, so the log, the audit log and every later step redact them.
    found = secret_scan.scan(
        Change.of_workspace(ctx.ws, ctx.run.base_sha or "HEAD"), ctx.known_secrets()
    )
    printed = secret_scan.scan_text_file(log) - found.values
    ctx.remember_secrets(found.values | printed)
    redact_file(ctx, log)
    if printed:
        ctx.redacted(round_no, len(printed), where="agent output")
    if result.transcript is not None:
        _record_transcript(ctx, round_no, result.transcript)
    reverted = revert_forbidden(ctx.ws, ctx.run.base_sha or "HEAD", ctx.config.scope.forbidden)
    if reverted:
        ctx.reverted(round_no, reverted)
    touched = g.changed_paths(ctx.ws, ctx.run.base_sha or "HEAD")
    ctx.update(paths=sorted({*ctx.run.paths, *touched}))
    left = g.worktree_tree(ctx.ws)
    measured = AgentRound(
        result.exit_code,
        result.timed_out,
        given.timeout,
        changed=left != checkpoint.read_text().strip(),
        left_change=bool(touched),
        tail=ctx.redact(result.output_tail),
    )
    ctx.command(
        "agent",
        _shown(runner, brief),
        result.exit_code,
        result.duration,
        measured.tail,
        round=round_no,
        timed_out=result.timed_out,
        timeout=given.timeout,
        changed=measured.changed,
        left_change=measured.left_change,
        problem=measured.problem(),
        **({"agent": ctx.agent_name} if name else {}),
        **({"dropped_bytes": result.dropped} if result.dropped else {}),
    )
    keep_work(ctx, f"agent:{round_no}", still_there(found.blocking, reverted), tree=left)
    return AgentOutcome(
        result.exit_code,
        result.duration,
        tuple(reverted),
        tuple(touched),
        measured.problem(),
        measured.ran(),
    )


def _flatten_repositories(ctx: RunContext, by: str) -> None:
    """A git repository the agent (or a check) made inside the workspace loses its `.git`: its
    files stay and are committed as files. Left there, the harness's own `git add` would read its
    metadata, record a gitlink to a commit nobody has, or fail on it."""
    removed = remove_nested_gitdirs(ctx.ws)
    if removed:
        where = ", ".join(removed)
        ctx.record(
            Kind.WARNING,
            message=f"the {by} left a git repository of its own at {where}: its .git was "
            "removed (the files are kept, as files)",
            removed_repositories=removed,
        )


def _shown(runner: Any, brief: Brief) -> str | list[str]:
    """The agent's command as the audit log shows it: the prompt (the brief and the feedback,
    each kept apart in the round's folder) stands as `{prompt}`."""
    argv: str | list[str] = runner.argv(brief)
    prompt = brief.prompt
    if not prompt:
        return argv
    if isinstance(argv, str):
        return argv.replace(shlex.quote(prompt), "{prompt}").replace(prompt, "{prompt}")
    return [a.replace(prompt, "{prompt}") for a in argv]


def _write_native_rules(ctx: RunContext, runner: Preset, brief: Brief, round_no: int) -> None:
    """The rules in scope, where this agent's program looks for them by itself (never
    committed: the preset's files are excluded since prepare)."""
    in_play = {*context.paths_named(ctx.run.task, ctx.ws), *ctx.run.paths}
    files = runner.rules_files(context.select_rules(ctx.ws, in_play), brief)
    for rel, text in files.items():
        safeio.write_text(ctx.ws, rel, text)  # never through a link the agent left there
    if files:
        ctx.record(Kind.AGENT_RULES, round=round_no, files=sorted(files))


def _record_transcript(ctx: RunContext, round_no: int, t: Transcript) -> None:
    """Each step of the agent's transcript as an audit event, then what the round cost."""
    for step in t.steps:
        # Leave out what is empty, but keep a 0 exit code (0 == False in Python).
        data = {
            k: v
            for k, v in asdict(step).items()
            if k != "kind" and v is not None and v != "" and v is not False
        }
        data["detail"] = _clip(step.detail, 4000) if step.detail else None
        ctx.record(
            Kind(f"agent.{step.kind}"),
            round=round_no,
            **{k: v for k, v in data.items() if v is not None},
        )
    cost, unpriced = budgets.cost(t, ctx.config.budget)
    tokens = sum(budgets.tokens(u) for u in t.usage)
    ctx.record(
        Kind.AGENT_USAGE,
        round=round_no,
        models=[asdict(u) for u in t.usage],
        tokens=tokens,
        cost_usd=round(cost, 6),
        unpriced=unpriced,
        final=_clip(t.final, 4000),
    )
    ctx.update(spend=ctx.run.spend + cost, tokens=ctx.run.tokens + tokens)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n] + f"\n[... {len(text) - n} more characters]"


def _with_time_left(ctx: RunContext) -> cfg.AgentConfig:
    """The agent's config, its round's timeout cut to what `[budget] wall_time` leaves."""
    left = budgets.time_left(ctx.config.budget, worked(ctx))
    if left is None or left >= ctx.agent_config.timeout:
        return ctx.agent_config
    return ctx.agent_config.model_copy(update={"timeout": max(1, int(left))})
