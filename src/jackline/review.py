"""Who may decide: the rules every surface and the merge step apply to a decision."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jackline.events import Kind
from jackline.guard.audit import Event
from jackline.models import Acceptance, Finding, Run, Status, from_json

if TYPE_CHECKING:  # reading a run's findings (`jackline runs`, `show`) loads no config model
    from jackline import config as cfg


def open_blocking(run: Run) -> int:
    """The block-level findings of the run's latest scan that no owner has accepted on its
    head (the scan of a new round clears the acceptances: each holds for the head it was made
    on). A run scanned before findings had ids has none accepted."""
    return max(0, run.blocking - len(set(run.block_ids) & set(run.accepted)))


def waiting_for(run: Run, owners: tuple[str, ...], unreleased: frozenset[str] | None) -> str:
    """Who must act next on `run`, in a few words ("" for nobody: it works, or it ended):
    `owners`, the project's owners where its open block-level findings need one; `unreleased`,
    main's commits production does not serve yet (None where nothing is released)."""
    if run.status == Status.AWAITING_REVIEW and open_blocking(run):
        return f"an owner: {', '.join(owners)}" if owners else "an owner"
    if run.status == Status.MERGED:
        live = unreleased is None or (run.merge_sha or "") not in unreleased
        return "" if live else "a releaser: release it"
    return WAITS.get(run.status, "")


WAITS = {
    Status.AWAITING_REVIEW: "a reviewer",
    Status.BLOCKED: "a reviewer: request changes or reject",
    Status.INTERRUPTED: "an operator: resume or cancel",
    Status.QUEUED: "a worker",
}
"""Who a run of each status waits for, where nothing else says (a status not here: nobody)."""


def owners_named(config: cfg.JacklineConfig) -> str:
    owners = ", ".join(config.review.owners)
    return f"one of the owners ({owners})" if owners else "an owner, and [review] owners names none"


def owner_refusal(run: Run, config: cfg.JacklineConfig, by: str) -> str | None:
    """Why `by` may not approve `run`, if a block-level finding no owner has accepted needs an
    owner they are not. Where an owner accepted each one (`jackline accept`), the owner has
    decided on the findings, and the approval is any reviewer's (still another person's)."""
    left = open_blocking(run)
    if not left or by in config.review.owners:
        return None
    return (
        f"{run.id} has {left} block-level finding{'s' if left != 1 else ''} no owner has "
        f"accepted on its head; {by} is not an owner: approval needs {owners_named(config)}, "
        f"or an owner's `jackline accept {run.id} FINDING -m REASON` for each"
    )


def acceptance_refusal(
    run: Run, config: cfg.JacklineConfig, by: str, finding: Finding
) -> str | None:
    """Why `by` may not accept `finding` of `run`: a secret is never accepted; the submitter
    accepts nothing on their own run where they could not approve it; a block-level finding
    is an owner's to accept (a warn, anyone's who may review)."""
    if finding.rule.startswith("secret.") and finding.level == "block":
        return (
            f"finding {finding.id} of {run.id} is a secret in the change, and a secret in the "
            f"change is never accepted nor approved: send the run back (`jackline "
            f"request-changes {run.id} -m TEXT`) or reject it"
        )
    if by == run.submitted_by and not config.review.allow_self_approval:
        return (
            f"{by} submitted {run.id} and cannot accept its findings; another person must "
            "(or set [review] allow_self_approval = true)"
        )
    if finding.level == "block" and by not in config.review.owners:
        return (
            f"finding {finding.id} ({finding.rule}) of {run.id} is block-level; {by} is not an "
            f"owner: accepting it needs {owners_named(config)}"
        )
    return None


def in_force(found: list[Event]) -> list[Acceptance]:
    """The acceptances made since the run's latest scan: each was made on the head that scan
    judged (`Store.accept_finding` takes none once the run has moved), and a new round's scan
    leaves the ones before it behind."""
    return [a for a, now in _acceptances(found) if now]


def accepted_before(found: list[Event]) -> list[Acceptance]:
    """Acceptances made on an earlier round's head: they no longer hold."""
    return [a for a, now in _acceptances(found) if not now]


def _acceptances(found: list[Event]) -> list[tuple[Acceptance, bool]]:
    since = max((e.seq for e in found if e.kind == Kind.SCAN), default=0)
    return [
        (from_json(Acceptance, {**e.data, "run": e.run_id}), e.seq > since)
        for e in found
        if e.kind == Kind.ACCEPTED
    ]
