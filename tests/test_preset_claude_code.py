"""The claude-code preset against the real Claude Code: `jackline run` drives the installed
`claude` in the real sandbox, through the allowlisting proxy, against the scripted model server
speaking the Anthropic Messages API on loopback. `.ci/agents/claude-code.sh` installs it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import CALC, Project, git, unmount_under

from jackline.agents import presets
from jackline.config import AgentConfig
from jackline.errors import Refused
from jackline.sandbox import INSIDE
from jackline.testing.model_server import ModelServer, Tool, Turn

MODEL = "claude-sonnet-4-5"
RULE = "Prefer plain arithmetic operators; no helper functions for one-liners."
CALC_PY = str(INSIDE / "calc.py")  # where the workspace is, as Claude Code sees it

needs_claude = pytest.mark.skipif(
    shutil.which("claude") is None or shutil.which("bwrap") is None,
    reason="Claude Code (`npm install -g @anthropic-ai/claude-code`, see "
    ".ci/agents/claude-code.sh) or bubblewrap is not installed",
)

# Round 1 makes `add` multiply (the check fails); round 2 tries to push (the guard's hook
# refuses), runs a command, and fixes it. Each round is a fresh `claude -p`; a turn without tool
# calls ends a round.
TURNS = [
    Turn(tools=[Tool("Read", {"file_path": CALC_PY})]),
    Turn(
        tools=[Tool("Edit", {"file_path": CALC_PY, "old_string": "a - b", "new_string": "a * b"})]
    ),
    Turn(text="Changed add to multiply its arguments."),
    Turn(tools=[Tool("Bash", {"command": "git push origin HEAD:main", "description": "Publish"})]),
    Turn(tools=[Tool("Bash", {"command": "grep -n return calc.py", "description": "Look"})]),
    Turn(tools=[Tool("Read", {"file_path": CALC_PY})]),
    Turn(
        tools=[Tool("Edit", {"file_path": CALC_PY, "old_string": "a * b", "new_string": "a + b"})]
    ),
    Turn(text="Fixed add: it adds now.", input_tokens=2000, output_tokens=300),
]


@dataclass(frozen=True)
class Solved:
    project: Project
    server: ModelServer
    run: dict[str, Any]


@pytest.fixture(scope="module")
def solved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Solved]:
    """One run of the task, for the tests below to look at from their sides."""
    root = tmp_path_factory.mktemp("claude-code")
    project = Project(root, root / "home")
    try:
        with ModelServer(TURNS) as server:
            create(project, server)
            yield Solved(project, server, project.jl_json("run", "Fix add in calc.py"))
    finally:
        unmount_under(root)


def create(project: Project, server: ModelServer) -> Project:
    """The calc repository with a rule, configured for the claude-code preset."""
    return project.create_preset(
        "claude-code",
        MODEL,
        server.url,
        f'env = {{ ANTHROPIC_BASE_URL = "{server.url}" }}\n'
        'secrets = { ANTHROPIC_API_KEY = "env:ANTHROPIC_API_KEY" }\n',
        ("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key"),
        files={".jackline/rules/style.md": f"{RULE}\n"},
    )


def conversations(server: ModelServer) -> list[str]:
    """Each main-conversation request the program sent, as text."""
    return [
        json.dumps(r["body"])
        for r in server.requests
        if r["path"].endswith("/v1/messages") and r["body"].get("tools")
    ]


@needs_claude
def test_claude_code_solves_the_task_in_two_rounds_with_its_transcript_recorded(
    solved: Solved,
) -> None:
    project, run = solved.project, solved.run
    assert run["status"] == "awaiting_review", run
    assert run["rounds"] == 2
    assert (project.repo / "calc.py").read_text() == CALC  # main untouched: it is for review
    branch_calc = git(project.repo, "show", f"{run['branch']}:calc.py")
    assert "return a + b" in branch_calc

    by_kind = project.events_by_kind(run["id"])
    edits = by_kind["agent.edit"]
    assert [(e["round"], e["path"]) for e in edits] == [(1, "calc.py"), (2, "calc.py")]
    assert "+    return a + b" in edits[1]["detail"]
    commands = by_kind["agent.command"]
    assert [c["summary"] for c in commands] == [
        "git push origin HEAD:main",
        "grep -n return calc.py",
    ]
    assert "2:    return a * b" in commands[1]["detail"]
    messages = [(m["round"], m["summary"]) for m in by_kind["agent.message"]]
    assert messages == [
        (1, "Changed add to multiply its arguments."),
        (2, "Fixed add: it adds now."),
    ]
    assert any(t["summary"] == "Read calc.py" for t in by_kind["agent.tool"])

    usage = by_kind["agent.usage"]
    assert [u["round"] for u in usage] == [1, 2]
    assert usage[1]["final"] == "Fixed add: it adds now."
    assert usage[1]["models"][0]["model"] == MODEL
    assert usage[1]["models"][0]["input_tokens"] == 4 * 1200 + 2000
    assert usage[0]["cost_usd"] > 0 and usage[0]["unpriced"] == []
    spent = sum(u["cost_usd"] for u in usage)  # 3 and 15 dollars per million tokens
    assert spent == pytest.approx((3600 + 6800) * 3e-6 + (450 + 900) * 15e-6)
    assert f"${spent:.2f}" in project.jl("runs").stdout

    # Through the sandbox's proxy, to the allowed loopback port only.
    network = by_kind["network"]
    assert network and all(e["allowed"] and e["host"] == "127.0.0.1" for e in network)

    # `jackline logs` shows all of it: each command with its output, each edit with its diff.
    logs = project.jl("logs", run["id"]).stdout
    assert "agent.command round 2: command grep -n return calc.py (exit 0)" in logs
    assert "| 2:    return a * b" in logs
    assert "+    return a + b" in logs
    # The handoff has the short timeline and what the model use cost.
    handoff = Path(project.jl_json("show", run["id"])["handoff"]).read_text()
    assert "## What the agent did" in handoff and "round 2, edit: " in handoff
    assert "tokens, $" in handoff


@needs_claude
def test_the_rules_and_the_feedback_reach_claude_code_and_its_files_stay_out_of_the_commit(
    solved: Solved,
) -> None:
    project, run = solved.project, solved.run
    assert run["status"] == "awaiting_review", run
    sent = conversations(solved.server)
    first_of_round_2 = next(s for s in sent if "This is round 2" in s)
    # Read by Claude Code itself from the rules file the preset wrote, besides the brief.
    native = f"Contents of {INSIDE}/.claude/rules/jackline-style.md"
    assert native in sent[0] and RULE in sent[0]
    assert native in first_of_round_2
    # Round 2's prompt carries what failed in round 1.
    assert "Feedback from the previous round" in first_of_round_2
    assert "test_add" in first_of_round_2

    files = git(project.repo, "ls-tree", "-r", "--name-only", run["branch"]).splitlines()
    assert not [f for f in files if f.startswith((".claude", ".jackline/run"))], files
    ws = Path(run["workspace"])
    assert (ws / ".claude" / "rules" / "jackline-style.md").exists()
    assert "jackline.guard.hook" in (ws / ".claude" / "settings.local.json").read_text()
    # The harness's exclusions are as it wrote them: nothing for it to put back after a round.
    assert not [e for e in project.events(run["id"]) if e["kind"] == "scope"]


@needs_claude
def test_a_git_push_claude_code_tries_is_refused_by_the_guard_hook_and_shown(
    solved: Solved,
) -> None:
    project, run = solved.project, solved.run
    commands = project.events_by_kind(run["id"])["agent.command"]
    push = next(c for c in commands if c["summary"].startswith("git push"))
    assert push["error"] is True
    assert "only the harness pushes" in push["detail"]
    assert "hook" in push["detail"]
    log = project.home / "runs" / run["id"] / "round-2" / "agent.log"
    assert '"permission_denials":[{"tool_name":"Bash"' in log.read_text()
    # What was told to the model, too.
    assert any("only the harness pushes" in s for s in conversations(solved.server))
    assert git(project.repo, "rev-parse", "main") == run["base_sha"]  # main never moved


def test_a_missing_claude_is_refused_before_the_run_with_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    agent = presets()["claude-code"](AgentConfig(preset="claude-code"))
    with pytest.raises(Refused, match=r"needs `claude`.*npm install -g @anthropic-ai/claude-code"):
        agent.executable()


def test_the_command_line_asks_for_stream_json_without_prompts_with_the_model_and_args() -> None:
    from jackline.agents import Brief

    config = AgentConfig(preset="claude-code", command="/opt/claude", model=MODEL, args=["--x"])
    agent = presets()["claude-code"](config)
    argv = agent.argv(Brief(Path("/w/.jackline/run/brief.md"), "# Task\n\nFix it.", 1, None))
    assert argv[:3] == ["/opt/claude", "-p", "# Task\n\nFix it."]
    assert argv[3:7] == ["--output-format", "stream-json", "--verbose", "--permission-mode"]
    assert argv[7] == "bypassPermissions"
    assert argv[-3:] == ["--model", MODEL, "--x"]


def test_the_rules_go_to_claude_codes_rules_folder_except_the_claude_md_it_reads_itself() -> None:
    from jackline.agents import Brief
    from jackline.context import Rule

    agent = presets()["claude-code"](AgentConfig(preset="claude-code"))
    rules = [
        Rule(".jackline/rules/style.md", RULE, ("src/**",)),
        Rule("src/AGENTS.md", "Keep src small."),
        Rule("CLAUDE.md", "Already read by Claude Code."),
    ]
    files = agent.rules_files(rules, Brief(Path("/w/brief.md"), "", 1, None))
    assert sorted(files) == [
        ".claude/rules/jackline-src-agents.md",
        ".claude/rules/jackline-style.md",
    ]
    assert RULE in files[".claude/rules/jackline-style.md"]
    assert "(applies to src/**)" in files[".claude/rules/jackline-style.md"]


def test_the_messages_dialect_picks_the_turn_by_round_and_answers_side_requests_aside() -> None:
    import urllib.request

    def post(url: str, body: dict[str, Any]) -> bytes:
        request = urllib.request.Request(url, json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            data: bytes = response.read()
            return data

    tools = [{"name": "Bash", "input_schema": {"type": "object"}}]
    round_2 = {"role": "user", "content": [{"type": "text", "text": "This is round 2 of 2."}]}
    with ModelServer(TURNS) as s:
        side = json.loads(post(f"{s.url}/v1/messages", {"model": "m", "messages": [round_2]}))
        assert side["content"] == [{"type": "text", "text": "OK"}]
        body = {"model": "m", "messages": [round_2], "tools": tools}
        first = json.loads(post(f"{s.url}/v1/messages", body))
        assert first["content"][0]["name"] == "Bash"  # round 2's first turn: the push
        assert first["stop_reason"] == "tool_use" and first["usage"]["input_tokens"] == 1200
        said = {"role": "assistant", "content": "x"}
        later = {**body, "messages": [round_2, said, said, said, said]}  # round 2's last turn
        streamed = post(f"{s.url}/v1/messages", {**later, "stream": True}).decode()
        assert "event: message_start" in streamed and "event: message_stop" in streamed
        assert '"text_delta", "text": "Fixed add: it adds now."' in streamed
        counted = json.loads(post(f"{s.url}/v1/messages/count_tokens", body))
        assert counted["input_tokens"] > 0
