"""Telling the surfaces: a run reached review or merged, a release waits for go, a release was
rolled back. Every configured surface hears it (`[surfaces.slack]`, a `github` forge).

`announce(event, config, data)` is called by the steps that make these things true (the handoff,
the release's waits and rollback). Each surface is a module with `announce(event, config, data)`
(`NOTIFIERS`); one that is not configured does nothing. Announcing is best effort and never
fails a step: a Slack outage must not stop a rollback. What went wrong is returned, and the
caller records it in the audit log.

Events and their data:
    run.awaiting_review   run (as `api.as_json` gives it), handoff (markdown), findings
    run.merged            run
    release.awaiting_go   release (asdict), env
    release.paused        release, env, why
    release.rolled_back   release, reason (production failed its probes; the previous is back)
    release.aborted       release, reason
    release.live          release
    release.failed        release, reason (it never reached production)
"""

from __future__ import annotations

import importlib
from typing import Any

from jackline.config import JacklineConfig

NOTIFIERS = ("jackline.surfaces.slack", "jackline.forge.github")


def announce(event: str, config: JacklineConfig, data: dict[str, Any]) -> list[str]:
    """Tell every configured surface; the problems met (empty when all went well)."""
    problems = []
    for name in NOTIFIERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if not (e.name and name.startswith(e.name)):  # absent from this version: fine
                problems.append(f"{name}: {e}")
            continue
        tell = getattr(module, "announce", None)
        if tell is None:
            continue
        try:
            tell(event, config, data)
        except Exception as e:  # noqa: BLE001 - a surface's outage must not fail the step
            problems.append(f"{name.rsplit('.', 1)[-1]}: {type(e).__name__}: {e}")
    return problems
