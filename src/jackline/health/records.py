"""The morning report's records: one `Item` per thing looked at, gathered into a `Report`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

State = Literal["ok", "attention", "unknown"]

# The order sections appear in within each rank: what is broken now before what waits for a person.
SECTIONS = ("main", "errors", "dependencies", "services", "waiting", "flags")


@dataclass(frozen=True)
class Item:
    """One thing the report looked at, and what it found."""

    section: str
    """`main`, `errors`, `dependencies`, `services`, `waiting` or `flags`."""
    name: str
    """What was looked at: a service's name, a package and version, a run id."""
    state: State
    """`unknown` means the report could not tell; it ranks with `attention`, never as `ok`."""
    summary: str
    """One line a person reads first."""
    detail: str = ""
    """Evidence: an output tail, the matching log lines, the advisories."""

    @property
    def needs_attention(self) -> bool:
        return self.state != "ok"


@dataclass(frozen=True)
class Report:
    items: tuple[Item, ...]
    """In reading order: everything that needs attention (or could not be told) first."""
    at: datetime
    """When the report was gathered (timezone-aware)."""

    @property
    def attention(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.needs_attention)

    @property
    def ok(self) -> bool:
        return not self.attention


def ordered(items: list[Item]) -> tuple[Item, ...]:
    """Attention and unknown first, then ok; by section within each; stable otherwise."""

    def key(item: Item) -> tuple[int, int]:
        section = SECTIONS.index(item.section) if item.section in SECTIONS else len(SECTIONS)
        return (0 if item.needs_attention else 1, section)

    return tuple(sorted(items, key=key))


def span(seconds: float) -> str:
    """`45s`, `12m`, `3h`, `2d`: the largest whole unit, as people say an age."""
    s = int(max(seconds, 0))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"
