"""check: a round's checks in the sandbox, judged on the tree the agent left, which they may not change."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from jackline import context
from jackline import git as g
from jackline.checks import bytecode, changed_the_work, listed, run_check
from jackline.events import Kind
from jackline.models import CheckResult, StepOutcome
from jackline.steps.context import RunContext, last_agent, redact_file, remove_nested_gitdirs
from jackline.steps.moving import working


@dataclass(frozen=True)
class CheckOutcome(StepOutcome):
    """A round judged: by its checks and by what the agent did."""

    passed: bool
    feedback: str | None = None
    """For the next round, when it failed: redacted."""


def check(run_id: str, round_no: int, label: Kind = Kind.ROUND) -> CheckOutcome:
    ctx = working(run_id)
    out_dir = ctx.dir / f"{label}-{round_no}"
    agent = last_agent(ctx, round_no) if label == "round" else None
    # An agent that did not run (it failed without touching a file) left nothing to check: its
    # round fails without making a person wait for the checks of the untouched base.
    checks = ctx.config.checks if agent is None or agent.measured.ran() else {}
    judged = _judged_tree(ctx, out_dir, label) if checks else ""
    results: list[CheckResult] = []
    for name, check_config in checks.items():
        # One bytecode cache for the run's checks, less what changed (see `checks.bytecode`).
        cache = ctx.dir / bytecode.CACHE
        bytecode.forget_changed(ctx.ws, ctx.dir, ctx.inside, judged)
        with (
            bytecode.viewed(cache) as seen,
            ctx.sandboxed(f"check:{name}", fresh_git=False) as jail,
        ):
            env = {**ctx.env(), "PYTHONPYCACHEPREFIX": str(seen)}
            jail = replace(jail, spec=replace(jail.spec, writable=(*jail.spec.writable, seen)))
            result = run_check(name, check_config, ctx.ws, env, out_dir, jail=jail)
        bytecode.learn(cache, ctx.inside)
        redact_file(ctx, out_dir / f"{name}.log")
        ctx.command(
            f"check:{name}",
            result.command,
            result.exit_code,
            result.duration,
            result.output_tail,
            **({"dropped_bytes": result.dropped} if result.dropped else {}),
        )
        results.append(_keep_the_agents_work(ctx, result, judged, round_no, label))
    # A round is judged on the agent as well: passing checks on work it did not do (it
    # crashed, or changed nothing) are no reason to offer the work for review.
    problem = agent.problem if agent else None
    passed = all(r.passed for r in results) and not problem
    ctx.record(
        label,
        round=round_no,
        passed=passed,
        checks=[asdict(r) for r in results],
        agent=agent.event if agent else None,
        problem=problem,
        checks_skipped=bool(ctx.config.checks) and not checks,
    )
    if label == Kind.ROUND:
        ctx.update(rounds=round_no)
    measured = agent.measured if agent and problem else None
    feedback = None if passed else context.render_feedback(results, agent=measured)
    return CheckOutcome(passed, ctx.redact(feedback) if feedback else None)


def _judged_tree(ctx: RunContext, out_dir: Path, label: str) -> str:
    """The tree the checks judge: what the agent left (a merge's checks: the merge). A round's
    is kept in its folder, which no check can write: checks run again after a crash (one may
    have died halfway through rewriting a file) start from it again, not from what they left."""
    if label != Kind.ROUND:  # a merge is made afresh each time it is tried
        return g.worktree_tree(ctx.ws)
    checkpoint = out_dir / "checks.tree"
    if checkpoint.exists():
        tree = checkpoint.read_text().strip()
        g.restore_tree(ctx.ws, tree)
        return tree
    tree = g.worktree_tree(ctx.ws)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.write_text(tree + "\n")
    return tree


def _keep_the_agents_work(
    ctx: RunContext, result: CheckResult, judged: str, round_no: int, label: str
) -> CheckResult:
    """Put back what a check changed in the work tree (files ignored by git aside): what is
    committed is exactly the work the checks judged, never a linter's fix or a formatter's
    rewrite passed off as the agent's. A check that modified or deleted the agent's files fails
    (`checks.changed_the_work`); files it only created are removed, with a warning."""
    # A repository a check made loses its `.git` before the harness's `git add` reads it (see
    # `_flatten_repositories`); its files, created by the check, go with the rest.
    nested = remove_nested_gitdirs(ctx.ws)
    now = g.worktree_tree(ctx.ws)
    if now == judged and not nested:
        return result
    changed, created = tree_changes(ctx.ws, judged, now)
    bytecode.saw(ctx.dir / bytecode.SEEN, now)
    g.restore_tree(ctx.ws, judged)
    when, said = f"{label} {round_no}", []
    if changed:
        said.append(
            f"the check `{result.name}` ({when}) changed the agent's files {listed(changed)}: "
            "they were put back as the agent left them, and the check fails"
        )
    if created or nested:
        made = listed(created) + "".join(f" (a git repository of its own at {n})" for n in nested)
        said.append(
            f"the check `{result.name}` ({when}) created {made}: removed, never committed "
            "(list what a check writes in .gitignore to keep it)"
        )
    ctx.record(
        Kind.WARNING,
        message="; ".join(said),
        check=result.name,
        round=round_no,
        label=label,
        changed=changed[:100],
        created=created[:100],
    )
    return changed_the_work(result, changed) if changed else result


def tree_changes(ws: Path, before: str, after: str) -> tuple[list[str], list[str]]:
    """The paths of `before` that `after` modified or deleted, and the paths `after` added."""
    out = g.git_bytes(ws, "diff-tree", "-r", "-z", "--no-renames", "--name-status", before, after)
    fields = iter(g.z_paths(out))
    changed: list[str] = []
    created: list[str] = []
    for status in fields:
        (created if status == "A" else changed).append(next(fields, ""))
    return sorted(changed), sorted(created)
