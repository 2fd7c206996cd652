"""`jackline mcp`: the official MCP client over stdio against a real project workspace, outside
and inside the bubblewrap sandbox, and the inbox file a real run leaves for it."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import Project
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from test_preset_claude_code import CALC_PY, conversations, create, needs_claude

from jackline import sandbox
from jackline.agents import Brief
from jackline.agents.claude_code import ClaudeCode
from jackline.config import AgentConfig, SandboxConfig
from jackline.store import Store
from jackline.testing.model_server import ModelServer, Tool, Turn

TOOLS = {"task", "rules_for", "infrastructure", "checks", "run_check", "live_release"}
FILES = {
    ".jackline/rules/python.md": '---\npaths: ["*.py"]\n---\nUse type hints.\n',
    ".jackline/rules/docs.md": '---\npaths: ["docs/**"]\n---\nWrite plainly.\n',
    "AGENTS.md": "Be careful.\n",
    "docs/AGENTS.md": "Docs are for people.\n",
    "docs/guide.md": "# Guide\n",
    "INFRASTRUCTURE.md": "# Infrastructure\n\nThe shop serves on 127.0.0.1:8101.\n",
}
RELEASE = """
[release.environments.staging]
deploy = "true"

[release.environments.production]
deploy = "true"
"""
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")


@pytest.fixture
def workspace(project: Project) -> Project:
    """The calc project (its test fails) with rules, INFRASTRUCTURE.md, and an inbox as the
    harness leaves it in round 2."""
    hidden = f'\n[checks.hidden]\ncommand = "test ! -e {project.home}/jackline.db"\n'
    project.create(["true"], extra=RELEASE + hidden, files=FILES)
    inbox = project.repo / ".jackline" / "run"
    inbox.mkdir(parents=True)
    (inbox / "brief.md").write_text("# Task\n\nFix add in calc.py.\n\n# Checks\n\n- `test`\n")
    (inbox / "feedback.md").write_text("# Feedback\n\n- test_calc.py:5 test_add failed\n")
    (inbox / "context.json").write_text(
        json.dumps(
            {
                "run": "run-01abc",
                "repo": str(project.repo),
                "task": "Fix add in calc.py.",
                "round": 2,
                "live": {"staging": None, "production": None},
            }
        )
    )
    return project


def session(
    argv: list[str], env: dict[str, str], calls: list[tuple[str, dict[str, Any]]]
) -> tuple[set[str], list[Any]]:
    """Start the server, list its tools, make the calls in order; the tools and the results."""

    async def talk() -> tuple[set[str], list[Any]]:
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=env)
        async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            tools = {t.name for t in (await s.list_tools()).tools}
            return tools, [await s.call_tool(name, args) for name, args in calls]

    return anyio.run(talk)


def jackline_mcp(project: Project, *args: str) -> list[str]:
    return [sys.executable, "-P", "-m", "jackline", "mcp", "--workspace", str(project.repo), *args]


def data(result: Any) -> Any:
    assert not result.is_error, result.content[0].text
    return result.structured_content


def test_server_lists_the_six_tools_and_answers_task_rules_and_infrastructure(
    workspace: Project,
) -> None:
    tools, (task, py_rules, doc_rules, inside, infra) = session(
        jackline_mcp(workspace),
        workspace.env,
        [
            ("task", {}),
            ("rules_for", {"path": "calc.py"}),
            ("rules_for", {"path": "docs/guide.md"}),
            ("rules_for", {"path": "/tmp/workspace/calc.py"}),
            ("infrastructure", {}),
        ],
    )
    assert tools == TOOLS
    assert data(task) == {
        "run": "run-01abc",
        "round": 2,
        "task": "Fix add in calc.py.",
        "feedback": "# Feedback\n\n- test_calc.py:5 test_add failed\n",
        "brief": str(workspace.repo / ".jackline/run/brief.md"),
    }
    assert [r["source"] for r in data(py_rules)["rules"]] == [
        ".jackline/rules/python.md",
        "AGENTS.md",
    ]
    assert data(py_rules)["rules"][0] == {
        "source": ".jackline/rules/python.md",
        "applies_to": ["*.py"],
        "text": "Use type hints.",
    }
    assert [r["source"] for r in data(doc_rules)["rules"]] == [
        ".jackline/rules/docs.md",
        "AGENTS.md",
        "docs/AGENTS.md",
    ]
    assert data(inside)["path"] == "calc.py"  # as the agent sees it inside the sandbox
    assert "127.0.0.1:8101" in infra.content[0].text


def test_paths_outside_the_workspace_and_unknown_checks_are_errors_naming_the_value(
    workspace: Project,
) -> None:
    _, (outside, unknown) = session(
        jackline_mcp(workspace),
        workspace.env,
        [("rules_for", {"path": "../etc/passwd"}), ("run_check", {"name": "lint"})],
    )
    assert (
        outside.is_error and "'../etc/passwd' is outside the workspace" in outside.content[0].text
    )
    assert unknown.is_error and "no check 'lint'" in unknown.content[0].text
    assert "known: test, hidden" in unknown.content[0].text


def test_run_check_returns_real_failures_then_a_pass_after_a_quick_fix(workspace: Project) -> None:
    calc = workspace.repo / "calc.py"
    checks_list = None

    async def talk() -> list[Any]:
        nonlocal checks_list
        argv = jackline_mcp(workspace)
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=workspace.env)
        async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            checks_list = await s.call_tool("checks", {})
            failing = await s.call_tool("run_check", {"name": "test"})
            # The same size, likely the same second of mtime: a stale .pyc would still fail.
            calc.write_text(calc.read_text().replace("a - b", "a + b"))
            passing = await s.call_tool("run_check", {"name": "test"})
            return [failing, passing]

    failing, passing = anyio.run(talk)
    listed = data(checks_list)["checks"]
    assert [c["name"] for c in listed] == ["test", "hidden"]
    assert listed[0]["parser"] == "junit" and "--junitxml={report}" in listed[0]["command"]
    assert "--junitxml=report.xml" in listed[0]["run_yourself"]
    result = data(failing)
    assert result["passed"] is False and result["exit_code"] != 0
    [failure] = result["failures"]
    assert failure["check"] == "test"
    assert failure["test"] and "test_add" in failure["test"]
    assert "assert" in failure["message"]
    assert Path(result["log"]).is_file()
    assert data(passing)["passed"] is True and data(passing)["failures"] == []


def test_live_release_is_read_from_the_store_when_it_is_reachable(workspace: Project) -> None:
    store = Store(workspace.home / "jackline.db")
    store.set_live(str(workspace.repo), "staging", "rel-01", "abc123")
    store.close()
    _, [live] = session(jackline_mcp(workspace), workspace.env, [("live_release", {})])
    answer = data(live)
    assert answer["visible"] is True
    assert answer["environments"]["production"] is None
    assert answer["environments"]["staging"]["release_id"] == "rel-01"
    assert answer["environments"]["staging"]["sha"] == "abc123"


def test_run_check_outside_the_agents_sandbox_runs_in_the_sandbox(workspace: Project) -> None:
    """The check is the agent's to have changed: pointed at a workspace from outside, it still
    runs where Jackline's home (here: the store) is hidden."""
    Store(workspace.home / "jackline.db").close()
    _, [hidden] = session(
        jackline_mcp(workspace), workspace.env, [("run_check", {"name": "hidden"})]
    )
    assert data(hidden)["passed"] is True


