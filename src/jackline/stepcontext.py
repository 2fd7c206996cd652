"""What every durable step loads about the run or release it works on, in whichever process runs
it: the record, fresh from the store; the config as it was recorded when the run or release
started (never the working tree's now); redaction of the secrets that config names; the audit
stream. `steps.context.RunContext` and `release.steps.ReleaseContext` add their own parts."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from jackline import config as cfg
from jackline import sandbox
from jackline.errors import ConfigError
from jackline.events import Kind
from jackline.guard.audit import AuditLog
from jackline.guard.redact import Redactor, resolve
from jackline.models import Release, Run
from jackline.store import Store

R = TypeVar("R", Run, Release)

SecretRef = tuple[str, str, str]
"""A secret a config names: (its name, its reference, where the config says so)."""


class StepContext(Generic[R]):
    """One step's view of its run or release; the record's id is also its audit stream's."""

    started: ClassVar[Kind]
    """The event that recorded the config when the run or release started."""

    def __init__(self, record_id: str, store: Store | None = None) -> None:
        self.store = store or Store()
        self.current: R = self._load(record_id)
        recorded = self.store.events(self.current.id, kind=self.started)
        self.config = cfg.from_record(json.loads(recorded[0].data)["config"])
        self.redact = self._redactor()
        self.audit = AuditLog(self.store, self.redact)

    def _load(self, record_id: str) -> R:
        raise NotImplementedError

    def _save(self, **changes: Any) -> R:
        raise NotImplementedError

    def _secret_refs(self) -> Iterable[SecretRef]:
        raise NotImplementedError

    @property
    def dir(self) -> Path:
        """The harness's own folder for this run or release (logs, the inbox)."""
        raise NotImplementedError

    def update(self, **changes: Any) -> None:
        self.current = self._save(**changes)

    def record(self, kind: Kind, /, **data: Any) -> dict[str, Any]:
        """Append an event to the audit stream; its data as written (redacted)."""
        return self.audit.record(self.current.id, kind, **data)

    def _redactor(self) -> Redactor:
        return Redactor.from_environment(self._secrets(strict=False))

    def _secrets(self, strict: bool, refs: Iterable[SecretRef] | None = None) -> dict[str, str]:
        """The values the config's secret references resolve to; with `strict`, one that does
        not resolve is an error (a command needs it), else it is left out (redaction)."""
        out = {}
        for name, ref, where in self._secret_refs() if refs is None else refs:
            try:
                out[name] = resolve(ref, where)
            except ConfigError:
                if strict:
                    raise
        return out

    def scrubbed_env(self) -> dict[str, str]:
        """The harness's environment cut down to an allowlist (`[sandbox] env` adds names)."""
        return sandbox.scrub(os.environ, self.config.sandbox.env)
