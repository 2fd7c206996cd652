"""The records that flow between the parts: small, frozen, serialisable with `asdict`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# A run moves queued -> running -> awaiting_review -> merging | rejecting -> merged | rejected,
# or ends failed (the checks still fail) or blocked (a secret in the change: nothing committed);
# request-changes sends it from awaiting_review back to running.
RESTING: frozenset[str] = frozenset({"awaiting_review", "failed", "blocked", "merged", "rejected"})
FINAL: frozenset[str] = frozenset({"failed", "blocked", "merged", "rejected"})


@dataclass(frozen=True)
class Failure:
    """One thing a check found wrong, precise enough to act on."""

    check: str
    message: str
    file: str | None = None
    line: int | None = None
    rule: str | None = None
    test: str | None = None

    def where(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        return self.file or ""


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    exit_code: int
    duration: float
    command: str
    failures: tuple[Failure, ...] = ()
    output_tail: str = ""
    summary: str = ""


@dataclass(frozen=True)
class AgentResult:
    exit_code: int
    duration: float
    output_tail: str
    timed_out: bool = False


@dataclass(frozen=True)
class Finding:
    """What a scan or the guard found in the change: which rule, how serious, where, and why a
    reviewer should care. `quote` holds the code in question (removed code, or a masked secret)."""

    rule: str
    level: Literal["block", "warn", "info"]
    message: str
    file: str | None = None
    line: int | None = None
    why: str = ""
    quote: str = ""


@dataclass(frozen=True)
class Decision:
    kind: Literal["approve", "request_changes", "reject"]
    by: str
    message: str = ""


@dataclass(frozen=True)
class Run:
    id: str
    task: str
    repo: str
    agent: str
    blueprint: str
    status: str
    branch: str
    submitted_by: str
    created_at: float
    updated_at: float
    rounds: int = 0
    base_sha: str | None = None
    head_sha: str | None = None
    merge_sha: str | None = None
    workspace: str | None = None
    handoff: str | None = None
    reason: str = ""
    paths: tuple[str, ...] = field(default_factory=tuple)
    blocking: int = 0
    """Block-level findings of the latest scan: approval needs an owner."""
    warnings: int = 0
    """Warn-level findings of the latest scan."""
