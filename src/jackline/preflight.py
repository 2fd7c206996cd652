"""`jackline validate` past the file: what a run will need from this repository and machine.

A config can be well formed and still fail its first run: a main branch that does not exist, an
agent program that is not installed, a check whose tool is nowhere ("No module named ruff" in a
log, after a minute of set-up). Each is named here by the key it comes from. An error is what
would certainly fail a run; a warning is what only set-up can still make true (a tool it
installs in the workspace), so it is said, not refused.

Where a command's program is looked for is where a run looks: a bare name on PATH (the sandbox
shows the tools on PATH, and set-up cannot add to it), a path relative to the workspace's root
among main's files (a workspace is main's files, plus what set-up makes), an absolute path on
this machine.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from jackline import blueprints
from jackline import git as g
from jackline.agents import check_available
from jackline.config import JacklineConfig
from jackline.errors import ConfigError, NotFound, Refused

SHELL_WORDS = frozenset(
    {
        *("cd", "export", "set", "unset", "source", ".", "exec", "eval", "test", "["),
        *("true", "false", "if", "for", "while", "case", "{", "(", "!", "time", "command"),
    }
)
"""First words a shell runs itself: nothing to look for."""


@dataclass(frozen=True)
class Problem:
    key: str
    """Where in jackline.toml it comes from (`checks.lint.command`)."""
    message: str
    error: bool
    """True when a run would certainly fail; False when set-up may still make it true."""

    def render(self) -> str:
        return f"{self.key}: {self.message}"


def check(root: Path, config: JacklineConfig) -> list[Problem]:
    """Every problem a run of this config in `root` would meet before its agent works."""
    return [
        *_main(root, config),
        *_agents(root, config),
        *_checks(root, config),
        *_blueprint(root, config),
    ]


def _main(root: Path, config: JacklineConfig) -> list[Problem]:
    main = config.project.main
    if g.ok(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{main}^{{commit}}"):
        return []
    branches = g.git(root, "for-each-ref", "--format=%(refname:short)", "refs/heads/", check=False)
    known = ", ".join(branches.split()[:10]) or "none with a commit yet"
    return [
        Problem(
            "project.main",
            f"no branch {main!r} with a commit in {root}: runs start from it and merge into "
            f"it (branches: {known})",
            True,
        )
    ]


def _agents(root: Path, config: JacklineConfig) -> list[Problem]:
    out = []
    for name, agent in config.agents.items():
        key = f"agents.{name}"
        if agent.command is None:  # a preset: its program on PATH, or how to install it
            try:
                check_available(agent)
            except Refused as e:
                out.append(Problem(key, str(e), True))
            continue
        given = agent.command
        # A preset's `command` is the path of its program; otherwise a whole command line.
        word = (
            (given if agent.preset else _first_word(given)) if isinstance(given, str) else given[0]
        )
        problem = _program(root, config, word)
        if problem:
            out.append(Problem(f"{key}.command", problem[0], problem[1]))
    return out


def _checks(root: Path, config: JacklineConfig) -> list[Problem]:
    out = []
    for name, check_config in config.checks.items():
        command = check_config.command
        word = _first_word(command) if isinstance(command, str) else command[0]
        problem = _program(root, config, word)
        if problem:
            out.append(Problem(f"checks.{name}.command", problem[0], problem[1]))
    return out


def _blueprint(root: Path, config: JacklineConfig) -> list[Problem]:
    """The blueprint `[blueprint] name` picks: its file valid, the agents its steps name
    configured, the programs its commands start found."""
    key = "blueprint.name"
    try:
        bp = blueprints.load(root, config.blueprint.name)
    except ConfigError as e:
        return [Problem(key, f"{e.path}: {p}", True) for p in e.problems]
    except NotFound as e:
        return [Problem(key, str(e), True)]
    where = blueprints.source(root, bp.name)
    out = []
    for i, step in enumerate(bp.steps):
        if isinstance(step, blueprints.AgentStep) and step.agent not in (None, *config.agents):
            known = ", ".join(sorted(config.agents)) or "none"
            said = f"{where}: steps.{i}.agent: no agent {step.agent!r} (configured: {known})"
            out.append(Problem(key, said, True))
        for place, command in _commands(i, step):
            given = command.command
            word = _first_word(given) if isinstance(given, str) else given[0]
            problem = _program(root, config, word)
            if problem:
                out.append(Problem(key, f"{where}: {place}.command: {problem[0]}", problem[1]))
    return out


def _commands(i: int, step: object) -> list[tuple[str, blueprints.Command]]:
    """A blueprint step's commands, each with its place in the file."""
    if isinstance(step, blueprints.CommandStep):
        return [(f"steps.{i}", step)]
    if isinstance(step, blueprints.AgentStep):
        return [(f"steps.{i}.before_checks.{j}", c) for j, c in enumerate(step.before_checks)]
    return []


def _first_word(command: str) -> str | None:
    """The program a shell command line starts, or None where only a shell could tell."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    while words and "=" in words[0] and not words[0].startswith("="):
        words = words[1:]  # VAR=value before the program
    if not words or words[0] in SHELL_WORDS or any(c in words[0] for c in "$`{;&|<>"):
        return None
    return words[0]


def _program(root: Path, config: JacklineConfig, word: str | None) -> tuple[str, bool] | None:
    """What is wrong with `word` as a program of a run, and whether it is an error."""
    if word is None:
        return None
    main = config.project.main
    if "/" not in word:
        if shutil.which(word):
            return None
        if config.sandbox.mode == "none" and config.workspace.setup:  # it runs on the host
            return f"`{word}` is not on PATH: not found now; your set-up must install it", False
        return (
            f"`{word}` is not on PATH; set-up cannot put it there (call a tool it installs by "
            f"its path in the workspace, such as `.venv/bin/{word}`)",
            True,
        )
    path = Path(word)
    if path.is_absolute():
        if path.is_file() and os.access(path, os.X_OK):
            return None
        return f"`{word}` is not an executable file on this machine", True
    rel = os.path.normpath(word)
    if g.ok(root, "cat-file", "-e", f"{main}:{rel}"):
        return None
    if config.workspace.setup:
        return (
            f"`{word}` is not among {main}'s files: not found now; your set-up must install it",
            False,
        )
    return (
        f"`{word}` is not among {main}'s files and there is no [workspace] setup to make it",
        True,
    )
