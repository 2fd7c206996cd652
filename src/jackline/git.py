"""Git itself, called as a program. Every harness-side git call goes through `git()`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from jackline.errors import CommandFailed, NotFound

# The harness's own commits must not depend on the user's global config or hooks.
_IDENTITY = {
    "GIT_AUTHOR_NAME": "Jackline",
    "GIT_AUTHOR_EMAIL": "jackline@localhost",
    "GIT_COMMITTER_NAME": "Jackline",
    "GIT_COMMITTER_EMAIL": "jackline@localhost",
    "GIT_TERMINAL_PROMPT": "0",
}


# The workspace's repository is the agent's to write: no hook or configured program of its
# may run as the harness.
SAFE = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false")


def git(
    repo: Path,
    *args: str,
    check: bool = True,
    env: dict[str, str] | None = None,
    strip: bool = True,
) -> str:
    full = {**os.environ, **_IDENTITY, **(env or {})}
    argv = ["git", "-C", str(repo), *SAFE, *args]
    proc = subprocess.run(argv, capture_output=True, text=True, env=full)
    if check and proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout.strip() if strip else proc.stdout


def ok(repo: Path, *args: str) -> bool:
    return (
        subprocess.run(
            ["git", "-C", str(repo), *SAFE, *args],
            capture_output=True,
            env={**os.environ, **_IDENTITY},
        ).returncode
        == 0
    )


def toplevel(path: Path) -> Path:
    try:
        return Path(git(path, "rev-parse", "--show-toplevel"))
    except (CommandFailed, FileNotFoundError):
        raise NotFound(f"{path} is not inside a git repository") from None


def rev(repo: Path, ref: str) -> str:
    return git(repo, "rev-parse", "--verify", f"{ref}^{{commit}}")


def current_branch(repo: Path) -> str | None:
    out = git(repo, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return out or None


def dirty_tracked(repo: Path) -> list[str]:
    """Tracked files with uncommitted changes (staged or not): what a merge could overwrite."""
    out = git(repo, "status", "--porcelain", "--untracked-files=no")
    return [line[3:] for line in out.splitlines() if line.strip()]


def changed_paths(repo: Path, base: str) -> list[str]:
    """Every path that differs from `base` in the working tree, untracked files included."""
    tracked = git(repo, "diff", "--name-only", "--no-renames", base).splitlines()
    untracked = git(repo, "ls-files", "--others", "--exclude-standard").splitlines()
    return sorted(set(tracked) | set(untracked))


def worktree_tree(repo: Path) -> str:
    """The working tree (minus ignored files) as a tree object, without touching index or HEAD."""
    index = repo / ".git" / "jackline-checkpoint.index"
    index.unlink(missing_ok=True)
    env = {"GIT_INDEX_FILE": str(index)}
    git(repo, "add", "-A", ".", env=env)
    tree = git(repo, "write-tree", env=env)
    index.unlink(missing_ok=True)
    return tree


def restore_tree(repo: Path, tree: str) -> None:
    """Make the working tree (minus ignored files) exactly `tree` again; HEAD stays where it is."""
    git(repo, "read-tree", "--reset", "-u", tree)
    git(repo, "clean", "-fdq")
    git(repo, "reset", "-q")
