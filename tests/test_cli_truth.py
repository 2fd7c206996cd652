"""The CLI tells the truth: text from a person, an agent or a check is shown as written wherever
it is rendered (terminal, web page, Slack, the handoff's markdown), and the exit code says how
the run ended (0 review or merged, 1 failed or rejected, 2 usage or config, 3 blocked, 4 over
budget, 70 a bug in Jackline)."""

from __future__ import annotations

import json
import re
import secrets
import string
from pathlib import Path

from conftest import Project, git
from test_web import running_site

from jackline import __version__, handoff
from jackline import config as cfg
from jackline.surfaces import slack
from jackline.testing import Replace, Round, ScriptedAgent

FIX = Round(edits={"calc.py": Replace("a - b", "a + b")}, message="fixed add")
WRONG = Round(edits={"calc.py": Replace("a - b", "a * b")})  # the check still fails
WORSE = Round(edits={"calc.py": Replace("a * b", "a ** b")})  # and still
MARKUP = "Fix [/api] in add, [bold]loud[/bold] and .[tests]"


# text is text -----------------------------------------------------------------------------


def test_a_task_with_markup_is_listed_shown_and_logged_as_written(project: Project) -> None:
    project.create(ScriptedAgent([FIX]))
    run = project.jl_json("run", MARKUP)
    assert run["status"] == "awaiting_review", run
    listed = project.jl("runs", ok=False)
    assert listed.returncode == 0, listed.stderr
    for piece in ("Fix [/api] in add,", "[bold]loud[/bold]", ".[tests]"):  # wrapped in its cell
        assert piece in listed.stdout, listed.stdout
    shown = project.jl("show", run["id"], ok=False)
    assert shown.returncode == 0, shown.stderr
    assert MARKUP in shown.stdout
    logged = project.jl("logs", run["id"], ok=False)
    assert logged.returncode == 0, logged.stderr


def test_an_agent_and_a_setup_printing_markup_are_shown_as_printed(project: Project) -> None:
    agent = "echo '[/oops] [tests]'; sed -i 's/a - b/a + b/' calc.py"
    project.create(agent, extra='\n[workspace]\nsetup = ["echo pip install .[tests]"]\n')
    done = project.jl("run", "Fix add", ok=False)
    assert done.returncode == 0, done.stderr
    assert "pip install .[tests]" in done.stderr  # the progress line of set-up
    run_id = project.jl_json("runs")[0]["id"]
    logged = project.jl("logs", run_id, ok=False)
    assert logged.returncode == 0, logged.stderr
    assert "set-up 1/1 `echo pip install .[tests]` exited 0" in logged.stdout  # its one line
    whole = project.jl("logs", run_id, "--full", ok=False)
    assert whole.returncode == 0, whole.stderr
    assert "[/oops] [tests]" in whole.stdout  # what the agent printed


def test_the_web_page_shows_a_script_in_a_task_as_text(tmp_path: Path) -> None:
    task = "Fix add <script>alert('task')</script>"
    with running_site(tmp_path, ScriptedAgent([FIX])) as site:
        run_id = site.submit(task)
        site.wait(run_id, "awaiting_review")
        with site.client("alice") as c:
            for page in ("/runs", f"/runs/{run_id}"):
                html = c.get(page).text
                assert "<script>alert" not in html, page
                assert "&lt;script&gt;alert(" in html, page


def test_slack_messages_show_mentions_and_links_in_a_task_as_text() -> None:
    task = "Fix <!channel> and <http://evil.example|the docs> & <@U0BOSS>"
    config = cfg.parse({"project": {"main": "main"}})
    run = {
        "id": "run-01abc",
        "task": task,
        "branch": "agent/fix-channel-abc123",
        "submitted_by": "<!here>",
        "rounds": 1,
        "merge_sha": "0123456789abcdef",
    }
    record = handoff.Handoff(
        run="run-01abc",
        task=task,
        outcome="awaiting_review",
        summary=f"Did {handoff.text(task)}",
        look_twice=(handoff.text(task),),
    )
    data = {"run": run, "record": handoff.as_json(record)}
    built = [
        slack.review_message(config, data, "http://jl.example"),
        slack.merged_message(config, {"run": run}, "http://jl.example"),
    ]
    for text, blocks in built:
        shown = [text, *_mrkdwn(blocks)]
        for piece in shown:
            # Only the harness's own links (<base/runs/id|id>) may be in angle brackets.
            for bracketed in re.findall(r"<[^>]*>", piece):
                assert bracketed.startswith("<http://jl.example/runs/"), (bracketed, piece)
        assert any("&lt;!channel&gt;" in piece for piece in shown)
        assert any("&lt;http://evil.example|the docs&gt; &amp;" in piece for piece in shown)


def _mrkdwn(blocks: list[dict[str, object]]) -> list[str]:
    found: list[str] = []

    def walk(x: object) -> None:
        if isinstance(x, dict):
            if x.get("type") == "mrkdwn":
                found.append(str(x["text"]))
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(blocks)
    return found


