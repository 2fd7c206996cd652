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
    project.env["COLUMNS"] = "200"  # the table's rows one line each
    shown = project.jl("show", fast["id"]).stdout
    assert "Attempts" in shown and slow["id"] in shown and fast["id"] in shown
    rows = [line for line in shown.splitlines() if "run-" in line and "pass" in line]
    assert len(rows) == 2, shown
    assert any("quick" in r and "+2" in r for r in rows), rows  # two lines of calc.py, QUICK.md

    project.jl("approve", fast["id"], user="bob")
    assert git(project.repo, "show", "main:QUICK.md") == "quick"
    closed = project.jl_json("show", slow["id"])
    assert closed["status"] == "cancelled"
    assert f"attempt {fast['id']} was chosen" in closed["reason"]
    # The closed attempt's change never reached main; its branch keeps it.
    assert "a + b" not in git(project.repo, "show", "main:calc.py")
    assert "a + b" in git(project.repo, "show", f"{slow['branch']}:calc.py")
