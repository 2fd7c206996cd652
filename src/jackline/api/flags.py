"""Feature flags and the morning's health report."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jackline import config as cfg
from jackline import git as g
from jackline.store import Store

if TYPE_CHECKING:
    from jackline.health import Item, Report


from jackline.api.submission import record_claim, who


def flags_list(repo: Path, env: str | None = None) -> dict[str, Any]:
    """The project's flags: each with its values, the value in force per environment (its own or
    the default), owner, expiry and whether it has expired. With `env`, only that environment."""
    import datetime

    from jackline import flags

    root = g.toplevel(repo)
    config = cfg.load(root)
    found = flags.load(root, config)
    if env is not None:
        flags.check_env(env, config)
    envs = [env] if env else list(config.release.environments) or found.environments()
    today = datetime.date.today()
    return {
        "file": str(flags.path_of(root, config)),
        "environments": envs,
        "flags": [_flag_json(f, envs, today) for f in found],
    }


def _flag_json(flag: Any, envs: list[str], today: Any) -> dict[str, Any]:
    in_force = {e: found[0] for e in envs if (found := flag.value_for(e)) is not None}
    return {
        "name": flag.name,
        "description": flag.description,
        "owner": flag.owner,
        "expires": flag.expires.isoformat(),
        "expired": flag.expired(today),
        "protected": flag.protected,
        "type": flag.type,
        "values": dict(flag.values),
        "in_force": in_force,
    }


def set_flag(
    repo: Path, name: str, value: str, env: str, by: str | None = None, claimed: str | None = None
) -> dict[str, Any]:
    """Set a flag's value in one environment of the working tree's flags.toml (audited)."""
    from jackline import flags

    root = g.toplevel(repo)
    config = cfg.load(root)
    person = who(config, by, claimed, action="flags")
    change = flags.set_flag(root, config, name, value, env, person.name, config.review.owners)
    record_claim(flags.stream_id(root), f"flags set {name} {env}", person)
    return {**asdict(change), "path": str(change.path)}


def health(repo: Path, extra: list[Item] | None = None) -> Report:
    """The morning report for the repository: what `[health]` in its jackline.toml names, the
    runs and releases waiting for a person, and expired flags (`extra`, if given, replaces the
    last two: a surface that has them already)."""
    from jackline import health as h

    root = g.toplevel(repo)
    if extra is None:
        return h.report(root)
    return h.gather(root, cfg.load(root), Store(), extra=list(extra))
