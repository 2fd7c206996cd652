"""A change for the scans to read, made the way a run's is: a real git repository in a temporary
folder, `before` committed, `after` written over it in the working tree (None deletes a file)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from jackline.scans import Change


def git(repo: Path, *args: str) -> str:
    """git in `repo` under a throwaway identity; its output, stripped."""
    argv = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo), *args]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def write(repo: Path, files: Mapping[str, str | None]) -> None:
    for rel, text in files.items():
        path = repo / rel
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


def change(
    tmp_path: Path, before: Mapping[str, str | None], after: Mapping[str, str | None]
) -> Change:
    """Commit `before` in a new repository under `tmp_path`, write `after` into its working
    tree, and read the change from the commit to the tree."""
    repo = tmp_path / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    write(repo, before)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    write(repo, after)
    return Change.of_workspace(repo, git(repo, "rev-parse", "HEAD"))
