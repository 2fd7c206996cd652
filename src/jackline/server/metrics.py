"""`GET /metrics`: Prometheus text exposition (format 0.0.4), written by hand because
`prometheus_client` is not among Jackline's dependencies and the format is small.

    jackline_runs{status}                     gauge      runs by status
    jackline_rounds_total                     counter    agent rounds over all runs
    jackline_check_duration_seconds{check}    histogram  each check's duration, from `round` events
    jackline_pool_size{repo}                  gauge      the warm slots `[pool] size` asks for
    jackline_pool_warm{repo}                  gauge      warm workspaces ready now
    jackline_releases{status}                 gauge      releases by status

It needs a token (viewer is enough), like everything else on the server: run ids and statuses
are not public. Prometheus sends one with `authorization: {credentials: TOKEN}` in the scrape
config. Every figure is read from the store at scrape time: the server keeps no counters of its
own, so a restart, or a second server on the same database, reports the same numbers. A scrape
costs a few queries however many runs there are (counted in the database, not run by run) and
starts no process.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from jackline import api
from jackline.errors import JacklineError
from jackline.events import Kind
from jackline.models import RELEASE_RESTING, RUN_STATUSES, ReleaseStatus
from jackline.server.deps import allowed
from jackline.store import Store

router = APIRouter()
# Every status is reported (as 0 when none), so a graph of one status does not vanish.
RELEASE_STATUSES = tuple(s for s in ReleaseStatus if s in RELEASE_RESTING)
BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, math.inf)
"""Check durations in seconds: a lint takes a second, a test suite minutes."""
RELEASES_LOOKED_AT = 10_000
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get(
    "/metrics",
    tags=["health"],
    response_class=PlainTextResponse,
    dependencies=[Depends(allowed("read"))],
)
def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text: runs and releases by status, rounds, check durations, the warm pool."""
    repos: tuple[Path, ...] = request.app.state.settings.repos
    return PlainTextResponse(exposition(repos), media_type=CONTENT_TYPE)


def exposition(repos: Iterable[Path]) -> str:
    """The whole page, in a few queries however many runs there are: runs and rounds counted
    in the database, every round's checks read at once, releases counted, and the pool from
    the config and the pool's folder (no git process per scrape)."""
    by_status, rounds = api.run_tally()
    lines = _gauge("jackline_runs", "Runs by status.", "status", by_status, RUN_STATUSES)
    lines += [
        "# HELP jackline_rounds_total Agent rounds over all runs.",
        "# TYPE jackline_rounds_total counter",
        f"jackline_rounds_total {rounds}",
    ]
    lines += _histogram(
        "jackline_check_duration_seconds",
        "How long each check took, per round.",
        _check_durations(),
    )
    lines += _pool(repos)
    releases = Counter(r.status for r in api.releases(limit=RELEASES_LOOKED_AT))
    lines += _gauge(
        "jackline_releases", "Releases by status.", "status", releases, RELEASE_STATUSES
    )
    return "\n".join(lines) + "\n"


def _gauge(
    name: str, help_text: str, label: str, counts: Counter[str], always: Iterable[str] = ()
) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    for key in sorted(set(always) | set(counts)):
        lines.append(f"{name}{{{label}={_quote(key)}}} {counts.get(key, 0)}")
    return lines


def _check_durations() -> dict[str, list[float]]:
    """Each check's durations over every round of every run, from the `round` audit events."""
    found: dict[str, list[float]] = {}
    for data in Store().event_data(Kind.ROUND):
        for check in json.loads(data).get("checks", []):
            found.setdefault(str(check["name"]), []).append(float(check["duration"]))
    return found


def _histogram(name: str, help_text: str, by_check: dict[str, list[float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    for check, durations in sorted(by_check.items()):
        label = f"check={_quote(check)}"
        for bound in BUCKETS:
            le = "+Inf" if math.isinf(bound) else repr(bound)
            count = sum(1 for d in durations if d <= bound)
            lines.append(f'{name}_bucket{{{label},le="{le}"}} {count}')
        lines.append(f"{name}_sum{{{label}}} {sum(durations):.6f}")
        lines.append(f"{name}_count{{{label}}} {len(durations)}")
    return lines


def _pool(repos: Iterable[Path]) -> list[str]:
    size = [
        "# HELP jackline_pool_size Warm workspaces [pool] size asks for.",
        "# TYPE jackline_pool_size gauge",
    ]
    warm = [
        "# HELP jackline_pool_warm Warm workspaces ready now.",
        "# TYPE jackline_pool_warm gauge",
    ]
    for repo in repos:  # the server's repositories: each its working tree's top already
        try:
            wanted, ready = api.pool_figures(repo)
        except JacklineError:  # a broken jackline.toml loses its pool figures, not the scrape
            continue
        label = f"repo={_quote(str(repo))}"
        size.append(f"jackline_pool_size{{{label}}} {wanted}")
        warm.append(f"jackline_pool_warm{{{label}}} {ready}")
    return size + warm


def _quote(value: str) -> str:
    """A label value, escaped as the format requires (backslash, quote, newline)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
