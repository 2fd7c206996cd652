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

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jackline.api.access import access_log as access_log
    from jackline.api.access import sign_in as sign_in
    from jackline.api.access import token_create as token_create
    from jackline.api.access import token_revoke as token_revoke
    from jackline.api.access import tokens as tokens
    from jackline.api.attempts import compare as compare
    from jackline.api.attempts import submit_attempts as submit_attempts
    from jackline.api.flags import flags_list as flags_list
    from jackline.api.flags import health as health
    from jackline.api.flags import set_flag as set_flag
    from jackline.api.machine import WorkerState as WorkerState
    from jackline.api.machine import Working as Working
    from jackline.api.machine import check_audit_key as check_audit_key
    from jackline.api.machine import clean as clean
    from jackline.api.machine import github_setup as github_setup
    from jackline.api.machine import osv_update as osv_update
    from jackline.api.machine import pool_clear as pool_clear
    from jackline.api.machine import pool_figures as pool_figures
    from jackline.api.machine import pool_refresh as pool_refresh
    from jackline.api.machine import pool_status as pool_status
    from jackline.api.machine import pool_warm as pool_warm
    from jackline.api.machine import resume as resume
    from jackline.api.machine import start_worker as start_worker
    from jackline.api.machine import team_mode as team_mode
    from jackline.api.machine import waits_for_decision as waits_for_decision
    from jackline.api.machine import work_until_stopped as work_until_stopped
    from jackline.api.machine import worker as worker
    from jackline.api.machine import workers as workers
    from jackline.api.reading import artifact as artifact
    from jackline.api.reading import artifact_names as artifact_names
    from jackline.api.reading import artifact_text as artifact_text
    from jackline.api.reading import as_json as as_json
    from jackline.api.reading import change_text as change_text
    from jackline.api.reading import comments as comments
    from jackline.api.reading import events as events
    from jackline.api.reading import findings as findings
    from jackline.api.reading import follow as follow
    from jackline.api.reading import get as get
    from jackline.api.reading import git_change as git_change
    from jackline.api.reading import handoff_record as handoff_record
    from jackline.api.reading import handoff_text as handoff_text
    from jackline.api.reading import round_change as round_change
    from jackline.api.reading import rounds as rounds
    from jackline.api.reading import run_choices as run_choices
    from jackline.api.reading import run_tally as run_tally
    from jackline.api.reading import runs as runs
    from jackline.api.reading import short_ids as short_ids
    from jackline.api.reading import shown as shown
    from jackline.api.reading import verify as verify
    from jackline.api.reading import waiting_for as waiting_for
    from jackline.api.releasing import abort as abort
    from jackline.api.releasing import go as go
    from jackline.api.releasing import go_refusal as go_refusal
    from jackline.api.releasing import live as live
    from jackline.api.releasing import release as release
    from jackline.api.releasing import release_as_json as release_as_json
    from jackline.api.releasing import release_carries as release_carries
    from jackline.api.releasing import release_events as release_events
    from jackline.api.releasing import release_figures as release_figures
    from jackline.api.releasing import release_get as release_get
    from jackline.api.releasing import release_probes as release_probes
    from jackline.api.releasing import releases as releases
    from jackline.api.releasing import rollback as rollback
    from jackline.api.review import CANCELLABLE as CANCELLABLE
    from jackline.api.review import accept as accept
    from jackline.api.review import acceptance_refusals as acceptance_refusals
    from jackline.api.review import approve as approve
    from jackline.api.review import cancel as cancel
    from jackline.api.review import comment as comment
    from jackline.api.review import refusals as refusals
    from jackline.api.review import reject as reject
    from jackline.api.review import request_changes as request_changes
    from jackline.api.submission import RETRIED as RETRIED
    from jackline.api.submission import record_claim as record_claim
    from jackline.api.submission import recorded_config as recorded_config
    from jackline.api.submission import retry as retry
    from jackline.api.submission import submit as submit
    from jackline.api.submission import validate as validate
    from jackline.api.submission import who as who

