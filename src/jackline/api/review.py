"""A person's decisions on a run: approve, request changes, reject, cancel; accept a finding."""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ulid import ULID

from jackline import artifacts, auth, diffs, forge, handoff, notify, paths
from jackline import config as cfg
from jackline.errors import Invalid, NotFound, Refused, WrongState
from jackline.events import Kind
from jackline.guard.audit import AuditLog
from jackline.guard.redact import Redactor
from jackline.models import (
    DECIDING,
    FINAL,
    Acceptance,
    Comment,
    Decision,
    Finding,
    Run,
    Status,
    from_json,
)
from jackline.review import (
    acceptance_refusal,
    accepted_before,
    in_force,
    open_blocking,
    owner_refusal,
)
from jackline.store import Store
from jackline.verbs import OnEvent

if TYPE_CHECKING:
    pass


from jackline.api.machine import waits_for_decision
from jackline.api.reading import change_text, events, findings, get, shown
from jackline.api.submission import following_stopped, recorded_config, who


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
    refusal = approval_refusal(run, config, by)
    if refusal:
        raise Refused(refusal)
    refusal = landing_refusal(run, config)
    if refusal:
        raise Refused(refusal)
    done = _decide(run, _decision("approve", person, message), on_event)
    if done.attempts and done.status == Status.MERGED:
        from jackline.api.attempts import close_others

        close_others(done, by)
    return done


def request_changes(
    run_id: str,
    message: str,
    by: str | None = None,
    on_event: OnEvent | None = None,
    claimed: str | None = None,
    head: str | None = None,
) -> Run:
    """The comments on lines made on the run's head go to the agent with `message`
    (`steps.changes_requested`): with some, the message may be empty."""
    run, config = _reviewable(run_id, "request_changes")
    if not message.strip() and not _on_this_head(run):
        raise Invalid("say what should change: -m TEXT is the agent's feedback")
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
    if run.status in ENDED:
        return _reject_ended(run, _decision("reject", person, message))
    return _decide(run, _decision("reject", person, message), on_event)


ENDED = frozenset({Status.FAILED, Status.OVER_BUDGET})
"""Runs whose workflow has ended short of review: rejecting one closes it for good here."""


def _reject_ended(run: Run, decision: Decision) -> Run:
    """Close a failed or over-budget run for good: its workflow has ended, so the rejection's
    steps (the decision recorded, the surfaces told: a pull request is closed with the reason,
    the workspace removed, `rejected`) run here, once, as `cancel`'s do: the status moves from
    failed to rejecting in one statement first, so of two rejections at once one acts. The
    reason says how the run had ended."""
    from jackline import steps

    if not Store().move_run(run.id, ENDED, Status.REJECTING):
        raise WrongState(f"{run.id} is {get(run.id).status} now; it was rejected or moved on")
    steps.record_decision(run.id, decision)
    had = f"it had {run.status}" + (f": {run.reason}" if run.reason else "")
    said = decision.message.strip()
    steps.reject(run.id, replace(decision, message=f"{said} ({had})" if said else had))
    return get(run.id)


def comment(
    run_id: str,
    file: str,
    side: Literal["old", "new"],
    line: int,
    text: str,
    by: str | None = None,
    claimed: str | None = None,
    head: str | None = None,
) -> Comment:
    """Comment on one line of a run awaiting review: a line the change shows (`side` says
    which numbering), on the head the person saw (`head`, as for `approve`). Kept, and recorded
    in the run's audit log; the next request for changes on this head hands it to the agent."""
    store = Store()
    run = store.get_run(run_id)
    if run.status != Status.AWAITING_REVIEW:
        raise WrongState(
            f"{run.id} is {shown(run).status}; lines are commented on while it awaits review"
        )
    if head is not None and head != (run.head_sha or ""):
        raise WrongState(
            f"the comment was made on {head[:10] or 'no commit'}; {run.id} is now at "
            f"{(run.head_sha or 'no commit')[:10]}: comment on what it shows now"
        )
    if not text.strip():
        raise Invalid("say something: the comment's text is empty")
    _check_line(run, file, side, line)
    person = who(_rules_of(store, run), by, claimed)
    redact = Redactor.from_environment()
    said = redact(text.strip())
    made = Comment(
        str(ULID()), run.id, file, side, line, said, person.name, run.head_sha or "",
        run.rounds, time.time(),
    )  # fmt: skip
    store.add_comment(made)
    AuditLog(store, redact).record(
        run.id, Kind.COMMENT, id=made.id, file=file, side=side, line=line, text=said,
        by=person.name, **_claim(person), head=made.head, round=made.round,
    )  # fmt: skip
    return made


