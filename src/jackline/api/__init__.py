"""The verbs. Every surface (the CLI, the web, Slack, MCP) parses its input, calls one function
here, and renders the answer. Policy lives here and below, never in a surface.

One module a group of verbs: `submission` (who asks, the config, a run's record and workflow),
`reading` (runs, events, handoffs), `review` (decisions on a run, accepting a finding, cancel), `machine` (clean,
the worker, the warm pool, resume), `flags` (and health), `releasing`, `access` (tokens). No
module is named as a verb is: `jackline.api.submit` is the verb. This package is the `Verbs`
protocol's local implementation (`jackline.verbs`); the remote client is the other.

The engine (and with it DBOS) is imported only by the verbs that drive a workflow, so reading
runs stays fast and works without the engine.
"""

from __future__ import annotations

from jackline.api.access import token_create, token_revoke, tokens
from jackline.api.attempts import compare, submit_attempts
from jackline.api.flags import flags_list, health, set_flag
from jackline.api.machine import (
    WorkerState,
    Working,
    check_audit_key,
    clean,
    osv_update,
    pool_clear,
    pool_refresh,
    pool_status,
    pool_warm,
    resume,
    start_worker,
    team_mode,
    waits_for_decision,
    work_until_stopped,
    worker,
    workers,
)
from jackline.api.reading import (
    artifact,
    artifact_names,
    artifact_text,
    as_json,
    change_text,
    events,
    findings,
    follow,
    get,
    handoff_text,
    rounds,
    runs,
    short_ids,
    shown,
    verify,
)
from jackline.api.releasing import (
    abort,
    go,
    live,
    release,
    release_as_json,
    release_events,
    release_figures,
    release_get,
    release_probes,
    releases,
    rollback,
)
from jackline.api.review import CANCELLABLE, accept, approve, cancel, reject, request_changes
from jackline.api.submission import record_claim, recorded_config, submit, validate, who

__all__ = [
    "CANCELLABLE",
    "WorkerState",
    "Working",
    "abort",
    "accept",
    "approve",
    "artifact",
    "artifact_names",
    "artifact_text",
    "as_json",
    "cancel",
    "change_text",
    "check_audit_key",
    "clean",
    "compare",
    "events",
    "findings",
    "flags_list",
    "follow",
    "get",
    "go",
    "handoff_text",
    "health",
    "live",
    "osv_update",
    "pool_clear",
    "pool_refresh",
    "pool_status",
    "pool_warm",
    "record_claim",
    "recorded_config",
    "reject",
    "release",
    "release_as_json",
    "release_events",
    "release_figures",
    "release_get",
    "release_probes",
    "releases",
    "request_changes",
    "resume",
    "rollback",
    "rounds",
    "runs",
    "set_flag",
    "short_ids",
    "shown",
    "start_worker",
    "submit",
    "submit_attempts",
    "team_mode",
    "token_create",
    "token_revoke",
    "tokens",
    "validate",
    "verify",
    "waits_for_decision",
    "who",
    "work_until_stopped",
    "worker",
    "workers",
]
