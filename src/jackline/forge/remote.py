"""The local forge for a repository reached by URL: `agent/*` branches are pushed to the remote,
and an approved merge lands on the remote's main by a push that only fast-forwards it.

The merge itself is made as for a path (`local.prepare_merge`, in the workspace, onto the main
the workspace fetched from this machine's clone, which `landing` has just brought up to date).
Only the landing differs: `git push URL sha:refs/heads/main`, never forced. The remote applies
the update only if main is still where the workspace saw it, so a main that moved in between
(another worker, a person) refuses the push instead of losing their commits; the run is asked
to be approved again, as a path's `land` does. Nothing is ever force-pushed to main; `agent/*`
branches are the harness's, and are.

Landings on one URL take turns on this machine (`landing`); between machines, the remote's
refusal of a push that does not fast-forward is what keeps them apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from jackline import git as g
from jackline import locks, repos
from jackline.errors import CommandFailed, JacklineError, Refused
from jackline.forge import check_branch

MOVED = "{main} moved while merging; approve again to merge onto the new tip"


@dataclass(frozen=True)
class RemoteRepository:
    """A run's repository as a URL (see `forge.repository`)."""

    url: str

    @property
    def remote(self) -> repos.Remote:
        return repos.parse(self.url)

    def publish(self, workspace: Path, branch: str) -> None:
        """Push the workspace's HEAD to `agent/...` on the remote, named by URL: never through
        the workspace's configuration, which the agent could have rewritten."""
        check_branch(branch)
        env = repos.git_env(self.remote)
        g.git(
            workspace,
            "push",
            "--quiet",
            "--force",
            "--",
            self.url,
            f"HEAD:refs/heads/{branch}",
            env=env,
        )

    def refusal(self, main: str, wait: bool = True) -> str | None:
        """Nothing of a person's can be lost: the remote's main is moved only by fast-forward."""
        return None

    @contextmanager
    def landing(self, main: str) -> Iterator[None]:
        """One landing at a time on this machine, onto the remote's main as it is now: the clone
        the workspace fetches main from is brought up to date first."""
        with locks.held("land", self.url):
            repos.synced(self.url, main)
            yield

    def land(self, workspace: Path, main: str, sha: str, run_id: str) -> None:
        """Move the remote's main to `sha` by a push that only fast-forwards it; afterwards this
        machine's clone follows, whether the push landed or main had moved."""
        try:
            self._push_main(workspace, main, sha)
        finally:
            self._follow(main)

    def _follow(self, main: str) -> None:
        """The clone takes the remote's main as it now is. Only a courtesy: every use of the
        clone brings it up to date first, so a network gone this moment leaves it behind only
        until then, and the landing's outcome stands."""
        with suppress(JacklineError):
            repos.synced(self.url, main)

    def _push_main(self, workspace: Path, main: str, sha: str) -> None:
        env = repos.git_env(self.remote)
        try:
            g.git(
                workspace,
                "push",
                "--porcelain",
                "--",
                self.url,
                f"{sha}:refs/heads/{main}",
                env=env,
            )
        except CommandFailed as e:
            why = _rejection(e.stdout)
            if why is None:
                raise
            if why.startswith("[rejected]"):  # not a fast-forward: someone moved main
                raise Refused(MOVED.format(main=main)) from None
            raise Refused(f"{self.remote.shown} refused the push to {main}: {why}") from None


def _rejection(porcelain: str) -> str | None:
    """What `git push --porcelain` said of a refused ref (`[rejected] (fetch first)`, `[remote
    rejected] (pre-receive hook declined)`), or None when the push failed otherwise."""
    for line in porcelain.splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[0] == "!":
            return fields[2].strip()
    return None
