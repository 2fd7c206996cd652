"""Who may decide: the rules every surface and the merge step apply to a decision."""

from __future__ import annotations

from jackline import config as cfg
from jackline.models import Run


def owner_refusal(run: Run, config: cfg.JacklineConfig, by: str) -> str | None:
    """Why `by` may not approve `run`, if a block-level finding needs an owner they are not."""
    if not run.blocking or by in config.review.owners:
        return None
    owners = ", ".join(config.review.owners)
    who = f"one of the owners ({owners})" if owners else "an owner, and [review] owners names none"
    return (
        f"{run.id} has {run.blocking} block-level finding{'s' if run.blocking != 1 else ''}; "
        f"{by} is not an owner: approval needs {who}"
    )
