"""Any program as an agent, through the agent contract (see `jackline.agents`)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from jackline import proc
from jackline.agents import Brief
from jackline.config import AgentConfig
from jackline.models import AgentResult
from jackline.sandbox import Jail


class CommandAgent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config

    def argv(self, brief: Brief) -> list[str] | str:
        assert self.config.command is not None, "a command agent has a command (config checks)"
        if isinstance(self.config.command, str):
            # A shell string: substitute quoted, so the brief's text cannot become shell syntax.
            return self.config.command.replace("{prompt}", shlex.quote(brief.prompt)).replace(
                "{brief}", shlex.quote(str(brief.path))
            )
        return [
            part.replace("{prompt}", brief.prompt).replace("{brief}", str(brief.path))
            for part in self.config.command
        ]

    def run(
        self,
        brief: Brief,
        workspace: Path,
        env: Mapping[str, str],
        log: Path,
        jail: Jail | None = None,
    ) -> AgentResult:
        contract = {"JACKLINE_BRIEF": str(brief.path), "JACKLINE_ROUND": str(brief.round)}
        if brief.feedback is not None:
            contract["JACKLINE_FEEDBACK"] = str(brief.feedback)
        done = proc.run(
            self.argv(brief),
            workspace,
            {**env, **contract},
            log,
            self.config.timeout,
            pidfile=log.with_suffix(".pid"),
            jail=jail,
        )
        return AgentResult(
            done.exit_code, done.duration, done.tail(60), done.timed_out, dropped=done.dropped
        )
