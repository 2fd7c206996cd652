"""The core run end to end, through the real CLI, real git, real DBOS on SQLite (and, for the
tests that take `database_url`, on PostgreSQL too)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from conftest import RIGHT, WRONG, Project, git

from jackline import api, auth
from jackline.auth import os_user
from jackline.testing import Replace, Round, ScriptedAgent


def test_two_round_run_passes_and_waits_for_review(
    project: Project, two_rounds: ScriptedAgent
) -> None:
    project.create(two_rounds)
    before = (project.repo / "calc.py").read_text()
    run = project.jl_json("run", "Fix add in calc.py")
    assert run["status"] == "awaiting_review"
    assert run["rounds"] == 2
    assert run["branch"].startswith("agent/fix-add-in-calc-py-")
    # The user's working tree, index and checked-out branch are untouched...
    assert (project.repo / "calc.py").read_text() == before
    assert git(project.repo, "symbolic-ref", "--short", "HEAD") == "main"
    assert git(project.repo, "status", "--porcelain") == ""
    # ...and the branch is published there, committed by the harness with the trailer.
    assert "a + b" in git(project.repo, "show", f"{run['branch']}:calc.py")
    assert f"Jackline-Run: {run['id']}" in git(
        project.repo, "log", "-1", "--format=%B", run["branch"]
    )
    handoff = Path(run["handoff"]).read_text()
    assert "test_calc::test_add" in handoff  # round 1's failure, named
    assert "Assumed add means +." in handoff  # the agent's notes
    assert "calc.py" in handoff and Path(run["handoff"]).with_suffix(".json").exists()
    shown = project.jl_json("show", run["id"])
    assert [r["passed"] for r in shown["round_results"]] == [False, True]


def test_run_that_exhausts_its_rounds_fails_naming_the_failing_test(project: Project) -> None:
    project.create(ScriptedAgent([WRONG, Round(message="no idea")]))
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "failed"
    assert run["rounds"] == 2
    handoff = Path(run["handoff"]).read_text()
    assert "Still failing" in handoff and "test_calc::test_add" in handoff
    assert "a * b" in (Path(run["workspace"]) / "calc.py").read_text()  # kept for a person
    assert run["branch"] not in git(project.repo, "branch", "--list", "agent/*")


def test_second_round_gets_the_failures_as_feedback(project: Project) -> None:
    seen = Round(
        edits={"calc.py": Replace("a * b", "a + b")},
        commands=['cp "$JACKLINE_FEEDBACK" .jackline/run/feedback-seen.md'],
    )
    project.create(ScriptedAgent([WRONG, seen]))
    run = project.jl_json("run", "Fix add")
    text = (Path(run["workspace"]) / ".jackline" / "run" / "feedback-seen.md").read_text()
    assert "test_add" in text and "test_calc.py" in text


def test_plain_script_agent_follows_the_command_contract(project: Project) -> None:
    script = project.root / "agent.sh"
    script.write_text(
        "#!/bin/sh\nset -e\n"
        'test -f "$JACKLINE_BRIEF"\n'
        'printf "%s" "$1" > prompt-seen.txt\n'
        'echo "round=$JACKLINE_ROUND" >> prompt-seen.txt\n'
        "sed -i 's/a - b/a + b/' calc.py\n"
        "mkdir -p .jackline && echo 'Unsure whether floats matter.' > .jackline/notes.md\n"
    )
    script.chmod(0o755)
    project.create([str(script), "{prompt}"], extra=f'\n[sandbox]\nreadable = ["{script}"]\n')
    run = project.jl_json("run", "Fix add in calc.py")
    assert run["status"] == "awaiting_review" and run["rounds"] == 1
    seen = git(project.repo, "show", f"{run['branch']}:prompt-seen.txt")
    assert "# Task" in seen and "Fix add in calc.py" in seen and "round=1" in seen
    assert "Unsure whether floats matter." in Path(run["handoff"]).read_text()
    # The notes and the brief never enter the commit.
    files = git(project.repo, "ls-tree", "-r", "--name-only", run["branch"]).split()
    assert ".jackline/notes.md" not in files and ".jackline/run/brief.md" not in files


def test_guard_reverts_writes_outside_scope(project: Project) -> None:
    sneaky = Round(edits={"calc.py": Replace("a - b", "a + b"), "secret_area/x.txt": "mine\n"})
    project.create(ScriptedAgent([sneaky]), files={"secret_area/keep.txt": "keep\n"})
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review"
    files = git(project.repo, "ls-tree", "-r", "--name-only", run["branch"]).split()
    assert "secret_area/x.txt" not in files
    assert any(e["kind"] == "scope" for e in project.events(run["id"]))
    assert "out of scope" in Path(run["handoff"]).read_text()


def test_secrets_never_reach_a_stored_byte(project: Project) -> None:
    value = "sk-live-8c1f0b2e9d7a6543"
    leaky = Round(
        edits={"calc.py": Replace("a - b", "a + b")},
        commands=['echo "token is $SHOP_API_TOKEN"'],
        message="done",
    )
    project.create(
        ScriptedAgent([leaky]), agent_extra='secrets = {SHOP_API_TOKEN = "env:SHOP_API_TOKEN"}\n'
    )
    project.env["SHOP_API_TOKEN"] = value
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review"
    log = (project.home / "runs" / run["id"] / "round-1" / "agent.log").read_text()
    assert "token is [redacted:SHOP_API_TOKEN]" in log  # the agent did get it, and it was scrubbed
    for path in project.home.rglob("*"):
        if path.is_file() and "workspaces" not in path.parts:
            assert value.encode() not in path.read_bytes(), path


def test_approve_merges_into_main_and_records_who(
    project: Project, two_rounds: ScriptedAgent, database_url: str | None
) -> None:
    project.use_database(database_url).create(two_rounds)
    run = project.jl_json("run", "Fix add")
    done = project.jl_json("approve", run["id"], "-m", "good", user="bob")
    assert done["status"] == "merged"
    assert "a + b" in (project.repo / "calc.py").read_text()  # main is checked out: fast-forwarded
    assert git(project.repo, "rev-parse", "main") == done["merge_sha"]
    decision = [e for e in project.events(run["id"]) if e["kind"] == "decision"]
    assert [(d["by"], d["decision"], d["message"]) for d in decision] == [
        ("bob", "approve", "good")
    ]
    assert not Path(run["workspace"]).exists()
    assert "revert -m 1" in Path(done["handoff"]).read_text()
    assert "VERIFIED:" in project.jl("logs", run["id"], "--verify").stdout
    if database_url:  # one database for everything: none of it in files of the home
        assert not any(project.home.glob("*.db"))
        assert workflow_status(database_url, run["id"]) == "SUCCESS"


def workflow_status(url: str, workflow_id: str) -> str:
    """The workflow's status in DBOS's own table, in the PostgreSQL database at `url`."""
    with psycopg.connect(url) as db:
        found = db.execute(
            "SELECT status FROM dbos.workflow_status WHERE workflow_uuid = %s", (workflow_id,)
        ).fetchone()
    return str(found[0]) if found else "none"


def test_a_run_at_review_refuses_its_submitter_a_resume_and_a_dirty_main_then_merges_as_claimed(
    project: Project, two_rounds: ScriptedAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One run at review, refused what it must refuse (nothing changing): approval by its own
    submitter, a resume (it waits for a person), an approval while the checked-out main holds
    uncommitted work; then bob's approval, named with `--as` (the tests' projects set `[review]
    allow_as`), merges, recorded as the OS user's claim."""
    project.create(two_rounds)
    run = project.jl_json("run", "Fix add")
    refused = project.jl("approve", run["id"], ok=False)
    assert refused.returncode == 1
    assert "alice submitted" in refused.stderr and "cannot approve" in refused.stderr
    assert project.jl_json("resume") == []
    refused = project.jl("resume", run["id"], ok=False)
    assert "waits for a review" in refused.stderr
    dirty = "# my work in progress\n"
    (project.repo / "test_calc.py").write_text(dirty)
    # A page's approve button says so before anyone presses it (`api.refusals`).
    monkeypatch.setenv("JACKLINE_HOME", str(project.home))
    said = api.refusals(run["id"], auth.Principal("bob", "reviewer"))["approve"]
    assert said and "uncommitted changes (test_calc.py)" in said, said
    refused = project.jl("approve", run["id"], "--as", "bob", ok=False)
    assert refused.returncode == 1 and "uncommitted changes" in refused.stderr
    assert (project.repo / "test_calc.py").read_text() == dirty
    assert project.jl_json("show", run["id"])["status"] == "awaiting_review"
    assert [e["kind"] for e in project.events(run["id"])].count("decision") == 0
    git(project.repo, "checkout", "test_calc.py")
    done = project.jl_json("approve", run["id"], "--as", "bob", "-m", "good")
    assert done["status"] == "merged"
    events = project.events_by_kind(run["id"])
    me = os_user()
    assert (events["submitted"][0]["by"], events["submitted"][0]["claimed_by_os_user"]) == (
        "alice",
        me,
    )
    (decision,) = events["decision"]
    assert (decision["by"], decision["claimed_by_os_user"]) == ("bob", me)
    assert f"Approved-by: bob (claimed by OS user {me})" in git(
        project.repo, "log", "-1", "--format=%B", "main"
    )
    logged = project.jl("logs", run["id"]).stdout
    assert f"submitted by alice (claimed by OS user {me})" in logged
    assert f"review: approve by bob (claimed by OS user {me}): good" in logged
    handoff = Path(done["handoff"]).read_text()
    assert f"**Submitted by:** alice (claimed by OS user `{me}`" in handoff
    assert f"**Approved by:** bob (claimed by OS user `{me}`" in handoff


