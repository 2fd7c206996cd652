"""The local forge: publishes `agent/*` branches into the user's repository and lands merges on
its main branch, without ever touching the user's working tree unless main is checked out (then
only by a fast-forward, and only when no uncommitted change would be lost).

Landings on one repository take turns (`landing`): each merges onto the main it finds, runs the
checks again where main moved, and moves main, before the next one looks at main at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from jackline import git as g
from jackline import locks
from jackline.errors import CommandFailed, Conflict, Refused
from jackline.forge import check_branch


@dataclass(frozen=True)
class LocalRepository:
    """A run's repository as a path on this machine (see `forge.repository`)."""

    path: Path

    def publish(self, workspace: Path, branch: str) -> None:
        publish(workspace, self.path, branch)

    def refusal(self, main: str, wait: bool = True) -> str | None:
        if not wait:
            return landing_refusal(self.path, main)
        with landing(self.path):  # a landing under way is no uncommitted change
            return landing_refusal(self.path, main)

    def landing(self, main: str) -> AbstractContextManager[None]:
        return landing(self.path)

    def land(self, workspace: Path, main: str, sha: str, run_id: str) -> None:
        land(workspace, self.path, main, sha, run_id)


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


@contextmanager
def landing(repo: Path) -> Iterator[None]:
    """Hold the repository's landing lock: one merge at a time onto its main, from any process.
    Without it two approvals both merge onto the same tip, and the second is refused (or two
    fast-forwards of a checked-out main interleave in the user's working tree)."""
    with locks.held("land", str(repo.resolve())):
        yield


def _fetch_main(workspace: Path, main: str) -> str:
    g.git(workspace, "fetch", "--quiet", "origin", f"+refs/heads/{main}:refs/remotes/origin/{main}")
    return g.rev(workspace, f"origin/{main}")


def prepare_merge(
    workspace: Path, main: str, branch: str, base: str, message: str
) -> tuple[str, bool]:
    """Merge the branch onto the newest main inside the workspace. Returns (sha, main_moved).
    A branch that conflicts with main is refused with the files (`Conflict`).

    Replaying this after a crash is safe: once the merge has landed, main already contains the
    branch and the result is main's tip itself.
    """
    tip = _fetch_main(workspace, main)
    g.git(workspace, "checkout", "--quiet", "-B", "jackline-merge", tip)
    try:
        g.git(workspace, "merge", "--no-ff", "--no-edit", "-m", message, branch)
    except CommandFailed as e:
        unmerged = g.git_bytes(workspace, "diff", "-z", "--name-only", "--diff-filter=U")
        g.git(workspace, "merge", "--abort", check=False)
        g.git(workspace, "checkout", "--quiet", branch)
        files = g.z_paths(unmerged)
        if files:
            raise Conflict(main, branch, files) from None
        raise Refused(
            f"{branch} does not merge cleanly onto {main}: {e.stdout.strip() or e.stderr.strip()}"
        ) from None
    return g.rev(workspace, "HEAD"), tip != base


def onto_newest_main(workspace: Path, main: str, branch: str) -> tuple[str, list[str]] | None:
    """Move the branch's change onto the newest main, when main moved on since the branch left
    it: the branch is set to main's tip and the change applied on top of it in the working tree
    (git's own three-way merge, `merge-tree`), a file both changed left holding conflict markers
    for the agent to resolve. Returns (main's tip, the conflicted files), or None when the
    branch already holds the newest main. Index and working tree become the merged tree whole
    (`read-tree --reset -u`): nothing half-applied is left when git refuses.
    """
    tip = _fetch_main(workspace, main)
    if g.ok(workspace, "merge-base", "--is-ancestor", tip, branch):
        return None
    args = ("merge-tree", "--write-tree", "-z", "--name-only", "--no-messages")
    try:
        fields = g.z_paths(g.git_bytes(workspace, *args, f"origin/{main}", branch))
    except CommandFailed as e:
        if e.code != 1:  # 1: merged, with conflicts; anything else is git failing
            raise
        fields = [f for f in e.stdout.split("\0") if f]
    tree, conflicted = fields[0], sorted(set(fields[1:]))
    g.git(workspace, "read-tree", "--reset", "-u", tree)
    g.git(workspace, "update-ref", f"refs/heads/{branch}", tip)
    return tip, conflicted


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
