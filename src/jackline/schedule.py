"""What `jackline worker` does on a timer, as plain functions: no DBOS, no surface.

Each kind of scheduled work is a `tick(kind, repo)` that does the work once and says how long to
wait before the next one, read from the repository's config at that moment (so a changed period
applies from the next tick; 0 stops the loop). `engine.every_workflow` strings the ticks together
with durable sleeps: a worker that restarts after a day does the overdue tick once, then goes on.

- `pool`: `[pool] refresh_every`: build (or find) the snapshot for main's tip and refill the pool.
- `health`: `[health] every`: write the morning report to `~/.jackline/reports/`.

A tick never raises: what went wrong goes to `~/.jackline/logs/schedule.log` and the loop goes on,
since one bad night (a set-up that failed) must not end the schedule for good.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from jackline import config as cfg
from jackline import paths

KINDS = ("pool", "health")


def period(kind: str, config: cfg.JacklineConfig) -> int:
    """Seconds between ticks of `kind` for this config; 0 when it is not scheduled."""
    text = {"pool": config.pool.refresh_every, "health": config.health.every}[kind]
    return cfg.seconds(text) if text else 0


PREFIX = "every-"
"""What the id of every scheduled loop's workflow starts with."""


def workflow_id(kind: str, repo: Path) -> str:
    digest = hashlib.sha1(str(repo.resolve()).encode()).hexdigest()[:12]
    return f"{PREFIX}{kind}-{repo.resolve().name}-{digest}"


def tick(kind: str, repo: str) -> int:
    """Do `kind` once for `repo`; the seconds until the next tick (0: no longer scheduled)."""
    root = Path(repo)
    try:
        config = cfg.load(root)
        wait = period(kind, config)
        if wait:
            _WORK[kind](root, _say(kind, root))
        return wait
    except Exception:  # noqa: BLE001 - logged; the schedule outlives one bad tick
        _log(f"{kind} {repo}: failed\n{traceback.format_exc()}")
        try:
            return period(kind, cfg.load(root)) or 0
        except Exception:  # noqa: BLE001 - an unreadable config: try again in an hour
            return 3600


def _pool(root: Path, say: Callable[[str], None]) -> None:
    from jackline.workspaces import pool

    pool.refresh(*pool.setup_for(root), say=say)


def _health(root: Path, say: Callable[[str], None]) -> None:
    from jackline import health

    write = getattr(health, "write_report", None)
    if write is None:
        say("the health report is not available in this version")
        return
    say(f"report written to {write(root)}")


_WORK: dict[str, Callable[[Path, Callable[[str], None]], None]] = {
    "pool": _pool,
    "health": _health,
}


def _say(kind: str, root: Path) -> Callable[[str], None]:
    return lambda line: _log(f"{kind} {root}: {line}")


def _log(line: str) -> None:
    log = paths.logs() / "schedule.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
