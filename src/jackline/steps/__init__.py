"""The steps of a run as plain functions over a run id: no DBOS, no surface.

One module a step. `engine.py` wraps each one as a durable step and strings them together as the
blueprint says. Each step loads its run afresh (`context.RunContext`), reads what it needs from
the store and the workspace, and returns plain data, so a step replayed after a crash sees the
same world it left.
"""

from __future__ import annotations

from jackline.steps.agent import AgentOutcome, agent
from jackline.steps.budget import BudgetOutcome, budget
from jackline.steps.check import CheckOutcome, check
from jackline.steps.ci import CiOutcome, CiWait, ci_look, ci_wait
from jackline.steps.command import CommandOutcome, command, recorded_blueprint
from jackline.steps.commit import commit
from jackline.steps.context import RunContext
from jackline.steps.decide import (
    MergeOutcome,
    changes_requested,
    finish,
    merge,
    record_decision,
    reject,
    review_feedback,
    secret_feedback,
)
from jackline.steps.ends import cancel, fail, kill_agents
from jackline.steps.handoff import write_handoff
from jackline.steps.hydrate import hydrate
from jackline.steps.prepare import PrepareOutcome, prepare
from jackline.steps.publish import publish
from jackline.steps.scan import ScanOutcome, scan

__all__ = [
    "AgentOutcome",
    "BudgetOutcome",
    "CheckOutcome",
    "CiOutcome",
    "CiWait",
    "CommandOutcome",
    "MergeOutcome",
    "PrepareOutcome",
    "RunContext",
    "ScanOutcome",
    "agent",
    "budget",
    "cancel",
    "changes_requested",
    "check",
    "ci_look",
    "ci_wait",
    "command",
    "commit",
    "fail",
    "finish",
    "hydrate",
    "kill_agents",
    "merge",
    "prepare",
    "publish",
    "record_decision",
    "recorded_blueprint",
    "reject",
    "review_feedback",
    "scan",
    "secret_feedback",
    "write_handoff",
]