def test_without_allow_as_the_submitter_cannot_approve_by_naming_the_owner(
    project: Project,
) -> None:
    # The submitter's run has a block-level finding (a new CI workflow); carol owns the project.
    # Naming carol with --as or JACKLINE_USER is refused, and nothing is recorded.
    fix = {"calc.py": Replace("a - b", "a + b"), ".github/workflows/ci.yml": "on: push\n"}
    project.create(ScriptedAgent([Round(edits=fix)]), extra='\n[review]\nowners = ["carol"]\n')
    me = os_user()
    run = project.jl_json("run", "Fix add", user=me)
    assert run["status"] == "awaiting_review" and run["blocking"] == 1
    assert run["submitted_by"] == me
    before = project.events(run["id"])
    refused = project.jl("approve", run["id"], "--as", "carol", user=me, ok=False)
    assert refused.returncode == 1
    assert "--as carol" in refused.stderr and "allow_as = true" in refused.stderr
    refused = project.jl("approve", run["id"], user="carol", ok=False)
    assert refused.returncode == 1 and "JACKLINE_USER=carol" in refused.stderr
    assert project.events(run["id"]) == before
    assert project.jl_json("show", run["id"], user=me)["status"] == "awaiting_review"
    # Nor can she submit as someone else, to approve as herself afterwards.
    assert "allow_as" in project.jl("run", "Fix add again", user="bob", ok=False).stderr


