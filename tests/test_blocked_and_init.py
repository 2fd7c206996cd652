"""Blocked runs take decisions (request-changes sends one back told where the secret is,
reject closes it, approve is refused), and `jackline init` writes a config that works as
written, which `jackline validate` checks against the machine. The CLI runs as a real process
against real git repositories and the real sandbox."""

from __future__ import annotations

import json
import string
import sys
from pathlib import Path

import pytest
from conftest import TEST_CALC, Project, cli_in_process, git
from test_guardrails import _objects, _token

from jackline.testing import Replace, Round, ScriptedAgent


def _aws_key() -> str:
    return _token("AKIA", 16, string.ascii_uppercase + string.digits)


def _blocked(project: Project, aws: str, then: list[Round]) -> dict[str, object]:
    leak = Round(
        edits={
            "calc.py": Replace("a - b", "a + b"),
            "settings_local.py": f'REGION = "eu-west-1"\nAWS_KEY = "{aws}"\n',
        }
    )
    project.create(ScriptedAgent([leak, *then]))
    done = project.jl("run", "Fix add", "--json", ok=False)
    run: dict[str, object] = json.loads(done.stdout)
    assert run["status"] == "blocked", done.stderr
    return run


# blocked runs -------------------------------------------------------------------------------


def test_a_blocked_run_sent_back_is_told_file_and_line_and_reaches_review_without_the_secret(
    project: Project,
) -> None:
    aws = _aws_key()
    remove = Round(edits={"settings_local.py": 'REGION = "eu-west-1"\n'})
    run = _blocked(project, aws, [remove])
    handoff = Path(str(run["handoff"])).read_text()
    assert "request-changes" in handoff and "reject" in handoff

    sent = project.jl_json("request-changes", str(run["id"]), "-m", "remove it")
    assert sent["status"] == "awaiting_review", sent
    assert sent["rounds"] == 2

    # What the agent was handed: the reviewer's words and where the secret is, never its value.
    given = (project.home / "runs" / str(run["id"]) / "inbox" / "feedback.md").read_text()
    assert "remove it" in given
    assert "settings_local.py:2" in given
    assert aws not in given and aws[4:] not in given

    # The branch holds the fix and not the secret; nothing the user's repository got holds it.
    branch = str(sent["branch"])
    assert "a + b" in git(project.repo, "show", f"{branch}:calc.py")
    assert git(project.repo, "show", f"{branch}:settings_local.py") == 'REGION = "eu-west-1"'
    assert aws.encode() not in _objects(project.repo)
    decisions = [e for e in project.events(str(run["id"])) if e["kind"] == "decision"]
    assert [d["decision"] for d in decisions] == ["request_changes"]


def test_a_blocked_run_sent_back_still_holding_the_secret_is_blocked_again(
    project: Project,
) -> None:
    aws = _aws_key()
    ignores = Round(edits={"calc.py": Replace("a + b", "b + a")})
    run = _blocked(project, aws, [ignores])
    again = project.jl("request-changes", str(run["id"]), "-m", "remove it", "--json", ok=False)
    shown = json.loads(again.stdout)
    assert shown["status"] == "blocked" and shown["head_sha"] is None, again.stderr
    assert shown["rounds"] == 2
    assert aws.encode() not in _objects(project.repo)


def test_a_blocked_run_cannot_be_approved_and_rejecting_it_removes_its_workspace(
    project: Project,
) -> None:
    aws = _aws_key()
    run = _blocked(project, aws, [])
    handoff = Path(str(run["handoff"])).read_text()
    assert "rotate" in handoff

    refused = project.jl("approve", str(run["id"]), user="bob", ok=False)
    assert refused.returncode != 0
    assert "blocked" in refused.stderr and "request-changes" in refused.stderr
    assert project.jl_json("show", str(run["id"]))["status"] == "blocked"

    workspace = Path(str(run["workspace"]))
    assert workspace.exists()
    done = project.jl("reject", str(run["id"]), "-m", "not this way", "--json", ok=False)
    rejected = json.loads(done.stdout)
    assert rejected["status"] == "rejected"
    assert "rotate" in rejected["reason"]
    assert not workspace.exists()
    assert git(project.repo, "branch", "--list", "agent/*") == ""


