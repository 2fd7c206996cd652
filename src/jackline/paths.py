"""Where Jackline keeps its state: `~/.jackline/`, or `JACKLINE_HOME`."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("JACKLINE_HOME") or Path.home() / ".jackline").expanduser()


def database() -> Path:
    return home() / "jackline.db"


def engine_database() -> Path:
    """DBOS keeps its workflow state in a file of its own, so our reads never wait on its writes."""
    return home() / "engine.db"


def workspaces() -> Path:
    """Where this process makes run workspaces: `JACKLINE_WORKSPACES`, else under the home. A
    worker may keep them on a disk of its own; a run taken over by another worker finds its
    workspace missing there and makes it again."""
    where = os.environ.get("JACKLINE_WORKSPACES")
    return Path(where).expanduser() if where else home() / "workspaces"


def run_dir(run_id: str) -> Path:
    """Handoffs and agent/check logs of one run: outside the workspace, kept after it is removed."""
    return home() / "runs" / run_id


def logs() -> Path:
    return home() / "logs"
