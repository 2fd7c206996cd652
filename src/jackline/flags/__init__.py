"""Feature flags: `flags.toml` in the project, a value per environment, an owner and an expiry.

The file (its name is `[release] flags` in jackline.toml) holds only `[flags.NAME]` tables:

    [flags.new-checkout]
    description = "The one-page checkout"
    owner = "alice"                  # required: who answers for it
    expires = 2025-09-30             # required: a TOML date, unquoted
    protected = true                 # only alice or [review] owners may `jackline flags set` it
    type = "bool"                    # optional: bool, string, int, float, object; else inferred
    [flags.new-checkout.values]
    default = false                  # optional: for environments without a value of their own
    staging = true
    production = false

The values of a flag must agree in type, and name environments of `[release.environments]` when
any are configured. A broken file is a ConfigError naming each key, and blocks a release.

    load(repo, cfg) -> Flags            validate(repo, cfg) -> None
    expired(flags, today) -> [Flag]     values_for(flags, env) -> {name: value}
    set_flag(repo, cfg, name, value_text, env, by, owners) -> FlagChange   (audited)
    OpenFeatureProvider(environment, path=... | url=...)                   (for applications)

Applications import this package for the provider alone, so everything else (pydantic, tomlkit,
the store) is imported only when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from jackline.flags.provider import OpenFeatureProvider

if TYPE_CHECKING:
    from jackline.flags.edit import (
        FlagChange,
        check_env,
        history,
        parse_value,
        set_flag,
        stream_id,
    )
    from jackline.flags.model import (
        DEFAULT,
        Flag,
        Flags,
        expired,
        load,
        parse,
        path_of,
        payload,
        read,
        validate,
        values_for,
    )

_LAZY = {
    "FlagChange": "edit",
    "check_env": "edit",
    "history": "edit",
    "parse_value": "edit",
    "set_flag": "edit",
    "stream_id": "edit",
    "DEFAULT": "model",
    "Flag": "model",
    "Flags": "model",
    "expired": "model",
    "load": "model",
    "parse": "model",
    "path_of": "model",
    "payload": "model",
    "read": "model",
    "validate": "model",
    "values_for": "model",
}

__all__ = [
    "DEFAULT",
    "Flag",
    "FlagChange",
    "Flags",
    "OpenFeatureProvider",
    "check_env",
    "expired",
    "history",
    "load",
    "parse",
    "parse_value",
    "path_of",
    "payload",
    "read",
    "set_flag",
    "stream_id",
    "validate",
    "values_for",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jackline.flags' has no attribute {name!r}")
    return getattr(importlib.import_module(f"jackline.flags.{module}"), name)
