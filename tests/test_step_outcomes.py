"""What a step returns crosses DBOS as the plain dict it always was: a workflow resumed by this
version (a run waiting for review across an upgrade) reads the outputs an earlier version
recorded, and records the same keys itself, never a class (DBOS pickles what it records)."""

from __future__ import annotations

import json
import pickle

import pytest

from jackline import steps
from jackline.models import ReleaseDecision, StepOutcome
from jackline.release import steps as release_steps

# Each step's output as the version before these records returned and DBOS recorded it.
RECORDED_BEFORE: list[tuple[type[StepOutcome], dict[str, object]]] = [
    (steps.PrepareOutcome, {"ok": True, "workspace": "/ws/run-1", "base": "a" * 40}),
    (steps.PrepareOutcome, {"ok": False, "reason": "set-up failed: `make` exited 2"}),
    (
        steps.AgentOutcome,
        {
            "exit_code": 0,
            "duration": 1.25,
            "reverted": [".github/ci.yml"],
            "touched": ["calc.py"],
            "problem": None,
            "ran": True,
        },
    ),
    (steps.BudgetOutcome, {"over": None}),
    (steps.BudgetOutcome, {"over": "over budget: 3 agent rounds used"}),
    (steps.CheckOutcome, {"passed": True, "feedback": None}),
    (steps.CheckOutcome, {"passed": False, "feedback": "## test failed\n"}),
    (
        steps.CommandOutcome,
        {"passed": True, "changed": ["calc.py"], "created": ["gen.py"], "reason": ""},
    ),
    (
        steps.ScanOutcome,
        {"blocked": True, "blocking": 1, "warnings": 2, "secrets": ["config.py:3"]},
    ),
    (steps.MergeOutcome, {"outcome": "merged", "sha": "b" * 40}),
    (steps.MergeOutcome, {"outcome": "refused", "reason": "main moved"}),
    (
        release_steps.GateOutcome,
        {
            "ok": True,
            "envs": [
                {"name": "staging", "requires_go": False, "soak": 0},
                {"name": "production", "requires_go": True, "soak": 600},
            ],
        },
    ),
    (release_steps.GateOutcome, {"ok": False, "envs": []}),
    (release_steps.TakeOutcome, {"accepted": False, "kind": "go"}),
    (release_steps.PromoteOutcome, {"before": None}),
    (release_steps.DeployOutcome, {"ok": True, "offset": 120}),
    (release_steps.ProbeOutcome, {"outcome": "fail", "problems": ["health: 503"]}),
]


@pytest.mark.parametrize(("cls", "recorded"), RECORDED_BEFORE)
def test_an_output_recorded_before_reads_back_and_is_recorded_the_same(
    cls: type[StepOutcome], recorded: dict[str, object]
) -> None:
    outcome = cls.from_recorded(pickle.loads(pickle.dumps(recorded)))
    assert outcome.recorded() == recorded  # the same keys and values, in plain JSON
    assert json.loads(json.dumps(outcome.recorded())) == recorded


def test_recorded_outputs_read_as_records_with_their_values() -> None:
    gate = release_steps.GateOutcome.from_recorded(RECORDED_BEFORE[11][1])
    assert gate.envs[1] == release_steps.EnvPlan("production", True, 600)
    agent = steps.AgentOutcome.from_recorded(RECORDED_BEFORE[2][1])
    assert agent.touched == ("calc.py",) and agent.ran and agent.problem is None
    refused = steps.MergeOutcome.from_recorded({"outcome": "refused", "reason": "main moved"})
    assert refused.outcome == "refused" and refused.sha is None


def test_outputs_of_older_versions_take_the_defaults_the_workflow_assumed() -> None:
    # Before `ran` an agent's round counted as run; before `secrets` a scan named no place.
    agent = steps.AgentOutcome.from_recorded(
        {"exit_code": 1, "duration": 2.0, "reverted": [], "touched": [], "problem": "x"}
    )
    assert agent.ran is True
    scan = steps.ScanOutcome.from_recorded({"blocked": True, "blocking": 1, "warnings": 0})
    assert scan.secrets == ()


def test_a_recorded_output_holds_no_class_of_jackline() -> None:
    # A record pickled into the engine's tables would not read back once its class moved.
    outcome = release_steps.GateOutcome(True, (release_steps.EnvPlan("production", True, 0),))
    assert b"jackline" not in pickle.dumps(outcome.recorded())


def test_a_release_decision_travels_as_the_dict_it_always_was() -> None:
    sent = {"kind": "abort", "by": "bob"}
    assert ReleaseDecision.from_message(sent) == ReleaseDecision("abort", "bob")
    assert ReleaseDecision("go", "ann").as_message() == {"kind": "go", "by": "ann"}
    for other in ({"kind": "approve", "by": "ann"}, "go", None, {"by": "ann"}):
        assert ReleaseDecision.from_message(other) is None  # dropped by the workflow
