"""commit: what the agent left, committed on the run's branch."""

from __future__ import annotations

from jackline import artifacts
from jackline import git as g
from jackline.events import Kind
from jackline.steps.context import RunContext
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
    _keep_change(ctx, head)
    ctx.record(Kind.COMMIT, sha=head)
    keep_work(ctx, "commit")
    return head


def _keep_change(ctx: RunContext, head: str) -> None:
    """The change between two commits, read from the objects alone (`git.objects_only`): no
    file of the workspace is read, not even a `.gitattributes` the agent wrote to show its
    files as "Binary files differ" to the reviewer. Redacted as every kept byte is."""
    base = ctx.run.base_sha or head
    args = ("diff", "--no-color", "--no-ext-diff", "--stat", "--patch", base, head)
    with g.objects_only(ctx.ws) as objects:
        text = objects(*args).decode(errors="replace")
    if len(text) > artifacts.CHANGE_LIMIT:
        text = text[: artifacts.CHANGE_LIMIT] + f"\n(cut at {artifacts.CHANGE_LIMIT} characters)\n"
    ctx.store.put_artifact(ctx.run.id, artifacts.CHANGE, ctx.redact(text).encode())
