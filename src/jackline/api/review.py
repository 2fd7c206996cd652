"""A person's decisions on a run: approve, request changes, reject, cancel."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from jackline import auth
from jackline import config as cfg
from jackline.errors import Interrupted, Refused
from jackline.events import Kind
from jackline.forge import local as forge
from jackline.guard.audit import AuditLog
from jackline.guard.redact import Redactor
from jackline.models import (
    DECIDING,
    FINAL,
    Decision,
    Run,
    Status,
)
from jackline.review import owner_refusal
from jackline.store import Store
from jackline.verbs import OnEvent

if TYPE_CHECKING:
    pass


from jackline.api.machine import waits_for_decision
from jackline.api.reading import findings, get, shown
from jackline.api.submission import recorded_config, who


def approve(
    run_id: str,
    by: str | None = None,
    message: str = "",
    on_event: OnEvent | None = None,
    claimed: str | None = None,
    head: str | None = None,
) -> Run:
    """`head`, where a surface knows it, is the commit the person saw (`_on_head`)."""
    run, config = _reviewable(run_id, "approve")
    person = who(config, by, claimed)
    by = person.name
    _on_head(run, head, "approve", by)
    if by == run.submitted_by and not config.review.allow_self_approval:
        raise Refused(
            f"{by} submitted {run.id} and cannot approve it; another person must "
            "(or set [review] allow_self_approval = true)"
        )
    refusal = owner_refusal(run, config, by)
    if refusal:
        blocking = [f for f in findings(run.id) if f["level"] == "block"]
        listed = "; ".join(
            f"{f['rule']} {f.get('file') or ''}{':' + str(f['line']) if f.get('line') else ''}".strip()
            for f in blocking[:5]
        )
        raise Refused(f"{refusal} (findings: {listed})" if listed else refusal)
    with forge.landing(Path(run.repo)):  # a landing under way is no uncommitted change
        refusal = forge.landing_refusal(Path(run.repo), config.project.main)
    if refusal:
        raise Refused(f"cannot merge {run.id}: {refusal}")
    return _decide(run, _decision("approve", person, message), on_event)


def request_changes(
    run_id: str,
    message: str,
    by: str | None = None,
    on_event: OnEvent | None = None,
    claimed: str | None = None,
    head: str | None = None,
) -> Run:
    if not message.strip():
        raise Refused("say what should change: -m TEXT is the agent's feedback")
    run, config = _reviewable(run_id, "request_changes")
    person = who(config, by, claimed)
    _on_head(run, head, "request_changes", person.name)
    return _decide(run, _decision("request_changes", person, message), on_event)


def reject(
    run_id: str,
    by: str | None = None,
    message: str = "",
    on_event: OnEvent | None = None,
    claimed: str | None = None,
    head: str | None = None,
) -> Run:
    run, config = _reviewable(run_id, "reject")
    person = who(config, by, claimed)
    _on_head(run, head, "reject", person.name)
    return _decide(run, _decision("reject", person, message), on_event)


def _reviewable(run_id: str, kind: str) -> tuple[Run, cfg.JacklineConfig]:
    store = Store()
    run = store.get_run(run_id)
    if run.status == Status.BLOCKED and kind == "approve":
        raise Refused(
            f"{run.id} is blocked: its change holds a secret, and a blocked run is never "
            f"approved. Send it back (`jackline request-changes {run.id} -m TEXT`: the agent is "
            f"told where the secret is) or close it (`jackline reject {run.id}`)"
        )
    if run.status not in DECIDING:
        raise Refused(f"{run.id} is {run.status}; only a run awaiting review takes a decision")
    if run.status == Status.BLOCKED and not waits_for_decision(run.id):
        raise Refused(
            f"{run.id} was blocked by an older Jackline, whose blocked runs ended there and take "
            f"no decision; `jackline clean {run.id}` removes its workspace"
        )
    # The rules of this decision (owners, self-approval, allow_as) are the config the run
    # recorded: one the chain no longer vouches for is not believed.
    verdict = AuditLog(store, Redactor({})).verify(run.id)
    if verdict.state == "broken":
        raise Refused(f"{run.id}: no decision on a run whose audit log is {verdict.render()}")
    return run, recorded_config(store, run.id)


def _on_head(run: Run, head: str | None, kind: str, by: str) -> None:
    """A decision counts for the head the person saw: a round published since (a GitHub
    approval replayed under a new delivery id, a page left open while the run moved on) is not
    what they decided on. The refusal is recorded in the run's log with its reason. `head` is
    None where the surface shows the run as it is now (the CLI); "" for a decision made before
    any round was published."""
    if head is None or head == (run.head_sha or ""):
        return
    reason = (
        f"{by}'s {kind.replace('_', ' ')} was made on {head[:10] or 'no published round'}; "
        f"{run.id} is now at {(run.head_sha or 'no commit')[:10]}: decide on what it shows now"
    )
    AuditLog(Store(), Redactor({})).record(
        run.id, Kind.DECISION_REFUSED, decision=kind, by=by, head=head, reason=reason
    )
    raise Refused(reason)


def _decision(
    kind: Literal["approve", "request_changes", "reject"], person: auth.Identity, message: str
) -> Decision:
    return Decision(kind, person.name, message, claimed_by_os_user=person.claimed_by)


def _decide(run: Run, decision: Decision, on_event: OnEvent | None) -> Run:
    from jackline import engine

    taken = engine.decide(run.id, decision)
    try:
        engine.drive([run.id], on_event, after_decision=taken)
    except KeyboardInterrupt:
        raise Interrupted([run.id]) from None
    return get(run.id)


CANCELLABLE = frozenset({Status.QUEUED, Status.RUNNING}) | DECIDING
"""A run that has not ended and is not landing: half a merge is no state to leave main in."""


def cancel(
    run_id: str, by: str | None = None, message: str = "", claimed: str | None = None
) -> Run:
    """End a run that is queued, running (or interrupted) or waiting for a decision, for good:
    who cancels it is recorded first (`by`: see `who`); its workflow is cancelled, so no step
    of it starts again in any process and nothing resumes it; its agent's process group is
    killed; its workspace is kept, its services stopped, and the handoff says cancelled."""
    from jackline import engine, steps

    store = Store()
    run = store.get_run(run_id)
    if run.status in FINAL:
        raise Refused(f"{run.id} is {run.status}; there is nothing to cancel")
    if run.status not in CANCELLABLE:
        raise Refused(
            f"{run.id} is {run.status}: a landing is not stopped half way; it rests by itself "
            f"(or `jackline resume {run.id}` if it was interrupted)"
        )
    person = who(recorded_config(store, run.id), by, claimed)
    AuditLog(store, Redactor.from_environment()).record(
        run.id, Kind.CANCELLED, **person.record(), message=message, was=shown(run).status
    )
    engine.cancel(run.id)
    reason = f"cancelled by {person.name}" + (f": {message.strip()}" if message.strip() else "")
    steps.cancel(run.id, reason)
    return get(run.id)
