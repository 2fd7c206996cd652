"""The Claude Code preset: `claude -p` with the brief, its stream-json read into a transcript.

Checked against Claude Code 2.1.330 (`.ci/agents/claude-code.sh` installs that version):

- The command: `claude -p BRIEF --output-format stream-json --verbose --permission-mode
  bypassPermissions --no-session-persistence [--model M] [args]`. Claude Code refuses to bypass
  its permission prompts as root unless `IS_SANDBOX=1` says a sandbox is the boundary, which
  ours is. It never commits unless asked, and the brief tells it not to.
- The rules: one file per rule in `.claude/rules/jackline-*.md`, which Claude Code loads with the
  project's instructions (a request's first user message says "Contents of
  .../.claude/rules/jackline-....md"). A repository's own `CLAUDE.md` files it reads by itself,
  so those are not written again.
- The guard: `jackline.guard.hook` as its PreToolUse hook in `.claude/settings.local.json`
  (the local settings Claude Code reads in a project; a refused call reaches the transcript as
  an error result saying why). Both files are harness files: `private` keeps them out of the
  commit, and the hook refuses the agent's own writes to `.claude/settings*`.
- The environment: no telemetry, error reports, update checks or other traffic beyond the model
  API; its config folder is in the workspace's inbox, so a run never sees a person's `~/.claude`
  (their login, hooks or memory) even with `[sandbox] mode = "none"`.
- The transcript: stream-json lines (`assistant` messages holding text and `tool_use` blocks,
  `user` messages holding each `tool_result`, and a closing `result` with the final message,
  the tokens per model and what Claude Code reckons it cost).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from jackline.agents import Brief
from jackline.agents.preset import Preset
from jackline.context import Rule
from jackline.guard.hook import install_claude_hook
from jackline.models import AgentResult, Step, Transcript, Usage
from jackline.sandbox import Jail
from jackline.workspaces import AGENT_DIR

HOOK = [sys.executable, "-P", "-m", "jackline.guard.hook"]
"""The guard, run by Claude Code before each tool call (`-P`: never import from the workspace)."""
MCP = [sys.executable, "-P", "-m", "jackline", "mcp", "--workspace"]
"""Jackline's MCP server, run by Claude Code inside the sandbox (`-P`, as the hook)."""
RULES_DIR = ".claude/rules"
RULES_PREFIX = "jackline-"
SETTINGS = ".claude/settings.local.json"
CONFIG_DIR = "claude-config"
"""Claude Code's own config folder, in the harness's inbox (`CLAUDE_CONFIG_DIR`)."""
QUIET = {
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_BUG_COMMAND": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "IS_SANDBOX": "1",
}
"""No traffic but the model API; `IS_SANDBOX`: the permission bypass is allowed as root."""
MAX_PROMPT = 100_000
"""Characters of brief on the command line; past this (Linux caps one argument at 128 KiB) the
prompt points at the brief's file instead."""
EDITS = {"Edit": "file_path", "MultiEdit": "file_path", "Write": "file_path"}
EDITS_NOTEBOOK = {"NotebookEdit": "notebook_path"}
COMMANDS = {"Bash": "command", "PowerShell": "command"}
DETAIL = 2000
_EXIT = re.compile(r"^Exit code (\d+)")


class ClaudeCode(Preset):
    name: ClassVar[str] = "claude-code"
    program: ClassVar[str] = "claude"
    install: ClassVar[str] = "npm install -g @anthropic-ai/claude-code"
    private: ClassVar[tuple[str, ...]] = (f"/{RULES_DIR}/{RULES_PREFIX}*.md", f"/{SETTINGS}")

    def base_argv(self, brief: Brief) -> list[str]:
        argv = [
            self.program,
            "-p",
            prompt(brief),
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "bypassPermissions",
            "--no-session-persistence",
        ]
        servers = self.mcp_servers(brief)
        if servers:
            argv += ["--mcp-config", json.dumps({"mcpServers": servers})]
        if self.config.model:
            argv += ["--model", self.config.model]
        return argv

    def mcp_servers(self, brief: Brief) -> dict[str, Any]:
        """MCP servers Claude Code starts for the run (`--mcp-config`): name -> `{"command":
        ..., "args": [...], "env": {...}}`. Jackline's own (`jackline mcp`) runs beside the
        agent, in its sandbox: the workspace as seen there is the brief's, and the run id, the
        task and the config it reads from the inbox the brief sits in."""
        return {"jackline": {"command": MCP[0], "args": [*MCP[1:], str(_workspace_of(brief))]}}

    def rules_files(self, rules: list[Rule], brief: Brief) -> dict[str, str]:
        return {
            f"{RULES_DIR}/{RULES_PREFIX}{_slug(r.source)}.md": _rule_text(r)
            for r in rules
            if PurePosixPath(r.source).name != "CLAUDE.md"  # Claude Code reads those itself
        }

    def extra_env(self, workspace: Path) -> dict[str, str]:
        return dict(QUIET)

    def run(
        self,
        brief: Brief,
        workspace: Path,
        env: Mapping[str, str],
        log: Path,
        jail: Jail | None = None,
    ) -> AgentResult:
        install_claude_hook(workspace, HOOK)
        # The inbox as the program sees it (the brief's folder): inside the sandbox, too.
        own = {"CLAUDE_CONFIG_DIR": str(brief.path.parent / CONFIG_DIR)}
        return super().run(brief, workspace, {**own, **env}, log, jail)

    def parse(self, output: str) -> Transcript:
        return parse(output)


