"""Workspaces: an isolated, writable copy of the project for one run.

One Protocol, one small module per way of making a workspace, picked by name. This issue ships
`clone` (a local git clone at the tip of main); snapshots, overlays and the warm pool plug in here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from jackline.errors import NotFound

# Where, inside a workspace, the harness leaves the brief and feedback for the agent.
AGENT_DIR = Path(".jackline/run")


@dataclass(frozen=True)
class Workspace:
    path: Path
    branch: str
    base_sha: str
    method: str


class Provider(Protocol):
    name: str

    def create(self, repo: Path, main: str, branch: str, dest: Path) -> Workspace: ...

    def remove(self, workspace: Path) -> None: ...


def provider(name: str = "clone") -> Provider:
    from jackline.workspaces.clone import CloneProvider

    known: dict[str, type[Provider]] = {"clone": CloneProvider}
    if name not in known:
        raise NotFound(f"unknown workspace method {name!r}; known: {', '.join(sorted(known))}")
    return known[name]()
