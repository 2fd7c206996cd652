"""The Codex CLI (`codex`, npm `@openai/codex`) as a preset: `codex exec --json`, its JSON events
read into the transcript.

- Sandbox and approvals: Codex's own sandbox is off (`sandbox_mode = "danger-full-access"`) and
  it never asks (`approval_policy = "never"`): Jackline's bubblewrap sandbox is the boundary
  (the machine read-only, the workspace writable, the network only through the allowlisting
  proxy), the policy Codex's `workspace-write` would approximate. Codex's own sandbox fails
  inside ours (Codex 0.169): it runs commands through helper programs it will not create under
  a temporary folder, and its home is in the workspace, which our sandbox shows at
  /tmp/workspace; every command then fails with `bwrap: execvp codex-linux-sandbox: No such file
  or directory` and every patch with `Failed to write file`. (With its home elsewhere it nests,
  where the kernel allows a user namespace in ours, but it also cuts the commands off the hosts
  `[sandbox] allow_network` lets through.) Given as settings, not flags, so `[agents.NAME] args
  = ["--sandbox", "workspace-write"]` still takes precedence.
- Its home (`CODEX_HOME`: sessions, logs, its database) is a folder in the harness's private
  inbox, `.jackline/run/codex/`, fresh per workspace and never committed.
- Rules: Codex reads `AGENTS.md` from the repository's root down to its working folder, and
  `$CODEX_HOME/AGENTS.md` before them. The rules in scope go in the latter, so a tracked
  `AGENTS.md` is never touched (it would enter the commit) and is not repeated.
- The model API: Codex 0.169 no longer reads `OPENAI_BASE_URL`. When `[agents.NAME] env` sets
  it, the preset declares a model provider of its own with that base URL (the Responses API,
  the key from `OPENAI_API_KEY` if the agent has it) and picks it.
- From round 2 the feedback follows the brief in the prompt: a fresh `codex exec` has no memory
  of the round before.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from jackline.agents import Brief
from jackline.agents.preset import Preset, private_dir, read_private
from jackline.config import AgentConfig
from jackline.context import Rule
from jackline.models import AgentResult, Step, Transcript, Usage
from jackline.sandbox import Jail
from jackline.workspaces import AGENT_DIR

HOME = AGENT_DIR / "codex"
"""Codex's home, relative to the workspace."""
PROVIDER = "jackline"
UNKNOWN_MODEL = "codex-default"
"""The model named in the usage when neither the config nor Codex's session says which."""
DETAIL = 4000
MAX_PROMPT = 100_000
"""Bytes of brief given as the prompt (Linux takes at most 128 KiB in one argument)."""


class Agent(Preset):
    name: ClassVar[str] = "codex"
    program: ClassVar[str] = "codex"
    install: ClassVar[str] = "install it with `npm install -g @openai/codex` (Node.js 18+)"
    private: ClassVar[tuple[str, ...]] = (f"{HOME}/",)

    def __init__(self, config: AgentConfig) -> None:
        super().__init__(config)
        self._root: Path | None = None
        """The workspace as the program sees it (set by `run`): paths in its events are there."""
        self._workspace: Path | None = None
        """The workspace as the harness sees it (set by `run`): Codex's home is in it."""

    def base_argv(self, brief: Brief) -> list[str]:
        argv = [
            self.program,
            "exec",
            "--json",
            # Workspaces are git repositories, but an overlay's or a worktree's `.git` need not
            # look like one to Codex; the harness decides where it runs, not this check.
            "--skip-git-repo-check",
            "--color",
            "never",
            "-c",
            'sandbox_mode="danger-full-access"',
            "-c",
            'approval_policy="never"',
            *self._provider(),
        ]
        if self.config.model:
            argv += ["--model", self.config.model]
        return [*argv, _prompt(brief)]

    def rules_files(self, rules: list[Rule], brief: Brief) -> dict[str, str]:
        # The root AGENTS.md Codex reads itself; every other rule in scope goes in its home's.
        own = [r for r in rules if r.source != "AGENTS.md"]
        parts = ["# Rules from the project (Jackline)\n"]
        for r in own:
            scope = f" (applies to {', '.join(r.paths)})" if r.paths else ""
            parts.append(f"## {r.source}{scope}\n\n{r.text}\n")
        if not own:
            parts.append("None beyond the repository's own AGENTS.md.\n")
        return {str(HOME / "AGENTS.md"): "\n".join(parts)}

    def extra_env(self, workspace: Path) -> dict[str, str]:
        # Codex refuses a CODEX_HOME that does not exist.
        private_dir(workspace, HOME)
        return {"CODEX_HOME": str((self._root or workspace) / HOME)}

    def run(
        self,
        brief: Brief,
        workspace: Path,
        env: Mapping[str, str],
        log: Path,
        jail: Jail | None = None,
    ) -> AgentResult:
        self._root = _seen_root(brief, workspace)
        self._workspace = workspace
        return super().run(brief, workspace, env, log, jail)

    def parse(self, output: str) -> Transcript:
        events = list(_events(output))
        model = self.config.model or _session_model(self._workspace, events) or UNKNOWN_MODEL
        return transcript(events, model, self._root)

    def _provider(self) -> list[str]:
        """A model provider of our own when `[agents.NAME] env` names a base URL."""
        base_url = self.config.env.get("OPENAI_BASE_URL")
        if not base_url:
            return []
        fields = {"name": "Jackline", "base_url": base_url, "wire_api": "responses"}
        if "OPENAI_API_KEY" in {**self.config.env, **self.config.secrets}:
            fields["env_key"] = "OPENAI_API_KEY"
        table = ", ".join(f"{k} = {json.dumps(v)}" for k, v in fields.items())
        return [
            "-c",
            f"model_providers.{PROVIDER}={{ {table} }}",
            "-c",
            f'model_provider="{PROVIDER}"',
        ]


