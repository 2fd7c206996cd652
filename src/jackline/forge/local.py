"""The local forge: publishes `agent/*` branches into the user's repository and lands merges on
its main branch, without ever touching the user's working tree unless main is checked out (then
only by a fast-forward, and only when no uncommitted change would be lost).
"""

from __future__ import annotations

from pathlib import Path

from jackline import git as g
from jackline.errors import CommandFailed, Refused
from jackline.forge import check_branch


def publish(workspace: Path, repo: Path, branch: str) -> None:
    """Push the workspace's HEAD to `agent/...` in the user's repository, named by path: the
    workspace's own `origin` is configuration the agent could have rewritten."""
    check_branch(branch)
    g.git(workspace, "push", "--quiet", "--force", str(repo), f"HEAD:refs/heads/{branch}")


def landing_refusal(repo: Path, main: str) -> str | None:
    """Why merging into the user's main now would lose work, or None when it is safe."""
    if g.current_branch(repo) != main:
        return None
    dirty = g.dirty_tracked(repo)
    if dirty:
        shown = ", ".join(dirty[:5]) + (" ..." if len(dirty) > 5 else "")
        return (
            f"{repo} has {main} checked out with uncommitted changes ({shown}); "
            "commit or stash them, then approve again"
        )
    return None


def prepare_merge(
    workspace: Path, main: str, branch: str, base: str, message: str
) -> tuple[str, bool]:
    """Merge the branch onto the newest main inside the workspace. Returns (sha, main_moved).

    Replaying this after a crash is safe: once the merge has landed, main already contains the
    branch and the result is main's tip itself.
    """
    g.git(workspace, "fetch", "--quiet", "origin", f"+refs/heads/{main}:refs/remotes/origin/{main}")
    tip = g.rev(workspace, f"origin/{main}")
    g.git(workspace, "checkout", "--quiet", "-B", "jackline-merge", tip)
    try:
        g.git(workspace, "merge", "--no-ff", "--no-edit", "-m", message, branch)
    except CommandFailed as e:
        g.git(workspace, "merge", "--abort", check=False)
        g.git(workspace, "checkout", "--quiet", branch)
        raise Refused(
            f"{branch} does not merge cleanly onto {main}: {e.stdout.strip() or e.stderr.strip()}"
        ) from None
    return g.rev(workspace, "HEAD"), tip != base


def land(workspace: Path, repo: Path, main: str, sha: str, run_id: str) -> None:
    """Move the user's main to `sha`, which must be a descendant of it."""
    refusal = landing_refusal(repo, main)
    if refusal:
        raise Refused(refusal)
    ref = f"refs/jackline/merge/{run_id}"
    g.git(workspace, "push", "--quiet", "--force", "origin", f"{sha}:{ref}")
    try:
        old = g.rev(repo, main)
        if not g.ok(repo, "merge-base", "--is-ancestor", old, sha):
            raise Refused(f"{main} moved while merging; approve again to merge onto the new tip")
        if g.current_branch(repo) == main:
            g.git(repo, "merge", "--quiet", "--ff-only", sha)
        else:
            g.git(repo, "update-ref", f"refs/heads/{main}", sha, old)
    finally:
        g.git(repo, "update-ref", "-d", ref, check=False)
