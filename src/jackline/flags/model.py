"""Reading and validating `flags.toml`: every problem reported with its place, all at once.

The release gate calls `validate`, so a file this module refuses blocks a release; the provider
reads through `read`, so an application sees exactly the values the gate accepted.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jackline.errors import ConfigError

if TYPE_CHECKING:
    from jackline.config import JacklineConfig

DEFAULT = "default"
"""The key in `values` that serves every environment without a value of its own."""
TYPES = ("bool", "string", "int", "float", "object")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
ARTICLE = {"bool": "a", "string": "a", "int": "an", "float": "a", "object": "an"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)


class FlagSpec(_Model):
    """One `[flags.NAME]` table as written."""

    description: str = Field(default="", strict=True)
    """What the flag changes, for whoever meets it in the code or in the morning report."""
    owner: str = Field(strict=True)
    """The person who answers for the flag: may change it when protected, removes it when expired."""
    expires: date = Field(strict=True)
    """The day the flag should be gone by: a TOML date such as 2025-09-30, unquoted. From that
    day on the flag is listed as expired (the morning report shows it)."""
    protected: bool = Field(default=False, strict=True)
    """Only the flag's owner or one of `[review] owners` may change it with `jackline flags set`."""
    type: Literal["bool", "string", "int", "float", "object"] | None = None
    """The values' type; default: inferred from the values, which must all agree."""
    values: dict[str, Any]
    """The value per environment (`staging = true`), and `default` for environments without one."""

    @field_validator("owner")
    @classmethod
    def _check_owner(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name the person who answers for the flag")
        return value

    @field_validator("values")
    @classmethod
    def _check_values(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("no value; give `default` or a value per environment")
        return value


class FlagsFile(_Model):
    """The whole file: only `[flags.NAME]` tables."""

    flags: dict[str, FlagSpec] = {}
    """The flags by name: `[flags.new-checkout]`, with its values in `[flags.new-checkout.values]`."""


@dataclass(frozen=True)
class Flag:
    name: str
    description: str
    owner: str
    expires: date
    protected: bool
    type: str
    values: Mapping[str, Any]
    """As written, with whole numbers made floats for a float flag."""

    def value_for(self, env: str) -> tuple[Any, str] | None:
        """(value, where it came from: the environment's name or `default`), or None."""
        for key in (env, DEFAULT):
            if key in self.values:
                return self.values[key], key
        return None

    def expired(self, today: date) -> bool:
        # A flag is expired on its expiry day: the report should say so that morning, not after.
        return self.expires <= today


@dataclass(frozen=True)
class Flags:
    path: Path
    flags: Mapping[str, Flag] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Flag]:
        return iter(self.flags.values())

    def __len__(self) -> int:
        return len(self.flags)

    def environments(self) -> list[str]:
        """Every environment some flag has a value for, in the order first written."""
        seen = dict.fromkeys(e for f in self for e in f.values if e != DEFAULT)
        return list(seen)


def path_of(repo: Path, cfg: JacklineConfig) -> Path:
    return repo / cfg.release.flags


def load(repo: Path, cfg: JacklineConfig) -> Flags:
    """The project's flags; no file means no flags. Raises ConfigError naming every problem."""
    return read(path_of(repo, cfg), list(cfg.release.environments), label=cfg.release.flags)


def validate(repo: Path, cfg: JacklineConfig) -> None:
    """Raise ConfigError if the flag file is broken: the release gate's check."""
    load(repo, cfg)


def read(path: Path, environments: Iterable[str] = (), label: str | None = None) -> Flags:
    """Read one flag file. `environments`, when given, are the only environment names allowed."""
    where = label or str(path)
    if not path.is_file():
        return Flags(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(where, [f"invalid TOML: {e}"]) from None
    except UnicodeDecodeError:
        raise ConfigError(where, ["not UTF-8 text"]) from None
    return parse(data, where, environments, path)


def parse(
    data: dict[str, Any],
    where: str = "flags.toml",
    environments: Iterable[str] = (),
    path: Path | None = None,
) -> Flags:
    envs = list(environments)
    problems: list[str] = []
    model = None
    try:
        model = FlagsFile.model_validate(data)
    except ValidationError as e:
        problems += [_describe(err) for err in e.errors()]
    raw = data.get("flags")
    if isinstance(raw, dict):
        for name, spec in raw.items():
            problems += _flag_problems(name, spec, envs)
    if problems or model is None:
        raise ConfigError(where, problems)
    flags = {name: _record(name, spec) for name, spec in model.flags.items()}
    return Flags(path or Path(where), flags)


def _record(name: str, spec: FlagSpec) -> Flag:
    kind = spec.type or _inferred(spec.values)
    values = {k: float(v) if kind == "float" else v for k, v in spec.values.items()}
    return Flag(name, spec.description, spec.owner, spec.expires, spec.protected, str(kind), values)


# the checks pydantic cannot make: names, environments, and values that agree in type -------


def _flag_problems(name: str, spec: Any, environments: list[str]) -> list[str]:
    problems = []
    if not NAME.match(name):
        problems.append(
            f"flags.{name}: not a flag name; use letters, digits, - and _, starting with a letter"
        )
    if not isinstance(spec, dict) or not isinstance(spec.get("values"), dict):
        return problems  # pydantic has said what is wrong with its shape
    declared = spec.get("type") if spec.get("type") in TYPES else None
    expected = declared or _inferred(spec["values"])
    for env, value in spec["values"].items():
        where = f"flags.{name}.values.{env}"
        if environments and env != DEFAULT and env not in environments:
            problems.append(f"{where}: {_unknown_env(env, environments)}")
        problem = _value_problem(value, expected, declared)
        if problem:
            problems.append(f"{where}: {problem} (got {value!r})")
    return problems


def _unknown_env(env: str, environments: list[str]) -> str:
    close = [e for e in environments if e.startswith(env)][:1]
    close = close or difflib.get_close_matches(env, environments, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (
        f"{env!r} is not an environment in jackline.toml [release.environments] "
        f"(expected one of: {', '.join(environments)}, or {DEFAULT}){hint}"
    )


def _value_problem(value: Any, expected: str | None, declared: str | None) -> str | None:
    kind = kind_of(value)
    if kind is None:
        return "expected a bool, string, int, float or object (a table or an array)"
    if expected is None or fits(kind, expected):
        return None
    because = f'(type = "{declared}")' if declared else "like the other values"
    return f"expected {ARTICLE[expected]} {expected} {because}"


def kind_of(value: Any) -> str | None:
    """The flag type a TOML value has, or None for what a flag cannot hold (dates, times)."""
    if isinstance(value, bool):  # before int: a bool is an int to Python
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict | list):
        return "object"
    return None


def fits(kind: str, expected: str) -> bool:
    return kind == expected or (kind == "int" and expected == "float")


def _inferred(values: Mapping[str, Any]) -> str | None:
    """The type most values have (the first written on a tie); 1 and 0.5 together are floats."""
    kinds = [k for k in map(kind_of, values.values()) if k]
    if not kinds:
        return None
    if "float" in kinds and set(kinds) <= {"int", "float"}:
        return "float"
    return Counter(kinds).most_common(1)[0][0]


MESSAGES = {
    "date_type": "expected a TOML date such as 2025-09-30, unquoted",
    "bool_type": "expected true or false",
    "string_type": "expected a string in quotes",
    "dict_type": "expected a table",
    "model_type": "expected a table",
}


def _describe(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    if kind == "missing":
        return f"{loc}: field required{_hint(err['loc'])}"
    if kind == "extra_forbidden":
        return f"{loc}: unknown key{_suggest(err['loc'])}"
    msg = MESSAGES.get(kind) or err["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg} (got {err['input']!r})"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    # ("flags", NAME, key): the key belongs to a flag; anything shorter to the file.
    return FlagSpec if len(loc) >= 3 and loc[0] == "flags" else FlagsFile


def _hint(loc: tuple[Any, ...]) -> str:
    """Say what a missing field is for, from its docstring."""
    info = _model_at(loc).model_fields.get(str(loc[-1]))
    first = (info.description or "").split(". ")[0].strip() if info else ""
    return f" ({first[0].lower()}{first[1:]})" if first else ""


def _suggest(loc: tuple[Any, ...]) -> str:
    model = _model_at(loc)
    if model is FlagsFile:
        return f"; flags go under `flags`: write [flags.{loc[-1]}]"
    known = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f" (expected one of: {', '.join(known)}){hint}"


# reading the values -----------------------------------------------------------------------


def expired(flags: Flags, today: date | None = None) -> list[Flag]:
    """The flags whose expiry day has come, oldest first."""
    day = today or date.today()
    return sorted((f for f in flags if f.expired(day)), key=lambda f: (f.expires, f.name))


def values_for(flags: Flags, env: str) -> dict[str, Any]:
    """Each flag's value in `env` (its own, else the default); flags with neither are left out."""
    out = {}
    for flag in flags:
        found = flag.value_for(env)
        if found is not None:
            out[flag.name] = found[0]
    return out


def payload(flags: Flags, env: str) -> dict[str, Any]:
    """What `GET /flags/ENV` answers: the values, and which of them are the default."""
    defaults = [f.name for f in flags if (found := f.value_for(env)) and found[1] == DEFAULT]
    return {"environment": env, "flags": values_for(flags, env), "defaults": defaults}