def _claim(person: auth.Identity) -> dict[str, str]:
    return {"claimed_by_os_user": person.claimed_by} if person.claimed_by else {}


def _check_line(run: Run, file: str, side: Literal["old", "new"], line: int) -> None:
    """The line must be one the run's change shows: a comment elsewhere names nothing the
    reviewer saw, nor anything the agent can find."""
    text = change_text(run)
    try:
        change = diffs.parse(text) if text is not None else None
    except diffs.Unreadable:
        change = None
    if change is None:
        return  # a run whose change was not kept: its page shows git's text, unchecked
    found = change.file(file)
    if found is None:
        raise Invalid(f"{file!r} is not a file {run.id}'s change touches")
    if side not in ("old", "new") or not found.has_line(side, line):
        raise Invalid(f"{file}:{line} ({side}) is not a line {run.id}'s change shows")


def _on_this_head(run: Run) -> list[Comment]:
    return [c for c in Store().comments(run.id) if c.head == (run.head_sha or "")]


def _not_accepted(run: Run) -> str:
    """The block-level findings no owner has accepted on the run's head, each with its id, and
    where one was accepted on an earlier round's head, that it needs accepting again."""
    before = {a.finding: a for a in accepted_before(events(run.id))}
    listed = []
    for f in findings(run.id):
        if f["level"] != "block" or f["accepted"]:
            continue
        item = f"{f['rule']} {_where(f.get('file'), f.get('line'))}".strip() + f" [{f['id']}]"
        if f["id"] in before:
            was = before[f["id"]]
            item += (
                f", accepted by {was.by} on {was.head[:10] or 'no commit'}, an earlier round's "
                f"head: an acceptance holds for the head it was made on, accept it again"
            )
        listed.append(item)
    return "; ".join(listed[:5])


def _where(file: str | None, line: int | None) -> str:
    return f"{file or ''}{':' + str(line) if line else ''}"


def accept(
    run_id: str,
    finding: str,
    reason: str,
    by: str | None = None,
    claimed: str | None = None,
    head: str | None = None,
) -> Acceptance:
    """Accept one finding of a run awaiting review, saying why, for the head the run shows: a
    block-level finding by an owner (the owner has decided on it: another reviewer may then
    approve, still not the submitter), any other by whoever may review. Recorded in the run's
    audit log and written into its handoff. A new round's scan leaves it behind: a finding
    still there needs accepting again. `head` as for `approve`."""
    if not reason.strip():
        raise Invalid(
            f"say why finding {finding} of {run_id} is accepted: -m REASON is recorded with it"
        )
    store = Store()
    run = _awaiting_review(store.get_run(run_id))
    config = _rules_of(store, run)
    person = who(config, by, claimed)
    _on_head(run, head, "accept", person.name)
    found = _finding(run, finding)
    refusal = acceptance_refusal(run, config, person.name, found)
    if refusal:
        AuditLog(store, Redactor({})).record(
            run.id, Kind.DECISION_REFUSED, decision="accept", by=person.name,
            head=run.head_sha or "", reason=refusal,
        )  # fmt: skip
        raise Refused(refusal)
    if not store.accept_finding(run.id, found.id, run.head_sha):
        now = store.get_run(run.id)
        if now.head_sha == run.head_sha and found.id in now.accepted:
            raise WrongState(f"finding {found.id} of {run.id} is accepted already on this head")
        raise WrongState(
            f"{run.id} moved on while finding {found.id} was being accepted (it is "
            f"{shown(now).status} at {(now.head_sha or 'no commit')[:10]}); look again"
        )
    return _recorded(store, store.get_run(run.id), found, person, reason.strip(), config)


def _awaiting_review(run: Run) -> Run:
    """The run, where a finding of it may be accepted: one awaiting review."""
    refusal = _acceptance_state_refusal(run)
    if refusal:
        raise WrongState(refusal)
    return run


def _acceptance_state_refusal(run: Run) -> str | None:
    """Why no finding of the run is accepted in its status: it is not awaiting review. A
    blocked run's change holds a secret, which is never accepted: it goes back to the agent or
    is closed."""
    if run.status == Status.BLOCKED:
        held = ", ".join(run.secrets_found[:3]) or "see `jackline show`"
        return (
            f"{run.id} is blocked: its change holds a secret ({held}), and a secret in the "
            f"change is never accepted nor approved. Send it back (`jackline request-changes "
            f"{run.id} -m TEXT`: the agent is told where the secret is) or close it "
            f"(`jackline reject {run.id}`)"
        )
    if run.status != Status.AWAITING_REVIEW:
        return f"{run.id} is {shown(run).status}; a finding is accepted on a run awaiting review"
    return None


