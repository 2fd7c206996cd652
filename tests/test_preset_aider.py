"""The Aider preset against the real `aider`: a two-round run through Jackline, real bubblewrap,
the allowlisting proxy, and the scripted model server speaking Chat Completions on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from conftest import Project, git

from jackline.agents import Brief
from jackline.agents.aider import HISTORY, RULES, Agent
from jackline.config import AgentConfig
from jackline.context import Rule
from jackline.errors import Refused
from jackline.testing.model_server import ModelServer, Tool, Turn
from jackline.testing.openai_chat import ChatCompletions

RULE = "Arithmetic helpers stay one-liners (rule CALC-17)."
MODEL = "openai/scripted"


def _edit(old: str, new: str) -> str:
    return (
        f"Changing the operator.\n\ncalc.py\n```python\n<<<<<<< SEARCH\n    return {old}\n"
        f"=======\n    return {new}\n>>>>>>> REPLACE\n```\n"
    )


# Each round is one invocation of Aider and one model call: the task names calc.py, so Aider
# has added it to the chat already. Round 1's edit fails the test; round 2 fixes it.
TURNS = [
    Turn(text=_edit("a - b", "a * b"), input_tokens=100_000, output_tokens=10_000),
    Turn(text=_edit("a * b", "a + b"), input_tokens=100_000, output_tokens=10_000),
]

needs_aider = pytest.mark.skipif(
    shutil.which("aider") is None, reason="aider is not installed (.ci/agents/aider.sh)"
)
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")


def _create(project: Project, url: str) -> None:
    """The calc project with an Aider agent pointed at the scripted server through the proxy."""
    project.create_preset(
        "aider",
        MODEL,
        url,
        f'env = {{ OPENAI_API_BASE = "{url}/v1" }}\n'
        'secrets = { OPENAI_API_KEY = "env:OPENAI_API_KEY" }\n',
        ("OPENAI_API_KEY", "sk-scripted-not-a-real-key"),
        files={".jackline/rules/calc.md": RULE + "\n"},
    )


@needs_aider
@needs_bwrap
def test_aider_solves_the_task_in_two_rounds_with_its_transcript_recorded(
    project: Project,
) -> None:
    with ModelServer(TURNS, [ChatCompletions()]) as server:
        _create(project, server.url)
        run = project.jl_json("run", "Fix add in calc.py")
        requests = [json.dumps(r["body"]) for r in server.requests]
    assert run["status"] == "awaiting_review", run
    assert run["rounds"] == 2
    assert "a + b" in git(project.repo, "show", f"{run['branch']}:calc.py")
    # Nothing of Aider's own is committed: no .aider* files, no .gitignore entry.
    files = git(project.repo, "ls-tree", "-r", "--name-only", run["branch"]).splitlines()
    assert not [f for f in files if f.startswith((".aider", ".jackline/run"))], files
    assert ".gitignore" not in git(project.repo, "diff", "--name-only", "main", run["branch"])

    events = project.events(run["id"])
    edits = [e for e in events if e["kind"] == "agent.edit"]
    assert [(e["round"], e["path"]) for e in edits] == [(1, "calc.py"), (2, "calc.py")]
    messages = [e["summary"] for e in events if e["kind"] == "agent.message"]
    assert "Changing the operator." in messages
    usage = [e for e in events if e["kind"] == "agent.usage"]
    assert [u["models"][0]["input_tokens"] for u in usage] == [100_000, 100_000]
    assert usage[0]["models"][0]["model"] == MODEL and usage[0]["unpriced"] == []
    # Round 2 was told what failed: the feedback file went to Aider as read-only context.
    feedback = "Feedback from the previous round"
    assert feedback in requests[-1] and feedback not in requests[0]
    # The rules reached the model from Aider's own read-only context file, not only the brief.
    assert RULES in requests[0] and "CALC-17" in requests[0]
    # Spend: 2 calls of 100k input and 10k output at $3 and $15 per million.
    assert "$0.90" in project.jl("runs").stdout


def _brief(feedback: Path | None = None) -> Brief:
    return Brief(Path("/tmp/workspace/.jackline/run/brief.md"), "Fix it.", 1, feedback)


def test_aider_command_line_is_non_interactive_without_commits_with_model_and_args() -> None:
    config = AgentConfig(preset="aider", model="openai/gpt-x", args=["--map-tokens", "0"])
    argv = Agent(config).base_argv(_brief(Path("/tmp/workspace/.jackline/run/feedback.md")))
    for flag in ("--yes-always", "--no-auto-commits", "--no-dirty-commits", "--no-gitignore"):
        assert flag in argv
    assert argv[argv.index("--edit-format") + 1] == "diff"
    assert argv[argv.index("--model") + 1] == "openai/gpt-x"
    reads = [argv[i + 1] for i, a in enumerate(argv) if a == "--read"]
    assert reads == [RULES, "/tmp/workspace/.jackline/run/feedback.md"]
    assert argv[argv.index("--message-file") + 1] == "/tmp/workspace/.jackline/run/brief.md"
    assert Agent(config).argv(_brief())[-2:] == ["--map-tokens", "0"]


def test_aider_rules_file_holds_every_rule_in_scope_with_its_source() -> None:
    rules = [Rule(".jackline/rules/a.md", "Use tabs.", ("src/**",)), Rule("AGENTS.md", "Be brief.")]
    files = Agent(AgentConfig(preset="aider")).rules_files(rules, _brief())
    text = files[RULES]
    assert "## .jackline/rules/a.md (applies to src/**)" in text and "Use tabs." in text
    assert "## AGENTS.md" in text and "Be brief." in text
    assert Agent(AgentConfig(preset="aider")).rules_files([], _brief())[RULES]


HISTORY_TEXT = """
# aider chat started at 2026-01-01 10:00:00