# Each verb's module is imported when the verb is first used, not with the package: a command
# that reads a run does not pay for the engine, the scans or the config's models (the CLI's
# start is the sum of what it imports).
_WHERE = {
    "CANCELLABLE": "jackline.api.review",
    "WorkerState": "jackline.api.machine",
    "Working": "jackline.api.machine",
    "abort": "jackline.api.releasing",
    "accept": "jackline.api.review",
    "acceptance_refusals": "jackline.api.review",
    "access_log": "jackline.api.access",
    "approve": "jackline.api.review",
    "artifact": "jackline.api.reading",
    "artifact_names": "jackline.api.reading",
    "artifact_text": "jackline.api.reading",
    "as_json": "jackline.api.reading",
    "cancel": "jackline.api.review",
    "change_text": "jackline.api.reading",
    "check_audit_key": "jackline.api.machine",
    "comment": "jackline.api.review",
    "comments": "jackline.api.reading",
    "clean": "jackline.api.machine",
    "compare": "jackline.api.attempts",
    "events": "jackline.api.reading",
    "findings": "jackline.api.reading",
    "flags_list": "jackline.api.flags",
    "follow": "jackline.api.reading",
    "get": "jackline.api.reading",
    "git_change": "jackline.api.reading",
    "github_setup": "jackline.api.machine",
    "go": "jackline.api.releasing",
    "go_refusal": "jackline.api.releasing",
    "handoff_record": "jackline.api.reading",
    "handoff_text": "jackline.api.reading",
    "health": "jackline.api.flags",
    "live": "jackline.api.releasing",
    "osv_update": "jackline.api.machine",
    "pool_clear": "jackline.api.machine",
    "pool_figures": "jackline.api.machine",
    "pool_refresh": "jackline.api.machine",
    "pool_status": "jackline.api.machine",
    "pool_warm": "jackline.api.machine",
    "record_claim": "jackline.api.submission",
    "recorded_config": "jackline.api.submission",
    "refusals": "jackline.api.review",
    "reject": "jackline.api.review",
    "release": "jackline.api.releasing",
    "release_as_json": "jackline.api.releasing",
    "release_carries": "jackline.api.releasing",
    "release_events": "jackline.api.releasing",
    "release_figures": "jackline.api.releasing",
    "release_get": "jackline.api.releasing",
    "release_probes": "jackline.api.releasing",
    "releases": "jackline.api.releasing",
    "request_changes": "jackline.api.review",
    "resume": "jackline.api.machine",
    "RETRIED": "jackline.api.submission",
    "retry": "jackline.api.submission",
    "rollback": "jackline.api.releasing",
    "round_change": "jackline.api.reading",
    "rounds": "jackline.api.reading",
    "run_choices": "jackline.api.reading",
    "run_tally": "jackline.api.reading",
    "runs": "jackline.api.reading",
    "set_flag": "jackline.api.flags",
    "short_ids": "jackline.api.reading",
    "shown": "jackline.api.reading",
    "sign_in": "jackline.api.access",
    "start_worker": "jackline.api.machine",
    "submit": "jackline.api.submission",
    "submit_attempts": "jackline.api.attempts",
    "team_mode": "jackline.api.machine",
    "token_create": "jackline.api.access",
    "token_revoke": "jackline.api.access",
    "tokens": "jackline.api.access",
    "validate": "jackline.api.submission",
    "verify": "jackline.api.reading",
    "waiting_for": "jackline.api.reading",
    "waits_for_decision": "jackline.api.machine",
    "who": "jackline.api.submission",
    "work_until_stopped": "jackline.api.machine",
    "worker": "jackline.api.machine",
    "workers": "jackline.api.machine",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'jackline.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found here from now on, without this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = [
    "CANCELLABLE",
    "WorkerState",
    "Working",
    "abort",
    "accept",
    "acceptance_refusals",
    "access_log",
    "approve",
    "artifact",
    "artifact_names",
    "artifact_text",
    "as_json",
    "cancel",
    "change_text",
    "check_audit_key",
    "comment",
    "comments",
    "clean",
    "compare",
    "events",
    "findings",
    "flags_list",
    "follow",
    "get",
    "git_change",
    "github_setup",
    "go",
    "go_refusal",
    "handoff_record",
    "handoff_text",
    "health",
    "live",
    "osv_update",
    "pool_clear",
    "pool_figures",
    "pool_refresh",
    "pool_status",
    "pool_warm",
    "record_claim",
    "recorded_config",
    "refusals",
    "reject",
    "release",
    "release_as_json",
    "release_carries",
    "release_events",
    "release_figures",
    "release_get",
    "release_probes",
    "releases",
    "request_changes",
    "resume",
    "RETRIED",
    "retry",
    "rollback",
    "round_change",
    "rounds",
    "run_choices",
    "run_tally",
    "runs",
    "set_flag",
    "short_ids",
    "shown",
    "sign_in",
    "start_worker",
    "submit",
    "submit_attempts",
    "team_mode",
    "token_create",
    "token_revoke",
    "tokens",
    "validate",
    "verify",
    "waiting_for",
    "waits_for_decision",
    "who",
    "work_until_stopped",
    "worker",
    "workers",
]
