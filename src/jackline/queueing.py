"""Which waiting work a team's worker takes next (`engine.claim`): plain records, no engine.

The rule, as users of a job queue with limits and fair share expect it. Of the workflows waiting
on the shared queue:

1. A run whose repository already has `[queue] concurrency` runs at work is held back: it stays
   on the queue for a later look. At work means taken by a worker (claimed, even if no step of it
   has started yet) and not resting: not awaiting review, not blocked, not ended.
2. The lowest priority goes first: the run's own (`Run.priority`: `--priority`, plus `[queue]
   automatic` where no person asked for it) plus its repository's `[queue] priority`.
3. At equal priority, the run of the repository with the fewest runs at work (fair share),
   counting those this look has just taken, so one look that takes several interleaves them.
4. Then the oldest.

A run that started before and was put back on the queue (its worker died) is at work already:
it counts, and no limit holds it back (it had its place). One resting for a person (put back
while it waited for review) costs nothing and counts for nothing. A release or a rollback (a
person's, and rare) has priority 0, no repository and no limit.

A repository's `[queue]` settings are those its newest waiting run recorded when it was
submitted (where the config a run follows is read, from the repository's main for a URL), so a
change to them applies from the next run submitted. Each run's are read once a process.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from jackline.config import QueueConfig
from jackline.events import Kind
from jackline.models import RESTING, Status
from jackline.store import QueuePlace, Store

RUN_PREFIX = "run-"


@dataclass(frozen=True)
class Listed:
    """A workflow that has not ended, as the engine lists it for one look at the queue."""

    id: str
    waiting: bool
    """On the shared queue, for a worker to take (else taken: claimed, or being driven)."""
    takeable: bool
    """Made by this version of Jackline, which can replay it (a waiting one only)."""
    created_at: float
    """When it was first enqueued: the oldest goes first."""


@dataclass(frozen=True)
class Candidate:
    """A waiting workflow this worker may take, with what orders it."""

    id: str
    repo: str
    """Its run's repository as recorded; "" for a release or a rollback."""
    priority: int
    """The run's own plus its repository's: lower goes first."""
    created_at: float
    counts: bool
    """A run that has not started: taking it puts one more of its repository at work, so its
    repository's limit holds it back."""


class Line:
    """The waiting workflows in the order a worker takes them, one at a time (`take`): the
    counts of runs at work change with each taken, and so does what comes next."""

    def __init__(
        self, waiting: list[Candidate], at_work: Counter[str], limits: dict[str, int]
    ) -> None:
        self._waiting = waiting
        self._at_work = at_work
        self._limits = limits

    def next(self) -> Candidate | None:
        """The one to take next, out of the line; None when none may be taken now."""
        # Held back stays held back within a look: counts only grow while it takes.
        self._waiting = [c for c in self._waiting if not self._held_back(c)]
        if not self._waiting:
            return None
        best = min(self._waiting, key=self._key)
        self._waiting.remove(best)
        return best

    def took(self, taken: Candidate) -> None:
        """`taken` was claimed: its repository has one more run at work."""
        if taken.counts:
            self._at_work[taken.repo] += 1

    def _held_back(self, c: Candidate) -> bool:
        limit = self._limits.get(c.repo, 0)
        return c.counts and limit > 0 and self._at_work[c.repo] >= limit

    def _key(self, c: Candidate) -> tuple[int, int, float]:
        return c.priority, self._at_work[c.repo] if c.repo else 0, c.created_at


def line(store: Store, listed: Iterable[Listed]) -> Line:
    """The line for one look at the queue, from every workflow that has not ended (read under
    the exclusion that claims, so what another worker just claimed is counted)."""
    listed = list(listed)
    places = {p.id: p for p in store.queue_places([w.id for w in listed if _is_run(w.id)])}
    at_work = Counter(places[w.id].repo for w in listed if w.id in places and _at_work(w, places))
    waiting = [w for w in listed if w.waiting and w.takeable]
    settings = _settings(store, waiting, places)
    candidates = [_candidate(w, places.get(w.id), settings) for w in waiting]
    limits = {repo: s.concurrency for repo, s in settings.items()}
    return Line(candidates, at_work, limits)


def _is_run(workflow_id: str) -> bool:
    return workflow_id.startswith(RUN_PREFIX)


def _at_work(w: Listed, places: dict[str, QueuePlace]) -> bool:
    status = places[w.id].status
    if status in RESTING:
        return False
    return not w.waiting or status != Status.QUEUED  # waiting and never started: not yet


def _candidate(w: Listed, place: QueuePlace | None, settings: dict[str, QueueConfig]) -> Candidate:
    if place is None:  # a release or a rollback (or a run whose record is gone)
        return Candidate(w.id, "", 0, w.created_at, counts=False)
    repo = settings.get(place.repo, QueueConfig())
    counts = place.status == Status.QUEUED
    return Candidate(w.id, place.repo, place.priority + repo.priority, w.created_at, counts)


def _settings(
    store: Store, waiting: list[Listed], places: dict[str, QueuePlace]
) -> dict[str, QueueConfig]:
    """Each waiting repository's `[queue]`, from its newest waiting run: one read a repository
    (none once read), not one a run."""
    newest: dict[str, Listed] = {}
    for w in waiting:
        place = places.get(w.id)
        if place is not None and (
            place.repo not in newest or w.created_at > newest[place.repo].created_at
        ):
            newest[place.repo] = w
    return {repo: recorded_queue(store, w.id) for repo, w in newest.items()}


_recorded: dict[str, QueueConfig] = {}
"""Each run's `[queue]` as it recorded it, read once a process (a record never changes)."""


def recorded_queue(store: Store, run_id: str) -> QueueConfig:
    """The `[queue]` section of the config the run recorded when it was submitted (the
    defaults for a run recorded before there was one)."""
    if run_id not in _recorded:
        if len(_recorded) > 10_000:
            _recorded.clear()
        _recorded[run_id] = _read_queue(store, run_id)
    return _recorded[run_id]


def _read_queue(store: Store, run_id: str) -> QueueConfig:
    submitted = store.events(run_id, kind=Kind.SUBMITTED)
    if not submitted:
        return QueueConfig()
    config = json.loads(submitted[0].data).get("config", {})
    if isinstance(config, str):
        config = json.loads(config)
    return QueueConfig.model_validate(config.get("queue", {}))