def acceptance_refusals(run_id: str, person: auth.Principal) -> dict[str, str | None]:
    """For each finding of the run's latest scan (by id), why `person` may not accept it now,
    or None where they may: the role, the run's status, then `acceptance_refusal` (what
    `accept` enforces), as `refusals` does for the decisions."""
    store = Store()
    try:
        run = store.get_run(run_id)
        found = [from_json(Finding, f) for f in findings(run.id)]
        refusal = _role_refusal(person) or _acceptance_state_refusal(run)
        if refusal:
            return dict.fromkeys((f.id for f in found), refusal)
        try:
            config = _rules_of(store, run)
        except Refused as e:
            return dict.fromkeys((f.id for f in found), str(e))
        return {f.id: acceptance_refusal(run, config, person.name, f) for f in found}
    finally:
        store.close()


def _rules_of(store: Store, run: Run) -> cfg.JacklineConfig:
    """The config the run recorded, which its decisions follow, where its log vouches for it."""
    verdict = AuditLog(store, Redactor({})).verify(run.id)
    if verdict.state == "broken":
        raise Refused(f"{run.id}: no decision on a run whose audit log is {verdict.render()}")
    return recorded_config(store, run.id)


def _finding(run: Run, name: str) -> Finding:
    """The finding of the run's latest scan that `name` names: its id, or a piece of it at
    the start that no other finding's id starts with."""
    found = [from_json(Finding, f) for f in findings(run.id)]
    exact = [f for f in found if f.id == name.strip()]
    starts = [f for f in found if len(name.strip()) >= 4 and f.id.startswith(name.strip())]
    if exact or len(starts) == 1:
        return (exact or starts)[0]
    listed = "; ".join(f"{f.id} {f.level} {f.rule} {_where(f.file, f.line)}".strip() for f in found)
    said = "names more than one" if starts else "is none"
    raise NotFound(
        f"{name!r} {said} of {run.id}'s findings: "
        + (listed or "its latest scan found nothing")
        + f" (`jackline show {run.id}` lists them with their ids)"
    )


def _recorded(
    store: Store,
    run: Run,
    found: Finding,
    person: auth.Identity,
    reason: str,
    config: cfg.JacklineConfig,
) -> Acceptance:
    """The acceptance written down (the run's field first, then the event: whoever reads it
    in the log finds the run already counting it), the handoff written again with it, and the
    surfaces told."""
    made = Acceptance(
        run.id, found.id, found.rule, found.level, found.file, found.line, person.name, reason,
        run.head_sha or "", person.claimed_by or "", open_blocking(run),
    )  # fmt: skip
    data = {k: v for k, v in asdict(made).items() if k != "run"}
    if not made.claimed_by_os_user:
        data.pop("claimed_by_os_user")
    audit = AuditLog(store, Redactor.from_environment())
    written = audit.record(run.id, Kind.ACCEPTED, **data)
    accepted = from_json(Acceptance, {**written, "run": run.id})
    note = _rewrite_handoff(run)
    news: dict[str, Any] = {
        "run": asdict(run),
        "acceptance": asdict(accepted),
        "handoff": handoff.markdown(note) if note else None,
        "record": handoff.as_json(note) if note else None,
    }
    problems = notify.announce("run.accepted", config, news)
    if problems:
        audit.record(run.id, Kind.ANNOUNCE_FAILED, event="run.accepted", problems=problems)
    return accepted


def _rewrite_handoff(run: Run) -> handoff.Handoff | None:
    """The handoff with the acceptances that hold on the run's head (read from the log,
    redacted as it is): the note a reviewer reads says what the owner decided."""
    store = Store()
    record = artifacts.handoff_of(store, run.id, run.handoff)
    if record is None or not run.handoff:
        return None
    record = replace(record, accepted=tuple(in_force(events(run.id))))
    folder = Path(run.handoff).parent
    if folder.is_dir() and folder.resolve() == paths.run_dir(run.id).resolve():
        artifacts.keep_handoff(record, folder, store, run.id)
    else:
        # The run ran on another machine (a server of a team takes decisions for any run):
        # its folder's path names that machine's disk, so only the store's record is kept.
        artifacts.keep_handoff_record(record, store, run.id)
    return record


def _reviewable(run_id: str, kind: str) -> tuple[Run, cfg.JacklineConfig]:
    store = Store()
    run = store.get_run(run_id)
    refusal = state_refusal(run, kind)
    if refusal:
        raise WrongState(refusal)
    # The rules of this decision (owners, self-approval, allow_as) are the config the run
    # recorded: one the chain no longer vouches for is not believed.
    return run, _rules_of(store, run)