> /usr/local/bin/aider --yes-always --message Fix it.
> Aider v0.86.2
> Model: openai/scripted with diff edit format

#### # Task
####
#### Fix it.

I need calc.py.

> Tokens: 1.2k sent, 15 received.
> calc.py
> Add file to the chat? (Y)es/(N)o/(D)on't ask again [Yes]: y

Changing it.

calc.py
```python
<<<<<<< SEARCH
    return a - b
=======
    return a + b
>>>>>>> REPLACE
```

> Tokens: 1.5k sent, 120 received. Cost: $0.0060 message, $0.0110 session.
> Applied edit to calc.py
> # 1 SEARCH/REPLACE block failed to match!
>
> ## SearchReplaceNoExactMatch: This SEARCH block failed to exactly match lines in util.py
> ## Running: /opt/aider/bin/python -m flake8 --select=E9,F821 --isolated calc.py
"""


def test_aider_chat_history_parses_into_messages_edits_commands_and_usage() -> None:
    t = Agent(AgentConfig(preset="aider")).parse(HISTORY_TEXT)
    kinds = [(s.kind, s.summary) for s in t.steps]
    assert kinds[0] == ("message", "I need calc.py.")
    assert ("message", "Changing it.") in kinds
    assert ("edit", "calc.py") in kinds
    failed = [s for s in t.steps if s.kind == "edit" and s.error]
    assert [s.path for s in failed] == ["util.py"]
    lint = [s for s in t.steps if s.kind == "command"]
    assert lint and "flake8" in lint[0].summary and lint[0].error
    assert t.final.startswith("Changing it.") and "REPLACE" in t.final
    assert t.usage[0].model == "openai/scripted"
    assert (t.usage[0].input_tokens, t.usage[0].output_tokens) == (2700, 135)
    assert t.cost_usd == pytest.approx(0.011)


def test_aider_log_without_history_still_yields_edits_and_tokens() -> None:
    log = "$ aider ...\nModel: gpt-x with diff edit format\nHello there\nTokens: 900 sent, 12 "
    log += "received.\nApplied edit to app.py\n"
    t = Agent(AgentConfig(preset="aider")).parse(log)
    assert [(s.kind, s.path) for s in t.steps] == [("edit", "app.py")]  # no guessing at words
    assert (t.usage[0].model, t.usage[0].input_tokens) == ("gpt-x", 900)


def test_missing_aider_is_refused_with_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Refused, match="pip install aider-chat"):
        Agent(AgentConfig(preset="aider")).executable()
    given = AgentConfig(preset="aider", command=[os.devnull])
    assert Agent(given).executable() == os.devnull
    assert HISTORY.startswith(".jackline/run/")


def _post(url: str, body: dict[str, object]) -> bytes:
    request = urllib.request.Request(
        f"{url}/v1/chat/completions",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


def test_chat_completions_picks_the_turn_by_round_and_replies_after_the_brief() -> None:
    turns = [Turn(text="one"), Turn(text="two"), Turn(text="three")]
    # Aider's requests carry example exchanges before the brief: only what follows it counts.
    examples = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    brief = {"role": "user", "content": "Fix it.\n\nThis is round 2 of at most 3."}
    with ModelServer(turns, [ChatCompletions()]) as server:
        first = json.loads(_post(server.url, {"model": "m", "messages": [*examples, brief]}))
        again = [*examples, brief, {"role": "assistant", "content": "two"}, examples[0]]
        second = json.loads(_post(server.url, {"model": "m", "messages": again}))
    assert first["choices"][0]["message"]["content"] == "two"
    assert first["usage"]["prompt_tokens"] == 1200 and first["model"] == "m"
    assert second["choices"][0]["message"]["content"] == "three"


def test_chat_completions_streams_chunks_litellm_reads_back() -> None:
    """Streaming, read by the real litellm (Aider's), with tool calls and the usage chunk."""
    aider = shutil.which("aider")
    if aider is None:
        pytest.skip("aider is not installed (.ci/agents/aider.sh): its litellm reads the stream")
    python = Path(aider).resolve().parent / "python"
    turns = [Turn(text="Running it.", tools=[Tool("bash", {"command": "ls"})], output_tokens=9)]
    script = """
import json, sys, litellm
chunks = list(litellm.completion(
    model="openai/scripted", api_base=sys.argv[1] + "/v1", api_key="k", stream=True,
    stream_options={"include_usage": True}, messages=[{"role": "user", "content": "hi"}],
    tools=[{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}],
))
done = litellm.stream_chunk_builder(chunks)
message = done.choices[0].message
print(json.dumps({"text": message.content, "call": message.tool_calls[0].function.arguments,
                  "out": done.usage.completion_tokens}))
"""
    with ModelServer(turns, [ChatCompletions()]) as server:
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "NO_PROXY": "127.0.0.1"}
        done = subprocess.run(
            [str(python), "-c", script, server.url],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {"text": "Running it.", "call": '{"command": "ls"}', "out": 9}
