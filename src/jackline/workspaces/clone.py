"""A workspace as a local clone: objects are hard-linked, so it costs little disk and time.

The clone's `origin` is the user's repository, which is how the harness later publishes the
branch there without touching the user's working tree.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from jackline.git import git, rev
from jackline.workspaces import AGENT_DIR, Workspace

# Paths the harness and the agent contract use inside the workspace, kept out of every commit.
EXCLUDED = (f"{AGENT_DIR}/", ".jackline/notes.md")


class CloneProvider:
    name = "clone"

    def create(self, repo: Path, main: str, branch: str, dest: Path) -> Workspace:
        if dest.exists():  # a retried prepare step: start again from nothing
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        git(repo, "clone", "--quiet", "--no-checkout", "--local", str(repo), str(dest))
        git(dest, "checkout", "--quiet", "-b", branch, f"origin/{main}")
        add_excludes(dest)
        return Workspace(dest, branch, rev(dest, "HEAD"), self.name)

    def remove(self, workspace: Path) -> None:
        shutil.rmtree(workspace, ignore_errors=True)


def add_excludes(ws: Path, patterns: tuple[str, ...] | list[str] = EXCLUDED) -> None:
    """Keep the harness's inbox and the agent's notes (or `patterns`) out of every commit made
    in `ws`."""
    exclude = ws / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with exclude.open("a") as f:
        f.write("\n# jackline\n" + "\n".join(patterns) + "\n")


def exclude_setup_outputs(ws: Path) -> list[str]:
    """What set-up made (a venv, node_modules) is never committed, even if .gitignore forgot it."""
    out = git(ws, "ls-files", "--others", "--exclude-standard", "--directory")
    made = [p for p in out.splitlines() if p]
    if made:
        with (ws / ".git" / "info" / "exclude").open("a") as f:
            f.write("# made by set-up\n" + "\n".join("/" + p for p in made) + "\n")
    return made
