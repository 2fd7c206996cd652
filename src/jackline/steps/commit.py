"""commit: what the agent left, committed on the run's branch."""

from __future__ import annotations

from jackline import git as g
from jackline.events import Kind
from jackline.steps.keeping import keep_work
from jackline.steps.moving import working


def commit(run_id: str) -> str:
    """Commit what the agent left (its own commits stay). Safe to replay: with nothing left to
    commit, the head is returned as it is."""
    ctx = working(run_id)
    g.git(ctx.ws, "add", "-A")
    if g.ok(ctx.ws, "diff", "--cached", "--quiet"):
        head = g.rev(ctx.ws, "HEAD")
    else:
        subject = ctx.run.task.strip().splitlines()[0][:72]
        g.git(ctx.ws, "commit", "--quiet", "-m", subject, "-m", f"Jackline-Run: {run_id}")
        head = g.rev(ctx.ws, "HEAD")
    ctx.update(head_sha=head)
    ctx.record(Kind.COMMIT, sha=head)
    keep_work(ctx, "commit")
    return head
