"""Workspaces: an isolated, writable copy of the project for one run.

One Protocol, one small module per way of making a workspace, picked by name: `clone` (a local
git clone at the tip of main, when there is no set-up to reuse), and, from a snapshot of main
after set-up (`snapshot`), `overlay` (kernel overlayfs) or `copy`; `pool` keeps some made ahead.
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


def remove(path: Path) -> None:
    """Remove a workspace of any kind: stop its services, unmount an overlay, delete its files."""
    from jackline.workspaces import services
    from jackline.workspaces.overlay import OverlayProvider

    services.stop(path)
    OverlayProvider().remove(path)


def revive(path: Path) -> bool:
    """Make a workspace usable again after a reboot (an overlay's mount is gone); True if it
    had to. Cheap when there is nothing to do: one `stat`."""
    from jackline.workspaces.overlay import remount

    return remount(path)