Agent = ClaudeCode


def prompt(brief: Brief) -> str:
    """The task as Claude Code gets it: the brief (with the feedback, from round 2), or where to
    read it when it is too long for a command line."""
    if len(brief.prompt) <= MAX_PROMPT:
        return brief.prompt
    return (
        f"# Task\n\nYour brief is too long for the command line: read `{brief.path}` first and "
        "do what it says" + (f", then `{brief.feedback}`." if brief.feedback else ".") + "\n"
    )


def _workspace_of(brief: Brief) -> Path:
    """The workspace as the agent sees it: the brief sits in its inbox (`.jackline/run/`)."""
    path = brief.path.parent
    for _ in AGENT_DIR.parts:
        path = path.parent
    return path


def _slug(source: str) -> str:
    stem = source.removeprefix(".jackline/rules/").removesuffix(".md")
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-") or "rule"


def _rule_text(rule: Rule) -> str:
    scope = f" (applies to {', '.join(rule.paths)})" if rule.paths else ""
    return (
        f"# {rule.source}{scope}\n\n"
        "<!-- Written by Jackline for this run; the rule itself lives in "
        f"{rule.source}. -->\n\n{rule.text.strip()}\n"
    )


# the transcript ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    name: str
    input: dict[str, Any]


def parse(output: str) -> Transcript:
    """Claude Code's stream-json (one JSON object a line, among whatever else the log holds)
    read into steps, tokens per model and the final message."""
    steps: list[Step] = []
    calls: dict[str, _Call] = {}
    order: list[str] = []
    usage_by_message: dict[str, tuple[str, dict[str, Any]]] = {}
    cwd = ""
    result: dict[str, Any] | None = None
    for event in _events(output):
        kind = event.get("type")
        if kind == "system" and event.get("subtype") == "init":
            cwd = str(event.get("cwd") or "")
        elif kind == "assistant":
            message = _dict(event.get("message"))
            for block in _blocks(message):
                if block.get("type") == "text" and str(block.get("text", "")).strip():
                    steps.append(_said(str(block["text"])))
                elif block.get("type") == "tool_use" and isinstance(block.get("id"), str):
                    calls[block["id"]] = _Call(str(block.get("name")), _dict(block.get("input")))
                    order.append(block["id"])
            if message.get("id") and isinstance(message.get("usage"), dict):
                usage_by_message[str(message["id"])] = (str(message.get("model")), message["usage"])
        elif kind == "user":
            for block in _blocks(_dict(event.get("message"))):
                call = calls.pop(str(block.get("tool_use_id")), None)
                if block.get("type") == "tool_result" and call is not None:
                    steps.append(_step(call, block, event.get("tool_use_result"), cwd))
        elif kind == "result":
            result = event
    steps += [_step(calls[i], None, None, cwd) for i in order if i in calls]  # never answered
    if result is None:
        return Transcript(tuple(steps), _usage_from_messages(usage_by_message), _last_said(steps))
    return Transcript(
        tuple(steps),
        _usage_from_result(result) or _usage_from_messages(usage_by_message),
        _final(result, steps),
        _number(result.get("total_cost_usd")),
    )


def _events(output: str) -> Iterator[dict[str, Any]]:
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and isinstance(event.get("type"), str):
            yield event


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _said(text: str) -> Step:
    return Step("message", _first_line(text), text.strip())