def transcript(events: list[dict[str, Any]], model: str, root: Path | None = None) -> Transcript:
    """Codex's `exec --json` events as a transcript: its commands, edits, tool calls and messages,
    the tokens each turn used."""
    steps: list[Step] = []
    final = ""
    totals = {"input": 0, "output": 0, "cached": 0, "written": 0}
    for e in events:
        kind = e.get("type")
        if kind == "item.completed" and isinstance(e.get("item"), dict):
            steps += _item_steps(e["item"], root)
            if e["item"].get("type") == "agent_message":
                final = str(e["item"].get("text", ""))
        elif kind == "turn.completed":
            _add_usage(totals, e.get("usage") or {})
        elif kind in ("turn.failed", "error"):
            message = _error_text(e)
            steps.append(Step("message", _line(message), message, error=True))
    usage = Usage(
        model,
        input_tokens=max(0, totals["input"] - totals["cached"] - totals["written"]),
        output_tokens=totals["output"],
        cache_read_tokens=totals["cached"],
        cache_write_tokens=totals["written"],
    )
    return Transcript(tuple(steps), (usage,) if any(totals.values()) else (), final)


def _item_steps(item: dict[str, Any], root: Path | None) -> list[Step]:
    kind = item.get("type")
    failed = item.get("status") in ("failed", "declined")
    if kind == "agent_message":
        text = str(item.get("text", ""))
        return [Step("message", _line(text), text)]
    if kind == "command_execution":
        code = item.get("exit_code")
        return [
            Step(
                "command",
                _line(_script(str(item.get("command", "")))),
                _clip(str(item.get("aggregated_output") or "")),
                exit_code=code if isinstance(code, int) else None,
                error=failed,
            )
        ]
    if kind == "file_change":
        return [
            Step(
                "edit",
                f"{c.get('kind', 'update')} {_relative(str(c.get('path', '')), root)}",
                path=_relative(str(c.get("path", "")), root),
                error=failed,
            )
            for c in item.get("changes") or []
            if isinstance(c, dict)
        ]
    if kind == "error":
        text = str(item.get("message", ""))
        return [Step("message", _line(text), text, error=True)]
    if kind in ("reasoning", None):
        return []  # the model's thinking: neither an action nor what it told the reviewer
    return [_tool_step(item, failed)]


