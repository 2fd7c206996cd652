"""publish: the run's branch pushed where the forge says (the run's repository, by path or URL, or
GitHub)."""

from __future__ import annotations

from jackline import forge
from jackline.events import Kind
from jackline.steps.context import RunContext
from jackline.steps.moving import working


def publish(run_id: str) -> bool:
    """Whether GitHub's checks on what was published are to be waited for (`steps.ci`)."""
    ctx = working(run_id)
    if ctx.config.forge.kind == "github":
        # The branch and its pull request live on GitHub (an approval merges it there).
        from jackline.forge import github

        pr = github.publish(ctx.ws, ctx.config, ctx.run.branch, run_id, ctx.run.task)
        _published(ctx, "github", pull_request=pr.url)
        return ctx.config.forge.wait_for_ci
    forge.repository(ctx.run.repo).publish(ctx.ws, ctx.run.branch)
    _published(ctx, "local", repo=ctx.run.repo)
    return False


def _published(ctx: RunContext, kind: str, **where: str) -> None:
    """Say where the branch went: in the audit log, and on the run for the handoff."""
    ctx.update(published=kind, pull_request=where.get("pull_request", ""))
    ctx.record(Kind.PUBLISH, forge=kind, branch=ctx.run.branch, **where)
