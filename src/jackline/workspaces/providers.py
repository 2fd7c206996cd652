"""Making a workspace from a snapshot: an overlay where this process may mount one (`overlay`),
else a copy (`copy`). Both start the workspace's git directory with `snapshot.begin`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from jackline.workspaces import Workspace
from jackline.workspaces.copy import CopyProvider
from jackline.workspaces.overlay import OverlayProvider, available
from jackline.workspaces.snapshot import Snapshot


class SnapshotProvider(Protocol):
    name: str

    def create_from(self, snapshot: Snapshot, branch: str, dest: Path) -> Workspace: ...

    def remove(self, workspace: Path) -> None: ...


def provider_for(shared: Sequence[str] = ()) -> SnapshotProvider:
    """An overlay where this process may mount one; else a copy (hard-linking `shared`)."""
    return OverlayProvider() if available() else CopyProvider(shared)
