"""A workspace as a clone of the user's repository, its git directory beside it (see
`git.gitdir_path`): the work tree is the agent's, the git directory the harness's alone.

Objects are copied, never hard-linked: an object file shared with the user's repository could be
rewritten in place through the workspace. The clone's `origin` is the user's repository, which is
how the harness later publishes the branch there without touching the user's working tree.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from jackline.git import adopt, git, git_bytes, gitdir_path, rev, z_paths
from jackline.workspaces import AGENT_DIR, Workspace

# Paths the harness and the agent contract use inside the workspace, kept out of every commit.
EXCLUDED = (f"{AGENT_DIR}/", ".jackline/notes.md")


class CloneProvider:
    name = "clone"

    def create(self, repo: Path, main: str, branch: str, dest: Path) -> Workspace:
        if dest.exists():  # a retried prepare step: start again from nothing
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        clone(repo, dest)
        git(dest, "checkout", "--quiet", "-b", branch, f"origin/{main}")
        return Workspace(dest, branch, rev(dest, "HEAD"), self.name)

    def remove(self, workspace: Path) -> None:
        shutil.rmtree(workspace, ignore_errors=True)
        shutil.rmtree(gitdir_path(workspace), ignore_errors=True)


def clone(repo: Path, tree: Path) -> None:
    """`repo` cloned into `tree` (no checkout), with the harness's git directory beside it."""
    shutil.rmtree(gitdir_path(tree), ignore_errors=True)
    tree.parent.mkdir(parents=True, exist_ok=True)
    git(
        repo,
        "clone",
        "--quiet",
        "--no-checkout",
        "--no-hardlinks",
        f"--separate-git-dir={gitdir_path(tree)}",
        str(repo),
        str(tree),
    )
    adopt(tree)
    add_excludes(tree)


def add_excludes(ws: Path, patterns: tuple[str, ...] | list[str] = EXCLUDED) -> None:
    """Keep the harness's inbox and the agent's notes (or `patterns`) out of every commit made
    in `ws`."""
    exclude = gitdir_path(ws) / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with exclude.open("a") as f:
        f.write("\n# jackline\n" + "\n".join(patterns) + "\n")


def exclude_setup_outputs(ws: Path) -> list[str]:
    """What set-up made (a venv, node_modules) is never committed, even if .gitignore forgot it."""
    out = git_bytes(ws, "ls-files", "-z", "--others", "--exclude-standard", "--directory")
    made = z_paths(out)
    if made:
        with (gitdir_path(ws) / "info" / "exclude").open("a") as f:
            f.write("# made by set-up\n" + "".join(f"{x}\n" for x in map(_pattern, made) if x))
    return made


def _pattern(path: str) -> str:
    """An exclude pattern naming exactly `path` from the top: glob characters and a leading `#`
    or `!` escaped; "" for a name no pattern line can hold (a newline in it)."""
    if "\n" in path or "\r" in path:
        return ""
    escaped = "".join("\\" + c if c in "*?[]\\!#" else c for c in path)
    return "/" + escaped
