"""A person's decisions carried out: recorded, then merge, request changes or reject."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jackline import context, repos
from jackline import git as g
from jackline.config import ForgeConfig
from jackline.errors import CommandFailed, Conflict, JacklineError, NotFound, Refused
from jackline.events import Kind
from jackline.forge import local as forge
from jackline.forge import repository
from jackline.models import Comment, Decision, Status, StepOutcome
from jackline.review import owner_refusal
from jackline.steps.check import check
from jackline.steps.context import RunContext
from jackline.steps.keeping import keep_work
from jackline.steps.moving import working
from jackline.workspaces import remove as remove_workspace


def record_decision(run_id: str, decision: Decision) -> None:
    ctx = RunContext(run_id)
    # The status moves before the event is written: whoever sees the decision in the log also
    # sees that the run is no longer resting in review.
    following = {
        "approve": Status.MERGING,
        "request_changes": Status.RUNNING,
        "reject": Status.REJECTING,
    }
    ctx.update(status=following[decision.kind])
    # A name the command line claimed (`[review] allow_as`) is recorded with who claimed it.
    claimed = decision.claimed_by_os_user
    claim = {"claimed_by_os_user": claimed} if claimed else {}
    ctx.record(
        Kind.DECISION, decision=decision.kind, by=decision.by, **claim, message=decision.message
    )


@dataclass(frozen=True)
class MergeOutcome(StepOutcome):
    """The work merged (onto main at `sha`), or refused (why: the run waits for a decision)."""

    # A refusal has always been recorded without a sha, a merge without a reason.
    omit_none = True

    outcome: Literal["merged", "refused"]
    reason: str | None = None
    sha: str | None = None


def merge(run_id: str, decision: Decision) -> MergeOutcome:
    """Merge onto the newest main: the checks run again on the merge result when main moved."""
    from jackline.forge import github  # here, not with the module: a run's start needs none

    ctx = working(run_id)
    refusal = owner_refusal(ctx.run, ctx.config, decision.by)
    if refusal:  # the surfaces check this first; here it holds whatever sent the message
        ctx.update(status=Status.AWAITING_REVIEW, reason=refusal)
        ctx.record(Kind.MERGE, outcome="refused", reason=refusal)
        return MergeOutcome("refused", reason=refusal)
    ctx.update(status=Status.MERGING)
    main = ctx.config.project.main
    subject = f"Merge {ctx.run.branch}: {ctx.run.task.splitlines()[0][:60]}"
    approver = decision.by
    if decision.claimed_by_os_user:
        approver += f" (claimed by OS user {decision.claimed_by_os_user})"
    trailers = f"Jackline-Run: {run_id}\nApproved-by: {approver}"
    message = f"{subject}\n\n{trailers}"
    try:
        # One landing at a time per repository: this one merges onto the main it finds here,
        # and main cannot move under it between the merge, its checks and the landing (on a
        # URL's remote, where another machine may move it, the landing's push is refused).
        target = repository(ctx.run.repo)
        on_github = _merged_on_github(ctx)
        with target.landing(main):
            if on_github is not None:  # the merge is checked on GitHub's main, made there
                github.follow_main(Path(ctx.run.repo), on_github, main)
            sha, moved = forge.prepare_merge(
                ctx.ws, main, ctx.run.branch, ctx.run.base_sha or "", message
            )
            if moved:
                why = f"{main} moved since the run started"
                ctx.record(Kind.STEP, step="merge-checks", reason=why)
                result = check(run_id, ctx.run.rounds, label=Kind.MERGE_CHECK)
                if not result.passed:
                    raise Refused(f"the checks fail on the merge with the current {main}")
            if on_github is None:
                target.land(ctx.ws, main, sha, run_id)
            else:
                head = ctx.run.head_sha or ""
                merged = github.merge_pull(on_github, ctx.run.branch, head, subject, trailers)
                tip = ""
                with suppress(JacklineError):  # merged: this machine catches up when it can
                    tip = github.follow_main(Path(ctx.run.repo), on_github, main)
                # Replayed after a crash once GitHub had merged: main's tip as it then is.
                sha = merged or tip or sha
    except (Refused, CommandFailed, NotFound) as e:  # NotFound: a URL's remote unreachable
        # The workspace goes back to the branch, whatever refused: a round asked for next
        # starts from the run's own work, never from a merge that did not land.
        g.git(ctx.ws, "checkout", "--quiet", "--force", ctx.run.branch, check=False)
        reason = str(e).splitlines()[0]
        if isinstance(e, Conflict):
            reason += (
                f": `jackline request-changes {run_id} -m TEXT` gives the agent a round on the "
                f"newest {main} with the conflicts marked in those files (or reject the run)"
            )
        ctx.update(status=Status.AWAITING_REVIEW, reason=reason)
        ctx.record(Kind.MERGE, outcome="refused", reason=str(e))
        return MergeOutcome("refused", reason=reason)
    ctx.update(merge_sha=sha, reason="")
    ctx.record(Kind.MERGE, outcome="merged", sha=sha, by=decision.by)
    return MergeOutcome("merged", sha=sha)


def _merged_on_github(ctx: RunContext) -> ForgeConfig | None:
    """The github forge's config where an approved run is merged through GitHub's API (`[forge]
    merge` other than `local`, a repository by path), else None: merged here."""
    forge_config = ctx.config.forge
    if forge_config.kind != "github" or forge_config.merge == "local":
        return None
    return None if repos.is_url(ctx.run.repo) else forge_config


def finish(run_id: str, outcome: Status) -> None:
    """A merged or rejected run needs its workspace no more; a failed one is kept for a person."""
    ctx = RunContext(run_id)
    if outcome in (Status.MERGED, Status.REJECTED) and ctx.run.workspace:
        remove_workspace(Path(ctx.run.workspace))
        ctx.record(Kind.CLEANUP, removed=ctx.run.workspace)
    ctx.update(status=outcome)


def reject(run_id: str, decision: Decision) -> None:
    ctx = RunContext(run_id)
    reason = decision.message
    if ctx.run.secrets_found:  # rejected while blocked: the workspace goes now
        rotate = "the change held a secret: if it is real, rotate it (it was on disk)"
        reason = f"{reason}; {rotate}" if reason else rotate
    ctx.update(reason=reason)
    # Told before the status moves, as the handoff step tells a review: a command waiting
    # for the run to rest exits once it does, and would cut an announcement under way.
    # The pull request is closed with the reason.
    ctx.announce("run.rejected", by=decision.by, reason=reason)
    finish(run_id, Status.REJECTED)


def review_feedback(decision: Decision, comments: Sequence[Comment] = ()) -> str:
    return context.render_feedback([], decision, comments=comments)


def changes_requested(run_id: str, decision: Decision) -> str:
    """The feedback of a round a reviewer asked for. Where main moved since the run's base, the
    round starts on the newest main (`forge.onto_newest_main`): a branch that no longer merges
    has a way forward, and no agent works on an old main unknowingly. The feedback says main
    moved and names each file left with conflict markers."""
    own = f"changes:{decision.id}"
    ctx = working(run_id, step=own)
    # The comments on lines made on the head the reviewer decided on (the next round has not
    # committed yet): those on earlier heads were handed over with their own round.
    head = ctx.run.head_sha or ""
    text = review_feedback(decision, [c for c in ctx.store.comments(run_id) if c.head == head])
    main = ctx.config.project.main
    repos.synced(ctx.run.repo, main)  # a URL's clone, which the workspace fetches main from
    moved = forge.onto_newest_main(ctx.ws, main, ctx.run.branch)
    if moved is None:
        return text
    tip, conflicts = moved
    ctx.update(base_sha=tip)
    ctx.record(Kind.ONTO_MAIN, main=main, sha=tip, conflicts=conflicts)
    keep_work(ctx, own)  # on the newest main now, with its conflicts marked
    return text + "\n" + context.render_main_moved(main, tip, conflicts)


def secret_feedback(where: Sequence[str], decision: Decision) -> str:
    """Feedback for the round after a blocked one: the reviewer's words, and the file and line
    of each secret the scan found. Never the value: the agent need not see it again to remove
    it, and a feedback file is one more place it would be."""
    listed = "\n".join(f"- {w}" for w in where) or "- (the scan's findings name no place)"
    return (
        f"{review_feedback(decision).rstrip()}\n\n"
        "## The change was blocked: it holds a secret\n\n"
        "Remove each of these from the change. Nothing is committed while one is there, and "
        "the next scan must find none. Do not move the value elsewhere in the workspace: code "
        "that needs it reads it from an environment variable.\n\n"
        f"{listed}\n"
    )