def state_refusal(run: Run, kind: str) -> str | None:
    """Why a run in its status takes no decision of `kind` (approve, request_changes, reject),
    or None where it does."""
    if run.status == Status.BLOCKED and kind == "approve":
        return (
            f"{run.id} is blocked: its change holds a secret, and a blocked run is never "
            f"approved. Send it back (`jackline request-changes {run.id} -m TEXT`: the agent is "
            f"told where the secret is) or close it (`jackline reject {run.id}`)"
        )
    if run.status in ENDED and kind == "reject":
        return None  # closed for good (`_reject_ended`); retry is its other way on
    if run.status not in DECIDING:
        return f"{run.id} is {run.status}; only a run awaiting review takes a decision"
    if run.status == Status.BLOCKED and not waits_for_decision(run.id):
        return (
            f"{run.id} was blocked by an older Jackline, whose blocked runs ended there and take "
            f"no decision; `jackline clean {run.id}` removes its workspace"
        )
    return None


def approval_refusal(run: Run, config: cfg.JacklineConfig, by: str) -> str | None:
    """Why `by` may not approve `run` (awaiting review), or None: the submitter, where the
    config forbids approving one's own run; anyone but an owner, while a block-level finding
    no owner has accepted is open."""
    if by == run.submitted_by and not config.review.allow_self_approval:
        return (
            f"{by} submitted {run.id} and cannot approve it; another person must "
            "(or set [review] allow_self_approval = true)"
        )
    refusal = owner_refusal(run, config, by)
    if refusal:
        listed = _not_accepted(run)
        return f"{refusal} (findings: {listed})" if listed else refusal
    return None


def cancel_refusal(run: Run) -> str | None:
    """Why a run in its status cannot be cancelled, or None where it can."""
    if run.status in FINAL:
        return f"{run.id} is {run.status}; there is nothing to cancel"
    if run.status not in CANCELLABLE:
        return (
            f"{run.id} is {run.status}: a landing is not stopped half way; it rests by itself "
            f"(or `jackline resume {run.id}` if it was interrupted)"
        )
    return None


DECISIONS = ("approve", "request_changes", "reject", "cancel")
"""What a person may decide on a run, in the order a page offers it."""


def _role_refusal(person: auth.Principal) -> str | None:
    """Why `person`'s role takes no decision (every surface checks it: `deps.allowed`)."""
    if person.may("decide"):
        return None
    return (
        f"You are signed in as {person.name}, a {person.role}: deciding needs the "
        f"{auth.ACTIONS['decide']} role"
    )


def refusals(run_id: str, person: auth.Principal) -> dict[str, str | None]:
    """For each decision (`DECISIONS`), why `person` may not take it on the run as it is now,
    or None where they may: the role every surface checks (`auth.allows`), then the rules the
    verbs themselves enforce (`state_refusal`, `approval_refusal`, `cancel_refusal`) on the
    run as the store holds it, as they read it (not as `shown`: an interrupted run that was
    running may still be cancelled), so a page that shows a button disabled with its reason
    never disagrees with the verb behind it. The head is not asked about: a page sends back
    the head it showed."""
    store = Store()
    try:
        run = store.get_run(run_id)
    finally:
        store.close()
    said = _role_refusal(person)
    if said:
        return dict.fromkeys(DECISIONS, said)
    found: dict[str, str | None] = {kind: state_refusal(run, kind) for kind in DECISIONS[:3]}
    if not all(found.values()):
        store = Store()
        try:
            config = _rules_of(store, run)
        except Refused as e:  # an audit log no longer intact: the run takes no decision
            found = dict.fromkeys(found, str(e))
        else:
            found["approve"] = (
                found["approve"]
                or approval_refusal(run, config, person.name)
                or landing_refusal(run, config, wait=False)
            )
        finally:
            store.close()
    found["cancel"] = cancel_refusal(run)
    return {kind: found[kind] for kind in DECISIONS}


def landing_refusal(run: Run, config: cfg.JacklineConfig, wait: bool = True) -> str | None:
    """Why the run's merge cannot land now (its repository's checked-out main has a person's
    uncommitted changes), or None."""
    refusal = forge.repository(run.repo).refusal(config.project.main, wait)
    return f"cannot merge {run.id}: {refusal}" if refusal else None


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
    raise WrongState(reason)


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
        raise following_stopped([run.id]) from None
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
    refusal = cancel_refusal(run)
    if refusal:
        raise WrongState(refusal)
    person = who(recorded_config(store, run.id), by, claimed)
    AuditLog(store, Redactor.from_environment()).record(
        run.id, Kind.CANCELLED, **person.record(), message=message, was=shown(run).status
    )
    engine.cancel(run.id)
    reason = f"cancelled by {person.name}" + (f": {message.strip()}" if message.strip() else "")
    steps.cancel(run.id, reason)
    return get(run.id)
