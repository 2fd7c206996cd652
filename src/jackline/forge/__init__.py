"""Forges: where branches and change requests live. `local` (the user's repository) ships now;
GitHub plugs in beside it. The harness alone pushes, and only to `agent/*`.

The local forge publishes to and lands on the run's own repository, which is one of two kinds
(`repository`): a path on this machine (`local.LocalRepository`) or a URL that any worker
reaches (`remote.RemoteRepository`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from jackline import repos
from jackline.errors import Refused


class Repository(Protocol):
    """Where a run's branch is published and its approved merge lands."""

    def publish(self, workspace: Path, branch: str) -> None:
        """Push the workspace's HEAD to `branch` (an `agent/*` one) in the repository."""
        ...

    def refusal(self, main: str, wait: bool = True) -> str | None:
        """Why landing on `main` now would lose a person's work, or None. Without `wait`, as it
        looks now, not waiting for a landing under way (a page's reason; the verb asks again
        with `wait`, in its turn)."""
        ...

    def landing(self, main: str) -> AbstractContextManager[None]:
        """Hold the repository's landing turn, with `main` as it is now in this machine's view
        of it (what the workspace fetches main from)."""
        ...

    def land(self, workspace: Path, main: str, sha: str, run_id: str) -> None:
        """Move `main` to `sha`, a descendant of it; `Refused` when main moved meanwhile."""
        ...


def repository(recorded: str) -> Repository:
    """The run's repository by what the run recorded (`Run.repo`): a URL or a path."""
    from jackline.forge.local import LocalRepository
    from jackline.forge.remote import RemoteRepository

    if repos.is_url(recorded):
        return RemoteRepository(recorded)
    return LocalRepository(Path(recorded))


def check_branch(branch: str) -> None:
    if not branch.startswith("agent/"):
        raise Refused(f"the harness only pushes to agent/* branches, not {branch!r}")
