"""Blueprints: the ordered steps of a run, picked by name.

`standard` is the whole path of DESIGN.md section 3. A blueprint is data; `engine.run_workflow`
reads it step by step. The `agent` and `check` steps form the bounded loop (`max_rounds`).
"""

from __future__ import annotations

from dataclasses import dataclass

from jackline.errors import NotFound


@dataclass(frozen=True)
class Blueprint:
    name: str
    steps: tuple[str, ...]
    description: str

    def has(self, step: str) -> bool:
        return step in self.steps


BLUEPRINTS = {
    b.name: b
    for b in (
        Blueprint(
            "standard",
            (
                "prepare",
                "hydrate",
                "agent",
                "check",
                "commit",
                "publish",
                "handoff",
                "review",
                "merge",
            ),
            "the agent works in rounds until the checks pass; a person reviews; the harness merges",
        ),
        Blueprint(
            "local",
            ("prepare", "hydrate", "agent", "check", "commit", "handoff", "review", "merge"),
            "as standard, but the branch is not published before review",
        ),
    )
}


def get(name: str) -> Blueprint:
    if name not in BLUEPRINTS:
        raise NotFound(f"unknown blueprint {name!r}; known: {', '.join(sorted(BLUEPRINTS))}")
    return BLUEPRINTS[name]
