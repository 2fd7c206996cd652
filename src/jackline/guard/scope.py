"""Scope: the agent may not write where `[scope] forbidden` says. Writes there are reverted."""

from __future__ import annotations

from pathlib import Path

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
            git(workspace, "checkout", base, "--", rel)
        else:
            (workspace / rel).unlink(missing_ok=True)
    return hits
