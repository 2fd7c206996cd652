"""What an agent did is told as it happened: a crashed, silent or timed-out agent never reaches
review, its exit code and last lines reach the handoff, `show`, the web page and the next
round's feedback, and `{prompt}` carries that feedback to a program started afresh each round.
Real runs through the CLI, real git, real DBOS on SQLite, the real sandbox."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from conftest import RIGHT, Project, git

from jackline.testing import Replace, Round, ScriptedAgent

FIXED = {"calc.py": "def add(a, b):\n    return a + b\n"}
"""A project whose checks already pass: an agent that does nothing would look "ready"."""
NOT_LOGGED_IN = "printf '\\033[31mNot logged in\\033[0m (token %s)\\n' \"$SHOP_API_TOKEN\"; exit 1"
TOKEN = "sk-live-4f1e2d3c4b5a6978"
ANSI = re.compile(r"\x1b\[")


def run(project: Project, *args: str) -> dict[str, Any]:
    """`jackline run ... --json`, whatever it exits with (the outcome is in the record)."""
    done = project.jl("run", *args, "--json", ok=False)
    try:
        return dict(json.loads(done.stdout))
    except json.JSONDecodeError as e:
        raise AssertionError(f"not JSON ({done.returncode}): {done.stdout}\n{done.stderr}") from e


def decided(project: Project, verb: str, *args: str) -> dict[str, Any]:
    done = project.jl(verb, *args, "--json", ok=False, user="bob")
    return dict(json.loads(done.stdout))


def test_an_agent_that_crashes_without_changing_anything_fails_with_its_exit_and_words(
    project: Project,
) -> None:
    project.create(
        NOT_LOGGED_IN,
        files=FIXED,
        agent_extra='secrets = {SHOP_API_TOKEN = "env:SHOP_API_TOKEN"}\n',
    )
    project.env["SHOP_API_TOKEN"] = TOKEN
    r = run(project, "Fix add")
    assert r["status"] == "failed"
    # A program that did not start is not run again: another round would only repeat it.
    assert r["rounds"] == 1
    assert "exited 1" in r["reason"] and "Not logged in" in r["reason"]
    handoff = Path(r["handoff"]).read_text()
    assert "every check passes" not in handoff and "ready for review" not in handoff
    assert "exited 1" in handoff and "Not logged in" in handoff
    assert "[redacted:SHOP_API_TOKEN]" in handoff and TOKEN not in handoff
    assert not ANSI.search(handoff)
    shown = project.jl("show", r["id"]).stdout
    assert "exit 1" in shown and "Not logged in" in shown and TOKEN not in shown
    assert not ANSI.search(shown)
    # Nothing to approve, and nothing was committed or published.
    refused = project.jl("approve", r["id"], ok=False, user="bob")
    assert refused.returncode != 0
    assert r["branch"] not in git(project.repo, "branch", "--list", "agent/*")
    assert project.jl_json("show", r["id"])["status"] == "failed"


def test_an_agent_that_fails_after_changing_something_is_told_and_round_two_reaches_review(
    project: Project,
) -> None:
    crashed = Round(
        edits={"calc.py": Replace("a - b", "a * b")},
        message="Traceback: model overloaded",
        exit_code=1,
    )
    project.create(ScriptedAgent([crashed, RIGHT]))
    r = run(project, "Fix add")
    assert r["status"] == "awaiting_review" and r["rounds"] == 2
    assert not r["reason"]
    feedback = (project.home / "runs" / r["id"] / "round-2" / "feedback.md").read_text()
    assert "exited 1" in feedback and "model overloaded" in feedback
    assert "test_add" in feedback  # the checks' failures as well
    handoff = Path(r["handoff"]).read_text()
    assert "every check passes" in handoff  # round 2 earned it
    assert "model overloaded" in handoff  # round 1's crash is in its round's account


def test_a_silent_agent_that_changes_nothing_never_reaches_review(project: Project) -> None:
    project.create("true", files=FIXED)
    r = run(project, "Fix add")
    assert r["status"] == "failed"
    # It exited 0, so it ran: it is told it changed nothing, once, then a person takes over.
    assert r["rounds"] == 2
    assert "changed nothing" in r["reason"]
    handoff = Path(r["handoff"]).read_text()
    assert "every check passes" not in handoff and "ready for review" not in handoff
    feedback = (project.home / "runs" / r["id"] / "round-2" / "feedback.md").read_text()
    assert "changed nothing" in feedback
    assert not any(e["kind"] == "commit" for e in project.events(r["id"]))


def test_an_agent_that_times_out_fails_saying_so(project: Project) -> None:
    project.create("echo thinking; sleep 60", files=FIXED, agent_extra="timeout = 1\n")
    r = run(project, "Fix add")
    assert r["status"] == "failed" and r["rounds"] == 1
    assert "timed out" in r["reason"]
    handoff = Path(r["handoff"]).read_text()
    assert "timed out after 1s" in handoff and "thinking" in handoff
    assert "every check passes" not in handoff


def test_a_request_changes_round_that_changes_nothing_is_not_offered_again(
    project: Project,
) -> None:
    fix = Round(edits={"calc.py": Replace("a - b", "a + b")})
    project.create(ScriptedAgent([fix, Round(message="nothing to add")]))
    r = run(project, "Fix add")
    assert r["status"] == "awaiting_review"
    after = decided(project, "request-changes", r["id"], "-m", "Also handle floats")
    assert after["status"] == "failed", after
    assert "changed nothing" in after["reason"]
    heads = [e["sha"] for e in project.events(r["id"]) if e["kind"] == "commit"]
    assert len(heads) == 1  # only round 1's work was ever committed


def test_a_prompt_agent_sees_the_failures_and_the_reviewers_words_in_its_prompt(
    project: Project,
) -> None:
    script = project.root / "agent.sh"
    script.write_text(
        "#!/bin/sh\nset -e\n"
        'printf "%s" "$1" > "prompt-$JACKLINE_ROUND.txt"\n'
        'case "$JACKLINE_ROUND" in\n'
        "  1) sed -i 's/a - b/a * b/' calc.py ;;\n"
        "  2) sed -i 's/a \\* b/a + b/' calc.py ;;\n"
        "  *) echo '# floats too' >> calc.py ;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    project.create([str(script), "{prompt}"], extra=f'\n[sandbox]\nreadable = ["{script}"]\n')
    r = run(project, "Fix add in calc.py")
    assert r["status"] == "awaiting_review" and r["rounds"] == 2
    ws = Path(r["workspace"])
    first, second = (ws / "prompt-1.txt").read_text(), (ws / "prompt-2.txt").read_text()
    assert "Fix add in calc.py" in first and "Feedback" not in first
    assert "Fix add in calc.py" in second
    assert "test_add" in second and "test_calc.py" in second  # the checks' failures
    after = decided(project, "request-changes", r["id"], "-m", "Please mention floats")
    assert after["status"] == "awaiting_review", after
    third = (ws / "prompt-3.txt").read_text()
    assert "Please mention floats" in third and "asks for changes" in third
    # The audit log shows the prompt as `{prompt}`, never the brief or the feedback itself.
    commands = [
        e["command"] for e in project.events(r["id"]) if e["kind"] == "command" and e.get("round")
    ]
    assert commands == [f"{script} {{prompt}}"] * 3


def test_the_web_page_shows_a_crashed_agents_exit_and_last_lines(tmp_path: Path) -> None:
    from test_web import running_site

    crash = Round(message="Not logged in \x1b[1mplease run login\x1b[0m", exit_code=1)
    with running_site(tmp_path, ScriptedAgent([crash])) as site:
        run_id = site.submit("Fix add")
        assert site.wait(run_id, "failed", "awaiting_review") == "failed"
        with site.client("alice") as c:
            page = c.get(f"/runs/{run_id}").text
    assert "exited 1" in page and "Not logged in" in page and "please run login" in page
    assert "\x1b" not in page and "Approve and merge" not in page


def test_a_missing_agent_program_fails_in_round_one(project: Project) -> None:
    project.create(["/nonexistent/agent.sh", "{prompt}"], files=FIXED)
    r = run(project, "Fix add")
    assert r["status"] == "failed" and r["rounds"] == 1
    assert "exited" in r["reason"] or "could not" in r["reason"]
    assert "ready for review" not in Path(r["handoff"]).read_text()


def test_a_failed_run_retried_with_another_agent_and_words_hands_that_agent_both(
    project: Project,
) -> None:
    """`jackline retry`: the new run's agent reads the task, how the first run ended and the
    person's words in its prompt; the first run stays failed, its log says who retried it as
    which run; a run that did not fail is not retried. Rejecting the failed run closes it."""
    script = project.root / "agent.sh"
    script.write_text('#!/bin/sh\nprintf "%s" "$1" > prompt.txt\nsed -i "s/a - b/a + b/" calc.py\n')
    script.chmod(0o755)
    extra = f'\n[sandbox]\nreadable = ["{script}"]\n'
    agent_extra = f'\n[agents.fixer]\ncommand = ["{script}", "{{prompt}}"]\n'
    project.create(["sh", "-c", NOT_LOGGED_IN], extra=extra, agent_extra=agent_extra)
    first = run(project, "Fix add in calc.py")
    assert first["status"] == "failed", first
    done = project.jl(
        "retry", first["id"][:12], "--agent", "fixer", "-m", "use addition, not login",
        "--json", ok=False, user="bob",
    )  # fmt: skip
    again = json.loads(done.stdout)
    assert done.returncode == 0 and again["status"] == "awaiting_review", (done.stdout, done.stderr)
    assert (again["agent"], again["submitted_by"]) == ("fixer", "bob")
    prompt = (Path(again["workspace"]) / "prompt.txt").read_text()
    assert "Fix add in calc.py" in prompt and f"This tries again {first['id']}" in prompt
    assert "left failed" in prompt and "exited 1" in prompt, prompt
    assert "What should go differently this time: use addition, not login" in prompt
    assert project.jl_json("show", first["id"])["status"] == "failed"
    [retried] = [e for e in project.events(first["id"]) if e["kind"] == "retried"]
    assert (retried["run"], retried["by"], retried["agent"]) == (again["id"], "bob", "fixer")
    log = project.jl("logs", first["id"]).stdout
    assert f"retried by bob as {again['id']} with fixer: use addition, not login" in log
    refused = project.jl("retry", again["id"], "--json", ok=False, user="bob")
    assert refused.returncode != 0
    error = json.loads(refused.stdout)["error"]
    assert error["kind"] == "wrong_state" and "awaiting_review" in error["message"], error
    # A failed run is closed for good by a rejection, with why; its workspace goes.
    closed = project.jl_json("reject", first["id"], "-m", "login is not ours to fix", user="bob")
    assert closed["status"] == "rejected"
    assert closed["reason"].startswith("login is not ours to fix (it had failed: "), closed
    assert not Path(first["workspace"]).exists()
    decided = [e for e in project.events(first["id"]) if e["kind"] == "decision"]
    assert [(d["decision"], d["by"]) for d in decided] == [("reject", "bob")]
    twice = project.jl("reject", first["id"], "--json", ok=False, user="bob")
    assert json.loads(twice.stdout)["error"]["kind"] == "wrong_state"
