"""budget: before a round, whether any of `[budget]` is used up."""

from __future__ import annotations

from typing import Any

from jackline import budgets
from jackline.events import Kind
from jackline.steps.context import RunContext, worked


def budget(run_id: str) -> dict[str, Any]:
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
    return {"over": reason}
