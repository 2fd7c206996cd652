"""mini-swe-agent (`mini`, PyPI `mini-swe-agent`, v2), driven non-interactively.

One invocation a round: `mini --yolo --exit-immediately --task <brief>` runs the model's bash
commands without asking (the sandbox is the boundary) and ends when the model submits, without
asking for a new task. It never commits. Its environment settings: `MSWEA_CONFIGURED` skips the
first-run set-up prompt, `MSWEA_GLOBAL_CONFIG_DIR` keeps its config folder in the private area,
`MSWEA_COST_TRACKING=ignore_errors` lets it run a model litellm has no price for (Jackline
prices the tokens itself, from `[budget] prices`).

Rules: mini-swe-agent reads no rules file; its task text is where it meets them, and the brief
already holds the rules in scope. Round 2's feedback is added to the task text.

Transcript: the trajectory it saves (`--output`, JSON in the private area), read after the
round: each bash command with its output and exit code, the model's words, the final message,
tokens per model call and the cost mini-swe-agent computed. Edits are the files the round
changed (mini-swe-agent edits with shell commands, so the trajectory cannot say which).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from jackline import git as g
from jackline.agents import Brief
from jackline.agents.preset import Preset, read_private, remove_private
from jackline.errors import CommandFailed
from jackline.models import AgentResult, Step, Transcript, Usage
from jackline.sandbox import Jail

PRIVATE = ".jackline/run/mini-swe-agent"
TRAJECTORY = f"{PRIVATE}/trajectory.json"
SUBMIT = "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"


class Agent(Preset):
    name = "mini-swe-agent"
    program = "mini"
    install = (
        "install mini-swe-agent from PyPI in a virtualenv of its own: `python3 -m venv "
        "/opt/mini-swe-agent && /opt/mini-swe-agent/bin/pip install mini-swe-agent && "
        "ln -s /opt/mini-swe-agent/bin/mini /usr/local/bin/` (or `pipx install mini-swe-agent`)"
    )
    private = (f"{PRIVATE}/",)

    def base_argv(self, brief: Brief) -> list[str]:
        argv = [self.program, "--yolo", "--exit-immediately", "--output", TRAJECTORY]
        if self.config.model:
            argv += ["--model", self.config.model]
        return [*argv, "--task", brief.prompt]

    def extra_env(self, workspace: Path) -> dict[str, str]:
        return {
            "MSWEA_CONFIGURED": "true",
            "MSWEA_GLOBAL_CONFIG_DIR": f"{PRIVATE}/config",  # relative: the workspace, inside too
            "MSWEA_COST_TRACKING": "ignore_errors",
            "MSWEA_SILENT_STARTUP": "1",
            # litellm's bundled price list, not a download at start-up (no network inside).
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }

    def run(
        self,
        brief: Brief,
        workspace: Path,
        env: Mapping[str, str],
        log: Path,
        jail: Jail | None = None,
    ) -> AgentResult:
        """The base run with the feedback in the task text, then the transcript from the
        trajectory it saved, with the files the round changed as its edits."""
        remove_private(workspace, TRAJECTORY)  # a trajectory left from the round before
        before = _tree(workspace)
        done = super().run(brief, workspace, env, log, jail)
        edits = _edits(workspace, before)
        try:
            # No trajectory (or a link where it should be) reads as no structure at all.
            transcript = self.parse(read_private(workspace, TRAJECTORY) or "")
        except ValueError:
            transcript = done.transcript or Transcript()
        return replace(done, transcript=replace(transcript, steps=transcript.steps + edits))

    def parse(self, output: str) -> Transcript:
        """A trajectory (`--output`) into a Transcript. Anything else (the log, when mini
        saved none) has no structure to read: an empty transcript."""
        if not output.lstrip().startswith("{"):
            return Transcript()
        data = json.loads(output)
        if not isinstance(data, dict):
            raise ValueError("a trajectory is a JSON object")
        return read_trajectory(data, self.config.model)


def read_trajectory(data: dict[str, Any], model: str | None) -> Transcript:
    messages = [m for m in data.get("messages") or [] if isinstance(m, dict)]
    info = data.get("info") or {}
    model_name = model or _dig(info, "config", "model", "model_name") or "mini-swe-agent"
    results = {m.get("tool_call_id"): m for m in messages if m.get("role") == "tool"}
    steps: list[Step] = []
    said: list[str] = []
    usage = Usage(str(model_name))
    for i, m in enumerate(messages):
        if m.get("role") != "assistant":
            continue
        usage = _add(usage, _dig(m, "extra", "response", "usage") or {})
        text = _text(m.get("content")).strip()
        if text:
            said.append(text)
            steps.append(Step("message", text.splitlines()[0][:200], text))
        actions = _dig(m, "extra", "actions") or []
        # Text-based models' observations come back as the user messages after the reply.
        plain = iter(n for n in messages[i + 1 :] if n.get("role") == "user")
        for action in actions:
            result = results.get(action.get("tool_call_id")) or next(plain, {})
            steps.append(_command(str(action.get("command", "")), result))
    exit_status = str(info.get("exit_status") or "")
    if exit_status and exit_status != "Submitted":
        steps.append(Step("message", f"mini-swe-agent stopped: {exit_status}", error=True))
    cost = float(_dig(info, "model_stats", "instance_cost") or 0.0)
    tokens = usage.input_tokens + usage.output_tokens
    return Transcript(
        tuple(steps), (usage,) if tokens else (), said[-1] if said else "", cost or None
    )


def _command(command: str, result: dict[str, Any]) -> Step:
    extra = result.get("extra") or {}
    code = extra.get("returncode")
    if SUBMIT in command and code == -1:
        # Submitting ends the agent before the command's output is kept: it did not fail.
        return Step("command", command, "(submitted)")
    output = str(extra.get("raw_output") or extra.get("exception_info") or "")
    exit_code = code if isinstance(code, int) else None
    return Step("command", command, output, exit_code=exit_code, error=bool(exit_code))


def _add(u: Usage, reported: dict[str, Any]) -> Usage:
    details = reported.get("prompt_tokens_details") or {}
    read = int(details.get("cached_tokens") or reported.get("cache_read_input_tokens") or 0)
    write = int(reported.get("cache_creation_input_tokens") or 0)
    prompt = int(reported.get("prompt_tokens") or 0)
    return Usage(
        u.model,
        u.input_tokens + max(0, prompt - read),  # prompt_tokens counts the cached ones too
        u.output_tokens + int(reported.get("completion_tokens") or 0),
        u.cache_read_tokens + read,
        u.cache_write_tokens + write,
    )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _tree(workspace: Path) -> str | None:
    try:
        return g.worktree_tree(workspace)
    except (CommandFailed, OSError):
        return None  # not a git work tree: no edits to report


def _edits(workspace: Path, before: str | None) -> tuple[Step, ...]:
    """The files the round added, changed or deleted, as edit steps."""
    after = _tree(workspace)
    if before is None or after is None or before == after:
        return ()
    changed = g.git(workspace, "diff-tree", "-r", "--no-renames", "--name-status", before, after)
    verbs = {"A": "added", "D": "deleted"}
    steps = []
    for line in changed.splitlines():
        status, _, path = line.partition("\t")
        if path:
            steps.append(Step("edit", path, verbs.get(status[:1], "changed"), path=path))
    return tuple(steps)
