"""Change failure rate and time to restore from the ledger, told apart for agent changes.

A release counts as a change to production once its commit was promoted (it reached
production's deploy). It failed if it was rolled back. Its time to restore runs from the promotion
to the end of the rollback, which is when the previous release served again. Agent and person
changes are counted apart (`Release.author_kind`), which is the point: whether agent changes fail
more often, or take longer to undo, is a figure a team should watch, not guess.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass

from jackline.events import Kind
from jackline.models import ReleaseStatus
from jackline.store import Store


@dataclass(frozen=True)
class Figures:
    kind: str
    """`agent` or `person`."""
    to_production: int
    rolled_back: int
    restore_seconds: tuple[float, ...]

    @property
    def failure_rate(self) -> float | None:
        return self.rolled_back / self.to_production if self.to_production else None

    @property
    def median_restore(self) -> float | None:
        return statistics.median(self.restore_seconds) if self.restore_seconds else None


def figures(store: Store, repo: str | None = None) -> list[Figures]:
    """The figures for agent and person changes, over the releases in the ledger."""
    counts: dict[str, list[int]] = {"agent": [0, 0], "person": [0, 0]}
    restores: dict[str, list[float]] = {"agent": [], "person": []}
    for rel in store.list_releases(repo, limit=100_000):
        promoted = store.events(rel.id, kind=Kind.RELEASE_PROMOTED)
        if not promoted:
            continue
        kind = rel.author_kind
        counts[kind][0] += 1
        back = store.events(rel.id, kind=Kind.RELEASE_ROLLED_BACK)
        if rel.status == ReleaseStatus.ROLLED_BACK and back:
            counts[kind][1] += 1
            if json.loads(back[-1].data).get("ok", True):
                restores[kind].append(back[-1].ts - promoted[0].ts)
    return [Figures(k, c[0], c[1], tuple(restores[k])) for k, c in counts.items()]


def describe(f: Figures) -> str:
    if not f.to_production:
        return f"{f.kind} changes: none reached production yet"
    rate = f.failure_rate or 0.0
    restore = f"; median time to restore {f.median_restore:.0f}s" if f.median_restore else ""
    return (
        f"{f.kind} changes: {f.to_production} to production, {f.rolled_back} rolled back "
        f"(change failure rate {rate:.0%}){restore}"
    )
