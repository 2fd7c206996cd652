"""Where Jackline keeps its state: `~/.jackline/`, or `JACKLINE_HOME`."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("JACKLINE_HOME") or Path.home() / ".jackline").expanduser()


def database_url() -> str | None:
    """`JACKLINE_DATABASE_URL`: the one database a team's workers and servers share (team
    mode). Unset, Jackline keeps its state on this machine, in SQLite files under `home()`."""
    return os.environ.get("JACKLINE_DATABASE_URL", "").strip() or None


def team_mode() -> bool:
    """Whether this process is one of a team's (see `database_url`)."""
    return database_url() is not None


def database() -> Path:
    return home() / "jackline.db"


def engine_database() -> Path:
    """DBOS keeps its workflow state in a file of its own, so our reads never wait on its writes."""
    return home() / "engine.db"


def workspaces() -> Path:
    """Where this process makes run workspaces: `JACKLINE_WORKSPACES` (a worker's own folder,
    set by `jackline worker --workspaces`), else under the home. A run taken over by another
    worker finds its workspace missing there and makes it again (`steps.moving`)."""
    where = os.environ.get("JACKLINE_WORKSPACES")
    return Path(where).expanduser() if where else home() / "workspaces"


def run_dir(run_id: str) -> Path:
    """Handoffs and agent/check logs of one run: outside the workspace, kept after it is removed."""
    return home() / "runs" / run_id


def logs() -> Path:
    return home() / "logs"
