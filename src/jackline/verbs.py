"""The verbs a person uses on runs, reviews, releases and flags, written once.

Two things implement them: `jackline.api` (this machine's database and engine) and
`jackline.client.RemoteAPI` (a `jackline serve` over HTTP, for `--server`). Both answer with the
same records, so a surface renders an answer the same way wherever it came from. mypy checks
both against this protocol where the CLI picks one (`jackline.cli`): a verb whose signature
drifts in either is a type error there, not a runtime surprise under `--server`.

What works only on this machine's files or engine (the pool, init, the demo, the worker, tokens)
is not a verb here: those commands call `jackline.api` themselves and are refused with --server.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from jackline.models import Acceptance, Origin, Probe, Release, Run

if TYPE_CHECKING:
    from jackline.guard.audit import Event, Verdict
    from jackline.health import Report
    from jackline.release.carried import Carrying

OnEvent = Callable[[str, "Event"], None]
"""Told each event of a run or release as it happens: (run or release id, event)."""


class Verbs(Protocol):
    # runs ---------------------------------------------------------------------------------
    def submit(
        self,
        task: str,
        repo: Path | str,
        agent: str | None = None,
        blueprint: str | None = None,
        by: str | None = None,
        wait: bool = True,
        on_event: OnEvent | None = None,
        follow_up: str | None = None,
        origin: Origin = Origin.AUTOMATIC,
        priority: int = 0,
    ) -> Run: ...
    def submit_attempts(
        self,
        task: str,
        repo: Path | str,
        agents: list[str],
        attempts: int = 1,
        blueprint: str | None = None,
        by: str | None = None,
        wait: bool = True,
        on_event: OnEvent | None = None,
        origin: Origin = Origin.AUTOMATIC,
        priority: int = 0,
    ) -> list[Run]: ...
    def retry(
        self,
        run_id: str,
        agent: str | None = None,
        message: str = "",
        by: str | None = None,
        wait: bool = True,
        on_event: OnEvent | None = None,
    ) -> Run: ...
    def runs(
        self,
        status: str | None = None,
        limit: int = 100,
        *,
        agent: str | None = None,
        by: str | None = None,
        repo: str | None = None,
    ) -> list[Run]: ...
    def short_ids(self, run_ids: list[str]) -> dict[str, str]: ...
    def get(self, run_id: str) -> Run: ...
    def events(self, run_id: str, after: int = 0) -> list[Event]: ...
    def follow(self, run_id: str) -> Callable[[], list[Event]]: ...
    def verify(self, run_id: str) -> Verdict: ...
    def rounds(self, run_id: str) -> list[dict[str, Any]]: ...
    def findings(self, run_id: str) -> list[dict[str, Any]]: ...
    def handoff_text(self, run: Run) -> str | None: ...
    def artifact_names(self, record_id: str) -> list[str]: ...
    def artifact_text(self, record_id: str, name: str) -> str | None: ...

    # review -------------------------------------------------------------------------------
    def approve(
        self,
        run_id: str,
        by: str | None = None,
        message: str = "",
        on_event: OnEvent | None = None,
        claimed: str | None = None,
    ) -> Run: ...
    def request_changes(
        self,
        run_id: str,
        message: str,
        by: str | None = None,
        on_event: OnEvent | None = None,
        claimed: str | None = None,
    ) -> Run: ...
    def reject(
        self,
        run_id: str,
        by: str | None = None,
        message: str = "",
        on_event: OnEvent | None = None,
        claimed: str | None = None,
    ) -> Run: ...
    def cancel(
        self, run_id: str, by: str | None = None, message: str = "", claimed: str | None = None
    ) -> Run: ...
    def accept(
        self,
        run_id: str,
        finding: str,
        reason: str,
        by: str | None = None,
        claimed: str | None = None,
    ) -> Acceptance: ...

    # releases -----------------------------------------------------------------------------
    def release(
        self,
        repo: Path,
        sha: str | None = None,
        by: str | None = None,
        force: str | None = None,
        on_event: OnEvent | None = None,
        claimed: str | None = None,
    ) -> Release: ...
    def releases(self, repo: Path | None = None, limit: int = 100) -> list[Release]: ...
    def release_figures(self, repo: Path | None = None) -> list[dict[str, Any]]: ...
    def release_get(self, release_id: str) -> Release: ...
    def release_probes(self, release_id: str) -> list[Probe]: ...
    def release_carries(self, release_id: str) -> Carrying: ...
    def release_as_json(self, rel: Release, detail: bool = False) -> dict[str, Any]: ...
    def go(
        self,
        release_id: str,
        by: str | None = None,
        on_event: OnEvent | None = None,
        claimed: str | None = None,
    ) -> Release: ...
    def abort(
        self,
        release_id: str,
        by: str | None = None,
        on_event: OnEvent | None = None,
        claimed: str | None = None,
    ) -> Release: ...
    def rollback(
        self,
        repo: Path,
        to: str | None = None,
        by: str | None = None,
        on_event: OnEvent | None = None,
        claimed: str | None = None,
    ) -> Release: ...

    # flags, health ------------------------------------------------------------------------
    def flags_list(self, repo: Path, env: str | None = None) -> dict[str, Any]: ...
    def set_flag(
        self,
        repo: Path,
        name: str,
        value: str,
        env: str,
        by: str | None = None,
        claimed: str | None = None,
    ) -> dict[str, Any]: ...
    def health(self, repo: Path) -> Report: ...
