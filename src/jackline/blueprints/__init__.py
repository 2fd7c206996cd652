"""Blueprints: the ordered steps of a run, as data a person writes.

A blueprint is a TOML file: the repository's `.jackline/blueprints/NAME.toml` (a gate file, like
jackline.toml: an agent's edit to one is a block-level finding, and never changes a run under
way), else a built-in one of that name (`standard`, `local`, `autofix`: files of this package, in
the same format). `[blueprint] name` in jackline.toml picks one; `jackline run --blueprint NAME`
another. Its steps, in order, are of three kinds:

- `kind = "command"`, a deterministic step: a command run in the sandbox, whose changes to the
  work are kept (a formatter, `ruff check --fix`, a code generator) and recorded as its own;
  `pass` says whether its exit is a verdict (`exit-0`) or not (`always`).
- `kind = "agent"`, an agentic step: the bounded loop of an agent and the checks, with feedback,
  for at most `rounds` rounds; its own agent and prompt template if it names them. Commands in
  its `before_checks` run after each of its rounds, before the checks judge the round.
- the harness's own steps, by name: `scan`, `commit`, `publish`, `handoff`, `review` (a person
  decides; approval merges). A request for changes goes back to the last agentic step.

The whole blueprint is read once, when a run is submitted, and recorded with it (`recorded`):
the engine walks what the run recorded, so a blueprint edited meanwhile (by a person, or by the
agent in its workspace) changes no run under way, and a walk replayed after a crash takes the
same path.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jackline.errors import ConfigError, NotFound

FOLDER = Path(".jackline/blueprints")
"""Where a repository keeps its own blueprints (see `guard.policy.GATES`)."""

BUILT_IN = ("standard", "local", "autofix")

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A blueprint's or a step's name: a file name, never a path."""

PLACEHOLDERS = ("task", "brief", "feedback", "round", "rounds")
"""What a prompt template may name: the run's task, the brief the harness writes (task, rules in
scope, checks, boundaries), the feedback of the round before ("" in a first round), the round's
number and the step's round limit."""

HARNESS = ("scan", "commit", "publish", "handoff", "review")
"""The harness's own steps, in the only order they can be walked in."""

LIMIT = 256 << 10
"""Bytes of a blueprint file read at most."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _named(value: str) -> str:
    if not NAME.fullmatch(value):
        raise ValueError("a name of letters, digits, `-`, `_` and `.` (at most 64)")
    return value


class Command(_Model):
    """A deterministic step: one command in the sandbox, whose changes to the work are kept."""

    name: str
    """How the audit log and the handoff name the step (`step:NAME`)."""
    command: str | list[str]
    """A shell string or an argv list, run in the workspace, in the sandbox."""
    pass_: Literal["exit-0", "always"] = Field(default="exit-0", alias="pass")
    """`exit-0`: the step fails unless it exits 0, and the run fails with it; `always`: its exit
    is no verdict (a formatter, a fixer that also reports what it could not fix)."""
    timeout: int = Field(default=600, gt=0)
    """Seconds it may take; one that runs out fails, whatever `pass` says."""

    _check_name = field_validator("name")(_named)

    @field_validator("command", mode="before")
    @classmethod
    def _check_command(cls, value: Any) -> Any:
        from jackline.config import _command

        return _command(value)

    def shown(self) -> str:
        return self.command if isinstance(self.command, str) else " ".join(self.command)


class CommandStep(Command):
    kind: Literal["command"]


class AgentStep(_Model):
    """An agentic step: the agent works in rounds until the checks pass, at most `rounds`."""

    kind: Literal["agent"]
    name: str = "agent"
    agent: str | None = None
    """An agent of `[agents.*]`; by default the run's (`--agent`, else `default`)."""
    prompt: str | None = None
    """The brief this step hands its agent, as a template: `{task}`, `{brief}`, `{feedback}`,
    `{round}`, `{rounds}`. With `{feedback}` in it, the feedback is part of the brief and not
    added after it. By default the harness's brief."""
    rounds: int | None = Field(default=None, ge=1, le=20)
    """Rounds at most; by default `[blueprint] max_rounds`."""
    before_checks: list[Command] = []
    """Deterministic steps run after each of this step's rounds, before the checks."""

    _check_name = field_validator("name")(_named)

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: str | None) -> str | None:
        for found in re.findall(r"\{([A-Za-z_]+)\}", value or ""):
            if found not in PLACEHOLDERS:
                known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
                raise ValueError(f"unknown placeholder {{{found}}} (known: {known})")
        return value


class HarnessStep(_Model):
    """One of the harness's own steps, by name."""

    kind: Literal["scan", "commit", "publish", "handoff", "review"]


Step = Annotated[CommandStep | AgentStep | HarnessStep, Field(discriminator="kind")]


