"""Agents: adapters that run one coding agent on a brief in a workspace.

One Protocol, one module per kind, picked by name. This issue ships `command` (any program through
the agent contract); presets for Claude Code, Codex, Aider and mini-swe-agent plug in here.

The contract: the agent runs with the workspace as its working directory and gets
`JACKLINE_BRIEF` (the brief's path), `JACKLINE_ROUND` (1, 2, ...) and, from round 2,
`JACKLINE_FEEDBACK` (a markdown summary of what failed). In its command `{prompt}` becomes the
brief's text and `{brief}` its path. It may leave `.jackline/notes.md` for the reviewer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from jackline.config import AgentConfig
from jackline.models import AgentResult
from jackline.sandbox import Jail


@dataclass(frozen=True)
class Brief:
    path: Path
    text: str
    round: int
    feedback: Path | None


class Agent(Protocol):
    def run(
        self,
        brief: Brief,
        workspace: Path,
        env: Mapping[str, str],
        log: Path,
        jail: Jail | None = None,
    ) -> AgentResult: ...


def build(config: AgentConfig) -> Agent:
    from jackline.agents.command import CommandAgent

    return CommandAgent(config)