def test_clean_keeps_a_blocked_run_that_waits_for_a_decision(project: Project) -> None:
    run = _blocked(project, _aws_key(), [])
    refused = project.jl("clean", str(run["id"]), ok=False)
    assert refused.returncode == 1 and "reject it" in refused.stderr
    assert Path(str(run["workspace"])).exists()


def test_the_web_page_offers_a_blocked_run_request_changes_reject_and_retry_but_not_approve(
    tmp_path: Path,
) -> None:
    from test_web import csrf, running_site

    leak = Round(edits={"calc.py": Replace("a - b", "a + b"), "keys.py": f'K = "{_aws_key()}"\n'})
    with running_site(tmp_path, ScriptedAgent([leak])) as site:
        run_id = site.submit("Fix add")
        site.wait(run_id, "blocked")
        with site.client("bob") as c:
            page = c.get(f"/runs/{run_id}").text
            assert 'id="request-changes"' in page and 'id="reject"' in page
            # Approve is shown disabled, saying why; the way on is offered instead.
            assert 'id="approve" disabled' in page and "is never approved" in page
            assert 'id="retry-run"' in page
            # The form names the head it showed: none yet, which is this run's.
            token = csrf(c, f"/runs/{run_id}")
            data = {"csrf": token, "head": "", "message": "a key in the change"}
            r = c.post(f"/runs/{run_id}/reject", data=data)
            assert r.status_code == 303, r.text
        site.wait(run_id, "rejected")


# init and validate ------------------------------------------------------------------------

PYPROJECT = """\
[project]
name = "calc"
version = "0.1.0"
requires-python = ">=3.9"

[tool.setuptools]
py-modules = ["calc"]

[tool.pytest.ini_options]
addopts = "-p no:cacheprovider"

[tool.ruff]
line-length = 100
"""
FIX = Round(edits={"calc.py": Replace("a - b", "a + b")})


def _local_index(project: Project) -> None:
    """Set-up installs from the machine's own package index where it has one (no network in
    tests); elsewhere from the registry, as a user's would."""
    local = Path("/opt/pypi/simple")
    if local.is_dir():
        project.env["PIP_INDEX_URL"] = local.as_uri()


def _fresh_python_project(project: Project) -> None:
    project.init({"pyproject.toml": PYPROJECT, "tests/test_calc.py": TEST_CALC})
    (project.repo / "test_calc.py").unlink()
    git(project.repo, "commit", "-qam", "tests in tests/")


def _use_agent(project: Project, agent: ScriptedAgent) -> None:
    """Replace only the agent `init` wrote (it needs a model) by a scripted one."""
    path = project.repo / "jackline.toml"
    text = path.read_text()
    start = text.index("[agents.default]")
    end = text.index("\n[", start + 1)
    script = agent.save(project.root / "agent.json")
    lines = f"[agents.default]\ncommand = {json.dumps(ScriptedAgent.command(script))}\n"
    text = text[:start] + lines + text[end:]
    text = text.replace("[sandbox]\n", f"[sandbox]\nreadable = [{json.dumps(str(script))}]\n", 1)
    path.write_text(text.replace("[review]\n", "[review]\nallow_as = true\n", 1))
    git(project.repo, "add", "jackline.toml")
    git(project.repo, "commit", "-qm", "jackline.toml")