class Blueprint(_Model):
    name: str
    """The file's name without `.toml`: set by `load`, not written in the file."""
    description: str = ""
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _walkable(self) -> Blueprint:
        problem = _order_problem(self.steps)
        if problem:
            raise ValueError(problem)
        names = [s.name for s in self.steps if not isinstance(s, HarnessStep)]
        names += [c.name for s in self.steps if isinstance(s, AgentStep) for c in s.before_checks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"each step needs a name of its own; {', '.join(twice)} is used twice")
        return self

    def again(self) -> int:
        """Where a request for changes goes back to: the last agentic step."""
        return max(i for i, s in enumerate(self.steps) if isinstance(s, AgentStep))

    def outline(self) -> str:
        """The steps on one line: `agent (then autofix) -> scan -> ... -> review`."""
        shown = []
        for s in self.steps:
            if isinstance(s, AgentStep):
                then = ", ".join(c.name for c in s.before_checks)
                shown.append(s.name + (f" (then {then}, before the checks)" if then else ""))
            else:
                shown.append(s.name if isinstance(s, CommandStep) else s.kind)
        return " -> ".join(shown)

    def agents(self) -> list[str]:
        """The agents its agentic steps name (the run's own agent aside)."""
        return [s.agent for s in self.steps if isinstance(s, AgentStep) and s.agent]


def _order_problem(steps: list[Any]) -> str | None:
    """What keeps the engine from walking these steps: a run's work is done (agents, commands)
    before it is scanned, scanned before it is committed, committed before it is published,
    and a person reviews it last, having read its handoff."""
    kinds = [s.kind for s in steps]
    where = {k: kinds.index(k) for k in HARNESS if k in kinds}
    if "agent" not in kinds:
        return 'no agentic step (`kind = "agent"`): a run needs an agent to do its task'
    missing = [k for k in HARNESS if k != "publish" and k not in where]
    if missing:
        return f"the harness's steps {', '.join(missing)} are missing (each run ends with them)"
    twice = [k for k in HARNESS if kinds.count(k) > 1]
    if twice:
        return f"the step {twice[0]} is there twice"
    listed = [k for k in kinds if k in HARNESS]
    if listed != sorted(listed, key=HARNESS.index) or kinds[-1] != "review":
        return (
            f"the harness's steps go in this order: {', '.join(HARNESS)} (got {', '.join(listed)})"
        )
    late = [i for i, k in enumerate(kinds) if k in ("agent", "command") and i > where["scan"]]
    if late:
        return (
            f"steps.{late[0]}: agent and command steps come before scan (nothing unscanned "
            "is committed)"
        )
    return None


def load(root: Path, name: str) -> Blueprint:
    """The blueprint `name`: the repository's own (`.jackline/blueprints/NAME.toml`), else the
    built-in one. Every problem is named with its file, key and value (`ConfigError`)."""
    if not NAME.fullmatch(name):
        raise NotFound(f"{name!r} is not a blueprint name; known: {', '.join(known(root))}")
    path = root / FOLDER / f"{name}.toml"
    if path.is_file():
        return parse(_read(path), name, source(root, name))
    if name not in BUILT_IN:
        raise NotFound(f"unknown blueprint {name!r}; known: {', '.join(known(root))}")
    return built_in(name)


def built_in(name: str) -> Blueprint:
    """One of the blueprints that come with Jackline (`BUILT_IN`)."""
    text = (resources.files(__package__) / f"{name}.toml").read_text(encoding="utf-8")
    return parse(text, name, f"the built-in blueprint {name}")


def source(root: Path, name: str) -> str:
    """Where the blueprint `name` is read from, as an error names it."""
    path = root / FOLDER / f"{name}.toml"
    return str(path) if path.is_file() else f"the built-in blueprint {name}"


def known(root: Path) -> list[str]:
    own = [p.stem for p in (root / FOLDER).glob("*.toml") if NAME.fullmatch(p.stem)]
    return sorted({*BUILT_IN, *own})


def _read(path: Path) -> str:
    with path.open("rb") as f:
        data = f.read(LIMIT + 1)
    if len(data) > LIMIT:
        raise ConfigError(str(path), [f"larger than {LIMIT >> 10} KiB"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(path), ["not UTF-8 text"]) from None


def parse(text: str, name: str, where: str) -> Blueprint:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(where, [f"invalid TOML: {e}"]) from None
    if "name" in data:
        raise ConfigError(where, ["name: unknown key (the file's name names the blueprint)"])
    try:
        return Blueprint.model_validate({**data, "name": name})
    except ValidationError as e:
        raise ConfigError(where, [_describe(err) for err in e.errors()]) from None


def _describe(err: Any) -> str:
    parts = list(err["loc"])
    if len(parts) > 2 and parts[0] == "steps" and parts[2] in _UNION_TAGS:
        del parts[2]  # pydantic names the union's tag where the file has no such key
    loc = ".".join(str(p) for p in parts) or "steps"
    kind = err["type"]
    if kind == "missing":
        return f"{loc}: field required"
    if kind == "extra_forbidden":
        return f"{loc}: unknown key"
    if kind == "union_tag_invalid":
        tag = err["ctx"]["tag"]
        steps = ", ".join(("command", "agent", *HARNESS))
        return f"{loc}.kind: unknown step {tag!r} (expected one of: {steps})"
    if kind == "union_tag_not_found":
        return f"{loc}.kind: field required (one of: command, agent, {', '.join(HARNESS)})"
    msg = err["msg"].removeprefix("Value error, ")
    if not err["loc"]:  # the blueprint as a whole: its input is the whole file
        return f"{loc}: {msg}"
    return f"{loc}: {msg} (got {err['input']!r})"


_UNION_TAGS = {"command", "agent", *HARNESS}


def recorded(blueprint: Blueprint) -> str:
    """The blueprint as a run records it when submitted (JSON text)."""
    return blueprint.model_dump_json(by_alias=True)


def from_record(text: str) -> Blueprint:
    return Blueprint.model_validate_json(text)
