"""What every preset shares: a real coding agent's program, driven non-interactively.

A preset (`agents/claude_code.py`, `codex.py`, `aider.py`, `mini_swe_agent.py`) says four things
about its program, and this base does the rest through the agent contract (`CommandAgent`):

- `base_argv(brief)`: the non-interactive command line with the brief as its task, the program's
  own approvals off (the sandbox is the boundary), no auto-commit (the harness commits), the
  model if `[agents.NAME] model` names one; `[agents.NAME] args` are appended.
- `rules_files(rules)`: the rules in scope, in the form the program reads by itself (its memory
  file, its rules folder, its read-only context), as files to write in the workspace. They are
  kept out of the commit (`.git/info/exclude`).
- `parse(output)`: the program's structured output (stream-json, JSON events, a trajectory)
  read into a `Transcript`: each command and tool call with its result, each edit, the final
  message, the tokens used.
- `program`, `install`: the executable looked up on PATH before a run starts, and how to install
  it when it is missing.

The program runs in the agent's sandbox, so whatever it leaves in the workspace is the agent's:
its transcript files are read with `read_private` (never through a link, within
`TRANSCRIPT_LIMIT`), removed with `remove_private` and made with `private_dir`, each of which
stays inside the workspace whatever links stand there.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import ClassVar

from jackline import proc, safeio
from jackline.agents import Brief
from jackline.agents.command import CommandAgent
from jackline.config import AgentConfig
from jackline.context import Rule
from jackline.errors import Refused
from jackline.models import AgentResult, Transcript
from jackline.sandbox import Jail

TRANSCRIPT_LIMIT = 16 << 20
"""Bytes of a transcript file (a chat history, a trajectory, a session) read at most."""


class Preset(CommandAgent):
    name: ClassVar[str]
    program: ClassVar[str]
    """The executable (`claude`, `codex`, `aider`, `mini`)."""
    install: ClassVar[str]
    """How to install it (`npm install -g @anthropic-ai/claude-code`)."""
    private: ClassVar[tuple[str, ...]] = ()
    """Patterns (`.git/info/exclude` style) of the files the preset writes in the workspace
    (its rules, its settings): never committed, never part of the change."""

    def __init__(self, config: AgentConfig) -> None:
        super().__init__(config)

    # what a preset says ------------------------------------------------------------------------

    def base_argv(self, brief: Brief) -> list[str]:
        raise NotImplementedError

    def rules_files(self, rules: list[Rule], brief: Brief) -> dict[str, str]:
        """Workspace-relative path -> text: the rules where the program looks for them."""
        return {}

    def parse(self, output: str) -> Transcript:
        return Transcript()

    def extra_env(self, workspace: Path) -> dict[str, str]:
        """Variables the program needs besides `[agents.NAME] env` and its secrets (a config
        folder of its own in the workspace's private area, say)."""
        return {}

    # what the base does --------------------------------------------------------------------------

    def executable(self) -> str:
        """The program to run: `[agents.NAME] command` if given (a path to it), else found on
        PATH; refused before the run starts, with how to install it, when it is not there."""
        if self.config.command is not None:
            given = self.config.command
            return given if isinstance(given, str) else given[0]
        found = shutil.which(self.program)
        if found is None:
            raise Refused(
                f"the {self.name} preset needs `{self.program}`, which is not on PATH: "
                f"{self.install}"
            )
        return found

    def argv(self, brief: Brief) -> list[str]:
        argv = self.base_argv(brief)
        return [self.executable(), *argv[1:], *self.config.args]

    def run(
        self,
        brief: Brief,
        workspace: Path,
        env: Mapping[str, str],
        log: Path,
        jail: Jail | None = None,
    ) -> AgentResult:
        done = super().run(
            brief, workspace, {**env, **self.config.env, **self.extra_env(workspace)}, log, jail
        )
        try:
            transcript = self.parse(safeio.read_text(log.parent, log.name, proc.LOG_LIMIT) or "")
        except (OSError, ValueError) as e:
            transcript = Transcript(final=f"(the transcript could not be read: {e})")
        return AgentResult(
            done.exit_code,
            done.duration,
            done.output_tail,
            done.timed_out,
            transcript,
            dropped=done.dropped,
        )


def read_private(workspace: Path, rel: str | PurePosixPath | Path) -> str | None:
    """A file the program wrote in the workspace (its transcript), or None: see `safeio`."""
    return safeio.read_text(workspace, rel, TRANSCRIPT_LIMIT)


def remove_private(workspace: Path, rel: str | PurePosixPath | Path) -> None:
    """Remove what stands at `workspace/rel` (left from the round before) without following a
    link on the way: a link standing there is removed itself, never what it points at."""
    safeio.remove(workspace, rel)


def private_dir(workspace: Path, rel: str | PurePosixPath | Path) -> None:
    """Make `workspace/rel` a folder, each part a real one: a link or file standing where a
    folder should be is removed first, so nothing is made outside the workspace."""
    safeio.mount_point(workspace, rel, folder=True)
