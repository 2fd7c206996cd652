"""Secrets never reach a stored byte: every string written to the audit log, the handoff or a log
file passes through a `Redactor` first.

The values come from four places: the secret references a run declares (resolved here), any
variable in the harness's own environment whose name says it holds a secret, the tokens this
machine reaches repositories with (`remotes`), and the audit key `JACKLINE_AUDIT_KEY` names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jackline.errors import ConfigError, JacklineError

SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|PRIVATE)", re.I)
MIN_LENGTH = 6  # shorter values are too likely to be ordinary words or numbers


def resolve(ref: str, where: str) -> str:
    """Resolve `env:NAME` or `file:PATH`; `where` names the config key for the error."""
    scheme, _, rest = ref.partition(":")
    if scheme == "env":
        value = os.environ.get(rest)
        if value is None:
            raise ConfigError(where, [f"secret reference {ref!r}: ${rest} is not set"])
        return value
    if scheme == "file":
        path = Path(rest).expanduser()
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(where, [f"secret reference {ref!r}: {e.strerror}"]) from None
    raise ConfigError(where, [f"{ref!r} is not a secret reference; expected env:NAME or file:PATH"])


def _audit_key() -> dict[str, str]:
    """The audit key `JACKLINE_AUDIT_KEY` names, by that name: the variable holds a reference,
    and what it names (a file, or a variable called anything) is the secret."""
    from jackline.guard import audit  # it redacts with this module: imported when first needed

    try:
        key = audit.configured_key()
    except JacklineError:  # said where the key is used; redacting goes on without it
        return {}
    return {audit.KEY_ENV: key.decode()} if key else {}


class Redactor:
    def __init__(self, secrets: Mapping[str, str]) -> None:
        named = {n: v for n, v in secrets.items() if len(v) >= MIN_LENGTH}
        # Longest first, so a secret that contains another is replaced whole.
        self._pairs = sorted(named.items(), key=lambda p: -len(p[1]))

    @classmethod
    def from_environment(
        cls, extra: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None
    ) -> Redactor:
        from jackline import remotes

        env = os.environ if env is None else env
        found = {n: v for n, v in env.items() if SECRET_NAME.search(n)}
        # The tokens this worker pushes and fetches with, whatever their variables are named.
        found.update(remotes.secret_values())
        found.update(_audit_key())
        found.update(extra or {})
        return cls(found)

    def __call__(self, text: str) -> str:
        for name, value in self._pairs:
            if value in text:
                text = text.replace(value, f"[redacted:{name}]")
        return text

    def deep(self, value: Any) -> Any:
        """Redact every string inside lists and dicts (event payloads)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.deep(v) for v in value]
        return value
