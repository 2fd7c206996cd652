"""Telling the surfaces: a run reached review or merged, a release waits for go, a release was
rolled back. Every configured surface hears it (`[surfaces.slack]`, a `github` forge).

`announce(event, config, data)` is called by the steps that make these things true (the handoff,
the release's waits and rollback). The core names no surface: a process that drives runs (the
CLI, the server) registers the ones it ships when it starts (`register`, from
`jackline.surfaces.register_notifiers`), each as a factory that gives its
`announce(event, config, data)`, so a surface's module is imported only when there is news. One
that is not configured does nothing. Announcing is best effort and never
fails a step: a Slack outage must not stop a rollback. What went wrong is returned, and the
caller records it in the audit log.

Events and their data:
    run.round             run (asdict), round (its number): an agent round starts
    run.ci                run, head: waiting for GitHub's checks on the published head
    run.awaiting_review   run, handoff (markdown), record (the handoff's JSON:
                          `handoff.Handoff.from_json` reads it)
    run.merged            run, handoff, record
    run.failed, run.blocked, run.over_budget, run.cancelled
                          run, handoff, record: the run stopped short of review
    run.rejected          run, by, reason
    run.accepted          run, acceptance (a `models.Acceptance`'s JSON), handoff and record
                          (the handoff written again with it; None where the run has none)
    release.awaiting_go   release (asdict), env
    release.paused        release, env, why
    release.rolled_back   release, reason (production failed its probes; the previous is back)
    release.aborted       release, reason
    release.live          release
    release.failed        release, reason (it never reached production)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jackline.config import JacklineConfig

Announce = Callable[[str, "JacklineConfig", dict[str, Any]], None]
Wanted = Callable[["JacklineConfig"], bool]
_NOTIFIERS: dict[str, tuple[Wanted, Callable[[], Announce]]] = {}


def register(name: str, wanted: Wanted, factory: Callable[[], Announce]) -> None:
    """Tell `name` of every announcement from now on in this process (again: replaced), for a
    project whose config `wanted` says uses it: only then is `factory` called (a surface's
    module, such as Slack's SDK, costs a few tenths of a second to import)."""
    _NOTIFIERS[name] = (wanted, factory)


def announce(event: str, config: JacklineConfig, data: dict[str, Any]) -> list[str]:
    """Tell every registered surface; the problems met (empty when all went well)."""
    problems = []
    for name, (wanted, factory) in _NOTIFIERS.items():
        try:
            if wanted(config):
                factory()(event, config, data)
        except Exception as e:  # noqa: BLE001 - a surface's outage must not fail the step
            problems.append(f"{name}: {type(e).__name__}: {e}")
    return problems