def _tool_step(item: dict[str, Any], failed: bool) -> Step:
    """An MCP tool call, a web search, a plan, or any item kind a later Codex adds."""
    kind = str(item.get("type"))
    if kind == "mcp_tool_call":
        name = f"{item.get('server', '?')}.{item.get('tool', '?')}"
        args = json.dumps(item.get("arguments"), ensure_ascii=False)
        result = item.get("error") or item.get("result")
        return Step(
            "tool",
            _line(f"{name} {args}"),
            _clip(json.dumps(result, ensure_ascii=False) if result else ""),
            error=failed or bool(item.get("error")),
        )
    if kind == "web_search":
        return Step("tool", _line(f"web_search {item.get('query', '')}"))
    if kind == "todo_list":
        todo = [t for t in item.get("items") or [] if isinstance(t, dict)]
        lines = [f"[{'x' if t.get('completed') else ' '}] {t.get('text', '')}" for t in todo]
        return Step("tool", f"plan ({len(lines)} steps)", "\n".join(lines))
    rest = {k: v for k, v in item.items() if k not in ("id", "type")}
    return Step("tool", kind, _clip(json.dumps(rest, ensure_ascii=False)), error=failed)


def _add_usage(totals: dict[str, int], usage: dict[str, Any]) -> None:
    for key, field in (
        ("input", "input_tokens"),
        ("output", "output_tokens"),
        ("cached", "cached_input_tokens"),
        ("written", "cache_write_input_tokens"),
    ):
        value = usage.get(field)
        totals[key] += value if isinstance(value, int) else 0


def _events(output: str) -> Iterator[dict[str, Any]]:
    """The JSON events in the round's log (which also holds the command line and stderr)."""
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and isinstance(event.get("type"), str):
            yield event


def _session_model(workspace: Path | None, events: list[dict[str, Any]]) -> str | None:
    """The model Codex's session used, from its session file (its JSON events do not say)."""
    thread = next((e.get("thread_id") for e in events if e["type"] == "thread.started"), None)
    if workspace is None or not isinstance(thread, str):
        return None
    for session in _session_files(workspace, thread):
        for line in (read_private(workspace, session) or "").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            payload = record.get("payload") if isinstance(record, dict) else None
            if record.get("type") == "turn_context" and isinstance(payload, dict):
                model = payload.get("model")
                if isinstance(model, str) and model:
                    return model
    return None


def _session_files(workspace: Path, thread: str, most: int = 1_000) -> list[str]:
    """Codex's session files of `thread` (`sessions/YYYY/MM/DD/rollout-...-THREAD.jsonl` in its
    home), relative to the workspace. Found by a walk that follows no link below the home and
    looks at `most` folders at most; each is then read by `read_private`, which refuses a link
    anywhere on the way, the home's own folders included."""
    top = workspace / HOME / "sessions"
    found = []
    for i, (folder, _, names) in enumerate(os.walk(top)):
        if i >= most:
            break
        rel = Path(folder).relative_to(workspace)
        found += [
            str(rel / n)
            for n in names
            if n.startswith("rollout-") and n.endswith(f"{thread}.jsonl")
        ]
    return sorted(found)


def _seen_root(brief: Brief, workspace: Path) -> Path:
    """The workspace as the program sees it: the brief lies in the harness's inbox there."""
    inbox = brief.path.parent
    if inbox.parts[-len(AGENT_DIR.parts) :] == AGENT_DIR.parts:
        return inbox.parents[len(AGENT_DIR.parts) - 1]
    return workspace


def _prompt(brief: Brief) -> str:
    """The prompt (the brief, then the feedback), or, past what one argument may hold, where
    to read it."""
    if len(brief.prompt.encode()) <= MAX_PROMPT:
        return brief.prompt
    where = f" and the feedback from the last round in {brief.feedback}" if brief.feedback else ""
    return f"Your task is in {brief.path}{where}: read it first, then do it."


def _script(command: str) -> str:
    """`/bin/bash -lc 'pytest -q'` as `pytest -q`: the shell Codex wraps commands in is noise."""
    try:
        parts = shlex.split(command)
    except ValueError:
        return command
    if len(parts) == 3 and parts[0].endswith(("sh", "bash", "zsh")) and parts[1] in ("-c", "-lc"):
        return parts[2]
    return command


def _relative(path: str, root: Path | None) -> str:
    if root is not None and Path(path).is_relative_to(root):
        return str(Path(path).relative_to(root))
    return path


def _error_text(event: dict[str, Any]) -> str:
    error = event.get("error")
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(event.get("message", error or "an error"))


def _line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= 200 else first[:199] + "…"


def _clip(text: str) -> str:
    return text if len(text) <= DETAIL else text[:DETAIL] + f"\n[... {len(text) - DETAIL} more]"
