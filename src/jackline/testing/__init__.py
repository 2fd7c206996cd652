"""Fakes for what costs money or lives remotely, shipped so users can test their own set-ups.

`ScriptedAgent` stands in for a coding model: it replays scripted edits and commands, one round
at a time, as a real subprocess through the agent contract.

    agent = ScriptedAgent([
        Round(edits={"app.py": Replace("a > b", "a >= b")}),
        Round(edits={"app.py": Replace(...)}, notes="Assumed ..."),
    ])
    agent.save(path)               # then, in jackline.toml:
    [agents.scripted]
    command = agent.command(path)  # [python, -m, jackline.testing.scripted, path]
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Replace:
    """Replace `old` with `new` in a file; the round fails if `old` is not there."""

    old: str
    new: str


@dataclass(frozen=True)
class Round:
    edits: dict[str, str | Replace | None] = field(default_factory=dict)
    """path -> new content, a `Replace`, or None to delete the file."""
    commands: list[str] = field(default_factory=list)
    """Shell commands run in the workspace after the edits."""
    notes: str = ""
    """Written to `.jackline/notes.md` for the reviewer."""
    message: str = ""
    """The agent's final message, printed on stdout."""
    exit_code: int = 0
    sleep: float = 0.0
    """Seconds to wait before exiting (for tests that interrupt an agent)."""


@dataclass
class ScriptedAgent:
    rounds: list[Round]

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps([_encode(r) for r in self.rounds], indent=2))
        return path

    @staticmethod
    def command(script: Path) -> list[str]:
        return [sys.executable, "-m", "jackline.testing.scripted", str(script)]


def _encode(r: Round) -> dict[str, object]:
    data = asdict(r)
    data["edits"] = {k: (asdict(v) if isinstance(v, Replace) else v) for k, v in r.edits.items()}
    return data