def test_the_handoff_keeps_its_structure_whatever_the_task_and_the_agent_write(
    project: Project,
) -> None:
    task = "Fix `add` ``` now\n# Approved by everyone\n- **Outcome:** merged"
    agent = Round(
        edits={"calc.py": Replace("a - b", "a + b")},
        message="done\n## Findings\nNone.",
        notes="- Assumed add means +.\n## Where to look twice\n- Nothing stood out.\n",
    )
    project.create(ScriptedAgent([agent]))
    run = project.jl_json("run", task)
    text = Path(run["handoff"]).read_text()
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings[0].startswith("# Handoff: Fix ")
    assert [h for h in headings[1:] if not h.startswith("### Round ")] == [
        "## Summary",
        "## Files changed",
        "## Checks by round",
        "## Commands run",
        "## The agent's notes",
        "## Findings",
        "## Dependencies",
        "## Where to look twice",
        "## How to undo",
    ], headings
    assert "- **Outcome:** merged" not in text.splitlines()
    assert "- Nothing stood out." not in text.splitlines()
    # Every fence that opens closes: an even count of fence lines.
    fences = [line for line in text.splitlines() if line.lstrip().startswith("```")]
    assert len(fences) % 2 == 0, fences


# exit codes tell the outcome --------------------------------------------------------------


def test_a_failed_run_exits_1_and_a_rejected_one_too(project: Project) -> None:
    project.create(ScriptedAgent([WRONG, WORSE]))
    done = project.jl("run", "Fix add", "--json", ok=False)
    assert json.loads(done.stdout)["status"] == "failed"
    assert done.returncode == 1, done.stderr


def test_reject_exits_0_once_rejected_and_approve_exits_1_when_the_merge_is_refused(
    project: Project,
) -> None:
    project.create(ScriptedAgent([FIX]))
    first = project.jl_json("run", "Fix add")
    # The verb did what was asked (`jackline reject X && ...` goes on).
    rejected = project.jl("reject", first["id"], "--as", "bob", ok=False)
    assert rejected.returncode == 0, rejected.stderr
    second = project.jl_json("run", "Fix add again")
    # main moves on in a way the branch's checks fail on: the merge is refused.
    (project.repo / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 6\n"
    )
    git(project.repo, "commit", "-qam", "a stricter test")
    refused = project.jl("approve", second["id"], "--as", "bob", "--json", ok=False)
    assert json.loads(refused.stdout)["status"] == "awaiting_review"
    assert refused.returncode == 1, refused.stdout


def test_a_config_error_exits_2_and_with_json_is_json_on_stdout(project: Project) -> None:
    project.create(["true"])
    (project.repo / "jackline.toml").write_text('[checks.test]\nparser = "junit"\n')
    checked = project.jl("validate", ok=False)
    assert checked.returncode == 2, checked.stderr
    assert "checks.test.command: field required" in checked.stderr
    started = project.jl("run", "Fix add", "--json", ok=False)
    assert started.returncode == 2, started.stderr
    answer = json.loads(started.stdout)
    assert answer["exit_code"] == 2
    assert answer["error"]["kind"] == "config_error"
    assert "checks.test.command" in answer["error"]["message"]


def test_json_errors_are_json_on_stdout(project: Project) -> None:
    project.create(ScriptedAgent([FIX]))
    missing = project.jl("show", "run-nope", "--json", ok=False)
    assert missing.returncode == 1
    assert json.loads(missing.stdout) == {
        "error": {"kind": "not_found", "message": json.loads(missing.stdout)["error"]["message"]},
        "exit_code": 1,
    }
    assert "run-nope" in json.loads(missing.stdout)["error"]["message"]
    usage = project.jl("runs", "--json", "--no-such-option", ok=False)
    assert usage.returncode == 2
    assert json.loads(usage.stdout)["error"]["kind"] == "usage"


def test_an_over_budget_run_exits_4(project: Project) -> None:
    project.create(ScriptedAgent([WRONG, WORSE]), extra="\n[budget]\nrounds = 1\n")
    done = project.jl("run", "Fix add", "--json", ok=False)
    assert json.loads(done.stdout)["status"] == "over_budget"
    assert done.returncode == 4, done.stderr


def test_a_blocked_run_exits_3(project: Project) -> None:
    alphabet = string.ascii_uppercase + string.digits
    aws = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    agent = Round(
        edits={"calc.py": Replace("a - b", "a + b"), "settings_local.py": f'KEY = "{aws}"\n'}
    )
    project.create(ScriptedAgent([agent]))
    done = project.jl("run", "Fix add", ok=False)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "blocked" in done.stdout


def test_a_bug_exits_70_with_the_traceback_in_the_log_not_on_screen(project: Project) -> None:
    project.create(ScriptedAgent([FIX]))
    project.home.mkdir(parents=True, exist_ok=True)
    (project.home / "jackline.db").write_bytes(b"not a database, " * 64)
    crashed = project.jl("runs", ok=False)
    assert crashed.returncode == 70, crashed.stderr
    assert "a bug in Jackline" in crashed.stderr and "Traceback" not in crashed.stderr
    assert "Traceback" in (project.home / "logs" / "cli.log").read_text()
    as_json = project.jl("runs", "--json", ok=False)
    assert as_json.returncode == 70
    assert json.loads(as_json.stdout)["error"]["kind"] == "bug"


def test_version_prints_the_version() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "jackline", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"jackline {__version__}"
