"""The codex preset against the real Codex CLI: `jackline run` drives the installed `codex exec`
in the real sandbox, through the allowlisting proxy, against the scripted model server speaking
the OpenAI Responses API on loopback. `.ci/agents/codex.sh` installs it."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, git, unmount_under

from jackline.agents import Brief, check_available
from jackline.agents.codex import Agent
from jackline.config import AgentConfig
from jackline.errors import Refused
from jackline.testing.model_server import ModelServer, Tool, Turn
from jackline.testing.openai_responses import Responses

MODEL = "gpt-5.5"  # one Codex knows (its tools: `exec_command`, free-form `apply_patch`)
RULE = "RULE-CX-7: prefer plain arithmetic operators; no helper functions for one-liners."
REPO_RULE = "REPO-AGENTS-3: keep calc.py free of imports."

needs_codex = pytest.mark.skipif(
    shutil.which("codex") is None or shutil.which("bwrap") is None,
    reason="the Codex CLI (`npm install -g @openai/codex`, see .ci/agents/codex.sh) or "
    "bubblewrap is not installed",
)


def patch(old: str, new: str) -> Tool:
    text = (
        "*** Begin Patch\n*** Update File: calc.py\n@@ def add(a, b):\n"
        f"-    return {old}\n+    return {new}\n*** End Patch\n"
    )
    return Tool("apply_patch", {"input": text})


# Round 1 makes `add` multiply (the check fails); round 2, a fresh `codex exec` given the
# feedback, runs a command and fixes it. A turn without tool calls ends a round.
TURNS = [
    Turn(
        text="Looking at calc.py first.", tools=[Tool("shell_command", {"command": "cat calc.py"})]
    ),
    Turn(tools=[patch("a - b", "a * b")]),
    Turn(text="Changed add to multiply its arguments.", input_tokens=10_000, output_tokens=1_000),
    Turn(tools=[Tool("shell_command", {"command": "grep -n return calc.py; exit 3"})]),
    Turn(tools=[patch("a * b", "a + b")]),
    Turn(text="Fixed add: it adds now.", input_tokens=20_000, output_tokens=2_000),
]


@dataclass(frozen=True)
class Solved:
    project: Project
    server: ModelServer
    run: dict[str, Any]


@pytest.fixture(scope="module")
def solved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Solved]:
    """One run of the task, for the tests below to look at from their sides."""
    root = tmp_path_factory.mktemp("codex")
    project = Project(root, root / "home")
    try:
        with ModelServer(TURNS, [Responses()]) as server:
            create(project, server)
            yield Solved(project, server, project.jl_json("run", "Fix add in calc.py"))
    finally:
        unmount_under(root)


def create(project: Project, server: ModelServer) -> Project:
    """The calc repository with a rule and a tracked AGENTS.md, configured for codex."""
    return project.create_preset(
        "codex",
        MODEL,
        server.url,
        """args = ["-c", "model_reasoning_effort='low'"]\n"""
        f'env = {{ OPENAI_BASE_URL = "{server.url}/v1" }}\n'
        'secrets = { OPENAI_API_KEY = "env:OPENAI_API_KEY" }\n',
        ("OPENAI_API_KEY", "sk-test-not-a-real-key"),
        prices=(2.0, 8.0),
        files={"AGENTS.md": f"{REPO_RULE}\n", ".jackline/rules/style.md": f"{RULE}\n"},
    )


def instructions(server: ModelServer) -> list[str]:
    """What Codex sent as its AGENTS.md instructions, one per conversation request."""
    found = []
    for r in server.requests:
        for item in r["body"].get("input") or []:
            for part in item.get("content") or []:
                text = part.get("text", "") if isinstance(part, dict) else ""
                if text.startswith("# AGENTS.md instructions"):
                    found.append(text)
    return found


@needs_codex
def test_codex_solves_the_task_in_two_rounds_and_waits_for_review(solved: Solved) -> None:
    run, project = solved.run, solved.project
    assert run["status"] == "awaiting_review", run
    assert run["rounds"] == 2
    assert "a + b" in git(project.repo, "show", f"{run['branch']}:calc.py")
    committed = git(project.repo, "show", "--name-only", "--format=", run["branch"])
    assert committed.split() == ["calc.py"]  # Codex's home and its rules stay out
    asked = [r["body"] for r in solved.server.requests if r["body"].get("tools")]
    assert {b["model"] for b in asked} == {MODEL}
    assert all(b["reasoning"].get("effort") == "low" for b in asked)  # `args` reach Codex


@needs_codex
def test_the_second_round_is_prompted_with_the_first_rounds_failure(solved: Solved) -> None:
    prompts = [r["body"]["input"] for r in solved.server.requests if r["body"].get("tools")]
    last_user = [next(i for i in reversed(body) if i.get("role") == "user") for body in prompts]
    round_two = [json.dumps(u) for u in last_user if "This is round 2" in json.dumps(u)]
    assert round_two and all("test_add" in u and "Feedback" in u for u in round_two)


@needs_codex
def test_transcript_becomes_commands_edits_messages_and_usage(solved: Solved) -> None:
    by_kind = solved.project.events_by_kind(solved.run["id"])
    commands = by_kind["agent.command"]
    assert [c["summary"] for c in commands] == ["cat calc.py", "grep -n return calc.py; exit 3"]
    # (The runner drops a zero exit code from the stored event along with empty fields.)
    assert "return a - b" in commands[0]["detail"] and commands[0]["exit_code"] == 0
    assert commands[1]["exit_code"] == 3 and "2:    return a * b" in commands[1]["detail"]
    assert [(e["round"], e["path"]) for e in by_kind["agent.edit"]] == [
        (1, "calc.py"),
        (2, "calc.py"),
    ]
    messages = [m["summary"] for m in by_kind["agent.message"]]
    assert "Changed add to multiply its arguments." in messages
    usage = {u["round"]: u for u in by_kind["agent.usage"]}
    assert usage[2]["final"] == "Fixed add: it adds now."
    (model,) = usage[2]["models"]
    assert model["model"] == MODEL and model["output_tokens"] == 150 + 150 + 2_000
    assert model["input_tokens"] == 1200 + 1200 + 20_000


@needs_codex
def test_rules_reach_codex_through_its_home_and_the_tracked_agents_md_is_untouched(
    solved: Solved,
) -> None:
    sent = instructions(solved.server)
    assert sent and all(RULE in s and REPO_RULE in s for s in sent)
    workspace = Path(solved.run["workspace"])
    assert (workspace / "AGENTS.md").read_text() == f"{REPO_RULE}\n"
    assert RULE in (workspace / ".jackline" / "run" / "codex" / "AGENTS.md").read_text()
    assert REPO_RULE not in (workspace / ".jackline" / "run" / "codex" / "AGENTS.md").read_text()


@needs_codex
def test_runs_shows_what_the_run_spent(solved: Solved) -> None:
    # 1200 + 1200 + 10 000 + 1200 + 1200 + 20 000 input tokens at $2/M, the output at $8/M.
    expected = (34_800 * 2.0 + 3_600 * 8.0) / 1_000_000
    (listed,) = solved.project.jl_json("runs")
    assert listed["spend_usd"] == pytest.approx(expected)
    table = solved.project.jl("runs").stdout
    assert f"${expected:.2f}" in table


def test_missing_codex_is_refused_with_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Refused, match="npm install -g @openai/codex"):
        check_available(AgentConfig(preset="codex"))


def test_responses_dialect_picks_the_turn_by_round_and_conversation() -> None:
    turns = [Turn(tools=[Tool("shell", {"command": ["ls"]})]), Turn(text="one"), Turn(text="two")]
    with ModelServer(turns, [Responses()]) as server:

        def ask(prompt: str, history: list[dict[str, Any]]) -> dict[str, Any]:
            body = {
                "model": "m",
                "tools": [{"type": "function", "name": "exec_command"}],
                "input": [{"type": "message", "role": "user", "content": prompt}, *history],
            }
            request = urllib.request.Request(
                f"{server.url}/v1/responses", json.dumps(body).encode(), method="POST"
            )
            with urllib.request.urlopen(request, timeout=5) as answer:
                return dict(json.load(answer))

        first = ask("This is round 1", [])
        (call,) = first["output"]
        assert call["name"] == "exec_command" and json.loads(call["arguments"]) == {"cmd": "ls"}
        output = {"type": "function_call_output", "call_id": call["call_id"], "output": "x"}
        assert ask("This is round 1", [call, output])["output"][0]["content"][0]["text"] == "one"
        assert ask("This is round 1", [])["output"][0]["name"] == "exec_command"  # a retry
        assert ask("This is round 2", [])["output"][0]["content"][0]["text"] == "two"
        assert first["usage"]["input_tokens"] == 1200


@needs_codex
def test_without_a_model_the_usage_names_the_one_codex_chose(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    git(tmp_path, "init", "-q", str(workspace))
    inbox = workspace / ".jackline" / "run"
    inbox.mkdir(parents=True)
    (inbox / "brief.md").write_text("Say hello.\n")
    with ModelServer([Turn(text="Hello.")], [Responses()]) as server:
        config = AgentConfig(preset="codex", env={"OPENAI_BASE_URL": f"{server.url}/v1"})
        agent = Agent(config)
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "OPENAI_API_KEY": "sk-test"}
        brief = Brief(inbox / "brief.md", "Say hello.\n", 1, None)
        done = agent.run(brief, workspace, env, tmp_path / "agent.log")
    assert done.exit_code == 0, (tmp_path / "agent.log").read_text()
    assert done.transcript is not None and done.transcript.final == "Hello."
    (usage,) = done.transcript.usage
    assert usage.model == server.requests[0]["body"]["model"] and usage.output_tokens == 150
