"""Scope: the agent may not write where `[scope] forbidden` says. Writes there are reverted.

The paths come from git's NUL-separated lists (`changed_paths`), so a name with a newline, a quote
or a non-ASCII letter is matched and reverted like any other, and each is handed back to git as a
literal pathspec: a name such as `:(exclude)x` or `*` stands for that one file, never a pattern.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pathspec

from jackline.git import changed_paths, git, ok


def revert_forbidden(workspace: Path, base: str, forbidden: list[str]) -> list[str]:
    """Put every forbidden path the agent changed back as it was at `base`; return those paths."""
    if not forbidden:
        return []
    spec = pathspec.GitIgnoreSpec.from_lines(forbidden)
    hits = [p for p in changed_paths(workspace, base) if spec.match_file(p)]
    for rel in hits:
        if ok(workspace, "cat-file", "-e", f"{base}:{rel}"):
            git(workspace, "checkout", base, "--", f":(literal){rel}")
        else:
            _remove(workspace, rel)
    return hits


def _remove(workspace: Path, rel: str) -> None:
    """Remove the file `workspace/rel` without following a link on the way to it (a link itself
    is removed, not what it points at)."""
    *folders, name = PurePosixPath(rel).parts
    fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in folders:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        os.unlink(name, dir_fd=fd)
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)
