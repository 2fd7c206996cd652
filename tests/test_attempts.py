"""Parallel attempts: one task, two agents at once, each on its own workspace; one handoff
compares them, the reviewer approves one and the other is closed."""

from __future__ import annotations

import json

from conftest import Project, git

from jackline.testing import Round, ScriptedAgent


def test_two_agents_attempt_one_task_and_approving_one_closes_the_other(
    project: Project, two_rounds: ScriptedAgent
) -> None:
    # "quick" fixes it at once, and says so in a file of its own; the default takes two rounds.
    quick = Round(
        edits={"calc.py": "def add(a, b):\n    return b + a\n", "QUICK.md": "quick\n"},
        notes="- Commuted.\n",
    )
    script = ScriptedAgent([quick]).save(project.root / "quick.json")
    project.create(
        two_rounds,
        extra=f"\n[sandbox]\nreadable = {json.dumps([str(project.root / 'agent.json'), str(script)])}\n",
        agent_extra=f"\n[agents.quick]\ncommand = {json.dumps(ScriptedAgent.command(script))}\n",
    )
    tried = project.jl_json("run", "Fix add", "--agent", "default", "--agent", "quick")
    assert [(r["agent"], r["status"]) for r in tried] == [
        ("default", "awaiting_review"),
        ("quick", "awaiting_review"),
    ]
    slow, fast = tried
    assert slow["attempts"] == fast["attempts"] and slow["attempts"].startswith("attempts-")
    assert (slow["rounds"], fast["rounds"]) == (2, 1)
    assert slow["branch"] != fast["branch"] and slow["workspace"] != fast["workspace"]

    # Either handoff compares both, each with its own numbers.
    shown = project.jl_json("show", fast["id"])["handoff_markdown"]
    assert "## Attempts" in shown and f"**`{fast['id']}`** (this)" in shown
    assert f"| `{slow['id']}` | default | awaiting_review | 2 | pass | 1 | +1 -1 |" in shown
    assert "| quick | awaiting_review | 1 | pass | 2 | +2 -1 |" in shown  # calc.py, QUICK.md

    project.jl("approve", fast["id"], user="bob")
    assert git(project.repo, "show", "main:QUICK.md") == "quick"
    closed = project.jl_json("show", slow["id"])
    assert closed["status"] == "cancelled"
    assert f"attempt {fast['id']} was chosen" in closed["reason"]
    # The closed attempt's change never reached main; its branch keeps it.
    assert "a + b" not in git(project.repo, "show", "main:calc.py")
    assert "a + b" in git(project.repo, "show", f"{slow['branch']}:calc.py")
