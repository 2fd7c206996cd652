"""Changing one flag's value: checked, written so that comments and layout survive, audited.

The change lands in the project's working tree and nowhere else: a person commits it like any
other change, so the flag file's history stays in git next to the code that reads it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomlkit
from tomlkit.items import Item

from jackline.errors import ConfigError, NotFound, Refused
from jackline.events import Kind
from jackline.flags.model import DEFAULT, Flag, load, parse, path_of
from jackline.guard.audit import AuditLog, Event
from jackline.guard.redact import Redactor
from jackline.store import Store

if TYPE_CHECKING:
    from jackline.config import JacklineConfig

INT = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class FlagChange:
    name: str
    env: str
    old: Any
    new: Any
    by: str
    path: Path
    changed: bool


def set_flag(
    repo: Path,
    cfg: JacklineConfig,
    name: str,
    value_text: str,
    env: str,
    by: str,
    owners: Sequence[str],
) -> FlagChange:
    """Set flag `name` to `value_text` in `env` (or `default`), as `by`; refuses what policy forbids."""
    flags = load(repo, cfg)  # a broken file is refused here, before anything is written
    flag = flags.flags.get(name)
    if flag is None:
        known = ", ".join(flags.flags) or "none"
        raise NotFound(f"no flag {name!r} in {cfg.release.flags}; flags: {known}")
    check_env(env, cfg)
    _check_allowed(flag, by, owners)
    new = parse_value(flag, value_text)
    old = flag.values.get(env)
    path = path_of(repo, cfg)
    change = FlagChange(name, env, old, new, by, path, changed=old != new)
    if change.changed:
        _write(path, name, env, new, cfg)
        _audit(repo, change)
    return change


def check_env(env: str, cfg: JacklineConfig) -> None:
    """Refuse an environment that jackline.toml does not configure (any name when none are)."""
    environments = list(cfg.release.environments)
    if env == DEFAULT or not environments or env in environments:
        return
    raise Refused(
        f"{env!r} is not an environment in jackline.toml [release.environments]; "
        f"expected one of: {', '.join(environments)}, or {DEFAULT}"
    )


def _check_allowed(flag: Flag, by: str, owners: Sequence[str]) -> None:
    if not flag.protected or by == flag.owner or by in owners:
        return
    named = f"one of [review] owners ({', '.join(owners)})" if owners else ""
    who = f"its owner ({flag.owner}) or {named}" if named else f"its owner ({flag.owner})"
    raise Refused(f"flag {flag.name} is protected: only {who} may change it, not {by}")


def parse_value(flag: Flag, text: str) -> Any:
    """`text` as a value of the flag's type: `true`/`false`, `12`, `0.5`, JSON for an object."""
    try:
        return _PARSERS[flag.type](text)
    except ValueError as e:
        raise Refused(f"{text!r} is not a value for flag {flag.name} ({flag.type}): {e}") from None


def _bool(text: str) -> bool:
    word = text.strip().lower()
    if word not in ("true", "false"):
        raise ValueError("write true or false")
    return word == "true"


def _int(text: str) -> int:
    if not INT.match(text.strip()):
        raise ValueError("write a whole number such as 12")
    return int(text)


def _float(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ValueError("write a number such as 0.25") from None
    if not math.isfinite(number):
        raise ValueError("write a finite number")
    return number


def _object(text: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f'write JSON such as {{"limit": 3}}: {e}') from None
    if not isinstance(value, dict | list):
        raise ValueError('write a JSON object or array such as {"limit": 3}')
    if _has_null(value):
        raise ValueError("TOML has no null; leave the key out instead")
    return value


def _has_null(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return value is None


_PARSERS: dict[str, Callable[[str], Any]] = {
    "bool": _bool,
    "int": _int,
    "float": _float,
    "string": str,
    "object": _object,
}


def _write(path: Path, name: str, env: str, value: Any, cfg: JacklineConfig) -> None:
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    doc["flags"][name]["values"][env] = _item(value)
    text = tomlkit.dumps(doc)
    try:  # never leave a file behind that the release gate would refuse
        parse(tomllib.loads(text), cfg.release.flags, list(cfg.release.environments))
    except (ConfigError, tomllib.TOMLDecodeError) as e:
        raise Refused(f"setting {name} in {env} would break {cfg.release.flags}: {e}") from None
    tmp = path.with_name(f".{path.name}.jackline-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # readers (the provider) see the old file or the new, never half


def _item(value: Any) -> Item:
    """An object value goes inline, so it sits on its environment's line like any other value."""
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        for k, v in value.items():
            table[k] = _item(v)
        return table
    if isinstance(value, list):
        array = tomlkit.array()
        array.extend(_item(v) for v in value)
        return array
    item: Item = tomlkit.item(value)
    return item


# the audit trail ---------------------------------------------------------------------------


def stream_id(repo: Path) -> str:
    """The audit stream of one project's flag changes: its folder name and a hash of its path."""
    root = repo.resolve()
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return f"flags:{root.name}-{digest}"


def _audit(repo: Path, change: FlagChange) -> None:

    store = Store()
    try:
        AuditLog(store, Redactor.from_environment()).record(
            stream_id(repo),
            Kind.FLAG_SET,
            name=change.name,
            env=change.env,
            old=change.old,
            new=change.new,
            by=change.by,
            file=str(change.path),
        )
    finally:
        store.close()


def history(repo: Path) -> list[Event]:
    """Every recorded flag change of the project, oldest first, each marked if the chain holds."""

    store = Store()
    try:
        return AuditLog(store, Redactor({})).read(stream_id(repo))
    finally:
        store.close()