def test_no_decision_is_taken_on_a_run_whose_audit_chain_is_broken(
    project: Project, two_rounds: ScriptedAgent
) -> None:
    # The rules a decision follows (owners, self-approval, allow_as) are the config the run
    # recorded when it was submitted: one edited in the database is not believed.
    project.create(two_rounds)
    run = project.jl_json("run", "Fix add")
    db = sqlite3.connect(project.home / "jackline.db")
    cur = db.execute(
        "UPDATE events SET data = replace(data, 'allow_self_approval\\\":false',"
        " 'allow_self_approval\\\":true') WHERE run_id = ? AND kind = 'submitted'",
        (run["id"],),
    )
    assert cur.rowcount == 1
    db.commit()
    db.close()
    refused = project.jl("approve", run["id"], ok=False)
    assert refused.returncode == 1
    assert "CHAIN BROKEN" in refused.stderr and "event 1 (submitted)" in refused.stderr
    assert project.jl_json("show", run["id"])["status"] == "awaiting_review"


def test_merge_reruns_checks_when_main_moved(project: Project, two_rounds: ScriptedAgent) -> None:
    project.create(two_rounds)
    run = project.jl_json("run", "Fix add")
    (project.repo / "README").write_text("moved on\n")
    git(project.repo, "add", "README")
    git(project.repo, "commit", "-qm", "main moves on")
    done = project.jl_json("approve", run["id"], "--as", "bob")
    assert done["status"] == "merged"
    kinds = [e["kind"] for e in project.events(run["id"])]
    assert "merge-check" in kinds
    assert (project.repo / "README").exists() and "a + b" in (project.repo / "calc.py").read_text()


