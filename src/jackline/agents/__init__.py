"""Agents: adapters that run one coding agent on a brief in a workspace.

One Protocol, one module per kind, picked by name: `command` (any program through the agent
contract), and the presets for real coding agents (`preset.py` says what they share):
`claude_code`, `codex`, `aider`, `mini_swe_agent`, each exporting `Agent`.

The contract: the agent runs with the workspace as its working directory and gets
`JACKLINE_BRIEF` (the brief's path), `JACKLINE_ROUND` (1, 2, ...) and, from round 2,
`JACKLINE_FEEDBACK` (the path of a markdown summary of what failed). In its command `{prompt}`
becomes a text, the brief followed (from round 2) by that feedback (`Brief.prompt`), and
`{brief}` the brief's path. It may leave `.jackline/notes.md` for the reviewer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from jackline.config import AgentConfig
from jackline.errors import Refused
from jackline.models import AgentResult
from jackline.sandbox import Jail

if TYPE_CHECKING:
    from jackline.agents.preset import Preset


@dataclass(frozen=True)
class Brief:
    path: Path
    """The brief's file, as the agent sees it."""
    text: str
    round: int
    feedback: Path | None
    """The feedback's file, as the agent sees it (from round 2)."""
    feedback_text: str | None = None
    """The feedback itself, as the harness wrote it: never read back from where the agent is."""

    @property
    def prompt(self) -> str:
        """What `{prompt}` stands for: the brief's text and, from round 2, the feedback after
        it (the checks' failures, the reviewer's words, the agent's own failure). A program
        started afresh each round remembers nothing and may never read a file it is not told
        of; where the feedback's text is not at hand, the prompt says where its file is."""
        if self.feedback is None:
            return self.text
        text = self.feedback_text
        if text is None:
            text = f"Feedback from the previous round is in `{self.feedback}`: read it first."
        return f"{self.text.rstrip()}\n\n{text.strip()}\n"


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
    """The agent `[agents.NAME]` describes: its preset's adapter, or any command."""
    from jackline.agents.command import CommandAgent

    if config.preset is None:
        return CommandAgent(config)
    return presets()[config.preset](config)


def presets() -> dict[str, type[Preset]]:
    """Preset name -> adapter class (`config.PRESETS` names the same four)."""
    # Here, not at the top: each adapter's module imports this package's records.
    from jackline.agents import aider, claude_code, codex, mini_swe_agent

    return {
        "claude-code": claude_code.Agent,
        "codex": codex.Agent,
        "aider": aider.Agent,
        "mini-swe-agent": mini_swe_agent.Agent,
    }


def check_available(config: AgentConfig) -> None:
    """Refuse, before a run starts, an agent whose program is missing (saying how to install it)."""
    if config.preset is None:
        return
    known = presets()
    if config.preset not in known:
        raise Refused(f"the {config.preset} preset is not available in this version of Jackline")
    known[config.preset](config).executable()
