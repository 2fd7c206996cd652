"""The mini-swe-agent preset against the real `mini`: a two-round run through Jackline, real
bubblewrap, the allowlisting proxy, and the scripted model server speaking Chat Completions
(with tool calls: mini's `bash` tool) on loopback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import Project, git

from jackline.agents import Brief
from jackline.agents.mini_swe_agent import SUBMIT, TRAJECTORY, Agent
from jackline.config import AgentConfig
from jackline.errors import Refused
from jackline.testing.model_server import ModelServer, Tool, Turn
from jackline.testing.openai_chat import ChatCompletions

RULE = "Arithmetic helpers stay one-liners (rule CALC-17)."
MODEL = "openai/scripted"


def _bash(command: str, text: str = "") -> Turn:
    return Turn(text, [Tool("bash", {"command": command})], 100_000, 10_000)


# Each round is one invocation of mini: an edit, then the submit command. Round 1's edit fails
# the test; round 2 fixes it.
TURNS = [
    _bash("sed -i 's/a - b/a * b/' calc.py && cat calc.py", "Changing the operator."),
    _bash(f"echo {SUBMIT}", "Done."),
    _bash("sed -i 's/a [*] b/a + b/' calc.py", "Using plus."),
    _bash(f"echo {SUBMIT}", "Fixed: add adds."),
]

needs_mini = pytest.mark.skipif(
    shutil.which("mini") is None, reason="mini is not installed (.ci/agents/mini-swe-agent.sh)"
)
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")


def _create(project: Project, url: str) -> None:
    """The calc project with a mini-swe-agent agent pointed at the scripted server."""
    project.create_preset(
        "mini-swe-agent",
        MODEL,
        url,
        f'env = {{ OPENAI_API_BASE = "{url}/v1", OPENAI_BASE_URL = "{url}/v1" }}\n'
        'secrets = { OPENAI_API_KEY = "env:OPENAI_API_KEY" }\n',
        ("OPENAI_API_KEY", "sk-scripted-not-a-real-key"),
        files={".jackline/rules/calc.md": RULE + "\n"},
    )


@needs_mini
@needs_bwrap
def test_mini_swe_agent_solves_the_task_in_two_rounds_with_its_trajectory_recorded(
    project: Project,
) -> None:
    with ModelServer(TURNS, [ChatCompletions(rounds=[2, 2])]) as server:
        _create(project, server.url)
        run = project.jl_json("run", "Fix add in calc.py")
        firsts = [r["body"]["messages"][1]["content"] for r in server.requests]
    assert run["status"] == "awaiting_review", run
    assert run["rounds"] == 2
    assert "a + b" in git(project.repo, "show", f"{run['branch']}:calc.py")
    files = git(project.repo, "ls-tree", "-r", "--name-only", run["branch"]).splitlines()
    assert not [f for f in files if f.startswith(".jackline/run")], files

    events = project.events(run["id"])
    commands = [e for e in events if e["kind"] == "agent.command"]
    assert commands[0]["summary"].startswith("sed -i 's/a - b/a * b/'")
    # (The audit event leaves out falsy fields: exit code 0 and error False are absent.)
    assert "return a * b" in commands[0]["detail"] and not commands[0].get("error")
    assert [c["summary"] for c in commands].count(f"echo {SUBMIT}") == 2
    edits = [(e["round"], e["path"]) for e in events if e["kind"] == "agent.edit"]
    assert edits == [(1, "calc.py"), (2, "calc.py")]
    messages = [e["summary"] for e in events if e["kind"] == "agent.message"]
    assert "Changing the operator." in messages and "Fixed: add adds." in messages
    usage = [e for e in events if e["kind"] == "agent.usage"]
    assert [u["models"][0]["input_tokens"] for u in usage] == [200_000, 200_000]
    assert usage[-1]["final"] == "Fixed: add adds." and usage[0]["unpriced"] == []
    # The rules are in mini's task text; round 2's task text holds what failed.
    assert "CALC-17" in firsts[0]
    assert "Feedback from the previous round" in firsts[-1] and "test_add" in firsts[-1]
    assert "Feedback from the previous round" not in firsts[0]
    # Spend: 4 calls of 100k input and 10k output at $3 and $15 per million.
    assert "$1.80" in project.jl("runs").stdout


def _brief() -> Brief:
    return Brief(Path("/tmp/workspace/.jackline/run/brief.md"), "Fix it.", 1, None)


def test_mini_command_line_runs_without_confirmation_and_saves_a_trajectory() -> None:
    config = AgentConfig(preset="mini-swe-agent", model="openai/gpt-x", args=["-l", "0"])
    argv = Agent(config).base_argv(_brief())
    assert "--yolo" in argv and "--exit-immediately" in argv
    assert argv[argv.index("--output") + 1] == TRAJECTORY
    assert argv[argv.index("--model") + 1] == "openai/gpt-x"
    assert argv[argv.index("--task") + 1] == "Fix it."
    assert Agent(config).argv(_brief())[-2:] == ["-l", "0"]
    env = Agent(config).extra_env(Path("/ws"))
    assert env["MSWEA_COST_TRACKING"] == "ignore_errors" and env["MSWEA_CONFIGURED"]


def _assistant(text: str, command: str, call: str, prompt: int) -> dict[str, object]:
    usage = {"prompt_tokens": prompt, "completion_tokens": 7}
    return {
        "role": "assistant",
        "content": text,
        "tool_calls": [{"id": call, "function": {"name": "bash"}}],
        "extra": {
            "actions": [{"command": command, "tool_call_id": call}],
            "response": {"usage": usage},
        },
    }


def _tool(call: str, output: str, code: int, info: str = "") -> dict[str, object]:
    extra = {"raw_output": output, "returncode": code, "exception_info": info}
    return {"role": "tool", "tool_call_id": call, "content": "...", "extra": extra}


TRAJECTORY_DATA = {
    "info": {
        "model_stats": {"instance_cost": 0.0123, "api_calls": 3},
        "config": {"model": {"model_name": "anthropic/claude-x"}},
        "exit_status": "Submitted",
        "submission": "",
    },
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Please solve this issue: Fix it."},
        _assistant("Look first.", "cat calc.py", "c1", 1000),
        _tool("c1", "def add(a, b): ...\n", 0),
        _assistant("", "pytest -q", "c2", 1500),
        _tool("c2", "1 failed\n", 1),
        _assistant("All done.", f"echo {SUBMIT}", "c3", 2000),
        _tool("c3", "", -1, "action was not executed"),
        {"role": "exit", "content": "", "extra": {"exit_status": "Submitted", "submission": ""}},
    ],
}


def test_mini_trajectory_parses_into_commands_with_results_messages_and_usage() -> None:
    t = Agent(AgentConfig(preset="mini-swe-agent")).parse(json.dumps(TRAJECTORY_DATA))
    commands = [s for s in t.steps if s.kind == "command"]
    assert [(c.summary, c.exit_code, c.error) for c in commands] == [
        ("cat calc.py", 0, False),
        ("pytest -q", 1, True),
        (f"echo {SUBMIT}", None, False),
    ]
    assert commands[1].detail == "1 failed\n"
    assert [s.summary for s in t.steps if s.kind == "message"] == ["Look first.", "All done."]
    assert t.final == "All done."
    assert t.usage[0].model == "anthropic/claude-x"
    assert (t.usage[0].input_tokens, t.usage[0].output_tokens) == (4500, 21)
    assert t.cost_usd == pytest.approx(0.0123)


def test_mini_trajectory_that_stopped_early_says_why() -> None:
    data = {**TRAJECTORY_DATA, "info": {**TRAJECTORY_DATA["info"], "exit_status": "LimitsExceeded"}}
    t = Agent(AgentConfig(preset="mini-swe-agent", model="m")).parse(json.dumps(data))
    assert t.steps[-1].summary == "mini-swe-agent stopped: LimitsExceeded" and t.steps[-1].error
    assert t.usage[0].model == "m"
    assert Agent(AgentConfig(preset="mini-swe-agent")).parse("$ mini ...\nTraceback") == (type(t)())


def test_missing_mini_is_refused_with_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Refused, match="pip install mini-swe-agent"):
        Agent(AgentConfig(preset="mini-swe-agent")).executable()
