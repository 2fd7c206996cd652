"""The command line itself: help everywhere, reads without the engine, logs, the demo."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

from conftest import Project
from typer.main import get_command

from jackline.cli import app
from jackline.testing import ScriptedAgent

# The demo runs as a person's shell starts it (`python -m jackline`, a process of its own); the
# reads of one run fork the command line as the other tests do (`conftest.cli_in_process`):
# what they test is what each command says, not Python's start (9 processes, about 13 s of CPU).


def test_every_command_has_help_text() -> None:
    group = get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        assert command.help and len(command.help) > 20, name


def test_reading_runs_does_not_import_the_engine(project: Project) -> None:
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom jackline.cli import app\n"
        "for args in (['--help'], ['runs'], ['runs', '--json']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0\n"
        "assert 'dbos' not in sys.modules, 'dbos imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=project.env, timeout=60)


def test_demo_runs_the_whole_path_without_a_model(project: Project) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jackline", "demo", "--json"],
        capture_output=True,
        text=True,
        env=project.env,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "merged" and result["rounds"] == 2
    assert "check test FAIL" in done.stderr and "approve by demo-reviewer" in done.stderr
    # Merged is not live: the fix is released through staging and a second person's go; the
    # second change passes staging, fails on production's data, and is rolled back by itself.
    first, second = result["releases"]
    assert first["status"] == "live" and first["go_by"] == "demo-reviewer"
    assert second["status"] == "rolled_back" and second["promotable"] is False
    assert "GET /api/orders 200" in second["reason"]
    assert result["second_run"]["status"] == "merged"
    # Both releases carried an agent's change: one of two failed in production.
    agent = next(f for f in result["figures"] if f["kind"] == "agent")
    assert agent["to_production"] == 2 and agent["rolled_back"] == 1
    assert agent["change_failure_rate"] == 0.5 and agent["median_restore_seconds"] > 0
    assert "go by demo-reviewer for production" in done.stderr


def test_show_runs_logs_and_verify_report_one_run_and_find_it_tampered_with(
    project: Project, two_rounds: ScriptedAgent
) -> None:
    """One run, read every way: `show` and `runs`, `logs` and `logs --verify`; then the log
    altered in place (one event's data) and cut short (the decision and what followed) as
    whoever can write the database would, each found."""
    project.create(two_rounds)
    run = project.jl_json("run", "Fix add")
    listed = project.jl_json("runs")
    assert [(r["id"], r["status"], r["rounds"]) for r in listed] == [
        (run["id"], "awaiting_review", 2)
    ]
    text = project.jl("show", run["id"]).stdout
    assert "round 1: test FAIL" in text and "round 2: test pass" in text and "Handoff" in text
    assert project.jl("show", "run-nope", ok=False).returncode == 1
    assert "CHAIN BROKEN" not in project.jl("logs", run["id"]).stdout
    project.jl("approve", run["id"], "--as", "bob")
    verified = project.jl("logs", run["id"], "--verify")
    assert "VERIFIED" in verified.stdout and "CHAIN BROKEN" not in verified.stdout
    # One event's data changed: that line is broken, the ones before it are not; put back,
    # the chain holds again.
    db = sqlite3.connect(project.home / "jackline.db")
    where = (run["id"],)
    (kept,) = db.execute("SELECT data FROM events WHERE run_id = ? AND seq = 3", where).fetchone()
    db.execute("UPDATE events SET data = '{}' WHERE run_id = ? AND seq = 3", where)
    db.commit()
    shown = project.jl("logs", run["id"]).stdout
    assert "CHAIN BROKEN" in shown
    assert shown.splitlines()[1].count("CHAIN BROKEN") == 0  # events before it are intact
    db.execute("UPDATE events SET data = ? WHERE run_id = ? AND seq = 3", (kept, *where))
    db.commit()
    assert "VERIFIED" in project.jl("logs", run["id"], "--verify").stdout
    # The decision and the merge (and what followed) removed: what is left is still a
    # well-formed chain, but not the one the recorded head ends.
    (decided,) = db.execute(
        "SELECT seq FROM events WHERE run_id = ? AND kind = 'decision'", where
    ).fetchone()
    db.execute("DELETE FROM events WHERE run_id = ? AND seq >= ?", (*where, decided))
    db.commit()
    db.close()
    broken = project.jl("logs", run["id"], "--verify", ok=False)
    assert broken.returncode == 1
    assert "CHAIN BROKEN" in broken.stdout and "missing" in broken.stdout