def test_live_release_says_it_is_not_visible_without_the_store(workspace: Project) -> None:
    _, [live] = session(jackline_mcp(workspace), workspace.env, [("live_release", {})])
    answer = data(live)
    assert answer["visible"] is False and "not visible from inside the sandbox" in answer["why"]
    assert answer["when_the_brief_was_written"] == {"staging": None, "production": None}


def test_a_run_id_that_is_not_the_workspaces_is_refused(workspace: Project) -> None:
    done = workspace.jl("mcp", "--workspace", str(workspace.repo), "--run", "run-other", ok=False)
    assert done.returncode == 1
    assert "--run run-other: the workspace" in done.stderr and "run-01abc" in done.stderr


@needs_bwrap
def test_claude_codes_entry_serves_the_workspace_from_inside_the_sandbox(
    workspace: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command the Claude Code preset registers, run as Claude Code would run it in the
    sandbox: the store is hidden, the checks still run and report failures."""
    monkeypatch.setenv("JACKLINE_HOME", str(workspace.home))  # the sandbox hides this home
    Store(workspace.home / "jackline.db").close()
    inside = sandbox.INSIDE / ".jackline/run/brief.md"
    preset = ClaudeCode(AgentConfig(preset="claude-code"))
    entry = preset.mcp_servers(Brief(inside, "# Task\n\nFix add.\n", 1, None))["jackline"]
    assert entry["args"][-2:] == ["--workspace", str(sandbox.INSIDE)]
    jail = sandbox.jail_for(SandboxConfig(), workspace.repo)
    argv = jail.wrap([entry["command"], *entry["args"]])
    assert isinstance(argv, list)
    env = sandbox.scrub(workspace.env)
    _, (task, live, check) = session(
        argv, env, [("task", {}), ("live_release", {}), ("run_check", {"name": "test"})]
    )
    assert data(task)["task"] == "Fix add in calc.py."
    assert data(task)["brief"] == str(inside)
    assert data(live)["visible"] is False
    failures = data(check)["failures"]
    assert data(check)["passed"] is False and "test_add" in failures[0]["test"]
    assert (workspace.repo / ".jackline/run/mcp-checks/test.log").is_file()


FIX_WITH_TOOLS = [
    Turn(tools=[Tool("mcp__jackline__task", {})]),
    Turn(tools=[Tool("mcp__jackline__run_check", {"name": "test"})]),
    Turn(tools=[Tool("Read", {"file_path": CALC_PY})]),
    Turn(
        tools=[Tool("Edit", {"file_path": CALC_PY, "old_string": "a - b", "new_string": "a + b"})]
    ),
    Turn(tools=[Tool("mcp__jackline__run_check", {"name": "test"})]),
    Turn(tools=[Tool("mcp__jackline__live_release", {})]),
    Turn(text="Fixed add; the test passes."),
]


def tool_results(server: ModelServer) -> list[tuple[str, str]]:
    """(tool, what it answered) for each tool call of the last conversation request."""
    messages = json.loads(conversations(server)[-1])["messages"]
    names: dict[str, str] = {}
    answered = []
    for m in messages:
        for block in m["content"] if isinstance(m["content"], list) else []:
            if block.get("type") == "tool_use":
                names[block["id"]] = block["name"]
            elif block.get("type") == "tool_result":
                content = block.get("content")
                text = (
                    content
                    if isinstance(content, str)
                    else "".join(c.get("text", "") for c in content or [])
                )
                answered.append((names[block["tool_use_id"]], text))
    return answered


@needs_claude
def test_claude_code_calls_the_tools_in_its_sandbox_and_gets_the_failures(
    project: Project,
) -> None:
    """The real Claude Code, in the real sandbox, starts `jackline mcp` from the preset's
    `--mcp-config`, reads its task, runs the failing check and gets the failure as data, fixes
    it, and sees the check pass."""
    with ModelServer(FIX_WITH_TOOLS) as server:
        create(project, server)
        run = project.jl_json("run", "Fix add in calc.py")
    assert run["status"] == "awaiting_review" and run["rounds"] == 1
    answers = tool_results(server)
    assert [name for name, _ in answers] == [
        "mcp__jackline__task",
        "mcp__jackline__run_check",
        "Read",
        "Edit",
        "mcp__jackline__run_check",
        "mcp__jackline__live_release",
    ]
    task, failing, _, _, passing, live = (_json(text) for _, text in answers)
    assert task["run"] == run["id"] and task["task"] == "Fix add in calc.py"
    assert task["round"] == 1 and task["feedback"] is None
    assert failing["passed"] is False and "test_add" in failing["failures"][0]["test"]
    assert passing["passed"] is True
    assert live["visible"] is False and live["when_the_brief_was_written"] == {}

    # Outside the sandbox, on the workspace the run left for review, the store is reachable.
    ws = Path(run["workspace"])
    # The harness's inbox is the run's, outside the workspace.
    context = json.loads((project.home / "runs" / run["id"] / "inbox/context.json").read_text())
    assert context["run"] == run["id"] and context["repo"] == str(project.repo)
    argv = [sys.executable, "-P", "-m", "jackline", "mcp", "--workspace", str(ws)]
    _, [live] = session(argv, project.env, [("live_release", {})])
    assert data(live) == {"visible": True, "environments": {}}


def _json(text: str) -> Any:
    """A tool's answer as Claude Code passed it on (JSON, then its own reminders), or text."""
    return json.JSONDecoder().raw_decode(text)[0] if text.startswith("{") else text
