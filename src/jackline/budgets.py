"""Budgets: how much time, how many rounds and how much model spend a run may use (`[budget]`),
and how much all of a project's runs may spend in a day. Plain arithmetic over what the run
record and the transcripts say; the `budget` step asks `over` before every round.

Spend comes from the tokens each transcript reports, priced by `[budget] prices` per model. A
model with no price there counts as free and is named in the round's usage event (`unpriced`),
so a missing price shows rather than silently passing; where the program reports its own cost
(Claude Code does), that figure is used for the unpriced models instead.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from jackline.config import BudgetConfig, seconds
from jackline.models import Transcript, Usage


def tokens(u: Usage) -> int:
    return u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_write_tokens


def cost(t: Transcript, budget: BudgetConfig) -> tuple[float, list[str]]:
    """What the round cost in US dollars, and the models with no price in `[budget] prices`."""
    total, unpriced = 0.0, []
    for u in t.usage:
        price = budget.prices.get(u.model)
        if price is None:
            if tokens(u):
                unpriced.append(u.model)
            continue
        read = price.cache_read if price.cache_read is not None else price.input
        write = price.cache_write if price.cache_write is not None else price.input
        total += (
            u.input_tokens * price.input
            + u.output_tokens * price.output
            + u.cache_read_tokens * read
            + u.cache_write_tokens * write
        ) / 1_000_000
    if unpriced and t.cost_usd is not None and not any(u.model in budget.prices for u in t.usage):
        total = t.cost_usd  # the program's own figure, for a round with no price of ours
    return total, sorted(set(unpriced))


def time_left(budget: BudgetConfig, worked: float) -> float | None:
    """Seconds of `wall_time` left, or None without a limit."""
    return seconds(budget.wall_time) - worked if budget.wall_time else None


def over(
    budget: BudgetConfig, rounds: int, spend: float, worked: float, spent_today: float
) -> str | None:
    """Why the run may not start another round, or None."""
    if budget.rounds is not None and rounds >= budget.rounds:
        return f"over budget: {rounds} agent rounds used, `[budget] rounds` allows {budget.rounds}"
    if budget.spend is not None and spend >= budget.spend:
        return f"over budget: ${spend:.2f} spent, `[budget] spend` allows ${budget.spend:.2f}"
    left = time_left(budget, worked)
    if left is not None and left <= 0:
        return f"over budget: {worked:.0f}s of work, `[budget] wall_time` allows {budget.wall_time}"
    if budget.daily_spend is not None and spent_today >= budget.daily_spend:
        return daily_refusal(budget.daily_spend, spent_today)
    return None


def daily_refusal(limit: float, spent: float) -> str:
    return (
        f"over budget: the project's runs spent ${spent:.2f} today (UTC), `[budget] daily_spend` "
        f"allows ${limit:.2f}; new runs can start after midnight UTC"
    )


def day_start(now: float | None = None) -> float:
    """The timestamp of the last midnight, UTC."""
    day = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    return day.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