def test_request_changes_runs_another_round_with_the_reviewers_words(project: Project) -> None:
    # Round 3 does what the reviewer asked: a round that changed nothing would fail the run.
    third = Round(
        edits={"calc.py": Replace("def add(a, b):\n", 'def add(a, b):\n    """a + b"""\n')},
        commands=['cp "$JACKLINE_FEEDBACK" .jackline/run/review-seen.md'],
    )
    project.create(ScriptedAgent([WRONG, RIGHT, third]))
    run = project.jl_json("run", "Fix add")
    again = project.jl_json(
        "request-changes", run["id"], "--as", "bob", "-m", "Please add a docstring"
    )
    assert again["status"] == "awaiting_review" and again["rounds"] == 3
    seen = Path(again["workspace"]) / ".jackline" / "run" / "review-seen.md"
    assert "Please add a docstring" in seen.read_text()


def test_reject_closes_the_run_without_merging(
    project: Project, two_rounds: ScriptedAgent, database_url: str | None
) -> None:
    project.use_database(database_url).create(two_rounds)
    run = project.jl_json("run", "Fix add")
    done = project.jl_json("reject", run["id"], "-m", "not needed", user="bob")
    assert done["status"] == "rejected"
    assert "a - b" in (project.repo / "calc.py").read_text()
    assert project.jl("approve", run["id"], ok=False, user="bob").returncode == 1


def test_run_resumes_after_crash_without_repeating_steps(project: Project) -> None:
    # Inside the workspace's inbox: the sandbox lets the agent write nowhere else, and a retried
    # round's restore leaves the inbox alone.
    marker = ".jackline/run/first-attempt"
    slow = Round(
        edits={"calc.py": Replace("a - b", "a + b")},
        commands=[f"if [ ! -e {marker} ]; then touch {marker}; sleep 120; fi"],
    )
    project.create(ScriptedAgent([slow]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "jackline", "run", "Fix add", "--json"],
        cwd=project.repo,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while not list(project.home.glob(f"workspaces/*/{marker}")):
        assert time.time() < deadline and proc.poll() is None, "the agent never started"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_id = (
        sqlite3.connect(project.home / "jackline.db").execute("SELECT id FROM runs").fetchone()[0]
    )
    assert project.jl_json("show", run_id)["status"] == "interrupted"  # its process is gone
    resumed = project.jl_json("resume")
    assert [r["status"] for r in resumed] == ["awaiting_review"]
    events = project.events(run_id)
    assert [e["kind"] for e in events].count("workspace") == 1  # prepare was not repeated
    assert sum(1 for e in events if e["kind"] == "step" and e.get("retry")) == 1
    branches = git(project.repo, "branch", "--list", "agent/*").split()
    assert len(branches) == 1
    log = git(project.repo, "log", "--format=%s", f"main..{branches[0]}").splitlines()
    assert log == ["Fix add"]  # one commit, not two
    assert project.jl_json("resume") == []
