"""What a check did is told as it happened: a failure without a parser shows its output, a check
that changes the work is caught (the commit holds only the agent's work), and the handoff names
the tests the run fixed and how to see its diff."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from conftest import WRONG, Project, git

from jackline.testing import Replace, Round, ScriptedAgent

# Prints in colour, then fails the way a missing tool does.
LINT = "print('\\x1b[31mE999 the linter broke\\x1b[0m')\nimport ruff_missing\n"
SEE_FEEDBACK = 'cp "$JACKLINE_FEEDBACK" .jackline/run/feedback-seen.md'


def _check(name: str, command: str, parser: str = "plain") -> str:
    return f"\n[checks.{name}]\ncommand = {json.dumps(command)}\nparser = {json.dumps(parser)}\n"


def _failed_run(project: Project) -> dict[str, Any]:
    done = project.jl("run", "Fix add", "--json", ok=False)
    run: dict[str, Any] = json.loads(done.stdout)
    assert run["status"] == "failed", run
    return run


def _round_checks(project: Project, run_id: str) -> list[dict[str, dict]]:
    return [
        {c["name"]: c for c in e["checks"]} for e in project.events(run_id) if e["kind"] == "round"
    ]


def test_a_failing_check_without_a_parser_shows_its_output_everywhere(project: Project) -> None:
    fixed = Round(edits={"calc.py": Replace("a - b", "a + b")})
    project.create(
        ScriptedAgent([fixed, Round(commands=[SEE_FEEDBACK])]),
        extra=_check("lint", f"{sys.executable} lint.py")
        # A parser that finds nothing to explain the exit: the output does.
        + _check("types", f"{sys.executable} -c 'import types_missing'", parser="junit"),
        files={"lint.py": LINT},
    )
    run = _failed_run(project)
    handoff = Path(run["handoff"]).read_text()
    assert "No module named 'ruff_missing'" in handoff
    assert "No module named 'types_missing'" in handoff
    assert "E999 the linter broke" in handoff and "\x1b" not in handoff
    shown = project.jl("show", run["id"]).stdout
    assert "No module named 'ruff_missing'" in shown
    seen = (Path(run["workspace"]) / ".jackline" / "run" / "feedback-seen.md").read_text()
    assert "No module named 'ruff_missing'" in seen and "No module named 'types_missing'" in seen
    assert "E999 the linter broke" in seen and "\x1b" not in seen


def test_a_check_that_rewrites_the_agents_file_fails_the_round_and_is_undone(
    project: Project,
) -> None:
    # Round 1 leaves a marker the "formatter" strips; round 2 does the change itself.
    marked = Round(edits={"calc.py": Replace("a - b", "a + b  # fmt-me")}, commands=[])
    own = Round(
        edits={"calc.py": Replace("a + b  # fmt-me", "a + b  # the agent's own")},
        commands=[SEE_FEEDBACK],
    )
    project.create(
        ScriptedAgent([marked, own]), extra=_check("fmt", "sed -i 's/  # fmt-me$//' calc.py")
    )
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review", run
    first, second = _round_checks(project, run["id"])
    assert not first["fmt"]["passed"] and second["fmt"]["passed"]
    said = first["fmt"]["failures"][0]["message"]
    assert "changed files: calc.py" in said and "a check must not change the work" in said
    # Round 2 started from what the agent left (its Replace found the marker), and was told.
    seen = (Path(run["workspace"]) / ".jackline" / "run" / "feedback-seen.md").read_text()
    assert "changed files: calc.py" in seen
    assert "# the agent's own" in git(project.repo, "show", f"{run['branch']}:calc.py")
    handoff = Path(run["handoff"]).read_text()
    assert "fmt" in handoff and "changed files: calc.py" in handoff
    findings = project.jl_json("show", run["id"])["findings"]
    assert any(f["rule"] == "check.changed_files" and f["level"] == "warn" for f in findings)


def test_a_check_whose_change_would_pass_is_still_not_committed(project: Project) -> None:
    # A "formatter" that fixes the bug itself: its fix must not become the agent's work.
    project.create(
        ScriptedAgent([Round(edits={"NOTES.txt": "looked around\n"})]),
        extra=_check("fmt", "sed -i 's/a - b/a + b/' calc.py") + "\n",
    )
    run = _failed_run(project)
    assert "a - b" in (Path(run["workspace"]) / "calc.py").read_text()
    assert run["branch"] not in git(project.repo, "branch", "--list", "agent/*")


def test_a_file_a_check_creates_is_removed_and_warned_about(
    project: Project, two_rounds: ScriptedAgent
) -> None:
    project.create(two_rounds, extra=_check("cov", "echo 42 > coverage-report.txt"))
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review", run
    listed = git(project.repo, "ls-tree", "-r", "--name-only", run["branch"]).split()
    assert "coverage-report.txt" not in listed
    assert not (Path(run["workspace"]) / "coverage-report.txt").exists()
    warned = [w["message"] for w in project.events_by_kind(run["id"])["warning"]]
    assert any("cov" in w and "coverage-report.txt" in w for w in warned), warned
    assert all(c["passed"] for c in _round_checks(project, run["id"])[-1].values())
    findings = project.jl_json("show", run["id"])["findings"]
    assert any(
        f["rule"] == "check.changed_files" and "coverage-report.txt" in f["message"]
        for f in findings
    )


def test_handoff_names_the_tests_that_went_from_failing_to_passing_and_the_diff(
    project: Project, two_rounds: ScriptedAgent
) -> None:
    project.create(two_rounds)
    run = project.jl_json("run", "Fix add")
    handoff = Path(run["handoff"]).read_text()
    now_pass = handoff.split("## Tests that now pass", 1)[1].split("\n## ", 1)[0]
    assert "`test_calc::test_add`" in now_pass and "round 1" in now_pass
    assert f"git -C {project.repo} diff main...{run['branch']}" in handoff
    fixed = json.loads(Path(run["handoff"]).with_suffix(".json").read_text())["fixed_tests"]
    assert fixed == [{"check": "test", "test": "test_calc::test_add", "failed_in": [1]}]


def test_a_test_the_agent_deleted_is_not_said_to_pass(project: Project) -> None:
    gone = Round(edits={"test_calc.py": "def test_nothing():\n    pass\n"})
    project.create(ScriptedAgent([WRONG, gone]))
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review", run
    handoff = Path(run["handoff"]).read_text()
    assert "## Tests that now pass" not in handoff
    assert json.loads(Path(run["handoff"]).with_suffix(".json").read_text())["fixed_tests"] == []


def test_a_failed_run_says_how_to_see_its_change_in_the_workspace(project: Project) -> None:
    project.create(ScriptedAgent([WRONG, Round(message="no idea")]))
    run = _failed_run(project)
    handoff = Path(run["handoff"]).read_text()
    ws = run["workspace"]
    assert f"git --git-dir={ws}.git --work-tree={ws} diff {run['base_sha']}" in handoff


def test_output_is_shown_as_plain_text() -> None:
    from jackline.proc import plain

    printed = (
        "\x1b[1;31mError\x1b[0m: \x1b]8;;http://x\x07link\x1b]8;;\x07\r\n10%\r100%\n\tdone\x07"
    )
    assert plain(printed) == "Error: link\n100%\n        done"
