"""Budgets: a run stops cleanly as over_budget when it uses up its rounds or its time, and a
project whose daily spend is used refuses new runs."""

from __future__ import annotations

from pathlib import Path

from conftest import Project

from jackline.testing import Replace, Round, ScriptedAgent

WRONG = Round(edits={"calc.py": Replace("a - b", "a * b")})  # the check still fails


def test_a_run_that_uses_up_its_rounds_stops_over_budget_with_a_handoff(project: Project) -> None:
    project.create(ScriptedAgent([WRONG, WRONG]), extra="\n[budget]\nrounds = 1\n")
    run = project.jl_json("run", "Fix add")  # max_rounds is 2: the budget stops it first
    assert run["status"] == "over_budget", run
    assert run["rounds"] == 1
    assert "1 agent rounds used, `[budget] rounds` allows 1" in run["reason"]
    handoff = Path(project.jl_json("show", run["id"])["handoff"]).read_text()
    assert "The run stopped over budget" in handoff
    assert any(e["kind"] == "budget" for e in project.events(run["id"]))


def test_wall_time_cuts_the_agents_round_and_stops_the_run(project: Project) -> None:
    slow = Round(edits={"calc.py": Replace("a - b", "a * b")}, sleep=30)
    project.create(ScriptedAgent([slow, slow]), extra='\n[budget]\nwall_time = "3s"\n')
    run = project.jl_json("run", "Fix add")
    # The agent's 30 s round was cut to what was left, and it was stopped there: measured on the
    # agent's own command, not on the whole run, which a loaded machine stretches.
    agent = [e for e in project.events(run["id"]) if e["kind"] == "command"][0]
    assert agent["step"] == "agent" and agent["timed_out"], agent
    assert agent["timeout"] <= 3 and agent["duration"] < 25, agent
    assert run["status"] == "over_budget", run
    assert "`[budget] wall_time` allows 3s" in run["reason"]


def test_a_spent_daily_budget_refuses_new_runs_with_the_reason(
    project: Project, database_url: str | None
) -> None:
    """On PostgreSQL (team mode), the first run is driven by a worker, another process: the
    spend it leaves in the shared record is what the next submission is measured against, so
    the daily budget holds across workers."""
    project.use_database(database_url).create(
        ScriptedAgent([Round(edits={"calc.py": Replace("a - b", "a + b")})]),
        extra="\n[budget]\ndaily_spend = 5.0\n",
    )
    first = project.jl_json("run", "Fix add")
    assert first["status"] == "awaiting_review"
    # What a day of real model use leaves in the record (the presets' transcripts fill it).
    project.store().update_run(first["id"], spend=5.25)
    refused = project.jl("run", "Another task", ok=False)
    assert refused.returncode == 1
    assert "spent $5.25 today (UTC), `[budget] daily_spend` allows $5.00" in refused.stderr
    listed = project.jl("runs").stdout
    assert "$5.25" in listed
