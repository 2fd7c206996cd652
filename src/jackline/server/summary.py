"""What the run page shows first, so a reviewer can decide from it: what changed (read from the
`--stat` part of the change the commit step kept), the checks of each round, the findings by
level. Built from what the harness stored (the change, the round events, the scan), never from
the run's workspace."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from jackline import handoff

STAT_LINE = re.compile(r"^ (?P<path>.+?)\s+\|\s+(?P<count>\d+|Bin\b.*?)(?: (?P<bar>[-+]+))?$")
TOTALS = re.compile(
    r"^ (?P<files>\d+) files? changed"
    r"(?:, (?P<added>\d+) insertions?\(\+\))?(?:, (?P<removed>\d+) deletions?\(-\))?$"
)
SHOWN_FILES = 8
"""Files listed by name in the summary; the diff below lists them all."""
SHOWN_TESTS = 3
"""Failed tests named per check and round; the handoff below names more."""


@dataclass(frozen=True)
class FileStat:
    path: str
    """As git's `--stat` prints it (a long path shortened with `...`)."""
    count: str
    """Lines changed, or git's `Bin ...` for a binary file."""
    bar: str
    """git's bar of `+` and `-`, in proportion to what was added and removed."""


@dataclass(frozen=True)
class Change:
    files: tuple[FileStat, ...]
    changed: int
    added: int
    removed: int


def change(text: str | None) -> Change | None:
    """The `--stat` part of a kept change (`git diff --stat --patch`): each file, and the
    totals git counted. None without a change, or with no stat at its head."""
    if not text:
        return None
    files: list[FileStat] = []
    for line in text.splitlines():
        totals = TOTALS.match(line)
        if totals:
            return Change(
                tuple(files),
                int(totals["files"]),
                int(totals["added"] or 0),
                int(totals["removed"] or 0),
            )
        stat = STAT_LINE.match(line)
        if stat is None:  # the patch began without a totals line: no stat to trust
            return None
        files.append(FileStat(stat["path"], stat["count"], stat["bar"] or ""))
    return None


@dataclass(frozen=True)
class CheckMark:
    name: str
    passed: bool
    failed: tuple[str, ...]
    """The failed tests (or places) the check's parser named, the first few."""
    more: int
    """How many more it named."""


@dataclass(frozen=True)
class RoundMark:
    round: int
    passed: bool
    problem: str
    """What went wrong with the agent itself (it timed out, crashed), "" if nothing."""
    checks: tuple[CheckMark, ...]
    skipped: bool


def rounds(events: list[dict[str, Any]]) -> list[RoundMark]:
    """Each round's checks, red or green, naming the tests that failed."""
    return [_round(handoff.round_from_json(data)) for data in events]


def _round(r: handoff.Round) -> RoundMark:
    checks = []
    for c in r.checks:
        named = [f.test or f.where() or f.message for f in c.failures]
        checks.append(
            CheckMark(
                c.name, c.passed, tuple(named[:SHOWN_TESTS]), max(len(named) - SHOWN_TESTS, 0)
            )
        )
    return RoundMark(r.round, r.passed, r.problem or "", tuple(checks), r.checks_skipped)


LEVELS = ("block", "warn", "info")


def levels(found: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """The findings counted by level, block first, each level that has one."""
    counted = Counter(str(f["level"]) for f in found)
    order = [*LEVELS, *sorted(set(counted) - set(LEVELS))]
    return [(level, counted[level]) for level in order if counted[level]]
