"""budget: before a round, whether any of `[budget]` is used up."""

from __future__ import annotations

from dataclasses import dataclass

from jackline import budgets
from jackline.events import Kind
from jackline.models import StepOutcome
from jackline.steps.context import RunContext, worked


@dataclass(frozen=True)
class BudgetOutcome(StepOutcome):
    over: str | None = None
    """Why the run may not start another round (None: it may)."""


def budget(run_id: str) -> BudgetOutcome:
    """Before a round: is any of `[budget]` used up? If so the run stops, with the reason."""
    ctx = RunContext(run_id)
    since = budgets.day_start()
    spent_today = ctx.store.spend_since(ctx.run.repo, since)
    reason = budgets.over(
        ctx.config.budget, ctx.run.rounds, ctx.run.spend, worked(ctx), spent_today
    )
    if reason:
        ctx.update(reason=reason)
        ctx.record(Kind.BUDGET, over=reason)
    return BudgetOutcome(reason)
