"""commit: what the agent left, committed on the run's branch."""

from __future__ import annotations

import json

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
    previous = _previous_head(ctx)
    g.git(ctx.ws, "add", "-A")
    if g.ok(ctx.ws, "diff", "--cached", "--quiet"):
        head = g.rev(ctx.ws, "HEAD")
    else:
        subject = ctx.run.task.strip().splitlines()[0][:72]
        g.git(ctx.ws, "commit", "--quiet", "-m", subject, "-m", f"Jackline-Run: {run_id}")
        head = g.rev(ctx.ws, "HEAD")
    ctx.update(head_sha=head)
    _keep_change(ctx, ctx.run.base_sha or head, head, artifacts.CHANGE)
    since = {}
    if previous and previous != head:
        _keep_change(ctx, previous, head, artifacts.round_change(head))
        since = {"previous": previous}
    ctx.record(Kind.COMMIT, sha=head, **since)
    keep_work(ctx, "commit")
    return head


def _keep_change(ctx: RunContext, base: str, head: str, name: str) -> None:
    """The change between two commits, read from the objects alone (`git.objects_only`): no
    file of the workspace is read, not even a `.gitattributes` the agent wrote to show its
    files as "Binary files differ" to the reviewer. Redacted as every kept byte is, and kept
    as artifact `name`: the run's whole change, or what a round changed since the one before
    (a reviewer's second look)."""
    args = ("diff", "--no-color", "--no-ext-diff", "--stat", "--patch", base, head)
    with g.objects_only(ctx.ws) as objects:
        text = objects(*args).decode(errors="replace")
    if len(text) > artifacts.CHANGE_LIMIT:
        text = text[: artifacts.CHANGE_LIMIT] + f"\n(cut at {artifacts.CHANGE_LIMIT} characters)\n"
    ctx.store.put_artifact(ctx.run.id, name, ctx.redact(text).encode())


def _previous_head(ctx: RunContext) -> str:
    """The head the last round committed, as its event says (a replay of this step, after a
    crash past its update of the run, still finds the round before)."""
    events = ctx.store.events(ctx.run.id, kind=Kind.COMMIT)
    return str(json.loads(events[-1].data).get("sha", "")) if events else ""
