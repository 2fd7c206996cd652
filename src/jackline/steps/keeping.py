"""The work of a step kept in the store, so that another machine can make the workspace again
from it (`moving.rebuild`; the format and its rules: `workspaces.kept`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from jackline import git as g
from jackline.events import Kind
from jackline.models import Finding
from jackline.scans import Change
from jackline.scans import secrets as secret_scan
from jackline.steps.context import RunContext
from jackline.workspaces import kept


def keep_work(
    ctx: RunContext,
    step: str,
    blocking: Sequence[Finding] | None = None,
    tree: str | None = None,
) -> None:
    """Keep the work as this step leaves it, so that another machine can make the workspace
    again from it (`tree`: the work tree, where the step has just read it).

    Work that holds a block-level secret is never kept: it is never committed either, and it
    stays only where the harness already keeps it (the workspace, on this machine's disk). The
    verdict is `blocking`, the step's own scan of this work where it has one (`still_there`),
    else the one on the same tree kept before, else a scan here (most of what keeping costs).
    Work over `[workspace] kept_mb` is not kept either. Either way the run carries on; it only
    cannot move to another machine until a later step's work is kept, as the audit log says."""
    base, branch = ctx.run.base_sha, ctx.run.branch
    if not base:  # a run prepared before bases were recorded
        return
    head = g.rev(ctx.ws, f"refs/heads/{branch}")
    tree = tree or g.worktree_tree(ctx.ws)
    index = kept.index_of(ctx.store, ctx.run.id)
    last = index.latest
    if last is not None and last.step != step and (last.head, last.tree) == (head, tree):
        return  # nothing changed since the work before: that is the one to start from
    entry = kept.Kept(step, head, tree, base, branch, slot=None)
    places = _secrets(ctx, tree, base, blocking, last)
    limit = ctx.config.workspace.kept_mb * 1024 * 1024
    if places:
        why = f"it holds a secret ({', '.join(places[:3])}), which is never kept"
        data: bytes | str = why
    elif limit == 0:
        data = "`[workspace] kept_mb` is 0"
    else:
        data = kept.bundle(ctx.ws, head, tree, base, limit)
    if isinstance(data, str):
        kept.record(ctx.store, ctx.run.id, replace(entry, why=data, secrets=tuple(places)), None)
        if last is None or last.why != data:  # said once, not after every step
            ctx.record(Kind.WORK_NOT_KEPT, step=step, why=data, secrets=places)
        return
    kept.record(ctx.store, ctx.run.id, entry, data)


def keep_base(ctx: RunContext) -> None:
    """The work as prepare leaves it: the base itself, nothing to bundle (set-up, which may
    change files, runs again wherever the workspace is made again)."""
    base = ctx.run.base_sha
    if base:
        tree = g.git(ctx.ws, "rev-parse", f"{base}^{{tree}}")
        entry = kept.Kept("prepare", base, tree, base, ctx.run.branch, slot=None)
        kept.record(ctx.store, ctx.run.id, entry, None)


def still_there(blocking: Sequence[Finding], reverted: Sequence[str]) -> list[Finding]:
    """The block-level findings of a scan taken before the files `reverted` were put back as
    they were at the base: those in the files that are left."""
    gone = set(reverted)
    return [f for f in blocking if f.file not in gone]


def _secrets(
    ctx: RunContext,
    tree: str,
    base: str,
    blocking: Sequence[Finding] | None,
    last: kept.Kept | None,
) -> list[str]:
    """Where a block-level secret is in the work (`file:line`)."""
    if blocking is None and last is not None and last.tree == tree:
        return list(last.secrets)  # the commit of work kept before: the same files
    if blocking is None:
        blocking = secret_scan.scan(
            Change.between(ctx.ws, base, tree), ctx.known_secrets()
        ).blocking
    return [f"{f.file}:{f.line}" if f.line else str(f.file) for f in blocking]
