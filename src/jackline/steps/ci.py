"""ci: GitHub's checks on the published head (`[forge] wait_for_ci`), waited for and read.

The workflow looks again every `[forge] ci_poll` seconds (a durable sleep between two looks,
each a step) until the checks have ended, `ci_timeout` has passed, or, with no check at all
after `ci_start`, the repository is taken to run no CI on the head. A failure is read
(annotations, an Actions job's log) and handed to the agent as the next round's feedback
while the blueprint's rounds allow (`engine._ci`); after the last round the run fails with it.
What GitHub's jobs printed is the agent's own output run elsewhere: it is redacted and bounded
like any other text that reaches the agent or the log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from jackline.events import Kind
from jackline.models import StepOutcome
from jackline.steps.context import RunContext

FEEDBACK_LIMIT = 20_000
"""The most of GitHub's failure text handed to the agent (the ends of logs hold the error)."""


@dataclass(frozen=True)
class CiWait(StepOutcome):
    head: str
    """The commit whose checks are waited for: the one the run published."""
    since: float
    """When the wait began (this machine's clock)."""
    poll: float
    required: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CiOutcome(StepOutcome):
    state: Literal["pending", "passed", "failed", "none", "timeout"]
    feedback: str = ""
    """For a failure: what GitHub's checks said, for the agent's next round."""


def ci_wait(run_id: str) -> CiWait:
    """The wait begins: which head, which checks (the base branch's required ones, if the
    token may read them); the issue's progress comment says it."""
    from jackline.forge import github

    ctx = RunContext(run_id)
    forge = ctx.config.forge
    head = ctx.run.head_sha or ""
    required = github.required_checks(forge, ctx.config.project.main)
    ctx.record(Kind.CI, state="waiting", head=head, required=list(required or ()))
    ctx.announce("run.ci", head=head)
    return CiWait(head, time.time(), forge.ci_poll, required)


def ci_look(run_id: str, wait: CiWait, rounds_left: bool) -> CiOutcome:
    """One look at the checks; an end is recorded (and, with no round left for the agent, is
    the run's reason to fail)."""
    from jackline.forge import github

    ctx = RunContext(run_id)
    forge = ctx.config.forge
    waited = time.time() - wait.since
    look = github.look_at_ci(forge, wait.head, wait.required, give_up=waited >= forge.ci_start)
    checks = [f"{c.name}: {c.conclusion or 'running'}" for c in look.checks]
    if look.state == "pending" and waited < forge.ci_timeout:
        return CiOutcome("pending")
    if look.state == "pending":
        left = [c.name for c in look.checks if c.conclusion is None]
        missing = sorted(set(wait.required or ()) - {c.name for c in look.checks})
        reason = (
            f"GitHub's checks on {wait.head[:10]} did not finish within {forge.ci_timeout:g}s "
            f"(still waiting for {', '.join(left + missing) or 'them'})"
        )
        ctx.record(Kind.CI, state="timeout", head=wait.head, checks=checks, waited=round(waited))
        ctx.update(reason=reason)
        return CiOutcome("timeout")
    if look.state != "failed":
        ctx.record(Kind.CI, state=look.state, head=wait.head, checks=checks, waited=round(waited))
        return CiOutcome(look.state)
    said = "\n\n".join(github.ci_failure(forge, c) for c in look.failed)
    feedback = ctx.redact(
        f"GitHub's checks failed on the pull request's head {wait.head[:10]}, which holds your "
        f"last round's work:\n\n{said}"
    )
    if len(feedback) > FEEDBACK_LIMIT:
        feedback = "(the start is cut)\n" + feedback[-FEEDBACK_LIMIT:]
    failed = [c.name for c in look.failed]
    ctx.record(
        Kind.CI, state="failed", head=wait.head, checks=checks, failed=failed,
        again=rounds_left, waited=round(waited),
    )  # fmt: skip
    if not rounds_left:
        ctx.update(reason=f"GitHub's checks failed after the last round: {', '.join(failed)}")
    return CiOutcome("failed", feedback)