def _step(call: _Call, block: dict[str, Any] | None, extra: Any, cwd: str) -> Step:
    """One tool call with its result (`block` None: it never got one)."""
    error = bool(block and block.get("is_error"))
    output = _content_text(block.get("content")) if block else "(no result: the round ended first)"
    args = call.input
    if call.name in COMMANDS:
        command = str(args.get(COMMANDS[call.name], ""))
        code = _EXIT.match(output)
        exit_code = int(code.group(1)) if code else (None if error or not block else 0)
        return Step("command", command, _clip(output), exit_code=exit_code, error=error)
    field = {**EDITS, **EDITS_NOTEBOOK}.get(call.name)
    if field and isinstance(args.get(field), str):
        path = _relative(args[field], cwd)
        detail = _patch(extra) or output
        return Step("edit", f"{call.name} {path}", _clip(detail), path=path, error=error)
    return Step("tool", _tool_summary(call, cwd), _clip(output), error=error)


def _tool_summary(call: _Call, cwd: str) -> str:
    for key in ("file_path", "path", "pattern", "url", "query", "description", "prompt"):
        value = call.input.get(key)
        if isinstance(value, str) and value:
            shown = _relative(value, cwd) if key in ("file_path", "path") else value
            return f"{call.name} {_first_line(shown)}"
    return call.name


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(b.get("text", ""))
            for b in content
            if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _patch(extra: Any) -> str:
    """The edit as diff lines, from the structured patch Claude Code reports with the result."""
    hunks = extra.get("structuredPatch") if isinstance(extra, dict) else None
    if not isinstance(hunks, list):
        return ""
    lines: list[str] = []
    for h in hunks:
        if isinstance(h, dict) and isinstance(h.get("lines"), list):
            lines.append(
                f"@@ -{h.get('oldStart')},{h.get('oldLines')} "
                f"+{h.get('newStart')},{h.get('newLines')} @@"
            )
            lines += [str(x) for x in h["lines"]]
    return "\n".join(lines)


def _relative(path: str, cwd: str) -> str:
    if cwd and path.startswith(cwd.rstrip("/") + "/"):
        return path[len(cwd.rstrip("/")) + 1 :]
    return path


def _usage_from_result(result: dict[str, Any]) -> tuple[Usage, ...]:
    per_model = _dict(result.get("modelUsage"))
    return tuple(
        Usage(
            model,
            input_tokens=_int(u.get("inputTokens")),
            output_tokens=_int(u.get("outputTokens")),
            cache_read_tokens=_int(u.get("cacheReadInputTokens")),
            cache_write_tokens=_int(u.get("cacheCreationInputTokens")),
        )
        for model, u in per_model.items()
        if isinstance(u, dict)
    )


def _usage_from_messages(found: dict[str, tuple[str, dict[str, Any]]]) -> tuple[Usage, ...]:
    """Tokens from the messages themselves, for a round cut short before its `result` (output
    tokens are then as counted when each message started: a lower bound)."""
    totals: dict[str, Usage] = {}
    for model, u in found.values():
        was = totals.get(model, Usage(model))
        totals[model] = Usage(
            model,
            was.input_tokens + _int(u.get("input_tokens")),
            was.output_tokens + _int(u.get("output_tokens")),
            was.cache_read_tokens + _int(u.get("cache_read_input_tokens")),
            was.cache_write_tokens + _int(u.get("cache_creation_input_tokens")),
        )
    return tuple(totals.values())


def _final(result: dict[str, Any], steps: list[Step]) -> str:
    text = result.get("result")
    if isinstance(text, str) and text.strip():
        return text.strip()
    if result.get("is_error") or str(result.get("subtype", "")).startswith("error"):
        errors = result.get("errors")
        said = "; ".join(map(str, errors)) if isinstance(errors, list) and errors else ""
        return f"(Claude Code stopped: {result.get('subtype')}{': ' + said if said else ''})"
    return _last_said(steps)


def _last_said(steps: list[Step]) -> str:
    said = [s.detail for s in steps if s.kind == "message"]
    return said[-1] if said else ""


def _first_line(text: str, n: int = 120) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= n else line[: n - 1] + "…"


def _clip(text: str) -> str:
    return text if len(text) <= DETAIL else text[:DETAIL] + f"\n[... {len(text) - DETAIL} more]"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None