def test_init_writes_a_config_whose_checks_and_set_up_work_as_written(project: Project) -> None:
    _fresh_python_project(project)
    project.jl("init")
    written = (project.repo / "jackline.toml").read_text()
    # The agent line names its key reference and the host it needs.
    assert 'ANTHROPIC_API_KEY = "env:ANTHROPIC_API_KEY"' in written
    assert "allow_network" in written and "api.anthropic.com" in written
    # The set-up installs the tools the checks call.
    setup = next(line for line in written.splitlines() if line.startswith("setup = "))
    assert "pytest" in setup and "ruff" in setup

    _use_agent(project, ScriptedAgent([FIX]))
    checked = project.jl("validate")
    assert "valid" in checked.stdout
    assert "your set-up must install it" in checked.stdout  # .venv/bin/python, before set-up

    _local_index(project)
    done = project.jl("run", "Fix add", "--json", ok=False)
    run = json.loads(done.stdout)
    assert run["status"] == "awaiting_review", (done.stderr, run.get("reason"))
    rounds = [e for e in project.events(run["id"]) if e["kind"] == "round"]
    checks = {c["name"]: c for c in rounds[-1]["checks"]}
    assert set(checks) == {"test", "lint"} and all(c["passed"] for c in checks.values())


def test_validate_says_when_main_is_missing(project: Project) -> None:
    project.create(ScriptedAgent([FIX]))
    (project.repo / "jackline.toml").write_text(
        (project.repo / "jackline.toml").read_text().replace('main = "main"', 'main = "trunk"')
    )
    done = project.jl("validate", ok=False)
    assert done.returncode != 0
    assert "project.main" in done.stderr and "trunk" in done.stderr


def test_validate_says_when_the_agent_program_is_missing(project: Project) -> None:
    project.create(["no-such-agent-program", "{prompt}"])
    done = project.jl("validate", ok=False)
    assert done.returncode != 0
    assert "agents.default" in done.stderr and "no-such-agent-program" in done.stderr


def test_validate_says_when_a_preset_program_is_missing(project: Project) -> None:
    project.create(ScriptedAgent([FIX]))
    path = project.repo / "jackline.toml"
    path.write_text(path.read_text() + '\n[agents.aider]\npreset = "aider"\n')
    env = {**project.env, "PATH": "/usr/bin:/bin"}
    done = cli_in_process(["validate"], project.repo, env)
    assert done.returncode != 0
    assert "agents.aider" in done.stderr and "pip install aider-chat" in done.stderr


def test_validate_says_when_a_check_tool_is_missing(project: Project) -> None:
    extra = '\n[checks.lint]\ncommand = "no-such-linter check ."\n'
    project.create(ScriptedAgent([FIX]), extra=extra)
    done = project.jl("validate", ok=False)
    assert done.returncode != 0
    assert "checks.lint.command" in done.stderr and "`no-such-linter` is not on PATH" in done.stderr
    # A tool in the workspace may come from set-up: said, not refused.
    path = project.repo / "jackline.toml"
    text = path.read_text().replace('"no-such-linter', '".venv/bin/no-such-linter')
    path.write_text(text + '\n[workspace]\nsetup = ["python3 -m venv .venv"]\n')
    warned = project.jl("validate")
    assert "checks.lint.command" in warned.stdout and ".venv/bin/no-such-linter" in warned.stdout
    assert "your set-up must install it" in warned.stdout


# scan tools beside the running Python --------------------------------------------------------


def test_squawk_is_found_beside_the_running_python_without_path(project: Project) -> None:
    beside = Path(sys.executable).parent / "squawk"
    if not beside.exists():
        pytest.skip("squawk is not installed beside this Python")
    migration = "ALTER TABLE users ADD COLUMN nickname text;\n"
    agent = ScriptedAgent([Round(edits={**FIX.edits, "migrations/0002.sql": migration})])
    project.create(agent)
    project.env["PATH"] = "/usr/bin:/bin"
    done = project.jl("run", "Fix add", "--json", ok=False)
    run = json.loads(done.stdout)
    assert run["status"] == "awaiting_review", done.stderr
    found = project.jl_json("show", run["id"])["findings"]
    assert not [f for f in found if f["rule"].startswith("scan.tool-failed")], found
